#!/usr/bin/env bash
# The automatic recompression policy through the real plugin: its bad
# parameters are refused with errors that name them; with recomp_algorithm
# it recompresses idle pages by itself (no command), the statistics and
# the debug log say so, and every byte reads back; recomp_policy=off and a
# device without a secondary algorithm leave the pages alone.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
requires_nbdzramctl
make_tmpdir

expect_error () {
  local want=$1
  shift
  if run_nbdkit -U - "$ZRAM_PLUGIN" "$@" --run true 2>"$tmpdir/err"; then
    fail "nbdkit accepted: $*"
  fi
  grep -q -- "$want" "$tmpdir/err" ||
    fail "error for '$*' lacks '$want': $(cat "$tmpdir/err")"
}
R=recomp_algorithm=zstd:3
expect_error "recomp_policy: recompression needs a secondary algorithm; give recomp_algorithm=" 64M recomp_policy=on
expect_error "recomp_policy: expected on or off, not 'maybe'" 64M $R recomp_policy=maybe
expect_error "recomp_age: 0 seconds is out of range" 64M $R recomp_age=0
expect_error "recomp_age" 64M $R recomp_age=soon
expect_error "recomp_age" 64M $R recomp_age=-5
expect_error "recomp_budget: '0' is not a share of one core between 0.1 and 100" 64M $R recomp_budget=0
expect_error "recomp_budget: '101' is not a share" 64M $R recomp_budget=101
expect_error "recomp_budget: '5x' is not a share" 64M $R recomp_budget=5x
expect_error "recomp_budget: '0.05' is not a share" 64M $R recomp_budget=0.05
expect_error "recomp_soft_limit: '100.5' is not a percentage of mem_limit" 64M $R recomp_soft_limit=100.5
expect_error "recomp_rate" 64M $R recomp_rate=-1
expect_error "recomp_rate: 1099511627777 pages a second is too many" 64M $R recomp_rate=1099511627777
# Settings of a policy that cannot run.
expect_error "recomp_age: applies to the recompression policy, which needs a secondary algorithm" 64M recomp_age=60
expect_error "recomp_budget: applies to the recompression policy, but recomp_policy=off" 64M $R recomp_policy=off recomp_budget=5
# Good values start.  (A daemon rather than --run: the command --run
# starts would inherit a sanitizer preload meant for nbdkit alone.)
st () { "$NBDZRAMCTL" -s "$tmpdir/ctl" stats | sed -n "s/^$1=//p"; }
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M $R recomp_policy=on \
  recomp_age=1 recomp_budget=2.5% recomp_rate=0 recomp_soft_limit=0 \
  ctl="$tmpdir/ctl"
[ "$(st recomp_policy)" = 1 ] || fail "good policy parameters: no policy"
kill_nbdkit "$tmpdir/pid"
rm -f "$tmpdir/pid" "$tmpdir/sock"

# 16 MiB of text-like pages (lz4 about 2x, zstd better), written, then left
# alone: with recomp_age=1 the policy finds them within seconds.
write_data () {
  nbdsh -u "$(uri_of "$1")" -c '
import random
random.seed(12)
words = [w.encode() + b" " for w in
         "zram page idle slot pool class span lz4 zstd write read trim the of and".split()]
data = bytearray()
while len(data) < 16 * 1024 * 1024:
    data += random.choice(words)
data = bytes(data[:16 * 1024 * 1024])
h.pwrite(data, 0)
open("'"$tmpdir"'/data", "wb").write(data)
'
}
verify_data () {
  nbdsh -u "$(uri_of "$1")" -c '
want = open("'"$tmpdir"'/data", "rb").read()
assert h.pread(len(want), 0) == want, "data changed"
'
}

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" -v --log=stderr 64M $R recomp_age=1 \
  recomp_budget=50 ctl="$tmpdir/ctl" 2>"$tmpdir/log"
[ "$(st recomp_policy)" = 1 ] || fail "recomp_policy=$(st recomp_policy) with recomp_algorithm"
write_data "$tmpdir/sock"
compr0=$(st compr_data_size)
# The policy's counts move at the end of each round.
for (( i = 0; i < 300; i++ )); do
  [ "$(st recomp_attempts)" -ge 4096 ] &&
    [ "$(st recomp_policy_pages)" = "$(st recomp_successes)" ] && break
  sleep 0.1
done
pages=$(st recomp_policy_pages) rounds=$(st recomp_policy_rounds)
cpu=$(st recomp_policy_cpu_ms) compr=$(st compr_data_size)
echo "by itself: $rounds rounds, $pages pages stored smaller, $cpu ms CPU;" \
     "compr_data_size $compr0 -> $compr; attempts $(st recomp_attempts)"
[ "$(st recomp_attempts)" -ge 4096 ] || fail "not every page was attempted"
[ "$pages" -gt 2048 ] && [ "$pages" = "$(st recomp_successes)" ] ||
  fail "policy pages $pages, recomp_successes $(st recomp_successes)"
[ "$rounds" -ge 1 ] || fail "no round counted"
[ "$compr" -lt "$compr0" ] || fail "compr_data_size did not fall"
verify_data "$tmpdir/sock"
grep -q "recompress: round [0-9]*[^:]*: idle >= .* recompressed [1-9]" "$tmpdir/log" ||
  fail "no debug line per round in the log"
kill_nbdkit "$tmpdir/pid"

# Near mem_limit the age (an hour here) no longer matters: with the pool
# at 95 % of the limit, the policy recompresses at once (urgent rounds),
# and with compaction the pool falls below the soft limit (90 %).
rm -f "$tmpdir/pid" "$tmpdir/sock"
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M $R recomp_age=3600 \
  recomp_budget=50 ctl="$tmpdir/ctl"
write_data "$tmpdir/sock"
sleep 1.5                       # older than the urgent age (1 s)
used=$(st mem_used_total)
limit=$((used * 100 / 95))
"$NBDZRAMCTL" -s "$tmpdir/ctl" mem-limit "$limit" >/dev/null ||
  fail "cannot set mem-limit $limit"
for (( i = 0; i < 300; i++ )); do
  [ "$(st recomp_policy_urgent)" -ge 1 ] &&
    [ "$(st mem_used_total)" -lt $((limit / 1000 * 900)) ] && break
  sleep 0.1
done
echo "near the limit: pool $used -> $(st mem_used_total) of limit $limit;" \
     "$(st recomp_policy_urgent) urgent rounds, $(st recomp_policy_pages) pages"
[ "$(st recomp_policy_urgent)" -ge 1 ] || fail "no urgent round near mem_limit"
[ "$(st mem_used_total)" -lt $((limit / 1000 * 900)) ] ||
  fail "pool still $(st mem_used_total) of limit $limit"
verify_data "$tmpdir/sock"
kill_nbdkit "$tmpdir/pid"

# Off, and without a secondary algorithm: nothing happens by itself.
for params in "$R recomp_policy=off" ""; do
  rm -f "$tmpdir/pid" "$tmpdir/sock"
  # shellcheck disable=SC2086
  start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M $params ctl="$tmpdir/ctl"
  [ "$(st recomp_policy)" = 0 ] || fail "recomp_policy=$(st recomp_policy) with '$params'"
  write_data "$tmpdir/sock"
  sleep 3
  [ "$(st recomp_attempts)" = 0 ] && [ "$(st recomp_policy_rounds)" = 0 ] ||
    fail "pages recompressed with '$params'"
  kill_nbdkit "$tmpdir/pid"
done
echo "$0: ok"
