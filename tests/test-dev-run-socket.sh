#!/usr/bin/env bash
# './dev.sh run' never removes the socket of a live server (a second run
# used to 'rm -f' it, stranding the first server and its data): it refuses
# with a message before building anything.  contrib/unix-socket-state,
# which it uses, tells live, stale, absent and non-socket paths apart.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh perl
make_tmpdir
state=$srcdir/../contrib/unix-socket-state
dev=$srcdir/../dev.sh

code () { local rc=0; "$state" "$1" 2>/dev/null || rc=$?; echo "$rc"; }

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
nbdsh -u "$uri" -c 'h.pwrite(b"first" * 800 + b"....", 0)'

[ "$(code "$tmpdir/sock")" = 0 ] || fail "live socket not seen as live"
[ "$(code "$tmpdir/absent")" = 2 ] || fail "absent path not seen as absent"
: >"$tmpdir/file"
[ "$(code "$tmpdir/file")" = 3 ] || fail "regular file not seen as not-a-socket"
# A stale socket: bound, then its listener gone.
perl -MSocket -e 'socket (S, AF_UNIX, SOCK_STREAM, 0) or die;
  bind (S, pack_sockaddr_un ($ARGV[0])) or die "bind: $!"' "$tmpdir/stale"
[ "$(code "$tmpdir/stale")" = 1 ] || fail "stale socket not seen as stale"

# A second './dev.sh run' on the live server's socket is refused at once.
rc=0
ZRAM_SOCKET=$tmpdir/sock ZRAM_CTL=$tmpdir/ctl2 timeout 60 "$dev" run \
  >"$tmpdir/run.log" 2>&1 || rc=$?
cat "$tmpdir/run.log"
[ "$rc" != 0 ] || fail "dev.sh run on a live socket exited 0"
grep -q "already listening on $tmpdir/sock" "$tmpdir/run.log" ||
  fail "dev.sh run: no message naming the live socket"
[ -S "$tmpdir/sock" ] || fail "dev.sh run removed the live server's socket"
nbdsh -u "$uri" -c 'assert h.pread(4004, 0) == b"first" * 800 + b"...."' ||
  fail "the first server no longer serves its data"

# Nor does it remove a file that is not a socket.
rc=0
ZRAM_SOCKET=$tmpdir/file timeout 60 "$dev" run >"$tmpdir/run2.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ -f "$tmpdir/file" ] ||
  fail "dev.sh run on a regular file: rc=$rc, file $(ls -l "$tmpdir/file" 2>&1)"
echo "$0: ok"
