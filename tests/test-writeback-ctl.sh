#!/usr/bin/env bash
# Writeback through the plugin: backing=PATH on a sparse file, a
# daemonised nbdkit, data written by a real client.  After "idle all" and
# "nbdzramctl writeback type=idle" the pool is empty and the file holds the
# pages, compressed and packed (fewer blocks than pages); the data reads
# back the same (from the file); bd_stat counts it in the kernel's format;
# trimming gives the file its space back; a corrupted store gives EIO,
# counted in bd_checksum_errors and the metrics; a reset gives back the
# rest.  Bad backing= values stop the start with a clear
# message; a device without a store refuses writeback (ENODEV).
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdsh python3
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir

# Bad stores: the start fails with the reason, before the fork.
refused_start "backing: backing store '$tmpdir/missing': No such file or directory" \
  backing="$tmpdir/missing"
refused_start "not a regular file or block device" backing="$tmpdir"
refused_start "not a regular file or block device" backing=/dev/null
# The kernel's files look regular but are not storage: /proc/PID/mem is
# a process's memory (size 0, which ftruncate does not change), a sysfs
# file a setting.
refused_start "a file of the kernel's" backing=/proc/self/mem
if [ -f /sys/kernel/mm/transparent_hugepage/enabled ]; then
  refused_start "a file of the kernel's" \
    backing=/sys/kernel/mm/transparent_hugepage/enabled
fi
refused_start "cannot connect to the NBD server" \
  backing="nbd+unix:///?socket=$tmpdir/nosock"
refused_start "unknown URI scheme" backing=ftp://localhost/export
[ ! -e "$tmpdir/missing" ] || fail "a missing store was created"

# A store in use by another server is refused.
: >"$tmpdir/store"
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M recomp_policy=off \
  backing="$tmpdir/store" ctl="$tmpdir/ctl"
[ "$(stat -c %s "$tmpdir/store")" = $((64 << 20)) ] ||
  fail "the empty store was not grown to the device size"
refused_start "another process uses it" backing="$tmpdir/store"

# The space checks need a file system that punches holes.
punch=1
head -c 65536 /dev/urandom >"$tmpdir/probe" && sync "$tmpdir/probe"
if ! fallocate -p -o 0 -l 65536 "$tmpdir/probe" 2>/dev/null ||
   [ "$(du -k "$tmpdir/probe" | cut -f1)" -ge 64 ]; then
  echo "note: $tmpdir does not punch holes: store space checks skipped"
  punch=0
fi

uri=$(uri_of "$tmpdir/sock")
c=("$ctl" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }
alloc_kib () { du -k "$tmpdir/store" | cut -f1; }

# 16 MiB of data with some random pages (huge) among text-like ones.
seq -f 'line %08.0f: cold pages go to the backing store' 1 400000 |
  head -c 12M >"$tmpdir/data"
head -c 4M /dev/urandom >>"$tmpdir/data"
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy failed"
[ "$(stat_of backing_blocks)" = $((64 << 20 >> 12)) ] ||
  fail "backing_blocks=$(stat_of backing_blocks)"
expect 0 "${c[@]}" bd_stat
[ "$(cat "$tmpdir/out")" = "       0        0        0" ] ||
  fail "bd_stat before writeback: '$(cat "$tmpdir/out")'"

# Refusals: exit 4 or usage errors, a message, nothing changed.
refuse () {
  local want=$1
  shift
  expect 4 "${c[@]}" "$@"
  grep -q -- "$want" "$tmpdir/err" || fail "'$*': $(cat "$tmpdir/err")"
}
refuse "unknown type 'cold'" writeback type=cold
refuse "unexpected or repeated argument" writeback type=idle type=huge
refuse "max_pages 'x' is not a number" writeback type=idle max_pages=x
expect 1 "${c[@]}" writeback
grep -q "usage: writeback type=" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"

# huge first: exactly the random pages (4 MiB = 1024 pages).
expect 0 "${c[@]}" writeback type=huge
cat "$tmpdir/out"
grep -qx 'written=1024' "$tmpdir/out" || fail "huge: $(cat "$tmpdir/out")"
[ "$(stat_of huge_pages)" = 0 ] || fail "huge_pages=$(stat_of huge_pages)"

