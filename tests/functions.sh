# nbdkit-zram: helpers shared by the shell tests.  Source it:  . "$srcdir/functions.sh"
# SPDX-License-Identifier: BSD-3-Clause
#
# Environment set by tests/meson.build:
#   ZRAM_PLUGIN        path of build/zram.so
#   NBDZRAMCTL         path of the nbdzramctl CLI (if built)
#   ZRAM_PRELOAD       sanitizer runtime to preload into nbdkit (or empty)
#   srcdir, builddir   tests/ source and build directories

# -e: any command that fails, fails the test (a client error must never
# pass unnoticed).  Debian's tools come first in PATH: nbdsh runs
# "python3 -m nbd", which needs the system python3 that python3-libnbd
# belongs to, not another python3 earlier in PATH.  The one exception is
# the nbdkit under test: NBDKIT, else the first nbdkit in the caller's PATH,
# as for the C tests, stays first.  dev.sh puts one there without the
# client hang-up abort of nbdkit < 1.33.10 (README.md, "Which nbdkit").
set -eu
NBDKIT=${NBDKIT:-$(command -v nbdkit || :)}
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
[ -z "$NBDKIT" ] || PATH="$(dirname "$NBDKIT"):$PATH"

_cleanup_cmds=()

# Run these commands at exit, last registered first, whatever the outcome.
cleanup_fn () {
  _cleanup_cmds+=("$*")
}

_sanitizer_failed=0

