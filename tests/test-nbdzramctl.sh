#!/usr/bin/env bash
# nbdzramctl against a daemonised nbdkit: the table (--bytes, -n, --json),
# stats, mem-limit (writes past it fail with ENOSPC, counted), reset with
# and without --force while a connection is open, a new algorithm, compact,
# and the exit statuses for usage errors, a missing or stale socket,
# permission denied and a refused command.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir
chmod 0711 "$tmpdir"

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
c=("$ctl" -s "$tmpdir/ctl")
# The columns nbdzramctl showed by default before it took zramctl's.
wide=(-o NAME,ALGORITHM,DISKSIZE,DATA,COMPR,TOTAL,ZERO-PAGES,MEM-LIMIT,MEM-USED,MIGRATED,COMP-RATIO)

stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }

# The table: zramctl's default columns, then others with -o.
expect 0 "${c[@]}"
head -n1 "$tmpdir/out" | grep -Eq '^NAME +ALGORITHM +DISKSIZE +DATA +COMPR +TOTAL +STREAMS +MOUNTPOINT$' ||
  fail "bad default heading: $(head -n1 "$tmpdir/out")"
sed -n 2p "$tmpdir/out" | grep -Eq "^$tmpdir/ctl +lz4 +64M +0B +0B +0B +[0-9]+ *$" ||
  fail "bad default row: $(cat "$tmpdir/out")"
expect 0 "${c[@]}" "${wide[@]}"
head -n1 "$tmpdir/out" | grep -Eq '^NAME +ALGORITHM +DISKSIZE +DATA +COMPR +TOTAL +ZERO-PAGES +MEM-LIMIT +MEM-USED +MIGRATED +COMP-RATIO$' ||
  fail "bad heading: $(head -n1 "$tmpdir/out")"
sed -n 2p "$tmpdir/out" | grep -Eq "^$tmpdir/ctl +lz4 +64M +0B +0B +0B +0 +0B +0B +0 +-$" ||
  fail "bad row: $(cat "$tmpdir/out")"
[ "$(wc -l <"$tmpdir/out")" = 2 ] || fail "table has extra lines"
expect 0 "${c[@]}" "${wide[@]}" --bytes --noheadings
grep -Eq "^$tmpdir/ctl lz4 67108864 0 0 0 0 0 0 0 -$" "$tmpdir/out" ||
  fail "bad -b -n row: $(cat "$tmpdir/out")"

# Fill 4 MiB with compressible data: DATA 4M, a ratio above 1.
seq -f 'line %08.0f of some compressible text' 1 200000 | head -c 4M >"$tmpdir/text"
[ "$(stat -c %s "$tmpdir/text")" = 4194304 ] || fail "test data"
nbdcopy "$tmpdir/text" "$uri" || fail "nbdcopy failed"
[ "$(stat_of orig_data_size)" = 4194304 ] || fail "orig_data_size $(stat_of orig_data_size)"
expect 0 "${c[@]}" "${wide[@]}" --json --bytes
if /usr/bin/python3 -c 'import json' 2>/dev/null; then
  /usr/bin/python3 - "$tmpdir/out" "$tmpdir/ctl" <<'PY' || fail "bad JSON: $(cat "$tmpdir/out")"
import json, sys
d = json.load(open(sys.argv[1]))["devices"][0]
assert d["name"] == sys.argv[2], d
assert d["algorithm"] == "lz4" and d["disksize"] == 64 << 20, d
assert d["data"] == 4 << 20 and 0 < d["compr"] < d["data"], d
assert d["total"] > 0 and d["comp-ratio"] > 1.5, d
assert abs(d["comp-ratio"] - d["data"] / d["total"]) < 1e-3, d
assert set(d) == {"name", "algorithm", "disksize", "data", "compr", "total",
                  "zero-pages", "mem-limit", "mem-used", "migrated", "comp-ratio"}
PY
fi
expect 0 "${c[@]}" "${wide[@]}"
sed -n 2p "$tmpdir/out" | grep -Eq ' 4M +[0-9.]+[KM] +[0-9.]+[KM] .* [0-9]+\.[0-9]{4}$' ||
  fail "bad human row: $(cat "$tmpdir/out")"

# mem-limit: writes that grow the pool past it fail with ENOSPC.
expect 0 "${c[@]}" mem-limit 1M
[ "$(stat_of mem_limit)" = 1048576 ] || fail "mem_limit not set"
failed0=$(stat_of failed_writes)
head -c 8M /dev/urandom >"$tmpdir/random"
# --synchronous: nbdkit 1.32.5 aborts (raw_send_socket: sock >= 0) when a
# client that fails a request drops the connection with others in flight.
if nbdcopy --synchronous "$tmpdir/random" "$uri" 2>"$tmpdir/copyerr"; then
  fail "8 MiB of random data fit under a 1 MiB limit"
fi
grep -qi "no space left" "$tmpdir/copyerr" || fail "not ENOSPC: $(cat "$tmpdir/copyerr")"
[ "$(stat_of failed_writes)" -gt "$failed0" ] || fail "failed_writes not counted"
total=$(stat_of mem_used_total)
[ "$total" -le $((1048576 + 65536)) ] || fail "pool grew to $total past the limit"
expect 0 "${c[@]}" mem-limit 0
[ "$(stat_of mem_limit)" = 0 ] || fail "mem_limit not cleared"
# A bad size is a usage error, caught before the server is asked, with the
# message the server and the plugin give for it (include/zram/size.h).
expect 1 "${c[@]}" mem-limit 12Q
grep -q "mem-limit: '12Q' is not a size: use a whole number of bytes" "$tmpdir/err" ||
  fail "$(cat "$tmpdir/err")"
