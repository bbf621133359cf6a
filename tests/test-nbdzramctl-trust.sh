#!/usr/bin/env bash
# nbdzramctl against what may sit at a socket path (issue 10, case 08):
#  - a fake server replying with a NUL byte, an endless line or bytes after
#    the reply: "malformed reply", exit 5, no crash;
#  - terminal escapes in a reply are printed as \xNN, never raw;
#  - a server run by another user (neither root nor the caller) is not
#    trusted: exit 3, and it is sent nothing (needs root);
#  - the NBD socket, a regular file, a directory: said what they are, exit 2.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit python3
[ -x "${NBDZRAMCTL:-}" ] || { echo "$0: SKIP: nbdzramctl was not built"; exit 77; }
make_tmpdir
chmod 0755 "$tmpdir"
# The fakes live in a sticky directory, where another user can make one.
pub=$tmpdir/pub
mkdir "$pub"
chmod 1777 "$pub"

# fake REPLY-AS-PYTHON-BYTES [SETPRIV...]: a one-shot server at
# $pub/fake that records what it got in $pub/got.
fake () {
  local reply=$1
  shift
  rm -f "$pub/fake" "$pub/got" "$pub/ready"
  "$@" python3 - "$pub" "$reply" <<'PY' &
import os, socket, sys
d, reply = sys.argv[1], eval(sys.argv[2])
s = socket.socket(socket.AF_UNIX); s.bind(d + "/fake"); s.listen(1)
s.settimeout(20)
open(d + "/ready", "w").close()
c, _ = s.accept(); c.settimeout(1)
got = b""
try:
    got = c.recv(300)
except OSError:
    pass
open(d + "/got", "wb").write(got)
try:
    c.sendall(reply)
except OSError:
    pass
c.close()
PY
  fake_pid=$!
  for (( i = 0; i < 100; i++ )); do [ -e "$pub/ready" ] && break; sleep 0.05; done
}

# expect STATUS PATTERN CMD...
expect () {
  local want=$1 pattern=$2 got=0
  shift 2
  "$@" >"$tmpdir/out" 2>"$tmpdir/err" || got=$?
  [ "$got" = "$want" ] ||
    fail "'$*' exited $got, expected $want: $(cat "$tmpdir/out" "$tmpdir/err")"
  grep -q -- "$pattern" "$tmpdir/out" "$tmpdir/err" ||
    fail "'$*': no '$pattern' in: $(cat "$tmpdir/out" "$tmpdir/err")"
  wait $fake_pid 2>/dev/null || :
}
c=("$NBDZRAMCTL" -s "$pub/fake")
fake_pid=

fake "b'error \\x00\\n'"
expect 5 "malformed reply: a NUL byte" "${c[@]}" stats
fake "b'x' * 10000"
expect 5 "malformed reply: no end of reply" "${c[@]}" stats
fake "b'ok\\ngarbage'"
expect 5 "malformed reply: .* bytes after the end" "${c[@]}" compact

# Escapes: a fake stats reply with an OSC title and a screen clear.
stats="b'disksize=4096\\norig_data_size=0\\ncompr_data_size=0\\nmem_used_total=0\\nmem_limit=0\\nmem_used_max=0\\nsame_pages=0\\npages_compacted=0\\nalgorithm=\\x1b]0;owned\\x07\\x1b[2Jlz4\\nok\\n'"
for args in "" "stats" "--json" "stats --json"; do
  fake "$stats"
  # shellcheck disable=SC2086
  expect 0 'x1b\|u001b' "${c[@]}" $args
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$tmpdir/out"; then
    fail "'$args' printed a control byte: $(od -c "$tmpdir/out" | head)"
  fi
done
fake "b'error EINVAL: \\x1b[31mred\\n'"
expect 4 'x1b\[31mred' "${c[@]}" compact
LC_ALL=C grep -q $'\x1b' "$tmpdir/err" && fail "an error printed a raw escape"

# A server of another user is not trusted, and hears nothing.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
   nobody=$(id -u nobody 2>/dev/null); then
  fake "b'ok\\n'" setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups
  expect 3 "runs as uid $nobody, neither root nor you; not trusting it" "${c[@]}" stats
  [ ! -s "$pub/got" ] || fail "the untrusted server was sent: $(cat "$pub/got")"
  # The same user is trusted.
  fake "b'pages_freed=0\\nok\\n'" setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups
  expect 0 "pages_freed=0" setpriv --reuid="$nobody" --regid="$(id -g nobody)" \
    --clear-groups "${c[@]}" compact
else
  echo "$0: not root: the untrusted-server check is not tested"
fi

# Wrong paths: the NBD socket, a regular file, a directory.
start_nbdkit "$tmpdir/pid" "$tmpdir/nbd.sock" 16M ctl="$tmpdir/ctl"
expect 2 "is the socket of an NBD server" "$NBDZRAMCTL" -s "$tmpdir/nbd.sock" stats
touch "$tmpdir/file"
expect 2 "is a regular file, not a control socket" "$NBDZRAMCTL" -s "$tmpdir/file"
expect 2 "is a directory, not a control socket" "$NBDZRAMCTL" -s "$tmpdir" stats
expect 0 "disksize=16777216" "$NBDZRAMCTL" -s "$tmpdir/ctl" stats
echo "$0: OK"
