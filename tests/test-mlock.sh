#!/usr/bin/env bash
# mlock=true locks the daemonised server's memory (after the fork, where
# locks must be taken) without populating the whole slot table up front.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
if [ "$(id -u)" != 0 ] && [ "$(ulimit -l)" != unlimited ]; then
  echo "$0: SKIP: needs root or an unlimited 'ulimit -l'"
  exit 77
fi
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  # ASan's and TSan's runtimes intercept mlockall and make it a no-op.
  echo "$0: SKIP: mlockall is a no-op under a sanitizer runtime"
  exit 77
fi
make_tmpdir

# A 1 TiB device: its slot table is 4 GiB of address space, which must not
# be locked (populated) at start-up.  reserve=0: the default reserve (64
# MiB here) would hold the data below without the RSS growing; it has its
# own check at the end.
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 1T mlock=true reserve=0
pid=$(cat "$tmpdir/pid")
# VmLck counts locked mappings, resident or not (MCL_ONFAULT); VmRSS
# shows what is really populated.
status_kib () { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
[ "$(status_kib VmLck)" -gt 0 ] || fail "nothing locked with mlock=true"
before=$(status_kib VmRSS)
[ "$before" -lt 262144 ] || fail "slot table populated at start: VmRSS=$before kB"
nbdsh -u "$(uri_of "$tmpdir/sock")" -c '
import os
for i in range(256):
    h.pwrite(os.urandom(65536), i * 65536 * 1024)
'
after=$(status_kib VmRSS)
[ "$after" -gt "$((before + 8192))" ] ||
  fail "stored data not resident: VmRSS $before -> $after kB"
echo "mlock=true: VmLck $(status_kib VmLck) kB (mapped), VmRSS $before kB at start, $after kB after 16 MiB of random data"
kill_nbdkit "$tmpdir/pid" || fail "nbdkit did not stop"

# With the default reserve (a sixteenth of the device, here its 64 MiB
# maximum) the reserve is populated at start, the 4 GiB table still not
# (it is populated only up to a 16 GiB device), and 16 MiB of data are
# stored in it without new memory.
start_nbdkit "$tmpdir/pid3" "$tmpdir/sock3" 1T mlock=true
pid=$(cat "$tmpdir/pid3")
# The pidfile comes before .after_fork, which fills the reserve; a client
# is served only after it.
nbdsh -u "$(uri_of "$tmpdir/sock3")" -c 'pass'
before=$(status_kib VmRSS)
[ "$before" -gt 65536 ] || fail "default reserve not populated: VmRSS=$before kB"
[ "$before" -lt 262144 ] || fail "slot table populated at start: VmRSS=$before kB"
nbdsh -u "$(uri_of "$tmpdir/sock3")" -c '
import os
for i in range(256):
    h.pwrite(os.urandom(65536), i * 65536 * 1024)
'
after=$(status_kib VmRSS)
[ "$after" -lt "$((before + 4096))" ] ||
  fail "data not stored in the reserve: VmRSS $before -> $after kB"
echo "mlock=true, default reserve: VmRSS $before kB at start, $after kB after 16 MiB of random data"
kill_nbdkit "$tmpdir/pid3" || fail "nbdkit did not stop"

# mlock=false (the default) locks nothing.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 1G
[ "$(awk '/VmLck/ {print $2}' "/proc/$(cat "$tmpdir/pid2")/status")" = 0 ] ||
  fail "memory locked without mlock=true"
echo "$0: ok"
