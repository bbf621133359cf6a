/* nbdkit-zram benchmarks: write a memory image to an NBD server and read it
 * back, the way a swap device pages memory out and in.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   bench-nbd-image -u URI (-i IMAGE | -s SIZE [-S SEED]) [-m MODE]
 *                   [-b REQUEST] [-q DEPTH] [-O OFFSET -L LENGTH] [-n]
 *
 * MODE is "write", "read" or "both" (default).  Every page is sent as a
 * write with data (no zero or trim requests, and no block-status requests:
 * the swap path uses neither, and nbdkit memory allocator=zstd crashes on
 * block status over unwritten space).  REQUEST bytes (default 4096) per
 * request, DEPTH (default 16) requests in flight on one connection.  Reads
 * are checked byte for byte against the image (unless -n: for nbdkit null);
 * a mismatch exits 1.  -O/-L restrict the run to that byte range of the
 * image (and of the device, at the same offsets).
 *
 * Prints one JSON object on stdout:
 *   {"bytes": N, "write_s": S, "write_mbps": M, "write_cpu_s": C,
 *    "read_s": S, "read_mbps": M, "read_cpu_s": C, "verified": true}
 * (C: this client's CPU seconds, user + system, in that phase).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "bench-util.h"
#include "image-gen.h"

struct io {
  uint64_t completed;
  int error;                    /* first errno a request failed with */
};

static int
complete (void *opaque, int *error)
{
  struct io *io = opaque;

  if (*error && io->error == 0)
    io->error = *error;
  io->completed++;
  return 1;                     /* retire the command */
}

/* Run requests of bs bytes over [start, end) with depth in flight. */
static int
run (struct nbd_handle *h, bool write, unsigned char *buf, uint64_t start,
     uint64_t end, uint32_t bs, unsigned depth, double *seconds, double *cpu)
{
  uint64_t n = (end - start + bs - 1) / bs, issued = 0;
  struct io io = { 0, 0 };
  double t0 = bench_now (), c0 = bench_cpu_now ();

  while (io.completed < n) {
    while (issued < n && (uint64_t) nbd_aio_in_flight (h) < depth) {
      uint64_t off = start + issued * bs;
      size_t len = end - off < bs ? (size_t) (end - off) : bs;
      nbd_completion_callback cb = { .callback = complete, .user_data = &io };
      int64_t cookie = write
        ? nbd_aio_pwrite (h, buf + off, len, off, cb, 0)
        : nbd_aio_pread (h, buf + off, len, off, cb, 0);
      if (cookie == -1) {
        fprintf (stderr, "bench-nbd-image: %s\n", nbd_get_error ());
        return -1;
      }
      issued++;
    }
    if (nbd_poll (h, -1) == -1) {
      fprintf (stderr, "bench-nbd-image: poll: %s\n", nbd_get_error ());
      return -1;
    }
  }
  *seconds = bench_now () - t0;
  *cpu = bench_cpu_now () - c0;
  if (io.error) {
    fprintf (stderr, "bench-nbd-image: a %s failed: %s\n",
             write ? "write" : "read", strerror (io.error));
    return -1;
  }
  return 0;
}

