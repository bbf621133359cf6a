#!/usr/bin/env bash
# A long `recompress` (minutes on a large device with zstd:19) holds up
# nothing else: `compact` and `reset` are answered at once (they have a
# worker of their own on the control socket; before, they queued behind
# the walk and their client gave up after 60 s), a forced reset ends the
# walk, and SIGTERM makes the server exit at once (the walk stops at its
# next page) rather than after the whole device (systemd would SIGKILL).
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
  start_nbdkit "$tmpdir/pid$1" "$tmpdir/sock$1" 256M \
    recomp_algorithm=zstd:19 recomp_policy=off ctl="$tmpdir/ctl$1"
  c=("$NBDZRAMCTL" -s "$tmpdir/ctl$1")
  nbdcopy "$tmpdir/data" "$(uri_of "$tmpdir/sock$1")" || fail "nbdcopy failed"
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
