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
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit python3
python3 -c 'import nbd' 2>/dev/null ||
  { echo "$0: SKIP: python3 module nbd (python3-libnbd) is not installed"; exit 77; }
[ -x "${NBDZRAMCTL:-}" ] || { echo "$0: SKIP: nbdzramctl not built"; exit 77; }
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: SKIP: under a sanitizer, whose runtime reserves terabytes of" \
       "address space, an address-space limit cannot be set"
  exit 77
fi
make_tmpdir
headroom_mb=${ZRAM_TEST_HEADROOM_MB:-64}
export MALLOC_ARENA_MAX=64

# --- calibration ---------------------------------------------------------
start_nbdkit "$tmpdir/cal.pid" "$tmpdir/cal.sock" 1G ctl="$tmpdir/cal.ctl"
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
       ctl="$tmpdir/ctl" 2>"$tmpdir/log"
) || fail "nbdkit did not start under ulimit -v $limit_kb: $(cat "$tmpdir/log")"
cleanup_fn "kill_nbdkit '$tmpdir/pid'"
for (( i = 0; i < 100; i++ )); do
  [ -s "$tmpdir/pid" ] && [ -S "$tmpdir/sock" ] && [ -S "$tmpdir/ctl" ] && break
  sleep 0.1
done
pid=$(cat "$tmpdir/pid")

python3 - "$tmpdir/sock" "$NBDZRAMCTL" "$tmpdir/ctl" "$pid" <<'EOF'
import errno, os, random, resource, subprocess, sys, time
import nbd

sock, ctl, ctl_sock, pid = sys.argv[1:5]
MiB = 1 << 20

def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    sys.exit(1)

def alive():
    # A daemon that died stays a zombie until whoever adopted it reaps it.
    try:
        with open('/proc/%s/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False

def status(field):
    with open('/proc/%s/status' % pid) as f:
        return int([l.split()[1] for l in f if l.startswith(field + ':')][0])

def block(seed):
    return random.Random(seed).randbytes(MiB)      # incompressible

def stats():
    r = subprocess.run([ctl, '-s', ctl_sock, 'stats'], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        time.sleep(1)           # an abort in progress takes a moment
        fail('nbdzramctl stats exited %d (%s); server %s' %
             (r.returncode, r.stderr.strip(), 'alive' if alive() else 'DEAD'))
    return dict(l.split('=', 1) for l in r.stdout.split() if '=' in l)

h = nbd.NBD()
h.connect_unix(sock)
size = h.get_size()

# 1. Write incompressible MiBs until the address space runs out.
content = {}                    # MiB index -> seed of what it holds
err = None
for i in range(size // MiB):
    try:
        h.pwrite(block(i), i * MiB)
        content[i] = i
    except nbd.Error as e:
        err = e
        failed = i
        break
if err is None:
    fail('the whole device was written; the limit was never reached')
if err.errnum != errno.ENOMEM:
    fail('write %d failed with %s, expected ENOMEM' % (failed, err))
if len(content) < 4:
    fail('only %d MiB written before ENOMEM: limit too tight' % len(content))
print('wrote %d MiB, then ENOMEM' % len(content))
# What the limit leaves is less than 1 or 2 MiB (a request buffer, a pool
# arena) but may be more than a page.  Take the rest: lower the limit to
# exactly the address space in use, as though smaller allocations had
# eaten it, so that no new mapping of any size can be made.
vm = status('VmSize') * 1024
hard = resource.prlimit(int(pid), resource.RLIMIT_AS)[1]
resource.prlimit(int(pid), resource.RLIMIT_AS, (vm, hard))
print('address space limit lowered to %d kB in use' % (vm // 1024))
# A few more attempts, from this and other worker threads, fail the same.
for j in range(8):
    try:
        h.pwrite(block(failed), failed * MiB)
    except nbd.Error as e:
        if e.errnum != errno.ENOMEM:
            fail('write after ENOMEM failed with %s' % e)

# 2. The control thread answers, with the client still connected.
# (failed_writes may stay 0: nbdkit itself may fail to allocate a
# request's buffer and answer ENOMEM before the plugin is called.)
st = stats()
print('stats: failed_writes=%s mem_used_total=%s' %
      (st['failed_writes'], st['mem_used_total']))

# 3. Trim the first half; the pool's memory is reused for new writes.
half = len(content) // 2
for i in range(half):
    h.trim(MiB, i * MiB)
    del content[i]
h.trim(MiB, failed * MiB)     # the failed write left some of its pages
for i in range(half // 2):
    seed = 1000000 + i
    try:
        h.pwrite(block(seed), i * MiB)
    except nbd.Error as e:
        fail('write %d of %d after trimming %d MiB failed: %s' %
             (i, half // 2, half, e))
    content[i] = seed
print('after trimming %d MiB, wrote %d MiB again' % (half, half // 2))

# 4. Everything acknowledged is there; trimmed space reads as zeroes.
zero = bytes(MiB)
for i in range(failed + 1):
    got = h.pread(MiB, i * MiB)
    want = block(content[i]) if i in content else zero
    if got != want:
        fail('MiB %d reads back wrong (%s)' %
             (i, 'expected zeroes' if i not in content else 'data lost'))
h.shutdown()
stats()
if not alive():
    fail('the server died')
print('data intact, server alive')
EOF
! grep -i 'thread-local\|abort' "$tmpdir/log" || fail "nbdkit logged an abort"
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || :
[ -n "$state" ] && [ "$state" != Z ] || fail "nbdkit is gone"
echo "$0: ok"
