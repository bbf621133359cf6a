#!/usr/bin/env bash
# Writeback to an NBD server (backing=nbd+unix://...): a second nbdkit
# serves a file on a unix socket.  Pages written back read back the same;
# when the store server dies (mid-read, mid-writeback) or hangs, reads of
# written-back pages fail with EIO within the deadline, writeback stops
# with an error and leaves its pages in RAM, the zram server neither
# crashes nor hangs, and once the store is back (same file) everything
# reads back by itself; a store restarted while the device was idle costs
# no failed read.  Another client overwriting the export is caught
# by the checksums.  A reset works with pages in a store that is down.
# A server without multi-conn gets one connection, shared by all.
# Bad URIs and unreachable, read-only or tiny stores stop the start with a
# clear message.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdsh
requires_nbdzramctl
requires_python_nbd
make_tmpdir

# The store's server: an nbdkit with the file plugin and the delay filter
# (dev.sh's own nbdkit has only memory and null; Debian's has them).
store_nbdkit=
for n in nbdkit /usr/bin/nbdkit /usr/sbin/nbdkit; do
  if "$n" --filter=delay file --version >/dev/null 2>&1; then
    store_nbdkit=$n
    break
  fi
done
[ -n "$store_nbdkit" ] ||
  { echo "$0: SKIP: no nbdkit with the file plugin and delay filter"; exit 77; }

store=$tmpdir/store
ssock=$tmpdir/ssock
suri="nbd+unix:///?socket=$ssock"
# start_store [-OPTION...] [KEY=VALUE...]: serve $store on $ssock (not
# under the sanitizer runtime: it is not code under test).
start_store () {
  local opts=()
  while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do opts+=("$1"); shift; done
  rm -f "$ssock" "$tmpdir/spid"
  "$store_nbdkit" -P "$tmpdir/spid" -U "$ssock" "${opts[@]}" file "$store" "$@" ||
    fail "the store server did not start"
  for (( i = 0; i < 100; i++ )); do [ -S "$ssock" ] && break; sleep 0.1; done
}
# The store server dies: SIGKILL, no goodbye.
kill_store () {
  local pid
  pid=$(cat "$tmpdir/spid")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}
cleanup_fn "kill -9 \$(cat '$tmpdir/spid' 2>/dev/null) 2>/dev/null"

# --- bad stores at start ---------------------------------------------------
refused_start "unknown URI scheme" backing=http://localhost/store
refused_start "cannot connect to the NBD server" backing="nbd://localhost:notaport/"
refused_start "backing store 'nbd+unix:///?socket=$tmpdir/nosock': cannot connect to the NBD server" \
  backing="nbd+unix:///?socket=$tmpdir/nosock"
refused_start "the socket path is relative" backing="nbd+unix:///?socket=ssock"
head -c 1000 /dev/zero >"$store"
start_store
refused_start "smaller than one block" backing="$suri"
kill_store
truncate -s 64M "$store"
start_store -r
refused_start "exports it read-only" backing="$suri"
kill_store

# --- writeback and read back -------------------------------------------------
start_store
start_nbdkit "$tmpdir/zpid" "$tmpdir/zsock" 64M recomp_policy=off \
  backing="$suri" ctl="$tmpdir/ctl"
zpid=$(cat "$tmpdir/zpid")
uri=$(uri_of "$tmpdir/zsock")
c=("$NBDZRAMCTL" -s "$tmpdir/ctl")
stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }
alive () { kill -0 "$zpid" 2>/dev/null || fail "the zram server died ($*)"; }

# 16 MiB: text-like pages, then random (huge) ones.
seq -f 'line %08.0f: cold pages go to a store on another server' 1 400000 |
  head -c 12M >"$tmpdir/data"
head -c 4M /dev/urandom >>"$tmpdir/data"
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy in"
[ "$(stat_of backing_blocks)" = $((64 << 20 >> 12)) ] ||
  fail "backing_blocks=$(stat_of backing_blocks)"
expect 0 "${c[@]}" writeback type=huge
grep -qx 'written=1024' "$tmpdir/out" || fail "huge: $(cat "$tmpdir/out")"
expect 0 "${c[@]}" idle all
expect 0 "${c[@]}" writeback type=idle
total=$(stat_of bd_count)
[ "$total" = 4096 ] || fail "bd_count=$total, expected all 4096 pages"
nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back"
cmp <(head -c 16M "$tmpdir/back") "$tmpdir/data" || fail "data changed"
[ "$(stat_of backing_errors)" = 0 ] || fail "backing_errors=$(stat_of backing_errors)"

# --- the store restarts while the device is idle ------------------------------
# Every connection kept is stale, but the server is there again: the
# first reads after (nbdcopy's, many at once) go through on fresh
# connections, and none fails.
kill_store
start_store
nbdcopy "$uri" "$tmpdir/back1" ||
  fail "reads failed after the store restarted while the device was idle"
