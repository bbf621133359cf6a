#!/usr/bin/env bash
# A zramctl user's habits with nbdzramctl: listing every device of the
# run directory without -s, -o/--output (and +LIST), --output-all, --raw,
# -n keeping the alignment, -b, -r/--reset, --help listing the columns,
# NAME and MOUNTPOINT from the /dev/nbdX a client attached (against a fake
# /sys and /proc holding the real client's pid), JSON for several devices,
# and the metrics of several devices, also served over HTTP (--listen).
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh nbdcopy
requires_nbdzramctl
make_tmpdir
ctl=$NBDZRAMCTL
export NBDZRAMCTL_RUNDIR=$tmpdir/run
unset NBDZRAMCTL_SOCKET
mkdir -p "$tmpdir/run/a" "$tmpdir/run/bbbb"
start_nbdkit "$tmpdir/pa" "$tmpdir/sa" 64M ctl="$tmpdir/run/a/ctl.sock"
start_nbdkit "$tmpdir/pb" "$tmpdir/sb" 1G algorithm=zstd ctl="$tmpdir/run/bbbb/ctl.sock"
head -c 1M /dev/urandom >"$tmpdir/data"
nbdcopy "$tmpdir/data" "$(uri_of "$tmpdir/sb")"

# Every device of the run directory, in path order, zramctl's columns.
expect 0 "$ctl"
[ "$(wc -l <"$tmpdir/out")" = 3 ] || fail "not two devices: $(cat "$tmpdir/out")"
head -n1 "$tmpdir/out" | grep -Eq '^NAME +ALGORITHM +DISKSIZE +DATA +COMPR +TOTAL +STREAMS +MOUNTPOINT$' ||
  fail "heading: $(cat "$tmpdir/out")"
sed -n 2p "$tmpdir/out" | grep -q "^$tmpdir/run/a/ctl.sock  *lz4  *64M  *0B " ||
  fail "row a: $(cat "$tmpdir/out")"
sed -n 3p "$tmpdir/out" | grep -q "^$tmpdir/run/bbbb/ctl.sock zstd  *1G  *1M " ||
  fail "row b: $(cat "$tmpdir/out")"

# -n keeps the alignment: every column starts at the same place in both rows.
expect 0 "$ctl" -n -o NAME,DISKSIZE,ALGORITHM
[ "$(wc -l <"$tmpdir/out")" = 2 ] || fail "-n printed a heading"
p1=$(sed -n 1p "$tmpdir/out" | grep -bo 'lz4' | cut -d: -f1)
p2=$(sed -n 2p "$tmpdir/out" | grep -bo 'zstd' | cut -d: -f1)
[ -n "$p1" ] && [ "$p1" = "$p2" ] || fail "-n lost the alignment: $(cat "$tmpdir/out")"

# --raw: one space between cells, no padding; -b sizes in bytes.
expect 0 "$ctl" --raw -b -o NAME,DISKSIZE,DATA
[ "$(sed -n 1p "$tmpdir/out")" = "NAME DISKSIZE DATA" ] || fail "raw heading: $(cat "$tmpdir/out")"
[ "$(sed -n 2p "$tmpdir/out")" = "$tmpdir/run/a/ctl.sock 67108864 0" ] ||
  fail "raw row: $(cat "$tmpdir/out")"
[ "$(sed -n 3p "$tmpdir/out")" = "$tmpdir/run/bbbb/ctl.sock 1073741824 1048576" ] ||
  fail "raw row b: $(cat "$tmpdir/out")"

