#!/usr/bin/env bash
# nbdkit-zram: swap and ext4 on the plugin through a real kernel's nbd.ko.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# Boots Debian 12's kernel under qemu (TCG, one vCPU, no network, serial
# console) with a busybox initramfs made by tests/guest/mkguest.sh; inside,
# tests/guest/init runs nbdkit with the plugin and attaches it with
# nbd-client over a unix socket, once with -b 4096 and once with
# nbd-client's default (sub-page) block size, and prints ZRAM-GUEST: PASS
# or FAIL.  /dev/kvm is never used.
#
# Environment (set by tests/meson.build):
#   ZRAM_PLUGIN   path of zram.so        MEMHOG      tests/guest/memhog
#   SWAPCHURN     tests/guest/swapchurn (for zt.stale)
#   NBDZRAMCTL    nbdzramctl (optional)  ZRAM_GUEST_CACHE  cache directory
#   ZRAM_GUEST_TIMEOUT  seconds before qemu is killed (default 600)
#   ZRAM_GUEST_APPEND   more kernel command line for the guest's /init:
#     zt.pressure=1       also swap under whole-machine memory pressure (a
#                         hog bigger than free memory, no cgroup; see
#                         pressure_test in tests/guest/init)
#     zt.over=MIB[,MIB..] how far past MemAvailable the hog goes (128)
#     zt.runs=N           runs for each of those (1)
#     zt.params=k=v,...   more plugin parameters
#     zt.bs=none          skip the per-block-size runs (for experiments)
#     zt.stale=1|only     also (or only) measure the freed pages swap leaves
#                         in the device, against kernel zram (needs
#                         SWAPCHURN; see stale_test in tests/guest/init)
#   ZRAM_GUEST_RUN_LIMIT  seconds one pressure run may take before the
#                       guest counts as stalled and is stopped (300)
# With pressure runs, a table of their results ends the output.
set -u

here=$(cd "$(dirname "$0")" && pwd)
PLUGIN=${ZRAM_PLUGIN:-}
MEMHOG=${MEMHOG:-}
CTLTOOL=${NBDZRAMCTL:-}
CACHE=${ZRAM_GUEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/nbdkit-zram-guest}
TIMEOUT=${ZRAM_GUEST_TIMEOUT:-600}
RUN_LIMIT=${ZRAM_GUEST_RUN_LIMIT:-300}

skip () { echo "SKIP: $*"; exit 77; }
fail () { echo "FAIL: $*"; exit 1; }

[ -n "$PLUGIN" ] && [ -f "$PLUGIN" ] || skip "ZRAM_PLUGIN not set (run through meson test)"
[ -n "$MEMHOG" ] && [ -x "$MEMHOG" ] || skip "MEMHOG not set (run through meson test)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (tests/guest/packages.txt)"
# A sanitizer build's plugin needs its runtime preloaded into nbdkit; the
# guest runs the plain build's plugin only.
if ldd "$PLUGIN" 2>/dev/null | grep -q -E 'lib(a|t|ub)san'; then
  skip "plugin built with a sanitizer; the guest test runs in the plain build"
fi
# Can qemu run here at all (TCG, no display)?
printf 'quit\n' | timeout 60 qemu-system-x86_64 -accel tcg -machine pc \
    -nodefaults -display none -monitor stdio -S > /dev/null 2>&1 ||
  skip "qemu-system-x86_64 cannot start a TCG machine here"
[ -x "$CTLTOOL" ] || CTLTOOL=

out=$("$here/guest/mkguest.sh" "$CACHE" "$PLUGIN" "$MEMHOG" $CTLTOOL)
rc=$?
[ $rc = 77 ] && skip "cannot build the guest here (see above)"
[ $rc = 0 ] || fail "mkguest.sh failed"
kernel=$(echo "$out" | sed -n 's/^kernel //p')
initrd=$(echo "$out" | sed -n 's/^initrd //p')

