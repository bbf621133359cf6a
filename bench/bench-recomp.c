/* nbdkit-zram benchmarks: what recompression and multi-page groups save,
 * and what they cost, on the memory-like image, without NBD (issue 12's
 * targets a and c; issue 13's per-feature figures).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   bench-recomp [-s SIZE] [-S SEED] [-i IMAGE] [-l LEVEL] [-a ACCEL]
 *                [-g GROUP_LEVELS] [-j JSONFILE]
 *
 * One run, one image, fresh devices (pool zs), each written with every
 * page once:
 *
 *   lz4            lz4 alone (level 1, its default acceleration)
 *   zstd           zstd alone at its default level
 *   lz4+zstd:L     lz4, then every page marked idle and recompressed with
 *                  zstd level L (default 19), then compacted
 *   lz4:A+zstd:L   the same with lz4 acceleration A (default 1000), a faster
 *                  primary
 *   lz4+group:zstd:G  lz4, then every page marked idle and packed into
 *                  groups of 16 compressed with zstd level G (each of
 *                  -g's comma-separated levels; default 9,19), then
 *                  compacted
 *
 * For each: the CPU time of the write per page, of the recompression per
 * page attempted, the pool's memory (mem_used_total, after a compaction)
 * and compr_data_size per byte of image written, and the wall time of
 * each zram_read of the pages that are not same-filled (median and 99th
 * percentile; every page is checked against the image), once in index
 * order and once in a random order (a grouped page read after a page of
 * another group must decompress its whole group; in index order the
 * reading thread's cached group serves the next pages).  Ratios against
 * lz4 and zstd close the report.  Output: a table on stdout and, with -j,
 * one JSON object.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zram/slot.h"
#include "zram/zram.h"

#include "bench-util.h"
#include "image-gen.h"

#define PAGE IMGEN_PAGE_SIZE

static unsigned char *img;
static uint64_t npages, image_bytes;

struct row {
  char name[32];
  enum zcomp_algo algo;
  int level;
  int recomp_level;           /* 0: no recompression */
  int group_level;            /* 0: no groups; else zstd's level for them */
  /* Results. */
  double write_ns;            /* CPU per page written */
  double recomp_ns;           /* CPU per page attempted */
  uint64_t attempted, recompressed;
  uint64_t mem_used, compr;   /* bytes, after compaction */
  uint64_t real_pages;        /* pages read (not same-filled) */
  double read_p50_us, read_p99_us;
  double rand_p50_us, rand_p99_us; /* the same, pages in a random order */
};

/* Read the real pages in the order given, timing each, checking each. */
static int
read_pages (struct zram *z, const struct row *r, const uint64_t *order,
            uint64_t n, double *lat, double *p50, double *p99);

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
wall_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
run_row (struct row *r)
{
  struct zram_config c = {
    .disksize = image_bytes, .algo = r->algo, .level = r->level,
    .pool = ZPOOL_ZS,
  };
  struct zram *z;
  struct zram_stats st;
  double t0, *lat;
  uint64_t i, n = 0, word, *order = NULL, rnd = 0x9e3779b97f4a7c15ULL;
  int ret = -1;

  if (r->group_level) {
    c.group_pages = 16;
    c.group_algo.algo = ZCOMP_ZSTD;
    c.group_algo.level = r->group_level;
  }
  if (r->recomp_level) {
    c.recomp[0].algo = ZCOMP_ZSTD;
    c.recomp[0].level = r->recomp_level;
    c.nr_recomp = 1;
  }
  z = zram_create (&c);
  lat = malloc (npages * sizeof *lat);
  if (z == NULL || lat == NULL) {
    fprintf (stderr, "bench-recomp: %s: cannot create the device: %m\n", r->name);
    goto out;
  }
  t0 = bench_cpu_now ();
  for (i = 0; i < npages; i++)
    if (zram_write (z, img + i * PAGE, PAGE, i * PAGE) == -1) {
      fprintf (stderr, "bench-recomp: %s: write page %" PRIu64 ": %m\n", r->name, i);
      goto out;
    }
  r->write_ns = (bench_cpu_now () - t0) * 1e9 / (double) npages;

  if (r->recomp_level) {
    struct zram_recomp_req req = { .type = ZRAM_RECOMP_IDLE };
    struct zram_recomp_result res;

    if (zram_mark_idle (z, 0, NULL) == -1) {
      fprintf (stderr, "bench-recomp: %s: idle all: %m\n", r->name);
      goto out;
    }
    t0 = bench_cpu_now ();
    if (zram_recompress (z, &req, &res) == -1) {
      fprintf (stderr, "bench-recomp: %s: recompress: %m\n", r->name);
      goto out;
    }
    r->attempted = res.attempted;
    r->recompressed = res.recompressed;
    r->recomp_ns = res.attempted
      ? (bench_cpu_now () - t0) * 1e9 / (double) res.attempted : 0;
  }
  if (r->group_level) {
    struct zram_group_req req = { .min_age_s = 0 };
    struct zram_group_result res;

    if (zram_mark_idle (z, 0, NULL) == -1) {
      fprintf (stderr, "bench-recomp: %s: idle all: %m\n", r->name);
      goto out;
    }
    t0 = bench_cpu_now ();
    if (zram_group (z, &req, &res) == -1) {
      fprintf (stderr, "bench-recomp: %s: group: %m\n", r->name);
      goto out;
    }
    r->attempted = res.scanned;
    r->recompressed = res.grouped;
    r->recomp_ns = res.scanned
      ? (bench_cpu_now () - t0) * 1e9 / (double) res.scanned : 0;
  }
  zram_compact (z);
  zram_get_stats (z, &st);
  r->mem_used = st.mem_used_total;
  r->compr = st.compr_data_size;

  order = malloc (npages * sizeof *order);
  if (order == NULL)
    goto out;
  for (i = 0; i < npages; i++)
    if (!page_same_filled (img + i * PAGE, &word))
      order[n++] = i;
  if (read_pages (z, r, order, n, lat, &r->read_p50_us, &r->read_p99_us) == -1)
    goto out;
  /* The same pages shuffled (Fisher-Yates, a fixed xorshift). */
  for (i = n; i > 1; i--) {
    uint64_t j, tmp;

    rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17;
    j = rnd % i;
    tmp = order[i - 1]; order[i - 1] = order[j]; order[j] = tmp;
  }
  if (read_pages (z, r, order, n, lat, &r->rand_p50_us, &r->rand_p99_us) == -1)
    goto out;
  r->real_pages = n;
  ret = 0;
 out:
  free (order);
  free (lat);
  if (z)
    zram_destroy (z);
  return ret;
}

