#!/usr/bin/env bash
# By default only local clients are served (unix socket, vsock, loopback):
# the device is a writable disk without authentication.  A client on
# another host is refused with a log line that names it and the parameter
# that would allow it; allow-remote=true serves it.
#
# "Another host" is a network namespace of our own: two namespaces joined
# by a veth pair, 10.200.0.1 (server) and 10.200.0.2 (client).  Every
# address lives inside namespaces this test makes; nothing leaves the
# machine.  Needs root and 'ip netns'.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh nbdinfo ip
if [ "$(id -u)" != 0 ]; then
  echo "$0: SKIP: needs root for network namespaces"
  exit 77
fi
make_tmpdir
srv=zr-srv-$$ cli=zr-cli-$$
if ! ip netns add "$srv" 2>"$tmpdir/netns.err"; then
  echo "$0: SKIP: cannot make a network namespace: $(cat "$tmpdir/netns.err")"
  exit 77
fi
cleanup_fn "ip netns del '$srv'"
ip netns add "$cli" || fail "ip netns add $cli"
cleanup_fn "ip netns del '$cli'"
ip -n "$srv" link add zrv0 type veth peer name zrv1 netns "$cli" ||
  { echo "$0: SKIP: cannot make a veth pair"; exit 77; }
ip -n "$srv" addr add 10.200.0.1/24 dev zrv0
ip -n "$cli" addr add 10.200.0.2/24 dev zrv1
for ns in "$srv" "$cli"; do
  ip -n "$ns" link set lo up
done
ip -n "$srv" link set zrv0 up
ip -n "$cli" link set zrv1 up

# serve NAME PORT [params...]: nbdkit in the server namespace, on every
# address of it, in the foreground with its log in $tmpdir/NAME.log.
serve () {
  local name=$1 port=$2 i
  shift 2
  ip netns exec "$srv" env LD_PRELOAD="${ZRAM_PRELOAD:-}" \
    nbdkit -f --log=stderr -p "$port" "$ZRAM_PLUGIN" 64M "$@" \
    2>"$tmpdir/$name.log" &
  cleanup_fn "kill $! 2>/dev/null; wait $! 2>/dev/null"
  for (( i = 0; i < 100; i++ )); do
    ip netns exec "$srv" nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1 &&
      return 0
    sleep 0.1
  done
  cat "$tmpdir/$name.log"
  fail "nbdkit ($name) did not start"
}

# A write and a read back through URI, from namespace NS.
io () {
  ip netns exec "$1" nbdsh -u "$2" -c '
h.pwrite(b"zram" * 1024, 4096)
assert h.pread(4096, 4096) == b"zram" * 1024
'
}

# 1. Default: loopback (IPv4 and IPv6) works, the other host is refused.
serve default 10809
io "$srv" nbd://127.0.0.1:10809 || fail "IPv4 loopback client refused"
if ip -n "$srv" -6 addr show dev lo | grep -q '::1'; then
  io "$srv" "nbd://[::1]:10809" || fail "IPv6 loopback client refused"
else
  echo "$0: no IPv6 loopback here; IPv6 part skipped"
fi
if io "$cli" nbd://10.200.0.1:10809 2>"$tmpdir/client.err"; then
  fail "a client at 10.200.0.2 was served without allow-remote=true"
fi
sleep 0.2
cat "$tmpdir/default.log"
grep -q "refusing the client at 10\.200\.0\.2 port [0-9]*:.*allow-remote=true" \
  "$tmpdir/default.log" || fail "no log line naming the client and the parameter"
grep -q "refusing.*127\.0\.0\.1\|refusing.*::1" "$tmpdir/default.log" &&
  fail "a loopback client was refused"

# 2. allow-remote=true serves the other host.
serve remote 10810 allow-remote=true
io "$cli" nbd://10.200.0.1:10810 || fail "allow-remote=true: client refused"
grep -q refusing "$tmpdir/remote.log" && fail "allow-remote=true logged a refusal"

# 3. A unix socket is local.
start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M
io "$srv" "nbd+unix:///?socket=$tmpdir/sock" || fail "unix socket client refused"
echo "$0: ok"
