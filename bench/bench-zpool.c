/* nbdkit-zram benchmark: the zs slab allocator against the malloc pool.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Objects are real: a memory-like image (bench/image-gen.h) is compressed
 * page by page with LZ4, same-filled pages are dropped (the device stores
 * them without allocating), pages compressing to the pool's huge threshold
 * or more are stored as 4096-byte objects, as the device does.  For each
 * pool, in the same process:
 *
 *   fill     allocate and write every object; report total/live (the pool's
 *            mem_used_total over the bytes asked for) and RSS growth
 *   free     free a random half, compact; report total/live and RSS again
 *   speed    alloc + free of the same size mix in batches, ns per object
 *            pair, against plain glibc malloc + free; map + unmap ns
 *
 * total_bytes of the malloc pool is malloc_usable_size plus 8 bytes of
 * chunk header per block (see src/zpool-malloc.c): a lower bound, since
 * holes inside glibc's heap are not counted.  The RSS columns show them.
 *
 * Usage: bench-zpool [--pages N] [--seed S] [--threads T] [--smoke] [--check]
 *                    [--no-speed]
 *   --smoke  a small run (< 5 s) that only checks the program works
 *   --check  exit 1 if zs misses its targets (fill <= 1.03, after free and
 *            compaction <= 1.05, RSS falls)
 */
#include <inttypes.h>
#include <lz4.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zram/zpool.h"
#include "bench-util.h"
#include "image-gen.h"

#define PAGE IMGEN_PAGE_SIZE

/* The compressed image: object i is sizes[i] bytes at data + offs[i]. */
static unsigned char *data;
static uint64_t *offs;
static uint16_t *csize;        /* compressed size (<= LZ4_COMPRESSBOUND) */
static size_t nobj;

static uint64_t
rss (void)
{
  FILE *fp = fopen ("/proc/self/statm", "r");
  unsigned long size, resident = 0;

  if (fp) {
    if (fscanf (fp, "%lu %lu", &size, &resident) != 2)
      resident = 0;
    fclose (fp);
  }
  return (uint64_t) resident * sysconf (_SC_PAGESIZE);
}

static bool
same_filled (const unsigned char *p)
{
  uint64_t w0, w;

  memcpy (&w0, p, 8);
  for (size_t i = 8; i < PAGE; i += 8) {
    memcpy (&w, p + i, 8);
    if (w != w0)
      return false;
  }
  return true;
}

static void
build_image (uint64_t pages, uint64_t seed)
{
  struct imgen_mix mix;
  struct imgen_layout l;
  unsigned char page[PAGE];
  char out[LZ4_COMPRESSBOUND (PAGE)];
  uint64_t run, used = 0, same = 0;

  imgen_default_mix (&mix);
  if (imgen_layout_init (&l, seed, &mix) == -1)
    abort ();
  data = malloc (pages * PAGE);
  offs = malloc (pages * sizeof *offs);
  csize = malloc (pages * sizeof *csize);
  if (!data || !offs || !csize) {
    perror ("malloc");
    exit (1);
  }
  for (uint64_t i = 0; i < pages; i++) {
    enum imgen_kind k = imgen_layout_next (&l, &run);
    int n;

    imgen_page (page, k, seed, run, i);
    if (same_filled (page)) {
      same++;
      continue;
    }
    n = LZ4_compress_default ((const char *) page, out, PAGE, sizeof out);
    if (n <= 0 || n >= PAGE) {          /* incompressible: keep it raw */
      memcpy (out, page, PAGE);
      n = PAGE;
    }
    memcpy (data + used, out, n);
    offs[nobj] = used;
    csize[nobj] = n;
    used += n;
    nobj++;
  }
  printf ("image: %" PRIu64 " pages (%" PRIu64 " MiB), %" PRIu64
          " same-filled, %zu objects, %.1f MiB compressed (LZ4)\n",
          pages, pages * PAGE >> 20, same, nobj, used / 1048576.0);
}

/* The size the device would store for object i in a pool. */
static inline size_t
stored_size (size_t i, size_t huge)
{
  return csize[i] >= huge ? PAGE : csize[i];
}

