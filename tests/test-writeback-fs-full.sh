#!/usr/bin/env bash
# Writeback into a sparse store file whose file system fills up: the
# store has free blocks, but the file system under it has no room for
# them.  writeback must stop with ENOSPC and say that the store is full
# (not EIO, "failed a write": freeing space is what fixes it), keep every
# page it could not write in RAM, serve all the data unchanged, and go on
# once space is freed.  The small file system is a tmpfs of 1 MiB mounted
# in a mount namespace of this test's own (skipped where that is not
# allowed).
# SPDX-License-Identifier: BSD-3-Clause
if [ -z "${ZRAM_TEST_MOUNT_NS:-}" ]; then
  if ! unshare -m --propagation private true 2>/dev/null; then
    echo "$0: SKIP: cannot make a mount namespace (unshare -m)"
    exit 77
  fi
  ZRAM_TEST_MOUNT_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdsh
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir

mkdir "$tmpdir/small"
mount -t tmpfs -o size=1M tmpfs "$tmpdir/small" ||
  { echo "$0: SKIP: cannot mount a tmpfs"; exit 77; }
cleanup_fn "umount '$tmpdir/small'"
: >"$tmpdir/small/store"

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M recomp_policy=off \
  backing="$tmpdir/small/store" ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
c=("$ctl" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# 8 MiB of random pages: huge, a block each, 2048 blocks for a file
# system with room for 256.
head -c 8M /dev/urandom >"$tmpdir/data"
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy failed"
expect 4 "${c[@]}" writeback type=huge
cat "$tmpdir/err"
grep -q "ENOSPC" "$tmpdir/err" && grep -q "full" "$tmpdir/err" ||
  fail "a full file system is not reported as a full store: $(cat "$tmpdir/err")"
bd=$(stat_of bd_count)
huge=$(stat_of huge_pages)
echo "bd_count=$bd huge_pages=$huge"
[ "$bd" -gt 0 ] && [ "$bd" -lt 2048 ] || fail "bd_count=$bd"
[ $((bd + huge)) = 2048 ] || fail "$bd written back + $huge in RAM != 2048 pages"
[ "$(stat_of backing_blocks_used)" = "$bd" ] ||
  fail "backing_blocks_used=$(stat_of backing_blocks_used), bd_count=$bd"
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 8M "$tmpdir/back") "$tmpdir/data" || fail "data changed"

# Trimming the pages written back frees their space on the file system:
# the next writeback goes on.
nbdsh -u "$uri" -c "h.trim($bd * 4096, 0)" || fail "trim"
expect 0 "${c[@]}" writeback type=huge max_pages=16
grep -qx 'written=16' "$tmpdir/out" || fail "after trim: $(cat "$tmpdir/out")"
cmp <(nbdsh -u "$uri" -c "import sys; sys.stdout.buffer.write(h.pread(8 << 20, 0))" |
      tail -c +$((bd * 4096 + 1))) <(tail -c +$((bd * 4096 + 1)) "$tmpdir/data") ||
  fail "data changed after the second writeback"
