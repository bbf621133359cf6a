/* nbdkit-zram benchmarks: the core's write and read path per page, without
 * NBD, next to the raw codec on the same pages.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   bench-core [-s SIZE] [-S SEED] [-i IMAGE] [-r REPS] [-t THREADS] [-c CONFIG]
 *              [-j JSONFILE]
 *
 * For each configuration (lz4 and zstd, pool zs and malloc) and each rep, a
 * fresh device the size of the image is created; then, timed separately:
 *
 *   write      every page once with zram_write (4 KiB, in order; with
 *              THREADS > 1 the image is split in THREADS contiguous parts
 *              written concurrently)
 *   read       every page with zram_read, checked against the image
 *   overwrite  every page again (frees the old object first)
 *   *_real     write and read again on a fresh device, only the pages that
 *              are not same-filled: the pages the device must compress
 *
 * Next to them: raw LZ4_compress_default / ZSTD_compressCCtx and their
 * decompression on the same pages, and zcomp_compress (the core's codec
 * layer), so the distance between the device path and the codec is
 * visible.  Times are process CPU time (all threads), not wall time, so
 * that other load on the machine is not charged to us.  After the first write the device statistics (compression ratio,
 * allocator overhead) are recorded.  Output: a table on stdout and, with -j,
 * one JSON object.  -c runs one configuration only (lz4-zs, lz4-malloc,
 * zstd-zs, lz4-zs-reserve: lz4-zs with the reserve mlock=true gives the
 * plugin), e.g. under valgrind --tool=callgrind.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <lz4.h>
#include <zstd.h>

#include "zram/zcomp.h"
#include "zram/zram.h"
#include "zram/slot.h"

#include "bench-util.h"
#include "image-gen.h"

#define PAGE IMGEN_PAGE_SIZE
#define MAX_REPS 16
#define MAX_THREADS 16

static unsigned char *img;
static uint64_t npages;

/* Page lists: every page, and the pages that are not same-filled (the
 * pages the device must really compress).
 */
struct pagelist {
  uint64_t *idx;
  uint64_t n;
};
static struct pagelist all_pages, real_pages;

/* --- timing helpers ------------------------------------------------------- */

struct series {
  double v[MAX_REPS];
  int n;
};

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static void
series_summary (const struct series *s, double *med, double *min, double *max)
{
  double t[MAX_REPS];

  memcpy (t, s->v, sizeof (double) * (size_t) s->n);
  qsort (t, (size_t) s->n, sizeof (double), cmp_double);
  *min = t[0];
  *max = t[s->n - 1];
  *med = s->n % 2 ? t[s->n / 2] : (t[s->n / 2 - 1] + t[s->n / 2]) / 2;
}

/* --- the device path ------------------------------------------------------ */

enum op { OP_WRITE, OP_READ };

struct worker {
  pthread_t tid;
  struct zram *zram;
  enum op op;
  const uint64_t *idx;          /* pages idx[0 .. n) */
  uint64_t n;
  int failed;
};

static void *
worker_run (void *arg)
{
  struct worker *w = arg;
  unsigned char buf[PAGE];
  uint64_t i;

  for (uint64_t j = 0; j < w->n; j++) {
    i = w->idx[j];
    if (w->op == OP_WRITE) {
      if (zram_write (w->zram, img + i * PAGE, PAGE, i * PAGE) == -1) {
        fprintf (stderr, "bench-core: zram_write page %" PRIu64 ": %m\n", i);
        w->failed = 1;
        return NULL;
      }
    }
    else {
      if (zram_read (w->zram, buf, PAGE, i * PAGE) == -1) {
        fprintf (stderr, "bench-core: zram_read page %" PRIu64 ": %m\n", i);
        w->failed = 1;
        return NULL;
      }
      if (memcmp (buf, img + i * PAGE, PAGE) != 0) {
        fprintf (stderr, "bench-core: page %" PRIu64 " read back wrong\n", i);
        w->failed = 1;
        return NULL;
      }
    }
  }
  return NULL;
}

/* Minor page faults and kernel CPU time (ns) of the last device_pass,
 * per page.
 */
static double last_faults_per_page, last_sys_ns_per_page;

static long
minor_faults (double *sys_seconds)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  *sys_seconds = (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec * 1e-6;
  return ru.ru_minflt;
}

