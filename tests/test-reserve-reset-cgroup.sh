#!/usr/bin/env bash
# A reset fills the new state's reserve before it frees the old one, so
# it needs the reserve's memory a second time.  In a memory cgroup with
# room for one reserve only, the reset must fail with ENOMEM and a message
# that says why, change nothing (the data stays and is served), and wake
# no OOM killer (issue 11).  Before, the message was a bare "out of
# memory".
# Needs root and a memory cgroup it can make a child in: cgroup v2 with the
# memory controller enabled for children, or v1's memory hierarchy.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_python_nbd
requires_nbdzramctl
if [ -n "${ZRAM_PRELOAD:-}" ]; then
  echo "$0: SKIP: a sanitizer's shadow memory, charged to the cgroup too," \
       "is not what the limit is sized for"
  exit 77
fi
if [ "$(id -u)" != 0 ]; then
  echo "$0: SKIP: needs root (a cgroup and mlock=true)"
  exit 77
fi

# The parent to make a cgroup in, and its file names.
parent= max_file= oom_file= oom_key=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ] &&
     grep -qw memory "$d/cgroup.subtree_control" 2>/dev/null; then
    parent=$d max_file=memory.max oom_file=memory.events oom_key=oom_kill
    break
  fi
done
if [ -z "$parent" ]; then
  v1=$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup)
  if [ -n "$v1" ] && [ -d "/sys/fs/cgroup/memory$v1" ]; then
    parent=/sys/fs/cgroup/memory${v1%/}
    max_file=memory.limit_in_bytes oom_file=memory.oom_control oom_key=oom_kill
  fi
fi
[ -n "$parent" ] || { echo "$0: SKIP: no memory cgroup to make a child in"; exit 77; }
make_tmpdir
cg=$parent/zram-test-$$
mkdir "$cg" 2>/dev/null || { echo "$0: SKIP: cannot create $cg"; exit 77; }
cleanup_fn "rmdir '$cg'"
# 200 MiB: the server (about 15 MiB), a 90 MiB reserve and the guard's
# 32 MiB margin fit; a second reserve does not.
echo $((200 << 20)) > "$cg/$max_file" ||
  { echo "$0: SKIP: cannot set $cg/$max_file"; exit 77; }

sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
  nbdkit -P "$tmpdir/pid" -U "$tmpdir/sock" "$ZRAM_PLUGIN" 1G mlock=true \
  reserve=90M ctl="$tmpdir/ctl" || fail "nbdkit did not start in $cg"
cleanup_fn "kill_nbdkit '$tmpdir/pid'"
for (( i = 0; i < 100; i++ )); do [ -S "$tmpdir/sock" ] && break; sleep 0.1; done
uri=$(uri_of "$tmpdir/sock")
nbdsh -u "$uri" -c 'h.pwrite(b"\xa5" * (1 << 20), 0)'

rc=0
"$NBDZRAMCTL" -s "$tmpdir/ctl" reset > "$tmpdir/out" 2>&1 || rc=$?
cat "$tmpdir/out"
[ "$rc" != 0 ] || fail "a reset without room for a second reserve succeeded"
grep -q "ENOMEM: reset failed: out of memory: the new state's reserve of 94371840 bytes" \
  "$tmpdir/out" || fail "the message does not say why the reset failed"
nbdsh -u "$uri" -c '
assert h.pread(1 << 20, 0) == b"\xa5" * (1 << 20)
h.pwrite(b"\x5a" * 4096, 1 << 20)
assert h.pread(4096, 1 << 20) == b"\x5a" * 4096
' || fail "data lost, or no service, after the failed reset"
kill -0 "$(cat "$tmpdir/pid")" || fail "the server died"
kills=$(awk -v k="$oom_key" '$1 == k { print $2 }' "$cg/$oom_file")
[ "${kills:-0}" = 0 ] || fail "the OOM killer ran $kills times in $cg"
echo "reset without room for a second reserve: ENOMEM, data kept, no OOM kill"