[ "$(stat_of mem_limit)" = 0 ] || fail "a bad size changed mem_limit"

# reset while a connection is open: refused without --force.
if /usr/bin/python3 -c 'import nbd' 2>/dev/null; then
  hold_connection "$uri" 60
  expect 4 "${c[@]}" reset
  grep -q "EBUSY: reset refused: 1 connection still open" "$tmpdir/err" ||
    fail "$(cat "$tmpdir/err")"
  # The hint is in nbdzramctl's spelling, and the one it gives works.
  grep -q "reset anyway.*: nbdzramctl -s $tmpdir/ctl reset --force$" "$tmpdir/err" ||
    fail "no hint in the CLI's spelling: $(cat "$tmpdir/err")"
  ! grep -q "'reset force'" "$tmpdir/err" || fail "protocol spelling: $(cat "$tmpdir/err")"
  [ "$(stat_of orig_data_size)" != 0 ] || fail "a refused reset lost data"
  expect 0 "${c[@]}" reset --force
  [ "$(stat_of orig_data_size)" = 0 ] || fail "reset --force kept data"
  [ "$(stat_of connections)" = 1 ] || fail "connections $(stat_of connections)"
  kill $holder; wait $holder 2>/dev/null || :
  for (( i = 0; i < 50; i++ )); do [ "$(stat_of connections)" = 0 ] && break; sleep 0.1; done
else
  echo "$0: no python3 nbd module: reset-while-open not tested"
fi
nbdcopy "$tmpdir/text" "$uri" || fail "nbdcopy failed"
expect 0 "${c[@]}" reset --algorithm zstd --level 3
[ "$(stat_of algorithm)" = zstd ] && [ "$(stat_of level)" = 3 ] &&
  [ "$(stat_of orig_data_size)" = 0 ] || fail "reset to zstd: $("${c[@]}" stats)"
expect 4 "${c[@]}" reset --algorithm lz5
grep -q "unknown algorithm 'lz5'" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"
expect 0 "${c[@]}" compact
grep -q '^pages_freed=[0-9]*$' "$tmpdir/out" || fail "compact: $(cat "$tmpdir/out")"
expect 0 "${c[@]}" stats
grep -q '^connections=0$' "$tmpdir/out" || fail "stats: $(cat "$tmpdir/out")"
# Options after the command; stats as JSON.
expect 0 "$ctl" stats --json -s "$tmpdir/ctl"
grep -q '^   "algorithm": "zstd",$' "$tmpdir/out" || fail "stats --json: $(cat "$tmpdir/out")"
grep -q '^   "disksize": 67108864,$' "$tmpdir/out" || fail "stats --json: $(cat "$tmpdir/out")"

# Usage errors: 1.
expect 1 "${c[@]}" frobnicate
expect 1 "${c[@]}" mem-limit
expect 1 "${c[@]}" reset --bogus
expect 1 "${c[@]}" --force
expect 1 "${c[@]}" compact --algorithm zstd
expect 1 "${c[@]}" reset now
expect 1 "${c[@]}" mem-limit "1M
reset force"
# No socket named and none found: an empty list, as zramctl with no
# devices; a command that needs a device says how to name one.
mkdir "$tmpdir/empty"
expect 0 env -u NBDZRAMCTL_SOCKET NBDZRAMCTL_RUNDIR="$tmpdir/empty" "$ctl"
[ ! -s "$tmpdir/out" ] || fail "a table without devices: $(cat "$tmpdir/out")"
expect 1 env -u NBDZRAMCTL_SOCKET NBDZRAMCTL_RUNDIR="$tmpdir/empty" "$ctl" stats
grep -q "no control socket: use -s PATH" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"
expect 0 "$ctl" --help
grep -q "^Usage:" "$tmpdir/out" || fail "--help"
expect 0 "$ctl" --version
grep -q "^nbdzramctl [0-9]" "$tmpdir/out" || fail "--version: $(cat "$tmpdir/out")"
NBDZRAMCTL_SOCKET="$tmpdir/ctl" expect 0 "$ctl" stats

# Permission denied: 3 (another uid cannot connect to the 0600 socket).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  expect 3 setpriv --reuid=65534 --regid=65534 --clear-groups "${c[@]}"
  grep -q "permission denied" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"
fi

# No socket: 2.  Stale socket after the server died: 2.
expect 2 "$ctl" -s "$tmpdir/nonexistent"
grep -q "no such control socket" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"
kill -9 "$(cat "$tmpdir/pid")"
for (( i = 0; i < 50; i++ )); do kill -0 "$(cat "$tmpdir/pid")" 2>/dev/null || break; sleep 0.1; done
[ -S "$tmpdir/ctl" ] || fail "expected a stale socket after SIGKILL"
expect 2 "${c[@]}"
grep -q "no server is listening" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"

# A new server replaces the stale socket.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 16M ctl="$tmpdir/ctl"
for (( i = 0; i < 50; i++ )); do "${c[@]}" stats >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(stat_of disksize)" = 16777216 ] || fail "stale socket not replaced"
echo "$0: OK"