static int
read_pages (struct zram *z, const struct row *r, const uint64_t *order,
            uint64_t n, double *lat, double *p50, double *p99)
{
  unsigned char buf[PAGE];

  for (uint64_t k = 0; k < n; k++) {
    uint64_t i = order[k];
    double t = wall_us ();

    if (zram_read (z, buf, PAGE, i * PAGE) == -1) {
      fprintf (stderr, "bench-recomp: %s: read page %" PRIu64 ": %m\n", r->name, i);
      return -1;
    }
    lat[k] = wall_us () - t;
    if (memcmp (buf, img + i * PAGE, PAGE) != 0) {
      fprintf (stderr, "bench-recomp: %s: page %" PRIu64 " read back wrong\n",
               r->name, i);
      return -1;
    }
  }
  qsort (lat, n, sizeof *lat, cmp_double);
  *p50 = n ? lat[n / 2] : 0;
  *p99 = n ? lat[n * 99 / 100] : 0;
  return 0;
}

static void
usage (void)
{
  fprintf (stderr, "usage: bench-recomp [-s SIZE] [-S SEED] [-i IMAGE] "
           "[-l ZSTD_LEVEL] [-a LZ4_ACCEL] [-g GROUP_LEVELS] [-j JSONFILE]\n");
}

int
main (int argc, char *argv[])
{
  const char *image = NULL, *json = NULL;
  uint64_t seed = IMGEN_DEFAULT_SEED;
  int64_t size = 64 << 20;
  int level = 19, accel = 1000, ch;
  const char *group_levels = "9,19";
  struct row rows[8];
  size_t k, nrows = 4;
  FILE *fp;

  while ((ch = getopt (argc, argv, "s:S:i:l:a:g:j:h")) != -1) {
    switch (ch) {
    case 's':
      size = bench_parse_size (optarg);
      if (size < PAGE) {
        fprintf (stderr, "bench-recomp: bad size '%s'\n", optarg);
        return 2;
      }
      break;
    case 'S': seed = strtoull (optarg, NULL, 0); break;
    case 'i': image = optarg; break;
    case 'l': level = atoi (optarg); break;
    case 'a': accel = atoi (optarg); break;
    case 'g': group_levels = optarg; break;
    case 'j': json = optarg; break;
    default: usage (); return ch == 'h' ? 0 : 2;
    }
  }
  image_bytes = (uint64_t) size & ~(uint64_t) (PAGE - 1);
  img = bench_load_image (image, &image_bytes, seed, 1);
  if (img == NULL)
    return 1;
  npages = image_bytes / PAGE;

  memset (rows, 0, sizeof rows);
  snprintf (rows[0].name, sizeof rows[0].name, "lz4");
  rows[0].algo = ZCOMP_LZ4;
  snprintf (rows[1].name, sizeof rows[1].name, "zstd");
  rows[1].algo = ZCOMP_ZSTD;
  snprintf (rows[2].name, sizeof rows[2].name, "lz4+zstd:%d", level);
  rows[2].algo = ZCOMP_LZ4;
  rows[2].recomp_level = level;
  snprintf (rows[3].name, sizeof rows[3].name, "lz4:%d+zstd:%d", accel, level);
  rows[3].algo = ZCOMP_LZ4;
  rows[3].level = accel;
  rows[3].recomp_level = level;
  for (const char *p = group_levels; *p && nrows < sizeof rows / sizeof rows[0];
       p = strchr (p, ',') ? strchr (p, ',') + 1 : p + strlen (p)) {
    struct row *r = &rows[nrows++];

    r->algo = ZCOMP_LZ4;
    r->group_level = atoi (p);
    if (r->group_level < 1 || r->group_level > 22) {
      fprintf (stderr, "bench-recomp: -g: '%s' is not a list of zstd levels "
               "(1-22), e.g. 9,19\n", group_levels);
      return 2;
    }
    snprintf (r->name, sizeof r->name, "lz4+group:zstd:%d", r->group_level);
  }

  printf ("image: %" PRIu64 " bytes (%" PRIu64 " pages)\n", image_bytes, npages);
  printf ("(for groups: recomp_ns is CPU per page scanned, attempted the "
          "pages scanned, smaller the pages grouped)\n");
  printf ("%-19s %9s %11s %9s %9s %10s %10s %9s %9s %9s %9s\n", "device",
          "write_ns", "recomp_ns", "attempted", "smaller", "pool/byte",
          "compr/byte", "read_p50", "read_p99", "rand_p50", "rand_p99");
  for (k = 0; k < nrows; k++) {
    struct row *r = &rows[k];

    if (run_row (r) == -1)
      return 1;
    printf ("%-19s %9.0f %11.0f %9" PRIu64 " %9" PRIu64 " %10.4f %10.4f "
            "%7.2fus %7.2fus %7.2fus %7.2fus\n",
            r->name, r->write_ns, r->recomp_ns, r->attempted, r->recompressed,
            (double) r->mem_used / image_bytes, (double) r->compr / image_bytes,
            r->read_p50_us, r->read_p99_us, r->rand_p50_us, r->rand_p99_us);
    fflush (stdout);
  }
  printf ("\n%s pool vs lz4: %.3f (target <= 0.75); vs zstd: %.3f (target <= 1)\n",
          rows[2].name, (double) rows[2].mem_used / rows[0].mem_used,
          (double) rows[2].mem_used / rows[1].mem_used);
  printf ("%s pool vs lz4: %.3f; vs zstd: %.3f; its write CPU vs lz4: %.3f\n",
          rows[3].name, (double) rows[3].mem_used / rows[0].mem_used,
          (double) rows[3].mem_used / rows[1].mem_used,
          rows[3].write_ns / rows[0].write_ns);
  printf ("read p50 of %s vs lz4: %.2fx (%" PRIu64 " of %" PRIu64 " pages read "
          "were recompressed)\n", rows[2].name,
          rows[2].read_p50_us / rows[0].read_p50_us, rows[2].recompressed,
          rows[2].real_pages);
  for (k = 4; k < nrows; k++)
    printf ("%s: pool vs lz4 %.3f, vs %s %.3f; random read p50 vs lz4 "
            "%.2fx, vs %s %.2fx\n", rows[k].name,
            (double) rows[k].mem_used / rows[0].mem_used, rows[2].name,
            (double) rows[k].mem_used / rows[2].mem_used,
            rows[k].rand_p50_us / rows[0].rand_p50_us, rows[2].name,
            rows[k].rand_p50_us / rows[2].rand_p50_us);

  if (json) {
    fp = fopen (json, "w");
    if (fp == NULL) {
      perror (json);
      return 1;
    }
    fprintf (fp, "{\"image_bytes\": %" PRIu64 ", \"rows\": [", image_bytes);
    for (k = 0; k < nrows; k++) {
      const struct row *r = &rows[k];

      fprintf (fp, "%s{\"name\": \"%s\", \"write_ns\": %.1f, \"recomp_ns\": %.1f, "
               "\"attempted\": %" PRIu64 ", \"recompressed\": %" PRIu64 ", "
               "\"mem_used\": %" PRIu64 ", \"compr\": %" PRIu64 ", "
               "\"read_pages\": %" PRIu64 ", \"read_p50_us\": %.3f, "
               "\"read_p99_us\": %.3f, \"rand_p50_us\": %.3f, "
               "\"rand_p99_us\": %.3f}", k ? ", " : "", r->name, r->write_ns,
               r->recomp_ns, r->attempted, r->recompressed, r->mem_used,
               r->compr, r->real_pages, r->read_p50_us, r->read_p99_us,
               r->rand_p50_us, r->rand_p99_us);
    }
    fprintf (fp, "]}\n");
    fclose (fp);
  }
  free (img);
  return 0;
}