cmp <(head -c 16M "$tmpdir/back1") "$tmpdir/data" || fail "data changed (restart)"
[ "$(stat_of failed_reads)" = 0 ] || fail "failed_reads=$(stat_of failed_reads)"
echo "store restarted: backing_reconnects=$(stat_of backing_reconnects)"
[ "$(stat_of backing_reconnects)" -gt 0 ] || fail "no reconnect counted"

# read_page OFFSET: print "ok" or the errno name of a 4 KiB read, and the
# seconds it took.
read_page () {
  /usr/bin/python3 -c '
import errno, nbd, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
t = time.monotonic()
try:
    h.pread(4096, int(sys.argv[2])); r = "ok"
except nbd.Error as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print(r, "%.1f" % (time.monotonic() - t))' "$uri" "$1"
}

# read_all_when_back FILE: the store was restarted; copy the device to FILE
# as soon as reads work again (the device reconnects by itself), within
# 10 s.
read_all_when_back () {
  local i
  for (( i = 0; i < 50; i++ )); do
    nbdcopy "$uri" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  fail "reads still fail 10 s after the store came back"
}

# --- the store dies: reads of written-back pages fail at once ----------------
# 1 MiB past the data is written after the writeback: it stays in RAM.
head -c 1M /dev/urandom >"$tmpdir/ram"
nbdsh -u "$uri" -c "h.pwrite(open('$tmpdir/ram', 'rb').read(), 32 << 20)" ||
  fail "pwrite"
kill_store
read -r r secs < <(read_page 0)
echo "read of a written-back page, store dead: $r in $secs s"
[ "$r" = EIO ] || fail "read with the store dead: $r"
[ "${secs%.*}" -lt 3 ] || fail "the read took $secs s"
if timeout 60 nbdcopy "$uri" "$tmpdir/back2" 2>"$tmpdir/err"; then
  fail "nbdcopy read everything with the store dead"
fi
grep -q "Input/output error" "$tmpdir/err" || fail "nbdcopy: $(cat "$tmpdir/err")"
cmp <(nbdsh -u "$uri" -c 'import sys; sys.stdout.buffer.write(h.pread(1 << 20, 32 << 20))') \
  "$tmpdir/ram" || fail "pages in RAM unreadable with the store dead"
alive "store dead, reads"
errs=$(stat_of backing_errors)
[ "$errs" -gt 0 ] || fail "backing_errors=$errs after failed reads"

# Writeback with the store dead: an error, the pages stay in RAM.
expect 0 "${c[@]}" idle all
expect 4 "${c[@]}" writeback type=idle
grep -q "the backing store failed a write after 0 pages" "$tmpdir/err" ||
  fail "writeback, store dead: $(cat "$tmpdir/err")"
[ "$(stat_of bd_count)" = "$total" ] || fail "bd_count=$(stat_of bd_count)"
cmp <(nbdsh -u "$uri" -c 'import sys; sys.stdout.buffer.write(h.pread(1 << 20, 32 << 20))') \
  "$tmpdir/ram" || fail "pages left in RAM changed"
alive "store dead, writeback"

# --- the store comes back (same file): reads work again by themselves --------
start_store
read_all_when_back "$tmpdir/back3"
cmp <(head -c 16M "$tmpdir/back3") "$tmpdir/data" || fail "data changed after reconnect"
rc=$(stat_of backing_reconnects)
echo "after the restart: backing_reconnects=$rc backing_errors=$(stat_of backing_errors)"
[ "$rc" -gt 0 ] || fail "backing_reconnects=$rc"

# --- the store hangs: a read fails within the deadline ------------------------
kill -STOP "$(cat "$tmpdir/spid")"
read -r r secs < <(read_page 4096)
kill -CONT "$(cat "$tmpdir/spid")"
echo "read of a written-back page, store hung: $r in $secs s"
[ "$r" = EIO ] || fail "read with the store hung: $r"
[ "${secs%.*}" -lt 12 ] || fail "the read waited $secs s"
alive "store hung"

# --- the store hangs: overwriting or trimming written-back pages does not
# wait for it (the blocks they free are trimmed later, in the background).
# 40 pages of the written-back data written again with the same bytes,
# then 40 more trimmed and written again.
[ "$(stat_of bd_count)" -ge 2048 ] || fail "too few pages written back"
kill -STOP "$(cat "$tmpdir/spid")"
secs=$(nbdsh -u "$uri" -c "
import time
data = open('$tmpdir/data', 'rb').read()
t = time.monotonic()
for p in range(1024, 1064):
    h.pwrite(data[p * 4096:(p + 1) * 4096], p * 4096)
for p in range(1064, 1104):
    h.trim(4096, p * 4096)
    h.pwrite(data[p * 4096:(p + 1) * 4096], p * 4096)
print('%.1f' % (time.monotonic() - t))") || {
  kill -CONT "$(cat "$tmpdir/spid")"; fail "overwrites with the store hung"; }
