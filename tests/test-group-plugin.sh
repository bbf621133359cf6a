#!/usr/bin/env bash
# Multi-page groups through the plugin, beyond test-group-ctl.sh: the
# group policy groups cold data written by a real client on both pool
# kinds (pool=malloc frees each piece itself), every byte reads back, also
# after an overwrite; block status calls grouped pages data; the
# statistics add up and promtool accepts the metrics; a reset keeps the
# group settings on both pools.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy
requires_nbdzramctl
ctl=$NBDZRAMCTL
make_tmpdir

# Refusals test-group-ctl.sh does not make.
refused_start "group_pages" group_pages=lots >/dev/null
refused_start "group_algorithm: applies to multi-page groups" \
  group_pages=0 group_algorithm=zstd >/dev/null
refused_start "group_algorithm: unknown algorithm 'gzip'" \
  group_pages=4 group_algorithm=gzip >/dev/null
refused_start "group_algorithm: give one algorithm, NAME or NAME:LEVEL" \
  group_pages=4 group_algorithm= >/dev/null
refused_start "group_budget: '200' is not a share" group_pages=4 group_budget=200 >/dev/null
refused_start "group_live_min: '101' is not a whole percentage" \
  group_pages=4 group_live_min=101 >/dev/null

# Text-like data: compresses well alone, better in groups.
seq -f 'line %08.0f: cold pages are compressed together in groups' 1 200000 |
  head -c 8M >"$tmpdir/data"

for pool in zs malloc; do
  start_nbdkit "$tmpdir/pid.$pool" "$tmpdir/sock.$pool" 32M pool=$pool \
    group_pages=16 group_algorithm=zstd:3 group_age=1 group_budget=100 \
    ctl="$tmpdir/ctl.$pool"
  uri=$(uri_of "$tmpdir/sock.$pool")
  c=("$ctl" -s "$tmpdir/ctl.$pool")
  stat_of () { "${c[@]}" stats | sed -n "s/^$1=//p"; }
  [ "$(stat_of group_pages_max)" = 16 ] || fail "group_pages_max"
  [ "$(stat_of group_algorithm)" = zstd:3 ] || fail "group_algorithm"
  nbdcopy "$tmpdir/data" "$uri" || fail "nbdcopy failed"
  compr0=$(stat_of compr_data_size)
  # The policy groups pages a second cold; give it up to 30 s.
  for (( i = 0; i < 300; i++ )); do
    [ "$(stat_of group_pages)" -ge 1024 ] && break
    sleep 0.1
  done
  "${c[@]}" stats >"$tmpdir/stats"
  get () { sed -n "s/^$1=//p" "$tmpdir/stats"; }
  [ "$(get group_pages)" -ge 1024 ] ||
    fail "$pool: the policy grouped $(get group_pages) pages in 30 s"
  [ "$(get group_policy)" = 1 ] && [ "$(get group_policy_pages)" -gt 0 ] ||
    fail "$pool: group_policy $(get group_policy) pages $(get group_policy_pages)"
  [ "$(get orig_data_size)" = $((8 << 20)) ] ||
    fail "$pool: orig_data_size $(get orig_data_size)"
  [ "$(get group_compr_size)" -le "$(get compr_data_size)" ] &&
    [ "$(get compr_data_size)" -lt "$compr0" ] ||
    fail "$pool: compr $compr0 -> $(get compr_data_size), groups $(get group_compr_size)"
  [ "$(get group_objects)" -ge $(( $(get group_pages) / 16 )) ] ||
    fail "$pool: $(get group_objects) objects for $(get group_pages) pages"
  nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back failed"
  cmp -n $((8 << 20)) "$tmpdir/data" "$tmpdir/back" || fail "$pool: data differs"
  # Block status: grouped pages are data, the rest of the device zero.
  if command -v nbdinfo >/dev/null; then
    nbdinfo --map "$uri" >"$tmpdir/map"
    read -r off len _ what < <(head -1 "$tmpdir/map")
    [ "$off" = 0 ] && [ "$len" = $((8 << 20)) ] && [ "$what" = data ] ||
      fail "$pool: map of grouped data: $(cat "$tmpdir/map")"
  fi
  # Overwrite the first MiB with other bytes: members leave their groups.
  head -c 1M /dev/urandom >"$tmpdir/rand"
  nbdcopy "$tmpdir/rand" "$uri" ||
    fail "nbdcopy failed"
  nbdcopy "$uri" "$tmpdir/back" || fail "nbdcopy back failed"
  cmp -n $((1 << 20)) "$tmpdir/rand" "$tmpdir/back" || fail "$pool: data differs"
  cmp -i $((1 << 20)) -n $((7 << 20)) "$tmpdir/data" "$tmpdir/back" ||
    fail "$pool: data differs after the overwrite"

  if command -v promtool >/dev/null; then
    "${c[@]}" metrics >"$tmpdir/metrics"
    promtool check metrics <"$tmpdir/metrics" ||
      fail "promtool rejects the metrics"
    grep -q '^nbdzram_group_pages{' "$tmpdir/metrics" || fail "no group metrics"
  fi

  # A reset keeps the groups' settings and leaves no group behind.
  "${c[@]}" reset --force >/dev/null || fail "reset failed"
  "${c[@]}" stats >"$tmpdir/stats"
  [ "$(get group_pages_max)" = 16 ] && [ "$(get group_algorithm)" = zstd:3 ] ||
    fail "$pool: reset lost the group settings: $(grep ^group "$tmpdir/stats")"
  [ "$(get group_pages)" = 0 ] && [ "$(get group_objects)" = 0 ] &&
    [ "$(get group_compr_size)" = 0 ] || fail "$pool: groups left after reset"
  kill_nbdkit "$tmpdir/pid.$pool" || fail "nbdkit did not stop"
done