/* Run op over the pages of pl with nthreads (each thread a contiguous part
 * of the list); returns ns per page or -1.
 */
static double
device_pass (struct zram *zram, enum op op, int nthreads, const struct pagelist *pl)
{
  struct worker w[MAX_THREADS];
  double t0, t1;
  int i, failed = 0;
  double s0, s1;
  long f0 = minor_faults (&s0);

  t0 = bench_cpu_now ();
  for (i = 0; i < nthreads; i++) {
    w[i] = (struct worker) {
      .zram = zram, .op = op,
      .idx = pl->idx + pl->n * (uint64_t) i / (uint64_t) nthreads,
      .n = pl->n * (uint64_t) (i + 1) / (uint64_t) nthreads
           - pl->n * (uint64_t) i / (uint64_t) nthreads,
    };
    if (nthreads == 1)
      worker_run (&w[i]);
    else if (pthread_create (&w[i].tid, NULL, worker_run, &w[i]) != 0) {
      perror ("pthread_create");
      exit (1);
    }
  }
  for (i = 0; i < nthreads; i++) {
    if (nthreads > 1)
      pthread_join (w[i].tid, NULL);
    failed |= w[i].failed;
  }
  t1 = bench_cpu_now ();
  last_faults_per_page = (double) (minor_faults (&s1) - f0) / (double) pl->n;
  last_sys_ns_per_page = (s1 - s0) * 1e9 / (double) pl->n;
  return failed ? -1 : (t1 - t0) * 1e9 / (double) pl->n;
}

/* --- raw codecs on the same pages ----------------------------------------- */

enum raw { RAW_LZ4, RAW_ZSTD, RAW_ZCOMP };

/* Compress every page of pl, then decompress them.  Sets *comp_ns and
 * *decomp_ns per page.  The output area is touched before the clock starts
 * so that page faults are not charged to the codec.
 */
static int
raw_pass (enum raw kind, enum zcomp_algo algo, const struct pagelist *pl,
          double *comp_ns, double *decomp_ns)
{
  const int cap = LZ4_compressBound (PAGE);
  unsigned char *out = malloc (npages * (uint64_t) cap);
  int *lens = malloc (npages * sizeof *lens);
  unsigned char back[PAGE];
  ZSTD_CCtx *cctx = ZSTD_createCCtx ();
  ZSTD_DCtx *dctx = ZSTD_createDCtx ();
  struct zcomp *zc = zcomp_create (algo, 0);
  struct zcomp_scratch *scratch = zcomp_scratch_create ();
  int level = zc ? zcomp_get_level (zc) : 0;
  double t0, t1, t2;
  uint64_t i;
  int ret = -1;

  if (!out || !lens || !cctx || !dctx || !zc || !scratch) {
    fprintf (stderr, "bench-core: raw codec setup failed\n");
    goto out;
  }
  memset (out, 0, npages * (uint64_t) cap);
  t0 = bench_cpu_now ();
  for (uint64_t j = 0; j < pl->n; j++) {
    const unsigned char *src = img + pl->idx[j] * PAGE;
    unsigned char *dst = out + j * (uint64_t) cap;

    switch (kind) {
    case RAW_LZ4:
      lens[j] = LZ4_compress_default ((const char *) src, (char *) dst, PAGE, cap);
      break;
    case RAW_ZSTD: {
      size_t r = ZSTD_compressCCtx (cctx, dst, (size_t) cap, src, PAGE,
                                    level ? level : ZSTD_CLEVEL_DEFAULT);
      lens[j] = ZSTD_isError (r) ? 0 : (int) r;
      break;
    }
    default:
      lens[j] = zcomp_compress (zc, scratch, src, PAGE, dst, (size_t) cap);
      break;
    }
    if (lens[j] <= 0) {
      fprintf (stderr, "bench-core: raw compress failed on page %" PRIu64 "\n", pl->idx[j]);
      goto out;
    }
  }
  t1 = bench_cpu_now ();
  for (i = 0; i < pl->n; i++) {
    const unsigned char *src = out + i * (uint64_t) cap;
    int ok;

    switch (kind) {
    case RAW_LZ4:
      ok = LZ4_decompress_safe ((const char *) src, (char *) back, lens[i], PAGE) == PAGE;
      break;
    case RAW_ZSTD:
      ok = ZSTD_decompressDCtx (dctx, back, PAGE, src, (size_t) lens[i]) == PAGE;
      break;
    default:
      ok = zcomp_decompress (zc, scratch, src, (size_t) lens[i], back, PAGE) == 0;
      break;
    }
    if (!ok) {
      fprintf (stderr, "bench-core: raw decompress failed on page %" PRIu64 "\n", i);
      goto out;
    }
  }
  t2 = bench_cpu_now ();
  *comp_ns = (t1 - t0) * 1e9 / (double) pl->n;
  *decomp_ns = (t2 - t1) * 1e9 / (double) pl->n;
  ret = 0;
 out:
  if (zc)
    zcomp_destroy (zc);
  zcomp_scratch_destroy (scratch);
  ZSTD_freeDCtx (dctx);
  ZSTD_freeCCtx (cctx);
  free (lens);
  free (out);
  return ret;
}

