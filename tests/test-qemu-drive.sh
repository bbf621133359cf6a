#!/usr/bin/env bash
# nbdkit-zram: the "Use from QEMU" commands of README.md work as written.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# qemu-img info and convert, qemu-io write/discard/read against the
# plugin's nbd+unix:// URI, with the device's statistics showing that the
# discard freed pages; then qemu-system-x86_64 (TCG, stopped with -S) opens
# the same URI both as -drive and as -blockdev and lists it in "info block".
set -u
. "${srcdir:-$(dirname "$0")}/functions.sh"

requires nbdkit qemu-img qemu-io
make_tmpdir
sock=$tmpdir/nbd.sock
ctl=$tmpdir/ctl.sock
uri="nbd+unix:///?socket=$sock"
have_ctl=false
if [ -n "${NBDZRAMCTL:-}" ] && [ -x "$NBDZRAMCTL" ] &&
   run_nbdkit "$ZRAM_PLUGIN" --help 2>&1 | grep -q 'ctl='; then
  have_ctl=true
  start_nbdkit "$tmpdir/pid" "$sock" size=64M ctl="$ctl"
else
  start_nbdkit "$tmpdir/pid" "$sock" size=64M
fi
zstat () { "$NBDZRAMCTL" -s "$ctl" stats | sed -n "s/^$1=//p"; }

qemu-img info "$uri" | tee "$tmpdir/info"
grep -q 'virtual size: 64 MiB' "$tmpdir/info" || fail "qemu-img info: wrong size"

# Incompressible data, so the pool really holds it.
head -c 4M /dev/urandom > "$tmpdir/rand.img"
qemu-img convert -n -f raw -O raw "$tmpdir/rand.img" "$uri" || fail "qemu-img convert"
qemu-io -f raw -c 'write -P 0x55 4M 4M' "$uri" || fail "qemu-io write"
# qemu-io prints the "read" line even when the pattern check fails.
qemu-io -f raw -c 'read -P 0x55 4M 4M' "$uri" > "$tmpdir/io" 2>&1
grep -q 'Pattern verification failed' "$tmpdir/io" && fail "pattern did not read back"
grep -q '^read 4194304/' "$tmpdir/io" || fail "qemu-io read failed"
qemu-img convert -f raw -O raw "$uri" "$tmpdir/back.img" || fail "qemu-img convert back"
cmp -n 4194304 "$tmpdir/rand.img" "$tmpdir/back.img" || fail "data did not read back"
if $have_ctl; then
  before=$(zstat orig_data_size)
  [ "$before" -ge $(( 8 * 1048576 )) ] || fail "orig_data_size $before after writing 8 MiB"
fi
qemu-io -f raw -c 'discard 0 4M' -c 'read -P 0 0 4M' "$uri" 2>&1 | tee "$tmpdir/io"
grep -q 'Pattern verification failed' "$tmpdir/io" && fail "discarded range does not read as zeroes"
grep -q '^read 4194304/' "$tmpdir/io" || fail "qemu-io discard/read failed"
if $have_ctl; then
  after=$(zstat orig_data_size)
  echo "orig_data_size $before -> $after"
  [ $(( before - after )) -eq $(( 4 * 1048576 )) ] || fail "discard freed $(( before - after )) bytes, not 4 MiB"
fi

if command -v qemu-system-x86_64 >/dev/null; then
  for how in drive blockdev; do
    if [ $how = drive ]; then
      opts=(-drive "file=$uri,format=raw,if=virtio,cache=none,discard=unmap")
    else
      opts=(-blockdev "driver=nbd,server.type=unix,server.path=$sock,node-name=zram,discard=unmap"
            -device virtio-blk-pci,drive=zram)
    fi
    printf 'info block\nquit\n' |
      timeout 60 qemu-system-x86_64 -accel tcg -nodefaults -nographic -S \
        -monitor stdio "${opts[@]}" > "$tmpdir/qemu.out" 2>&1
    rc=$?
    tr -d '\r' < "$tmpdir/qemu.out" | grep -a -E 'nbd|zram|rror'
    [ $rc = 0 ] || fail "qemu-system-x86_64 -$how exited $rc"
    grep -a -q "socket=$sock" "$tmpdir/qemu.out" || grep -a -q "zram" "$tmpdir/qemu.out" ||
      fail "qemu-system-x86_64 -$how: drive not listed by info block"
  done
else
  echo "qemu-system-x86_64 not installed: -drive/-blockdev not checked"
fi
echo "PASS: qemu-img, qemu-io and qemu-system use the plugin's nbd+unix URI"
