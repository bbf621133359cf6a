#!/usr/bin/env bash
# A long `recompress` (minutes on a large device with zstd:19) holds up
# nothing else: `compact` and `reset` are answered at once (they have a
# worker of their own on the control socket; before, they queued behind
# the walk and their client gave up after 60 s), a forced reset ends the
# walk, and SIGTERM makes the server exit at once (the walk stops at its
# next page) rather than after the whole device (systemd would SIGKILL),
# and a walk whose client hangs up (nbdzramctl interrupted) stops instead
# of running on for nobody, with later walks queued behind it.
# No reads while a walk runs: a read clears IDLE, and the walk would skip
# every page read.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
requires_nbdzramctl
make_tmpdir

# 64 MiB of text: zstd:19 needs ten seconds or more for it on a free core.
seq -f 'line %08.0f: recompression must not hold up a shutdown' 1 1500000 |
  head -c 64M >"$tmpdir/data"

ms_since () { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# start N: a server with the data written and marked idle, a recompress
# under way (its pid in $rpid).
start () {
  local data=${2:-$tmpdir/data}
  start_nbdkit "$tmpdir/pid$1" "$tmpdir/sock$1" 256M \
    recomp_algorithm=zstd:19 recomp_policy=off ctl="$tmpdir/ctl$1"
  c=("$NBDZRAMCTL" -s "$tmpdir/ctl$1")
  nbdcopy "$data" "$(uri_of "$tmpdir/sock$1")" || fail "nbdcopy failed"
  "${c[@]}" idle all >/dev/null || fail "idle all"
  "${c[@]}" recompress type=idle >"$tmpdir/recomp$1" 2>&1 &
  rpid=$!
  cleanup_fn "kill $rpid 2>/dev/null"
  for (( i = 0; i < 100; i++ )); do
    [ "$(stat_of recomp_attempts)" -gt 0 ] 2>/dev/null && break
    sleep 0.1
  done
  [ "$(stat_of recomp_attempts)" -gt 0 ] || fail "recompress did not start"
}
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# 1. compact, then a forced reset, while the walk runs.
start 1
t0=$(date +%s%N)
"${c[@]}" compact >/dev/null || fail "compact during recompress"
ms=$(ms_since "$t0")
echo "compact answered in $ms ms during recompress"
[ "$ms" -lt 5000 ] || fail "compact waited $ms ms for the recompression"
kill -0 $rpid 2>/dev/null || fail "recompress ended before the reset: too little data"
t0=$(date +%s%N)
"${c[@]}" reset --force >/dev/null || fail "reset during recompress"
ms=$(ms_since "$t0")
echo "reset answered in $ms ms during recompress"
[ "$ms" -lt 5000 ] || fail "reset waited $ms ms for the recompression"
wait $rpid || fail "recompress after a reset: $(cat "$tmpdir/recomp1")"
cat "$tmpdir/recomp1"
[ "$(stat_of orig_data_size)" = 0 ] || fail "the device is not empty after reset"
kill_nbdkit "$tmpdir/pid1"

# 2. SIGTERM while the walk runs.
start 2
pid=$(cat "$tmpdir/pid2")
t0=$(date +%s%N)
kill "$pid"
for (( i = 0; i < 300; i++ )); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
ms=$(ms_since "$t0")
echo "nbdkit exited $ms ms after SIGTERM during recompress"
kill -0 "$pid" 2>/dev/null && fail "nbdkit still running 30 s after SIGTERM"
wait $rpid || true          # its connection is closed by the shutdown
cat "$tmpdir/recomp2"
[ "$ms" -lt 3000 ] || fail "shutdown waited $ms ms for the recompression"

# 3. The client of the walk is killed (Ctrl-C): the walk stops, and the
# next walk is answered at once.  Base64 of random bytes, which zstd:19
# takes a millisecond or more a page for: the walk outlasts the test.
head -c 48M /dev/urandom | base64 -w 0 | head -c 64M >"$tmpdir/data3"
start 3 "$tmpdir/data3"
kill $rpid                   # (SIGINT is ignored by background jobs of a script)
wait $rpid 2>/dev/null || true
sleep 0.5
a1=$(stat_of recomp_attempts)
sleep 1
a2=$(stat_of recomp_attempts)
echo "after the client left: recomp_attempts $a1, a second later $a2"
[ "$a1" -lt 16384 ] || fail "the walk ended before its client was killed: no test"
[ "$a1" = "$a2" ] || fail "the walk goes on after its client left ($a1 -> $a2)"
t0=$(date +%s%N)
"${c[@]}" idle all >/dev/null || fail "idle all after the interrupted recompress"
ms=$(ms_since "$t0")
echo "idle all answered in $ms ms after the interrupted recompress"
[ "$ms" -lt 5000 ] || fail "idle all waited $ms ms for the abandoned walk"
# Walks work again: a short recompress (max_pages) runs and counts.
"${c[@]}" recompress type=idle max_pages=8 >/dev/null ||
  fail "recompress after the interrupted one"
a3=$(stat_of recomp_attempts)
[ "$a3" -gt "$a2" ] || fail "walks stay stopped after the interrupted one ($a2 -> $a3)"
# Every byte is still there.
nbdcopy "$(uri_of "$tmpdir/sock3")" - | head -c 64M | cmp - "$tmpdir/data3" ||
  fail "data changed after the interrupted recompress"
kill_nbdkit "$tmpdir/pid3"
