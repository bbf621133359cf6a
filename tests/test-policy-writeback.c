/* Unit test of the automatic writeback policy (no nbdkit), with its
 * framework thread and a real store on a file:
 *   - no cliff: writers filling a device with 3 times mem_limit of data
 *     see no failed write, the pool stays within the limit, and every
 *     byte reads back;
 *   - near mem_limit the coldest pages go first: pages written 2 s
 *     before the others are the ones written back;
 *   - idle pages go after the age, no faster than the rate allows, and
 *     not while the device serves requests (the policy gives way);
 *   - the policy stops at writeback_limit;
 *   - resets while writers wait for room and the policy writes back
 *     neither crash nor race (run under ASan and TSan).
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "zram/background.h"
#include "zram/policy-writeback.h"
#include "wb-store-util.h"

static char dir[256];

struct rig {
  struct zram *z;
  struct zram_bg *bg;
  int id;
};

static void
start (struct rig *g, uint64_t pages, uint64_t mem_limit,
       const struct zram_wb_policy_config *c)
{
  g->z = wbt_device (dir, pages, mem_limit);
  g->bg = zram_bg_create (0);
  CHECK (g->bg != NULL);
  g->id = zram_wb_policy_add (g->bg, g->z, c);
  CHECK (g->id >= 0);
  CHECK (zram_bg_start (g->bg) == 0);
  zram_set_background (g->z, g->bg);
}

static void
stop (struct rig *g)
{
  zram_set_background (g->z, NULL);
  zram_bg_destroy (g->bg);
  zram_destroy (g->z);
}

static struct zram_stats
stats (struct zram *z)
{
  struct zram_stats s;

  zram_get_stats (z, &s);
  return s;
}

static void
write_page (struct zram *z, uint64_t p, uint32_t g)
{
  unsigned char buf[ZRAM_PAGE_SIZE];

  wbt_page (buf, p, g);
  EXPECT (zram_write (z, buf, ZRAM_PAGE_SIZE, p * ZRAM_PAGE_SIZE) == 0,
          "write of page %" PRIu64 " failed: %m", p);
}

static void
verify_pages (struct zram *z, uint64_t first, uint64_t n, uint32_t g)
{
  unsigned char buf[ZRAM_PAGE_SIZE], want[ZRAM_PAGE_SIZE];

  for (uint64_t p = first; p < first + n; p++) {
    wbt_page (want, p, g);
    CHECK (zram_read (z, buf, ZRAM_PAGE_SIZE, p * ZRAM_PAGE_SIZE) == 0);
    if (memcmp (buf, want, ZRAM_PAGE_SIZE) != 0) {
      fprintf (stderr, "page %" PRIu64 " differs\n", p);
      abort ();
    }
  }
}

/* --- no cliff at the memory limit ---------------------------------------- */

#define FILL_THREADS 4
#define FILL_PAGES 12288         /* 48 MiB, about 16 MiB compressed */
#define FILL_LIMIT (UINT64_C (5) << 20)

struct filler {
  struct zram *z;
  unsigned k;
};

static void *
fill_thread (void *arg)
{
  struct filler *f = arg;

  /* Interleaved 64 KiB runs, as a copy with several requests in flight;
   * the last thread writes each page in two halves (partial writes,
   * which wait for room without their slot lock).
   */
  for (uint64_t p = f->k * 16; p < FILL_PAGES; p += FILL_THREADS * 16)
    for (uint64_t q = p; q < p + 16; q++) {
      unsigned char buf[ZRAM_PAGE_SIZE];
      const uint32_t h = ZRAM_PAGE_SIZE / 2;

      if (f->k < FILL_THREADS - 1) {
        write_page (f->z, q, 1);
        continue;
      }
      wbt_page (buf, q, 1);
      EXPECT (zram_write (f->z, buf + h, h, q * ZRAM_PAGE_SIZE + h) == 0 &&
              zram_write (f->z, buf, h, q * ZRAM_PAGE_SIZE) == 0,
              "partial write of page %" PRIu64 " failed: %m", q);
    }
  return NULL;
}

