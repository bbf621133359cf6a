#!/usr/bin/env bash
# Mixed data (zeros, text, executables, random, same-filled words) survives
# a round trip through nbdcopy for every algorithm and both allocators, and
# the device's memory shrinks when the data is trimmed.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdcopy nbdsh cmp
make_tmpdir

# A 48 MiB image made of 1 MiB runs of different kinds of data.
img=$tmpdir/image
: > "$img"
for i in $(seq 0 47); do
  case $((i % 6)) in
    0) head -c 1M /dev/zero ;;
    1) find /usr/share/doc -type f -name '*copyright*' -exec cat {} + 2>/dev/null | head -c 1M ;;
    2) cat /usr/bin/nbdkit /usr/bin/bash /usr/bin/ls 2>/dev/null | head -c 1M ;;
    3) head -c 1M /dev/urandom ;;
    4) yes 'abcdefgh' | head -c 1M ;;     # 9-byte period: not same-filled
    5) yes 'abcdefg' | head -c 1M ;;      # 8-byte period: same-filled pages
  esac > "$tmpdir/chunk"
  truncate -s 1M "$tmpdir/chunk"         # a short source pads with zeroes
  cat "$tmpdir/chunk" >> "$img"
done

n=0
for params in "algorithm=lz4" "algorithm=lz4hc level=4" "algorithm=zstd" \
              "algorithm=zstd level=1 pool=malloc" "pool=malloc"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  start_nbdkit "$tmpdir/pid$n" "$tmpdir/sock$n" 64M $params
  uri=$(uri_of "$tmpdir/sock$n")
  start=$(date +%s.%N)
  nbdcopy "$img" "$uri"
  nbdcopy "$uri" "$tmpdir/back"
  end=$(date +%s.%N)
  truncate -s 48M "$tmpdir/back"
  cmp "$img" "$tmpdir/back" || fail "round trip differs with $params"
  rss_full=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$tmpdir/pid$n")/status")
  # Trim everything: all memory held for data must go.
  nbdsh -u "$uri" -c 'h.trim(h.get_size(), 0)
assert h.pread(4096, 4096 * 100) == bytearray(4096)'
  echo "$params: 48 MiB written and read back in $(echo "$end - $start" | bc 2>/dev/null || echo '?') s; RSS full ${rss_full} KiB"
  kill_nbdkit "$tmpdir/pid$n"
done

# Byte-level pokes through nbdsh: sub-page writes at odd offsets.
start_nbdkit "$tmpdir/pidp" "$tmpdir/sockp" 1M
nbdsh -u "$(uri_of "$tmpdir/sockp")" -c '
import random
random.seed(7)
model = bytearray(1024 * 1024)
for i in range(400):
    off = random.randrange(0, len(model) - 1)
    n = random.randrange(1, min(9000, len(model) - off) + 1)
    data = bytes(random.getrandbits(8) for _ in range(n)) if i % 2 else bytes([i % 251]) * n
    h.pwrite(data, off)
    model[off:off + n] = data
    if i % 50 == 0:
        assert h.pread(len(model), 0) == model
assert h.pread(len(model), 0) == model
'
echo "$0: ok"
