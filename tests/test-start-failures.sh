#!/usr/bin/env bash
# A server that cannot run as configured must make the start command fail
# with a message, not exit 0 and die after the fork (where its error
# reaches only syslog), and must leave no control socket behind.
#   1. mlock=true as a user whose 'ulimit -l' is too small (daemonised)
#   2. mlock=true as root with a small 'ulimit -l' and -u USER: the lock
#      fits only with CAP_IPC_LOCK, which -u drops before .after_fork
#   3. .after_fork failing anyway (threads refused by 'ulimit -u' for the
#      -u user): the control socket is removed
# Needs root (useradd, runuser).
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit runuser useradd userdel
if [ "$(id -u)" != 0 ]; then
  echo "$0: SKIP: needs root (to add a test user and lower its limits)"
  exit 77
fi
make_tmpdir
chmod 0755 "$tmpdir"
user=zram-test-$$
useradd -M -N -s /bin/sh "$user" ||
  { echo "$0: SKIP: cannot add a test user"; exit 77; }
cleanup_fn "userdel '$user'"
d=$tmpdir/u
mkdir "$d"
# Sticky, as /tmp: the control socket refuses a directory where anyone
# could replace it (test-ctl-socket-safety.sh).
chmod 1777 "$d"
# The test user must be able to read the plugin (it may live under a
# private home directory).
plugin=$tmpdir/zram.so
cp "$ZRAM_PLUGIN" "$plugin"
chmod 0755 "$plugin"
runuser -u "$user" -- test -r "$plugin" ||
  { echo "$0: SKIP: the test user cannot read $plugin"; exit 77; }

# expect_refused NAME CMD...: CMD must exit non-zero, print a message
# matching $want, and leave no pid file and no control socket.
expect_refused () {
  local name=$1 rc=0
  shift
  rm -f "$d"/*
  "$@" >"$tmpdir/$name.log" 2>&1 || rc=$?
  cat "$tmpdir/$name.log"
  [ "$rc" != 0 ] || fail "$name: start exited 0"
  grep -q -- "$want" "$tmpdir/$name.log" || fail "$name: no message '$want'"
  sleep 0.5
  if [ -s "$d/pid" ]; then
    kill "$(cat "$d/pid")" 2>/dev/null || :
    fail "$name: a pid file was written (the server forked)"
  fi
  [ ! -e "$d/ctl" ] || fail "$name: control socket left behind"
  echo "$name: refused (rc=$rc)"
}

if [ -n "${ZRAM_PRELOAD:-}" ]; then
  # ASan's and TSan's runtimes make mlockall a no-op.
  echo "$0: mlock cases skipped: mlockall is a no-op under a sanitizer runtime"
else
  want="mlock: cannot lock the server's memory"
  expect_refused user-ulimit \
    runuser -u "$user" -- bash -c "ulimit -l 64; exec nbdkit -U '$d/sock' \
      -P '$d/pid' '$plugin' size=1G mlock=true ctl='$d/ctl'"

  want="CAP_IPC_LOCK, which nbdkit -u drops"
  expect_refused root-then-u bash -c "ulimit -l 64; exec nbdkit -U '$d/sock' \
    -P '$d/pid' -u '$user' '$plugin' size=1G mlock=true ctl='$d/ctl'"

  # Root keeps its lock (CAP_IPC_LOCK): the same start without -u works.
  rm -f "$d"/*
  bash -c "ulimit -l 64; exec nbdkit -U '$d/sock' -P '$d/pid' '$plugin' \
    size=1G mlock=true ctl='$d/ctl'" || fail "root with mlock=true refused"
  for (( i = 0; i < 50; i++ )); do [ -S "$d/ctl" ] && break; sleep 0.1; done
  cleanup_fn "kill_nbdkit '$d/pid'"
  "$NBDZRAMCTL" -s "$d/ctl" -n >/dev/null || fail "root server not serving"
  kill_nbdkit "$d/pid" || fail "nbdkit did not stop"
fi

# .after_fork: with 'ulimit -u 1' the -u user may not start threads.  In
# the foreground nbdkit reports it and exits 1; the control socket the
# plugin bound in .get_ready is removed.  (Under ASan, nbdkit then hangs
# in libp11-kit's exit handler, whatever the plugin does: skipped there.)
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: after_fork case skipped under a sanitizer runtime"
  echo "$0: ok"
  exit 0
fi
rm -f "$d"/*
rc=0
( ulimit -u 1
  exec timeout -s KILL 30 nbdkit -f -U "$d/sock" -u "$user" "$plugin" \
    size=64M ctl="$d/ctl"
) >"$tmpdir/nproc.log" 2>&1 || rc=$?
cat "$tmpdir/nproc.log"
[ "$rc" != 0 ] || fail "after_fork failure: nbdkit exited 0"
[ "$rc" != 137 ] || fail "after_fork failure: nbdkit hung, killed after 30 s"
# The first thread .after_fork starts is refused: the background thread's
# (it starts before the control socket's, which reports on it).
grep -Eq "cannot start the (background|control socket) thread" "$tmpdir/nproc.log" ||
  fail "after_fork failure: no message"
[ ! -e "$d/ctl" ] || fail "after_fork failure: control socket left behind"
echo "$0: ok"
