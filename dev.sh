#!/usr/bin/env bash
# nbdkit-zram: one entry point for a fresh Debian 12 machine.
#
#   ./dev.sh run    install what is missing, build, serve a 1 GiB device
#   ./dev.sh test   install what is missing, build, run the whole suite
#                   (plain build, then ASan+UBSan, then TSan)
#   ./dev.sh nbdkit print the path of the nbdkit that run and test use,
#                   building it first if needed (see "Which nbdkit" in
#                   README.md)
#
# Runs as root, or as a user with sudo (used only for apt-get).
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail
cd "$(dirname "$0")"
# Debian's python3 first: python3-libnbd (nbdsh) is installed for it.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

# libmicrohttpd-dev: "nbdzramctl metrics --listen" (optional: without it
# nbdzramctl builds without HTTP).
build_packages=(meson ninja-build pkg-config gcc libc6-dev nbdkit
                nbdkit-plugin-dev liburcu-dev liblz4-dev libzstd-dev perl
                libmicrohttpd-dev libxxhash-dev)
run_packages=(libnbd-bin)
test_packages=(libnbd-dev libnbd-bin python3-libnbd fio spin valgrind clang
               libclang-rt-14-dev e2fsprogs util-linux fuse3 bc procps kmod
               systemd curl)

install_missing () {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dev.sh: installing ${missing[*]}"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- nbdkit without the hang-up abort -----------------------------------------
# nbdkit 1.32.0 up to 1.33.9 abort ("raw_send_socket: Assertion `sock >= 0'
# failed") when a client goes away (SIGKILL, crash, a VM killed) while
# replies to its queued requests are still being sent, and an abort of a RAM
# disk's server loses all its data.  Fixed in 1.33.10 (upstream commit
# 9d82aa4f).  Debian 12 ships 1.32.5, so when the nbdkit found is older,
# dev.sh builds the server, with the memory and null plugins the tests and
# benchmarks compare against and nothing else, from Debian 13's source
# package into a cache, and exports it as NBDKIT and first in PATH for the
# builds, every test and "./dev.sh run".  The plugin is still compiled
# against the system's nbdkit-plugin-dev header: a NBDKIT_API_VERSION 2
# plugin built for 1.32 loads in any later nbdkit.
#
#   NBDKIT=/path/to/nbdkit   use that nbdkit as it is (no check, no build)
#   ZRAM_NBDKIT_CACHE=DIR    where built servers are kept (default below)
#   ZRAM_NBDKIT_SUITE=NAME   Debian suite to take the source from (trixie)
#   ZRAM_NBDKIT_MIRROR=URI   Debian mirror (default: this machine's own)
nbdkit_fixed=1.33.10
nbdkit_suite=${ZRAM_NBDKIT_SUITE:-trixie}
if [ -n "${ZRAM_NBDKIT_CACHE:-}" ]; then
  nbdkit_cache=$ZRAM_NBDKIT_CACHE
elif [ "$(id -u)" = 0 ]; then
  nbdkit_cache=/var/cache/nbdkit-zram
else
  nbdkit_cache=${XDG_CACHE_HOME:-$HOME/.cache}/nbdkit-zram
fi
# What building the server from a Debian source package needs (libzstd-dev:
# the memory plugin's allocator=zstd, a benchmark baseline).
nbdkit_build_packages=(gcc libc6-dev make pkg-config libzstd-dev dpkg-dev
                       patch xz-utils debian-archive-keyring)

nbdkit_version () {             # nbdkit_version PROGRAM: "1.32.5", or nothing
  "$1" --version 2>/dev/null | awk '$1 == "nbdkit" { print $2; exit }'
}

nbdkit_is_fixed () {            # nbdkit_is_fixed PROGRAM
  local v
  v=$(nbdkit_version "$1")
  [ -n "$v" ] && dpkg --compare-versions "$v" ge "$nbdkit_fixed"
}

# build_nbdkit PREFIX: fetch the source package of nbdkit from
# $nbdkit_suite and install its server and memory and null plugins into
# PREFIX.  Runs in a subshell under set -e: any failure fails the build and
# leaves nothing at PREFIX.  apt runs with a private sources list, index and
# cache in the build directory: the machine's own apt state is not changed.
build_nbdkit () (
  set -e
  # Not local: the EXIT trap below runs after the function's scope is gone.
  prefix=$1
  tmp=$(mktemp -d "$nbdkit_cache/build.XXXXXX")
  trap 'st=$?; [ $st = 0 ] || { tail -n 30 "$tmp/build.log" >&2
          echo "dev.sh: building nbdkit failed (log above)" >&2; }
        rm -rf "$tmp"' EXIT
  chmod 0755 "$tmp"             # apt downloads as the _apt user
  echo "dev.sh: building nbdkit from $nbdkit_suite's source package into $prefix"
  build_nbdkit_in "$tmp" "$prefix" > "$tmp/build.log" 2>&1
  mv "$tmp/stage$prefix" "$prefix"
  grep '^dev.sh: ' "$tmp/build.log" | sed 's/^dev.sh: /  /' > "$prefix/BUILD"
  "$prefix/sbin/nbdkit" -U - memory 1M --run true &&
    "$prefix/sbin/nbdkit" -U - null --run true ||
    { rm -rf "$prefix"; echo "dev.sh: the nbdkit just built does not run" >&2; exit 1; }
)

