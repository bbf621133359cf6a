#!/usr/bin/env bash
# The background compactor (started after nbdkit's fork) compacts on its
# own once trims leave the pool fragmented, and memory falls without any
# 'compact' command.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
[ -x "${NBDZRAMCTL:-}" ] || { echo "$0: SKIP: nbdzramctl not built"; exit 77; }
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 256M ctl="$tmpdir/ctl"
stat_field () {
  "$NBDZRAMCTL" -s "$tmpdir/ctl" stats | sed -n "s/^$1=//p"
}
# 64 MiB of half-compressible pages, then trim every other page: half of
# every span is left empty.
nbdsh -u "$(uri_of "$tmpdir/sock")" -c '
import os
page = 4096
for i in range(0, 64 * 1024 * 1024, 1024 * 1024):
    buf = bytearray()
    for p in range(256):
        buf += os.urandom(1500) + bytes([p % 7]) * (page - 1500)
    h.pwrite(bytes(buf), i)
for i in range(0, 64 * 1024 * 1024, 2 * page):
    h.trim(page, i)
'
# Left alone, the pool would stay about twice the live data; the
# compactor (polling every second) must bring it near the live size.
compr=$(stat_field compr_data_size)
for (( i = 0; i < 100; i++ )); do
  [ "$(stat_field pages_compacted)" -gt 0 ] &&
    [ "$(stat_field mem_used_total)" -lt $((compr * 3 / 2)) ] && break
  sleep 0.1
done
compacted=$(stat_field pages_compacted)
total=$(stat_field mem_used_total)
echo "after trimming half: live objects $compr bytes;" \
     "background compaction freed $compacted pages; pool $total bytes"
[ "$compacted" -gt 0 ] || fail "the background compactor never ran"
[ "$total" -lt $((compr * 3 / 2)) ] ||
  fail "pool still $total bytes for $compr bytes of live objects"
echo "$0: ok"