# Column lists: any case, +LIST adds to the defaults, --output-all.
expect 0 "$ctl" --raw -o name,comp-ratio,Socket "$tmpdir/run/a/ctl.sock"
[ "$(cat "$tmpdir/out")" = "NAME COMP-RATIO SOCKET
$tmpdir/run/a/ctl.sock - $tmpdir/run/a/ctl.sock" ] || fail "-o list: $(cat "$tmpdir/out")"
expect 0 "$ctl" --raw -o +SOCKET,CONNECTIONS "$tmpdir/run/a/ctl.sock"
[ "$(sed -n 1p "$tmpdir/out")" = "NAME ALGORITHM DISKSIZE DATA COMPR TOTAL STREAMS MOUNTPOINT SOCKET CONNECTIONS" ] ||
  fail "+LIST: $(cat "$tmpdir/out")"
expect 0 "$ctl" --raw --output-all
all="NAME DISKSIZE DATA COMPR ALGORITHM STREAMS ZERO-PAGES TOTAL MEM-LIMIT MEM-USED MIGRATED COMP-RATIO MOUNTPOINT HUGE-PAGES POOL LEVEL CONNECTIONS SOCKET"
[ "$(sed -n 1p "$tmpdir/out")" = "$all" ] || fail "--output-all: $(sed -n 1p "$tmpdir/out")"
expect 1 "$ctl" -o NAME,COLOUR
grep -q "unknown column 'COLOUR'" "$tmpdir/err" || fail "$(cat "$tmpdir/err")"
expect 0 "$ctl" --help
for col in $all; do
  grep -q "^ *$col  " "$tmpdir/out" || fail "--help does not list $col"
done

# JSON: one object per device.
expect 0 "$ctl" --json -b
/usr/bin/python3 - "$tmpdir/out" <<'PY' || fail "JSON: $(cat "$tmpdir/out")"
import json, sys
d = json.load(open(sys.argv[1]))["devices"]
assert len(d) == 2 and d[1]["algorithm"] == "zstd" and d[1]["disksize"] == 1 << 30, d
assert d[0]["mountpoint"] is None, d
PY

# NAME and MOUNTPOINT: a client holds the device open; a fake /sys says
# /dev/nbd7 is served by that client's pid, a fake /proc/swaps that it is
# swap.  The second device has no client: it keeps its socket as NAME.
nbdsh -u "$(uri_of "$tmpdir/sa")" -c "
import os, subprocess
root = '$tmpdir/root'
for d in ('sys/block/nbd7', 'sys/block/nbd3', 'proc/self'):
    os.makedirs(os.path.join(root, d), exist_ok=True)
open(root + '/sys/block/nbd7/pid', 'w').write('%d\n' % os.getpid())
open(root + '/sys/block/nbd7/dev', 'w').write('43:112\n')
open(root + '/sys/block/nbd3/pid', 'w').write('1\n')
open(root + '/proc/swaps', 'w').write('Filename Type Size Used Priority\n/dev/nbd7 partition 65532 0 -2\n')
open(root + '/proc/self/mountinfo', 'w').write('')
env = dict(os.environ, NBDZRAMCTL_SYSROOT=root)
out = subprocess.run(['$ctl', '--raw', '-o', 'NAME,MOUNTPOINT,SOCKET'], env=env,
                     capture_output=True, text=True, check=True).stdout
open('$tmpdir/named', 'w').write(out)
"
[ "$(sed -n 2p "$tmpdir/named")" = "/dev/nbd7 [SWAP] $tmpdir/run/a/ctl.sock" ] ||
  fail "NAME from /sys: $(cat "$tmpdir/named")"
[ "$(sed -n 3p "$tmpdir/named")" = "$tmpdir/run/bbbb/ctl.sock  $tmpdir/run/bbbb/ctl.sock" ] ||
  fail "unattached device: $(cat "$tmpdir/named")"

# -r resets the devices named, refusing one in use with the CLI's hint.
expect 0 "$ctl" -r "$tmpdir/run/bbbb/ctl.sock"
"$ctl" -s "$tmpdir/run/bbbb/ctl.sock" stats | grep -qx 'orig_data_size=0' ||
  fail "-r left data"
nbdsh -u "$(uri_of "$tmpdir/sa")" -c "
import subprocess
r = subprocess.run(['$ctl', '-r', '$tmpdir/run/a/ctl.sock'], capture_output=True, text=True)
assert r.returncode == 4, r
assert 'reset --force' in r.stderr, r.stderr
"
expect 1 "$ctl" -r
expect 1 "$ctl" -r -s "$tmpdir/run/a/ctl.sock" stats

# No device at all: an empty table and an empty exposition, not errors.
mkdir "$tmpdir/none"
NBDZRAMCTL_RUNDIR=$tmpdir/none expect 0 "$ctl" metrics
[ ! -s "$tmpdir/out" ] || fail "metrics without devices: $(cat "$tmpdir/out")"

# Metrics of both devices in one exposition.
expect 0 "$ctl" metrics
for d in "$tmpdir/run/a/ctl.sock" "$tmpdir/run/bbbb/ctl.sock"; do
  grep -q "^nbdzram_disksize_bytes{device=\"$d\"} " "$tmpdir/out" || fail "metrics lack $d"
done
[ "$(grep -c '^# TYPE nbdzram_disksize_bytes gauge$' "$tmpdir/out")" = 1 ] ||
  fail "a metric family printed twice"
if command -v promtool >/dev/null; then
  promtool check metrics <"$tmpdir/out" || fail "promtool: two devices"
fi

# The textfile collector's unit (contrib/systemd): its command writes the
# file whole, and removes it when a device cannot be read.
/usr/bin/python3 - "$srcdir/../contrib/systemd/nbdkit-zram-metrics.service" >"$tmpdir/unit.sh" <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
print(re.search(r"^ExecStart=/bin/sh -c '(.*)'$", text, re.M).group(1))
PY
mkdir "$tmpdir/bin"
ln -s "$ctl" "$tmpdir/bin/nbdzramctl"
PATH="$tmpdir/bin:$PATH" TEXTFILE_DIR="$tmpdir/textfile" sh -c "$(cat "$tmpdir/unit.sh")" ||
  fail "the metrics unit's command failed"
grep -q '^nbdzram_disksize_bytes{device=' "$tmpdir/textfile/nbdzram.prom" ||
  fail "no textfile written"
[ ! -e "$tmpdir/textfile/nbdzram.prom.tmp" ] || fail "temporary file left"
if NBDZRAMCTL_SOCKET=$tmpdir/none PATH="$tmpdir/bin:$PATH" TEXTFILE_DIR="$tmpdir/textfile" \
     sh -c "$(cat "$tmpdir/unit.sh")" 2>/dev/null; then
  fail "the metrics unit's command succeeded with a dead device"
fi
[ ! -e "$tmpdir/textfile/nbdzram.prom" ] || fail "stale metrics left behind"

# Over HTTP (libmicrohttpd), when built with it.
if command -v curl >/dev/null && ! "$ctl" metrics --listen nonsense 2>&1 |
     grep -q "built without libmicrohttpd"; then
  port=$(( 20000 + RANDOM % 20000 ))
  "$ctl" metrics --listen "127.0.0.1:$port" 2>"$tmpdir/http.err" &
  exporter=$!
  cleanup_fn "kill $exporter 2>/dev/null"
  for (( i = 0; i < 50; i++ )); do
    curl -s -o /dev/null "http://127.0.0.1:$port/metrics" && break
    sleep 0.1
  done
  code=$(curl -s -o "$tmpdir/scrape" -w '%{http_code}' "http://127.0.0.1:$port/metrics")
  [ "$code" = 200 ] || fail "scrape: HTTP $code $(cat "$tmpdir/http.err")"
  grep -q '^nbdzram_mem_used_bytes{device=' "$tmpdir/scrape" || fail "scrape body"
  if command -v promtool >/dev/null; then
    promtool check metrics <"$tmpdir/scrape" || fail "promtool: scrape"
  fi
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 404 ] ||
    fail "/ is not 404"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics")" = 405 ] ||
    fail "POST is not 405"
  # A server that stalls (stopped): 503 within the scrape timeout, not a
  # scrape that hangs.
  kill -STOP "$(cat "$tmpdir/pa")"
  code=$(curl -s -m 20 -o "$tmpdir/scrape" -w '%{http_code}' "http://127.0.0.1:$port/metrics")
  kill -CONT "$(cat "$tmpdir/pa")"
  [ "$code" = 503 ] && grep -q "no complete reply within 8 seconds" "$tmpdir/scrape" ||
    fail "scrape of a stalled device: HTTP $code $(cat "$tmpdir/scrape")"
  # A device that stops: 503 with the reason, and the exporter lives on.
  kill_nbdkit "$tmpdir/pb"
  code=$(curl -s -o "$tmpdir/scrape" -w '%{http_code}' "http://127.0.0.1:$port/metrics")
  [ "$code" = 503 ] && grep -q "bbbb/ctl.sock: no such control socket" "$tmpdir/scrape" ||
    fail "scrape of a stopped device: HTTP $code $(cat "$tmpdir/scrape")"
  kill -TERM "$exporter"
  wait "$exporter" || fail "the exporter did not exit 0 on SIGTERM"
  expect 1 "$ctl" metrics --listen nonsense
else
  echo "$0: nbdzramctl has no --listen here (or no curl): HTTP not tested"
fi
echo "$0: ok"
