#!/usr/bin/env bash
# nbdkit-zram: run-bench.py's kernel zram targets leave no device behind.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# run-bench.py makes a /dev/zramN for each kzram test (hot_add) and must
# reset and hot_remove it whatever happens, and touch no other zram
# device.  Its block-device client, bench-blk-image, is replaced by stubs
# in a scratch build directory:
#   fail   - exits 1 at once (a client error: the test is recorded as
#            failed, the run goes on);
#   hold   - holds the device open and sleeps, and the run is stopped by
#            SIGTERM, then again by SIGINT (the device is busy when the
#            clean-up starts).
# With the real client and fio:
#   fio killed - fio is killed with SIGKILL mid-test (its jobs must not
#            outlive it holding the device open: fio runs them as threads);
#   fio + TERM - the run is stopped by SIGTERM while fio's two jobs run.
# And in the driver's own Python: a signal that arrives while hot_add is
# under way (held until the device is recorded, then delivered at once).
# After each run every device the run says it made ("kzram: made
# /dev/zramN") must be gone, and every zram device that was there before
# must still be there, with its size and compressor -- among them one this
# test makes first, as someone else's device, and removes at the end.
#
# Usage: test-kzram-cleanup.sh RUN_BENCH BUILD_DIR   (from bench/meson.build)
set -u
run_bench=$1 build=$2

