#!/usr/bin/env bash
# test-writeback-stress with its store on an NBD server (an nbdkit memory
# export on a unix socket) instead of a file: writeback racing writes,
# trims, resets, recompression and compaction while every read of a
# written-back page is an NBD request on one of the store's connections.
# Nothing lost, no block leaked, no store error.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
[ -x "${WS_STRESS:-}" ] || fail "WS_STRESS is not the stress program"
nbdkit memory --version >/dev/null 2>&1 ||
  { echo "$0: SKIP: nbdkit has no memory plugin"; exit 77; }
make_tmpdir

# The store is not code under test: no sanitizer runtime in it.
nbdkit -P "$tmpdir/spid" -U "$tmpdir/ssock" memory 1M || fail "store server"
cleanup_fn "kill \$(cat '$tmpdir/spid') 2>/dev/null"
for (( i = 0; i < 100; i++ )); do [ -S "$tmpdir/ssock" ] && break; sleep 0.1; done
WS_BACKING="nbd+unix:///?socket=$tmpdir/ssock" "$WS_STRESS" ||
  fail "the stress test failed on an NBD store"
echo "$0: ok"
