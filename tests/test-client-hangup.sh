#!/usr/bin/env bash
# A client that dies (SIGKILL: a crash, a VM killed) with hundreds of
# requests queued must not take the server down, and nothing written before
# may change.  100 clients die this way, 4 at a time, against a daemonised
# server; then the server must still be alive, a reference area written
# beforehand must read back with the same checksum, and every page the
# dying clients wrote must be whole.  nbdkit 1.32.0 to 1.33.9 abort here
# (raw_send_socket: Assertion `sock >= 0'), usually within a few deaths;
# dev.sh makes the tests run a fixed nbdkit (README.md, "Which nbdkit").
# HANGUP_CLIENTS and HANGUP_SEED change the number of clients and the seed.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy python3 sha256sum
python3 -c 'import nbd' 2>/dev/null ||
  { echo "$0: SKIP: python3 has no libnbd module (python3-libnbd)"; exit 77; }
make_tmpdir

clients=${HANGUP_CLIENTS:-100}
seed=${HANGUP_SEED:-0x5eed0c1e}
page=4096
ref_pages=4096                  # 16 MiB of reference data at the start...
first=$ref_pages                # ...then 48 MiB that the dying clients use
last=$(( 64 * 1024 * 1024 / page ))

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 64M
pid=$(cat "$tmpdir/pid")
uri=$(uri_of "$tmpdir/sock")
version=$(nbdkit --version)

# Reference data of mixed compressibility: random, text, zeroes.
{ head -c 6M /dev/urandom
  for (( i = 0; i < 1500; i++ )); do cat "$srcdir/functions.sh"; done | head -c 6M
  head -c 4M /dev/zero; } > "$tmpdir/ref"
[ "$(stat -c %s "$tmpdir/ref")" = $(( ref_pages * page )) ] || fail "reference size"
nbdcopy "$tmpdir/ref" "$uri"
want=$(sha256sum < "$tmpdir/ref")

python3 "$srcdir/client-hangup.py" storm "$tmpdir/sock" "$pid" "$clients" 4 \
        "$first" "$last" "$seed" ||
  fail "$version did not survive clients dying with requests in flight" \
       "(nbdkit 1.32.0 to 1.33.9 abort so; use nbdkit >= 1.33.10, see README.md)"

kill -0 "$pid" 2>/dev/null || fail "the server is gone"
nbdcopy "$uri" "$tmpdir/after"
got=$(head -c $(( ref_pages * page )) "$tmpdir/after" | sha256sum)
[ "$got" = "$want" ] ||
  fail "reference data changed after the clients died: $got, want $want"
python3 "$srcdir/client-hangup.py" check "$tmpdir/sock" "$first" "$last" ||
  fail "a page written by a dying client is damaged"
echo "$0: $version: reference data intact after $clients client deaths"