skip () { echo "SKIP: $*"; exit 77; }
fail () { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "making kernel zram devices needs root"
[ -w /sys/class/zram-control/hot_add ] || skip "this kernel has no zram (/sys/class/zram-control)"
command -v fio > /dev/null || skip "fio not installed"
command -v nbdkit > /dev/null || skip "nbdkit not in PATH"
[ -x "$build/bench/zram-image-gen" ] || fail "$build/bench/zram-image-gen not built"

tmp=$(mktemp -d /tmp/kzram-cleanup.XXXXXX)
foreign=
cleanup () {
  # Only the device this test made itself.
  if [ -n "$foreign" ] && [ -e /sys/block/zram$foreign ]; then
    echo 1 > /sys/block/zram$foreign/reset
    echo $foreign > /sys/class/zram-control/hot_remove
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Someone else's device, which the runs must leave alone: 12 MiB, lz4.
foreign=$(cat /sys/class/zram-control/hot_add) || fail "cannot make a zram device"
echo lz4 > /sys/block/zram$foreign/comp_algorithm
echo $((12 << 20)) > /sys/block/zram$foreign/disksize

others () {                     # the zram devices not ours: name size algorithm
  for d in /sys/block/zram*; do
    [ -e "$d" ] || continue
    echo "$(basename "$d") $(cat "$d/disksize") $(sed 's/.*\[\(.*\)\].*/\1/' "$d/comp_algorithm")"
  done
}
before=$(others)
# The runs' devices have a size no one else's is likely to have (other
# runs of this driver on the machine make 8 MiB and 128 MiB ones), so that
# one of ours still there is told from a new one of the same number.
size=$((2049 * 4096))
small="--size $size --reps 1 --runtime 1"

fake=$tmp/build
mkdir -p "$fake/bench"
ln -s "$(cd "$build/bench" && pwd)/zram-image-gen" "$fake/bench/zram-image-gen"

check_gone () {                 # check_gone LOG WHAT
  made=$(sed -n 's|^kzram: made /dev/zram\([0-9]*\)$|\1|p' "$1")
  [ -n "$made" ] || { cat "$1"; fail "$2: run-bench made no zram device"; }
  for n in $made; do
    grep -q "^kzram: removed /dev/zram$n\$" "$1" || { cat "$1"; fail "$2: /dev/zram$n not removed"; }
    # The number may have been taken again by someone else since; what
    # was ours is gone if no device of that number has our size.
    if [ -e /sys/block/zram$n ] && [ "$(cat /sys/block/zram$n/disksize)" = $size ] &&
       ! echo "$before" | grep -q "^zram$n "; then
      fail "$2: /dev/zram$n is still there"
    fi
  done
  # The device this test made as someone else's must be exactly as it was;
  # the others too, but other runs of this driver (a CI loop, another
  # checkout) may make and remove devices meanwhile: a change there is
  # only reported.
  for line in $(echo "$before" | tr ' ' ':'); do
    name=${line%%:*}
    now=$(others | grep "^$name " | tr ' ' ':')
    if [ "$name" = "zram$foreign" ]; then
      [ "$now" = "$line" ] || fail "$2: $name (the test's own) was $line, now '${now}'"
    elif [ "$now" != "$line" ]; then
      echo "    note: $name was $line, now '${now}' (another user of zram on this machine?)"
    fi
  done
  echo "    $2: made and removed /dev/zram$(echo $made | sed 's/ /, /g')"
}

# 1. The client fails: errors are recorded, the devices removed.
cat > "$fake/bench/bench-blk-image" <<'EOF'
#!/bin/sh
echo "bench-blk-image stub: failing on purpose" >&2
exit 1
EOF
chmod +x "$fake/bench/bench-blk-image"
python3 "$run_bench" $small --no-micro --build-dir "$fake" --targets kzram-lz4 \
  --tests image,randread-4k-q16-j2 --out "$tmp/out" > "$tmp/fail.log" 2>&1
rc=$?
[ $rc = 0 ] || { cat "$tmp/fail.log"; fail "run-bench exited $rc (kzram errors are a peer's)"; }
grep -q 'failing on purpose' "$tmp/out/latest.txt" ||
  { cat "$tmp/out/latest.txt"; fail "the failure is not in the report"; }
check_gone "$tmp/fail.log" "client failure"

# 2. A signal while the client holds the device open.
cat > "$fake/bench/bench-blk-image" <<'EOF'
#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -d ] && dev=$2; shift; done
exec 3< "$dev"
echo "bench-blk-image stub: holding $dev" >&2
exec sleep 120
EOF
for sig in TERM INT; do
  : > "$tmp/$sig.log"
  python3 "$run_bench" $small --no-micro --build-dir "$fake" --targets kzram-lz4 \
    --tests image --out "$tmp/out" >> "$tmp/$sig.log" 2>&1 &
  pid=$!
  i=0
  # The first device is the probe (made and removed at once); wait for
  # the test's.
  until [ "$(grep -c '^kzram: made' "$tmp/$sig.log")" -ge 2 ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { kill -KILL $pid; cat "$tmp/$sig.log"; fail "no device made"; }
    sleep 0.1
  done
  sleep 1                       # the stub has the device open by now
  kill -$sig $pid
  i=0
  while kill -0 $pid 2> /dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { kill -KILL $pid; fail "run-bench did not exit on SIG$sig"; }
    sleep 0.1
  done
  wait $pid
  rc=$?
  [ $rc != 0 ] || fail "run-bench exited 0 after SIG$sig"
  check_gone "$tmp/$sig.log" "SIG$sig"
done

# 3. The real fio, killed mid-test; then the run stopped while fio runs.
[ -x "$build/bench/bench-blk-image" ] || fail "$build/bench/bench-blk-image not built"
ln -sf "$(cd "$build/bench" && pwd)/bench-blk-image" "$fake/bench/bench-blk-image"
for how in fio-KILL driver-TERM; do
  : > "$tmp/$how.log"
  python3 "$run_bench" --no-micro --build-dir "$fake" --targets kzram-lz4 --size $size \
    --reps 1 --runtime 60 --tests randwrite-4k-q16-j2 --out "$tmp/out" >> "$tmp/$how.log" 2>&1 &
  pid=$!
  i=0
  # After the probe's device and the test's (before them the driver runs
  # "fio --version").
  until [ "$(grep -c '^kzram: made' "$tmp/$how.log")" -ge 2 ] && fio=$(pgrep -P $pid -x fio); do
    i=$((i + 1)); [ $i -lt 300 ] || { kill -KILL $pid; cat "$tmp/$how.log"; fail "$how: fio did not start"; }
    sleep 0.1
  done
  sleep 2                       # fio's jobs have the device open by now
  start=$(date +%s)
  case $how in
    fio-KILL) kill -KILL $fio ;;
    driver-TERM) kill -TERM $pid ;;
  esac
  i=0
  while kill -0 $pid 2> /dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { kill -KILL $pid; fail "$how: run-bench did not exit"; }
    sleep 0.1
  done
  wait $pid
  rc=$?
  took=$(($(date +%s) - start))
  case $how in
    fio-KILL)
      [ $rc = 0 ] || { cat "$tmp/$how.log"; fail "$how: run-bench exited $rc (a kzram error is a peer's)"; }
      grep -q 'fio failed (-9)' "$tmp/$how.log" || { cat "$tmp/$how.log"; fail "$how: the failure is not reported"; } ;;
    driver-TERM)
      [ $rc != 0 ] || fail "$how: run-bench exited 0 after SIGTERM" ;;
  esac
  # A job that outlived fio would have kept the device busy for the rest
  # of the 60 s runtime (the driver gives up on a busy device after 15 s).
  [ $took -lt 14 ] || { cat "$tmp/$how.log"; fail "$how: the run took $took s to end"; }
  check_gone "$tmp/$how.log" "$how"
