/* Stress test: recompression and multi-page groups racing writes, partial writes, trims,
 * write-zeroes, zram_reset and compaction on the same pages loses nothing,
 * and leaves no statistic behind.
 *
 * Links the core (no nbdkit).  OWNERS threads each own the pages p with
 * p % OWNERS == their number and keep a model of those pages' bytes: they
 * write whole pages, patch byte ranges, trim and zero, and check every
 * read against the model.  Meanwhile RECOMPRESSORS threads mark pages idle
 * and recompress them (every type, every priority range, in batches),
 * one thread compacts the pool in a loop, and one resets the device now
 * and then (it takes a write lock that the owners hold for reading around
 * each operation, so the model knows a reset zeroed everything; the
 * recompressors and the compactor take no such lock, so they race the
 * reset too).  GROUPERS threads pack idle pages into multi-page groups
 * (zram_group) and take groups apart again (zram_group_dissolve), so that
 * every path a group member goes through (write, partial write, trim,
 * zero, read, reset, compaction, recompression skipping it) races the
 * others.  At the end every page is checked, then the whole device is
 * trimmed and every page counter must be zero.
 *
 * Seeded: RS_SEED; duration RS_SECONDS (default 3); RS_POOL=malloc for
 * the malloc pool.  Meant for the plain,
 * ASan+UBSan and TSan builds.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#define _GNU_SOURCE             /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE           4096u
#define PAGES          1024u    /* 4 MiB device */
#define OWNERS         4
#define RECOMPRESSORS  2
#define GROUPERS       1

static struct zram *z;
static unsigned char (*model)[PAGE];
static pthread_rwlock_t reset_lock;
static bool stop;
static unsigned long long seed0;
static double seconds = 3;

/* Totals over the run (resets clear the device's statistics). */
static uint64_t total_recompressed, total_raced, total_attempted;
static uint64_t total_resets, total_compactions;
static uint64_t total_grouped, total_group_raced, total_ungrouped;

static bool
stopping (void)
{
  return __atomic_load_n (&stop, __ATOMIC_ACQUIRE);
}

/* Page data that compresses to all sorts of sizes: a phrase with some
 * random 16-byte runs, sometimes all random (huge), sometimes one byte.
 */
