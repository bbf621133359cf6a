#!/usr/bin/env bash
# Every bad plugin parameter fails at start-up with an error naming it, and
# good ones give the device they describe.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdinfo
make_tmpdir

# expect_error "text the message must contain" params...
expect_error () {
  local want=$1
  shift
  if run_nbdkit -U - "$ZRAM_PLUGIN" "$@" --run true 2>"$tmpdir/err"; then
    fail "nbdkit accepted: $*"
  fi
  grep -q -- "$want" "$tmpdir/err" ||
    fail "error for '$*' lacks '$want': $(cat "$tmpdir/err")"
}

expect_error "size" size=0
expect_error "size" size=-1
expect_error "size" size=banana
expect_error "size" size=
expect_error "size parameter is required" algorithm=lz4
expect_error "too large" size=1E
expect_error "accepted: lz4, lz4hc, zstd" 1G algorithm=gzip
expect_error "accepted: lz4, lz4hc, zstd" 1G algorithm=LZ4
expect_error "level: 99 is out of range for zstd; accepted: 1 to" 1G algorithm=zstd level=99
expect_error "out of range for lz4hc" 1G algorithm=lz4hc level=0
# lz4's level is its acceleration (zram's algorithm_params level).
expect_error "level: 0 is out of range for lz4; accepted: 1 to 65537" 1G level=0
expect_error "level: 65538 is out of range for lz4" 1G algorithm=lz4 level=65538
# Recompression algorithms: NAME[:LEVEL], up to 3, in priority order.
expect_error "recomp_algorithm: unknown algorithm 'gzip'; accepted: lz4, lz4hc, zstd" 1G recomp_algorithm=gzip
expect_error "recomp_algorithm: unknown algorithm 'ZSTD'" 1G recomp_algorithm=zstd:3,ZSTD
expect_error "recomp_algorithm: level '23' of zstd is not accepted: 1 to 22" 1G recomp_algorithm=zstd:23
expect_error "recomp_algorithm: level 'x' of zstd" 1G recomp_algorithm=zstd:x
expect_error "recomp_algorithm: level '' of lz4hc" 1G recomp_algorithm=lz4hc:
expect_error "recomp_algorithm: level '-1' of lz4" 1G recomp_algorithm=lz4:-1
expect_error "recomp_algorithm: more than 3 algorithms" 1G recomp_algorithm=lz4hc,zstd:3,zstd:12,zstd:19
expect_error "recomp_algorithm: an empty item" 1G recomp_algorithm=zstd,,zstd:19
expect_error "recomp_algorithm: an empty item" 1G recomp_algorithm=
expect_error "level" 1G algorithm=zstd level=three
expect_error "accepted: zs, malloc" 1G pool=slab
expect_error "mlock" 1G mlock=perhaps
expect_error "unknown parameter 'colour'" 1G colour=blue
expect_error "unknown parameter 'sizee'" sizee=1G
# Sizes: one syntax and one message everywhere (include/zram/size.h).
for bad in 1.5G 0x1000 4Gi " 4G" 4XB; do
  expect_error "size: '$bad' is not a size: use a whole number of bytes" "size=$bad"
  expect_error "mem_limit: '$bad' is not a size: use a whole number of bytes" 1G "mem_limit=$bad"
  if [ -x "${NBDZRAMCTL:-}" ]; then
    "$NBDZRAMCTL" -s "$tmpdir/none" mem-limit "$bad" 2>"$tmpdir/err" && fail "nbdzramctl accepted $bad"
    grep -q -- "mem-limit: '$bad' is not a size: use a whole number of bytes" "$tmpdir/err" ||
      fail "nbdzramctl mem-limit $bad: $(cat "$tmpdir/err")"
  fi
done
expect_error "too large" size=16E
expect_error "reserve: needs mlock=true" 1G reserve=8M
expect_error "reserve: 4096 bytes is too small" 1G reserve=4K mlock=true
expect_error "reserve" 1G reserve=lots
expect_error "reserve: pool=malloc keeps no reserve" 1G pool=malloc reserve=8M mlock=true
expect_error "reserve-wait: 60001 ms is too long" 1G reserve-wait=60001
expect_error "reserve-wait" 1G reserve-wait=soon
# Milliseconds are decimal: no hex (nbdkit_parse_unsigned took 0x10 as 16
# and 010 as 8), blanks, signs or units taken silently.
for bad in soon 0x10 " 5" 5ms -1 "" +5; do
  expect_error "reserve-wait: '$bad' is not a number of milliseconds" 1G mlock=true "reserve-wait=$bad"
