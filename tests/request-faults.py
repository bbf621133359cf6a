#!/usr/bin/python3
# nbdkit-zram: count the page faults of nbdkit's threads per write request.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
#
# Usage: request-faults.py SOCKET PID [MEASURE_MIB]
#
# Over one connection (nbdkit makes a connection's worker threads when it
# opens and joins them when it closes, so the same threads serve both
# phases): a warm-up writes 24 MiB of swap-like pages at the start of the
# device in mixed request sizes, with 16 requests in flight so that every
# worker thread serves some, and overwrites them until a pass takes no
# page fault; then, with every thread's minflt + majflt
# (/proc/PID/task/TID/stat fields 10 and 12) read before and after, the
# measured phase writes MEASURE_MIB (default 32) of new pages further on,
# so the pool grows the way it does under swap-out.  Prints one line per
# thread whose count moved and a summary line:
#   requests=N faults=F per_request=F/N request_threads=T
# Threads named "zram-*" (the plugin's own background threads: reserve
# refill, compactor, control socket) are counted apart: they may wait for
# memory; the request path may not.
import os
import sys
import time

import nbd

PAGE = 4096
SIZES = [4096, 65536, 131072, 262144, 1 << 20]   # request sizes, cycled


def template(pages):
    """Swap-like pages: text, a random run, zeroes; every eighth page zero."""
    out = bytearray()
    for i in range(pages):
        if i % 8 == 0:
            out += bytes(PAGE)
            continue
        text = (b"page %d of the request-fault test; " % i) * 40
        rnd = os.urandom(1024)
        p = (text[:1536] + rnd).ljust(PAGE, b"\0")
        out += p
    return out


def task_faults(pid):
    """{tid: (comm, minflt + majflt)} for every thread of pid."""
    res = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
        except FileNotFoundError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): minflt is field 10, majflt 12.
        res[int(tid)] = (comm, int(fields[7]) + int(fields[9]))
    return res


def request_faults(before, after, show=False):
    """(faults of the request threads between two task_faults, threads)."""
    total = 0
    threads = 0
    for tid, (comm, f) in sorted(after.items()):
        d = f - before.get(tid, (comm, 0))[1]
        mine = comm.startswith("zram-")
        if not mine:
            threads += 1
            total += d
        if d and show:
            print("  tid %d (%s): %d faults%s" % (tid, comm, d,
                  " (background, not counted)" if mine else ""))
    return total, threads


def reap(h):
    """Retire completed commands (raises if one failed)."""
    while True:
        try:
            c = h.aio_peek_command_completed()
        except nbd.Error:       # nothing in flight at all
            return
        if not c:
            return
        h.aio_command_completed(c)


def drain(h, limit):
    """Wait until at most limit commands are in flight."""
    while h.aio_in_flight() > limit:
        h.poll(-1)
        reap(h)


def write_range(h, tmpl, start, length, inflight=16, sizes=SIZES):
    """Write [start, start+length) in cycled sizes; return the request count."""
    off, n, k = start, 0, 0
    stamp = 0
    while off < start + length:
        size = min(sizes[k % len(sizes)], start + length - off)
        k += 1
        buf = bytearray(tmpl[(off % len(tmpl)):][:size])
        if len(buf) < size:
            buf += tmpl[:size - len(buf)]
        # Make every page unique so that nothing is stored as a duplicate.
        for p in range(0, size, PAGE):
            if buf[p:p + 8] != bytes(8):
                stamp += 1
                buf[p + 1536:p + 1544] = stamp.to_bytes(8, "little")
        drain(h, inflight - 1)
        h.aio_pwrite(nbd.Buffer.from_bytearray(buf), off)
        off += size
        n += 1
        reap(h)
    drain(h, 0)
    return n


def main():
    sock, pid = sys.argv[1], int(sys.argv[2])
    mib = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    tmpl = template(1024)
    h = nbd.NBD()
    h.connect_unix(sock)
    warm = 24 << 20
    write_range(h, tmpl, 0, warm)
    # Overwrite passes until one faults no more: every worker thread has
    # then served requests of every size (nbdkit keeps a per-thread request
    # buffer of the largest size it has seen; the core makes a thread's
    # context on its first request), the steady state of a long-running
    # server.
    # A pass also writes 32 requests of the largest size at once, so that
    # each worker is likely to serve one; two passes in a row without a
    # fault count as warm.
    quiet = 0
    for passes in range(1, 31):
        b = task_faults(pid)
        write_range(h, tmpl, 0, warm)
        write_range(h, tmpl, 0, 32 * SIZES[-1], sizes=SIZES[-1:], inflight=32)
        a = task_faults(pid)
        quiet = quiet + 1 if request_faults(b, a)[0] == 0 else 0
        if quiet == 2:
            break
    else:
        sys.exit("no two overwrite passes in a row without page faults in 30:"
                 " not warming up")
    print("warm after %d overwrite passes" % passes)
    time.sleep(float(os.environ.get("FAULTS_SETTLE", "1")))

    before = task_faults(pid)
    n = write_range(h, tmpl, 64 << 20, mib << 20)
    after = task_faults(pid)
    h.shutdown()

    total, threads = request_faults(before, after, show=True)
    print("requests=%d faults=%d per_request=%.4f request_threads=%d"
          % (n, total, total / n, threads))


main()
