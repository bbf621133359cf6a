#!/usr/bin/env python3
# nbdkit-zram benchmarks: the driver.
# Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
"""Benchmark zram.so against its peers, nbdkit memory and nbdkit null.

For every test, every target gets a fresh nbdkit on a unix socket; targets
take turns test by test, and the whole round is repeated --reps times (the
first target rotates each round so no target always goes first).  Tests:

  image          write the memory-like image page by page (4 KiB writes with
                 data, 16 in flight, as swap pages out), measure the server's
                 RSS growth, read it back (4 KiB, 16 in flight) and check it.
  fio tests      on a device prefilled with the image: 4 KiB random read and
                 write at queue depth 1 and 16 with 1 and 2 jobs, and 256 KiB
                 sequential read and write, with fio's nbd engine and
                 half-compressible buffers refilled every I/O.

Kernel zram (targets kzram-lz4 and kzram-lzo-rle; issue 15) runs the same
tests on a /dev/zramN of the same size that the driver makes for each test
(hot_add) and removes after it, also on failure or a signal; it never
touches a zram device it did not make.  Its image I/O is bench-blk-image
(native AIO, O_DIRECT, same request size and depth), its fio tests the
libaio engine with direct I/O on the device; its memory is mm_stat's
mem_used_total.  The targets are skipped, with the reason, where the kernel
has no zram or the driver is not root.

Besides the NBD tests it runs bench-codec (raw LZ4/zstd per page and the
ideal compressed store of the image) and bench-core (the core's write and
read path per page, without NBD).

Output, in --out (default bench/results; the build dir with --smoke):
  latest.json  every sample and summary, the machine and the image mix
  latest.csv   one row per (test, target, metric): median, min, max, n
  latest.txt   the report printed at the end (ratio table, goals)
  latest.png   a chart, if gnuplot is installed (else says it skipped it)

Only the Python standard library is used.  Exit status: 0, or 1 if a zram
target failed a test (a crash, an error, a read-back mismatch); failures of
the peers are reported but do not fail the run.
"""

import argparse
import csv
import ctypes
import json
import os
import platform
import resource
import signal
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PEERS = ["memory-sparse", "memory-zstd", "null"]
ZRAM = ["zram-lz4", "zram-zstd"]
# Kernel zram with that compressor (target name -> comp_algorithm).
KZRAM = {"kzram-lz4": "lz4", "kzram-lzo-rle": "lzo-rle"}
ALL_TARGETS = ZRAM + PEERS + list(KZRAM)
# Not run unless named in --targets: zram-lz4 as a swap device is run
# (mlock=true, which brings the default reserve; needs root or a large
# enough 'ulimit -l').
# zram-lz4fast-recomp is issue 12's fast primary: lz4 at acceleration
# LZ4FAST_LEVEL, with zstd at level RECOMP_LEVEL behind it (the automatic
# policy; it does not run during these tests, whose pages are young).
EXTRA_TARGETS = ["zram-lz4-swap", "zram-lz4fast-recomp"]
LZ4FAST_LEVEL = 1000
RECOMP_LEVEL = 19

# name -> (fio rw, block size, iodepth, numjobs)
FIO_TESTS = {
    "randread-4k-q1-j1": ("randread", "4k", 1, 1),
    "randread-4k-q16-j1": ("randread", "4k", 16, 1),
    "randread-4k-q1-j2": ("randread", "4k", 1, 2),
    "randread-4k-q16-j2": ("randread", "4k", 16, 2),
    "randwrite-4k-q1-j1": ("randwrite", "4k", 1, 1),
    "randwrite-4k-q16-j1": ("randwrite", "4k", 16, 1),
    "randwrite-4k-q1-j2": ("randwrite", "4k", 1, 2),
    "randwrite-4k-q16-j2": ("randwrite", "4k", 16, 2),
    "seqread-256k-q4": ("read", "256k", 4, 1),
    "seqwrite-256k-q4": ("write", "256k", 4, 1),
}
SMOKE_FIO = ["randread-4k-q16-j2", "randwrite-4k-q16-j2", "seqwrite-256k-q4"]

# Metric that stands for a test in tables and the chart.
def primary_metric(test):
    if test == "image-write":
        return "mbps"
    if test == "image-read":
        return "mbps"
    if test.startswith("seq"):
        return "mbps"
    return "iops"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """One nbdkit in the foreground (-f) on a fresh unix socket."""

    counter = 0

    def __init__(self, ctx, target):
        Server.counter += 1
        self.target = target
        self.sock = os.path.join(ctx.tmp, "s%d.sock" % Server.counter)
        self.ctl = None
        size = str(ctx.size)
        if target == "zram-lz4fast-recomp":
            args = [ctx.plugin, "size=" + size, "algorithm=lz4",
                    "level=%d" % ctx.lz4fast_level,
                    "recomp_algorithm=zstd:%d" % RECOMP_LEVEL]
            if ctx.use_ctl:
                self.ctl = os.path.join(ctx.tmp, "c%d.ctl" % Server.counter)
                args.append("ctl=" + self.ctl)
        elif target.startswith("zram-"):
            algo = target.split("-")[1]
            args = [ctx.plugin, "size=" + size, "algorithm=" + algo]
            if target.endswith("-swap"):
                args.append("mlock=true")
            if ctx.use_ctl:
                self.ctl = os.path.join(ctx.tmp, "c%d.ctl" % Server.counter)
                args.append("ctl=" + self.ctl)
        elif target == "memory-sparse":
            args = ["memory", "size=" + size, "allocator=sparse"]
        elif target == "memory-zstd":
            args = ["memory", "size=" + size, "allocator=zstd"]
        elif target == "null":
            args = ["null", "size=" + size]
        else:
            raise ValueError(target)
        self.argv = ["nbdkit", "-f", "--exit-with-parent", "-U", self.sock] + args
        self.errlog = open(os.path.join(ctx.tmp, "s%d.log" % Server.counter), "w+")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.errlog, stderr=self.errlog)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("nbdkit exited at start (%s): %s"
                                   % (self.proc.returncode, self.log_text()))
            if os.path.exists(self.sock):
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(self.sock)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nbdkit did not start: " + self.log_text())
            time.sleep(0.02)
        self.uri = "nbd+unix:///?socket=" + self.sock
        self.pid = self.proc.pid

    def log_text(self):
        self.errlog.seek(0)
        return self.errlog.read()[-2000:].strip()

    def ctl_stats(self):
        """The device's own statistics over the control socket, or None."""
        if not self.ctl:
            return None
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.ctl)
            s.sendall(b"stats\n")
            data = b""
            while not (data.endswith(b"ok\n") or b"\nerror " in data
                       or data.startswith(b"error ")):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        out = {}
        for line in data.decode().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                try:
                    out[k] = int(v)
                except ValueError:
                    out[k] = v
        return out

    def stop(self):
        """SIGTERM and wait; returns an error string if nbdkit crashed."""
        err = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                err = "nbdkit did not exit within 30 s of SIGTERM"
        rc = self.proc.returncode
        if err is None and rc not in (0, -15):
            err = "nbdkit exited with status %s: %s" % (rc, self.log_text())
        self.errlog.close()
        for p in (self.sock, self.ctl):
            if p and os.path.exists(p):
                os.unlink(p)
        return err