done

# 4. A signal that arrives while hot_add is under way: held, and delivered
# as soon as the device is recorded; the clean-up must find it complete.
python3 - "$run_bench" $size > "$tmp/held.log" 2>&1 <<'PYEOF'
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("run_bench", sys.argv[1])
rb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rb)
signal.signal(signal.SIGTERM, rb.on_signal)
real_open = open
def open_hot_add_signalled(path, *args, **kw):
    if path.endswith("/hot_add"):
        os.kill(os.getpid(), signal.SIGTERM)    # held by the mask
    return real_open(path, *args, **kw)
rb.open = open_hot_add_signalled
try:
    try:
        rb.KernelZram(int(sys.argv[2]), "lz4")
        print("no SystemExit after SIGTERM")
    finally:
        rb.KernelZram.remove_all()
except SystemExit as e:
    print("SystemExit", e.code)
PYEOF
grep -q '^SystemExit 143$' "$tmp/held.log" || { cat "$tmp/held.log"; fail "held signal: not delivered as SystemExit"; }
! grep -q Traceback "$tmp/held.log" || { cat "$tmp/held.log"; fail "held signal: a traceback"; }
check_gone "$tmp/held.log" "signal during hot_add"

# 5. The driver killed with SIGKILL mid-fio: nothing can clean up, and the
# log names the device; fio must die with the driver (else it holds the
# device busy for the rest of its runtime and the device cannot even be
# removed by hand), so that the README's two commands remove it.
: > "$tmp/KILL.log"
python3 "$run_bench" --no-micro --build-dir "$fake" --targets kzram-lz4 --size $size \
  --reps 1 --runtime 60 --tests randread-4k-q16-j2 --out "$tmp/out" >> "$tmp/KILL.log" 2>&1 &
pid=$!
i=0
until [ "$(grep -c '^kzram: made' "$tmp/KILL.log")" -ge 2 ] && pgrep -P $pid -x fio > /dev/null; do
  i=$((i + 1)); [ $i -lt 300 ] || { kill -KILL $pid; cat "$tmp/KILL.log"; fail "driver-KILL: fio did not start"; }
  sleep 0.1
done
sleep 2
kill -KILL $pid
wait $pid 2> /dev/null
n=$(sed -n 's|^kzram: made /dev/zram\([0-9]*\)$|\1|p' "$tmp/KILL.log" | tail -1)
i=0
until { echo 1 > /sys/block/zram$n/reset; } 2> /dev/null; do
  i=$((i + 1))
  [ $i -lt 50 ] || fail "driver-KILL: /dev/zram$n still busy 5 s after the driver's death"
  sleep 0.1
done
echo $n > /sys/class/zram-control/hot_remove || fail "driver-KILL: cannot hot_remove /dev/zram$n"
echo "    driver-KILL: /dev/zram$n left (as documented), free at once, removed by hand"

# The device made before the runs is still there, untouched.
[ "$(cat /sys/block/zram$foreign/disksize)" = $((12 << 20)) ] ||
  fail "zram$foreign (not the runs') changed"
echo "PASS: no kernel zram device left behind; the others untouched"