static void
test_no_cliff (void)
{
  struct zram_wb_policy_config c;
  struct filler f[FILL_THREADS];
  pthread_t t[FILL_THREADS];
  struct zram_bg_counts n;
  struct zram_stats s;
  struct rig g;

  zram_wb_policy_defaults (&c);
  start (&g, FILL_PAGES, FILL_LIMIT, &c);
  for (unsigned k = 0; k < FILL_THREADS; k++) {
    f[k] = (struct filler) { g.z, k };
    CHECK (pthread_create (&t[k], NULL, fill_thread, &f[k]) == 0);
  }
  for (unsigned k = 0; k < FILL_THREADS; k++)
    pthread_join (t[k], NULL);
  s = stats (g.z);
  zram_bg_counts (g.bg, g.id, &n);
  printf ("no cliff: %u pages, compressed %" PRIu64 " KiB, limit %" PRIu64
          " KiB, peak %" PRIu64 " KiB, bd_count %" PRIu64 ", room waits %"
          PRIu64 ", policy rounds %" PRIu64 " (%" PRIu64 " urgent)\n",
          FILL_PAGES, (s.compr_data_size + (s.bd_count << 12) / 3) >> 10,
          FILL_LIMIT >> 10, s.mem_used_max >> 10, s.bd_count, s.room_waits,
          n.rounds, n.urgent);
  EXPECT (s.failed_writes == 0 && s.room_failed == 0, "failed writes %"
          PRIu64 ", room failures %" PRIu64, s.failed_writes, s.room_failed);
  EXPECT (s.mem_used_max <= FILL_LIMIT, "peak %" PRIu64, s.mem_used_max);
  /* (The counts of a round come when it ends: bd_count may be ahead.) */
  EXPECT (s.bd_count > 0 && n.urgent > 0 && n.work > 0,
          "pressure writeback: bd_count %" PRIu64 " urgent %" PRIu64,
          s.bd_count, n.urgent);
  verify_pages (g.z, 0, FILL_PAGES, 1);
  stop (&g);
}

/* --- resets while writers wait for room --------------------------------- */

static bool churn_stop;

static void *
churn_thread (void *arg)
{
  struct filler *f = arg;
  unsigned char buf[ZRAM_PAGE_SIZE];
  uint64_t p = f->k;

  /* Errors are expected here (EIO while a reset unpublishes the state):
   * what is tested is that nothing crashes, races or hangs.
   */
  while (!__atomic_load_n (&churn_stop, __ATOMIC_RELAXED)) {
    wbt_page (buf, p, 3);
    if (f->k % 2)
      (void) zram_write (f->z, buf, ZRAM_PAGE_SIZE / 2, p * ZRAM_PAGE_SIZE);
    else
      (void) zram_write (f->z, buf, ZRAM_PAGE_SIZE, p * ZRAM_PAGE_SIZE);
    p = (p + FILL_THREADS) % FILL_PAGES;
  }
  return NULL;
}

static void
test_reset_under_pressure (void)
{
  struct zram_wb_policy_config c;
  struct filler f[FILL_THREADS];
  pthread_t t[FILL_THREADS];
  struct rig g;

  zram_wb_policy_defaults (&c);
  c.room_wait_ms = 200;
  start (&g, FILL_PAGES, UINT64_C (2) << 20, &c);
  __atomic_store_n (&churn_stop, false, __ATOMIC_RELAXED);
  for (unsigned k = 0; k < FILL_THREADS; k++) {
    f[k] = (struct filler) { g.z, k };
    CHECK (pthread_create (&t[k], NULL, churn_thread, &f[k]) == 0);
  }
  for (int i = 0; i < 4; i++) {
    test_sleep_us (300000);
    CHECK (zram_reset (g.z, true, NULL) == 0);
  }
  __atomic_store_n (&churn_stop, true, __ATOMIC_RELAXED);
  for (unsigned k = 0; k < FILL_THREADS; k++)
    pthread_join (t[k], NULL);
  /* The device works as before. */
  CHECK (zram_reset (g.z, true, NULL) == 0);
  for (uint64_t p = 0; p < 64; p++)
    write_page (g.z, p, 4);
  verify_pages (g.z, 0, 64, 4);
  EXPECT (stats (g.z).bd_count == 0, "a reset kept pages in the store");
  stop (&g);
}

/* --- coldest first ---------------------------------------------------------- */