ZRAM_CONTROL = "/sys/class/zram-control"
# The signals that end the run (on_signal); held where a signal would leave
# the driver not knowing of a device or a client it made.
END_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def write_sysfs(path, value):
    with open(path, "w") as f:
        f.write(value)


class KernelZram:
    """One kernel zram device made for one test.

    hot_add makes it (the kernel returns its number), the constructor sets
    its compressor and size; remove() resets it and hot_removes it, and
    only it.  Every device made and not yet removed is in KernelZram.live,
    which main() empties on any exit, a signal included."""

    live = {}

    def __init__(self, size, algorithm):
        # A signal between hot_add and the bookkeeping would leak the
        # device: hold the signals that end the run until it is recorded,
        # with everything remove() needs (a held signal is delivered the
        # moment the mask is restored).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, END_SIGNALS)
        try:
            with open(os.path.join(ZRAM_CONTROL, "hot_add")) as f:
                text = f.read().strip()
            try:
                self.num = int(text)
            except ValueError:
                raise RuntimeError("%s/hot_add gave %r, not a device number"
                                   % (ZRAM_CONTROL, text)) from None
            self.sys = "/sys/block/zram%d" % self.num
            self.dev = "/dev/zram%d" % self.num
            KernelZram.live[self.num] = self
            log("kzram: made /dev/zram%d" % self.num)
        except OSError as e:
            raise RuntimeError("cannot make a zram device (%s/hot_add): %s" % (ZRAM_CONTROL, e))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        try:
            try:
                write_sysfs(self.sys + "/comp_algorithm", algorithm)
            except OSError as e:
                with open(self.sys + "/comp_algorithm") as f:
                    have = f.read().strip()
                raise RuntimeError("kernel zram has no %s (%s; it has: %s)" % (algorithm, e, have))
            try:
                write_sysfs(self.sys + "/disksize", str(size))
            except OSError as e:
                raise RuntimeError("%s: disksize %d: %s" % (self.dev, size, e))
            deadline = time.monotonic() + 10
            while not os.path.exists(self.dev):
                if time.monotonic() > deadline:
                    raise RuntimeError("%s did not appear" % self.dev)
                time.sleep(0.02)
        except BaseException:
            self.remove()
            raise

    def mm_stat(self):
        """The device's mm_stat as a dict (bytes; pages for the page counts)."""
        with open(self.sys + "/mm_stat") as f:
            vals = [int(v) for v in f.read().split()]
        names = ["orig_data_size", "compr_data_size", "mem_used_total", "mem_limit",
                 "mem_used_max", "same_pages", "pages_compacted", "huge_pages"]
        return dict(zip(names, vals))

    def remove(self):
        """Reset and hot_remove this device; an error string, or None.
        A device still open (a client killed a moment ago) is busy: retry
        for a while.  The signals that end the run are held meanwhile: one
        arriving between the hot_remove and the bookkeeping would have
        remove_all() reset a device of the same number that someone else
        made since; a signal waits at most the retries' 15 s."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, END_SIGNALS)
        try:
            return self._remove()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _remove(self):
        if self.num not in KernelZram.live:
            return None
        err = None
        deadline = time.monotonic() + 15
        while True:
            try:
                write_sysfs(self.sys + "/reset", "1")
                write_sysfs(os.path.join(ZRAM_CONTROL, "hot_remove"), str(self.num))
                break
            except FileNotFoundError:
                break                   # already gone
            except OSError as e:
                if time.monotonic() > deadline:
                    err = "cannot remove /dev/zram%d: %s" % (self.num, e)
                    log("kzram: " + err + " (remove it by hand: echo 1 > %s/reset;"
                        " echo %d > %s/hot_remove)" % (self.sys, self.num, ZRAM_CONTROL))
                    break
                time.sleep(0.1)
        del KernelZram.live[self.num]
        if err is None:
            log("kzram: removed /dev/zram%d" % self.num)
        return err

    @classmethod
    def remove_all(cls):
        """Remove every device made and not yet removed; an error with one
        does not keep the others."""
        for dev in list(cls.live.values()):
            try:
                dev.remove()
            except Exception as e:
                log("kzram: cannot remove /dev/zram%d: %s" % (dev.num, e))


def kzram_unavailable(algorithm):
    """Why kernel zram with this compressor cannot be a target here, or
    None.  Probes by making (and removing) a small device."""
    if not os.path.exists(os.path.join(ZRAM_CONTROL, "hot_add")):
        return "this kernel has no zram (no %s/hot_add)" % ZRAM_CONTROL
    if os.geteuid() != 0:
        return "making a zram device needs root"
    try:
        KernelZram(1 << 20, algorithm).remove()
    except (OSError, RuntimeError, ValueError) as e:
        return str(e)
    return None


PR_SET_PDEATHSIG = 1


def client_setup(mask, driver):
    """In a client between fork and exec: the driver's usual signal mask,
    and SIGKILL when the driver dies, even by SIGKILL (no clean-up runs
    then: the client would hold its device open for the rest of its
    --runtime, and the device could not even be removed by hand)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass                            # not Linux: only the SIGKILL case is worse
    if os.getppid() != driver:          # the driver died before the prctl
        os._exit(1)