struct result {
  double fill_ratio, half_ratio;
  uint64_t live_fill, total_fill, live_half, total_half, compacted_pages;
  uint64_t rss_fill, rss_half, rss_trim;   /* RSS growth over the start */
  double fill_s;
  double compact_s;             /* one zpool_compact after the frees */
};

static uint64_t rng_state;

static uint64_t
rnd (void)
{
  uint64_t x = rng_state;

  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  rng_state = x;
  return x * UINT64_C (0x2545F4914F6CDD1D);
}

static int
run_pool (enum zpool_kind kind, uint64_t seed, struct result *r)
{
  struct zpool *pool = zpool_create (kind);
  zpool_handle *h = malloc (nobj * sizeof *h);
  size_t huge, i;
  struct zpool_stats st;
  uint64_t rss0;
  double t;
  int bad = 0;

  if (pool == NULL || h == NULL) {
    perror ("zpool_create");
    exit (1);
  }
  memset (r, 0, sizeof *r);
  huge = zpool_huge_class_size (pool);
  rss0 = rss ();
  t = bench_now ();
  for (i = 0; i < nobj; i++) {
    size_t n = stored_size (i, huge);
    unsigned char *p;

    h[i] = zpool_alloc (pool, n);
    if (h[i] == 0) {
      perror ("zpool_alloc");
      exit (1);
    }
    p = zpool_map (pool, h[i], ZPOOL_MAP_WO);
    memcpy (p, data + offs[i], n < csize[i] ? n : csize[i]);
    zpool_unmap (pool, h[i]);
  }
  r->fill_s = bench_now () - t;
  zpool_get_stats (pool, &st);
  r->live_fill = st.live_bytes;
  r->total_fill = st.total_bytes;
  r->fill_ratio = (double) st.total_bytes / st.live_bytes;
  r->rss_fill = rss () - rss0;

  /* Free a random half, as a swap device or a file system does. */
  rng_state = seed | 1;
  for (i = 0; i < nobj; i++)
    if (rnd () & 1) {
      zpool_free (pool, h[i]);
      h[i] = 0;
    }
  t = bench_now ();
  zpool_compact (pool);
  r->compact_s = bench_now () - t;
  zpool_get_stats (pool, &st);
  r->live_half = st.live_bytes;
  r->total_half = st.total_bytes;
  r->half_ratio = (double) st.total_bytes / st.live_bytes;
  r->compacted_pages = st.pages_compacted;
  r->rss_half = rss () - rss0;
  if (kind == ZPOOL_MALLOC)
    malloc_trim (0);
  r->rss_trim = rss () - rss0;

  /* The survivors must be intact. */
  for (i = 0; i < nobj; i++)
    if (h[i]) {
      size_t n = stored_size (i, huge);
      const unsigned char *p = zpool_map (pool, h[i], ZPOOL_MAP_RO);

      if (memcmp (p, data + offs[i], n < csize[i] ? n : csize[i]) != 0)
        bad++;
      zpool_unmap (pool, h[i]);
      zpool_free (pool, h[i]);
    }
  if (bad)
    fprintf (stderr, "%s: %d objects corrupted\n", zpool_kind_name (kind), bad);
  free (h);
  zpool_destroy (pool);
  return bad;
}

/* --- speed ---------------------------------------------------------------- */

#define BATCH 4096
#define MAX_THREADS 64

struct speed_arg {
  struct zpool *pool;           /* NULL: plain malloc */
  size_t ops;                   /* alloc+free pairs */
  size_t first;                 /* where this thread starts in the sizes */
  double map_ns;
};

static void *
speed_thread (void *arg)
{
  struct speed_arg *a = arg;
  static __thread void *ptr[BATCH];
  static __thread zpool_handle hs[BATCH];
  size_t huge = a->pool ? zpool_huge_class_size (a->pool) : PAGE;
  size_t done = 0, k = a->first, i, j;
  uint64_t x = a->first * 2654435761u + 1;

  while (done < a->ops) {
    for (i = 0; i < BATCH; i++, k = (k + 1) % nobj) {
      size_t n = stored_size (k, huge);

      if (a->pool) {
        hs[i] = zpool_alloc (a->pool, n);
        if (hs[i] == 0)
          abort ();
      }
      else if ((ptr[i] = malloc (n)) == NULL)
        abort ();
    }
    /* Free in a scrambled order (a stride coprime with BATCH). */
    for (i = 0, j = x % BATCH; i < BATCH; i++, j = (j + 2 * (x % 97) + 1) % BATCH) {
      if (a->pool)
        zpool_free (a->pool, hs[j]);
      else
        free (ptr[j]);
    }
    x = x * 6364136223846793005u + 1442695040888963407u;
    done += BATCH;
  }
  return NULL;
}

