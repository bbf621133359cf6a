#!/usr/bin/env bash
# A reserve that cannot be filled must make the start command fail with a
# message, before nbdkit forks (issue 11).  The reserve is filled in
# .after_fork; before the fix a daemonised start with a reserve that did
# not fit exited 0, and the server died at once with its error in syslog
# (all a user saw was a dead server).  And a reserve larger than the
# machine can give must be refused, not populated and locked until the
# OOM killer picks some process.
#   1. a reserve larger than the address space 'ulimit -v' leaves
#   2. a reserve of more than half the memory available (MemAvailable),
#      also under the 'ulimit -v' of 1., so that a server without the
#      check fails to map it (after 256 MiB) rather than fill the machine
#   3. a small reserve under the same limit still starts and serves
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_python_nbd
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: SKIP: under a sanitizer, whose runtime reserves terabytes of" \
       "address space, an address-space limit cannot be set"
  exit 77
fi
if [ "$(id -u)" != 0 ] && [ "$(ulimit -l)" != unlimited ]; then
  echo "$0: SKIP: needs root or an unlimited 'ulimit -l' for mlock=true"
  exit 77
fi
make_tmpdir
export MALLOC_ARENA_MAX=4

# The address space of the same server with no reserve, started.
start_nbdkit "$tmpdir/cal.pid" "$tmpdir/cal.sock" 4G mlock=true reserve=0
base_kb=$(awk '/^VmPeak:/ { print $2 }' "/proc/$(cat "$tmpdir/cal.pid")/status")
kill_nbdkit "$tmpdir/cal.pid"
echo "calibration: VmPeak $base_kb kB"

# expect_refused NAME WANT ULIMIT_KB PARAMS...: a daemonised start must
# exit non-zero with a message matching WANT and leave no server.
expect_refused () {
  local name=$1 want=$2 lim=$3 rc=0
  shift 3
  rm -f "$tmpdir/$name.pid"
  ( ulimit -v "$lim"
    exec nbdkit -P "$tmpdir/$name.pid" -U "$tmpdir/$name.sock" \
      "$ZRAM_PLUGIN" "$@" ) >"$tmpdir/$name.log" 2>&1 || rc=$?
  cat "$tmpdir/$name.log"
  if [ -s "$tmpdir/$name.pid" ]; then
    sleep 1
    kill "$(cat "$tmpdir/$name.pid")" 2>/dev/null &&
      fail "$name: the server started (rc=$rc)"
    fail "$name: start exited $rc and the server died after the fork"
  fi
  [ "$rc" != 0 ] || fail "$name: start exited 0"
  grep -q -- "$want" "$tmpdir/$name.log" ||
    fail "$name: no message matching '$want'"
  echo "$name: refused (rc=$rc)"
}

# 1. 1 GiB of reserve, 256 MiB of address space to spare.
lim=$((base_kb + 256 * 1024))
expect_refused ulimit "reserve: cannot fill" "$lim" 4G mlock=true reserve=1G

# 2. Three quarters of MemAvailable (at least 64 MiB), mapped or not.
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
big_kb=$((avail_kb * 3 / 4 / 1024 * 1024))
[ "$big_kb" -ge 65536 ] || big_kb=65536
expect_refused avail "MemAvailable" "$lim" ${big_kb}K mlock=true reserve=${big_kb}K

# 3. The default reserve (4G / 16, at most 64 MiB) fits.
# (test-reserve-reset-cgroup.sh: a reset that cannot have a second one.)
( ulimit -v "$lim"
  exec nbdkit -P "$tmpdir/ok.pid" -U "$tmpdir/ok.sock" "$ZRAM_PLUGIN" \
    4G mlock=true ctl="$tmpdir/ok.ctl" ) || fail "a reserve that fits: start failed"
cleanup_fn "kill_nbdkit '$tmpdir/ok.pid'"
for (( i = 0; i < 100; i++ )); do [ -S "$tmpdir/ok.sock" ] && break; sleep 0.1; done
nbdsh -u "$(uri_of "$tmpdir/ok.sock")" -c '
h.pwrite(b"\x5a" * 65536, 4096)
assert h.pread(65536, 4096) == b"\x5a" * 65536
' || fail "a reserve that fits: the server does not serve"
echo "a reserve that fits: started and served"
