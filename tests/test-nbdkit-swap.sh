#!/usr/bin/env bash
# nbdkit --swap would mlockall (MCL_CURRENT | MCL_FUTURE) after .get_ready
# and so fault in the whole slot table at start-up (4 GiB for 1 TiB): the
# plugin refuses it before that happens, pointing to mlock=true, while an
# option argument that merely reads "--swap" is not mistaken for it.
# mlock=true itself keeps a 1 TiB device small (test-mlock.sh).
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
make_tmpdir

for opt in --swap --sw; do
  rc=0
  run_nbdkit -U "$tmpdir/sock" -P "$tmpdir/pid" "$opt" "$ZRAM_PLUGIN" 1T \
    ctl="$tmpdir/ctl" >"$tmpdir/log" 2>&1 || rc=$?
  cat "$tmpdir/log"
  if [ -s "$tmpdir/pid" ]; then
    pid=$(cat "$tmpdir/pid")
    echo "$0: nbdkit $opt size=1T: $(grep VmRSS "/proc/$pid/status")"
    kill "$pid"
    fail "nbdkit $opt started"
  fi
  [ "$rc" != 0 ] || fail "nbdkit $opt: exited 0"
  grep -q "nbdkit --swap is not supported.*mlock=true" "$tmpdir/log" ||
    fail "nbdkit $opt: no message pointing to mlock=true"
  [ ! -e "$tmpdir/ctl" ] || fail "nbdkit $opt: control socket left behind"
done

# "--swap" as the argument of -e (the export name) is not the option.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" -e --swap 1T
pid=$(cat "$tmpdir/pid2")
rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")
[ "$rss" -lt 131072 ] || fail "1 TiB device: VmRSS $rss kB at start"
nbdsh -u "nbd+unix:///--swap?socket=$tmpdir/sock2" -c 'assert h.get_size() == 1 << 40'
echo "$0: ok (1 TiB device without --swap: VmRSS $rss kB)"