/* --- main ----------------------------------------------------------------- */

struct config {
  const char *name;
  enum zcomp_algo algo;
  enum zpool_kind pool;
  enum raw raw;
  bool reserve;               /* the default reserve, as with mlock=true */
};

static const struct config configs[] = {
  { "lz4-zs", ZCOMP_LZ4, ZPOOL_ZS, RAW_LZ4, false },
  { "lz4-malloc", ZCOMP_LZ4, ZPOOL_MALLOC, RAW_LZ4, false },
  { "zstd-zs", ZCOMP_ZSTD, ZPOOL_ZS, RAW_ZSTD, false },
  /* Its refill thread's CPU time counts: times are the process's. */
  { "lz4-zs-reserve", ZCOMP_LZ4, ZPOOL_ZS, RAW_LZ4, true },
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

/* Metrics, ns per page.  "_real" ones cover only the pages that are not
 * same-filled: the strict comparison of the device path with the codec,
 * since the device stores same-filled pages without compressing them.
 */
enum metric {
  M_WRITE, M_READ, M_OVERWRITE, M_RAW_C, M_RAW_D,
  M_WRITE_REAL, M_READ_REAL, M_RAW_C_REAL, M_RAW_D_REAL, M_ZCOMP_C, M_ZCOMP_D,
  NMETRICS
};
static const char *const metric_names[NMETRICS] = {
  "write", "read", "overwrite", "raw_compress", "raw_decompress",
  "write_real", "read_real", "raw_compress_real", "raw_decompress_real",
  "zcomp_compress_real", "zcomp_decompress_real",
};

/* The device's own same-filled test, so "ideal" matches what it stores. */
static bool
page_same (const unsigned char *p)
{
  uint64_t word;

  return page_same_filled (p, &word);
}

static struct zram *
make_device (const struct config *cf, uint64_t size)
{
  struct zram_config zc = {
    .disksize = size, .algo = cf->algo, .level = 0, .pool = cf->pool,
    /* A long wait: here memory is to be had, and a write must not fail
     * because the refill thread was not scheduled in time.
     */
    .reserve = cf->reserve ? zram_reserve_default (size) : 0,
    .reserve_wait_ms = 10000,
  };
  struct zram *zram = zram_create (&zc);

  if (zram == NULL) {
    fprintf (stderr, "bench-core: zram_create (%s): %m\n", cf->name);
    exit (1);
  }
  if (zram_start (zram) == -1) {
    fprintf (stderr, "bench-core: zram_start (%s): %m\n", cf->name);
    exit (1);
  }
  return zram;
}

int
main (int argc, char *argv[])
{
  int64_t size = 64 << 20;
  uint64_t seed = IMGEN_DEFAULT_SEED;
  const char *image = NULL, *json = NULL, *only = NULL;
  int reps = 3, nthreads = 1, c, rep;
  size_t ci;
  struct series res[NCONFIGS][NMETRICS];
  struct zram_stats stats[NCONFIGS];
  double write_faults[NCONFIGS], write_sys[NCONFIGS];
  FILE *jf = NULL;
  bool first = true;

  while ((c = getopt (argc, argv, "s:S:i:r:t:c:j:h")) != -1) {
    switch (c) {
    case 's': size = bench_parse_size (optarg); break;
    case 'S': seed = strtoull (optarg, NULL, 0); break;
    case 'i': image = optarg; break;
    case 'r': reps = atoi (optarg); break;
    case 't': nthreads = atoi (optarg); break;
    case 'j': json = optarg; break;
    case 'c': only = optarg; break;
    default:
      fprintf (stderr, "usage: bench-core [-s SIZE] [-S SEED] [-i IMAGE] [-r REPS]"
               " [-t THREADS] [-c CONFIG] [-j JSON]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (only) {
    for (ci = 0; ci < NCONFIGS && strcmp (only, configs[ci].name) != 0; ci++)
      ;
    if (ci == NCONFIGS) {
      fprintf (stderr, "bench-core: unknown config %s\n", only);
      return 2;
    }
  }
  if (reps < 1 || reps > MAX_REPS || nthreads < 1 || nthreads > MAX_THREADS
      || size <= 0 || size % PAGE != 0) {
    fprintf (stderr, "bench-core: bad -r (1..%d), -t (1..%d) or -s (multiple of 4096)\n",
             MAX_REPS, MAX_THREADS);
    return 2;
  }
  {
    uint64_t sz = (uint64_t) size;
    img = bench_load_image (image, &sz, seed, 0);
    if (img == NULL)
      return 1;
    size = (int64_t) sz;
  }
  npages = (uint64_t) size / PAGE;
  if (npages == 0) {
    fprintf (stderr, "bench-core: empty image\n");
    return 2;
  }
  all_pages.idx = malloc (npages * sizeof (uint64_t));
  real_pages.idx = malloc (npages * sizeof (uint64_t));
  if (!all_pages.idx || !real_pages.idx) {
    perror ("malloc");
    return 1;
  }
  for (uint64_t i = 0; i < npages; i++) {
    all_pages.idx[all_pages.n++] = i;
    if (!page_same (img + i * PAGE))
      real_pages.idx[real_pages.n++] = i;
  }
  if (real_pages.n == 0) {
    fprintf (stderr, "bench-core: the image has only same-filled pages\n");
    return 2;
  }

  memset (res, 0, sizeof res);
  for (rep = 0; rep < reps; rep++) {
    for (ci = 0; ci < NCONFIGS; ci++) {
      const struct config *cf = &configs[ci];
      struct zram *zram;
      double v[NMETRICS];
      int m;

      if (only && strcmp (only, cf->name) != 0)
        continue;
      zram = make_device (cf, (uint64_t) size);

      v[M_WRITE] = device_pass (zram, OP_WRITE, nthreads, &all_pages);
      if (rep == 0) {
        zram_get_stats (zram, &stats[ci]);
        write_faults[ci] = last_faults_per_page;
        write_sys[ci] = last_sys_ns_per_page;
      }
      v[M_READ] = device_pass (zram, OP_READ, nthreads, &all_pages);
      v[M_OVERWRITE] = device_pass (zram, OP_WRITE, nthreads, &all_pages);
      zram_destroy (zram);
      zram = make_device (cf, (uint64_t) size);
      v[M_WRITE_REAL] = device_pass (zram, OP_WRITE, nthreads, &real_pages);
      v[M_READ_REAL] = device_pass (zram, OP_READ, nthreads, &real_pages);
      zram_destroy (zram);
      for (m = 0; m < M_RAW_C; m++)
        if (v[m] < 0)
          return 1;
      if (v[M_WRITE_REAL] < 0 || v[M_READ_REAL] < 0)
        return 1;
      if (raw_pass (cf->raw, cf->algo, &all_pages, &v[M_RAW_C], &v[M_RAW_D]) == -1 ||
          raw_pass (cf->raw, cf->algo, &real_pages, &v[M_RAW_C_REAL], &v[M_RAW_D_REAL]) == -1 ||
          raw_pass (RAW_ZCOMP, cf->algo, &real_pages, &v[M_ZCOMP_C], &v[M_ZCOMP_D]) == -1)
        return 1;
      for (m = 0; m < NMETRICS; m++)
        res[ci][m].v[res[ci][m].n++] = v[m];
    }
  }

  printf ("bench-core: %" PRIu64 " pages (%" PRIu64 " MiB), %d thread(s), median of %d reps\n",
          npages, (uint64_t) size >> 20, nthreads, reps);
  printf ("all %" PRIu64 " pages:              | %" PRIu64 " pages not same-filled:\n",
          all_pages.n, real_pages.n);
  printf ("%-14s %7s %7s %7s %7s %7s | %7s %7s %7s %7s %7s %7s | %7s %7s | %6s %8s %6s\n",
          "config", "write", "read", "overwr", "raw-c", "raw-d",
          "write", "read", "raw-c", "raw-d", "zcomp-c", "zcomp-d",
          "w/raw", "r/raw", "ratio", "overhead", "flt/pg");
  if (json) {
    jf = fopen (json, "w");
    if (jf == NULL) {
      perror (json);
      return 1;
    }
    fprintf (jf, "{\"pages\": %" PRIu64 ", \"threads\": %d, \"reps\": %d, \"configs\": {",
             npages, nthreads, reps);
  }
  for (ci = 0; ci < NCONFIGS; ci++) {
    double med[NMETRICS], min[NMETRICS], max[NMETRICS];
    const struct zram_stats *s = &stats[ci];

    if (only && strcmp (only, configs[ci].name) != 0)
      continue;
    double ratio = s->mem_used_total ? (double) size / (double) s->mem_used_total : 0;
    double overhead = s->compr_data_size
      ? (double) s->mem_used_total / (double) s->compr_data_size - 1 : 0;
    int m;

    for (m = 0; m < NMETRICS; m++)
      series_summary (&res[ci][m], &med[m], &min[m], &max[m]);
    printf ("%-14s %7.0f %7.0f %7.0f %7.0f %7.0f | %7.0f %7.0f %7.0f %7.0f %7.0f %7.0f"
            " | %7.3f %7.3f | %6.3f %7.1f%% %6.2f\n",
            configs[ci].name, med[M_WRITE], med[M_READ], med[M_OVERWRITE],
            med[M_RAW_C], med[M_RAW_D], med[M_WRITE_REAL], med[M_READ_REAL],
            med[M_RAW_C_REAL], med[M_RAW_D_REAL], med[M_ZCOMP_C], med[M_ZCOMP_D],
            med[M_WRITE_REAL] / med[M_RAW_C_REAL], med[M_READ_REAL] / med[M_RAW_D_REAL],
            ratio, 100 * overhead, write_faults[ci]);
    if (jf) {
      fprintf (jf, "%s\"%s\": {\"ns_per_page\": {", first ? "" : ", ", configs[ci].name);
      first = false;
      for (m = 0; m < NMETRICS; m++)
        fprintf (jf, "%s\"%s\": [%.1f, %.1f, %.1f]", m ? ", " : "",
                 metric_names[m], med[m], min[m], max[m]);
      fprintf (jf, "}, \"write_over_raw_compress\": %.4f, \"read_over_raw_decompress\": %.4f"
               ", \"write_over_raw_compress_real\": %.4f, \"read_over_raw_decompress_real\": %.4f"
               ", \"stats\": {\"orig_data_size\": %" PRIu64 ", \"compr_data_size\": %" PRIu64
               ", \"mem_used_total\": %" PRIu64 ", \"same_pages\": %" PRIu64
               ", \"huge_pages\": %" PRIu64 "}, \"ratio_mem_used\": %.4f"
               ", \"allocator_overhead\": %.4f, \"write_minor_faults_per_page\": %.4f, \"write_sys_ns_per_page\": %.1f}",
               med[M_WRITE] / med[M_RAW_C], med[M_READ] / med[M_RAW_D],
               med[M_WRITE_REAL] / med[M_RAW_C_REAL], med[M_READ_REAL] / med[M_RAW_D_REAL],
               s->orig_data_size, s->compr_data_size, s->mem_used_total,
               s->same_pages, s->huge_pages, ratio, overhead, write_faults[ci], write_sys[ci]);
    }
  }
  printf ("(ns per page; w/raw and r/raw compare the device with the raw codec on the\n"
          " pages it must compress; ratio = image bytes / mem_used_total;\n"
          " overhead = mem_used_total / compr_data_size - 1;\n"
          " flt/pg = minor page faults per page in the first write)\n");
  if (jf) {
    fprintf (jf, "}}\n");
    if (fclose (jf) == EOF) {
      perror (json);
      return 1;
    }
  }
  free (real_pages.idx);
  free (all_pages.idx);
  free (img);
  return 0;
}