static void
test_coldest_first (void)
{
  const uint64_t limit = UINT64_C (4) << 20, pages = 8192;
  struct zram_wb_policy_config c;
  struct zram_stats s;
  uint64_t a, b, reads;
  struct rig g;

  zram_wb_policy_defaults (&c);
  start (&g, pages, limit, &c);
  /* A: about half the limit, then 2 s older than B. */
  for (a = 0; a < pages && stats (g.z).mem_used_total < limit / 2; a++)
    write_page (g.z, a, 2);
  test_sleep_us (2200000);
  /* B: another 60 % of the limit: past the high watermark (90 %). */
  for (b = a; b < pages && b < a + a * 6 / 5; b++)
    write_page (g.z, b, 2);
  /* The spell ends below the low watermark (80 %). */
  for (int i = 0; i < 100 && stats (g.z).mem_used_total >= limit / 1000 * 800; i++)
    test_sleep_us (20000);
  s = stats (g.z);
  printf ("coldest first: A %" PRIu64 " pages, B %" PRIu64 ", bd_count %"
          PRIu64 ", pool %" PRIu64 " KiB\n", a, b - a, s.bd_count,
          s.mem_used_total >> 10);
  EXPECT (s.failed_writes == 0, "failed writes");
  EXPECT (s.bd_count > 0, "nothing written back");
  EXPECT (s.mem_used_total < limit / 1000 * 800, "pool still at %" PRIu64,
          s.mem_used_total);
  /* Every page written back is one of A's: reading B reads no block. */
  reads = s.bd_reads;
  verify_pages (g.z, a, b - a, 2);
  EXPECT (stats (g.z).bd_reads == reads, "%" PRIu64 " of B's pages were "
          "written back before A's", stats (g.z).bd_reads - reads);
  verify_pages (g.z, 0, a, 2);
  EXPECT (stats (g.z).bd_reads - reads == s.bd_count, "A's reads from the "
          "store %" PRIu64 ", bd_count %" PRIu64, stats (g.z).bd_reads - reads,
          s.bd_count);
  stop (&g);
}

/* --- by age, within the rate, behind the requests ------------------------- */

static bool reader_stop;

static void *
reader (void *arg)
{
  struct zram *z = arg;
  unsigned char buf[ZRAM_PAGE_SIZE];

  /* Page 0 only: the rest stays cold.  Thousands a second, so that a
   * loaded machine that holds this thread back for a moment still leaves
   * the device busy at every look of the policy.
   */
  while (!__atomic_load_n (&reader_stop, __ATOMIC_RELAXED)) {
    CHECK (zram_read (z, buf, ZRAM_PAGE_SIZE, 0) == 0);
    test_sleep_us (100);
  }
  return NULL;
}

static void
test_age_rate_yield (void)
{
  const uint64_t pages = 1024, cold = pages - pages / 8 - 1;
  struct zram_wb_policy_config c;
  struct zram_bg_counts n;
  uint64_t busy_written;
  struct rig g;
  pthread_t t;
  double t0, t1;

  zram_wb_policy_defaults (&c);
  c.age_s = 1;
  c.rate_pages = 500;
  c.period_ms = 20;
  start (&g, pages, 0, &c);
  for (uint64_t p = 0; p < pages; p++)
    write_page (g.z, p, 0);
  /* Busy: the policy gives way.  Without that, the rate would let all
   * the cold pages go in these 2.5 s; a look that finds the reader held
   * back by a loaded machine (or TSan) may let a round through, a few
   * dozen pages.
   */
  CHECK (pthread_create (&t, NULL, reader, g.z) == 0);
  test_sleep_us (2500000);
  busy_written = stats (g.z).bd_count;
  EXPECT (busy_written < cold / 4,
          "wrote back %" PRIu64 " pages while the device was busy",
          busy_written);
  zram_bg_counts (g.bg, g.id, &n);
  EXPECT (n.yielded > 0, "no round gave way");
  __atomic_store_n (&reader_stop, true, __ATOMIC_RELAXED);
  pthread_join (t, NULL);
  /* Quiet: every cold page goes, page 0 (just read) too after a second,
   * at most 500 a second.
   */
  t0 = test_now ();
  busy_written = stats (g.z).bd_count;
  while (stats (g.z).bd_count < cold && test_now () - t0 < 20)
    test_sleep_us (10000);
  t1 = test_now ();
  printf ("age: %" PRIu64 " pages written back in %.2f s at a rate of %"
          PRIu64 "/s\n", stats (g.z).bd_count, t1 - t0, c.rate_pages);
  EXPECT (stats (g.z).bd_count >= cold, "bd_count %" PRIu64 " of %" PRIu64,
          stats (g.z).bd_count, cold);
  /* The rate: at 500/s, less a burst of 2 periods. */
  EXPECT (t1 - t0 >= (double) (cold - busy_written - 2 * 500 * c.period_ms
                               / 1000) / 500 - 0.1,
          "%" PRIu64 " pages in %.2f s: faster than the rate",
          cold - busy_written, t1 - t0);
  verify_pages (g.z, 0, pages, 0);
  stop (&g);
}

