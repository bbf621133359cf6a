#!/usr/bin/env bash
# A daemonised nbdkit (forks after .get_ready) with ctl=: the control
# thread starts after the fork, answers stats and resets while clients do
# I/O, and SIGTERM with I/O still running ends nbdkit within 5 s, removing
# the control socket.  With CTL_VALGRIND=1 (the slow suite) nbdkit runs
# under valgrind, which must report no errors and no definite leak.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
[ -x "${NBDZRAMCTL:-}" ] || { echo "$0: SKIP: nbdzramctl was not built"; exit 77; }
make_tmpdir
c=("$NBDZRAMCTL" -s "$tmpdir/ctl")
stop_within=5
if [ "${CTL_VALGRIND:-0}" = 1 ]; then
  requires valgrind
  [ -z "${ZRAM_PRELOAD:-}" ] || { echo "$0: SKIP: sanitizer build"; exit 77; }
  stop_within=60
  # Leaks of nbdkit's own (allocated straight from nbdkit, e.g. per
  # connection on an abrupt disconnect) are not ours to fix here.  Any
  # nbdkit binary: dev.sh may run one outside /usr/bin (README.md).
  cat >"$tmpdir/nbdkit.supp" <<'SUPP'
{
   nbdkit-own-malloc
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   obj:*/nbdkit
}
{
   nbdkit-own-calloc
   Memcheck:Leak
   match-leak-kinds: definite
   fun:calloc
   obj:*/nbdkit
}
{
   nbdkit-own-realloc
   Memcheck:Leak
   match-leak-kinds: definite
   fun:realloc
   obj:*/nbdkit
}
SUPP
  run_nbdkit () {
    valgrind --quiet --error-exitcode=99 --leak-check=full \
      --show-leak-kinds=definite --errors-for-leak-kinds=definite \
      --suppressions="$tmpdir/nbdkit.supp" \
      --log-file="$tmpdir/vg.%p" nbdkit "$@"
  }
fi

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 32M ctl="$tmpdir/ctl"
pid=$(cat "$tmpdir/pid")
uri=$(uri_of "$tmpdir/sock")
for (( i = 0; i < 300; i++ )); do
  "${c[@]}" stats >/dev/null 2>&1 && break
  sleep 0.1
done
"${c[@]}" stats | grep -q '^disksize=33554432$' || fail "no stats from the daemon"

# I/O in the background: copies in and out, over and over; failures (EIO
# during a reset, or the server going away) only end one copy.
seq -f 'line %08.0f of some compressible text' 1 400000 | head -c 8M >"$tmpdir/data"
# --synchronous: one request in flight.  nbdkit 1.32.5 can abort
# ("raw_send_socket: Assertion `sock >= 0' failed") when a client drops the
# connection while other workers of that connection still send replies,
# which is what a parallel nbdcopy does when a reset fails a write with EIO.
io_loop () {
  while [ ! -e "$tmpdir/stop-io" ]; do
    nbdcopy --synchronous "$tmpdir/data" "$uri" 2>/dev/null || :
    nbdcopy --synchronous "$uri" "$tmpdir/out.$1" 2>/dev/null || :
  done
}
io_loop 1 & io1=$!
io_loop 2 & io2=$!
cleanup_fn "touch '$tmpdir/stop-io'; kill $io1 $io2 2>/dev/null; wait $io1 $io2 2>/dev/null || :"

# Resets with force while the copies run; stats keep answering.
for (( i = 0; i < 20; i++ )); do
  "${c[@]}" reset --force || fail "reset --force failed under I/O"
  "${c[@]}" stats >/dev/null || fail "stats failed under I/O"
  sleep 0.1
done
sleep 0.5
[ "$("${c[@]}" stats | sed -n 's/^initialised=//p')" = 1 ] || fail "not initialised"

# SIGTERM with I/O still running.
t0=$(date +%s.%N)
kill -TERM "$pid"
for (( i = 0; i < stop_within * 10; i++ )); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "nbdkit still running ${stop_within} s after SIGTERM"
echo "nbdkit stopped $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s after SIGTERM"
[ -e "$tmpdir/ctl" ] && fail "control socket left behind after a clean stop"
touch "$tmpdir/stop-io"
wait $io1 $io2 2>/dev/null || :

if [ "${CTL_VALGRIND:-0}" = 1 ]; then
  # The log of the daemon (the child that served) must be clean.
  log="$tmpdir/vg.$pid"
  [ -f "$log" ] || fail "no valgrind log for pid $pid: $(ls "$tmpdir")"
  if [ -s "$log" ]; then
    cat "$log"
    fail "valgrind reported errors or leaks"
  fi
fi
echo "$0: OK"
