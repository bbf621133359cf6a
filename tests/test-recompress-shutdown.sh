#!/usr/bin/env bash
# SIGTERM while `recompress` (or `idle`) runs on a large device: the
# server exits at once, not after the whole device has been recompressed
# (minutes with zstd:19; systemd would SIGKILL it first).  The walk stops
# at its next page.  (No read while it runs: a read clears IDLE, and the
# walk would skip every page read.)
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
requires_nbdzramctl
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 256M \
  recomp_algorithm=zstd:19 recomp_policy=off ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
c=("$NBDZRAMCTL" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# 64 MiB of text: zstd:19 needs ten seconds or more for it on a free core.
seq -f 'line %08.0f: recompression must not hold up a shutdown' 1 1500000 |
  head -c 64M >"$tmpdir/data"
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy failed"
"${c[@]}" idle all >/dev/null || fail "idle all"

"${c[@]}" recompress type=idle >"$tmpdir/recomp" 2>&1 &
rpid=$!
cleanup_fn "kill $rpid 2>/dev/null"
# Wait until it is under way.
for (( i = 0; i < 100; i++ )); do
  [ "$(stat_of recomp_attempts)" -gt 0 ] 2>/dev/null && break
  sleep 0.1
done
[ "$(stat_of recomp_attempts)" -gt 0 ] || fail "recompress did not start"

pid=$(cat "$tmpdir/pid")
t0=$(date +%s%N)
kill "$pid"
for (( i = 0; i < 300; i++ )); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
echo "nbdkit exited $ms ms after SIGTERM during recompress"
kill -0 "$pid" 2>/dev/null && fail "nbdkit still running 30 s after SIGTERM"
wait $rpid || true          # its connection is closed by the shutdown
cat "$tmpdir/recomp"
[ "$ms" -lt 3000 ] || fail "shutdown waited $ms ms for the recompression"
