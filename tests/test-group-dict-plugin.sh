#!/usr/bin/env bash
# dict=FILE together with group_pages=16, through the plugin, on both pool
# kinds: data written with nbdcopy is compressed with the dictionary,
# marked idle and grouped (the groups' frames use the dictionary too, so
# the pages stay counted in dict_pages), reads back, leaves its groups by
# writeback, overwrite and dissolve with every byte intact, and after a
# trim no page uses the dictionary; a reset with groups stored keeps
# both settings.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdsh cmp python3
requires_nbdzramctl
make_tmpdir

python3 "$srcdir/dict-data.py" "$tmpdir" 4
truncate -s 8M "$tmpdir/store"

for pool in zs malloc; do
  ctl=("$NBDZRAMCTL" -s "$tmpdir/ctl.$pool")
  stat_of () { "${ctl[@]}" stats | sed -n "s/^$1=//p"; }
  # group_age: the policy keeps out of the way of the commands below.
  start_nbdkit "$tmpdir/pid.$pool" "$tmpdir/sock.$pool" 8M pool=$pool \
    algorithm=zstd dict="$tmpdir/dict" group_pages=16 group_age=3600 \
    backing="$tmpdir/store" recomp_policy=off ctl="$tmpdir/ctl.$pool"
  uri=$(uri_of "$tmpdir/sock.$pool")
  nbdcopy "$tmpdir/image" "$uri" || fail "nbdcopy failed"
  [ "$(stat_of dict_pages)" = 1024 ] || fail "$pool: dict_pages $(stat_of dict_pages)"
  mem0=$(stat_of compr_data_size)

  "${ctl[@]}" idle all >/dev/null || fail "idle all failed"
  "${ctl[@]}" group >"$tmpdir/out" || fail "group failed: $(cat "$tmpdir/out")"
  "${ctl[@]}" stats >"$tmpdir/stats"
  get () { sed -n "s/^$1=//p" "$tmpdir/stats"; }
  echo "$pool: $mem0 bytes alone; grouped $(get group_pages) pages in" \
       "$(get group_objects) groups, $(get compr_data_size) bytes;" \
       "dict_pages $(get dict_pages)"
  [ "$(get group_pages)" = 1024 ] || fail "$pool: group_pages $(get group_pages)"
  # The frames were compressed with the dictionary (their own trial).
  [ "$(get dict_pages)" = 1024 ] || fail "$pool: dict_pages $(get dict_pages)"
  [ "$(get compr_data_size)" -lt "$mem0" ] ||
    fail "$pool: groups did not save: $mem0 -> $(get compr_data_size)"
  nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back failed"
  cmp -n $((4 << 20)) "$tmpdir/image" "$tmpdir/back" || fail "$pool: grouped data differs"

  # The first 100 pages to the store (stored alone, no dictionary), then
  # 8 pages overwritten, then the groups that lost members taken apart.
  "${ctl[@]}" idle all >/dev/null || fail "idle all failed"
  "${ctl[@]}" writeback type=idle max_pages=100 >"$tmpdir/out" ||
    fail "writeback failed: $(cat "$tmpdir/out")"
  [ "$(stat_of bd_count)" = 100 ] || fail "$pool: bd_count $(stat_of bd_count)"
  [ "$(stat_of dict_pages)" = 924 ] || fail "$pool: after writeback dict_pages $(stat_of dict_pages)"
  # (pages 200..207 get pages 0..7's bytes)
  dd if="$tmpdir/image" of="$tmpdir/part" bs=4096 count=8 status=none
  nbdsh -u "$uri" -c "h.pwrite(open('$tmpdir/part', 'rb').read(), 200 * 4096)" ||
    fail "the overwrite failed"
  dd if="$tmpdir/part" of="$tmpdir/image" bs=4096 seek=200 conv=notrunc status=none
  "${ctl[@]}" dissolve >"$tmpdir/out" || fail "dissolve failed: $(cat "$tmpdir/out")"
  grep -qx "failed=0" "$tmpdir/out" || fail "$pool: dissolve: $(cat "$tmpdir/out")"
  nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back failed"
  cmp -n $((4 << 20)) "$tmpdir/image" "$tmpdir/back" || fail "$pool: data differs after leaving groups"
  [ "$(stat_of dict_pages)" = 924 ] || fail "$pool: after dissolve dict_pages $(stat_of dict_pages)"

  # Trimmed: no page, no group, no dictionary count left.
  nbdsh -u "$uri" -c 'h.trim(h.get_size(), 0)' 2>/dev/null ||
    fail "$pool: trim failed"
  "${ctl[@]}" stats >"$tmpdir/stats"
  [ "$(get dict_pages)" = 0 ] && [ "$(get group_pages)" = 0 ] &&
    [ "$(get group_objects)" = 0 ] && [ "$(get orig_data_size)" = 0 ] &&
    [ "$(get bd_count)" = 0 ] ||
    fail "$pool: left after trim: $(grep -E '^(dict_pages|group_|orig_data_size|bd_count)' "$tmpdir/stats")"

  # A reset while groups compressed with the dictionary are stored.
  nbdcopy "$tmpdir/image" "$uri" || fail "nbdcopy failed"
  "${ctl[@]}" idle all >/dev/null && "${ctl[@]}" group >/dev/null || fail "group failed"
  "${ctl[@]}" reset --force >/dev/null || fail "$pool: reset failed"
  "${ctl[@]}" stats >"$tmpdir/stats"
  [ "$(get dict_version)" = 1 ] && [ "$(get dict_pages)" = 0 ] &&
    [ "$(get group_pages_max)" = 16 ] && [ "$(get group_objects)" = 0 ] ||
    fail "$pool: after reset: $(grep -E '^(dict_|group_)' "$tmpdir/stats")"
  nbdcopy "$tmpdir/image" "$uri" || fail "nbdcopy failed"
  "${ctl[@]}" idle all >/dev/null && "${ctl[@]}" group >/dev/null || fail "group failed"
  [ "$(stat_of dict_pages)" = 1024 ] || fail "$pool: after reset, grouped dict_pages $(stat_of dict_pages)"
  nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back failed"
  cmp -n $((4 << 20)) "$tmpdir/image" "$tmpdir/back" || fail "$pool: data differs after reset"
  kill_nbdkit "$tmpdir/pid.$pool" || fail "nbdkit did not stop"
done
