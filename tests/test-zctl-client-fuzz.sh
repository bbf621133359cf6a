#!/usr/bin/env bash
# Fuzz nbdzramctl's reply reader and printers (tests/fuzz-zctl-client.c)
# with libFuzzer for a bounded time: any bytes a server may send.  Skips
# (77) without clang or its fuzzer runtime.  FUZZ_SECONDS (default 20).
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires clang
make_tmpdir

top=$(cd "$srcdir/.." && pwd)
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' \
  >"$tmpdir/probe.c"
if ! clang -fsanitize=fuzzer "$tmpdir/probe.c" -o "$tmpdir/probe" 2>/dev/null; then
  echo "$0: SKIP: clang has no libFuzzer runtime (libclang-rt-dev)"
  exit 77
fi

clang -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I"$top/include" -I"$top/tools" \
  "$srcdir/fuzz-zctl-client.c" "$top/tools/zctl-client.c" \
  -o "$tmpdir/fuzz-zctl-client" 2>"$tmpdir/cc.log" ||
  { cat "$tmpdir/cc.log"; fail "cannot build the fuzzer"; }

# Seeds: good replies, the crash of case 08, an NBD greeting, escapes.
mkdir "$tmpdir/corpus"
printf 'ok\n' >"$tmpdir/corpus/ok"
printf 'error EBUSY: reset refused\n' >"$tmpdir/corpus/error"
printf 'error \0\n' >"$tmpdir/corpus/nul"
printf 'NBDMAGIC\0\0\x42\x02\x81\x86\x12\x53IHAVEOPT\0\x03' >"$tmpdir/corpus/nbd"
{
  for k in disksize orig_data_size compr_data_size mem_used_total mem_limit \
           mem_used_max same_pages pages_compacted huge_pages; do
    echo "$k=4096"
  done
  printf 'algorithm=\x1b[2Jlz4\nlevel=0\nok\n'
} >"$tmpdir/corpus/stats"
cat >"$tmpdir/client.dict" <<'DICT'
"ok\x0a"
"error "
"EBUSY: "
"\x0a"
"="
"disksize="
"orig_data_size="
"mem_used_total="
"algorithm="
"NBDMAGIC"
"\x1b["
"\x00"
DICT

cd "$tmpdir"
status=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  ./fuzz-zctl-client -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 \
  -rss_limit_mb=1024 -max_len=4200 -dict=client.dict -print_final_stats=1 \
  corpus >fuzz.log 2>&1 || status=$?
tail -n 25 fuzz.log
[ $status -eq 0 ] || fail "the fuzzer found a problem (exit $status)"
grep -q "Done [0-9]* runs" fuzz.log || fail "the fuzzer did not finish normally"
