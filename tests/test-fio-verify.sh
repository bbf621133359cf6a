#!/usr/bin/env bash
# fio's nbd engine writes random blocks of mixed sizes (sub-page included)
# from several jobs and verifies every one with crc32c.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit fio
fio --enghelp=nbd >/dev/null 2>&1 || { echo "$0: SKIP: fio has no nbd engine"; exit 77; }
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 256M
uri=$(uri_of "$tmpdir/sock")
# Each job verifies its own region; regions do not overlap.
fio --name=verify --ioengine=nbd --uri="$uri" --rw=randwrite \
    --bsrange=512-65536 --blockalign=512 --size=32M --numjobs=4 \
    --offset_increment=64M --iodepth=8 --verify=crc32c --verify_fatal=1 \
    --buffer_compress_percentage=60 --refill_buffers \
    --do_verify=1 --group_reporting > "$tmpdir/fio.log" 2>&1 ||
  { cat "$tmpdir/fio.log"; fail "fio verify failed"; }
grep -E 'WRITE:|READ:' "$tmpdir/fio.log"
grep -q 'verify' "$tmpdir/fio.log" || true
echo "$0: ok"
