#!/usr/bin/env bash
# nbdkit-zram: run-bench.py refuses bad arguments with a clear error (not a
# traceback, not an empty run), and says why it skips the kernel zram
# targets where it cannot make a device.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# Usage: test-run-bench-args.sh RUN_BENCH BUILD_DIR   (from bench/meson.build)
set -u
run_bench=$1 build=$2

fail () { echo "FAIL: $*"; exit 1; }

tmp=$(mktemp -d /tmp/run-bench-args.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Each must exit 2 (argparse's usage error) with "error:" and the reason,
# before it starts anything.
bad () {                        # bad 'WHAT THE ERROR SAYS' ARGS...
  want=$1; shift
  python3 "$run_bench" --build-dir "$build" --out "$tmp/out" "$@" > "$tmp/log" 2>&1
  rc=$?
  [ $rc = 2 ] || { cat "$tmp/log"; fail "run-bench $*: exit $rc, not 2"; }
  grep -q "error: .*$want" "$tmp/log" || { cat "$tmp/log"; fail "run-bench $*: no '$want'"; }
  ! grep -q Traceback "$tmp/log" || { cat "$tmp/log"; fail "run-bench $*: a traceback"; }
  echo "    $*: $(grep 'error:' "$tmp/log")"
}
bad "positive multiple of 4096" --size ''
bad "positive multiple of 4096" --size abc
bad "positive multiple of 4096" --size 1.5G
bad "positive multiple of 4096" --size 16MiB
bad "positive multiple of 4096" --size 4097
bad "positive multiple of 4096" --size -4096
bad "positive multiple of 4096" --size 0
bad "at least one repetition" --reps 0
bad "positive number of seconds" --runtime 0
bad "positive number of seconds" --runtime nan
bad "unknown target kzram-lz5" --targets zram-lz4,kzram-lz5
bad "names no target" --targets ,
bad "unknown test randread" --tests randread
bad "names no test" --tests ,
bad "--out /dev/null/out: .*Not a directory" --out /dev/null/out
[ ! -e "$tmp/out" ] || fail "a refused run made its output directory"

# Where hot_add fails (no zram, the kernel refuses a device, an answer
# that is not a number) the probe gives the reason and makes nothing; the
# driver's Python is run against a fake zram-control directory.
mkdir -p "$tmp/nozram" "$tmp/refuses/hot_add" "$tmp/garbage"
echo "not a number" > "$tmp/garbage/hot_add"
python3 - "$run_bench" "$tmp" > "$tmp/probe.log" 2>&1 <<'PYEOF'
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("run_bench", sys.argv[1])
rb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rb)
os.geteuid = lambda: 0                  # as root, whoever runs the test
for case in ("nozram", "refuses", "garbage"):
    rb.ZRAM_CONTROL = os.path.join(sys.argv[2], case)
    print(case + ":", rb.kzram_unavailable("lz4"), rb.KernelZram.live)
PYEOF
grep -q "^nozram: this kernel has no zram (no $tmp/nozram/hot_add) {}$" "$tmp/probe.log" &&
  grep -q "^refuses: cannot make a zram device ($tmp/refuses/hot_add): .*Is a directory.* {}$" "$tmp/probe.log" &&
  grep -q "^garbage: $tmp/garbage/hot_add gave 'not a number', not a device number {}$" "$tmp/probe.log" ||
  { cat "$tmp/probe.log"; fail "hot_add failures: not the reasons expected"; }
sed 's/^/    /' "$tmp/probe.log"

# A signal that stops the run just as a client starts: the client (here a
# sleep) must not be left running unknown to the driver -- a fio left so
# would hold a kernel zram device open.
python3 - "$run_bench" > "$tmp/start.log" 2>&1 <<'PYEOF'
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("run_bench", sys.argv[1])
rb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rb)
signal.signal(signal.SIGTERM, rb.on_signal)
real_popen = rb.subprocess.Popen
started = []
class SignalledPopen(real_popen):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        started.append(self.pid)
        os.kill(os.getpid(), signal.SIGTERM)    # as the client has started
rb.subprocess.Popen = SignalledPopen
try:
    rb.run_cmd(["sleep", "30"], 60)
    print("no SystemExit after SIGTERM")
except SystemExit as e:
    print("SystemExit", e.code)
for pid in started:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        print("client gone")
    else:
        print("client %d still running" % pid)
        os.kill(pid, signal.SIGKILL)
PYEOF
[ "$(cat "$tmp/start.log")" = "SystemExit 143
client gone" ] || { cat "$tmp/start.log"; fail "signal as a client starts: the client stayed"; }
echo "    signal as a client starts: the client is killed"

# Without root the kernel zram targets are skipped with the reason; with
# nothing else to run the driver exits 77.  (Run as nobody where this test
# runs as root; setpriv is in util-linux.)
[ -x "$build/bench/zram-image-gen" ] || fail "$build/bench/zram-image-gen not built"
command -v fio > /dev/null || { echo "SKIP (part): fio not installed"; exit 0; }
command -v nbdkit > /dev/null || { echo "SKIP (part): nbdkit not in PATH"; exit 0; }
as=()
if [ "$(id -u)" = 0 ]; then
  command -v setpriv > /dev/null || { echo "SKIP (part): no setpriv to drop root"; exit 0; }
  as=(setpriv --reuid=65534 --regid=65534 --clear-groups env PATH="$PATH" TMPDIR="$tmp")
  chmod 777 "$tmp"
fi
"${as[@]}" python3 "$run_bench" --build-dir "$build" --out "$tmp/out" --no-micro \
  --size 1M --tests image --targets kzram-lz4,kzram-lzo-rle > "$tmp/log" 2>&1
rc=$?
[ $rc = 77 ] || { cat "$tmp/log"; fail "kzram targets without root: exit $rc, not 77"; }
grep -q "kzram-lz4 skipped: making a zram device needs root" "$tmp/log" ||
  grep -q "kzram-lz4 skipped: this kernel has no zram" "$tmp/log" ||
  { cat "$tmp/log"; fail "kzram targets without root: no reason given"; }
! grep -q '^kzram: made' "$tmp/log" || { cat "$tmp/log"; fail "made a device without root"; }
echo "    without root: $(grep 'kzram-lz4 skipped' "$tmp/log")"
echo "PASS"
