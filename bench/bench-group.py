#!/usr/bin/env python3
# nbdkit-zram benchmarks: multi-page groups (issue 13), through the plugin.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
"""Server RSS per byte written, before and after the group policy runs.

For each configuration a server is started on the memory-like image
(bench-nbd-image), the image is written (q16, 4 KiB requests), and the
server's RSS growth over the image size is taken (as run-bench.py's
"RSS growth"; with a trained dictionary the image is written twice, see
CONFIGS).  Then the device is left idle while its background
policies run (group_age=1 and a full core of budget, so the wait is
short) until group_pages and mem_used_total stay put for 3 seconds; the
RSS per byte is taken again.  The image is read back and checked, and its
read speed (q16) before and after grouping says what reading cold,
grouped pages costs.  Peers measured in the same run: the same server
without groups (lz4, zstd) and with recompression alone.
"""
import argparse
import importlib.machinery
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
bp = importlib.machinery.SourceFileLoader(
    "bench_policy", os.path.join(HERE, "bench-policy.py")).load_module()


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


CONFIGS = [
    ("lz4", ["algorithm=lz4"]),
    ("zstd", ["algorithm=zstd"]),
    ("lz4+recomp-zstd19", ["algorithm=lz4", "recomp_algorithm=zstd:19",
                           "recomp_age=1", "recomp_budget=100"]),
    ("lz4+group-zstd9", ["algorithm=lz4", "group_pages=16"]),
    ("zstd+group-zstd9", ["algorithm=zstd", "group_pages=16"]),
    ("lz4+group-zstd19", ["algorithm=lz4", "group_pages=16",
                          "group_algorithm=zstd:19"]),
    # Dictionaries: trained from the device's pages a second after they
    # are written, before the pages are grouped (group_age 5 here).  Only
    # pages written after one is published use it, so with a dictionary
    # the image is written twice (the second time 5 s after the first)
    # and RSS growth is taken over both writes.
    ("lz4+dict", ["algorithm=lz4", "dict_train=on", "dict_train_period=1"]),
    ("lz4+dict+group-zstd9", ["algorithm=lz4", "dict_train=on",
                              "dict_train_period=1", "group_pages=16",
                              "group_age=5"]),
    ("lz4+dict+group-zstd19", ["algorithm=lz4", "dict_train=on",
                               "dict_train_period=1", "group_pages=16",
                               "group_age=5", "group_algorithm=zstd:19"]),
]


def settle(srv, timeout, hold):
    """Poll until group_pages and mem_used_total hold for hold seconds."""
    last, since, t0 = None, time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = bp.ctl(srv.ctl, "stats")
        cur = (st.get("group_pages"), st.get("mem_used_total"),
               st.get("pages_recomp1"), st.get("dict_version"))
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= hold:
            return st, time.monotonic() - t0
        time.sleep(0.5)
    return bp.ctl(srv.ctl, "stats"), timeout


def run(tmp, plugin, tool, size, seed, name, params, timeout):
    rewrite = any(p.startswith("dict_train") for p in params)
    if any(p.startswith("group_pages") for p in params):
        params = params + ["group_budget=100"]
        if not any(p.startswith("group_age") for p in params):
            params.append("group_age=1")
    srv = bp.Server(tmp, name, plugin, size, params)
    try:
        rss0 = rss_bytes(srv.proc.pid)
        w = bp.write_image(tool, srv.uri, size, seed, "write")
        if rewrite:
            time.sleep(5)
            w = bp.write_image(tool, srv.uri, size, seed, "write")
        rss1 = rss_bytes(srv.proc.pid)
        r1 = bp.write_image(tool, srv.uri, size, seed, "read")
        # Nothing may change before the pages are old enough to group.
        age = max([int(p.split("=")[1]) for p in params
                   if p.startswith(("group_age=", "recomp_age="))] + [0])
        st, waited = settle(srv, timeout, 3 + age)
        rss2 = rss_bytes(srv.proc.pid)
        r2 = bp.write_image(tool, srv.uri, size, seed, "read")
        return {
            "rss_per_byte_written": (rss1 - rss0) / size,
            "rss_per_byte_after_policy": (rss2 - rss0) / size,
            "mem_used_per_byte": st["mem_used_total"] / size,
            "compr_per_byte": st["compr_data_size"] / size,
            "group_pages": st.get("group_pages", 0),
            "group_objects": st.get("group_objects", 0),
            "dict_version": st.get("dict_version", 0),
            "dict_pages": st.get("dict_pages", 0),
            "settle_s": waited,
            "write_mbps": w["write_mbps"],
            "read_mbps_before": r1["read_mbps"],
            "read_mbps_after": r2["read_mbps"],
        }
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--size", default="128M",
                    help="image and device size, e.g. 64M (default 128M)")
    ap.add_argument("--seed", default=str(0x7a72616d))
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--only", help="comma-separated configuration names")
    ap.add_argument("--json")
    ap.add_argument("--smoke", action="store_true",
                    help="8 MiB, lz4 and lz4+group-zstd9 only; checks it works")
    a = ap.parse_args()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        size = int(a.size[:-1]) * mult[a.size[-1].upper()] \
            if a.size[-1:].upper() in mult else int(a.size)
    except ValueError:
        ap.error("--size %s: give a size such as 128M" % a.size)
    if a.smoke:
        size = 8 << 20
    if size <= 0 or size % 4096:
        ap.error("--size %s: give a positive multiple of 4 KiB" % a.size)
    build = os.path.abspath(a.build_dir)
    plugin = os.path.join(build, "zram.so")
    tool = os.path.join(build, "bench", "bench-nbd-image")
    names = ["lz4", "lz4+group-zstd9"] if a.smoke else \
        (a.only.split(",") if a.only else [n for n, _ in CONFIGS])
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in CONFIGS:
            if name in names:
                res[name] = run(tmp, plugin, tool, size, a.seed, name, params,
                                a.timeout)
    print("%-20s %9s %9s %9s %9s %7s %9s %9s %9s" %
          ("config", "RSS/B", "RSS/B", "pool/B", "compr/B", "grouped",
           "settle", "read MB/s", "read MB/s"))
    print("%-20s %9s %9s %9s %9s %7s %9s %9s %9s" %
          ("", "written", "policy", "policy", "policy", "pages", "s",
           "hot", "cold"))
    for name, r in res.items():
        print("%-20s %9.3f %9.3f %9.3f %9.3f %7d %9.1f %9.1f %9.1f" %
              (name, r["rss_per_byte_written"], r["rss_per_byte_after_policy"],
               r["mem_used_per_byte"], r["compr_per_byte"], r["group_pages"],
               r["settle_s"], r["read_mbps_before"], r["read_mbps_after"]))
    if "lz4" in res and "lz4+group-zstd9" in res:
        print("groups (zstd:9) over lz4 alone, RSS per byte after the policy: %.3fx"
              % (res["lz4+group-zstd9"]["rss_per_byte_after_policy"] /
                 res["lz4"]["rss_per_byte_after_policy"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.smoke:
        g = res["lz4+group-zstd9"]
        if g["group_pages"] == 0:
            print("FAIL: the group policy grouped nothing", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
