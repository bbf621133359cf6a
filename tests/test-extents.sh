#!/usr/bin/env bash
# Block status: never-written, trimmed and zero-filled pages are holes that
# read as zero; written pages are data.  Clients with and without
# structured replies both work.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh nbdinfo
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 1M
uri=$(uri_of "$tmpdir/sock")
nbdsh --base-allocation -u "$uri" -c '
h.pwrite(b"x" * 8192, 0)                 # pages 0-1 data
h.pwrite(bytes(4096), 4096 * 4)          # page 4 written with zeroes
h.pwrite(b"y" * 4096 * 3, 4096 * 8)      # pages 8-10 data ...
h.trim(4096, 4096 * 9)                   # ... page 9 trimmed
h.zero(4096, 4096 * 10)                  # ... page 10 write-zeroed
h.pwrite(b"z" * 100, 4096 * 12 + 50)     # page 12 partly written

entries = []
def f(metacontext, offset, e, err):
    if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
        entries.extend(e)
h.block_status(1024 * 1024, 0, f)
# Flatten to one letter per page.
pages = ""
for i in range(0, len(entries), 2):
    n, flags = entries[i], entries[i + 1]
    assert n % 4096 == 0, n
    pages += ("z" if flags == 3 else "D" if flags == 0 else "?") * (n // 4096)
assert pages.startswith("DDzzzzzzDzzzDz"), pages
assert set(pages[14:]) == {"z"}, pages

# Block status from the middle of a page and near the end.
got = []
h.block_status(10, 4096 * 12 + 7, lambda c, o, e, err: got.extend(e))
assert got == [10, 0], got              # clipped to [offset, offset+count)
got = []
h.block_status(4096, 1024 * 1024 - 4096, lambda c, o, e, err: got.extend(e))
assert got == [4096, 3], got
'
nbdinfo --map "$uri" > "$tmpdir/map"
grep -q 'hole,zero' "$tmpdir/map" || fail "nbdinfo --map shows no holes: $(cat "$tmpdir/map")"
kill_nbdkit "$tmpdir/pid"

# Without structured replies there is no block status; data still works.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" --no-sr 1M
uri=$(uri_of "$tmpdir/sock2")
nbdsh -u "$uri" -c '
assert not h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.pwrite(b"q" * 5000, 100)
assert h.pread(5000, 100) == b"q" * 5000
h.trim(8192, 0)
assert h.pread(5000, 100) == bytearray(5000)
'
nbdinfo "$uri" > "$tmpdir/info2"
grep -q 'using simple packets' "$tmpdir/info2" || fail "no-sr: $(cat "$tmpdir/info2")"
# nbdcopy falls back to copying everything when it has no block status.
nbdcopy "$uri" "$tmpdir/copy" && [ "$(stat -c %s "$tmpdir/copy")" = 1048576 ] ||
  fail "nbdcopy from a no-sr server"
echo "$0: ok"
