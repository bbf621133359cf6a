/* nbdkit-zram benchmarks: write a memory image to a block device and read
 * it back, as bench-nbd-image does over NBD: the kernel zram peer.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   bench-blk-image -d DEVICE -i IMAGE [-m MODE] [-b REQUEST] [-q DEPTH]
 *                   [-O OFFSET -L LENGTH]
 *
 * The same requests as bench-nbd-image: MODE "write", "read" or "both"
 * (default), REQUEST bytes (default 4096) per request, DEPTH (default 16)
 * in flight, here as Linux native AIO (io_submit) with O_DIRECT on the
 * device, the way fio's libaio engine drives it.  Reads are checked byte
 * for byte against the image; a mismatch exits 1.
 *
 * Kernel zram compresses in the context that submits the I/O, so its work
 * shows up as this process's system time: the output has the CPU seconds
 * (user + system) of each phase next to the wall time.
 *
 * Prints one JSON object on stdout:
 *   {"bytes": N, "write_s": S, "write_mbps": M, "write_cpu_s": C,
 *    "read_s": S, "read_mbps": M, "read_cpu_s": C, "verified": true}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench-util.h"
#include "image-gen.h"

/* The most requests in flight (the AIO context's size). */
#define BLK_MAX_DEPTH 1024

/* glibc has no wrappers for the native AIO system calls. */
static long
aio_setup (unsigned nr, aio_context_t *ctx)
{
  return syscall (SYS_io_setup, nr, ctx);
}

static long
aio_destroy (aio_context_t ctx)
{
  return syscall (SYS_io_destroy, ctx);
}

static long
aio_submit (aio_context_t ctx, long n, struct iocb **iocbs)
{
  return syscall (SYS_io_submit, ctx, n, iocbs);
}

static long
aio_getevents (aio_context_t ctx, long min, long max, struct io_event *ev)
{
  return syscall (SYS_io_getevents, ctx, min, max, ev, NULL);
}

/* Run requests of bs bytes over [start, end) with depth in flight.
 * Returns 0, or -1 after printing what failed.
 */
static int
run (int fd, aio_context_t ctx, bool write, unsigned char *buf, uint64_t start,
     uint64_t end, uint32_t bs, unsigned depth, double *seconds, double *cpu)
{
  uint64_t n = (end - start + bs - 1) / bs, issued = 0, completed = 0;
  struct iocb cbs[BLK_MAX_DEPTH], *free_cbs[BLK_MAX_DEPTH];
  struct io_event ev[BLK_MAX_DEPTH];
  unsigned nfree = depth, i;
  double t0 = bench_now (), c0 = bench_cpu_now ();

  for (i = 0; i < depth; i++)
    free_cbs[i] = &cbs[i];
  while (completed < n) {
    while (issued < n && nfree > 0) {
      struct iocb *cb = free_cbs[--nfree];
      uint64_t off = start + issued * bs;
      uint64_t len = end - off < bs ? end - off : bs;

      memset (cb, 0, sizeof *cb);
      cb->aio_fildes = (uint32_t) fd;
      cb->aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
      cb->aio_buf = (uint64_t) (uintptr_t) (buf + off);
      cb->aio_nbytes = len;
      cb->aio_offset = (int64_t) off;
      if (aio_submit (ctx, 1, &cb) != 1) {
        fprintf (stderr, "bench-blk-image: io_submit: %m\n");
        return -1;
      }
      issued++;
    }
    long got = aio_getevents (ctx, 1, depth, ev);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      fprintf (stderr, "bench-blk-image: io_getevents: %m\n");
      return -1;
    }
    for (i = 0; i < (unsigned) got; i++) {
      struct iocb *cb = (struct iocb *) (uintptr_t) ev[i].obj;
      if (ev[i].res < 0 || (uint64_t) ev[i].res != cb->aio_nbytes) {
        fprintf (stderr, "bench-blk-image: a %s at %" PRId64 " returned %" PRId64 " (%s)\n",
                 write ? "write" : "read", (int64_t) cb->aio_offset, (int64_t) ev[i].res,
                 ev[i].res < 0 ? strerror ((int) -ev[i].res) : "short");
        return -1;
      }
      free_cbs[nfree++] = cb;
      completed++;
    }
  }
  *seconds = bench_now () - t0;
  *cpu = bench_cpu_now () - c0;
  return 0;
}