_run_cleanup () {
  local status=$? i
  for (( i = ${#_cleanup_cmds[@]} - 1; i >= 0; i-- )); do
    eval "${_cleanup_cmds[$i]}" || :
  done
  if [ "$_sanitizer_failed" != 0 ] && [ "$status" = 0 ]; then
    echo "$0: FAIL: a sanitizer reported errors in nbdkit (see above)" >&2
    status=1
  fi
  exit $status
}
trap _run_cleanup EXIT INT TERM

# Skip (exit 77) unless every command in "$@" exists.
requires () {
  local c
  for c in "$@"; do
    if ! command -v "$c" >/dev/null 2>&1; then
      echo "$0: SKIP: '$c' is not installed"
      exit 77
    fi
  done
}

# Skip (exit 77) unless the system python3 has libnbd's module nbd.
requires_python_nbd () {
  [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import nbd' 2>/dev/null ||
    { echo "$0: SKIP: python3 module nbd (python3-libnbd) is not installed"; exit 77; }
}

# Skip (exit 77) unless the nbdzramctl CLI was built ($NBDZRAMCTL).
requires_nbdzramctl () {
  [ -x "${NBDZRAMCTL:-}" ] || { echo "$0: SKIP: nbdzramctl was not built"; exit 77; }
}

fail () {
  echo "$0: FAIL: $*" >&2
  exit 1
}

# expect STATUS CMD...: run CMD with its output in $tmpdir/out and
# $tmpdir/err, and fail unless it exits with STATUS.
expect () {
  local want=$1 got=0
  shift
  "$@" >"$tmpdir/out" 2>"$tmpdir/err" || got=$?
  [ "$got" = "$want" ] ||
    fail "'$*' exited $got, expected $want: $(cat "$tmpdir/out" "$tmpdir/err")"
}

# A private temporary directory, removed at exit.  Sanitizer reports of
# the nbdkit processes a test starts land there.
make_tmpdir () {
  tmpdir=$(mktemp -d "/tmp/zram-test.XXXXXX")
  cleanup_fn "rm -rf '$tmpdir'"
  export ZRAM_SANITIZER_LOG=$tmpdir/sanitizer
}

# nbdkit with the sanitizer runtime preloaded when the plugin needs one.
# A daemonised nbdkit has no terminal, so sanitizer reports go to files
# named $ZRAM_SANITIZER_LOG.PID, which kill_nbdkit checks.
run_nbdkit () {
  if [ -n "${ZRAM_PRELOAD:-}" ]; then
    local log=${ZRAM_SANITIZER_LOG:-/tmp/zram-sanitizer}
    LD_PRELOAD="$ZRAM_PRELOAD" \
      ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$log" \
      UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$log" \
      TSAN_OPTIONS="${TSAN_OPTIONS:-}:log_path=$log" \
      nbdkit "$@"
  else
    nbdkit "$@"
  fi
}

# Print and count sanitizer reports written by nbdkit processes so far.
check_sanitizer_logs () {
  local f
  for f in "${ZRAM_SANITIZER_LOG:-/tmp/zram-sanitizer}".*; do
    [ -s "$f" ] || continue
    echo "$0: sanitizer report from nbdkit ($f):" >&2
    cat "$f" >&2
    rm -f "$f"
    _sanitizer_failed=1
  done
}

# start_nbdkit PIDFILE SOCKET [nbdkit options...] [plugin params...]
# Start nbdkit the way users do: daemonised (it forks after .get_ready),
# with a pidfile, on a unix socket.  Leading arguments that begin with '-'
# are nbdkit options (e.g. --no-sr).  Registers a kill at exit.
start_nbdkit () {
  local pidfile=$1 sock=$2 i opts=()
  shift 2
  while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
    opts+=("$1")
    shift
  done
  run_nbdkit "${opts[@]}" -P "$pidfile" -U "$sock" "$ZRAM_PLUGIN" "$@" ||
    fail "nbdkit failed to start: $*"
  for (( i = 0; i < 600; i++ )); do
    [ -s "$pidfile" ] && [ -S "$sock" ] && break
    sleep 0.1
  done
  [ -s "$pidfile" ] || fail "nbdkit did not write $pidfile"
  cleanup_fn "kill_nbdkit '$pidfile'"
}

# Stop nbdkit by pid and fail if it does not exit within 10 seconds.
kill_nbdkit () {
  local pid i
  pid=$(cat "$1" 2>/dev/null) || { check_sanitizer_logs; return 0; }
  kill "$pid" 2>/dev/null || { check_sanitizer_logs; return 0; }
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || { check_sanitizer_logs; return 0; }
    sleep 0.1
  done
  echo "$0: nbdkit (pid $pid) still running 10 s after SIGTERM" >&2
  kill -9 "$pid" 2>/dev/null
  return 1
}

# refused_start MESSAGE PARAMS...: a 16M device with PARAMS must fail to
# start (daemonised, so before the fork), with MESSAGE among its errors
# and no pid file left.  Prints the errors.
refused_start () {
  local want=$1 rc=0
  shift
  run_nbdkit -P "$tmpdir/badpid" -U "$tmpdir/badsock" "$ZRAM_PLUGIN" 16M "$@" \
    >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  [ "$rc" != 0 ] || { kill_nbdkit "$tmpdir/badpid"; fail "started with $*"; }
  grep -q -- "$want" "$tmpdir/err" || fail "$*: $(cat "$tmpdir/err")"
  [ ! -e "$tmpdir/badpid" ] || fail "$*: a pid file was left"
  cat "$tmpdir/err"
}

# hold_connection URI SECONDS: connect to URI in the background (system
# python3 with libnbd) and stay connected for SECONDS; returns once the
# connection is open, or after 10 s.  The holder's pid is in $holder, and
# it is killed at exit.
hold_connection () {
  local i
  rm -f "$tmpdir/holding"
  /usr/bin/python3 -c '
import nbd, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))' "$1" "$tmpdir/holding" "$2" &
  holder=$!
  cleanup_fn "kill $holder 2>/dev/null"
  for (( i = 0; i < 100; i++ )); do [ -e "$tmpdir/holding" ] && break; sleep 0.1; done
}

# refused_start WANT [plugin params...]: a 16M device with these
# parameters must fail to start, before the fork (no pid file), with a
# message containing WANT.
refused_start () {
  local want=$1 rc=0
  shift
  run_nbdkit -P "$tmpdir/badpid" -U "$tmpdir/badsock" "$ZRAM_PLUGIN" 16M "$@" \
    >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  [ "$rc" != 0 ] || { kill_nbdkit "$tmpdir/badpid"; fail "started with $*"; }
  grep -q -- "$want" "$tmpdir/err" || fail "$*: $(cat "$tmpdir/err")"
  [ ! -e "$tmpdir/badpid" ] || fail "$*: a pid file was left"
}

# The URI of a unix socket.
uri_of () {
  echo "nbd+unix:///?socket=$1"
}
