#!/usr/bin/env bash
# Fuzz the control-line parser (tests/fuzz-zctl.c) with libFuzzer for a
# bounded time.  Skips (77) without clang or its fuzzer runtime.
# FUZZ_SECONDS (default 20) sets the budget.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires clang pkg-config
make_tmpdir

top=$(cd "$srcdir/.." && pwd)
# The core's sources, as listed in src/meson.build.
srcs=()
for f in $(grep -o "'[A-Za-z0-9_-]*\.c'" "$top/src/meson.build" | tr -d "'"); do
  srcs+=("$top/src/$f")
done
[ ${#srcs[@]} -gt 0 ] || fail "no sources found in src/meson.build"

# Does this clang have the fuzzer runtime?
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' \
  >"$tmpdir/probe.c"
if ! clang -fsanitize=fuzzer "$tmpdir/probe.c" -o "$tmpdir/probe" 2>/dev/null; then
  echo "$0: SKIP: clang has no libFuzzer runtime (libclang-rt-dev)"
  exit 77
fi

flags=(-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$top/include" -I"$top/src")
clang "${flags[@]}" "$srcdir/fuzz-zctl.c" "${srcs[@]}" \
  -DHAVE_LIBNBD=1 \
  $(pkg-config --cflags --libs liburcu-bp liblz4 libzstd libxxhash libnbd) -lpthread \
  -o "$tmpdir/fuzz-zctl" 2>"$tmpdir/cc.log" ||
  { cat "$tmpdir/cc.log"; fail "cannot build the fuzzer"; }

# Seed corpus: every command, good and bad; a dictionary of its words.
mkdir "$tmpdir/corpus"
i=0
for line in "help" "stats" "compact" "reset" "reset force" \
            "reset force algorithm=zstd level=3" "reset algorithm=lz4hc" \
            "reset level=1" "mem_limit 64K" "mem_limit 0" "mem_used_max 0" \
            "mem_limit 99999999999999999999" "stats x" "bogus"; do
  printf '%s\n' "$line" >"$tmpdir/corpus/seed$i"
  i=$((i + 1))
done
printf 'stats\nmem_limit 1M\nreset force\nstats\n' >"$tmpdir/corpus/multi"
cat >"$tmpdir/zctl.dict" <<'DICT'
"help"
"stats"
"compact"
"reset"
"force"
"algorithm="
"level="
"lz4"
"lz4hc"
"zstd"
"mem_limit"
"mem_used_max"
"K"
"M"
"G"
"T"
"iB"
DICT

cd "$tmpdir"
status=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  ./fuzz-zctl -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 \
  -rss_limit_mb=1024 -max_len=600 -dict=zctl.dict -print_final_stats=1 \
  corpus >fuzz.log 2>&1 || status=$?
tail -n 25 fuzz.log
[ $status -eq 0 ] || cp fuzz.log "${FUZZ_LOG_COPY:-/dev/null}" 2>/dev/null
[ $status -eq 0 ] || fail "the fuzzer found a problem (exit $status)"
grep -q "Done [0-9]* runs" fuzz.log || fail "the fuzzer did not finish normally"