kill -CONT "$(cat "$tmpdir/spid")"
echo "80 overwrites of written-back pages, store hung: $secs s"
[ "${secs%.*}" -lt 2 ] || fail "overwrites waited $secs s for a hung store"
alive "store hung, overwrites"

# --- the store dies in the middle of a writeback ------------------------------
# The store slowed down (50 ms a write; writeback sends 16 blocks at once)
# so that the walk is surely under way after a second.
kill_store
start_store --filter=delay wdelay=50ms
for (( i = 0; i < 50; i++ )); do   # until the connections are back
  [ "$(read_page 0 | cut -d' ' -f1)" = ok ] && break
  sleep 0.2
done
head -c 8M /dev/urandom >"$tmpdir/data2"
nbdcopy "$tmpdir/data2" "$uri" || fail "nbdcopy data2"
expect 0 "${c[@]}" writeback type=huge max_pages=1
before=$(stat_of bd_count)
"${c[@]}" writeback type=huge >"$tmpdir/wbout" 2>"$tmpdir/wberr" &
wb=$!
sleep 1
kill_store
wbrc=0
wait "$wb" || wbrc=$?
echo "writeback killed part way: exit $wbrc, $(cat "$tmpdir/wberr")"
[ "$wbrc" = 4 ] || fail "writeback exited $wbrc: $(cat "$tmpdir/wbout" "$tmpdir/wberr")"
grep -q "the backing store failed a write after [1-9][0-9]* pages" "$tmpdir/wberr" ||
  fail "writeback: $(cat "$tmpdir/wberr")"
after=$(stat_of bd_count)
[ "$after" -gt "$before" ] && [ "$after" -lt $((before + 2048)) ] ||
  fail "bd_count $before -> $after: the writeback was not cut part way"
alive "store died mid-writeback"
start_store
read_all_when_back "$tmpdir/back4"
cmp -n $((8 << 20)) "$tmpdir/back4" "$tmpdir/data2" || fail "data2 changed"

# --- another client corrupts the store: caught, never served ----------------
# Nothing can lock an NBD export; the checksums catch what another
# writer did to it.
head -c 16M /dev/urandom >"$tmpdir/junk"
nbdcopy "$tmpdir/junk" "$suri" || fail "nbdcopy junk into the store"
if nbdcopy "$uri" "$tmpdir/back7" 2>"$tmpdir/err"; then
  fail "the device served pages of a corrupted store"
fi
grep -q "Input/output error" "$tmpdir/err" || fail "corrupted: $(cat "$tmpdir/err")"
ce=$(stat_of bd_checksum_errors)
echo "store overwritten by another client: bd_checksum_errors=$ce"
[ "$ce" -gt 0 ] || fail "bd_checksum_errors=$ce"
alive "store corrupted"

# --- a reset with pages in a store that is down -------------------------------
kill_store
expect 0 timeout 30 "${c[@]}" reset --force
[ "$(stat_of bd_count)" = 0 ] || fail "bd_count after reset: $(stat_of bd_count)"
cmp <(nbdsh -u "$uri" -c 'import sys; sys.stdout.buffer.write(h.pread(1 << 20, 0))') \
  <(head -c 1M /dev/zero) || fail "the device is not zero after the reset"
alive "reset with the store down"
start_store
nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy after reset"
ok=0
for (( i = 0; i < 50; i++ )); do
  if "${c[@]}" writeback type=huge >"$tmpdir/out" 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ "$ok" = 1 ] || fail "writeback after the reset: $(cat "$tmpdir/out")"
grep -qx 'written=1024' "$tmpdir/out" || fail "huge after reset: $(cat "$tmpdir/out")"
nbdcopy "$uri" "$tmpdir/back5" || fail "nbdcopy after reset"
cmp <(head -c 16M "$tmpdir/back5") "$tmpdir/data" || fail "data after reset"

kill_nbdkit "$tmpdir/zpid"
kill_store

# --- a server without multi-conn: one connection carries everything --------
start_store --filter=multi-conn multi-conn-mode=disable
start_nbdkit "$tmpdir/zpid1" "$tmpdir/zsock1" 64M recomp_policy=off \
  backing="$suri" ctl="$tmpdir/ctl1"
uri1=$(uri_of "$tmpdir/zsock1")
nbdcopy "$tmpdir/data" "$uri1" || fail "nbdcopy in (one connection)"
expect 0 "$NBDZRAMCTL" -s "$tmpdir/ctl1" writeback type=huge
grep -qx 'written=1024' "$tmpdir/out" || fail "one connection: $(cat "$tmpdir/out")"
# nbdcopy reads with several connections and requests at once: they all
# share the store's one connection.
nbdcopy "$uri1" "$tmpdir/back6" || fail "nbdcopy back (one connection)"
cmp <(head -c 16M "$tmpdir/back6") "$tmpdir/data" || fail "data (one connection)"
kill_nbdkit "$tmpdir/zpid1"
kill_store
echo "$0: ok"
