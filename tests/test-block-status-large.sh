#!/usr/bin/env bash
# Block status on large devices (case 01): requests of 0xffffffff,
# 0xfffff000 and odd lengths, at offsets 0, 4096, odd offsets and near the
# end of 4 GiB, 8 GiB and 1 TiB devices, over holes and data.  nbdkit 1.32
# aborted (assertion in extents_to_block_descriptors) when an extent was
# longer than the request; every reply must start at the offset, stay
# within the request, and match what was written; the server must be alive
# afterwards.  Clients without structured replies get no block status and
# keep working.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit python3
python3 -c 'import nbd' 2>/dev/null || { echo "$0: SKIP: python3-libnbd missing"; exit 77; }
make_tmpdir

for size in 4G 8G 1T; do
  start_nbdkit "$tmpdir/pid-$size" "$tmpdir/sock-$size" "$size"
  python3 - "$tmpdir/sock-$size" "$(cat "$tmpdir/pid-$size")" <<'EOF'
import os, sys, nbd

sock, pid = sys.argv[1], int(sys.argv[2])
P = 4096
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_unix(sock)
size = h.get_size()
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)

# Data: a 64 KiB run at 0, single pages around 4 GiB and in the middle, a
# run at the end; the rest is holes.
data = set()
def put(off, n):
    h.pwrite(b"d" * n, off)
    data.update(range(off // P, (off + n) // P))
put(0, 16 * P)
for off in (4 << 30, (4 << 30) - P, size // 2 + 7 * P, size - 3 * P):
    if off + P <= size:
        put(off, P)
put(size - 8 * P, 8 * P)

def check(count, off):
    got = []
    def cb(meta, o, entries, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            got.extend(entries)
    h.block_status(count, off, cb)
    assert len(got) >= 2, (count, off, got)
    pos = off
    for i in range(0, len(got), 2):
        n, flags = got[i], got[i + 1]
        assert 0 < n <= 0xffffffff, (count, off, got)
        first, last = pos // P, (pos + n - 1) // P
        if flags == 0:
            assert all(p in data for p in range(first, last + 1)), \
                ("data extent over a hole", count, off, pos, n)
        elif flags == 3:
            assert not any(first <= p <= last for p in data), \
                ("hole extent over data", count, off, pos, n)
        else:
            raise AssertionError(("flags", flags, got))
        pos += n
    # The reply covers the request from its start and never goes beyond.
    assert pos <= off + count, ("reply past the request", count, off, got)
    return got

offsets = [0, 4096, 1, 4097, 12345, 16 * P - 1, (4 << 30) - P - 3,
           size - (1 << 32) if size > (1 << 32) else 0,
           size // 2, size - 8 * P - 1, size - P, size - 7, size - 1]
for off in offsets:
    for count in (0xffffffff, 0xfffff000, 1, 7, 4095, 4097, 0x7fffffff + 3,
                  3 * P + 11):
        count = min(count, size - off)    # strict mode: within the device
        if count > 0:
            check(count, off)

# A request past the end is refused; the server stays up.
h.set_strict_mode(0)
try:
    h.block_status(P * 2, size - P, lambda *a: 0)
    raise AssertionError("block status past the end accepted")
except nbd.Error as e:
    assert e.errno == "EINVAL", e
h.set_strict_mode(nbd.STRICT_COMMANDS | nbd.STRICT_BOUNDS | nbd.STRICT_ZERO_SIZE |
                  nbd.STRICT_ALIGN)

# nbdinfo --map's request (0xffffffff from 0): the whole map adds up.
off = 0
while off < size:
    got = check(min(0xffffffff, size - off), off)
    n = sum(got[0::2])
    off += n
assert off == size

# The server is alive and the data intact.
assert h.pread(16 * P, 0) == b"d" * 16 * P
assert h.pread(8 * P, size - 8 * P) == b"d" * 8 * P
h.shutdown()

# Without structured replies there is no block status to ask for; the
# connection still serves data.
h = nbd.NBD()
h.set_request_structured_replies(False)
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_unix(sock)
assert not h.get_structured_replies_negotiated()
assert not h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
try:
    h.block_status(0xffffffff, 0, lambda *a: 0)
    raise AssertionError("block status without structured replies")
except nbd.Error:
    pass
assert h.pread(P, 0) == b"d" * P
h.shutdown()
os.kill(pid, 0)
EOF
  kill_nbdkit "$tmpdir/pid-$size"
done
echo "$0: ok"
