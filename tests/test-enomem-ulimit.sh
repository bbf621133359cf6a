#!/usr/bin/env bash
# Out of address space (ulimit -v), writes fail cleanly with ENOMEM,
# `nbdzramctl stats` still answers, the server stays up, and after trims
# it accepts writes again, with every byte it acknowledged intact
# (issue 9).  Before the fix, the control thread's first command (its
# first RCU read lock) made glibc abort the server: "cannot allocate
# memory for thread-local data" (case 02); this test then fails at
# "nbdzramctl stats exited 5".
#
# The limit is the address space of a calibration run of the same server
# (started, one connection, one write: threads, stacks and malloc arenas
# in place) plus ZRAM_TEST_HEADROOM_MB for data, so the server starts and
# serves, and runs out well before the device is full.
#
# Both runs let glibc give every thread its own malloc arena
# (MALLOC_ARENA_MAX=64, more than the server's threads), as it does on a
# machine with enough cores.  Each arena reserves 64 MiB of address space
# at its thread's first malloc; with glibc's default of 8 per core (16
# here) nbdkit's 16 worker threads raced for them, and the footprint after
# start varied from 0.66 to 1.4 GB between runs.  And once the address
# space is gone, a thread that still may make an arena cannot malloc at
# all, even when other arenas have room: that is what made the control
# thread's first, lazy, thread-local allocation abort the server.  (With
# one arena for all, MALLOC_ARENA_MAX=1, that allocation found room in the
# shared arena and the old plugin passed this test.)
#
# ZRAM_TEST_PARAMS adds plugin parameters to both runs.  With mlock=true
# (test-enomem-ulimit-reserve: the default reserve) the writes must fail
# for want of the reserve: its refill thread cannot map more, the stock
# runs out, and writes fail after reserve-wait instead of waiting or
# faulting; reserve_failed counts them (issue 11).
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_python_nbd
requires_nbdzramctl
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: SKIP: under a sanitizer, whose runtime reserves terabytes of" \
       "address space, an address-space limit cannot be set"
  exit 77
fi
params=${ZRAM_TEST_PARAMS:-}
case " $params " in
*" mlock=true "*)
  if [ "$(id -u)" != 0 ] && [ "$(ulimit -l)" != unlimited ]; then
    echo "$0: SKIP: needs root or an unlimited 'ulimit -l' for mlock=true"
    exit 77
  fi ;;
esac
make_tmpdir
headroom_mb=${ZRAM_TEST_HEADROOM_MB:-64}
export MALLOC_ARENA_MAX=64

# --- calibration ---------------------------------------------------------
start_nbdkit "$tmpdir/cal.pid" "$tmpdir/cal.sock" 1G ctl="$tmpdir/cal.ctl" $params
base_kb=$(python3 - "$tmpdir/cal.sock" "$(cat "$tmpdir/cal.pid")" <<'EOF'
import sys, time, nbd

def status(field):
    with open('/proc/%s/status' % sys.argv[2]) as f:
        return int([l.split()[1] for l in f if l.startswith(field + ':')][0])

h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.pwrite(b'\1' * 4096, 0)
# nbdkit starts the connection's worker threads while it already serves:
# wait until their number settles.
threads, still = status('Threads'), 0
while still < 10:
    time.sleep(0.05)
    n = status('Threads')
    still = still + 1 if n == threads else 0
    threads = n
print(status('VmPeak'))
h.shutdown()
EOF
)
kill_nbdkit "$tmpdir/cal.pid"
limit_kb=$((base_kb + headroom_mb * 1024))
echo "calibration: VmPeak ${base_kb} kB; limit ulimit -v ${limit_kb}"

# --- the server under the limit, daemonised as users run it -------------
(
  ulimit -v "$limit_kb"
  exec nbdkit -P "$tmpdir/pid" -U "$tmpdir/sock" "$ZRAM_PLUGIN" 1G \
       ctl="$tmpdir/ctl" $params 2>"$tmpdir/log"
) || fail "nbdkit did not start under ulimit -v $limit_kb: $(cat "$tmpdir/log")"
cleanup_fn "kill_nbdkit '$tmpdir/pid'"
for (( i = 0; i < 100; i++ )); do
  [ -s "$tmpdir/pid" ] && [ -S "$tmpdir/sock" ] && [ -S "$tmpdir/ctl" ] && break
  sleep 0.1
done
pid=$(cat "$tmpdir/pid")

python3 "$srcdir/enomem-client.py" --squeeze-address-space \
  "$tmpdir/sock" "$NBDZRAMCTL" "$tmpdir/ctl" "$pid"
! grep -i 'thread-local\|abort' "$tmpdir/log" || fail "nbdkit logged an abort"
case " $params " in
*" mlock=true "*)
  st=$("$NBDZRAMCTL" -s "$tmpdir/ctl" stats)
  echo "$st" | grep '^reserve_'
  n=$(echo "$st" | sed -n 's/^reserve_failed=//p')
  [ "${n:-0}" -gt 0 ] || fail "no write failed for want of the reserve" ;;
esac
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || :
[ -n "$state" ] && [ "$state" != Z ] || fail "nbdkit is gone"
echo "$0: ok"
