#!/usr/bin/env bash
# Multi-page groups through the plugin: bad group_* parameters stop the
# start with a clear message; "group" and "dissolve" through nbdzramctl
# pack idle pages into groups and take them apart, with the statistics and
# metrics to show it, and data written by a real client reads back the
# same at every step (also after parts of it are rewritten); bad commands
# are refused and change nothing; a device without groups refuses them;
# the group policy groups by itself once pages are idle.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir

# Bad parameters: refused at start, each with its own message.
bad () {
  local want=$1
  shift
  run_nbdkit -U "$tmpdir/bad.sock" "$ZRAM_PLUGIN" 8M "$@" >"$tmpdir/bad.out" 2>&1 &&
    fail "nbdkit started with $*"
  grep -q -- "$want" "$tmpdir/bad.out" || fail "$*: $(cat "$tmpdir/bad.out")"
}
bad "group_pages: 1 is out of range; give 2 to 16" group_pages=1
bad "group_pages: 17 is out of range" group_pages=17
bad "group_algorithm: level '99' of zstd is not accepted" group_pages=16 group_algorithm=zstd:99
bad "group_algorithm: one algorithm, not a list" group_pages=16 group_algorithm=zstd:3,zstd:9
bad "group_age: 0 seconds is out of range" group_pages=16 group_age=0
bad "group_budget: '0' is not a share of one core" group_pages=16 group_budget=0
bad "group_live_min: '0' is not a whole percentage" group_pages=16 group_live_min=0
bad "group_live_min: '50.5' is not a whole percentage" group_pages=16 group_live_min=50.5
bad "group_age: applies to multi-page groups, which are off" group_age=10

# The policy waits a day: the commands below are all that groups pages.
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M group_pages=16 \
  group_algorithm=zstd:3 group_age=86400 ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
c=("$ctl" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# 16 MiB of text-like data.
seq -f 'line %08.0f: cold pages are compressed sixteen at a time' 1 400000 |
  head -c 16M >"$tmpdir/data"
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy failed"
[ "$(stat_of group_algorithm)" = "zstd:3" ] && [ "$(stat_of group_pages_max)" = 16 ] ||
  fail "group settings: $("${c[@]}" stats | grep ^group)"

refuse () {
  local want=$1
  shift
  expect 4 "${c[@]}" "$@"
  grep -q -- "$want" "$tmpdir/err" || fail "'$*': $(cat "$tmpdir/err")"
}
"${c[@]}" stats >"$tmpdir/before"
refuse "unexpected or repeated argument 'type=idle' (usage: group" group type=idle
refuse "max_pages 'x' is not a number" group max_pages=x
refuse "age '0' is not a number of seconds" group age=0
refuse "is not live_min=PERCENT from 1 to 100" dissolve live_min=0
refuse "is not live_min=PERCENT from 1 to 100" dissolve live_min=101
"${c[@]}" stats >"$tmpdir/after"
diff <(grep -Ev '^(streams|mem_used_max)=' "$tmpdir/before") \
     <(grep -Ev '^(streams|mem_used_max)=' "$tmpdir/after") ||
  fail "a refused command changed the statistics"
expect 1 "${c[@]}" dissolve live_min=50 extra
grep -q "usage: dissolve" "$tmpdir/err" || fail "dissolve usage: $(cat "$tmpdir/err")"

# Nothing is idle yet: nothing to group.
expect 0 "${c[@]}" group
grep -qx "grouped=0" "$tmpdir/out" || fail "grouped pages that were not idle"

# Everything idle, grouped: fewer bytes, same data.
expect 0 "${c[@]}" idle all
compr0=$(stat_of compr_data_size)
expect 0 "${c[@]}" group
grouped=$(sed -n 's/^grouped=//p' "$tmpdir/out")
saved=$(sed -n 's/^bytes_saved=//p' "$tmpdir/out")
compr1=$(stat_of compr_data_size)
echo "grouped $grouped pages; compr_data_size $compr0 -> $compr1 (saved $saved)"
[ "$grouped" -gt 3000 ] || fail "grouped only $grouped pages"
[ "$(stat_of group_pages)" = "$grouped" ] || fail "group_pages=$(stat_of group_pages)"
[ "$((compr0 - compr1))" = "$saved" ] || fail "bytes_saved $saved, compr went $compr0 -> $compr1"
"${c[@]}" metrics >"$tmpdir/metrics"
grep -q "^nbdzram_group_pages{.*} $grouped\$" "$tmpdir/metrics" ||
  fail "metrics lack nbdzram_group_pages $grouped"
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 16M "$tmpdir/back") "$tmpdir/data" || fail "data changed by grouping"

