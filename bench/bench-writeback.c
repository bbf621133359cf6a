/* nbdkit-zram benchmarks: writeback to a file store, without NBD
 * (issue 14): how fast pages go to the store, how much of the store they
 * take, and how long a read of a written-back page takes.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   bench-writeback [-s SIZE] [-S SEED] [-i IMAGE] [-d DIR] [-r REPS]
 *
 * Per rep: a fresh device (lz4, pool zs) with a store on a new sparse
 * file in DIR (default $TMPDIR or /var/tmp) is written with the
 * memory-like image, every page is marked idle and written back with one
 * zram_writeback (type idle); then every page is read and checked, and
 * each read of a written-back page is timed (single thread; the store's
 * blocks are in the page cache, so this is the device's cost: a pread
 * from the cache, the checksum, the decompression).  Reported:
 * writeback pages/s and MB/s of pages (wall time of the call), store
 * bytes per page written back (blocks in use * 4096 / bd_count), and the
 * read latency, median and 99th percentile.  Uses only the API that the
 * first writeback had, so the same file measures before and after.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zram/zram.h"

#include "bench-util.h"
#include "image-gen.h"

#define PAGE IMGEN_PAGE_SIZE

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

/* Read every page, check it, and time the reads of pages in the store
 * (those the pool does not hold: all but zero and same-filled ones,
 * after a writeback of everything).  Fills lat (us) and returns their
 * number, or -1 on a failed or wrong read.
 */
static int64_t
read_all (struct zram *z, const unsigned char *img, uint64_t npages,
          const unsigned char *in_store, double *lat)
{
  unsigned char buf[PAGE];
  int64_t n = 0;

  for (uint64_t p = 0; p < npages; p++) {
    double t0 = bench_now ();

    if (zram_read (z, buf, PAGE, p * PAGE) == -1) {
      fprintf (stderr, "bench-writeback: read of page %" PRIu64 ": %s\n", p,
               strerror (errno));
      return -1;
    }
    if (in_store[p])
      lat[n++] = (bench_now () - t0) * 1e6;
    if (memcmp (buf, img + p * PAGE, PAGE) != 0) {
      fprintf (stderr, "bench-writeback: page %" PRIu64 " differs\n", p);
      return -1;
    }
  }
  qsort (lat, n, sizeof *lat, cmp_double);
  return n;
}

int
main (int argc, char **argv)
{
  const char *dir = getenv ("TMPDIR"), *image = NULL;
  uint64_t size = 64 << 20, seed = IMGEN_DEFAULT_SEED, npages;
  unsigned reps = 3;
  unsigned char *img, *in_store;
  double *lat;
  int c;

  if (dir == NULL || *dir == '\0')
    dir = "/var/tmp";
  while ((c = getopt (argc, argv, "s:S:i:d:r:")) != -1) {
    switch (c) {
    case 's': size = bench_parse_size (optarg); break;
    case 'S': seed = strtoull (optarg, NULL, 0); break;
    case 'i': image = optarg; break;
    case 'd': dir = optarg; break;
    case 'r': reps = atoi (optarg); break;
    default:
      fprintf (stderr, "usage: bench-writeback [-s SIZE] [-S SEED] [-i IMAGE] "
               "[-d DIR] [-r REPS]\n");
      return 2;
    }
  }
  if ((int64_t) size <= 0 || size % PAGE || reps == 0) {
    fprintf (stderr, "bench-writeback: bad size or reps\n");
    return 2;
  }
  img = bench_load_image (image, &size, seed, 1);
  if (img == NULL)
    return 1;
  npages = size / PAGE;
  in_store = calloc (npages, 1);
  lat = calloc (npages, sizeof *lat);
  if (in_store == NULL || lat == NULL) {
    perror ("bench-writeback");
    return 1;
  }
  printf ("%-4s %10s %10s %10s %12s %10s %10s\n", "rep", "pages",
          "pages/s", "MB/s", "store B/page", "read p50", "read p99");
  for (unsigned rep = 0; rep < reps; rep++) {
    struct zram_config cfg = { .disksize = size, .algo = ZCOMP_LZ4,
                               .pool = ZPOOL_ZS };
    struct zram_wb_req req = { .type = ZRAM_WB_IDLE };
    struct zram_wb_result res;
    struct zram_stats s;
    char path[4096], err[BACKING_ERR_MAX];
    struct zram *z;
    double t0, t1;
    uint64_t used;
    int64_t n;
    int fd;

    snprintf (path, sizeof path, "%s/bench-writeback.XXXXXX", dir);
    fd = mkstemp (path);
    if (fd == -1) {
      fprintf (stderr, "bench-writeback: %s: %s\n", path, strerror (errno));
      return 1;
    }
    cfg.backing = backing_open (path, size, err, sizeof err);
    if (cfg.backing == NULL) {
      fprintf (stderr, "bench-writeback: %s\n", err);
      return 1;
    }
    z = zram_create (&cfg);
    if (z == NULL || zram_write (z, img, size, 0) == -1 ||
        zram_mark_idle (z, 0, NULL) == -1) {
      perror ("bench-writeback: device");
      return 1;
    }
    t0 = bench_now ();
    if (zram_writeback (z, &req, &res) == -1) {
      perror ("bench-writeback: writeback");
      return 1;
    }
    t1 = bench_now ();
    zram_get_stats (z, &s);
    used = backing_used_blocks (cfg.backing);
    /* Which pages the store holds: after writing back everything idle,
     * all that are neither zero nor same-filled (a read tells: the
     * stats' bd_reads rises).
     */
    for (uint64_t p = 0; p < npages; p++) {
      struct zram_stats s1;
      unsigned char buf[PAGE];

      zram_get_stats (z, &s);
      if (zram_read (z, buf, PAGE, p * PAGE) == -1) {
        perror ("bench-writeback: read");
        return 1;
      }
      zram_get_stats (z, &s1);
      in_store[p] = s1.bd_reads > s.bd_reads;
    }
    n = read_all (z, img, npages, in_store, lat);
    if (n <= 0) {
      fprintf (stderr, "bench-writeback: nothing in the store\n");
      return 1;
    }
    zram_get_stats (z, &s);
    printf ("%-4u %10" PRIu64 " %10.0f %10.1f %12.0f %8.1fus %8.1fus\n", rep,
            res.written, res.written / (t1 - t0),
            res.written * (double) PAGE / (t1 - t0) / 1e6,
            used * (double) PAGE / s.bd_count, lat[n / 2], lat[n * 99 / 100]);
    zram_destroy (z);
    close (fd);
    unlink (path);
  }
  free (lat);
  free (in_store);
  free (img);
  return 0;
}
