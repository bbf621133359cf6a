#!/usr/bin/env bash
# The memory limit is a hard cap, and freeing needs no memory (cases 05,
# 12), through NBD and the control socket:
#  - writes refused at the limit leave mem_used_total and mem_used_max at
#    or below mem_limit;
#  - at the limit, an unaligned trim succeeds and frees its whole pages
#    (notify_free grows), leaving the partial ends as they were;
#  - an unaligned write-zeroes frees its whole pages even when its ends
#    cannot be rewritten (then it fails with ENOSPC);
#  - with the limit lifted, writes work again.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_python_nbd
requires_nbdzramctl
make_tmpdir

for pool in zs malloc; do
  start_nbdkit "$tmpdir/pid-$pool" "$tmpdir/sock-$pool" 64M pool=$pool \
    ctl="$tmpdir/ctl-$pool"
  /usr/bin/python3 - "$tmpdir/sock-$pool" "$NBDZRAMCTL" "$tmpdir/ctl-$pool" <<'EOF'
import random, subprocess, sys, nbd

sock, ctlbin, ctl = sys.argv[1:4]
P = 4096

def zctl(*args):
    return subprocess.run([ctlbin, "-s", ctl] + list(args), check=True,
                          capture_output=True, text=True).stdout

def stats():
    return {k: v for k, _, v in (l.partition("=") for l in zctl("stats").splitlines())}

def num(s, k):
    return int(s[k])

def page(i):
    """Page i's incompressible content."""
    return random.Random(i).randbytes(P)

h = nbd.NBD()
h.connect_unix(sock)

# 1. Refused writes keep the pool within the limit.
zctl("mem-limit", "1M")
limit = num(stats(), "mem_limit")
assert limit == 1 << 20, limit
refused = 0
for i in range(400):
    try:
        h.pwrite(page(i), i * P)
    except nbd.Error as e:
        assert e.errno == "ENOSPC", e
        refused += 1
    if i % 16 == 0 or refused:
        s = stats()
        assert num(s, "mem_used_total") <= limit, s
        assert num(s, "mem_used_max") <= limit, s
assert refused > 100, refused
s = stats()
assert num(s, "mem_used_total") <= limit and num(s, "mem_used_max") <= limit, s
stored = [i for i in range(400) if h.pread(P, i * P) == page(i)]
assert len(stored) == 400 - refused, (len(stored), refused)

# 2. At the limit (limit = what is used now), an unaligned trim over 33
#    stored pages succeeds, frees the 32 whole ones, keeps the ends.
zctl("mem-limit", str(num(stats(), "mem_used_total")))
freed0 = num(stats(), "notify_free")
h.trim(33 * P, 100)
s = stats()
assert num(s, "notify_free") - freed0 == 32, s
for i in range(1, 33):
    assert h.pread(P, i * P) == bytes(P), i
assert h.pread(P, 0) == page(0) and h.pread(P, 33 * P) == page(33)

# 3. Write-zeroes with unaligned ends at a limit nothing fits under: the
#    whole pages are freed first; the head end (random bytes then zeroes:
#    a small object of a class that has no span) cannot be rewritten, so
#    the request fails with ENOSPC and that page keeps its content.  (The
#    tail end, still incompressible, may reuse an empty span kept by the
#    freed pages: zeroed then, or kept.)
zctl("compact")
zctl("mem-limit", "4096")
freed0 = num(stats(), "notify_free")
first, last = 40, 60                       # pages 41..59 whole, 40 and 60 ends
try:
    h.zero((last - first) * P, first * P + 100)
    raise AssertionError("write-zeroes with ends at the limit succeeded")
except nbd.Error as e:
    assert e.errno == "ENOSPC", e
s = stats()
assert num(s, "notify_free") - freed0 == last - first - 1, s
for i in range(first + 1, last):
    assert h.pread(P, i * P) == bytes(P), i
assert h.pread(P, first * P) == page(first)
tail = h.pread(P, last * P)
assert tail == page(last) or tail == bytes(100) + page(last)[100:]
assert num(s, "mem_used_max") <= limit

# 4. Lifted, everything works again, ends included.
zctl("mem-limit", "0")
h.zero((last - first) * P, first * P + 100)
assert h.pread(100, first * P) == page(first)[:100]
assert h.pread(P - 100, last * P + 100) == page(last)[100:]
for i in range(400):
    h.pwrite(page(i), i * P)
for i in range(400):
    assert h.pread(P, i * P) == page(i), i
h.shutdown()
EOF
  kill_nbdkit "$tmpdir/pid-$pool"
done
echo "$0: ok"
