#!/usr/bin/python3
# nbdkit-zram: clients that die with hundreds of requests queued, for
# test-client-hangup.sh.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
"""Kill clients mid-I/O and check that the server and the data survive.

  client-hangup.py storm SOCKET PID CLIENTS PARALLEL FIRST LAST SEED
      Run CLIENTS dying clients, PARALLEL at a time, each writing and
      reading random pages in [FIRST, LAST) (4 KiB page numbers).  Fails
      as soon as process PID (the server) is gone.
  client-hangup.py die SOCKET FIRST LAST SEED
      One dying client: keeps a random 128-512 requests in flight through
      libnbd's asynchronous API, and after a random number of them sends
      itself SIGKILL, with requests queued and replies on their way.  This
      is what a VM killed with I/O in flight does to the server.
  client-hangup.py check SOCKET FIRST LAST
      Every page in [FIRST, LAST) must be zero or one whole page that a
      dying client wrote there: no page torn, misplaced or garbled.

Pages written carry a header (magic, own offset, client seed, sequence)
and are either that header repeated (compressible) or the header, the
SHA-256 of the rest and 4032 random bytes (incompressible), so both of
the plugin's store paths are exercised and each page can be checked alone.
"""

import hashlib
import os
import random
import signal
import struct
import subprocess
import sys
import time

import nbd

PAGE = 4096
MAGIC = b"ZRAMHUP1"
HEADER = struct.Struct("<8sQQQ")        # magic, offset, client seed, sequence


def make_page(rng, off, seed, seq):
    header = HEADER.pack(MAGIC, off, seed, seq)
    if rng.random() < 0.5:
        return header * (PAGE // HEADER.size)
    body = rng.randbytes(PAGE - 2 * HEADER.size)
    return header + hashlib.sha256(body).digest() + body


def page_problem(page, off):
    """None if PAGE (read at OFF) is zero or one whole written page."""
    if page.count(0) == PAGE:
        return None
    magic, where, _, _ = HEADER.unpack_from(page)
    if magic != MAGIC:
        return "garbage (no header)"
    if where != off:
        return "page written for offset %d" % where
    if page == page[:HEADER.size] * (PAGE // HEADER.size):
        return None
    if hashlib.sha256(page[64:]).digest() == page[32:64]:
        return None
    return "torn or corrupted body"


def die(sock, first, last, seed):
    rng = random.Random(seed)
    h = nbd.NBD()
    h.connect_unix(sock)
    depth = rng.randrange(128, 513)
    total = rng.randrange(depth, 4 * depth)
    for seq in range(total):
        while h.aio_in_flight() >= depth:
            h.poll(-1)
        page = rng.randrange(first, last)
        if rng.random() < 0.6:
            buf = nbd.Buffer.from_bytearray(
                bytearray(make_page(rng, page * PAGE, seed, seq)))
            h.aio_pwrite(buf, page * PAGE)
        else:
            h.aio_pread(nbd.Buffer(PAGE), page * PAGE)
    # Let the last requests reach the server and its replies start.
    h.poll(0)
    os.kill(os.getpid(), signal.SIGKILL)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def storm(sock, pid, clients, parallel, first, last, seed):
    start = time.monotonic()
    rng = random.Random(seed)
    running = []
    deaths = 0
    for n in range(clients):
        running.append(subprocess.Popen(
            [sys.executable, __file__, "die", sock, str(first), str(last),
             str(rng.getrandbits(48))]))
        while len(running) >= parallel or (n == clients - 1 and running):
            p = running.pop(0)
            rc = p.wait(timeout=120)
            deaths += rc == -signal.SIGKILL
            # A client that lost its connection: is the server dying (an
            # abort takes a moment to dump core)?
            for _ in range(50 if rc != -signal.SIGKILL else 0):
                if not alive(pid):
                    break
                time.sleep(0.1)
            if not alive(pid):
                sys.exit("the server (pid %d) died after %d client deaths"
                         % (pid, deaths))
            if rc != -signal.SIGKILL:
                sys.exit("a dying client ended with status %d, not SIGKILL "
                         "(could not connect or do I/O?)" % rc)
    print("%d clients killed with requests in flight in %.1f s; server alive"
          % (deaths, time.monotonic() - start))


def check(sock, first, last):
    h = nbd.NBD()
    h.connect_unix(sock)
    chunk = 256 * PAGE
    written = 0
    for off in range(first * PAGE, last * PAGE, chunk):
        n = min(chunk, last * PAGE - off)
        data = h.pread(n, off)
        for i in range(0, n, PAGE):
            page = data[i:i + PAGE]
            problem = page_problem(page, off + i)
            if problem:
                sys.exit("page at offset %d: %s" % (off + i, problem))
            written += page.count(0) != PAGE
    h.shutdown()
    print("%d pages checked, %d written by the dying clients, all whole"
          % (last - first, written))
    if written == 0:
        sys.exit("no dying client's write reached the device")


def main():
    a = sys.argv[1:]
    if a[:1] == ["storm"] and len(a) == 8:
        storm(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]),
              int(a[7], 0))
    elif a[:1] == ["die"] and len(a) == 5:
        die(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif a[:1] == ["check"] and len(a) == 4:
        check(a[1], int(a[2]), int(a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
