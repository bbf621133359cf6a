#!/usr/bin/env bash
# Compaction through the control socket, run again and again while two
# clients write, trim and read back pages of mixed compressibility, loses
# no data, and does release memory.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdsh
if [ ! -x "${NBDZRAMCTL:-}" ]; then
  echo "$0: SKIP: nbdzramctl was not built"
  exit 77
fi
# nbdsh runs the first python3 on PATH, which may lack libnbd's module
# (a pyenv, a venv); fall back to the system one.
if nbdsh -c 'pass' >/dev/null 2>&1; then
  nbdsh=(nbdsh)
elif /usr/bin/python3 -c 'import nbd' 2>/dev/null; then
  nbdsh=(/usr/bin/python3 -m nbd)
else
  echo "$0: SKIP: no python3 with libnbd's nbd module"
  exit 77
fi
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 32M pool=zs ctl="$tmpdir/ctl"
uri=$(uri_of "$tmpdir/sock")
for (( i = 0; i < 100; i++ )); do
  [ -S "$tmpdir/ctl" ] && break
  sleep 0.1
done

# Compact in a loop until told to stop.
( while [ ! -e "$tmpdir/stop" ]; do
    "$NBDZRAMCTL" -s "$tmpdir/ctl" compact >/dev/null || exit 1
  done ) &
cpid=$!
cleanup_fn "touch '$tmpdir/stop'; kill $cpid 2>/dev/null"

# Each client owns half the disk and keeps a model of it.
client () {
  "${nbdsh[@]}" -u "$uri" -c "
import random
PAGE = 4096
part = $1
half = h.get_size() // PAGE // 2
first = part * half
rng = random.Random(2026 + part)
phrase = b'compressed ram, page after page. ' * 3
chunks = [phrase[k:k + 16] for k in range(33)]

def page(tag):
    if tag == 0:
        return bytes(PAGE)
    r = random.Random(tag)
    noise = r.randrange(17)
    return b''.join(r.randbytes(16) if r.randrange(16) < noise
                    else chunks[i % 33] for i in range(PAGE // 16))

model = {}
def write(p, tag):
    h.pwrite(page(tag), (first + p) * PAGE)
    model[p] = tag
def trim(p):
    h.trim(PAGE, (first + p) * PAGE)
    model[p] = 0
def check(p):
    got = h.pread(PAGE, (first + p) * PAGE)
    if got != page(model.get(p, 0)):
        raise SystemExit('client %d: page %d differs (tag %d)' % (part, p, model.get(p, 0)))

tag = (part + 1) << 32
for p in range(half):
    tag += 1
    write(p, tag)
for p in range(half):
    if p % 4:
        trim(p)
for i in range(3000):
    p = rng.randrange(half)
    op = rng.randrange(100)
    if op < 40:
        tag += 1
        write(p, tag)
    elif op < 55:
        trim(p)
    else:
        check(p)
for p in range(half):
    check(p)
"
}
client 0 & c0=$!
client 1 & c1=$!
wait $c0 || fail "client 0 lost data"
wait $c1 || fail "client 1 lost data"
touch "$tmpdir/stop"
wait $cpid || fail "nbdzramctl compact failed"

stats=$("$NBDZRAMCTL" -s "$tmpdir/ctl" stats)
echo "$stats" | grep -E 'pages_compacted|mem_used_total|compr_data_size'
compacted=$(echo "$stats" | sed -n 's/^pages_compacted=//p')
[ "${compacted:-0}" -gt 0 ] || fail "compaction released no pages"