static double
speed (struct zpool *pool, unsigned threads, size_t ops)
{
  pthread_t t[MAX_THREADS];
  struct speed_arg a[MAX_THREADS];
  double t0 = bench_now ();

  for (unsigned i = 0; i < threads; i++) {
    a[i] = (struct speed_arg) { .pool = pool, .ops = ops / threads,
                                .first = i * (nobj / threads) };
    if (pthread_create (&t[i], NULL, speed_thread, &a[i]) != 0)
      abort ();
  }
  for (unsigned i = 0; i < threads; i++)
    pthread_join (t[i], NULL);
  return (bench_now () - t0) * 1e9 / ops;
}

/* Steady state, the device's write pattern: a pool holding live objects
 * (the whole image's worth), where each step frees a random object and
 * allocates one of the next size.  ns per free+alloc pair.  pool NULL:
 * plain malloc + free.
 */
static double
replace_speed (struct zpool *pool, size_t ops)
{
  size_t n = nobj, huge = pool ? zpool_huge_class_size (pool) : PAGE, i, k;
  zpool_handle *h = malloc (n * sizeof *h);
  uint64_t x = 88172645463325252u;
  double t0;

  for (i = 0; i < n; i++)
    h[i] = pool ? zpool_alloc (pool, stored_size (i, huge))
      : (zpool_handle) (uintptr_t) malloc (stored_size (i, huge));
  t0 = bench_now ();
  for (i = 0, k = 0; i < ops; i++, k = (k + 7) % n) {
    size_t j;

    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    j = x % n;
    if (pool) {
      zpool_free (pool, h[j]);
      h[j] = zpool_alloc (pool, stored_size (k, huge));
    }
    else {
      free ((void *) (uintptr_t) h[j]);
      h[j] = (zpool_handle) (uintptr_t) malloc (stored_size (k, huge));
    }
  }
  t0 = (bench_now () - t0) * 1e9 / ops;
  for (i = 0; i < n; i++)
    if (pool)
      zpool_free (pool, h[i]);
    else
      free ((void *) (uintptr_t) h[i]);
  free (h);
  return t0;
}

/* ns per map + unmap of live objects in a random order. */
static double
map_speed (struct zpool *pool, size_t ops)
{
  size_t n = nobj < 65536 ? nobj : 65536, huge = zpool_huge_class_size (pool);
  zpool_handle *h = malloc (n * sizeof *h);
  volatile unsigned char sink = 0;
  double t0;

  for (size_t i = 0; i < n; i++)
    h[i] = zpool_alloc (pool, stored_size (i, huge));
  t0 = bench_now ();
  for (size_t i = 0; i < ops; i++) {
    zpool_handle x = h[(i * 40503u) % n];
    const unsigned char *p = zpool_map (pool, x, ZPOOL_MAP_RO);

    sink += p[0];
    zpool_unmap (pool, x);
  }
  t0 = (bench_now () - t0) * 1e9 / ops;
  for (size_t i = 0; i < n; i++)
    zpool_free (pool, h[i]);
  free (h);
  (void) sink;
  return t0;
}