# Then everything else, after idle all, in two steps (max_pages).
expect 0 "${c[@]}" idle all
marked=$(sed -n 's/^marked=//p' "$tmpdir/out")
expect 0 "${c[@]}" writeback type=idle max_pages=100
grep -qx 'written=100' "$tmpdir/out" || fail "max_pages: $(cat "$tmpdir/out")"
expect 0 "${c[@]}" writeback idle
rest=$(sed -n 's/^written=//p' "$tmpdir/out")
[ $((rest + 100)) = "$marked" ] || fail "idle wrote $((rest + 100)) of $marked"
total=$((1024 + marked))
[ "$(stat_of bd_count)" = "$total" ] || fail "bd_count=$(stat_of bd_count), expected $total"
[ "$(stat_of compr_data_size)" = 0 ] || fail "compr_data_size=$(stat_of compr_data_size)"
kib=$(alloc_kib)
used=$(stat_of backing_blocks_used)
echo "store file: $kib KiB allocated, $used blocks used for $total pages"
# Compressed and packed: the 1024 random pages take a block each, the
# text-like ones share blocks.
[ "$used" -gt 1024 ] && [ "$used" -lt $((1024 + (total - 1024) / 4)) ] ||
  fail "$used blocks used for $total pages"
[ "$kib" -ge $((used * 4)) ] || fail "the store holds only $kib KiB"

# Read everything back from the store.
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 16M "$tmpdir/back") "$tmpdir/data" || fail "data changed"
expect 0 "${c[@]}" bd_stat
read -r bc br bw <"$tmpdir/out"
[ "$bc" = "$total" ] && [ "$br" -ge "$total" ] && [ "$bw" = "$total" ] ||
  fail "bd_stat: '$(cat "$tmpdir/out")', expected $total pages"

# Trim the first 8 MiB: their blocks and the file's space come back.
nbdsh -u "$uri" -c 'h.trim(8 << 20, 0)' || fail "trim"
left=$(stat_of bd_count)
used2=$(stat_of backing_blocks_used)
# The blocks count as free at once; the trim itself is the background
# thread's (no request waits for the store): give it 5 s.
for (( i = 0; i < 50; i++ )); do
  kib2=$(alloc_kib)
  [ "$kib2" -le $((used2 * 4 + 64)) ] && break
  sleep 0.1
done
echo "after trimming 8 MiB: bd_count $left, store file $kib2 KiB"
[ "$left" = $((total - 2048)) ] || fail "bd_count=$left after trim"
[ "$used2" -lt "$used" ] || fail "$used2 blocks used after trim, was $used"
[ "$punch" = 0 ] || [ "$kib2" -le $((used2 * 4 + 64)) ] ||
  fail "the store kept $kib2 KiB for $used2 blocks (was $kib)"
cmp <(nbdsh -u "$uri" -c 'import sys; sys.stdout.buffer.write(h.pread(8 << 20, 8 << 20))') \
    <(tail -c +$(( (8 << 20) + 1 )) "$tmpdir/data") || fail "data after trim"

# A store that returns other bytes: flip one byte in every block that
# holds data (holes stay holes).  Reads of written-back pages fail with
# EIO, counted, and never serve the bytes.
python3 - "$tmpdir/store" <<'PY' || fail "corrupting the store"
import sys
with open(sys.argv[1], 'r+b') as f:
    size = f.seek(0, 2)
    for off in range(0, size, 4096):
        f.seek(off)
        b = f.read(4096)
        if b.count(0) != len(b):
            f.seek(off + 100)
            f.write(bytes([b[100] ^ 0x20]))
PY
if nbdsh -u "$uri" -c 'h.pread(4096, 12 << 20)' 2>"$tmpdir/err"; then
  fail "a corrupted written-back page was served"
fi
grep -q "Input/output error" "$tmpdir/err" || fail "read: $(cat "$tmpdir/err")"
bad=$(stat_of bd_checksum_errors)
[ "$bad" -ge 1 ] || fail "bd_checksum_errors=$bad"
"$ctl" -s "$tmpdir/ctl" metrics | grep -qx "nbdzram_bd_checksum_errors_total{.*} $bad" ||
  fail "metrics lack nbdzram_bd_checksum_errors_total $bad"
"$ctl" -s "$tmpdir/ctl" metrics | grep -q "^nbdzram_backing_blocks_used{" ||
  fail "metrics lack nbdzram_backing_blocks_used"
"$ctl" -s "$tmpdir/ctl" metrics | grep -qx "nbdzram_backing_blocks{.*} $((64 << 20 >> 12))" ||
  fail "metrics lack the store's capacity, nbdzram_backing_blocks"

# A reset gives every block back.
expect 0 "${c[@]}" reset --force
[ "$(stat_of bd_count)" = 0 ] || fail "bd_count after reset"
[ "$punch" = 0 ] || [ "$(alloc_kib)" -le 64 ] ||
  fail "the store keeps $(alloc_kib) KiB after reset"
kill_nbdkit "$tmpdir/pid"

# Without backing=, writeback is refused.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 1M ctl="$tmpdir/ctl2"
expect 4 "$ctl" -s "$tmpdir/ctl2" writeback type=idle
grep -q "no backing store (start the server with backing=PATH or an NBD URI)" "$tmpdir/err" ||
  fail "$(cat "$tmpdir/err")"
kill_nbdkit "$tmpdir/pid2"
echo "$0: ok"
