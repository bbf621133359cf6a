#!/usr/bin/env bash
# nbdkit-zram: ext4 and swap on the device through the host's real kernel.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# The host kernel here may have no nbd.ko, so the export reaches the block
# layer another way:
#
#   nbdkit zram.so (daemonised, -P pidfile, -U socket)
#      <- nbdfuse (the export as one file in a FUSE mount)
#      <- losetup --direct-io=on (a real block device; discard becomes
#         fallocate(PUNCH_HOLE) on the FUSE file, which nbdfuse sends as
#         NBD_CMD_TRIM)
#      <- mkfs.ext4 / mount / fstrim / fsck / mkswap / swapon --discard
#
# What it proves: a real directory tree plus zero, same-filled and random
# files survive a full detach and re-attach of the client stack (so they
# were really in the server, not in a cache) bit for bit; fsck finds the
# filesystem clean; fstrim and swap discard give memory back to the device
# (seen in the device's statistics, or in its extent map when no control
# socket exists); pages pushed out to swap by a memory cgroup come back
# intact.
#
# Environment (set by tests/meson.build):
#   ZRAM_PLUGIN   the plugin to test (path of zram.so); "memory" tests the
#                 procedure itself against nbdkit's memory plugin
#   NBDZRAMCTL    nbdzramctl, for device statistics (optional)
#   MEMHOG        tests/guest/memhog (optional: without it no swap traffic)
#   ZRAM_PRELOAD  sanitizer runtime to preload into nbdkit (or empty)
#   ZRAM_FS_TREE  the directory tree to copy (default /usr/include)
set -u

PLUGIN=${ZRAM_PLUGIN:-}
CTLTOOL=${NBDZRAMCTL:-}
MEMHOG=${MEMHOG:-}
TREE=${ZRAM_FS_TREE:-/usr/include}
SIZE=512M