def run_cmd(argv, timeout):
    """Run a client to its end and return its stdout; RuntimeError if it
    fails, subprocess.TimeoutExpired after timeout seconds.

    The client runs in a process group of its own, and whatever ends it --
    its exit, a failure, the timeout, a signal to the driver -- the whole
    group is killed before the client is reaped, so that nothing it started
    holds a kernel zram device open (busy: it could not be removed).  The
    client's pid is not reaped until then, so the group is still its own
    and no other process can be hit.  fio's job processes would escape
    this (each calls setsid) and run out their --runtime after a killed
    fio: fio runs its jobs as threads (--thread), which die with it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # A signal that ends the run while Popen starts the client would
        # leave it running unknown: hold the signals until proc is known
        # (the client itself starts with the driver's usual mask).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, END_SIGNALS)
        proc = None
        driver = os.getpid()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True,
                                    preexec_fn=lambda: client_setup(old, driver))
            signal.pthread_sigmask(signal.SIG_SETMASK, old)     # a held signal lands here
            deadline = time.monotonic() + timeout
            while os.waitid(os.P_PID, proc.pid,
                            os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(argv, timeout)
                time.sleep(0.01)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (os.path.basename(argv[0]),
                                                   proc.returncode, stderr.strip()[-1500:]))
    return stdout


def json_tail(text):
    """fio prints "connected" lines before its JSON."""
    return json.loads(text[text.index("{"):])


def image_test(ctx, target):
    """Write the image (timed), RSS growth, stats, read back (timed, checked)."""
    res = {}
    srv = Server(ctx, target)
    try:
        # Two halves on two connections, so that the RSS growth of the
        # second half -- the marginal cost per byte, without the fixed cost
        # of worker threads and their buffers -- can be told apart.
        half = ctx.size // 2 // 4096 * 4096
        rss0 = rss_kib(srv.pid)
        cpu0 = cpu_seconds(srv.pid)
        secs = 0.0
        rss_mid = None
        ccpu = 0.0
        for off, length in ((0, half), (half, ctx.size - half)):
            out = run_cmd([ctx.tool("bench-nbd-image"), "-u", srv.uri, "-i", ctx.image,
                           "-m", "write", "-b", "4k", "-q", "16",
                           "-O", str(off), "-L", str(length)], ctx.timeout)
            secs += json.loads(out)["write_s"]
            ccpu += json.loads(out)["write_cpu_s"]
            if rss_mid is None:
                rss_mid = rss_kib(srv.pid)
        rss1 = rss_kib(srv.pid)
        cpu1 = cpu_seconds(srv.pid)
        res["image-write"] = {
            "mbps": ctx.size / secs / 1e6,
            "server_cpu_us_per_op": (cpu1 - cpu0) * 1e6 / (ctx.size / 4096),
            # The client's CPU (user+system, the timed part), for comparison
            # with kernel zram, where the client does the device's work.
            "client_cpu_us_per_op": ccpu * 1e6 / (ctx.size / 4096),
            "rss_growth_bytes": (rss1 - rss0) * 1024,
            "rss_per_byte": (rss1 - rss0) * 1024 / ctx.size,
            "rss_marginal_per_byte": (rss1 - rss_mid) * 1024 / (ctx.size - half),
        }
        st = srv.ctl_stats()
        if st:
            res["image-write"]["device_stats"] = st
            if st.get("mem_used_total"):
                res["image-write"]["mem_used_per_byte"] = st["mem_used_total"] / ctx.size
            if st.get("compr_data_size"):
                res["image-write"]["compr_per_byte"] = st["compr_data_size"] / ctx.size
        argv = [ctx.tool("bench-nbd-image"), "-u", srv.uri, "-i", ctx.image,
                "-m", "read", "-b", "4k", "-q", "16"]
        if target == "null":
            argv.append("-n")       # null reads zeroes: nothing to check
        cpu1 = cpu_seconds(srv.pid)
        r = json.loads(run_cmd(argv, ctx.timeout))
        cpu2 = cpu_seconds(srv.pid)
        res["image-read"] = {"mbps": r["read_mbps"], "verified": r.get("verified", False),
                             "server_cpu_us_per_op": (cpu2 - cpu1) * 1e6 / (ctx.size / 4096),
                             "client_cpu_us_per_op": r["read_cpu_s"] * 1e6 / (ctx.size / 4096)}
        res["image-write"]["load1"] = res["image-read"]["load1"] = os.getloadavg()[0]
    finally:
        err = srv.stop()
    if err:
        raise RuntimeError(err)
    return res


def fio_test(ctx, target, test):
    rw, bs, depth, jobs = FIO_TESTS[test]
    srv = Server(ctx, target)
    try:
        if target != "null":
            run_cmd([ctx.tool("bench-nbd-image"), "-u", srv.uri, "-i", ctx.image,
                     "-m", "write", "-b", "256k", "-q", "8"], ctx.timeout)
        argv = ["fio", "--name=" + test, "--ioengine=nbd", "--uri=" + srv.uri,
                "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % depth,
                "--numjobs=%d" % jobs, "--time_based", "--runtime=%g" % ctx.runtime,
                "--group_reporting",
                "--output-format=json", "--norandommap", "--randrepeat=0",
                "--buffer_compress_percentage=50", "--buffer_compress_chunk=4k",
                "--refill_buffers", "--thread"]
        cpu0 = cpu_seconds(srv.pid)
        ccpu0 = sum(children_cpu())
        d = json_tail(run_cmd(argv, ctx.timeout))
        cpu1 = cpu_seconds(srv.pid)
        ccpu1 = sum(children_cpu())
        job = d["jobs"][0]
        if job.get("error"):
            raise RuntimeError("fio job error %s" % job["error"])
        side = job["read"] if rw in ("read", "randread") else job["write"]
        # Server CPU per request: robust to other load on the machine,
        # unlike the throughput.  fio runs without ramp so that every
        # request it counts is one the server did.
        res = {"iops": side["iops"], "mbps": side["bw_bytes"] / 1e6,
               "lat_us": side["lat_ns"]["mean"] / 1000,
               "server_cpu_us_per_op": (cpu1 - cpu0) * 1e6 / max(1, side["total_ios"]),
               "client_cpu_us_per_op": (ccpu1 - ccpu0) * 1e6 / max(1, side["total_ios"]),
               "load1": os.getloadavg()[0]}
    finally:
        err = srv.stop()
    if err:
        raise RuntimeError(err)
    return res


def children_cpu():
    """(user, system) seconds of the children this process has waited for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime, ru.ru_stime


def kzram_image_test(ctx, target):
    """image_test on kernel zram: the same two halves, timed, with the
    device's own memory (mm_stat) after each; the CPU is the writer's own
    (kernel zram compresses in the context that submits the I/O)."""
    res = {}
    dev = KernelZram(ctx.size, KZRAM[target])
    try:
        half = ctx.size // 2 // 4096 * 4096
        secs = cpu = 0.0
        mem_mid = None
        for off, length in ((0, half), (half, ctx.size - half)):
            w = json.loads(run_cmd([ctx.tool("bench-blk-image"), "-d", dev.dev, "-i", ctx.image,
                                    "-m", "write", "-b", "4k", "-q", "16",
                                    "-O", str(off), "-L", str(length)], ctx.timeout))
            secs += w["write_s"]
            cpu += w["write_cpu_s"]
            if mem_mid is None:
                mem_mid = dev.mm_stat()["mem_used_total"]
        st = dev.mm_stat()
        res["image-write"] = {
            "mbps": ctx.size / secs / 1e6,
            "kernel_cpu_us_per_op": cpu * 1e6 / (ctx.size / 4096),
            "mem_used_per_byte": st["mem_used_total"] / ctx.size,
            "compr_per_byte": st["compr_data_size"] / ctx.size,
            "mem_marginal_per_byte": (st["mem_used_total"] - mem_mid) / (ctx.size - half),
            "device_stats": st,
        }
        r = json.loads(run_cmd([ctx.tool("bench-blk-image"), "-d", dev.dev, "-i", ctx.image,
                                "-m", "read", "-b", "4k", "-q", "16"], ctx.timeout))
        res["image-read"] = {"mbps": r["read_mbps"], "verified": r.get("verified", False),
                             "kernel_cpu_us_per_op": r["read_cpu_s"] * 1e6 / (ctx.size / 4096)}
        res["image-write"]["load1"] = res["image-read"]["load1"] = os.getloadavg()[0]
    finally:
        err = dev.remove()
    if err:
        raise RuntimeError(err)
    return res


