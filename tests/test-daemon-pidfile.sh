#!/usr/bin/env bash
# nbdkit started as users start it: daemonised (the fork path), with a
# pidfile; serves data; stops promptly on SIGTERM.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M
pid=$(cat "$tmpdir/pid")
nbdsh -u "$(uri_of "$tmpdir/sock")" -c '
buf = b"zram " * 819 + b"!"
h.pwrite(buf, 8192)
assert h.pread(len(buf), 8192) == buf
assert h.pread(4096, 0) == bytearray(4096)
'
kill_nbdkit "$tmpdir/pid" || fail "nbdkit did not stop on SIGTERM"
kill -0 "$pid" 2>/dev/null && fail "nbdkit $pid still alive"
echo "$0: ok"
