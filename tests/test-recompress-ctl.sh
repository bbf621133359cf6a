#!/usr/bin/env bash
# idle and recompress through nbdzramctl against a daemonised nbdkit with
# recomp_algorithm=: data written by a real client reads back the same
# after everything idle is recompressed; the statistics show it (pages per
# priority, bytes saved = compr_data_size before - after); stats answer
# while a recompression runs; bad commands are refused (exit 4) with a
# clear message and change nothing; a device without recompression
# algorithms refuses recompress.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir

# recomp_policy=off: the automatic policy would recompress the pages that
# "idle all" marks, racing the commands whose results are checked here.
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M level=4 \
  recomp_algorithm=zstd:3,zstd:19 recomp_policy=off ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
c=("$ctl" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# 16 MiB of text-like data.
seq -f 'line %08.0f: idle pages are recompressed with zstd' 1 400000 |
  head -c 16M >"$tmpdir/data"
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy failed"
[ "$(stat_of recomp_algorithm)" = "zstd:3,zstd:19" ] ||
  fail "recomp_algorithm=$(stat_of recomp_algorithm)"

# Refusals: exit 4, a message, nothing changed.
"${c[@]}" stats >"$tmpdir/before"
refuse () {
  local want=$1
  shift
  expect 4 "${c[@]}" "$@"
  grep -q -- "$want" "$tmpdir/err" || fail "'$*': $(cat "$tmpdir/err")"
}
refuse "usage: idle all|SECONDS" idle soon
refuse "say 'all'" idle 0
refuse "type= is required" recompress threshold=100
refuse "unknown type 'cold'" recompress type=cold
refuse "lz4 is not one of the device's recompression algorithms (zstd:3,zstd:19)" \
  recompress type=idle algo=lz4
refuse "priority 3 is not configured" recompress type=idle priority=3
# zstd is two of them: a bare name would quietly pick the weaker.
refuse "zstd is 2 of the device's recompression algorithms (zstd:3,zstd:19): name one with its level" \
  recompress type=idle algo=zstd
refuse "zstd:4 is not one of the device's recompression algorithms" \
  recompress type=idle algo=zstd:4
refuse "level 'x' in algo= is not a level" recompress type=idle algo=zstd:x
refuse "algo= and priority= exclude each other" recompress type=idle algo=zstd priority=1
# Other stray words are not told about algo= and priority=.
refuse "unexpected or repeated argument 'extra' (usage: recompress" \
  recompress type=idle extra
refuse "unexpected or repeated argument 'type=huge' (usage: recompress" \
  recompress type=idle type=huge
refuse "threshold '5000' is not a number of bytes from 0 to 4096" \
  recompress type=idle threshold=5000
"${c[@]}" stats >"$tmpdir/after"
diff <(grep -Ev '^(streams|mem_used_max)=' "$tmpdir/before") \
     <(grep -Ev '^(streams|mem_used_max)=' "$tmpdir/after") ||
  fail "a refused command changed the statistics"
# Wrong numbers of words: a usage error (exit 1) before any socket.
for args in "idle" "idle all now" "recompress"; do
  expect 1 "${c[@]}" $args
  grep -q "usage: ${args%% *} " "$tmpdir/err" || fail "$args: $(cat "$tmpdir/err")"
done

# Mark everything idle, recompress it.
expect 0 "${c[@]}" idle all
marked=$(sed -n 's/^marked=//p' "$tmpdir/out")
[ "$marked" -gt 0 ] && [ "$(stat_of idle_pages)" = "$marked" ] ||
  fail "idle all: marked $marked, idle_pages $(stat_of idle_pages)"
compr0=$(stat_of compr_data_size)

# While it runs, stats answer (the command is on a worker thread of the server).
"${c[@]}" recompress type=idle >"$tmpdir/recomp" 2>&1 &
rpid=$!
t0=$(date +%s%N)
"${c[@]}" stats >/dev/null || fail "stats during recompress"
t1=$(date +%s%N)
wait $rpid || fail "recompress: $(cat "$tmpdir/recomp")"
echo "stats took $(( (t1 - t0) / 1000000 )) ms during recompress"
[ $(( (t1 - t0) / 1000000 )) -lt 2000 ] || fail "stats waited for recompress"

saved=$(sed -n 's/^bytes_saved=//p' "$tmpdir/recomp")
recompressed=$(sed -n 's/^recompressed=//p' "$tmpdir/recomp")
compr1=$(stat_of compr_data_size)
cat "$tmpdir/recomp"
echo "compr_data_size $compr0 -> $compr1"
[ "$recompressed" -gt 0 ] || fail "nothing recompressed"
[ $((compr0 - compr1)) = "$saved" ] || fail "saved $saved, compr $compr0 -> $compr1"
[ "$(stat_of recomp_bytes_saved)" = "$saved" ] || fail "recomp_bytes_saved"
p1=$(stat_of pages_recomp1) p2=$(stat_of pages_recomp2)
[ $((p1 + p2)) = "$recompressed" ] || fail "pages_recomp $p1 + $p2 != $recompressed"

# The first success stops at zstd:3 (as zram does); a second run tries
# zstd:19 on those pages; a third finds nothing left (top priority or
# incompressible).  The data is intact.
expect 0 "${c[@]}" recompress type=idle
cat "$tmpdir/out"
a=$(sed -n 's/^attempted=//p' "$tmpdir/out")
r=$(sed -n 's/^recompressed=//p' "$tmpdir/out")
i=$(sed -n 's/^incompressible=//p' "$tmpdir/out")
[ "$a" = "$p1" ] && [ $((r + i)) = "$a" ] || fail "second run: $(cat "$tmpdir/out")"
[ "$(stat_of incompressible_pages)" = "$i" ] || fail "incompressible_pages"
expect 0 "${c[@]}" recompress type=idle
grep -qx 'attempted=0' "$tmpdir/out" || fail "third run: $(cat "$tmpdir/out")"
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 16M "$tmpdir/back") "$tmpdir/data" || fail "data changed"
# Reading it ended idleness.
[ "$(stat_of idle_pages)" = 0 ] || fail "idle_pages after reading: $(stat_of idle_pages)"
expect 0 "${c[@]}" recompress type=huge max_pages=10

# algo=zstd:19 names the second: rewritten pages go straight to
# priority 2.
nbdcopy <(head -c 1M "$tmpdir/data") "$uri" || fail "nbdcopy of 1M"
p1=$(stat_of pages_recomp1) p2=$(stat_of pages_recomp2)
expect 0 "${c[@]}" idle all
expect 0 "${c[@]}" recompress type=idle algo=zstd:19
r=$(sed -n 's/^recompressed=//p' "$tmpdir/out")
[ "$r" -gt 0 ] && [ "$(stat_of pages_recomp1)" = "$p1" ] &&
  [ "$(stat_of pages_recomp2)" = $((p2 + r)) ] ||
  fail "algo=zstd:19: $(cat "$tmpdir/out"); pages_recomp1 $p1 -> $(stat_of pages_recomp1), pages_recomp2 $p2 -> $(stat_of pages_recomp2)"
kill_nbdkit "$tmpdir/pid"

# Without recomp_algorithm=, recompress is refused.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 1M ctl="$tmpdir/ctl2"
expect 4 "$ctl" -s "$tmpdir/ctl2" recompress type=idle
grep -q "no recompression algorithm (start it with recomp_algorithm=" "$tmpdir/err" ||
  fail "$(cat "$tmpdir/err")"
expect 0 "$ctl" -s "$tmpdir/ctl2" idle 60
kill_nbdkit "$tmpdir/pid2"
echo "$0: ok"
