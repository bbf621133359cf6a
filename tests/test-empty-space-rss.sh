#!/usr/bin/env bash
# Never-written space costs no memory to use (case 06): on a fresh 1 TiB
# device, reading 64 GiB, mapping it (block status), mapping the whole
# device, and trimming and zeroing unaligned ranges spread over it must grow
# the server's VmRSS and VmPTE by less than 4 MiB each.  Reading used to
# take the slot lock (a write into the slot table) on every page: 4 MiB of
# RSS per GiB read.
#
# Memory is asserted only in a plain build: sanitizer runtimes keep freed
# memory in quarantine and shadow it, so there the test checks behaviour
# and prints the numbers, reading 8 GiB instead of 64.  ZRAM_RSS_GIB
# changes the amount read.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
  { echo "$0: SKIP: python3-libnbd missing"; exit 77; }
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 1T
enforce=1 gib=${ZRAM_RSS_GIB:-64}
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  enforce=0 gib=${ZRAM_RSS_GIB:-8}       # nothing asserted: spare the time
fi
/usr/bin/python3 - "$tmpdir/sock" "$(cat "$tmpdir/pid")" "$gib" \
    "$enforce" <<'EOF'
import sys, nbd

sock, pid, gib, enforce = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
P = 4096
LIMIT_KB = 4096

def status():
    v = {}
    for line in open("/proc/%s/status" % pid):
        k, _, rest = line.partition(":")
        if k in ("VmRSS", "VmPTE"):
            v[k] = int(rest.split()[0])
    return v

h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_unix(sock)
size = h.get_size()

# nbdkit keeps one request buffer per worker thread, as large as the
# largest request it served: 1 MiB requests, 32 in flight, so the warm-up
# below makes every thread's buffer resident before the baseline.
CHUNK = 1 << 20
bufs = [nbd.Buffer(CHUNK) for _ in range(32)]
zero = bytes(CHUNK)

def read_range(start, end, verify_every=64):
    off, n = start, 0
    while off < end:
        for b in bufs:
            if off < end:
                h.aio_pread(b, off)
                off += CHUNK
        while h.aio_in_flight() > 0:
            h.poll(-1)
        n += 1
        if n % verify_every == 0:
            assert bufs[0].to_bytearray() == zero, "never-written space not zero"

def map_range(start, end):
    off = start
    while off < end:
        got = []
        h.block_status(min(0xffffffff, end - off), off,
                       lambda m, o, e, err: got.extend(e))
        assert got[1] == 3, ("hole expected", off, got[:4])
        off += got[0]

def trim_zero(start, end, step):
    # Unaligned ends, spread one per step (a new table page each time).
    off = start
    while off + 3 * P < end:
        h.aio_trim(3 * P, off + 100)
        h.aio_zero(2 * P + 1, off + step // 2 + 7)
        h.aio_zero(100, off + step // 3 + 5)      # inside one page
        off += step
        while h.aio_in_flight() > 8:
            h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)

# Warm up: every worker thread, buffer size and code path once.
read_range(size - (256 << 20), size)
map_range(size - (4 << 30), size)
trim_zero(size - (1 << 30), size, 1 << 20)
before = status()

read_range(0, gib << 30)
after_read = status()
map_range(0, gib << 30)
map_range(0, size)
after_map = status()
trim_zero(0, size - (1 << 30), 64 << 20)          # 16k places over 1 TiB
trim_zero(0, gib << 30, 1 << 20)                  # 64k places, one per MiB
after_trim = status()

# Still all holes, and reads still zero.
map_range(0, size)
assert h.pread(P, 100) == bytes(P)

for name, s in (("read %d GiB" % gib, after_read), ("map", after_map),
                ("trim/zero", after_trim)):
    print("%-12s VmRSS %+7d kB  VmPTE %+6d kB" %
          (name, s["VmRSS"] - before["VmRSS"], s["VmPTE"] - before["VmPTE"]))
grow_rss = after_trim["VmRSS"] - before["VmRSS"]
grow_pte = after_trim["VmPTE"] - before["VmPTE"]
if enforce:
    assert grow_rss < LIMIT_KB, "VmRSS grew by %d kB" % grow_rss
    assert grow_pte < LIMIT_KB, "VmPTE grew by %d kB" % grow_pte
else:
    print("sanitizer build: memory growth printed, not asserted")
h.shutdown()
EOF
echo "$0: ok"