int
main (int argc, char *argv[])
{
  uint64_t pages = 65536, seed = IMGEN_DEFAULT_SEED;
  unsigned threads = 2;
  bool smoke = false, check = false, no_speed = false;
  struct result r[2];
  enum zpool_kind kinds[2] = { ZPOOL_ZS, ZPOOL_MALLOC };
  size_t ops;
  int bad = 0;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--pages") == 0 && i + 1 < argc)
      pages = strtoull (argv[++i], NULL, 0);
    else if (strcmp (argv[i], "--seed") == 0 && i + 1 < argc)
      seed = strtoull (argv[++i], NULL, 0);
    else if (strcmp (argv[i], "--threads") == 0 && i + 1 < argc)
      threads = atoi (argv[++i]);
    else if (strcmp (argv[i], "--smoke") == 0)
      smoke = true;
    else if (strcmp (argv[i], "--check") == 0)
      check = true;
    else if (strcmp (argv[i], "--no-speed") == 0)
      no_speed = true;
    else {
      fprintf (stderr, "usage: %s [--pages N] [--seed S] [--threads T] "
               "[--smoke] [--check] [--no-speed]\n", argv[0]);
      return 2;
    }
  }
  if (smoke)
    pages = 4096;
  if (pages == 0 || threads == 0 || threads > MAX_THREADS) {
    fprintf (stderr, "bad --pages or --threads\n");
    return 2;
  }
  build_image (pages, seed);
  if (nobj == 0)
    return 0;

  for (int k = 0; k < 2; k++)
    bad += run_pool (kinds[k], seed, &r[k]);

  printf ("\n%-34s %14s %14s\n", "", "pool=zs", "pool=malloc");
  printf ("%-34s %14.1f %14.1f\n", "fill: live MiB",
          r[0].live_fill / 1048576.0, r[1].live_fill / 1048576.0);
  printf ("%-34s %14.1f %14.1f\n", "fill: total MiB",
          r[0].total_fill / 1048576.0, r[1].total_fill / 1048576.0);
  printf ("%-34s %14.4f %14.4f\n", "fill: total/live",
          r[0].fill_ratio, r[1].fill_ratio);
  printf ("%-34s %14.1f %14.1f\n", "fill: RSS growth MiB",
          r[0].rss_fill / 1048576.0, r[1].rss_fill / 1048576.0);
  printf ("%-34s %14.0f %14.0f\n", "fill: ns per alloc+write",
          r[0].fill_s * 1e9 / nobj, r[1].fill_s * 1e9 / nobj);
  printf ("%-34s %14.4f %14.4f\n", "half freed + compact: total/live",
          r[0].half_ratio, r[1].half_ratio);
  printf ("%-34s %14" PRIu64 " %14s\n", "  pages released by compaction",
          r[0].compacted_pages, "-");
  printf ("%-34s %14.1f %14s\n", "  compaction time ms",
          r[0].compact_s * 1e3, "-");
  printf ("%-34s %14.1f %14.1f\n", "  RSS growth MiB",
          r[0].rss_half / 1048576.0, r[1].rss_half / 1048576.0);
  printf ("%-34s %14s %14.1f\n", "  RSS growth after malloc_trim MiB",
          "-", r[1].rss_trim / 1048576.0);

  ops = smoke ? 65536 : 4 * 1048576;
  if (!no_speed) {
    struct zpool *zs = zpool_create (ZPOOL_ZS);
    struct zpool *mp = zpool_create (ZPOOL_MALLOC);
    double ns_zs1 = speed (zs, 1, ops), ns_mp1 = speed (mp, 1, ops);
    double ns_g1 = speed (NULL, 1, ops);
    double ns_zsn = speed (zs, threads, ops), ns_mpn = speed (mp, threads, ops);
    double ns_gn = speed (NULL, threads, ops);

    printf ("%-34s %14.1f %14.1f   glibc %.1f\n",
            "batch alloc+free ns/obj, 1 thread", ns_zs1, ns_mp1, ns_g1);
    printf ("batch alloc+free ns/obj, %u threads%-2s %14.1f %14.1f   glibc %.1f\n",
            threads, "", ns_zsn, ns_mpn, ns_gn);
    printf ("%-34s %14.1f %14.1f   glibc %.1f\n",
            "steady free+alloc ns/object", replace_speed (zs, ops),
            replace_speed (mp, ops), replace_speed (NULL, ops));
    printf ("%-34s %14.1f %14.1f\n", "map+unmap ns",
            map_speed (zs, ops), map_speed (mp, ops));
    zpool_destroy (zs);
    zpool_destroy (mp);
  }

  if (bad)
    return 1;
  if (check && (r[0].fill_ratio > 1.03 || r[0].half_ratio > 1.05 ||
                r[0].rss_half >= r[0].rss_fill)) {
    printf ("zs missed a target (fill <= 1.03, half <= 1.05, RSS falls)\n");
    return 1;
  }
  return 0;
}
