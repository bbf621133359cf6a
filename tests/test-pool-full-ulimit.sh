#!/usr/bin/env bash
# Freeing needs no memory, also when the system refuses memory (case 05
# with the pool full because of `ulimit -v` rather than mem_limit): after
# writes fail with ENOMEM, an unaligned trim still succeeds and frees its
# whole pages, write-zeroes frees its whole pages whatever happens to its
# ends, and the freed room takes new writes.  The server stays up.
#
# Skipped in sanitizer builds: their runtimes reserve terabytes of address
# space, which no `ulimit -v` leaves room for.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
  { echo "$0: SKIP: python3-libnbd missing"; exit 77; }
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: SKIP: ulimit -v does not fit a sanitizer runtime"
  exit 77
fi
make_tmpdir

# The client: write incompressible pages until the server runs out, or,
# with "probe", print the server's VmSize once its threads are all up.
cat > "$tmpdir/client.py" <<'EOF'
import os, random, sys, nbd

sock, pid, mode = sys.argv[1], sys.argv[2], sys.argv[3]
P = 4096
def page(i):
    return random.Random(i).randbytes(P)
def vmsize():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmSize:"):
            return int(line.split()[1])

h = nbd.NBD()
h.connect_unix(sock)
pages = h.get_size() // P
# 256 writes in flight wake every worker thread.
for i in range(256):
    h.aio_pwrite(page(i), i * P)
while h.aio_in_flight() > 0:
    h.poll(-1)
if mode == "probe":
    print(vmsize())
    sys.exit(0)

filled = None
for i in range(256, pages):
    try:
        h.pwrite(page(i), i * P)
    except nbd.Error as e:
        assert e.errno == "ENOMEM", e
        filled = i
        break
assert filled is not None, "the pool never filled: raise the device size"
print("pool full after %d pages (%d MiB)" % (filled, filled * P >> 20))
# Another write into a fresh page still fails: the pool is really full.
try:
    h.pwrite(page(filled), filled * P)
    raise AssertionError("pool not full")
except nbd.Error as e:
    assert e.errno == "ENOMEM", e

# Unaligned trim of 64 pages: the 63 whole ones are freed, ends untouched.
h.trim(64 * P, 100)
for i in range(1, 64):
    assert h.pread(P, i * P) == bytes(P), i
assert h.pread(P, 0) == page(0) and h.pread(P, 64 * P) == page(64)

# Unaligned write-zeroes: the whole pages are freed whatever the ends do.
try:
    h.zero(64 * P, 100 * P + 100)
except nbd.Error as e:
    assert e.errno == "ENOMEM", e
for i in range(101, 164):
    assert h.pread(P, i * P) == bytes(P), i

# The freed room takes new data.
for i in range(1, 64):
    h.pwrite(page(i), i * P)
for i in range(1, 64):
    assert h.pread(P, i * P) == page(i), i
assert h.pread(P, filled // 2 * P) == page(filled // 2)
h.shutdown()
os.kill(int(pid), 0)
EOF

# Measure what the server needs with a connection open, then give it that
# plus 32 MiB of address space.
start_nbdkit "$tmpdir/pid0" "$tmpdir/sock0" 1G
base_kb=$(/usr/bin/python3 "$tmpdir/client.py" "$tmpdir/sock0" "$(cat "$tmpdir/pid0")" probe)
kill_nbdkit "$tmpdir/pid0"
limit_kb=$(( base_kb + 32 * 1024 ))
echo "server VmSize $base_kb kB; running it under ulimit -v $limit_kb"

( ulimit -v "$limit_kb"; exec nbdkit -P "$tmpdir/pid" -U "$tmpdir/sock" \
    "$ZRAM_PLUGIN" 1G ) || fail "nbdkit did not start under ulimit -v $limit_kb"
cleanup_fn "kill_nbdkit '$tmpdir/pid'"
for (( i = 0; i < 100; i++ )); do
  [ -s "$tmpdir/pid" ] && [ -S "$tmpdir/sock" ] && break
  sleep 0.1
done
/usr/bin/python3 "$tmpdir/client.py" "$tmpdir/sock" "$(cat "$tmpdir/pid")" fill
echo "$0: ok"