done
expect_error "reserve-wait: 99999999999999999999 ms is too long" 1G reserve-wait=99999999999999999999
# A reserve larger than the device could never be drawn on: refused, not
# populated and locked for nothing.
expect_error "reserve: 1073741824 bytes is more than the device (size=1048576 bytes) can ever store" \
  1M mlock=true reserve=1G

# Good parameters: the size is rounded up to whole 4 KiB pages.
# (A daemon rather than --run: the command --run starts would inherit a
# sanitizer preload meant for nbdkit alone.)
n=0
expect_size () {
  local want=$1 got
  shift
  n=$((n + 1))
  start_nbdkit "$tmpdir/pid$n" "$tmpdir/sock$n" "$@"
  got=$(nbdinfo --size "$(uri_of "$tmpdir/sock$n")")
  kill_nbdkit "$tmpdir/pid$n"
  [ "$got" = "$want" ] || fail "$*: size $got, expected $want"
}
expect_size 1073741824 1G
expect_size 4096 size=1000
expect_size 12288 size=8193
expect_size 1099511627776 1T
for good in 4G 4GiB 4GB 4g 4294967296; do
  expect_size 4294967296 "$good"
done
for a in lz4 lz4hc zstd; do
  expect_size 1048576 1M algorithm=$a
done
expect_size 1048576 1M algorithm=zstd level=19
expect_size 1048576 1M algorithm=lz4hc level=12 pool=malloc
expect_size 1048576 1M algorithm=lz4 level=8
expect_size 1048576 1M recomp_algorithm=zstd:3,zstd:19
expect_size 1048576 1M recomp_algorithm=lz4hc,zstd,zstd:22

# mem_limit= at start is the device's mem_limit.
if [ -x "${NBDZRAMCTL:-}" ]; then
  start_nbdkit "$tmpdir/pidm" "$tmpdir/sockm" 1G mem_limit=3MiB ctl="$tmpdir/ctlm"
  "$NBDZRAMCTL" -s "$tmpdir/ctlm" stats | grep -qx 'mem_limit=3145728' ||
    fail "mem_limit=3MiB: $("$NBDZRAMCTL" -s "$tmpdir/ctlm" stats)"
  kill_nbdkit "$tmpdir/pidm"
  # The levels in effect: lz4's acceleration; the recompression list with
  # each default level filled in; a reset keeps the list.
  start_nbdkit "$tmpdir/pidr" "$tmpdir/sockr" 1M level=8 \
    recomp_algorithm=lz4hc,zstd:19 ctl="$tmpdir/ctlr"
  "$NBDZRAMCTL" -s "$tmpdir/ctlr" stats > "$tmpdir/stats"
  grep -qx 'level=8' "$tmpdir/stats" || fail "level=8: $(cat "$tmpdir/stats")"
  grep -qx 'recomp_algorithm=lz4hc:9,zstd:19' "$tmpdir/stats" ||
    fail "recomp_algorithm: $(cat "$tmpdir/stats")"
  "$NBDZRAMCTL" -s "$tmpdir/ctlr" reset --force
  "$NBDZRAMCTL" -s "$tmpdir/ctlr" stats |
    grep -qx 'recomp_algorithm=lz4hc:9,zstd:19' || fail "a reset lost the list"
  kill_nbdkit "$tmpdir/pidr"
fi

# The default reserve of a device smaller than 4 MiB is its size; 0 through
# 60000 ms of reserve-wait are taken.
if [ -x "${NBDZRAMCTL:-}" ] &&
   { [ "$(id -u)" = 0 ] || [ "$(ulimit -l)" = unlimited ]; }; then
  start_nbdkit "$tmpdir/pidres" "$tmpdir/sockres" 1M mlock=true reserve-wait=0 ctl="$tmpdir/ctlres"
  "$NBDZRAMCTL" -s "$tmpdir/ctlres" stats | grep -qx 'reserve_bytes=1048576' ||
    fail "1M mlock=true: $("$NBDZRAMCTL" -s "$tmpdir/ctlres" stats | grep reserve_bytes)"
  kill_nbdkit "$tmpdir/pidres"
  expect_size 1048576 1M mlock=true reserve=1M reserve-wait=60000
fi

# --dump-plugin names the algorithms.
run_nbdkit "$ZRAM_PLUGIN" --dump-plugin > "$tmpdir/dump"
grep -q '^zram_algorithms=lz4 lz4hc zstd$' "$tmpdir/dump" || fail "--dump-plugin"
echo "$0: ok"
