#!/usr/bin/env bash
# With mlock=true and its default reserve warm, the server's request path
# takes no new memory: across 32 MiB of new swap-like pages written over one
# connection (the pool grows by about 8 MiB), nbdkit's threads other than
# the plugin's own background threads ("zram-*", which refill the reserve
# and may wait for memory) page-fault no more than a small fixed number of
# times.  A fault on the request path is what stalls swap when the whole
# machine is out of memory (README.md, "Use as swap").
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import nbd' 2>/dev/null || {
  echo "$0: SKIP: needs /usr/bin/python3 with the nbd module (python3-libnbd)"
  exit 77
}
if [ "$(id -u)" != 0 ] && [ "$(ulimit -l)" != unlimited ]; then
  echo "$0: SKIP: needs root or an unlimited 'ulimit -l' for mlock=true"
  exit 77
fi
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  # The sanitizers' allocators and shadow memory fault on their own.
  echo "$0: SKIP: page faults are not the plugin's own under a sanitizer"
  exit 77
fi
make_tmpdir

# A fixed allowance for faults that are not the request path's: the
# kernel may account a fault to a worker for reasons of its own (a
# migrated or reclaimed page of its stack or of nbdkit's heap); a handful
# over 100+ requests is noise, while one fault per new pool page (what
# the pool without a reserve takes) is thousands.
max=${FAULTS_MAX:-16}

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" size=512M mlock=true \
  ctl="$tmpdir/ctl" "$@"
out=$(/usr/bin/python3 "$srcdir/request-faults.py" "$tmpdir/sock" \
      "$(cat "$tmpdir/pid")" 32) || fail "the write workload failed"
echo "$out"
"$NBDZRAMCTL" -s "$tmpdir/ctl" stats | grep -E '^(mem_used_total|failed_writes|reserve)' || :
faults=$(echo "$out" | sed -n 's/.* faults=\([0-9]*\) .*/\1/p')
[ -n "$faults" ] || fail "no fault count"
[ "$faults" -le "$max" ] ||
  fail "$faults page faults on the request path (at most $max allowed)"
echo "request path: $faults page faults (at most $max allowed)"
