#!/usr/bin/env bash
# No cliff at the memory limit (issue 14): a device with mem_limit=8M and a
# backing file, started daemonised, is filled sequentially through NBD with
# three times the limit of compressible-but-not-trivial data (about twice
# the limit once compressed).  With the writeback policy: zero failed
# writes, the pool within the limit, pages in the store, every byte reads
# back.  Without it (writeback_policy=off) the same copy fails, which is
# what the policy is for.  Also: writeback_limit and the policy's
# parameters at start, nbdzramctl writeback-limit[-enable] (and bad
# values), and the policy's metrics.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdsh /usr/bin/python3
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir

# 24 MiB: each 4 KiB page has 40 % random bytes among text, so lz4 halves it.
/usr/bin/python3 - "$tmpdir/data" <<'PY'
import os, sys
text = b"cold pages go to the store before any write fails; "
with open(sys.argv[1], "wb") as f:
    for p in range(6144):
        page = bytearray((text * 90)[:4096])
        rnd = os.urandom(1640)
        for i in range(0, 1640, 40):
            page[i * 2 + p % 7:i * 2 + p % 7 + 40] = rnd[i:i + 40]
        f.write(page[:4096])
PY
[ "$(stat -c %s "$tmpdir/data")" = $((24 << 20)) ] || fail "data size"

# Bad parameters: the start fails with the reason.
: >"$tmpdir/bad-store"
refused_start "writeback_age: the writeback policy needs a backing store" \
  writeback_age=60
refused_start "writeback_policy: the writeback policy needs a backing store" \
  writeback_policy=on
refused_start "writeback_age: 'soon' is not a number of seconds" \
  backing="$tmpdir/bad-store" writeback_age=soon
refused_start "writeback_low: 95.0 % must be below writeback_high" \
  backing="$tmpdir/bad-store" writeback_low=95
refused_start "writeback_high: '120' is not a percentage" \
  backing="$tmpdir/bad-store" writeback_high=120
refused_start "writeback_rate: '1' is not a size a second" \
  backing="$tmpdir/bad-store" writeback_rate=1
refused_start "writeback_wait: 70000 milliseconds is too many" \
  backing="$tmpdir/bad-store" writeback_wait=70000
refused_start "writeback_limit: '-1' is not a number of 4 KiB blocks" \
  writeback_limit=-1
refused_start "applies to the writeback policy, but writeback_policy=off" \
  backing="$tmpdir/bad-store" writeback_policy=off writeback_age=5

stat_of () { "$ctl" -s "$1" stats | sed -n "s/^$2=//p"; }

# Without the policy: the copy hits the limit and fails.
: >"$tmpdir/store0"
start_nbdkit "$tmpdir/pid0" "$tmpdir/sock0" 32M mem_limit=8M \
  backing="$tmpdir/store0" writeback_policy=off ctl="$tmpdir/ctl0"
if nbdcopy "$tmpdir/data" "$(uri_of "$tmpdir/sock0")" 2>"$tmpdir/err0"; then
  fail "without the policy, 24 MiB fitted under mem_limit=8M: the data is too compressible for this test"
fi
f0=$(stat_of "$tmpdir/ctl0" failed_writes)
echo "without the policy: failed_writes=$f0"
[ "$f0" -gt 0 ] || fail "nbdcopy failed but no write did"
[ "$(stat_of "$tmpdir/ctl0" wb_policy)" = 0 ] || fail "wb_policy=1 when off"
kill_nbdkit "$tmpdir/pid0"

# With it (the default with backing=): no failed write at all.
: >"$tmpdir/store"
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 32M mem_limit=8M \
  backing="$tmpdir/store" ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
c=("$ctl" -s "$tmpdir/ctl")
[ "$(stat_of "$tmpdir/ctl" wb_policy)" = 1 ] || fail "wb_policy is not running"
start=$(date +%s.%N)
nbdcopy --flush "$tmpdir/data" "$uri" || fail "nbdcopy failed with the policy on"
end=$(date +%s.%N)
"${c[@]}" stats >"$tmpdir/stats"
get () { sed -n "s/^$1=//p" "$tmpdir/stats"; }
printf 'with the policy: 24 MiB in %.2f s; failed_writes=%s bd_count=%s mem_used_max=%s room_waits=%s room_failed=%s policy rounds=%s pages=%s urgent=%s\n' \
  "$(echo "$end - $start" | bc)" "$(get failed_writes)" "$(get bd_count)" \
  "$(get mem_used_max)" "$(get wb_room_waits)" "$(get wb_room_failed)" \
  "$(get wb_policy_rounds)" "$(get wb_policy_pages)" "$(get wb_policy_urgent)"
