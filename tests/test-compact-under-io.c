/* Unit test: compaction running while the device serves verified I/O loses
 * nothing, and the background compactor (include/zram/compactor.h) finds a
 * fragmented pool, compacts it, and stops at once when asked.
 *
 * Links the core (no nbdkit): threads call zram_write / zram_read /
 * zram_discard on their own page ranges and check every byte they read
 * against a model, while one thread calls zram_compact in a loop and a
 * compactor polls with a 1 ms interval.  Seeded: ZS_SEED, ZS_OPS.
 * SPDX-License-Identifier: BSD-3-Clause
 */
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

#include "zram/compactor.h"
#include "zram/zram.h"
#include "check.h"

#define PAGE     4096u
#define PAGES    4096u          /* 16 MiB device */
#define THREADS  3

static struct zram *z;
static uint32_t version[PAGES]; /* 0 = zeroes; owned by one thread each */
static unsigned long long seed;
static unsigned long nops;

/* Page contents for (page, version): a random mix of a repeated phrase and
 * random bytes, the mix varying per version, so compressed sizes spread
 * over all size classes (and some pages are incompressible).
 */
static void
make_page (unsigned char *buf, uint32_t page, uint32_t ver)
{
  static const char phrase[] = "compressed ram, page after page. ";
  unsigned long long r = ((unsigned long long) page << 32 | ver) ^ seed;
  unsigned noise;

  test_rand (&r);
  noise = test_rand (&r) % 17;  /* sixteenths of random chunks */
  for (unsigned i = 0; i < PAGE; i += 16) {
    if (test_rand (&r) % 16 < noise) {
      unsigned long long a = test_rand (&r), b = test_rand (&r);
      memcpy (buf + i, &a, 8);
      memcpy (buf + i + 8, &b, 8);
    }
    else
      for (unsigned j = 0; j < 16; j++)
        buf[i + j] = phrase[(i + j) % (sizeof phrase - 1)];
  }
}

static void
verify_page (uint32_t page)
{
  unsigned char got[PAGE], want[PAGE];

  CHECK (zram_read (z, got, PAGE, (uint64_t) page * PAGE) == 0);
  if (version[page] == 0)
    memset (want, 0, PAGE);
  else
    make_page (want, page, version[page]);
  if (memcmp (got, want, PAGE) != 0) {
    fprintf (stderr, "page %" PRIu32 " version %" PRIu32 " corrupted\n",
             page, version[page]);
    abort ();
  }
}

static void
write_page (uint32_t page, uint32_t ver)
{
  unsigned char buf[PAGE];

  make_page (buf, page, ver);
  CHECK (zram_write (z, buf, PAGE, (uint64_t) page * PAGE) == 0);
  version[page] = ver;
}

static void
discard_page (uint32_t page)
{
  CHECK (zram_discard (z, PAGE, (uint64_t) page * PAGE) == 0);
  version[page] = 0;
}

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The background compactor finds the fragmentation on its own. */
static void
test_background (void)
{
  struct zram_compactor *c;
  struct zram_stats before, after;
  uint64_t runs = 0, pages = 0;
  double t0;

  for (uint32_t p = 0; p < PAGES; p++)
    write_page (p, 1);
  for (uint32_t p = 0; p < PAGES; p++)
    if (p % 4 != 0)
      discard_page (p);
  zram_get_stats (z, &before);
  CHECK ((double) before.mem_used_total > 1.2 * before.compr_data_size);

  c = zram_compactor_start (z, 20, 1.05);
  CHECK (c != NULL);
  t0 = now ();
  while (pages == 0 && now () - t0 < 10) {
    usleep (10000);
    zram_compactor_counts (c, &runs, &pages);
  }
  /* The pool is small, so some waste above the threshold is beyond any
   * compaction: after at most one more run that releases nothing, the
   * compactor must stay idle while the data does not change.
   */
  usleep (300000);
  {
    uint64_t runs2, pages2;

    zram_compactor_counts (c, &runs2, &pages2);
    printf ("idle: %" PRIu64 " more runs in 300 ms\n", runs2 - runs);
    CHECK (runs2 - runs <= 1);
    CHECK (pages2 == pages);
  }
  zram_compactor_stop (c);
  zram_get_stats (z, &after);
  printf ("background: mem_used %" PRIu64 " -> %" PRIu64 " (compr %" PRIu64
          "), %" PRIu64 " runs released %" PRIu64 " pages\n",
          before.mem_used_total, after.mem_used_total, after.compr_data_size,
          runs, pages);
  CHECK (pages > 0);
  CHECK (after.pages_compacted >= before.pages_compacted + pages);
  CHECK (after.mem_used_total < before.mem_used_total);
  for (uint32_t p = 0; p < PAGES; p++)
    verify_page (p);

  /* Stop does not wait for the interval. */
  c = zram_compactor_start (z, 60000, 1.05);
  CHECK (c != NULL);
  t0 = now ();
  zram_compactor_stop (c);
  CHECK (now () - t0 < 1.0);
  zram_compactor_stop (NULL);

  errno = 0;
  CHECK (zram_compactor_start (z, 0, 1.5) == NULL && errno == EINVAL);
  CHECK (zram_compactor_start (z, 10, 0.5) == NULL && errno == EINVAL);
}