def kzram_fio_test(ctx, target, test):
    """fio_test on kernel zram: libaio, direct I/O on the device, the same
    jobs and buffers.  The device's CPU is fio's system time (zram
    compresses and decompresses in the submitting context)."""
    rw, bs, depth, jobs = FIO_TESTS[test]
    dev = KernelZram(ctx.size, KZRAM[target])
    try:
        run_cmd([ctx.tool("bench-blk-image"), "-d", dev.dev, "-i", ctx.image,
                 "-m", "write", "-b", "256k", "-q", "8"], ctx.timeout)
        argv = ["fio", "--name=" + test, "--ioengine=libaio", "--direct=1",
                "--filename=" + dev.dev,
                "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % depth,
                "--numjobs=%d" % jobs, "--time_based", "--runtime=%g" % ctx.runtime,
                "--group_reporting",
                "--output-format=json", "--norandommap", "--randrepeat=0",
                "--buffer_compress_percentage=50", "--buffer_compress_chunk=4k",
                "--refill_buffers", "--thread"]
        u0, s0 = children_cpu()
        d = json_tail(run_cmd(argv, ctx.timeout))
        u1, s1 = children_cpu()
        job = d["jobs"][0]
        if job.get("error"):
            raise RuntimeError("fio job error %s" % job["error"])
        side = job["read"] if rw in ("read", "randread") else job["write"]
        n = max(1, side["total_ios"])
        res = {"iops": side["iops"], "mbps": side["bw_bytes"] / 1e6,
               "lat_us": side["lat_ns"]["mean"] / 1000,
               "kernel_cpu_us_per_op": (s1 - s0) * 1e6 / n,
               "client_user_us_per_op": (u1 - u0) * 1e6 / n,
               "load1": os.getloadavg()[0]}
    finally:
        err = dev.remove()
    if err:
        raise RuntimeError(err)
    return res


class Ctx:
    pass


def check_plugin_ctl(ctx):
    """Does zram.so take ctl=?  (The control socket came with issue 4.)"""
    ctx.use_ctl = True
    try:
        Server(ctx, "zram-lz4").stop()
        return True
    except RuntimeError as e:
        log("note: zram.so ctl= not usable, device stats skipped (%s)" % str(e)[:200])
        ctx.use_ctl = False
        return False


