#!/usr/bin/env bash
# dict=PATH: a missing, empty, oversized, unreadable or non-regular file,
# or a zstd dictionary header that is no dictionary, stops the start with
# a message; a good dictionary compresses the data it describes smaller,
# every byte reads back, the stats say so, and a reset to another
# algorithm keeps it.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy cmp
requires_nbdzramctl
make_tmpdir
chmod 0711 "$tmpdir"

# Bad files.
refused_start "dict: cannot open '$tmpdir/none'" dict="$tmpdir/none"
: > "$tmpdir/empty"
refused_start "dict: '$tmpdir/empty' has 0 bytes" dict="$tmpdir/empty"
head -c $((1024 * 1024 + 1)) /dev/zero > "$tmpdir/big"
refused_start "has 1048577 bytes; a dictionary has 1 to 1048576" dict="$tmpdir/big"
refused_start "is not a regular file" dict="$tmpdir"
printf '\067\244\060\354garbage-after-the-zstd-dictionary-magic' > "$tmpdir/fake"
refused_start "zstd refuses the dictionary" algorithm=zstd dict="$tmpdir/fake"
if [ "$(id -u)" != 0 ]; then
  echo x > "$tmpdir/noread"
  chmod 000 "$tmpdir/noread"
  refused_start "dict: cannot open '$tmpdir/noread'" dict="$tmpdir/noread"
fi

# Data: 4 MiB of records drawn from 512 random 32-byte tokens; the
# dictionary is the tokens themselves (what 'zstd --train' would find).
python3 "$srcdir/dict-data.py" "$tmpdir" 4

ctl=("$NBDZRAMCTL" -s "$tmpdir/ctl")
stat_of () { "${ctl[@]}" stats | sed -n "s/^$1=//p"; }

start_nbdkit "$tmpdir/pid0" "$tmpdir/sock0" 8M ctl="$tmpdir/ctl0"
nbdcopy "$tmpdir/image" "$(uri_of "$tmpdir/sock0")"
plain=$("$NBDZRAMCTL" -s "$tmpdir/ctl0" stats | sed -n 's/^compr_data_size=//p')
kill_nbdkit "$tmpdir/pid0"

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 8M ctl="$tmpdir/ctl" dict="$tmpdir/dict"
uri=$(uri_of "$tmpdir/sock")
[ "$(stat_of dict_version)" = 1 ] || fail "dict_version: $(stat_of dict_version)"
[ "$(stat_of dict_bytes)" = 16384 ] || fail "dict_bytes: $(stat_of dict_bytes)"
nbdcopy "$tmpdir/image" "$uri"
nbdcopy "$uri" "$tmpdir/back"
truncate -s 4M "$tmpdir/back"
cmp "$tmpdir/image" "$tmpdir/back" || fail "lz4 with dict: data differs"
with=$(stat_of compr_data_size)
pages=$(stat_of dict_pages)
echo "lz4: $plain bytes without the dictionary, $with with it; dict_pages $pages"
[ "$pages" = 1024 ] || fail "dict_pages $pages, not 1024"
[ $((with * 2)) -lt "$plain" ] || fail "the dictionary did not halve $plain bytes"

# A reset to zstd keeps the dictionary.
"${ctl[@]}" reset --force --algorithm zstd >/dev/null ||
  fail "reset to zstd refused"
[ "$(stat_of algorithm)" = zstd ] || fail "algorithm after reset: $(stat_of algorithm)"
[ "$(stat_of dict_version)" = 1 ] && [ "$(stat_of dict_pages)" = 0 ] ||
  fail "after reset: $("${ctl[@]}" stats | grep dict_)"
nbdcopy "$tmpdir/image" "$uri"
nbdcopy "$uri" "$tmpdir/back"
truncate -s 4M "$tmpdir/back"
cmp "$tmpdir/image" "$tmpdir/back" || fail "zstd with dict: data differs"
[ "$(stat_of dict_pages)" = 1024 ] || fail "zstd dict_pages $(stat_of dict_pages)"
echo "zstd: $(stat_of compr_data_size) bytes with the dictionary"
kill_nbdkit "$tmpdir/pid"
