#!/usr/bin/env bash
# nbdkit-zram: contrib/systemd/nbdkit-zram@.service passes systemd-analyze verify.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# verify exits 0 on many problems (a misspelt value, an ordering cycle), so
# any message at all about the unit fails the test.  The example
# environment file may only set variables the unit documents.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")" && pwd)}
unitdir=$srcdir/../contrib/systemd

skip () { echo "SKIP: $*"; exit 77; }
fail () { echo "FAIL: $*"; exit 1; }

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
# verify checks that the commands exist.
for c in nbdkit nbd-client mkswap swapon sh; do
  command -v "$c" >/dev/null || skip "$c not installed"
done

tmp=$(mktemp -d /tmp/zram-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp "$unitdir/nbdkit-zram@.service" "$unitdir/nbdkit-zram-metrics.service" \
   "$unitdir/nbdkit-zram-metrics.timer" "$tmp/"
ln -s nbdkit-zram@.service "$tmp/nbdkit-zram@nbd0.service"
( cd "$tmp" && SYSTEMD_LOG_LEVEL=notice \
    systemd-analyze verify --man=no ./nbdkit-zram@nbd0.service \
      ./nbdkit-zram-metrics.service ./nbdkit-zram-metrics.timer ) > "$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
# Messages about other units on this machine are not ours to judge.
grep -v -E '^(/etc|/lib|/usr/lib)/systemd/' "$tmp/out" | grep -q . &&
  fail "systemd-analyze verify complained (exit $rc)"
[ $rc = 0 ] || fail "systemd-analyze verify exited $rc"

grep -v -E '^[[:space:]]*(#|$)' "$unitdir/nbdkit-zram.conf.example" |
while IFS= read -r line; do
  name=${line%%=*}
  [[ "$line" =~ ^ZRAM_[A-Z_]+=[^\ ]*$ ]] || fail "example: not NAME=VALUE: $line"
  grep -q "^#   $name=" "$unitdir/nbdkit-zram@.service" ||
    fail "example sets $name, which the unit does not document"
done || exit 1
echo "PASS: unit verified"