static int stop_compacting;     /* atomic */

static void *
io_thread (void *arg)
{
  unsigned id = (uintptr_t) arg;
  unsigned long long r = seed + id;
  uint32_t first = id * (PAGES / THREADS), n = PAGES / THREADS;

  for (unsigned long i = 0; i < nops; i++) {
    uint32_t p = first + test_rand (&r) % n;
    unsigned op = test_rand (&r) % 100;

    if (op < 40)
      write_page (p, version[p] + 1);
    else if (op < 55)
      discard_page (p);
    else
      verify_page (p);
  }
  for (uint32_t p = first; p < first + n; p++)
    verify_page (p);
  return NULL;
}

static void *
compact_thread (void *arg)
{
  uint64_t *released = arg;
  int64_t pages;

  while (!__atomic_load_n (&stop_compacting, __ATOMIC_RELAXED)) {
    pages = zram_compact (z);
    CHECK (pages >= 0);
    *released += pages;
  }
  return NULL;
}

static void
test_under_io (void)
{
  pthread_t io[THREADS], ct;
  struct zram_compactor *c;
  uint64_t released = 0, runs, pages;
  struct zram_stats st;

  c = zram_compactor_start (z, 1, 1.0);
  CHECK (c != NULL);
  CHECK (pthread_create (&ct, NULL, compact_thread, &released) == 0);
  for (uintptr_t i = 0; i < THREADS; i++)
    CHECK (pthread_create (&io[i], NULL, io_thread, (void *) i) == 0);
  for (unsigned i = 0; i < THREADS; i++)
    CHECK (pthread_join (io[i], NULL) == 0);
  __atomic_store_n (&stop_compacting, 1, __ATOMIC_RELAXED);
  CHECK (pthread_join (ct, NULL) == 0);
  zram_compactor_counts (c, &runs, &pages);
  zram_compactor_stop (c);
  zram_get_stats (z, &st);
  printf ("under io: %d x %lu ops; zram_compact released %" PRIu64
          " pages, compactor %" PRIu64 " runs %" PRIu64 " pages; "
          "mem_used %" PRIu64 " compr %" PRIu64 "\n", THREADS, nops,
          released, runs, pages, st.mem_used_total, st.compr_data_size);
  CHECK (released + pages > 0);
  for (uint32_t p = 0; p < PAGES; p++)
    verify_page (p);
}

int
main (void)
{
  const char *s = getenv ("ZS_SEED");
  const char *n = getenv ("ZS_OPS");
  struct zram_config cfg = {
    .disksize = (uint64_t) PAGES * PAGE, .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
  };

  seed = s ? strtoull (s, NULL, 0) : 0xc0ffee;
  nops = n ? strtoul (n, NULL, 0) : 20000;
  printf ("seed %#llx, %lu ops per thread (ZS_SEED, ZS_OPS to change)\n",
          seed, nops);
  z = zram_create (&cfg);
  CHECK (z != NULL);
  test_background ();
  test_under_io ();
  zram_destroy (z);
  printf ("ok\n");
  return 0;
}