skip () { echo "SKIP: $*"; exit 77; }
fail () { echo "FAIL: $*"; exit 1; }
log ()  { echo "--- $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (losetup, mount, swapon)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -e /dev/loop-control ] || [ -b /dev/loop0 ] || skip "no loop device support"
for p in nbdkit nbdfuse nbdinfo fusermount3 losetup mkfs.ext4 fsck.ext4 \
         mount umount fstrim mkswap swapon swapoff sha256sum; do
  command -v "$p" >/dev/null 2>&1 || skip "$p not installed"
done
grep -qw ext4 /proc/filesystems || skip "kernel has no ext4"
[ -n "$PLUGIN" ] || skip "ZRAM_PLUGIN not set (run through meson test)"
[ "$PLUGIN" = memory ] || [ -f "$PLUGIN" ] || fail "plugin $PLUGIN missing"
[ -d "$TREE" ] || skip "no tree to copy at $TREE"

tmp=$(mktemp -d /tmp/zram-kernel-fs.XXXXXX) || fail "mktemp"
sock=$tmp/nbd.sock
ctl=$tmp/ctl.sock
mnt=$tmp/mnt
fusedir=$tmp/fuse
disk=$fusedir/disk
mkdir "$mnt" "$fusedir"

loopdev=
swapdev=
cgroup=
nbdfuse_pid=

cleanup () {
  set +e
  [ -n "$swapdev" ] && swapoff "$swapdev" 2>/dev/null
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loopdev" ] && losetup -d "$loopdev"
  if mountpoint -q "$fusedir"; then
    fusermount3 -u "$fusedir" || umount -l "$fusedir"
  fi
  [ -n "$nbdfuse_pid" ] && wait "$nbdfuse_pid" 2>/dev/null
  if [ -f "$tmp/nbdkit.pid" ]; then
    kill "$(cat "$tmp/nbdkit.pid")" 2>/dev/null
  fi
  [ -n "$cgroup" ] && [ -d "$cgroup" ] && rmdir "$cgroup"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- helpers -----------------------------------------------------------------

# Bytes of the export that hold data (extents without the hole flag).
allocated () {
  nbdinfo --map --totals "nbd+unix:///?socket=$sock" |
    awk '{ if (int($3) % 2 == 0) s += $1 } END { print s + 0 }'
}

# One statistic from the control socket, or empty if there is none.
have_ctl=false
zstat () {
  $have_ctl || return 0
  "$CTLTOOL" -s "$ctl" stats 2>/dev/null | sed -n "s/^$1=//p"
}

report () {
  local line="allocated=$(allocated)"
  if $have_ctl; then
    line="$line orig_data_size=$(zstat orig_data_size) compr_data_size=$(zstat compr_data_size) mem_used_total=$(zstat mem_used_total) same_pages=$(zstat same_pages)"
  fi
  echo "    [$1] $line nbdkit_rss_kib=$(ps -o rss= -p "$(cat "$tmp/nbdkit.pid")" | tr -d ' ')"
}

allocated_at_most () { [ "$(allocated)" -le "$1" ]; }

swap_used_kib () { awk -v d="$swapdev" '$1 == d { print $4 }' /proc/swaps; }

# The device holds no more than the swap slots in use (plus the header and
# 4 MiB of slack for discards still in flight).
matches_swap_used () {
  [ "$(allocated)" -le $(( $(swap_used_kib) * 1024 + 4 * 1048576 )) ]
}

wait_for () {                   # wait_for SECONDS COMMAND...
  local i n=$(( $1 * 10 )); shift
  for (( i = 0; i < n; i++ )); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

attach () {
  nbdfuse -P "$tmp/nbdfuse.pid" "$disk" --unix "$sock" &
  nbdfuse_pid=$!
  wait_for 20 test -s "$tmp/nbdfuse.pid" || fail "nbdfuse did not start"
  wait_for 10 test -f "$disk" || fail "no $disk in the FUSE mount"
  # Direct I/O keeps the loop device out of the FUSE file's page cache, so
  # every block really goes to the server.  Fall back if refused.
  loopdev=$(losetup -f --show --direct-io=on "$disk" 2>/dev/null) ||
    loopdev=$(losetup -f --show "$disk") || fail "losetup"
  echo "    attached $disk as $loopdev ($(losetup -n -O DIO,LOG-SEC "$loopdev"))"
}

detach () {
  losetup -d "$loopdev" || fail "losetup -d $loopdev"
  loopdev=
  fusermount3 -u "$fusedir" || fail "fusermount3 -u"
  wait "$nbdfuse_pid"
  nbdfuse_pid=
  rm -f "$tmp/nbdfuse.pid"
}

drop_caches () {
  sync
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
}

# nbdkit with the sanitizer runtime preloaded when the plugin needs one.
run_nbdkit () {
  if [ -n "${ZRAM_PRELOAD:-}" ]; then
    LD_PRELOAD="$ZRAM_PRELOAD" nbdkit "$@"
  else
    nbdkit "$@"
  fi
}

# --- server --------------------------------------------------------------------

log "starting nbdkit $PLUGIN size=$SIZE"
if [ "$PLUGIN" = memory ]; then
  nbdkit -P "$tmp/nbdkit.pid" -U "$sock" memory "$SIZE" || fail "nbdkit"
else
  args=(size="$SIZE")
  if [ -n "$CTLTOOL" ] && [ -x "$CTLTOOL" ] &&
     run_nbdkit "$PLUGIN" --help 2>&1 | grep -q 'ctl='; then
    args+=(ctl="$ctl")
    have_ctl=true
  fi
  run_nbdkit -P "$tmp/nbdkit.pid" -U "$sock" "$PLUGIN" "${args[@]}" ||
    fail "nbdkit $PLUGIN ${args[*]}"
fi
wait_for 10 test -S "$sock" || fail "nbdkit did not create $sock"
wait_for 10 test -s "$tmp/nbdkit.pid" || fail "nbdkit wrote no pidfile"
$have_ctl && { wait_for 10 test -S "$ctl" || fail "no control socket $ctl"; }
report start

# --- filesystem ------------------------------------------------------------

attach
log "mkfs.ext4, mount, copy $TREE and test files"
mkfs.ext4 -q -F "$loopdev" || fail "mkfs.ext4"
mount "$loopdev" "$mnt" || fail "mount"
head -c 16M /dev/urandom > "$tmp/random.bin"
cp -a "$TREE" "$mnt/tree" || fail "copy $TREE"
cp "$tmp/random.bin" "$mnt/random.bin" || fail "copy random"
head -c 32M /dev/zero > "$mnt/zero.bin" || fail "write zeroes"
yes abcdefg | head -c 8M > "$mnt/same.bin" || fail "write pattern"  # 8-byte word
drop_caches
report written

# Expected checksums come from the sources, not from the copy.
( cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 sha256sum |
    sed 's|  \./|  tree/|' ) > "$tmp/expect" || fail "checksum $TREE"
{ echo "$(sha256sum < "$tmp/random.bin" | cut -d' ' -f1)  random.bin"
  echo "$(head -c 32M /dev/zero | sha256sum | cut -d' ' -f1)  zero.bin"
  echo "$(yes abcdefg | head -c 8M | sha256sum | cut -d' ' -f1)  same.bin"
} >> "$tmp/expect"
nfiles=$(wc -l < "$tmp/expect")

log "unmount, detach the whole client stack, re-attach, fsck, verify $nfiles files"
umount "$mnt" || fail "umount"
detach
drop_caches
attach
fsck.ext4 -fn "$loopdev" > "$tmp/fsck.log" 2>&1 || { cat "$tmp/fsck.log"; fail "fsck after remount"; }
mount "$loopdev" "$mnt" || fail "remount"
( cd "$mnt" && sha256sum --quiet -c "$tmp/expect" ) || fail "checksums differ after remount"
actual=$( cd "$mnt" && find tree random.bin zero.bin same.bin -type f | wc -l )
[ "$actual" = "$nfiles" ] || fail "expected $nfiles files, found $actual"
report verified

log "delete most data, fstrim, check the device gave memory back"
sync
before=$(allocated)
before_orig=$(zstat orig_data_size)
before_mem=$(zstat mem_used_total)
freed_kib=$(du -sk "$mnt/tree" "$mnt/random.bin" | awk '{ s += $1 } END { print s }')
rm -rf "$mnt/tree" "$mnt/random.bin"
sync
fstrim -v "$mnt" || fail "fstrim"
after=$(allocated)
after_orig=$(zstat orig_data_size)
after_mem=$(zstat mem_used_total)
report trimmed
echo "    allocated $before -> $after bytes; files removed: $freed_kib KiB"
# At least 3/4 of what the removed files occupied must be gone from the
# device (ext4 keeps some metadata blocks and the journal).
[ $(( (before - after) / 1024 )) -ge $(( freed_kib * 3 / 4 )) ] ||
  fail "fstrim released only $(( (before - after) / 1024 )) KiB of $freed_kib KiB"
if [ -n "$before_orig" ] && [ -n "$after_orig" ]; then
  [ $(( (before_orig - after_orig) / 1024 )) -ge $(( freed_kib * 3 / 4 )) ] ||
    fail "orig_data_size fell only $before_orig -> $after_orig"
  # What is left is mostly zero and same-filled pages, which cost no pool
  # memory: the pool must have shrunk to well under half.
  [ $(( after_mem * 2 )) -lt "$before_mem" ] ||
    fail "mem_used_total fell only $before_mem -> $after_mem"
fi
( cd "$mnt" && grep -E '  (zero|same)\.bin$' "$tmp/expect" | sha256sum --quiet -c ) ||
  fail "kept files damaged by fstrim"
umount "$mnt" || fail "umount"
fsck.ext4 -fn "$loopdev" > "$tmp/fsck.log" 2>&1 || { cat "$tmp/fsck.log"; fail "fsck after fstrim"; }

# --- swap --------------------------------------------------------------------

log "mkswap, swapon --discard"
mkswap -q "$loopdev" || fail "mkswap"
swapon --discard "$loopdev" || fail "swapon --discard"
swapdev=$loopdev
grep -q "^$loopdev " /proc/swaps || fail "$loopdev not in /proc/swaps"
# swapon --discard discards the whole area once: only the swap header stays.
wait_for 10 allocated_at_most 1048576 ||
  fail "swapon --discard left $(allocated) bytes allocated"
report swapon

# Swap traffic: a memory hog in a small memory cgroup (the servers stay out of
# it) has its pages pushed out through the device and checks them on return.
make_cgroup () {
  local base
  if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    base=/sys/fs/cgroup
  elif grep -qw memory /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
    base=/sys/fs/cgroup/unified
  fi
  if [ -n "${base:-}" ]; then
    echo +memory > "$base/cgroup.subtree_control" 2>/dev/null
    cgroup=$base/nbdkit-zram-test-$$
    mkdir "$cgroup" 2>/dev/null || { cgroup=; return 1; }
    echo 48M > "$cgroup/memory.max" && echo max > "$cgroup/memory.swap.max" 2>/dev/null
    return 0
  fi
  if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    cgroup=/sys/fs/cgroup/memory/nbdkit-zram-test-$$
    mkdir "$cgroup" 2>/dev/null || { cgroup=; return 1; }
    echo 48M > "$cgroup/memory.limit_in_bytes" &&
      echo 100 > "$cgroup/memory.swappiness"
    return 0
  fi
  return 1
}

if [ -n "$MEMHOG" ] && [ -x "$MEMHOG" ] && make_cgroup; then
  log "memhog 160 MiB in cgroup $cgroup (limit 48 MiB)"
  out0=$(awk '/^pswpout /{ print $2 }' /proc/vmstat)
  sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" 160 2' sh "$cgroup" "$MEMHOG" &
  hog=$!
  peak=0 swap_peak=0
  while kill -0 "$hog" 2>/dev/null; do
    a=$(allocated)
    u=$(awk -v d="$loopdev" '$1 == d { print $4 }' /proc/swaps)
    [ "$a" -gt "$peak" ] && peak=$a
    [ "${u:-0}" -gt "$swap_peak" ] && swap_peak=$u
    sleep 0.2
  done
  wait "$hog" || fail "memhog: pages came back wrong from swap (or it could not run)"
  out1=$(awk '/^pswpout /{ print $2 }' /proc/vmstat)
  echo "    pswpout +$(( out1 - out0 )) pages; peak swap used $swap_peak KiB; peak allocated $peak bytes"
  [ $(( out1 - out0 )) -ge 10000 ] || fail "expected > 10000 pages swapped out, got $(( out1 - out0 ))"
  [ "$swap_peak" -gt 0 ] || fail "/proc/swaps never showed $loopdev used"
  [ "$peak" -ge $(( 16 * 1048576 )) ] || fail "device never held the swapped pages (peak $peak)"
  report "after memhog"
  # The hog has exited; its slots are free and (with --discard) discarded in
  # the background, so the device must shrink to what swap still uses.  Not
  # to zero: this swap is the whole host's while it is on, and on a busy
  # machine other processes' pages may be swapped out to it meanwhile.
  # Swap writes still queued when the hog exited land first; under a
  # sanitizer build that backlog takes a while, hence the generous wait (it
  # returns at once in a plain build).
  wait_for 120 matches_swap_used ||
    fail "swap discard did not release memory: device holds $(allocated) bytes, swap uses $(swap_used_kib) KiB"
  report "slots discarded"

  # The contrast that makes --discard required over NBD (there is no
  # swap-slot-free notification): swapped on without it, the same hog
  # leaves its pages in the device after it has exited.
  swapoff "$loopdev" || fail "swapoff"
  swapon "$loopdev" || fail "swapon (no discard)"
  sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" 160 1' sh "$cgroup" "$MEMHOG" ||
    fail "memhog (swap without discard)"
  sleep 3
  kept=$(allocated)
  echo "    swap without --discard: the device still holds $kept bytes after the hog exited"
  [ "$kept" -ge $(( peak / 2 )) ] ||
    fail "without --discard the device emptied too ($kept of $peak bytes): the check above proves nothing"
else
  echo "    (no memory cgroup or memhog here: swap traffic step skipped)"
fi
swapoff "$loopdev" || fail "swapoff"
swapdev=
detach

kill -0 "$(cat "$tmp/nbdkit.pid")" || fail "nbdkit died"
echo "PASS: ext4 + swap through nbdfuse + loop on $PLUGIN"
exit 0
