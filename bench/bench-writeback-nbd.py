#!/usr/bin/python3
"""Writeback to a backing store (issue 14): throughput and read latency.

For each store (a sparse file, and an nbdkit serving such a file on a unix
socket), a fresh zram device of --size is filled with incompressible data
(so that every page is a huge page and goes to the store), and
"nbdzramctl writeback type=huge" is timed: MB/s of pages written back.
The peer, measured in the same run on the same store, is nbdcopy writing
the same bytes straight into it.  Then fio reads random 4 KiB pages at
queue depth 1 through the device (every read goes to the store), next to
the same reads from the store directly, and from a device whose pages are
still in RAM.  Ratios are against the peer measured in the same run.

  bench/bench-writeback-nbd.py --build-dir build [--size 256M] [--reps 3]
                           [--runtime 5] [--stores file,nbd]

Needs nbdkit (the one in $NBDKIT or PATH for the device), an nbdkit with
the file plugin for the store (Debian's /usr/bin/nbdkit), nbdcopy and fio
with its nbd engine.  Only the Python standard library is used.
SPDX-License-Identifier: BSD-3-Clause
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s[-1:].upper() in mult:
        return int(s[:-1]) * mult[s[-1:].upper()]
    return int(s)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"bench-writeback-nbd: {' '.join(cmd)} exited {r.returncode}: "
                 f"{r.stderr.strip()}")
    return r.stdout


def wait_socket(path):
    for _ in range(300):
        if os.path.exists(path):
            return
        time.sleep(0.02)
    sys.exit(f"bench-writeback-nbd: {path} did not appear")


class Server:
    """A daemonised nbdkit with a pidfile, killed on exit."""

    def __init__(self, argv, sock, pidfile):
        self.pidfile = pidfile
        run(argv[:1] + ["-P", pidfile, "-U", sock] + argv[1:])
        wait_socket(sock)
        wait_socket(pidfile)

    def stop(self):
        try:
            pid = int(open(self.pidfile).read())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def store_nbdkit():
    for n in ("nbdkit", "/usr/bin/nbdkit", "/usr/sbin/nbdkit"):
        if shutil.which(n) and subprocess.run(
                [n, "file", "--version"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return n
    sys.exit("bench-writeback-nbd: no nbdkit with the file plugin")


def fio_lat(target, size, runtime):
    """Mean, median and p99 latency (us) of 4 KiB random reads at QD1."""
    cmd = ["fio", "--name=lat", "--rw=randread", "--bs=4k", "--iodepth=1",
           f"--runtime={runtime}", "--time_based", f"--size={size}",
           "--thread", "--output-format=json", "--randrepeat=0"]
    if target.startswith("nbd"):
        cmd += ["--ioengine=nbd", f"--uri={target}"]
    else:
        cmd += ["--ioengine=psync", f"--filename={target}"]
    out = run(cmd)
    # fio's nbd engine prints a line of its own before the JSON.
    j = json.loads(out[out.index("{"):])["jobs"][0]["read"]
    c = j["clat_ns"]
    p = c.get("percentile", {})
    return (c["mean"] / 1000, p.get("50.000000", 0) / 1000,
            p.get("99.000000", 0) / 1000)


def one_rep(args, kind, top, data, snbdkit):
    tmp = tempfile.mkdtemp(dir=top)      # fresh sockets and pidfiles
    store = os.path.join(tmp, "store")
    open(store, "w").close()
    os.truncate(store, args.bytes)
    servers = []
    try:
        if kind == "nbd":
            ssock = os.path.join(tmp, "ssock")
            servers.append(Server([snbdkit, "file", store], ssock,
                                  os.path.join(tmp, "spid")))
            spec = f"nbd+unix:///?socket={ssock}"
            direct = spec
        else:
            spec = direct = store
        # Peer 1: the same bytes written straight into the store.
        t = time.monotonic()
        run(["nbdcopy", data, direct] if kind == "nbd"
            else ["dd", f"if={data}", f"of={store}", "bs=1M", "conv=notrunc,fsync",
                  "status=none"])
        raw_mbs = args.bytes / (time.monotonic() - t) / 1e6
        raw_lat = fio_lat(direct, args.bytes, args.runtime)

        zsock, ctl = os.path.join(tmp, "zsock"), os.path.join(tmp, "ctl")
        servers.append(Server([args.nbdkit, args.plugin, str(args.bytes),
                               f"backing={spec}", f"ctl={ctl}",
                               "recomp_policy=off"],
                              zsock, os.path.join(tmp, "zpid")))
        zuri = f"nbd+unix:///?socket={zsock}"
        run(["nbdcopy", data, zuri])
        ram_lat = fio_lat(zuri, args.bytes, args.runtime)
        t = time.monotonic()
        out = run([args.ctl, "-s", ctl, "writeback", "type=huge"])
        secs = time.monotonic() - t
        written = int([l for l in out.split("\n")
                       if l.startswith("written=")][0].split("=")[1])
        if written != args.bytes // 4096:
            sys.exit(f"bench-writeback-nbd: wrote back {written} pages of "
                     f"{args.bytes // 4096}")
        wb_mbs = written * 4096 / secs / 1e6
        wb_lat = fio_lat(zuri, args.bytes, args.runtime)
        # Every byte still reads back.
        back = os.path.join(tmp, "back")
        run(["nbdcopy", zuri, back])
        if open(back, "rb").read() != open(data, "rb").read():
            sys.exit("bench-writeback-nbd: data read back differs")
        os.unlink(back)
        return {"wb_mbs": wb_mbs, "raw_mbs": raw_mbs, "wb_lat": wb_lat,
                "raw_lat": raw_lat, "ram_lat": ram_lat}
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--size", default="256M")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=5)
    ap.add_argument("--stores", default="file,nbd")
    args = ap.parse_args()
    args.bytes = parse_size(args.size)
    if args.bytes <= 0 or args.bytes % 4096 or args.reps < 1:
        sys.exit("bench-writeback-nbd: --size must be a positive multiple of 4K, "
                 "--reps at least 1")
    stores = args.stores.split(",")
    if any(s not in ("file", "nbd") for s in stores):
        sys.exit("bench-writeback-nbd: --stores takes file and nbd")
    args.plugin = os.path.abspath(os.path.join(args.build_dir, "zram.so"))
    args.ctl = os.path.abspath(os.path.join(args.build_dir, "tools", "nbdzramctl"))
    args.nbdkit = os.environ.get("NBDKIT") or shutil.which("nbdkit")
    for need in ("nbdcopy", "fio"):
        if not shutil.which(need):
            sys.exit(f"bench-writeback-nbd: {need} is not installed")
    snbdkit = store_nbdkit() if "nbd" in stores else None
    with tempfile.TemporaryDirectory(prefix="bench-writeback-nbd.") as tmp:
        data = os.path.join(tmp, "data")
        with open(data, "wb") as f:
            f.write(os.urandom(args.bytes))
        print(f"device and store {args.size}, incompressible pages, "
              f"{args.reps} reps (median [min-max])")
        for kind in stores:
            reps = [one_rep(args, kind, tmp, data, snbdkit)
                    for _ in range(args.reps)]

            def med(key, i=None):
                v = [r[key] if i is None else r[key][i] for r in reps]
                return statistics.median(v), min(v), max(v)

            wb, raw = med("wb_mbs"), med("raw_mbs")
            print(f"\nstore={kind}")
            print(f"  writeback      {wb[0]:8.1f} MB/s [{wb[1]:.1f}-{wb[2]:.1f}]"
                  f"   raw write to the store {raw[0]:8.1f} MB/s"
                  f"   ratio {wb[0] / raw[0]:.2f}")
            for name, key in (("read, written back", "wb_lat"),
                              ("read, store direct", "raw_lat"),
                              ("read, pages in RAM", "ram_lat")):
                mean, p50, p99 = (med(key, i)[0] for i in range(3))
                print(f"  {name:19s} mean {mean:7.1f} us  p50 {p50:7.1f} us"
                      f"  p99 {p99:7.1f} us")
            ratio = med("wb_lat", 0)[0] / med("raw_lat", 0)[0]
            print(f"  read latency of written-back pages / the store's own: "
                  f"{ratio:.2f}")


if __name__ == "__main__":
    main()