int
main (int argc, char *argv[])
{
  const char *device = NULL, *image = NULL, *mode = "both";
  uint64_t isize, start = 0, len = 0, end;
  uint32_t bs = 4096;
  unsigned depth = 16;
  unsigned char *img, *back = NULL;
  aio_context_t ctx = 0;
  double ws = 0, rs = 0, wc = 0, rc = 0;
  bool do_write, do_read;
  int c, fd;

  while ((c = getopt (argc, argv, "d:i:m:b:q:O:L:h")) != -1) {
    switch (c) {
    case 'd': device = optarg; break;
    case 'i': image = optarg; break;
    case 'm': mode = optarg; break;
    case 'b': bs = (uint32_t) bench_parse_size (optarg); break;
    case 'q': depth = (unsigned) atoi (optarg); break;
    case 'O': start = (uint64_t) bench_parse_size (optarg); break;
    case 'L': len = (uint64_t) bench_parse_size (optarg); break;
    default:
      fprintf (stderr, "usage: bench-blk-image -d DEVICE -i IMAGE [-m write|read|both]"
               " [-b REQUEST] [-q DEPTH] [-O OFFSET -L LENGTH]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  do_write = strcmp (mode, "write") == 0 || strcmp (mode, "both") == 0;
  do_read = strcmp (mode, "read") == 0 || strcmp (mode, "both") == 0;
  if (!device || !image || (!do_write && !do_read) || bs == 0 || bs > (32u << 20)
      || bs % 512 || depth < 1 || depth > BLK_MAX_DEPTH) {
    fprintf (stderr, "bench-blk-image: bad arguments (see the source header)\n");
    return 2;
  }

  img = bench_read_file (image, &isize);   /* page-aligned, as O_DIRECT needs */
  if (img == NULL)
    return 1;
  end = len ? start + len : isize;
  if (start % IMGEN_PAGE_SIZE || end % IMGEN_PAGE_SIZE || start >= end || end > isize) {
    fprintf (stderr, "bench-blk-image: -O/-L must be page-aligned and inside the image\n");
    return 2;
  }
  if (do_read) {
    back = aligned_alloc (IMGEN_PAGE_SIZE, isize);
    if (back == NULL) {
      perror ("aligned_alloc");
      return 1;
    }
    memset (back, 0xaa, isize);   /* touch it now, not during the timed read */
  }

  fd = open (device, (do_write ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
  if (fd == -1) {
    fprintf (stderr, "bench-blk-image: %s: %m\n", device);
    return 1;
  }
  off_t devsize = lseek (fd, 0, SEEK_END);
  if (devsize < 0 || (uint64_t) devsize < end) {
    fprintf (stderr, "bench-blk-image: %s (%jd bytes) is smaller than the image\n",
             device, (intmax_t) devsize);
    return 1;
  }
  if (aio_setup (depth, &ctx) == -1) {
    fprintf (stderr, "bench-blk-image: io_setup(%u): %m (see /proc/sys/fs/aio-max-nr)\n",
             depth);
    return 1;
  }
  if (do_write && run (fd, ctx, true, img, start, end, bs, depth, &ws, &wc) == -1)
    return 1;
  if (do_read) {
    if (run (fd, ctx, false, back, start, end, bs, depth, &rs, &rc) == -1)
      return 1;
    if (memcmp (back + start, img + start, end - start) != 0) {
      uint64_t i;
      for (i = start; i < end && back[i] == img[i]; i++)
        ;
      fprintf (stderr, "bench-blk-image: read-back differs from the image at byte %"
               PRIu64 " (page %" PRIu64 ")\n", i, i / IMGEN_PAGE_SIZE);
      return 1;
    }
  }
  aio_destroy (ctx);
  close (fd);

  printf ("{\"bytes\": %" PRIu64 ", \"request\": %" PRIu32 ", \"depth\": %u",
          end - start, bs, depth);
  if (do_write)
    printf (", \"write_s\": %.6f, \"write_mbps\": %.2f, \"write_cpu_s\": %.6f",
            ws, (double) (end - start) / ws / 1e6, wc);
  if (do_read)
    printf (", \"read_s\": %.6f, \"read_mbps\": %.2f, \"read_cpu_s\": %.6f, \"verified\": true",
            rs, (double) (end - start) / rs / 1e6, rc);
  printf ("}\n");
  free (back);
  free (img);
  return 0;
}
