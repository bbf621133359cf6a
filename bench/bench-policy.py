#!/usr/bin/env python3
# nbdkit-zram benchmarks: the automatic recompression policy against the
# manual commands, through the real plugin (issue 12, target b).
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
"""Time the recompression policy takes to reach the saving of a manual recompression.

Two servers, same image (bench-nbd-image, the memory-like image):

  manual   lz4 primary, zstd:LEVEL secondary, recomp_policy=off: after the
           write, "idle all", "recompress type=idle" and "compact" on the
           control socket give the saving to reach.
  policy   the same with the policy on (recomp_age, recomp_budget as given)
           and no command at all.

From the end of the policy server's write (the device goes idle), its pool
(mem_used_total) and compr_data_size are polled every second until both
are within 1 % of the manual ones, or --timeout seconds.
The CPU of the background thread (named zram-bg) is read from
/proc/PID/task/TID/stat, and compared with the budget.

Prints a report and, with --json, writes one JSON object.  --smoke: an
8 MiB image, zstd:3, recomp_age=1, recomp_budget=50, a 60-second
timeout; checks that it works.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def ctl(path, line):
    """One control command; returns its key=value lines as a dict."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(600)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            lines = data.decode(errors="replace").splitlines()
            if lines and (lines[-1] == "ok" or lines[-1].startswith("error ")) \
                    and data.endswith(b"\n"):
                break
    lines = data.decode(errors="replace").splitlines()
    if not lines or lines[-1] != "ok":
        raise RuntimeError("%s: %s" % (line, lines[-1] if lines else "no reply"))
    out = {}
    for ln in lines[:-1]:
        if "=" in ln:
            k, v = ln.split("=", 1)
            try:
                out[k] = int(v)
            except ValueError:
                out[k] = v
    return out


def thread_cpu(pid, name):
    """CPU seconds (user+system) of the thread of pid named name, or None."""
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return None