def machine_info():
    info = {"host": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    for name, argv in (("nbdkit", ["nbdkit", "--version"]), ("fio", ["fio", "--version"])):
        try:
            info[name] = subprocess.run(argv, stdout=subprocess.PIPE, text=True).stdout.strip()
        except OSError:
            pass
    return info


def summarise(samples):
    """samples[test][target][metric] = [values] -> same shape of
    {"median", "min", "max", "n"}."""
    out = {}
    for test, bytarget in samples.items():
        for target, bymetric in bytarget.items():
            for metric, vals in bymetric.items():
                nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
                if not nums:
                    continue
                out.setdefault(test, {}).setdefault(target, {})[metric] = {
                    "median": statistics.median(nums), "min": min(nums),
                    "max": max(nums), "n": len(nums)}
    return out


def fmt(v, metric):
    if v is None:
        return "-"
    if metric == "iops":
        return "%.0f" % v
    if metric in ("rss_per_byte", "mem_used_per_byte", "compr_per_byte"):
        return "%.3f" % v
    return "%.1f" % v


def report(ctx, summary, errors, codec, core, mix):
    L = []
    p = L.append
    tests = ctx.test_order
    targets = ctx.targets

    def med(test, target, metric):
        try:
            return summary[test][target][metric]["median"]
        except KeyError:
            return None

    p("nbdkit-zram benchmark: image %d MiB, %d rep(s), fio runtime %g s"
      % (ctx.size >> 20, ctx.reps, ctx.runtime))
    mi = ctx.machine
    p("machine: %s, %s CPUs, %.1f GiB RAM, kernel %s; %s; %s"
      % (mi.get("cpu", "?"), mi.get("cpus"), mi.get("mem_total_kib", 0) / 2**20,
         mi.get("kernel"), mi.get("nbdkit", "?"), mi.get("fio", "?")))
    p("load average: %.2f at start, %.2f at end (1 min); benchmark ran at nice %d"
      % (ctx.load[0], ctx.load[1], ctx.nice))
    p("")
    p("image mix (seed %s):" % mix.get("seed"))
    pages = mix["pages"]
    for k, v in mix["kinds"].items():
        p("  %-7s %7d pages %5.1f %%  %5d runs" % (k, v["pages"], 100 * v["pages"] / pages, v["runs"]))
    p("")

    p("Throughput: median [min - max]; image and seq in MB/s, 4k tests in IOPS")
    head = "%-20s" % "test" + "".join("%24s" % t for t in targets)
    p(head)
    for test in tests:
        m = primary_metric(test)
        row = "%-20s" % test
        for t in targets:
            s = summary.get(test, {}).get(t, {}).get(m)
            if s is None:
                cell = "FAIL" if (test, t) in errors else "-"
            else:
                cell = "%s [%s-%s]" % (fmt(s["median"], m), fmt(s["min"], m), fmt(s["max"], m))
            row += "%24s" % cell
        p(row)
    p("")

    p("Server CPU per request (us; user+system of nbdkit, all threads; lower is better;")
    p("image tests: per 4 KiB page; robust to other load, unlike throughput)%s:"
      % ("; kernel zram has no server, its CPU is in the kernel zram section"
         if any(t in KZRAM for t in targets) else ""))
    p("%-20s" % "test" + "".join("%16s" % t for t in targets))
    for test in tests:
        row = "%-20s" % test
        for t in targets:
            v = med(test, t, "server_cpu_us_per_op")
            row += "%16s" % ("-" if v is None else "%.1f" % v)
        p(row)
    loads = [v for bt in summary.values() for bm in bt.values()
             for k, v in bm.items() if k == "load1"]
    if loads:
        p("1-min load average during the tests: median %.2f, max %.2f"
          % (statistics.median([x["median"] for x in loads]), max(x["max"] for x in loads)))
    p("")

    pairs = [(z, peer) for z in ZRAM if z in targets for peer in PEERS if peer in targets]
    if pairs:
        p("Ratios of medians (zram / peer; > 1 means zram is faster):")
        p("%-20s" % "test" + "".join("%14s" % ("%s/%s" % (z.split("-")[1], peer.replace("memory-", "")))
                                     for z, peer in pairs))
        for test in tests:
            m = primary_metric(test)
            row = "%-20s" % test
            for z, peer in pairs:
                a, b = med(test, z, m), med(test, peer, m)
                row += "%14s" % ("%.2fx" % (a / b) if a and b else "-")
            p(row)
        p("")

    p("Memory after writing the image (bytes per image byte; lower is better):")
    p("%-16s %10s %12s %12s %12s" % ("target", "RSS growth", "2nd half", "mem_used", "compr_data"))
    for t in targets:
        if t == "null":
            continue
        p("%-16s %10s %12s %12s %12s" % (t, fmt(med("image-write", t, "rss_per_byte"), "rss_per_byte"),
                                    fmt(med("image-write", t, "rss_marginal_per_byte"), "rss_per_byte"),
                                    fmt(med("image-write", t, "mem_used_per_byte"), "mem_used_per_byte"),
                                    fmt(med("image-write", t, "compr_per_byte"), "compr_per_byte")))
    ideal = {}
    if codec:
        for c in ("lz4", "zstd-3", "lz4hc"):
            if c in codec["codecs"]:
                ideal[c] = codec["codecs"][c]["ideal_bytes"] / (codec["pages"] * 4096)
                p("%-16s %10.3f   (ideal per-page store: same-filled free, >= %d B raw)"
                  % ("ideal " + c, ideal[c], codec["huge_threshold"]))
    p("")

    if codec:
        p("Raw codecs per 4 KiB page (bench-codec, median ns/page over the image):")
        for c, v in codec["codecs"].items():
            p("  %-8s compress %7.0f ns (%6.0f MB/s)  decompress %7.0f ns (%6.0f MB/s)  ratio %.3f"
              % (c, v["comp_ns_per_page"][0], 4096e3 / v["comp_ns_per_page"][0],
                 v["decomp_ns_per_page"][0], 4096e3 / v["decomp_ns_per_page"][0], v["ideal_ratio"]))
        p("")
    if core:
        p("Core path without NBD (bench-core, median ns/page, %d thread(s)):" % core["threads"])
        for name, v in core["configs"].items():
            n = v["ns_per_page"]
            p("  %-11s all pages: write %6.0f read %6.0f overwrite %6.0f (raw %s %6.0f / %6.0f)"
              % (name, n["write"][0], n["read"][0], n["overwrite"][0], name.split("-")[0],
                 n["raw_compress"][0], n["raw_decompress"][0]))
            p("  %-11s real pages: write %6.0f read %6.0f (raw %6.0f / %6.0f): write/raw %.2fx,"
              " read/raw %.2fx" % ("", n["write_real"][0], n["read_real"][0],
                                    n["raw_compress_real"][0], n["raw_decompress_real"][0],
                                    v["write_over_raw_compress_real"],
                                    v["read_over_raw_decompress_real"]))
            p("  %-11s store: image / mem_used_total %.3f, allocator overhead %.1f %% over compr_data"
              % ("", v["ratio_mem_used"], 100 * v["allocator_overhead"]))
        p("  (real pages: the pages that are not same-filled, which the device must compress)")
        p("")

    # The goals of issue 6.
    goals = []

    def goal(name, value, limit, higher_is_better=True):
        if value is None:
            goals.append((name, None, limit, None))
        else:
            ok = value >= limit if higher_is_better else value <= limit
            goals.append((name, value, limit, ok))

    def ratio(test, a, b, m):
        x, y = med(test, a, m), med(test, b, m)
        return x / y if x and y else None

    goal("image write vs sparse", ratio("image-write", "zram-lz4", "memory-sparse", "mbps"), 0.8)
    goal("image write vs memory-zstd", ratio("image-write", "zram-lz4", "memory-zstd", "mbps"), 2.5)
    goal("image read vs sparse", ratio("image-read", "zram-lz4", "memory-sparse", "mbps"), 0.8)
    goal("randwrite q16 j2 vs sparse", ratio("randwrite-4k-q16-j2", "zram-lz4", "memory-sparse", "iops"), 0.8)
    goal("randwrite q16 j2 vs memory-zstd", ratio("randwrite-4k-q16-j2", "zram-lz4", "memory-zstd", "iops"), 8)
    goal("randread q16 j2 vs sparse", ratio("randread-4k-q16-j2", "zram-lz4", "memory-sparse", "iops"), 0.9)
    if "zram-lz4fast-recomp" in ctx.targets:
        goal("image write lz4fast+recomp vs sparse",
             ratio("image-write", "zram-lz4fast-recomp", "memory-sparse", "mbps"), 0.8)
    core_ratio = None
    if core and "lz4-zs" in core["configs"]:
        core_ratio = core["configs"]["lz4-zs"]["write_over_raw_compress_real"]
    goal("core write / raw LZ4 (real pages)", core_ratio, 1.15, False)
    rss_ratio = None
    rss = med("image-write", "zram-lz4", "rss_per_byte")
    if rss is not None and ideal.get("lz4"):
        rss_ratio = rss / ideal["lz4"]
    goal("RSS per byte / ideal LZ4 store", rss_ratio, 1.05, False)
    rss_m = med("image-write", "zram-lz4", "rss_marginal_per_byte")
    if rss_m is not None and codec and "lz4" in codec["codecs"]:
        half2 = codec["pages"] - codec["pages"] // 2
        ideal2 = codec["codecs"]["lz4"]["ideal_bytes_second_half"] / (half2 * 4096)
        goal("  2nd half only (no fixed costs)", rss_m / ideal2, 1.05, False)
    p("Goals (zram-lz4; issue 6):")
    for name, value, limit, ok in goals:
        p("  %-34s %8s  goal %s %-5g  %s"
          % (name, "-" if value is None else "%.2fx" % value,
             ">=" if name.startswith(("image", "rand")) else "<=", limit,
             "n/a" if ok is None else ("MET" if ok else "MISSED")))
    p("")
    if errors:
        p("Errors:")
        for (test, target), msgs in sorted(errors.items()):
            p("  %s / %s: %s" % (test, target, msgs[0][:300]))
        p("")
    return "\n".join(L) + "\n", goals


def report_kernel(ctx, summary, core, codec):
    """zram-lz4 against kernel zram, side by side, and where the CPU of a
    request goes (issue 15)."""
    ks = [t for t in KZRAM if t in ctx.targets]
    L = []
    p = L.append
    for t, why in ctx.skipped.items():
        p("%s skipped: %s" % (t, why))
    if not ks:
        return "\n".join(L) + ("\n\n" if L else "")
    ours = "zram-lz4" if "zram-lz4" in ctx.targets else None

    def med(test, target, metric):
        try:
            return summary[test][target][metric]["median"]
        except KeyError:
            return None

    cols = ([ours] if ours else []) + ks
    p("Kernel zram side by side (same image and requests; image and seq MB/s, 4k IOPS;")
    p("ours over NBD on a unix socket, the kernel's on its block device, libaio, O_DIRECT):")
    p("%-20s" % "test" + "".join("%15s" % c for c in cols)
      + ("%16s" % "ours/kzram-lz4" if ours and "kzram-lz4" in ks else ""))
    for test in ctx.test_order:
        m = primary_metric(test)
        row = "%-20s" % test + "".join("%15s" % fmt(med(test, c, m), m) for c in cols)
        if ours and "kzram-lz4" in ks:
            a, b = med(test, ours, m), med(test, "kzram-lz4", m)
            row += "%16s" % ("%.2fx" % (a / b) if a and b else "-")
        p(row)
    p("")
    p("Memory after writing the image (bytes per image byte): mem_used_total, compr_data_size")
    for c in cols:
        p("  %-14s %8s %8s" % (c, fmt(med("image-write", c, "mem_used_per_byte"), "mem_used_per_byte"),
                               fmt(med("image-write", c, "compr_per_byte"), "compr_per_byte")))
    p("")
    # Where a request's CPU goes.  Ours: the server's (nbdkit, all threads),
    # split with bench-core on the same image into the codec alone (LZ4 on
    # the pages that are not same-filled, averaged over all pages), the
    # rest of the core (slot table, allocator, same-page check, copies) and
    # what is left: nbdkit, the NBD protocol and the socket.  The kernel's:
    # CPU of the process submitting the I/O, where zram does its work.
    cfg = core["configs"].get("lz4-zs") if core else None
    real = None
    if codec and codec.get("pages"):
        real = (codec["pages"] - codec.get("same_pages", 0)) / codec["pages"]
    p("CPU per request, us (per 4 KiB page; seq tests: per 256 KiB request).  ours: nbdkit")
    p("server = codec + core rest + NBD/nbdkit rest,")
    p("and the client (bench-nbd-image or fio, user+sys); kernel: the submitting process")
    p("(user+sys of bench-blk-image for image, fio's system time for fio tests, fio's user")
    p("time in brackets): the block layer and zram, codec included.")
    p("%-20s %8s %7s %7s %8s %8s" % ("test", "server", "codec", "core", "NBD+rest", "client")
      + "".join("%15s" % k for k in ks))
    for test in ctx.test_order:
        srv = med(test, ours, "server_cpu_us_per_op") if ours else None
        cli = med(test, ours, "client_cpu_us_per_op") if ours else None
        codec_us = core_us = nbd_us = None
        if srv is not None and cfg and real is not None and test in ("image-write", "image-read"):
            n = cfg["ns_per_page"]
            kind = "compress" if test == "image-write" else "decompress"
            codec_us = n["raw_%s_real" % kind][0] * real / 1000
            path_us = n["write" if test == "image-write" else "read"][0] / 1000
            core_us = path_us - codec_us
            nbd_us = srv - path_us
        row = "%-20s %8s %7s %7s %8s %8s" % (
            test, *["-" if v is None else "%.1f" % v for v in (srv, codec_us, core_us, nbd_us, cli)])
        for k in ks:
            kern, user = med(test, k, "kernel_cpu_us_per_op"), med(test, k, "client_user_us_per_op")
            cell = "-" if kern is None else "%.1f" % kern
            if kern is not None and user is not None:
                cell += " (+%.1f)" % user
            row += "%15s" % cell
        p(row)
    p("(codec and core from bench-core lz4-zs on this image, one thread; fio tests use fio's")
    p(" half-compressible buffers, so only their totals are shown)")
    p("")
    return "\n".join(L) + "\n"


def write_csv(path, summary, ctx):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test", "target", "metric", "median", "min", "max", "n"])
        for test in ctx.test_order:
            for target in ctx.targets:
                for metric, s in summary.get(test, {}).get(target, {}).items():
                    w.writerow([test, target, metric, "%.6g" % s["median"], "%.6g" % s["min"],
                                "%.6g" % s["max"], s["n"]])


# One colour per target in every panel.
COLOURS = {"zram-lz4": "#8e44ad", "zram-zstd": "#27ae60", "memory-sparse": "#5dade2",
           "memory-zstd": "#e67e22", "null": "#f4d03f",
           "zram-lz4-swap": "#c0392b", "zram-lz4fast-recomp": "#1abc9c",
           "kzram-lz4": "#1a5276", "kzram-lzo-rle": "#117864"}


def plot_clauses(datafile, targets):
    """gnuplot clauses for a clustered histogram of one column per target."""
    out = []
    for i, t in enumerate(targets):
        out.append("%s using %d%s title columnheader(%d) lc rgb '%s'"
                   % ("'%s'" % datafile if i == 0 else "''", i + 2,
                      ":xtic(1)" if i == 0 else "", i + 2, COLOURS.get(t, "#888888")))
    return ", ".join(out)


def write_chart(path, summary, ctx, codec):
    """Two panels: throughput relative to memory-sparse, and memory per
    image byte.  Returns a message saying what happened."""
    gp = shutil.which("gnuplot")
    if gp is None:
        return "chart skipped: gnuplot not installed (apt-get install gnuplot-nox)"
    base = "memory-sparse"
    targets = [t for t in ctx.targets if t != base] if base in ctx.targets else ctx.targets
    d1 = os.path.join(ctx.tmp, "rel.dat")
    with open(d1, "w") as f:
        f.write("test " + " ".join(targets) + "\n")
        for test in ctx.test_order:
            m = primary_metric(test)
            row = [test]
            for t in targets:
                try:
                    v = summary[test][t][m]["median"]
                    b = summary[test][base][m]["median"] if base in ctx.targets else 1.0
                    row.append("%.4f" % (v / b))
                except (KeyError, ZeroDivisionError):
                    row.append("NaN")
            f.write(" ".join(row) + "\n")
    d3 = os.path.join(ctx.tmp, "cpu.dat")
    with open(d3, "w") as f:
        f.write("test " + " ".join(ctx.targets) + "\n")
        for test in ctx.test_order:
            row = [test]
            for t in ctx.targets:
                # Kernel zram has no server: its CPU is the submitter's.
                m = "kernel_cpu_us_per_op" if t in KZRAM else "server_cpu_us_per_op"
                try:
                    row.append("%.4f" % summary[test][t][m]["median"])
                except KeyError:
                    row.append("NaN")
            f.write(" ".join(row) + "\n")
    d2 = os.path.join(ctx.tmp, "mem.dat")
    with open(d2, "w") as f:
        f.write("what bytes\n")
        for t in ctx.targets:
            if t == "null":
                continue
            # Kernel zram has no RSS of its own: its mm_stat mem_used_total.
            m = "mem_used_per_byte" if t in KZRAM else "rss_per_byte"
            try:
                f.write("%s %.4f\n" % (t, summary["image-write"][t][m]["median"]))
            except KeyError:
                pass
        if codec:
            for c in ("lz4", "zstd-3"):
                f.write("ideal-%s %.4f\n" % (c, codec["codecs"][c]["ideal_bytes"] / (codec["pages"] * 4096)))
    script = os.path.join(ctx.tmp, "chart.gp")
    with open(script, "w") as f:
        f.write("""set terminal pngcairo size 1400,1500 font ',10' noenhanced
set output '%s'
set multiplot layout 3,1 title 'nbdkit-zram vs peers (%d MiB memory-like image, median of %d; %s)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top
set grid ytics
set logscale y
set yrange [0.01:*]
set xtics rotate by -30
set ylabel 'throughput relative to nbdkit memory allocator=sparse (log)'
set title 'Throughput (image: MB/s; 4k: IOPS; seq: MB/s) relative to memory-sparse = 1'
plot %s, 1 with lines lw 2 lc rgb 'black' title 'sparse = 1'
set ylabel 'server CPU per request, us (log)'
set yrange [*:*]
set title 'Server CPU time per request (user+system of nbdkit; kernel zram: the submitting process; image: per 4 KiB page); lower is better'
plot %s
unset logscale y
set yrange [0:*]
set xtics norotate
set ylabel 'bytes of memory per byte of image'
set title 'Memory: server RSS growth (kernel zram: mem_used_total) after writing the image, vs the ideal per-page compressed store'
set style histogram clustered gap 2
plot '%s' using 2:xtic(1) title 'bytes per image byte' lc rgb '#4477aa', \
     '' using 0:2:(sprintf('%%.3f', $2)) with labels offset 0,0.8 notitle
unset multiplot
""" % (path, ctx.size >> 20, ctx.reps, ctx.machine.get("cpu", "?"),
            plot_clauses(d1, targets), plot_clauses(d3, ctx.targets), d2))
    if base not in ctx.targets:
        with open(script) as f:
            text = f.read()
        text = text.replace("set logscale y\n", "", 1).replace("set yrange [0.01:*]", "set yrange [0:*]")
        text = text.replace("throughput relative to nbdkit memory allocator=sparse (log)",
                            "throughput (MB/s or IOPS)")
        text = text.replace(" relative to memory-sparse = 1", "")
        text = text.replace(", 1 with lines lw 2 lc rgb 'black' title 'sparse = 1'", "")
        with open(script, "w") as f:
            f.write(text)
    r = subprocess.run([gp, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return "chart failed: gnuplot: " + r.stderr.strip()[-500:]
    return "chart written: " + path


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(here), "build"),
                    help="meson build directory with bench/ tools and zram.so")
    ap.add_argument("--plugin", help="path of zram.so (default BUILD/zram.so)")
    ap.add_argument("--size", help="image and device size (default 128M; 8M with --smoke)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --smoke)")
    ap.add_argument("--runtime", type=float,
                    help="seconds per fio test (default 5; 1 with --smoke)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="comma-separated, from: %s (default: all but the last %d; the"
                         " kzram ones need root and kernel zram, else are skipped)"
                    % (", ".join(ALL_TARGETS + EXTRA_TARGETS), len(EXTRA_TARGETS)))
    ap.add_argument("--tests", help="comma-separated subset of: image, %s (default: all)"
                    % ", ".join(FIO_TESTS))
    ap.add_argument("--out", help="output directory (default bench/results)")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds-long check that everything works: 8M image, 1 rep, short fio")
    ap.add_argument("--no-micro", action="store_true", help="skip bench-codec and bench-core")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the driver, servers and clients at this nice value "
                         "(e.g. -10 as root, to stand out from other load on a shared machine)")
    ap.add_argument("--lz4fast-level", type=int, default=LZ4FAST_LEVEL,
                    help="lz4 acceleration of the zram-lz4fast-recomp target "
                         "(default %d)" % LZ4FAST_LEVEL)
    a = ap.parse_args()

    ctx = Ctx()
    ctx.lz4fast_level = a.lz4fast_level
    ctx.build = os.path.abspath(a.build_dir)
    ctx.plugin = os.path.abspath(a.plugin or os.path.join(ctx.build, "zram.so"))
    # --smoke changes the defaults; what is given explicitly stays.
    for name, normal, smoke in (("size", "128M", "8M"), ("reps", 3, 1), ("runtime", 5, 1)):
        if getattr(a, name) is None:
            setattr(a, name, smoke if a.smoke else normal)
    if a.smoke:
        if a.tests is None:
            a.tests = ",".join(["image"] + SMOKE_FIO)
    ctx.size = parse_size(a.size)
    if ctx.size is None or ctx.size <= 0 or ctx.size % 4096:
        ap.error("--size %s: give a positive multiple of 4096 bytes, as a number"
                 " with an optional K, M or G (e.g. 16M)" % a.size)
    if a.reps < 1:
        ap.error("--reps %d: at least one repetition" % a.reps)
    if not 0 < a.runtime < 86400:
        ap.error("--runtime %g: give a positive number of seconds, under a day" % a.runtime)
    ctx.reps, ctx.runtime = a.reps, a.runtime
    # A client that takes longer than this is stuck; fio runs --runtime.
    ctx.timeout = 600 + 2 * ctx.runtime
    ctx.targets = []
    for t in a.targets.split(","):
        if not t or t in ctx.targets:
            continue                    # a name given twice runs once
        if t not in ALL_TARGETS + EXTRA_TARGETS:
            ap.error("unknown target %s (known: %s)"
                     % (t, ", ".join(ALL_TARGETS + EXTRA_TARGETS)))
        ctx.targets.append(t)
    if not ctx.targets:
        ap.error("--targets names no target")
    tests = []
    for t in (a.tests.split(",") if a.tests else ["image"] + list(FIO_TESTS)):
        if not t or t in tests:
            continue
        if t != "image" and t not in FIO_TESTS:
            ap.error("unknown test %s (known: image, %s)" % (t, ", ".join(FIO_TESTS)))
        tests.append(t)
    if not tests:
        ap.error("--tests names no test")
    ctx.test_order = (["image-write", "image-read"] if "image" in tests else []) + \
        [t for t in tests if t != "image"]
    out = a.out or (ctx.build if a.smoke else os.path.join(here, "results"))
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        ap.error("--out %s: %s" % (out, e))

    def tool(name):
        p = os.path.join(ctx.build, "bench", name)
        if not os.access(p, os.X_OK):
            sys.exit("run-bench: %s not built (ninja -C %s)" % (p, ctx.build))
        return p
    ctx.tool = tool
    for prog in ("nbdkit", "fio"):
        if shutil.which(prog) is None:
            log("run-bench: %s is not installed" % prog)
            return 77
    if any(t.startswith("zram") for t in ctx.targets) and not os.path.exists(ctx.plugin):
        sys.exit("run-bench: plugin %s not found (--plugin)" % ctx.plugin)

    for sig in END_SIGNALS:
        signal.signal(sig, on_signal)
    ctx.nice = 0
    if a.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, a.nice)   # children inherit it
            ctx.nice = a.nice
        except OSError as e:
            log("run-bench: cannot set nice %d (%s); running at the default" % (a.nice, e))
    ctx.machine = machine_info()
    ctx.load = [os.getloadavg()[0], None]
    ctx.skipped = {}
    try:
        return run_all(ctx, a, tests, out, here)
    finally:
        # Kernel zram devices this run made go, whatever ended it.
        KernelZram.remove_all()