build_nbdkit_in () {            # build_nbdkit_in TMPDIR PREFIX (under set -e)
  local tmp=$1 prefix=$2 apt=$1/apt mirror codename dsc p
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$tmp/src"
  mirror=${ZRAM_NBDKIT_MIRROR:-}
  if [ -z "$mirror" ]; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' \
               'Created-By: Packages' | awk -v c="$codename" '$2 == c { print $1; exit }')
  fi
  [ -n "$mirror" ] || {
    echo "dev.sh: no $codename mirror in this machine's apt sources: set ZRAM_NBDKIT_MIRROR"
    return 1
  }
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $nbdkit_suite main" \
    > "$apt/sources.list"
  # "#clear": the system's update hooks are not for this private index.
  cat > "$apt/apt.conf" <<CONF
Dir::Etc::sourcelist "$apt/sources.list";
Dir::Etc::sourceparts "-";
Dir::State::Lists "$apt/lists";
Dir::Cache "$apt/cache";
#clear APT::Update::Post-Invoke-Success;
CONF
  apt-get -c "$apt/apt.conf" -q update
  cd "$tmp/src"
  apt-get -c "$apt/apt.conf" -q source --download-only nbdkit
  dsc=$(echo nbdkit_*.dsc)
  echo "dev.sh: source ${dsc%.dsc} from $mirror $nbdkit_suite"
  # Debian's patches that touch configure.ac or a Makefile.am (language
  # plugins, tests, pod dates) would make "make" rerun autotools: leave
  # them out and apply the others.
  dpkg-source -x --skip-patches "$dsc" nbdkit
  cd nbdkit
  for p in $(grep -v '^#' debian/patches/series || :); do
    if grep -qE '^\+\+\+ [^[:space:]]*(configure\.ac|\.am|\.in|\.m4)([[:space:]]|$)' \
         "debian/patches/$p"; then
      echo "dev.sh: skipped Debian patch $p (build system)"
    else
      patch -p1 -s --no-backup-if-mismatch < "debian/patches/$p"
      echo "dev.sh: applied Debian patch $p"
    fi
  done
  # The server alone: no TLS, SELinux, valgrind probe or language plugin,
  # so that what is built does not depend on what happens to be installed.
  ./configure -q --prefix="$prefix" --disable-plugins \
    --without-gnutls --without-selinux --disable-valgrind \
    --without-manpages --without-bash-completions --without-iconv \
    --disable-perl --disable-python --disable-ocaml --disable-rust \
    --disable-tcl --disable-lua --disable-golang --disable-torrent \
    --disable-vddk --disable-linuxdisk --disable-libguestfs-tests \
    --without-libnbd --without-curl --without-ssh --without-libvirt \
    --without-libguestfs --without-ext2 --without-liblzma \
    --without-bzip2 --without-zlib --without-zlib-ng --without-iso \
    --without-libblkio
  # ...and of the bundled plugins only memory and null (the tests' and
  # benchmarks' baselines), each directory with what it needs first.
  for p in include common/include common/protocol common/replacements \
           common/utils server common/allocators plugins/memory plugins/null; do
    make -C "$p" -j"$(nproc)"
  done
  for p in server plugins/memory plugins/null; do
    make -C "$p" install DESTDIR="$tmp/stage"
  done
  # Not for the plugin's build, which uses the system's nbdkit.pc and header.
  rm -rf "$tmp/stage$prefix/lib/pkgconfig" "$tmp/stage$prefix"/lib/nbdkit/plugins/*.la
}

# Export NBDKIT (the server every test and "./dev.sh run" use), first in
# PATH: the system's nbdkit when it is fixed, else a cached build.
use_fixed_nbdkit () {
  local dir t0
  if [ -n "${NBDKIT:-}" ]; then
    nbdkit_is_fixed "$NBDKIT" ||
      echo "dev.sh: warning: NBDKIT=$NBDKIT is $(nbdkit_version "$NBDKIT"), older than $nbdkit_fixed: a client dying with requests in flight aborts it"
  elif nbdkit_is_fixed nbdkit; then
    NBDKIT=$(command -v nbdkit)
  else
    dir=$nbdkit_cache/nbdkit-$nbdkit_suite-$(declare -f build_nbdkit build_nbdkit_in |
                                             sha256sum | cut -c1-12)
    if [ ! -x "$dir/sbin/nbdkit" ]; then
      install_missing "${nbdkit_build_packages[@]}"
      mkdir -p "$nbdkit_cache"
      t0=$SECONDS
      # One build at a time: another dev.sh may be building the same one.
      ( flock 9
        if [ ! -x "$dir/sbin/nbdkit" ]; then build_nbdkit "$dir"; fi
      ) 9> "$nbdkit_cache/lock"
      echo "dev.sh: nbdkit ready after $((SECONDS - t0)) s"
    fi
    nbdkit_is_fixed "$dir/sbin/nbdkit" || {
      echo "dev.sh: $dir/sbin/nbdkit is not nbdkit >= $nbdkit_fixed; remove $dir" >&2
      exit 1
    }
    NBDKIT=$dir/sbin/nbdkit
  fi
  export NBDKIT PATH="$(dirname "$NBDKIT"):$PATH"
  echo "dev.sh: using $NBDKIT ($(nbdkit_version "$NBDKIT"))"
}

# build DIR [meson options...]: configure once, then build.
build () {
  local dir=$1
  shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
  ninja -C "$dir"
}

# claim_socket PATH: make PATH free for a new server.  A stale socket (no
# one listening) is removed; a socket a live server listens on, or a file
# that is not a socket, is refused: removing a live server's socket would
# strand it and its data.
claim_socket () {
  local state=0
  contrib/unix-socket-state "$1" || state=$?
  case $state in
    0) echo "dev.sh: a server is already listening on $1 (another" \
            "'./dev.sh run'?); stop it, or choose another path:" \
            "ZRAM_SOCKET=/tmp/other.sock ZRAM_CTL=/tmp/other.ctl ./dev.sh run" >&2
       exit 1 ;;
    1) rm -f "$1" ;;
    2) ;;
    3) echo "dev.sh: $1 exists and is not a socket; remove it or set ZRAM_SOCKET" >&2
       exit 1 ;;
    *) echo "dev.sh: cannot tell whether a server listens on $1; remove it" \
            "by hand if none does" >&2
       exit 1 ;;
  esac
}

cmd_run () {
  local size=${ZRAM_SIZE:-1G} sock=${ZRAM_SOCKET:-/tmp/nbdkit-zram.sock}
  local ctl=${ZRAM_CTL:-/tmp/nbdkit-zram.ctl}
  # Before installing and building: a second run must not wait minutes to
  # be refused.  Checked again just before the server starts.
  claim_socket "$sock"
  install_missing "${build_packages[@]}" "${run_packages[@]}"
  use_fixed_nbdkit
  build build
  cat <<MSG

nbdkit-zram: serving a $size compressed RAM disk on $sock (Ctrl-C stops it).
  Look at it:        nbdinfo 'nbd+unix:///?socket=$sock'
  Copy an image in:  nbdcopy disk.img 'nbd+unix:///?socket=$sock'
  As a block device: nbd-client -unix $sock /dev/nbd0 -b 4096
                     mkswap /dev/nbd0 && swapon --discard /dev/nbd0
  Statistics:        ./build/tools/nbdzramctl -s $ctl

MSG
  claim_socket "$sock"
  exec nbdkit -f -U "$sock" ./build/zram.so "$size" ctl="$ctl"
}

# Count the results of the last "meson test" in DIR into the totals.
passed=0 failed=0 skipped=0
count () {
  local line
  line=$(python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for l in open(sys.argv[1]):
    r = json.loads(l)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(ok, fail, skip)
PY
)
  set -- $line
  passed=$((passed + $1)) failed=$((failed + $2)) skipped=$((skipped + $3))
  echo "dev.sh: $dir: $1 passed, $2 failed, $3 skipped"
}

# CI keeps only the tail of the output: repeat what each failed test
# printed (its last lines) just before the totals, so that a failure can
# be read there.
failures () {
  local dir
  for dir in "$@"; do
    [ -f "$dir/meson-logs/testlog.json" ] || continue
    python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
for l in open(d + "/meson-logs/testlog.json"):
    r = json.loads(l)
    if r["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        continue
    print("dev.sh: FAILED in %s: %s (%s, %.1f s); its last lines:"
          % (d, r["name"], r["result"], r.get("duration", 0)))
    out = (r.get("stdout") or "") + (r.get("stderr") or "")
    for line in out.splitlines()[-25:]:
        print("    " + line)
PY
  done
}

# suite DIR "meson options" [meson test args...]
suite () {
  local dir=$1 opts=$2
  shift 2
  # shellcheck disable=SC2086
  if ! build "$dir" $opts; then
    echo "dev.sh: $dir: build failed"
    failed=$((failed + 1))
    return
  fi
  meson test -C "$dir" --num-processes 2 --print-errorlogs "$@" || :
  count "$dir"
}

# promtool checks the metrics' format in the tests.  Debian ships it only
# inside its prometheus server package, whose installation would start a
# Prometheus server: unpack the tool alone into the cache instead, and put
# it in PATH.  A promtool already in PATH is used as it is.
use_promtool () {
  local dir=$nbdkit_cache/promtool tmp
  command -v promtool >/dev/null && return 0
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    mkdir -p "$nbdkit_cache"
    tmp=$(mktemp -d "$nbdkit_cache/promtool.XXXXXX")
    if ( cd "$tmp" && apt-get download -q prometheus >/dev/null &&
         dpkg-deb -x prometheus_*.deb root && rm -rf "$dir" &&
         mkdir -p "$dir/usr/bin" &&
         mv root/usr/bin/promtool "$dir/usr/bin/" ); then
      echo "dev.sh: promtool unpacked into $dir"
    else
      echo "dev.sh: could not fetch promtool; the metrics tests check the format without it"
    fi
    rm -rf "$tmp"
  fi
  [ -x "$dir/usr/bin/promtool" ] && export PATH="$dir/usr/bin:$PATH"
  return 0
}

cmd_test () {
  local guest=()
  [ -f tests/guest/packages.txt ] && mapfile -t guest < <(grep -v '^#' tests/guest/packages.txt)
  install_missing "${build_packages[@]}" "${test_packages[@]}" "${guest[@]}"
  use_fixed_nbdkit
  use_promtool
  suite build ""
  # The sanitizer builds run everything but the slow guest VM (the plugin
  # runs inside the guest there, unsanitized) and the benchmark smoke runs.
  suite build-asan "-Db_sanitize=address,undefined -Db_lundef=false" \
    --no-suite slow --no-suite bench-smoke
  suite build-tsan "-Db_sanitize=thread -Db_lundef=false" \
    --no-suite slow --no-suite bench-smoke
  failures build build-asan build-tsan
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
}

cmd_nbdkit () {
  use_fixed_nbdkit >&2
  echo "$NBDKIT"
}

case "${1:-}" in
  run) cmd_run ;;
  test) cmd_test ;;
  nbdkit) cmd_nbdkit ;;
  *) echo "usage: $0 run|test|nbdkit" >&2; exit 2 ;;
esac