class Server:
    def __init__(self, tmp, name, plugin, size, params):
        self.sock = os.path.join(tmp, name + ".sock")
        self.ctl = os.path.join(tmp, name + ".ctl")
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        argv = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock, plugin,
                "size=%d" % size, "ctl=" + self.ctl] + params
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not (os.path.exists(self.sock) and os.path.exists(self.ctl)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError("nbdkit did not start: " + self.log.read()[-2000:])
            time.sleep(0.02)
        self.uri = "nbd+unix:///?socket=" + self.sock

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def write_image(tool, uri, size, seed, mode="write", part=None):
    argv = [tool, "-u", uri, "-s", str(size), "-S", str(seed), "-m", mode]
    if part:
        argv += ["-O", str(part[0]), "-L", str(part[1])]
    r = subprocess.run(argv, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=900, check=False)
    if r.returncode != 0:
        raise RuntimeError("bench-nbd-image: " + r.stderr.decode()[-1000:])
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def foreground(a, tmp, plugin, tool, size, common):
    """Requests with the policy busy against the policy off: the first half
    of the image is written and left to go idle (recomp_age=1), then the
    second half is written and read back while the policy works on the
    first.  Returns (results, report lines).
    """
    half = size // 2 // 4096 * 4096
    runs = {"off": [], "on": []}
    for rep_no in range(a.reps):
        for mode in (("off", "on") if rep_no % 2 == 0 else ("on", "off")):
            params = common + (["recomp_policy=off"] if mode == "off" else
                               ["recomp_policy=on", "recomp_age=1"] +
                               (["recomp_budget=" + a.budget] if a.budget else []))
            srv = Server(tmp, "fg-%s-%d" % (mode, rep_no), plugin, size, params)
            try:
                write_image(tool, srv.uri, size, a.seed, "write", (0, half))
                time.sleep(2)
                cpu0 = thread_cpu(srv.proc.pid, "zram-bg")
                t0 = time.monotonic()
                r = write_image(tool, srv.uri, size, a.seed, "both", (half, size - half))
                r["bg_cpu_pct"] = 100 * (thread_cpu(srv.proc.pid, "zram-bg") - cpu0) \
                    / (time.monotonic() - t0)
                r["policy_pages"] = ctl(srv.ctl, "stats")["recomp_policy_pages"]
                runs[mode].append(r)
            finally:
                srv.stop()
    med = lambda xs: sorted(xs)[len(xs) // 2]
    lines = []
    out = {}
    for m in ("write_mbps", "read_mbps"):
        off, on = med([r[m] for r in runs["off"]]), med([r[m] for r in runs["on"]])
        out[m] = {"off": off, "on": on, "ratio": on / off}
        lines.append("foreground %s: policy off %.1f, policy busy %.1f MB/s: %.3fx"
                     % (m.split("_")[0], off, on, on / off))
    lines.append("  (the background thread used %s %% of a core meanwhile; "
                 "%s pages recompressed by the end)"
                 % (", ".join("%.1f" % r["bg_cpu_pct"] for r in runs["on"]),
                    ", ".join(str(r["policy_pages"]) for r in runs["on"])))
    out["runs"] = runs
    return out, lines


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(here), "build"))
    ap.add_argument("--size", default="64M", help="image and device size (default 64M)")
    ap.add_argument("--seed", default=str(0x7a72616d))
    ap.add_argument("--level", type=int, default=None,
                    help="zstd level of the secondary (default 19; 3 with --smoke)")
    ap.add_argument("--age", type=int, default=None, help="recomp_age (default: the plugin's)")
    ap.add_argument("--budget", default=None, help="recomp_budget (default: the plugin's)")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--json")
    ap.add_argument("--foreground", action="store_true",
                    help="also measure requests with the policy busy against it off")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of --foreground")
    ap.add_argument("--foreground-only", action="store_true",
                    help="only the --foreground measurement")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.size, a.age, a.timeout = "8M", 1, 60
        if a.level is None:
            a.level = 3
        if a.budget is None:
            a.budget = "50"
    if a.level is None:
        a.level = 19
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(a.size[:-1]) * mult[a.size[-1].upper()] \
        if a.size[-1].upper() in mult else int(a.size)
    build = os.path.abspath(a.build_dir)
    plugin = os.path.join(build, "zram.so")
    tool = os.path.join(build, "bench", "bench-nbd-image")
    common = ["algorithm=lz4", "recomp_algorithm=zstd:%d" % a.level]
    policy = ["recomp_policy=on"]
    if a.age is not None:
        policy.append("recomp_age=%d" % a.age)
    if a.budget is not None:
        policy.append("recomp_budget=%s" % a.budget)

    fg = None
    with tempfile.TemporaryDirectory(prefix="bench-policy.") as tmp:
        if a.foreground or a.foreground_only:
            fg = foreground(a, tmp, plugin, tool, size, common)
        if a.foreground_only:
            for line in fg[1]:
                print(line)
            return
        # The saving to reach, by hand.
        m = Server(tmp, "manual", plugin, size, common + ["recomp_policy=off"])
        try:
            write_image(tool, m.uri, size, a.seed)
            before = ctl(m.ctl, "stats")
            t0 = time.monotonic()
            ctl(m.ctl, "idle all")
            ctl(m.ctl, "recompress type=idle")
            ctl(m.ctl, "compact")
            manual_s = time.monotonic() - t0
            manual = ctl(m.ctl, "stats")
        finally:
            m.stop()

        s = Server(tmp, "policy", plugin, size, common + policy)
        samples = []
        try:
            w = write_image(tool, s.uri, size, a.seed)
            t_idle = time.monotonic()
            cpu0 = thread_cpu(s.proc.pid, "zram-bg")
            st0 = ctl(s.ctl, "stats")
            reached = pool_reached = None
            target = manual["compr_data_size"] * 1.01
            pool_target = manual["mem_used_total"] * 1.01
            while time.monotonic() - t_idle < a.timeout:
                time.sleep(1)
                st = ctl(s.ctl, "stats")
                t = time.monotonic() - t_idle
                cpu = thread_cpu(s.proc.pid, "zram-bg") - cpu0
                samples.append({"t": round(t, 2), "compr": st["compr_data_size"],
                                "mem_used": st["mem_used_total"],
                                "pages": st["recomp_policy_pages"],
                                "policy_cpu_ms": st["recomp_policy_cpu_ms"],
                                "thread_cpu_s": cpu})
                if reached is None and st["compr_data_size"] <= target:
                    reached = t
                # The pool follows once the policy compacts (at the end
                # of its cycle of sweeps).
                if pool_reached is None and st["mem_used_total"] <= pool_target:
                    pool_reached = t
                if reached is not None and pool_reached is not None:
                    break
            end = ctl(s.ctl, "stats")
            t_end = time.monotonic() - t_idle
            cpu_end = thread_cpu(s.proc.pid, "zram-bg") - cpu0
        finally:
            s.stop()

    budget_pct = float(a.budget.rstrip("%")) if a.budget else 5.0
    res = {
        "size": size, "level": a.level, "age": a.age, "budget_pct": budget_pct,
        "manual": {"mem_used_before": before["mem_used_total"],
                   "compr_before": before["compr_data_size"],
                   "mem_used": manual["mem_used_total"],
                   "compr": manual["compr_data_size"], "seconds": manual_s},
        "policy": {"write_mbps": w.get("write_mbps"),
                   "mem_used_idle": st0["mem_used_total"],
                   "compr_idle": st0["compr_data_size"],
                   "mem_used": end["mem_used_total"], "compr": end["compr_data_size"],
                   "reached_s": reached, "pool_reached_s": pool_reached,
                   "elapsed_s": t_end,
                   "thread_cpu_s": cpu_end,
                   "policy_cpu_ms": end["recomp_policy_cpu_ms"],
                   "rounds": end["recomp_policy_rounds"],
                   "pages": end["recomp_policy_pages"]},
        "samples": samples,
        "foreground": fg[0] if fg else None,
    }
    p = res["policy"]
    print("image %d MiB, lz4 + zstd:%d; policy recomp_age=%s recomp_budget=%s"
          % (size >> 20, a.level, a.age if a.age is not None else "default",
             a.budget if a.budget else "default"))
    print("manual (idle all + recompress + compact, %.1f s): pool %d -> %d bytes "
          "(%.4f -> %.4f per byte), compr %d -> %d"
          % (manual_s, before["mem_used_total"], manual["mem_used_total"],
             before["mem_used_total"] / size, manual["mem_used_total"] / size,
             before["compr_data_size"], manual["compr_data_size"]))
    print("policy: pool %d -> %d bytes (%.4f per byte), compr %d -> %d; "
          "%d rounds, %d pages"
          % (p["mem_used_idle"], p["mem_used"], p["mem_used"] / size,
             p["compr_idle"], p["compr"], p["rounds"], p["pages"]))
    if reached is None:
        print("policy: did NOT reach the manual saving within %.0f s (%.1f %% of it)"
              % (a.timeout, 100.0 * (p["compr_idle"] - p["compr"]) /
                 max(1, before["compr_data_size"] - manual["compr_data_size"])))
    else:
        print("policy: reached the manual compr_data_size %.1f s after the device "
              "went idle; the manual pool %s"
              % (reached, "after %.1f s" % pool_reached if pool_reached is not None
                 else "not within %.0f s" % a.timeout))
    print("background thread CPU (from /proc): %.2f s over %.1f s = %.2f %% of a core "
          "(budget %.1f %%; the policy counted %.2f s)"
          % (cpu_end, t_end, 100 * cpu_end / t_end, budget_pct,
             p["policy_cpu_ms"] / 1000))
    for line in (fg[1] if fg else []):
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.smoke and reached is None:
        sys.exit("bench-policy: the policy did not reach the manual saving")


if __name__ == "__main__":
    main()
