#!/usr/bin/env python3
# The client of test-enomem-ulimit.sh and test-enomem-cgroup.sh: fill the
# device with incompressible data until writes fail with ENOMEM, check
# that `nbdzramctl stats` answers, trim half, check that writes succeed
# again and that every acknowledged byte reads back, and that the server
# is alive throughout.
#
#   enomem-client.py [--squeeze-address-space] SOCKET NBDZRAMCTL CTL PID
#
# --squeeze-address-space: after the first ENOMEM, lower the server's
# RLIMIT_AS to exactly the address space it uses (under ulimit -v).
# SPDX-License-Identifier: BSD-3-Clause
import errno, os, random, resource, subprocess, sys, time
import nbd

squeeze = sys.argv[1] == '--squeeze-address-space'
sock, ctl, ctl_sock, pid = sys.argv[1 + squeeze:5 + squeeze]
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
# Under ulimit -v, what the limit leaves is less than 1 or 2 MiB (a request buffer, a pool
# arena) but may be more than a page.  Take the rest: lower the limit to
# exactly the address space in use, as though smaller allocations had
# eaten it, so that no new mapping of any size can be made.
if squeeze:
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