def parse_size(text):
    """'16M', '1G', '65536k', '8388608' -> bytes; None if it is not one."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    unit = 1
    if text[-1:].upper() in mult:
        text, unit = text[:-1], mult[text[-1].upper()]
    if not text.isdigit():
        return None
    return int(text) * unit


def on_signal(signum, frame):
    """SIGTERM and SIGHUP end the run the way Ctrl-C does: through the
    finally blocks that remove the kernel zram devices and stop servers."""
    for sig in END_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)      # let the clean-up finish
    raise SystemExit(128 + signum)


def run_all(ctx, a, tests, out, here):
    tool = ctx.tool
    with tempfile.TemporaryDirectory(prefix="zram-bench-") as tmp:
        ctx.tmp = tmp
        ctx.image = os.path.join(tmp, "image")
        mixfile = os.path.join(tmp, "mix.json")
        gen = subprocess.run([tool("zram-image-gen"), "-s", str(ctx.size), "-o", ctx.image,
                              "-j", mixfile], stderr=subprocess.PIPE, text=True)
        if gen.returncode != 0:
            sys.exit("run-bench: zram-image-gen failed: " + gen.stderr)
        log("image mix:\n" + gen.stderr.rstrip())
        with open(mixfile) as f:
            mix = json.load(f)

        codec = core = None
        if not a.no_micro:
            cj = os.path.join(tmp, "codec.json")
            log("bench-codec ...")
            log(run_cmd([tool("bench-codec"), "-i", ctx.image, "-r", str(ctx.reps), "-j", cj],
                        ctx.timeout).rstrip())
            with open(cj) as f:
                codec = json.load(f)
            kj = os.path.join(tmp, "core.json")
            if os.access(os.path.join(ctx.build, "bench", "bench-core"), os.X_OK):
                log("bench-core ...")
                log(run_cmd([tool("bench-core"), "-i", ctx.image, "-r", str(ctx.reps), "-j", kj],
                            ctx.timeout).rstrip())
                with open(kj) as f:
                    core = json.load(f)

        ctx.use_ctl = False
        if any(t.startswith("zram") for t in ctx.targets):
            check_plugin_ctl(ctx)
        for t in [t for t in ctx.targets if t in KZRAM]:
            why = kzram_unavailable(KZRAM[t])
            if why:
                log("run-bench: %s skipped: %s" % (t, why))
                ctx.skipped[t] = why
                ctx.targets.remove(t)
        if not ctx.targets:
            log("run-bench: every target was skipped; nothing to run")
            return 77

        samples = {}
        errors = {}
        for rep in range(ctx.reps):
            order = ctx.targets[rep % len(ctx.targets):] + ctx.targets[:rep % len(ctx.targets)]
            for test in tests:
                for target in order:
                    t0 = time.monotonic()
                    try:
                        if test == "image":
                            res = (kzram_image_test if target in KZRAM else image_test)(ctx, target)
                        elif target in KZRAM:
                            res = {test: kzram_fio_test(ctx, target, test)}
                        else:
                            res = {test: fio_test(ctx, target, test)}
                    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError,
                            KeyError) as e:
                        name = "image-write" if test == "image" else test
                        errors.setdefault((name, target), []).append(str(e))
                        log("rep %d %-20s %-14s ERROR %s" % (rep + 1, test, target, str(e)[:300]))
                        continue
                    for tname, metrics in res.items():
                        for metric, v in metrics.items():
                            samples.setdefault(tname, {}).setdefault(target, {}) \
                                .setdefault(metric, []).append(v)
                        m = primary_metric(tname)
                        log("rep %d %-20s %-14s %10s %s  (%.1f s, load %.2f)"
                            % (rep + 1, tname, target, fmt(metrics.get(m), m), m,
                               time.monotonic() - t0, os.getloadavg()[0]))
        ctx.load[1] = os.getloadavg()[0]

        summary = summarise(samples)
        text, goals = report(ctx, summary, errors, codec, core, mix)
        text += report_kernel(ctx, summary, core, codec)
        result = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": ctx.machine, "load_avg_1min": ctx.load,
            "config": {"size": ctx.size, "reps": ctx.reps, "fio_runtime_s": ctx.runtime,
                       "nice": ctx.nice,
                       "targets": ctx.targets, "tests": ctx.test_order,
                       "fio_buffers": "buffer_compress_percentage=50, chunk 4k, refill_buffers",
                       "image_io": "4 KiB requests with data, 16 in flight, one connection"},
            "mix": mix, "codec": codec, "core": core,
            "samples": samples, "summary": summary,
            "errors": {"%s/%s" % k: v for k, v in errors.items()},
            "goals": [{"goal": g[0], "value": g[1], "limit": g[2], "met": g[3]} for g in goals],
        }
        with open(os.path.join(out, "latest.json"), "w") as f:
            json.dump(result, f, indent=1, sort_keys=False)
            f.write("\n")
        write_csv(os.path.join(out, "latest.csv"), summary, ctx)
        msg = write_chart(os.path.join(out, "latest.png"), summary, ctx, codec)
        text += msg + "\n"
        with open(os.path.join(out, "latest.txt"), "w") as f:
            f.write(text)
        print(text, end="")

    zram_failed = [k for k in errors if k[1].startswith("zram")]
    return 1 if zram_failed else 0


if __name__ == "__main__":
    sys.exit(main())