int
main (int argc, char *argv[])
{
  const char *uri = NULL, *image = NULL, *mode = "both";
  int64_t size = 64 << 20;
  uint64_t seed = IMGEN_DEFAULT_SEED, isize, start = 0, len = 0, end;
  uint32_t bs = 4096;
  unsigned depth = 16;
  unsigned char *img, *back = NULL;
  struct nbd_handle *h;
  double ws = 0, rs = 0, wc = 0, rc = 0;
  bool do_write, do_read, verify = true;
  int c;

  while ((c = getopt (argc, argv, "u:i:s:S:m:b:q:O:L:nh")) != -1) {
    switch (c) {
    case 'u': uri = optarg; break;
    case 'i': image = optarg; break;
    case 's': size = bench_parse_size (optarg); break;
    case 'S': seed = strtoull (optarg, NULL, 0); break;
    case 'm': mode = optarg; break;
    case 'b': bs = (uint32_t) bench_parse_size (optarg); break;
    case 'q': depth = (unsigned) atoi (optarg); break;
    case 'n': verify = false; break;
    case 'O': start = (uint64_t) bench_parse_size (optarg); break;
    case 'L': len = (uint64_t) bench_parse_size (optarg); break;
    default:
      fprintf (stderr, "usage: bench-nbd-image -u URI (-i IMAGE | -s SIZE [-S SEED])"
               " [-m write|read|both] [-b REQUEST] [-q DEPTH] [-O OFFSET -L LENGTH] [-n]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  do_write = strcmp (mode, "write") == 0 || strcmp (mode, "both") == 0;
  do_read = strcmp (mode, "read") == 0 || strcmp (mode, "both") == 0;
  if (!uri || (!do_write && !do_read) || bs == 0 || bs > (32u << 20)
      || depth < 1 || depth > 1024 || size <= 0 || size % IMGEN_PAGE_SIZE) {
    fprintf (stderr, "bench-nbd-image: bad arguments (see the source header)\n");
    return 2;
  }

  if (image) {
    img = bench_read_file (image, &isize);
    if (img == NULL)
      return 1;
  }
  else {
    struct imgen_mix mix;
    isize = (uint64_t) size;
    img = malloc (isize);
    if (img == NULL) {
      perror ("malloc");
      return 1;
    }
    imgen_default_mix (&mix);
    imgen_generate (img, isize, seed, &mix, NULL);
  }
  end = len ? start + len : isize;
  if (start % IMGEN_PAGE_SIZE || end % IMGEN_PAGE_SIZE || start >= end || end > isize) {
    fprintf (stderr, "bench-nbd-image: -O/-L must be page-aligned and inside the image\n");
    return 2;
  }
  if (do_read) {
    back = malloc (isize);
    if (back == NULL) {
      perror ("malloc");
      return 1;
    }
    memset (back, 0xaa, isize);   /* touch it now, not during the timed read */
  }

  h = nbd_create ();
  if (h == NULL || nbd_connect_uri (h, uri) == -1) {
    fprintf (stderr, "bench-nbd-image: %s: %s\n", uri, nbd_get_error ());
    return 1;
  }
  if ((uint64_t) nbd_get_size (h) < isize) {
    fprintf (stderr, "bench-nbd-image: export (%" PRId64 " bytes) smaller than the image\n",
             nbd_get_size (h));
    return 1;
  }
  if (do_write && run (h, true, img, start, end, bs, depth, &ws, &wc) == -1)
    return 1;
  if (do_read) {
    if (run (h, false, back, start, end, bs, depth, &rs, &rc) == -1)
      return 1;
    if (verify && memcmp (back + start, img + start, end - start) != 0) {
      uint64_t i;
      for (i = start; i < end && back[i] == img[i]; i++)
        ;
      fprintf (stderr, "bench-nbd-image: read-back differs from the image at byte %"
               PRIu64 " (page %" PRIu64 ")\n", i, i / IMGEN_PAGE_SIZE);
      return 1;
    }
  }
  if (nbd_shutdown (h, 0) == -1)
    fprintf (stderr, "bench-nbd-image: shutdown: %s\n", nbd_get_error ());
  nbd_close (h);

  printf ("{\"bytes\": %" PRIu64 ", \"request\": %" PRIu32 ", \"depth\": %u",
          end - start, bs, depth);
  if (do_write)
    printf (", \"write_s\": %.6f, \"write_mbps\": %.2f, \"write_cpu_s\": %.6f",
            ws, (double) (end - start) / ws / 1e6, wc);
  if (do_read)
    printf (", \"read_s\": %.6f, \"read_mbps\": %.2f, \"read_cpu_s\": %.6f, \"verified\": %s",
            rs, (double) (end - start) / rs / 1e6, rc, verify ? "true" : "false");
  printf ("}\n");
  free (back);
  free (img);
  return 0;
}
