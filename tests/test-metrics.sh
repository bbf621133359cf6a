#!/usr/bin/env bash
# nbdzramctl's kernel-format lines (mm_stat, io_stat, bd_stat) and its
# Prometheus metrics against a known workload: every field equals the
# stats it comes from, the layout is the kernel's ("%8llu" fields), the
# histograms count exactly the requests sent, and promtool accepts the
# exposition.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
[ -x "${NBDZRAMCTL:-}" ] || { echo "$0: SKIP: nbdzramctl was not built"; exit 77; }
make_tmpdir
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M ctl="$tmpdir/ctl"
c=("$NBDZRAMCTL" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# The workload: 10 writes of 4 pages each (1 same-filled page, 1 text
# page, 2 random pages per write), 7 reads, 3 trims (of 1 and 2 whole
# pages, and 100 bytes inside a page, which a trim leaves alone), one
# write-zeroes of 100 bytes inside a same-filled page (rewritten), one
# read past the end (refused by nbdkit before the device sees it).
nbdsh -u "$(uri_of "$tmpdir/sock")" -c '
import os
text = (b"metrics are counted per request " * 128)[:4096]
for i in range(10):
    buf = b"\x07" * 4096 + text + os.urandom(8192)
    h.pwrite(buf, i * 16384)
for i in range(7):
    h.pread(4096, i * 4096)
h.trim(4096, 0)
h.trim(8192, 16384)
h.trim(100, 32768 + 7)
h.zero(100, 32768 + 7)
try:
    h.pread(4096, h.get_size())
except nbd.Error:
    pass
'

# mm_stat: nine fields, each at least 8 wide, equal to the stats.
"${c[@]}" mm_stat >"$tmpdir/mm"
grep -Eq '^ *[0-9]{1,8}( +[0-9]+){8}$' "$tmpdir/mm" || fail "mm_stat layout: $(cat "$tmpdir/mm")"
read -r -a mm <"$tmpdir/mm"
i=0
for k in orig_data_size compr_data_size mem_used_total mem_limit mem_used_max \
         same_pages pages_compacted huge_pages huge_pages_since; do
  [ "${mm[$i]}" = "$(stat_of $k)" ] || fail "mm_stat field $i is ${mm[$i]}, $k is $(stat_of $k)"
  i=$((i + 1))
done
# The kernel's exact layout: "%8llu" fields joined by one space.
want=$(printf '%8s %8s %8s %8s %8s %8s %8s %8s %8s' "${mm[@]}")
[ "$(cat "$tmpdir/mm")" = "$want" ] || fail "mm_stat spacing: '$(cat "$tmpdir/mm")'"
[ "${mm[5]}" = 7 ] || fail "same_pages ${mm[5]}, want 7 (10 written, 2 trimmed, 1 partly zeroed)"

read -r -a io < <("${c[@]}" io_stat)
[ "${#io[@]}" = 4 ] || fail "io_stat has ${#io[@]} fields"
[ "${io[3]}" = "$(stat_of notify_free)" ] && [ "${io[3]}" = 3 ] ||
  fail "io_stat notify_free ${io[3]}, want 3 (whole pages trimmed)"
[ "$("${c[@]}" bd_stat)" = "$(printf '%8s %8s %8s' 0 0 0)" ] ||
  fail "bd_stat: '$("${c[@]}" bd_stat)'"

# Prometheus.
"${c[@]}" metrics >"$tmpdir/metrics"
if command -v promtool >/dev/null; then
  promtool check metrics <"$tmpdir/metrics" ||
    fail "promtool rejects the metrics: $(cat "$tmpdir/metrics")"
else
  echo "$0: promtool not installed: format not checked by it"
fi
metric () {   # metric NAME LABELS: the value of one sample
  awk -v k="$1{device=\"$tmpdir/ctl\"${2:-}}" '$1 == k { print $2 }' "$tmpdir/metrics"
}
[ "$(metric nbdzram_orig_data_size_bytes)" = "$(stat_of orig_data_size)" ] ||
  fail "orig_data_size: $(metric nbdzram_orig_data_size_bytes)"
[ "$(metric nbdzram_notify_free_total)" = 3 ] || fail "notify_free"
# Every statistic is a metric, the reserve's too (all 0 here: no reserve).
for km in reserve_bytes:nbdzram_reserve_bytes \
          reserve_free:nbdzram_reserve_free_bytes \
          reserve_refills:nbdzram_reserve_refills_total \
          reserve_empty:nbdzram_reserve_empty_total \
          reserve_failed:nbdzram_reserve_failed_total; do
  [ "$(metric "${km#*:}")" = "$(stat_of "${km%%:*}")" ] ||
    fail "${km#*:} is '$(metric "${km#*:}")', ${km%%:*} is $(stat_of "${km%%:*}")"
done
[ "$(metric nbdzram_request_duration_seconds_count ',op="write"')" = 10 ] ||
  fail "write count: $(metric nbdzram_request_duration_seconds_count ',op="write"')"
[ "$(metric nbdzram_request_duration_seconds_count ',op="read"')" = 7 ] ||
  fail "read count (the past-end read never reaches the device)"
[ "$(metric nbdzram_request_duration_seconds_count ',op="discard"')" = 4 ] ||
  fail "discard count (3 trims, 1 write-zeroes)"
[ "$(metric nbdzram_request_duration_seconds_bucket ',op="write",le="+Inf"')" = 10 ] ||
  fail "+Inf bucket"
# 40 pages stored by writes; the partial write-zeroes rewrote one (41).
[ "$(metric nbdzram_stored_page_size_bytes_count)" = 41 ] ||
  fail "stored page sizes: $(metric nbdzram_stored_page_size_bytes_count)"
[ "$(metric nbdzram_stored_page_size_bytes_bucket ',le="1"')" = 10 ] ||
  fail "same-filled pages (0 bytes): $(metric nbdzram_stored_page_size_bytes_bucket ',le="1"')"
# 20 random pages are stored whole: exactly 4096 each, so the 2048 bucket
# holds the other 21 and the 4096 bucket all 41.
[ "$(metric nbdzram_stored_page_size_bytes_bucket ',le="2048"')" = 21 ] ||
  fail "2048 bucket: $(metric nbdzram_stored_page_size_bytes_bucket ',le="2048"')"
# The background policies: compaction always runs; recompression does
# not (no recomp_algorithm), and says so with zeroes.
[ "$(metric nbdzram_compact_policy_rounds_total)" -ge 0 ] 2>/dev/null ||
  fail "compact policy rounds: $(metric nbdzram_compact_policy_rounds_total)"
[ "$(metric nbdzram_recomp_policy_pages_total)" = 0 ] ||
  fail "recomp policy pages: $(metric nbdzram_recomp_policy_pages_total)"
[ "$(stat_of recomp_policy)" = 0 ] || fail "recomp_policy=$(stat_of recomp_policy)"
# CPU times are in seconds (Prometheus's base unit), from the stats' ms
# (read after the metrics: the count can only have grown since).
sec=$(metric nbdzram_compact_policy_cpu_seconds_total)
ms=$(stat_of compact_policy_cpu_ms)
[[ $sec =~ ^[0-9]+\.[0-9]{3}$ ]] && (( 10#${sec/./} <= ms )) ||
  fail "compact policy CPU: $sec s, against $ms ms in the stats"
[ "$(metric nbdzram_recomp_policy_yielded_total)" = 0 ] ||
  fail "recomp policy yielded: $(metric nbdzram_recomp_policy_yielded_total)"
# lz4's level is its acceleration: 1 by default.
grep -q '^nbdzram_info{device=".*",algorithm="lz4",level="1",pool="zs"} 1$' "$tmpdir/metrics" ||
  fail "info metric"
echo "$0: ok"
