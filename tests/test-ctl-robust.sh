#!/usr/bin/env bash
# The control socket under the conditions of issue 10 (cases 09, 13, 17,
# 18), through the real plugin and nbdzramctl:
#  - with every client slot taken, nbdzramctl is told EAGAIN (exit 4),
#    never "Broken pipe"; a stranger is told EACCES (exit 3; needs root);
#  - stats answers at once while a reset waits for a connection to close;
#  - "disconnect, then reset" succeeds every time;
#  - a flood of NBD clients under a small 'ulimit -n' cannot take the
#    control socket's descriptors: control clients are still served, and
#    nothing spins.  (The control thread's back-off on EMFILE itself is
#    tested in test-zctl-server.)
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_nbdzramctl
requires_python_nbd
make_tmpdir
chmod 0711 "$tmpdir"
c=("$NBDZRAMCTL" -s "$tmpdir/ctl")
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 16M ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")

# --- refusals (case 13) ---------------------------------------------------
/usr/bin/python3 - "$tmpdir/ctl" "$NBDZRAMCTL" <<'PY' || fail "refusals"
import collections, socket, subprocess, sys, time
ctl, ctlbin = sys.argv[1], sys.argv[2]
held = []
for i in range(16):
    s = socket.socket(socket.AF_UNIX); s.connect(ctl); s.send(b"sta"); held.append(s)
time.sleep(0.3)
seen = collections.Counter()
for i in range(20):
    r = subprocess.run([ctlbin, "-s", ctl, "stats"], capture_output=True, text=True, timeout=30)
    seen[(r.returncode, "EAGAIN: too many control clients" in r.stderr)] += 1
# A raw client that sends a long command before it reads gets the refusal too.
for i in range(20):
    s = socket.socket(socket.AF_UNIX); s.connect(ctl)
    s.sendall(b"stats\n" * 40)
    data = s.recv(200)
    seen[("raw", data.startswith(b"error EAGAIN:"))] += 1
    s.close()
print(dict(seen))
sys.exit(0 if seen == {(4, True): 20, ("raw", True): 20} else 1)
PY
# Slots come back (the held clients are gone).
for (( i = 0; i < 50; i++ )); do "${c[@]}" stats >/dev/null 2>&1 && break; sleep 0.1; done

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && nobody=$(id -u nobody 2>/dev/null); then
  chmod 0666 "$tmpdir/ctl"     # the file mode alone would let nobody in
  for (( i = 0; i < 10; i++ )); do
    rc=0
    setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups \
      "${c[@]}" stats >/dev/null 2>"$tmpdir/err" || rc=$?
    [ $rc = 3 ] && grep -q "EACCES: permission denied: uid $nobody" "$tmpdir/err" ||
      fail "stranger: rc=$rc $(cat "$tmpdir/err")"
  done
  chmod 0600 "$tmpdir/ctl"
fi

# --- stats during a reset (case 18) -----------------------------------------
hold_connection "$uri" 30
t0=$(date +%s%N)
rc=0; "${c[@]}" reset 2>"$tmpdir/reset.err" || rc=$? &
resetter=$!
sleep 0.3
"${c[@]}" stats >"$tmpdir/out" || fail "stats during a reset"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $ms -lt 1300 ] || fail "stats took until $ms ms after a reset began"
grep -q '^connections=1$' "$tmpdir/out" || fail "$(cat "$tmpdir/out")"
wait $resetter || :
grep -q "EBUSY: reset refused: 1 connection still open" "$tmpdir/reset.err" ||
  fail "reset: $(cat "$tmpdir/reset.err")"
kill $holder; wait $holder 2>/dev/null || :
echo "stats answered $ms ms after a waiting reset began"

# --- disconnect, then reset (case 17) ---------------------------------------
for (( i = 0; i < 40; i++ )); do
  /usr/bin/python3 -c '
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(b"x" * 4096, 0); h.shutdown()' "$uri"
  "${c[@]}" reset 2>"$tmpdir/err" || fail "reset right after a disconnect (try $i): $(cat "$tmpdir/err")"
done

# --- out of file descriptors (case 09) ---------------------------------------
# A flood of NBD connections under a small 'ulimit -n': the plugin refuses
# the connections that would take the descriptors kept for the control
# socket (nbdkit-plugin/fd-headroom.h), so a control client is still
# served, and neither the control thread nor nbdkit's accept loop spins.
kill_nbdkit "$tmpdir/pid"
rm -f "$tmpdir/sock"
( ulimit -n 64; start_nbdkit "$tmpdir/pid2" "$tmpdir/sock" 16M ctl="$tmpdir/ctl" )
cleanup_fn "kill_nbdkit '$tmpdir/pid2'"
pid=$(cat "$tmpdir/pid2")
/usr/bin/python3 - "$tmpdir/sock" "$tmpdir/exhausted" <<'PY' &
import socket, sys, time
socks, served, refused = [], 0, 0
for i in range(100):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5)
    try:
        s.connect(sys.argv[1])
        greeting = s.recv(8)
    except Exception:
        break
    if greeting == b"NBDMAGIC": served += 1; socks.append(s)
    else: refused += 1; s.close()
with open(sys.argv[2] + ".tmp", "w") as f: f.write("%d %d\n" % (served, refused))
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(120)                 # until killed below, however slow the build
PY
hog=$!
cleanup_fn "kill $hog 2>/dev/null"
for (( i = 0; i < 600; i++ )); do [ -e "$tmpdir/exhausted" ] && break; sleep 0.1; done
[ -e "$tmpdir/exhausted" ] || fail "the descriptor hog did not finish connecting"
read -r served refused <"$tmpdir/exhausted"
echo "NBD clients under 'ulimit -n 64': $served served, $refused refused; $(ls /proc/$pid/fd | wc -l) descriptors in use"
[ "$served" -ge 4 ] || fail "only $served NBD clients were served"
[ "$refused" -ge 1 ] || fail "no NBD client was refused: the descriptors were not kept"
tid=$(grep -l '^zctl$' /proc/$pid/task/*/comm | head -n1 | cut -d/ -f5)
[ -n "$tid" ] || fail "no zctl thread in nbdkit"
for (( i = 0; i < 5; i++ )); do
  timeout 10 "${c[@]}" stats >"$tmpdir/out" 2>&1 ||
    fail "no stats with the NBD clients' descriptors all taken: $(cat "$tmpdir/out")"
done
grep -q "^disksize=16777216\$" "$tmpdir/out" || fail "stats: $(cat "$tmpdir/out")"
a=$(awk '{print $14 + $15}' /proc/$pid/task/$tid/stat)
pa=$(awk '{print $14 + $15}' /proc/$pid/stat)
timeout 5 /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"stats\n")
import time; time.sleep(2)' "$tmpdir/ctl" || :
b=$(awk '{print $14 + $15}' /proc/$pid/task/$tid/stat)
pb=$(awk '{print $14 + $15}' /proc/$pid/stat)
echo "over 2 s: control thread $((b - a)) ticks, nbdkit $((pb - pa)) ticks of CPU"
kill -0 $hog 2>/dev/null || fail "the descriptor hog exited before the check ended"
[ $((b - a)) -le 20 ] || fail "the control thread spun: $((b - a)) ticks in 2 s"
[ $((pb - pa)) -le 100 ] || fail "nbdkit spun: $((pb - pa)) ticks in 2 s"
kill $hog; wait $hog 2>/dev/null || :
echo "$0: OK"
