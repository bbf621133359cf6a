#!/usr/bin/env bash
# In a memory cgroup (cgroup v2, memory.max), allocations do not fail at
# the limit: the page fault at the limit wakes the OOM killer, which would
# kill the server and lose all data.  The device reads the cgroup's limit
# when its pool needs to grow (include/zram/mem-guard.h) and refuses
# growth near it: writes fail cleanly with ENOMEM, `nbdzramctl stats`
# answers, the server stays up and is never OOM-killed, and after trims it
# accepts writes again, with every acknowledged byte intact (issue 9).
#
# Needs root, cgroup v2 with the memory controller enabled for children of
# its root (memory in cgroup.subtree_control; the test does not change
# that system setting), else it is skipped.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_python_nbd
requires_nbdzramctl
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: SKIP: a sanitizer's shadow memory, charged to the cgroup too," \
       "is not what the margin is sized for"
  exit 77
fi

cg_root=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ]; then
    cg_root=$d
    break
  fi
done
[ -n "$cg_root" ] || { echo "$0: SKIP: no cgroup v2 hierarchy mounted"; exit 77; }
grep -qw memory "$cg_root/cgroup.subtree_control" 2>/dev/null || {
  echo "$0: SKIP: the memory controller is not enabled for children of" \
       "$cg_root (cgroup.subtree_control: $(cat "$cg_root/cgroup.subtree_control" 2>/dev/null))"
  exit 77
}
[ -w "$cg_root" ] || { echo "$0: SKIP: $cg_root is not writable"; exit 77; }

make_tmpdir
cg=$cg_root/zram-test-$$
mkdir "$cg" || { echo "$0: SKIP: cannot create $cg"; exit 77; }
cleanup_fn "rmdir '$cg'"
limit_mb=${ZRAM_TEST_CGROUP_MB:-192}
echo "${limit_mb}M" > "$cg/memory.max"
# No swap: at the limit the kernel must reclaim or kill, not page out.
echo 0 > "$cg/memory.swap.max" 2>/dev/null || :

# Daemonised, as users run it, inside the cgroup.
sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
  nbdkit -P "$tmpdir/pid" -U "$tmpdir/sock" "$ZRAM_PLUGIN" 1G \
  ctl="$tmpdir/ctl" || fail "nbdkit did not start in $cg"
cleanup_fn "kill_nbdkit '$tmpdir/pid'"
for (( i = 0; i < 100; i++ )); do
  [ -s "$tmpdir/pid" ] && [ -S "$tmpdir/sock" ] && [ -S "$tmpdir/ctl" ] && break
  sleep 0.1
done
pid=$(cat "$tmpdir/pid")
grep -qx "0::/${cg#"$cg_root"/}" "/proc/$pid/cgroup" ||
  fail "nbdkit is not in $cg: $(cat "/proc/$pid/cgroup")"

python3 "$srcdir/enomem-client.py" \
  "$tmpdir/sock" "$NBDZRAMCTL" "$tmpdir/ctl" "$pid"

echo "memory.events: $(tr '\n' ' ' < "$cg/memory.events")"
echo "memory.peak/current: $(cat "$cg/memory.peak" 2>/dev/null || echo ?) /" \
     "$(cat "$cg/memory.current") of $((limit_mb << 20))"
oom_kills=$(sed -n 's/^oom_kill //p' "$cg/memory.events")
[ "${oom_kills:-0}" = 0 ] || fail "the OOM killer ran $oom_kills times in $cg"
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || :
[ -n "$state" ] && [ "$state" != Z ] || fail "nbdkit is gone"
echo "$0: ok"