[ "$(get failed_writes)" = 0 ] || fail "failed_writes=$(get failed_writes)"
[ "$(get wb_room_failed)" = 0 ] || fail "wb_room_failed=$(get wb_room_failed)"
[ "$(get bd_count)" -gt 0 ] || fail "nothing was written back"
[ "$(get mem_used_max)" -le $((8 << 20)) ] || fail "mem_used_max=$(get mem_used_max)"
[ "$(get wb_policy_pages)" -gt 0 ] && [ "$(get wb_policy_urgent)" -gt 0 ] ||
  fail "the policy's counters: $(grep wb_policy "$tmpdir/stats")"
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 24M "$tmpdir/back") "$tmpdir/data" || fail "data changed"

# The metrics, in the existing style.
expect 0 "$ctl" -s "$tmpdir/ctl" metrics
for m in nbdzram_writeback_policy_pages_total nbdzram_writeback_policy_rounds_total \
         nbdzram_writeback_policy_urgent_rounds_total nbdzram_writeback_room_waits_total \
         nbdzram_writeback_limit_blocks nbdzram_writeback_limit_enabled; do
  grep -q "^$m{" "$tmpdir/out" || fail "metric $m missing"
done

# writeback-limit through nbdzramctl: bad values change nothing.
expect 0 "${c[@]}" writeback-limit 3
expect 0 "${c[@]}" writeback-limit-enable 1
for bad in -1 abc 4503599627370497 1.5 ''; do
  rc=0
  "${c[@]}" writeback-limit "$bad" >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  [ "$rc" != 0 ] || fail "writeback-limit '$bad' accepted"
  [ -s "$tmpdir/err" ] || fail "writeback-limit '$bad': no message"
done
expect 4 "${c[@]}" writeback-limit-enable 2
grep -q "usage: writeback_limit_enable 0|1" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"
expect 1 "${c[@]}" writeback-limit
[ "$(stat_of "$tmpdir/ctl" writeback_limit)" = 3 ] &&
  [ "$(stat_of "$tmpdir/ctl" writeback_limit_enable)" = 1 ] ||
  fail "the limit changed: $("${c[@]}" stats | grep writeback_limit)"
before=$(stat_of "$tmpdir/ctl" backing_blocks_used)
expect 0 "${c[@]}" idle all
expect 4 "${c[@]}" writeback type=idle
grep -q "writeback limit is used up after" "$tmpdir/err" ||
  fail "$(cat "$tmpdir/err")"
[ "$(stat_of "$tmpdir/ctl" backing_blocks_used)" = $((before + 3)) ] ||
  fail "3 blocks of budget: backing_blocks_used $before -> $(stat_of "$tmpdir/ctl" backing_blocks_used)"
kill_nbdkit "$tmpdir/pid"

# writeback_limit= at start enables the limit; with writeback_age=1 the
# policy writes idle pages back by itself, up to the limit.
: >"$tmpdir/store2"
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 32M backing="$tmpdir/store2" \
  writeback_age=1 writeback_limit=200 ctl="$tmpdir/ctl2"
[ "$(stat_of "$tmpdir/ctl2" writeback_limit)" = 200 ] &&
  [ "$(stat_of "$tmpdir/ctl2" writeback_limit_enable)" = 1 ] ||
  fail "writeback_limit=200 at start: $("$ctl" -s "$tmpdir/ctl2" stats | grep writeback_limit)"
nbdcopy <(head -c 4M "$tmpdir/data") "$(uri_of "$tmpdir/sock2")" || fail "nbdcopy 4M"
for (( i = 0; i < 100; i++ )); do
  [ "$(stat_of "$tmpdir/ctl2" backing_blocks_used)" = 200 ] && break
  sleep 0.1
done
sleep 0.5
[ "$(stat_of "$tmpdir/ctl2" backing_blocks_used)" = 200 ] &&
  [ "$(stat_of "$tmpdir/ctl2" writeback_limit)" = 0 ] &&
  [ "$(stat_of "$tmpdir/ctl2" wb_policy_pages)" -ge 200 ] &&
  [ "$(stat_of "$tmpdir/ctl2" wb_policy_pages)" = "$(stat_of "$tmpdir/ctl2" bd_count)" ] ||
  fail "writeback by age, limit 200: $("$ctl" -s "$tmpdir/ctl2" stats | grep -E 'bd_count|backing_blocks|writeback_limit|wb_policy')"
cmp <(nbdsh -u "$(uri_of "$tmpdir/sock2")" -c 'import sys; sys.stdout.buffer.write(h.pread(4 << 20, 0))') \
    <(head -c 4M "$tmpdir/data") || fail "data after writeback by age"
kill_nbdkit "$tmpdir/pid2"
echo "$0: ok"