/* --- writeback_limit ---------------------------------------------------------- */

static void
test_limit (void)
{
  struct zram_wb_policy_config c;
  struct zram_stats s;
  struct rig g;

  zram_wb_policy_defaults (&c);
  c.age_s = 1;
  c.rate_pages = 100000;
  c.period_ms = 20;
  start (&g, 512, 0, &c);
  CHECK (zram_set_writeback_limit (g.z, 100) == 0);
  zram_set_writeback_limit_enable (g.z, true);
  for (uint64_t p = 0; p < 512; p++)
    write_page (g.z, p, 0);
  test_sleep_us (3000000);
  s = stats (g.z);
  EXPECT (s.bd_blocks_used == 100 && s.bd_count >= 100 && s.wb_limit == 0,
          "blocks %" PRIu64 ", bd_count %" PRIu64 ", limit left %" PRIu64,
          s.bd_blocks_used, s.bd_count, s.wb_limit);
  /* Raised: the policy goes on. */
  CHECK (zram_set_writeback_limit (g.z, 50) == 0);
  test_sleep_us (1500000);
  EXPECT (stats (g.z).bd_blocks_used == 150, "after raising: %" PRIu64,
          stats (g.z).bd_blocks_used);
  verify_pages (g.z, 0, 512, 0);
  stop (&g);
}

/* With writeback_limit used up, writeback cannot make room: a write at
 * mem_limit fails at once, without waiting for it.
 */
static void
test_limit_no_wait (void)
{
  struct zram_wb_policy_config c;
  unsigned char buf[ZRAM_PAGE_SIZE];
  struct zram_stats s;
  struct rig g;
  uint64_t p;
  double t0 = 0;
  int r = 0;

  zram_wb_policy_defaults (&c);
  start (&g, FILL_PAGES, UINT64_C (1) << 20, &c);
  zram_set_writeback_limit_enable (g.z, true);
  for (p = 0; p < FILL_PAGES && r == 0; p++) {
    wbt_page (buf, p, 5);
    t0 = test_now ();
    r = zram_write (g.z, buf, ZRAM_PAGE_SIZE, p * ZRAM_PAGE_SIZE);
  }
  s = stats (g.z);
  EXPECT (r == -1 && errno == ENOSPC, "no write failed at the limit");
  EXPECT (test_now () - t0 < 0.5 && s.room_waits == 0,
          "the failing write waited %.2f s (room_waits %" PRIu64 ")",
          test_now () - t0, s.room_waits);
  EXPECT (s.bd_count == 0, "written back with no budget");
  stop (&g);
}

static void
test_refusals (void)
{
  struct zram_wb_policy_config c;
  struct zram_config zc = { .disksize = 1 << 20, .algo = ZCOMP_LZ4 };
  struct zram_bg *bg = zram_bg_create (0);
  struct zram *z = zram_create (&zc), *zb = wbt_device (dir, 256, 0);

  CHECK (bg && z);
  zram_wb_policy_defaults (&c);
  EXPECT (zram_wb_policy_add (bg, z, &c) == -1 && errno == EINVAL,
          "a device without a store accepted");
  c.low_pm = c.high_pm;
  EXPECT (zram_wb_policy_add (bg, zb, &c) == -1 && errno == EINVAL,
          "low watermark not below high accepted");
  zram_wb_policy_defaults (&c);
  c.rate_pages = 0;
  EXPECT (zram_wb_policy_add (bg, zb, &c) == -1 && errno == EINVAL,
          "rate 0 accepted");
  zram_wb_policy_defaults (&c);
  c.room_wait_ms = ZRAM_ROOM_WAIT_MAX_MS + 1;
  EXPECT (zram_wb_policy_add (bg, zb, &c) == -1 && errno == EINVAL,
          "too long a wait accepted");
  zram_bg_destroy (bg);
  zram_destroy (z);
  zram_destroy (zb);
}

int
main (void)
{
  wbt_tmpdir (dir, sizeof dir, "test-policy-writeback");
  test_refusals ();
  test_no_cliff ();
  test_reset_under_pressure ();
  test_coldest_first ();
  test_age_rate_yield ();
  test_limit ();
  test_limit_no_wait ();
  wbt_cleanup (dir);
  return check_failures ? 1 : 0;
}
