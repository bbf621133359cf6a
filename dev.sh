#!/usr/bin/env bash
# nbdkit-zram: one entry point for a fresh Debian 12 machine.
#
#   ./dev.sh run    install what is missing, build, serve a 1 GiB device
#   ./dev.sh test   install what is missing, build, run the whole suite
#                   (plain build, then ASan+UBSan, then TSan)
#
# Runs as root, or as a user with sudo (used only for apt-get).
# SPDX-License-Identifier: BSD-3-Clause
set -euo pipefail
cd "$(dirname "$0")"
# Debian's python3 first: python3-libnbd (nbdsh) is installed for it.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

build_packages=(meson ninja-build pkg-config gcc libc6-dev nbdkit
                nbdkit-plugin-dev liburcu-dev liblz4-dev libzstd-dev perl)
run_packages=(libnbd-bin)
test_packages=(libnbd-dev libnbd-bin python3-libnbd fio spin valgrind clang
               libclang-rt-14-dev e2fsprogs util-linux fuse3 bc procps kmod
               systemd)

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

cmd_test () {
  local guest=()
  [ -f tests/guest/packages.txt ] && mapfile -t guest < <(grep -v '^#' tests/guest/packages.txt)
  install_missing "${build_packages[@]}" "${test_packages[@]}" "${guest[@]}"
  suite build ""
  # The sanitizer builds run everything but the slow guest VM (the plugin
  # runs inside the guest there, unsanitized) and the benchmark smoke runs.
  suite build-asan "-Db_sanitize=address,undefined -Db_lundef=false" \
    --no-suite slow --no-suite bench-smoke
  suite build-tsan "-Db_sanitize=thread -Db_lundef=false" \
    --no-suite slow --no-suite bench-smoke
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
}

case "${1:-}" in
  run) cmd_run ;;
  test) cmd_test ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
