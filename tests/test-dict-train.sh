#!/usr/bin/env bash
# dict_train=on: the background policy trains a dictionary from the pages
# written and publishes it (dict_version moves, pages written afterwards
# use it, every byte reads back); with a gain nobody reaches, every
# dictionary is rejected and nothing changes.  Settings without
# dict_train=on, and bad values, are refused at start.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy cmp python3
requires_nbdzramctl
make_tmpdir
chmod 0711 "$tmpdir"

refused_start "need dict_train=on" dict_train_gain=5
refused_start "dict_train: expected on or off" dict_train=maybe
refused_start "dict_train_gain: expected a percentage" dict_train=on dict_train_gain=200
refused_start "dict_train_period: 0 seconds is out of range" dict_train=on dict_train_period=0

python3 "$srcdir/dict-data.py" "$tmpdir" 4
stat_of () { "$NBDZRAMCTL" -s "$1" stats | sed -n "s/^$2=//p"; }

# wait_for CTL KEY: until stat KEY is above 0, at most 30 s.
wait_for () {
  local i
  for (( i = 0; i < 300; i++ )); do
    [ "$(stat_of "$1" "$2")" -gt 0 ] 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$2 stayed 0: $("$NBDZRAMCTL" -s "$1" stats | grep dict_)"
}

# Published: new writes use the dictionary.
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 16M ctl="$tmpdir/ctl" \
  dict_train=on dict_train_period=1 dict_train_min_pages=256
uri=$(uri_of "$tmpdir/sock")
nbdcopy "$tmpdir/image" "$uri"
before=$(stat_of "$tmpdir/ctl" compr_data_size)
wait_for "$tmpdir/ctl" dict_version
[ "$(stat_of "$tmpdir/ctl" dict_pages)" = 0 ] || fail "pages changed dictionary by themselves"
nbdcopy "$tmpdir/image" "$uri"          # the same data again, now with it
after=$(stat_of "$tmpdir/ctl" compr_data_size)
pages=$(stat_of "$tmpdir/ctl" dict_pages)
echo "lz4: $before bytes before training, $after after; dict_pages $pages;" \
  "version $(stat_of "$tmpdir/ctl" dict_version)," \
  "$(stat_of "$tmpdir/ctl" dict_bytes) bytes"
[ "$pages" -gt 512 ] || fail "only $pages pages use the dictionary"
[ "$after" -lt "$before" ] || fail "the dictionary did not help: $before -> $after"
nbdcopy "$uri" "$tmpdir/back"
truncate -s 4M "$tmpdir/back"
cmp "$tmpdir/image" "$tmpdir/back" || fail "data differs after training"
kill_nbdkit "$tmpdir/pid"

# Rejected: a gain of 100 % is never reached.
start_nbdkit "$tmpdir/pid2" "$tmpdir/sock2" 16M ctl="$tmpdir/ctl2" \
  algorithm=zstd dict_train=on dict_train_period=1 dict_train_min_pages=256 \
  dict_train_gain=100
nbdcopy "$tmpdir/image" "$(uri_of "$tmpdir/sock2")"
wait_for "$tmpdir/ctl2" dict_rejected
[ "$(stat_of "$tmpdir/ctl2" dict_version)" = 0 ] &&
  [ "$(stat_of "$tmpdir/ctl2" dict_pages)" = 0 ] ||
  fail "a rejected dictionary was used: $("$NBDZRAMCTL" -s "$tmpdir/ctl2" stats | grep dict_)"
echo "zstd, gain 100 %: $(stat_of "$tmpdir/ctl2" dict_rejected) rejected"
kill_nbdkit "$tmpdir/pid2"
