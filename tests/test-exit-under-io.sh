#!/usr/bin/env bash
# A daemonised server holding a filled device exits promptly on SIGTERM
# while clients are writing: under 5 seconds.  Its data is thrown away
# wholesale at exit (the zs pool unmaps its arenas), not object by object.
#   EXIT_FILL   data written before the signal (default 1G, 256M under a
#               sanitizer, which writes 10x slower; the slow suite uses 4G)
#   EXIT_POOL   pool=zs (default) or malloc
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit fio bc
fio --enghelp 2>/dev/null | grep -qw nbd ||
  { echo "$0: SKIP: fio has no nbd engine"; exit 77; }
make_tmpdir
default_fill=1G
[ -z "${ZRAM_PRELOAD:-}" ] || default_fill=256M
fill=${EXIT_FILL:-$default_fill}
pool=${EXIT_POOL:-zs}
limit=5

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 8G pool="$pool"
pid=$(cat "$tmpdir/pid")
uri=$(uri_of "$tmpdir/sock")

# Compressible data (about 2:1), as a file system or swap would store.
fio --name=fill --ioengine=nbd --uri="$uri" --rw=write --bs=1M \
    --size="$fill" --iodepth=16 --buffer_compress_percentage=60 \
    --refill_buffers >"$tmpdir/fill.log" 2>&1 ||
  { cat "$tmpdir/fill.log"; fail "fio could not fill the device"; }
rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")

# Writers that keep going until the server goes away.
fio --name=io --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --size="$fill" --iodepth=32 --numjobs=2 --buffer_compress_percentage=60 \
    --refill_buffers --time_based --runtime=60 >/dev/null 2>&1 &
fio_pid=$!
cleanup_fn "kill $fio_pid 2>/dev/null; wait $fio_pid 2>/dev/null"
sleep 1
kill -0 "$pid" || fail "nbdkit died under I/O"

start=$(date +%s.%N)
kill "$pid"
# Done when the process is gone or a zombie: reaping it is up to whatever
# adopted the daemon, not to nbdkit.
state () { awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || :; }
while [ -e "/proc/$pid" ] && [ "$(state)" != Z ] && [ "$(state)" != "" ]; do
  if [ "$(echo "$(date +%s.%N) - $start >= $limit * 2" | bc)" = 1 ]; then
    kill -9 "$pid"
    fail "nbdkit still running $((limit * 2)) s after SIGTERM"
  fi
  sleep 0.02
done
took=$(echo "$(date +%s.%N) - $start" | bc)
echo "pool=$pool, $fill written (VmRSS ${rss} kB): exit took $took s under I/O"
[ "$(echo "$took < $limit" | bc)" = 1 ] ||
  fail "exit took $took s (limit $limit s)"
check_sanitizer_logs
echo "$0: ok"