# Rewrite every other 32 KiB: half of each group's pages leave it.
python3 - "$uri" "$tmpdir/data" <<'PY' || fail "rewrite failed"
import sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
data = bytearray(open(sys.argv[2], "rb").read())
for off in range(0, 16 << 20, 64 << 10):
    new = bytes([(off >> 16) & 0xff]) * (32 << 10)
    h.pwrite(new, off)
    data[off:off + len(new)] = new
open(sys.argv[2], "wb").write(data)
h.shutdown()
PY
expect 0 "${c[@]}" dissolve live_min=60
pages=$(sed -n 's/^pages=//p' "$tmpdir/out")
echo "dissolve live_min=60: $(tr '\n' ' ' <"$tmpdir/out")"
[ "$pages" -gt 0 ] || fail "dissolve took no page out"
[ "$(stat_of groups_dissolved)" -gt 0 ] || fail "groups_dissolved=0"
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 16M "$tmpdir/back") "$tmpdir/data" || fail "data changed by dissolving"

# A reset keeps the group settings and frees every group.
expect 0 "${c[@]}" reset --force
[ "$(stat_of group_objects)" = 0 ] && [ "$(stat_of group_pages_max)" = 16 ] ||
  fail "after reset: $("${c[@]}" stats | grep ^group)"

# A device without groups refuses the commands.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 8M ctl="$tmpdir/ctl2"
expect 4 "$ctl" -s "$tmpdir/ctl2" group
grep -q "the device has no multi-page groups (start it with group_pages=N" "$tmpdir/err" ||
  fail "group without groups: $(cat "$tmpdir/err")"
expect 4 "$ctl" -s "$tmpdir/ctl2" dissolve
[ "$("$ctl" -s "$tmpdir/ctl2" stats | sed -n 's/^group_policy=//p')" = 0 ] ||
  fail "group_policy runs without group_pages"

# The policy by itself: pages idle for a second are grouped (the data is
# half text now, 2048 pages, and half same-filled pages, never grouped).
start_nbdkit "$tmpdir/pid3" "$tmpdir/sock3" 64M group_pages=16 group_age=1 \
  group_budget=100 ctl="$tmpdir/ctl3"
uri3=$(uri_of "$tmpdir/sock3")
nbdcopy "$tmpdir/data" "$uri3" || fail "nbdcopy to the policy's device"
for i in $(seq 60); do
  g=$("$ctl" -s "$tmpdir/ctl3" stats | sed -n 's/^group_pages=//p')
  [ "$g" -ge 2000 ] && break
  sleep 0.5
done
echo "the policy grouped $g pages"
[ "$g" -ge 2000 ] || fail "the policy grouped only $g pages in 30 s"
[ "$("$ctl" -s "$tmpdir/ctl3" stats | sed -n 's/^group_policy_pages=//p')" -gt 0 ] ||
  fail "group_policy_pages=0"
nbdcopy "$uri3" "$tmpdir/back3" || fail "nbdcopy back"
cmp <(head -c 16M "$tmpdir/back3") "$tmpdir/data" || fail "data changed by the policy"
echo "test-group-ctl: ok"