static void
make_data (unsigned char *buf, size_t n, unsigned long long *r)
{
  static const char phrase[] = "racing the recompressor, page by page. ";
  unsigned kind = test_rand (r) % 10;
  unsigned noise = kind == 0 ? 16 : (unsigned) (test_rand (r) % 8);

  if (kind == 1) {
    memset (buf, (int) test_rand (r), n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (i % 16 == 0 && test_rand (r) % 16 < noise) {
      for (size_t j = i; j < i + 16 && j < n; j++)
        buf[j] = test_rand (r) >> 56;
      i += 15;
    }
    else
      buf[i] = phrase[(i + kind) % (sizeof phrase - 1)];
  }
}

static void
verify (uint32_t p)
{
  unsigned char got[PAGE];

  CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
  if (memcmp (got, model[p], PAGE) != 0) {
    fprintf (stderr, "page %" PRIu32 " differs from the model\n", p);
    abort ();
  }
}

static void *
owner (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg;
  unsigned long long r = seed0 ^ (id + 1) * 0x9e3779b97f4a7c15ULL;
  unsigned char buf[PAGE];

  while (!stopping ()) {
    uint32_t p = (uint32_t) (test_rand (&r) % (PAGES / OWNERS)) * OWNERS + id;
    uint64_t off = (uint64_t) p * PAGE;
    unsigned op = test_rand (&r) % 100;
    size_t a, n;

    pthread_rwlock_rdlock (&reset_lock);
    if (op < 30) {            /* whole page */
      make_data (buf, PAGE, &r);
      CHECK (zram_write (z, buf, PAGE, off) == 0);
      memcpy (model[p], buf, PAGE);
    }
    else if (op < 50) {       /* a byte range inside the page */
      a = test_rand (&r) % PAGE;
      n = 1 + test_rand (&r) % (PAGE - a);
      make_data (buf, n, &r);
      CHECK (zram_write (z, buf, n, off + a) == 0);
      memcpy (model[p] + a, buf, n);
    }
    else if (op < 55) {       /* trim: whole page */
      CHECK (zram_trim (z, PAGE, off) == 0);
      memset (model[p], 0, PAGE);
    }
    else if (op < 60) {       /* write-zeroes of a range */
      a = test_rand (&r) % PAGE;
      n = 1 + test_rand (&r) % (PAGE - a);
      CHECK (zram_discard (z, n, off + a) == 0);
      memset (model[p] + a, 0, n);
    }
    else
      verify (p);
    pthread_rwlock_unlock (&reset_lock);
  }
  return NULL;
}

static void *
recompressor (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg;
  unsigned long long r = seed0 ^ (id + 101) * 0x9e3779b97f4a7c15ULL;
  struct zram_recomp_result res;
  struct zram_recomp_req req;

  while (!stopping ()) {
    unsigned pick = test_rand (&r) % 4;

    if (test_rand (&r) % 3 == 0)
      CHECK (zram_mark_idle (z, 0, NULL) == 0 || errno == EIO);
    memset (&req, 0, sizeof req);
    req.type = 1 + test_rand (&r) % 3;
    req.max_pages = test_rand (&r) % 2 ? 0 : 1 + test_rand (&r) % 64;
    req.start_index = test_rand (&r) % PAGES;
    req.threshold = test_rand (&r) % 4 == 0 ? 1000 : 0;
    req.min_age_s = test_rand (&r) % 4 == 0 ? 1 : 0;
    if (pick < 3) {           /* one priority, or all (3) */
      req.prio_min = req.prio_max = pick == 0 ? 0 : pick;
    }
    if (zram_recompress (z, &req, &res) == -1) {
      /* Only a reset in progress may refuse us. */
      if (errno != EIO) {
        fprintf (stderr, "recompress: %s\n", strerror (errno));
        abort ();
      }
    }
    __atomic_add_fetch (&total_recompressed, res.recompressed, __ATOMIC_RELAXED);
    __atomic_add_fetch (&total_raced, res.raced, __ATOMIC_RELAXED);
    __atomic_add_fetch (&total_attempted, res.attempted, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void *
grouper (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg;
  unsigned long long r = seed0 ^ (id + 201) * 0x9e3779b97f4a7c15ULL;
  struct zram_group_result res;
  struct zram_dissolve_result dres;
  struct zram_group_req req;

  while (!stopping ()) {
    if (test_rand (&r) % 2 == 0)
      CHECK (zram_mark_idle (z, 0, NULL) == 0 || errno == EIO);
    memset (&req, 0, sizeof req);
    req.max_pages = test_rand (&r) % 2 ? 0 : 1 + test_rand (&r) % 64;
    req.start_index = test_rand (&r) % PAGES;
    if (zram_group (z, &req, &res) == -1 && errno != EIO) {
      fprintf (stderr, "group: %s\n", strerror (errno));
      abort ();
    }
    __atomic_add_fetch (&total_grouped, res.grouped, __ATOMIC_RELAXED);
    __atomic_add_fetch (&total_group_raced, res.raced, __ATOMIC_RELAXED);
    if (zram_group_dissolve (z, 1 + test_rand (&r) % 100,
                             test_rand (&r) % 4, false, &dres) == -1 &&
        errno != EIO) {
      fprintf (stderr, "dissolve: %s\n", strerror (errno));
      abort ();
    }
    __atomic_add_fetch (&total_ungrouped, dres.pages, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void *
compactor (void *arg)
{
  (void) arg;
  while (!stopping ()) {
    if (zram_compact (z) >= 0)
      __atomic_add_fetch (&total_compactions, 1, __ATOMIC_RELAXED);
    usleep (2000);
  }
  return NULL;
}

static void *
resetter (void *arg)
{
  (void) arg;
  while (!stopping ()) {
    usleep (150000);
    pthread_rwlock_wrlock (&reset_lock);
    CHECK (zram_reset (z, true, NULL) == 0);
    memset (model, 0, (size_t) PAGES * PAGE);
    pthread_rwlock_unlock (&reset_lock);
    total_resets++;
  }
  return NULL;
}

int
main (void)
{
  static const struct zram_recomp_algo rc[] = {
    { ZCOMP_LZ4HC, 4 }, { ZCOMP_ZSTD, 1 }, { ZCOMP_ZSTD, 9 },
  };
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .level = 4, .pool = ZPOOL_ZS,
                           .nr_recomp = 3, .group_pages = 16,
                           .group_algo = { ZCOMP_ZSTD, 3 } };
  pthread_t owners[OWNERS], recs[RECOMPRESSORS], groupers[GROUPERS], comp, reset;
  struct zram_stats s;
  const char *e;

  pthread_rwlockattr_t ra;

  /* glibc prefers readers by default: the resetter would starve. */
  pthread_rwlockattr_init (&ra);
  pthread_rwlockattr_setkind_np (&ra,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  CHECK (pthread_rwlock_init (&reset_lock, &ra) == 0);
  seed0 = (e = getenv ("RS_SEED")) ? strtoull (e, NULL, 0) : 12345;
  if ((e = getenv ("RS_SECONDS")))
    seconds = atof (e);
  /* pool=malloc frees every object (and group piece) at once: late
   * readers of a freed piece show under ASan, which zs's pages hide.
   */
  if ((e = getenv ("RS_POOL")) && strcmp (e, "malloc") == 0)
    c.pool = ZPOOL_MALLOC;
  memcpy (c.recomp, rc, sizeof rc);
  z = zram_create (&c);
  CHECK (z != NULL);
  model = calloc (PAGES, PAGE);
  CHECK (model != NULL);

  for (unsigned i = 0; i < OWNERS; i++)
    CHECK (pthread_create (&owners[i], NULL, owner, (void *) (uintptr_t) i) == 0);
  for (unsigned i = 0; i < RECOMPRESSORS; i++)
    CHECK (pthread_create (&recs[i], NULL, recompressor,
                           (void *) (uintptr_t) i) == 0);
  for (unsigned i = 0; i < GROUPERS; i++)
    CHECK (pthread_create (&groupers[i], NULL, grouper,
                           (void *) (uintptr_t) i) == 0);
  CHECK (pthread_create (&comp, NULL, compactor, NULL) == 0);
  CHECK (pthread_create (&reset, NULL, resetter, NULL) == 0);
  usleep ((useconds_t) (seconds * 1e6));
  __atomic_store_n (&stop, true, __ATOMIC_RELEASE);
  for (unsigned i = 0; i < OWNERS; i++)
    pthread_join (owners[i], NULL);
  for (unsigned i = 0; i < RECOMPRESSORS; i++)
    pthread_join (recs[i], NULL);
  for (unsigned i = 0; i < GROUPERS; i++)
    pthread_join (groupers[i], NULL);
  pthread_join (comp, NULL);
  pthread_join (reset, NULL);

  /* A last recompression of everything, then every page checked. */
  {
    struct zram_recomp_result res;
    struct zram_recomp_req req = { .type = ZRAM_RECOMP_IDLE };

    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    CHECK (zram_recompress (z, &req, &res) == 0);
    total_recompressed += res.recompressed;
    CHECK (res.raced == 0);     /* nobody else is running now */
  }
  for (uint32_t p = 0; p < PAGES; p++)
    verify (p);

  /* Then everything idle grouped, checked, and taken apart again. */
  {
    struct zram_group_req req = { .min_age_s = 0 };
    struct zram_group_result res;
    struct zram_dissolve_result dres;

    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    CHECK (zram_group (z, &req, &res) == 0);
    CHECK (res.raced == 0);
    total_grouped += res.grouped;
    zram_get_stats (z, &s);
    CHECK (s.group_pages >= res.grouped);
    CHECK (s.compr_data_size >= s.group_compr_size);
    for (uint32_t p = 0; p < PAGES; p++)
      verify (p);
    CHECK (zram_group_dissolve (z, 100, 0, false, &dres) == 0);
    for (uint32_t p = 0; p < PAGES; p++)
      verify (p);
  }

  printf ("seed %llu: %" PRIu64 " attempted, %" PRIu64 " recompressed, "
          "%" PRIu64 " raced, %" PRIu64 " resets, %" PRIu64 " compactions; "
          "%" PRIu64 " pages grouped (%" PRIu64 " raced), %" PRIu64
          " taken out of groups\n",
          seed0, total_attempted, total_recompressed, total_raced,
          total_resets, total_compactions, total_grouped, total_group_raced,
          total_ungrouped);
  CHECK (total_recompressed > 0);
  CHECK (total_grouped > 0 && total_ungrouped > 0);

  /* Nothing leaked in the counters: trim everything, all page counts 0. */
  CHECK (zram_trim (z, PAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s);
  CHECK (s.orig_data_size == 0 && s.compr_data_size == 0);
  CHECK (s.same_pages == 0 && s.huge_pages == 0);
  CHECK (s.idle_pages == 0 && s.incompressible_pages == 0);
  CHECK (s.group_objects == 0 && s.group_pages == 0 &&
         s.group_compr_size == 0);
  CHECK (s.pages_recomp[0] == 0 && s.pages_recomp[1] == 0 &&
         s.pages_recomp[2] == 0);
  zram_destroy (z);
  free (model);
  printf ("test-recompress-stress: ok\n");
  return 0;
}
