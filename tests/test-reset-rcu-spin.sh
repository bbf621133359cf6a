#!/usr/bin/env bash
# Model-check the reset protocol (tests/reset-rcu.pml) with spin:
#  1. safety: no reader touches a freed state, no unforced reset with a
#     connection open, no deadlock;
#  2. the same model with a one-flip grace period, or with a zram_open that
#     ignores the claim, must FAIL (the checks have teeth);
#  3. liveness: no non-progress cycle of the resetter under weak fairness.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires spin cc
make_tmpdir
cp "$srcdir/reset-rcu.pml" "$tmpdir/"
cd "$tmpdir"

# run NAME SPIN_FLAGS CC_FLAGS PAN_FLAGS: prints pan's output to NAME.out
run () {
  local name=$1
  spin $2 -a reset-rcu.pml >"$name.spin" 2>&1 || fail "spin $2 -a failed: $(cat "$name.spin")"
  cc -O2 $3 -o "pan-$name" pan.c 2>"$name.cc" || fail "cc pan.c failed: $(cat "$name.cc")"
  # pan exits non-zero when it finds an error: judged below, not here.
  timeout 120 "./pan-$name" -m3000000 $4 >"$name.out" 2>&1 || :
  grep -E "errors:|states, stored|depth reached" "$name.out" | sed "s/^/$name: /"
}

errors () { sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$1.out"; }

run safety "" "-DSAFETY" ""
[ "$(errors safety)" = 0 ] || { cat safety.out; fail "safety check found errors"; }
grep -q "max search depth too small" safety.out && fail "search depth too small"

run oneflip "-DONE_FLIP" "-DSAFETY" ""
[ "$(errors oneflip)" != "" ] && [ "$(errors oneflip)" != 0 ] ||
  fail "a one-flip grace period was not caught"
grep -q "assertion violated" oneflip.out || fail "oneflip: no assertion violation"

run noclaim "-DNO_CLAIM" "-DSAFETY" ""
[ "$(errors noclaim)" != "" ] && [ "$(errors noclaim)" != 0 ] ||
  fail "an open that ignores the claim was not caught"

run liveness "" "-DNP" "-l -f"
[ "$(errors liveness)" = 0 ] || { cat liveness.out; fail "non-progress cycle found"; }
grep -q "max search depth too small" liveness.out && fail "search depth too small"
echo "reset-rcu model: safety and liveness hold; one-flip and no-claim variants refuted"