log=$(mktemp /tmp/zram-guest.XXXXXX.log)
trap 'rm -f "$log"' EXIT

# -accel tcg: never KVM (Debian's kernel hangs under this host's KVM).
start=$(date +%s)
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg -cpu max -smp 1 -m 768 \
  -nographic -no-reboot -nodefaults -serial stdio -nic none \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 loglevel=4 zt.bs=4096,default zt.mlock=true ${ZRAM_GUEST_APPEND:-}" \
  < /dev/null > "$log" 2>&1 &
qemu=$!
# A guest stalled for good under memory pressure says nothing more: stop
# it once a pressure run has gone RUN_LIMIT seconds without a result.
stalled=
while kill -0 $qemu 2>/dev/null; do
  sleep 5
  last=$(tr -d '\r' < "$log" | grep '^ZRAM-PRESSURE: ' | tail -n1)
  case $last in
  *" start "*)
    [ -n "${run_seen:-}" ] && [ "$run_seen" = "$last" ] || { run_seen=$last; run_t0=$(date +%s); }
    if [ $(( $(date +%s) - run_t0 )) -ge "$RUN_LIMIT" ]; then
      stalled=$(echo "$last" | sed 's/^ZRAM-PRESSURE: \(over=[0-9]* run=[0-9]*\).*/\1/')
      kill "$qemu" 2>/dev/null
    fi ;;
  esac
done
wait $qemu
rc=$?
secs=$(( $(date +%s) - start ))
# Show what the guest said (kernel log lines are few at loglevel=4).
tr -d '\r' < "$log"
echo "qemu exited with $rc after $secs s"
if grep -q '^ZRAM-PRESSURE: ' "$log" || [ -n "$stalled" ]; then
  echo "whole-machine memory pressure runs:"
  printf '  %-9s %-4s %-12s %6s %12s %9s\n' over run result secs pswpout oom_kills
  tr -d '\r' < "$log" | sed -n 's/^ZRAM-PRESSURE: over=\([0-9]*\) run=\([0-9]*\) result=\([^ ]*\) secs=\([0-9]*\) pswpout=\([^ ]*\) oom_kills=\([0-9]*\).*/\1 \2 \3 \4 \5 \6/p' |
    while read -r o r res sec out oom; do
      printf '  %-9s %-4s %-12s %6s %12s %9s\n' "+$o MiB" "$r" "$res" "$sec" "$out" "$oom"
    done
  [ -z "$stalled" ] || echo "  $stalled: no result within $RUN_LIMIT s, guest stopped (stalled)"
fi
if grep -q '^ZRAM-STALE: ' "$log"; then
  echo "stale data in swap (KiB; stored = the device's orig_data_size, used = /proc/swaps):"
  printf '  %-10s %-6s %10s %10s %10s %7s\n' config round used stored stale "stale%"
  tr -d '\r' < "$log" | sed -n 's/^ZRAM-STALE: cfg=\([^ ]*\) round=\([^ ]*\) used_kib=\([0-9]*\) stored_kib=\([0-9]*\) stale_kib=\(-*[0-9]*\).*/\1 \2 \3 \4 \5/p' |
    while read -r c r u st sl; do
      pct=-; [ "$st" -gt 0 ] && pct=$(( 100 * sl / st ))
      printf '  %-10s %-6s %10s %10s %10s %7s\n' "$c" "$r" "$u" "$st" "$sl" "$pct"
    done
fi
[ -z "$stalled" ] || fail "the guest stalled under memory pressure ($stalled)"
[ $rc = 124 ] || [ $rc = 137 ] && fail "guest timed out after $TIMEOUT s"
grep -q 'blocked for more than' "$log" && fail "the guest kernel reported a hung task"
grep -q '^ZRAM-GUEST: FAIL' "$log" && fail "the guest reported a failure"
grep -q '^ZRAM-GUEST: PASS' "$log" || fail "the guest gave no PASS marker"
echo "PASS: swap and ext4 through nbd.ko in a $secs s guest run"
