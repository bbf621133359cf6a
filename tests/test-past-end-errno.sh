#!/usr/bin/env bash
# What a client really gets for requests past the end of the device (case
# 14), as nbdkit-zram-plugin(1) documents it: nbdkit checks the range before
# the plugin sees the request, and answers read, trim, cache and block
# status with EINVAL, write and write-zeroes with ENOSPC (the NBD spec's
# errno for writes past the end).  The device never sees these requests,
# so its invalid_io statistic stays 0.
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit
requires_python_nbd
requires_nbdzramctl
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 1M ctl="$tmpdir/ctl"
/usr/bin/python3 - "$tmpdir/sock" <<'EOF'
import sys, nbd

h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.set_strict_mode(0)                     # let the server judge the range
h.connect_unix(sys.argv[1])
sz = h.get_size()
want = {"read": "EINVAL", "write": "ENOSPC", "trim": "EINVAL",
        "zero": "ENOSPC", "cache": "EINVAL", "block status": "EINVAL"}
for off, n in ((sz - 1, 2), (sz, 1), (sz + 4096, 4096), (sz - 4096, 8192)):
    ops = {
        "read": lambda: h.pread(n, off),
        "write": lambda: h.pwrite(b"x" * n, off),
        "trim": lambda: h.trim(n, off),
        "zero": lambda: h.zero(n, off),
        "cache": lambda: h.cache(n, off),
        "block status": lambda: h.block_status(n, off, lambda *a: 0),
    }
    for name, f in ops.items():
        try:
            f()
            raise AssertionError("%s of %d at %d past the end accepted" % (name, n, off))
        except nbd.Error as e:
            assert e.errno == want[name], (name, off, n, e.errno, want[name])
# Nothing was changed, and the connection still works.
assert h.pread(4096, sz - 4096) == bytes(4096)
h.pwrite(b"y" * 4096, sz - 4096)
assert h.pread(4096, sz - 4096) == b"y" * 4096
h.shutdown()
EOF
"$NBDZRAMCTL" -s "$tmpdir/ctl" stats > "$tmpdir/stats"
grep -qx 'invalid_io=0' "$tmpdir/stats" || fail "invalid_io: $(grep invalid_io "$tmpdir/stats")"
echo "$0: ok"
