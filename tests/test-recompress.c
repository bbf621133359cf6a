/* Unit test of idle tracking and recompression in the core (no nbdkit):
 * every pair of primary and secondary algorithm (lz4 levels, lz4hc, zstd
 * levels) round-trips; the statistics add up against a model
 * (pages_recomp, idle_pages, incompressible_pages, and bytes saved =
 * compressed size before - after); reads and writes clear IDLE; huge pages,
 * thresholds, priorities, max_pages batches, min_age; bad requests are
 * refused and change nothing; a reset keeps the algorithms; walks stopped
 * (zram_stop_walks) refuse with ECANCELED and change nothing.  Runs once per
 * allocator.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE ZRAM_PAGE_SIZE
#define NPAGES 256

static enum zpool_kind kind;

/* Page p of generation g: a phrase mixed with some random 16-byte runs
 * (more of them on some pages), so compressed sizes spread over many
 * size classes and the strong algorithms do noticeably better.  Every
 * 16th page is random (huge), every 13th same-filled.
 */
static void
make_page (unsigned char *buf, uint32_t p, uint32_t g)
{
  static const char phrase[] = "idle pages, recompressed with zstd; ";
  unsigned long long r = ((unsigned long long) p << 32 | g) * 0x9e3779b97f4a7c15ULL + 1;
  unsigned noise = p % 16 == 0 ? 16 : (unsigned) (test_rand (&r) % 9);

  if (p % 13 == 5) {
    memset (buf, (int) (p + g), PAGE);
    return;
  }
  for (unsigned i = 0; i < PAGE; i += 16) {
    if (test_rand (&r) % 16 < noise) {
      unsigned long long a = test_rand (&r), b = test_rand (&r);
      memcpy (buf + i, &a, 8);
      memcpy (buf + i + 8, &b, 8);
    }
    else
      for (unsigned j = 0; j < 16; j++)
        buf[i + j] = phrase[(i + j + p) % (sizeof phrase - 1)];
  }
}

static struct zram *
make (enum zcomp_algo algo, int level, const struct zram_recomp_algo *rc,
      unsigned nr)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = algo,
                           .level = level, .pool = kind, .nr_recomp = nr };
  struct zram *z;

  memcpy (c.recomp, rc, nr * sizeof *rc);
  z = zram_create (&c);
  CHECK (z != NULL);
  return z;
}

static void
fill (struct zram *z, uint32_t g)
{
  unsigned char buf[PAGE];

  for (uint32_t p = 0; p < NPAGES; p++) {
    make_page (buf, p, g);
    CHECK (zram_write (z, buf, PAGE, (uint64_t) p * PAGE) == 0);
  }
}

static void
verify (struct zram *z, uint32_t g)
{
  unsigned char got[PAGE], want[PAGE];

  for (uint32_t p = 0; p < NPAGES; p++) {
    make_page (want, p, g);
    CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
    if (memcmp (got, want, PAGE) != 0) {
      fprintf (stderr, "page %" PRIu32 " corrupted\n", p);
      abort ();
    }
  }
}

static uint64_t
sum_recomp (const struct zram_stats *s)
{
  return s->pages_recomp[0] + s->pages_recomp[1] + s->pages_recomp[2];
}

static int
recompress (struct zram *z, enum zram_recomp_type type, unsigned pmin,
            unsigned pmax, struct zram_recomp_result *res)
{
  struct zram_recomp_req req = { .type = type, .prio_min = pmin,
                                 .prio_max = pmax };

  return zram_recompress (z, &req, res);
}

/* The stored, non-same pages (what idle all marks). */
static uint64_t
objects (const struct zram_stats *s)
{
  return (s->orig_data_size / PAGE) - s->same_pages;
}

/* One primary with one secondary: everything idle, recompressed, read back;
 * the statistics agree with the result and with each other.
 */
static void
test_pair (enum zcomp_algo a1, int l1, enum zcomp_algo a2, int l2)
{
  struct zram_recomp_algo rc = { a2, l2 };
  struct zram *z = make (a1, l1, &rc, 1);
  struct zram_stats s0, s1, s2;
  struct zram_recomp_result res;
  uint64_t marked;

  fill (z, 1);
  zram_get_stats (z, &s0);
  CHECK (s0.idle_pages == 0 && sum_recomp (&s0) == 0);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  CHECK (marked == objects (&s0));
  zram_get_stats (z, &s1);
  CHECK (s1.idle_pages == marked);
  /* Marking again marks nothing new. */
  CHECK (zram_mark_idle (z, 0, &marked) == 0 && marked == 0);

  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0);
  zram_get_stats (z, &s2);
  CHECK (res.next_index == NPAGES);
  CHECK (res.scanned == objects (&s0));
  CHECK (res.attempted == objects (&s0));
  CHECK (res.recompressed + res.incompressible + res.raced == res.attempted);
  CHECK (res.nospace == 0);
  CHECK (res.raced == 0);
  CHECK (s2.pages_recomp[0] == res.recompressed);
  CHECK (s2.recomp_successes == res.recompressed);
  CHECK (s2.recomp_attempts == res.attempted);
  CHECK (s2.incompressible_pages == res.incompressible);
  CHECK (s2.recomp_bytes_saved == res.bytes_saved);
  CHECK (s0.compr_data_size - s2.compr_data_size == res.bytes_saved);
  CHECK (s2.orig_data_size == s0.orig_data_size);
  CHECK (s2.idle_pages == s1.idle_pages);   /* not an access */
  printf ("%s:%d -> %s:%d: %" PRIu64 " of %" PRIu64 " recompressed, "
          "%" PRIu64 " incompressible, compr %" PRIu64 " -> %" PRIu64 "\n",
          zcomp_algo_name (a1), l1, zcomp_algo_name (a2), l2,
          res.recompressed, res.attempted, res.incompressible,
          s0.compr_data_size, s2.compr_data_size);

  /* zstd at 19 beats every lz4 level on these pages. */
  if (a1 != ZCOMP_ZSTD && a2 == ZCOMP_ZSTD && l2 == 19)
    CHECK (res.recompressed > NPAGES / 2);

  /* Nothing left to do: incompressible pages are skipped, recompressed
   * ones are at the top priority.
   */
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0);
  CHECK (res.attempted == 0);

  verify (z, 1);              /* reads decompress with each page's algorithm */
  zram_get_stats (z, &s1);
  CHECK (s1.idle_pages == 0);  /* reads ended idleness */
  CHECK (s1.pages_recomp[0] == s2.pages_recomp[0]);

  /* Rewrites return every page to the primary. */
  fill (z, 2);
  zram_get_stats (z, &s1);
  CHECK (sum_recomp (&s1) == 0 && s1.incompressible_pages == 0);
  verify (z, 2);
  zram_destroy (z);
}

/* Three secondaries: priorities are tried in order, one at a time with
 * prio_min = prio_max, and pages move up.
 */
static void
test_chain (void)
{
  static const struct zram_recomp_algo rc[] = {
    { ZCOMP_LZ4HC, 4 }, { ZCOMP_ZSTD, 3 }, { ZCOMP_ZSTD, 19 },
  };
  struct zram *z = make (ZCOMP_LZ4, 8, rc, 3);
  struct zram_recomp_result res;
  struct zram_stats s0, s1, s2;
  uint64_t before;

  fill (z, 3);
  zram_get_stats (z, &s0);
  CHECK (s0.nr_recomp == 3 && s0.recomp[2].algo == ZCOMP_ZSTD &&
         s0.recomp[2].level == 19 && s0.level == 8);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);

  /* Priority 2 only: nothing is marked incompressible (3 not tried). */
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 2, 2, &res) == 0);
  zram_get_stats (z, &s1);
  CHECK (res.incompressible == 0 && s1.incompressible_pages == 0);
  CHECK (s1.pages_recomp[1] == res.recompressed && res.recompressed > 0);
  CHECK (s1.pages_recomp[0] == 0 && s1.pages_recomp[2] == 0);
  before = res.recompressed;

  /* Priority 1 cannot apply to pages at 2: they are skipped. */
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 1, 1, &res) == 0);
  zram_get_stats (z, &s2);
  CHECK (s2.pages_recomp[1] == before);
  CHECK (s2.pages_recomp[0] == res.recompressed);

  /* All: the rest go up to 3 where it helps, or become incompressible. */
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0);
  zram_get_stats (z, &s2);
  CHECK (s2.incompressible_pages == res.incompressible);
  CHECK (s2.recomp_bytes_saved == s0.compr_data_size - s2.compr_data_size);
  CHECK (s2.recomp_successes >= sum_recomp (&s2));  /* some moved twice */
  verify (z, 3);
  zram_destroy (z);
}

/* type=huge: the random pages are stored raw; no algorithm shrinks them,
 * so they become incompressible and are skipped the next time.  Pages
 * that were huge only for lz4 do shrink with zstd.
 */
static void
test_huge (void)
{
  struct zram_recomp_algo rc = { ZCOMP_ZSTD, 19 };
  struct zram *z = make (ZCOMP_LZ4, 65537, &rc, 1);
  struct zram_recomp_result res;
  struct zram_stats s0, s1;
  unsigned char buf[PAGE];

  fill (z, 4);
  /* A page that lz4 at its fastest leaves raw but zstd packs. */
  for (unsigned i = 0; i < PAGE; i++)
    buf[i] = "abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 64) % 26];
  CHECK (zram_write (z, buf, PAGE, 1 * PAGE) == 0);
  zram_get_stats (z, &s0);
  CHECK (s0.huge_pages >= NPAGES / 16);

  /* huge_idle: nothing idle yet, so nothing to do. */
  CHECK (recompress (z, ZRAM_RECOMP_HUGE_IDLE, 0, 0, &res) == 0);
  CHECK (res.attempted == 0);

  CHECK (recompress (z, ZRAM_RECOMP_HUGE, 0, 0, &res) == 0);
  zram_get_stats (z, &s1);
  CHECK (res.attempted == s0.huge_pages);
  CHECK (s1.huge_pages == s0.huge_pages - res.recompressed);
  CHECK (s1.incompressible_pages == res.incompressible);
  CHECK (res.incompressible >= NPAGES / 16 - 1);  /* the random pages */
  CHECK (s0.compr_data_size - s1.compr_data_size == res.bytes_saved);
  printf ("huge: %" PRIu64 " of %" PRIu64 " recompressed\n",
          res.recompressed, res.attempted);
  CHECK (recompress (z, ZRAM_RECOMP_HUGE, 0, 0, &res) == 0);
  CHECK (res.attempted == 0);   /* incompressible ones are skipped */
  CHECK (zram_read (z, buf, PAGE, 0) == 0);
  zram_destroy (z);
}

/* Threshold, max_pages batches with next_index, a slot range, min_age. */
static void
test_limits (void)
{
  struct zram_recomp_algo rc = { ZCOMP_ZSTD, 5 };
  struct zram *z = make (ZCOMP_LZ4, 0, &rc, 1);
  struct zram_recomp_req req = { .type = ZRAM_RECOMP_IDLE };
  struct zram_recomp_result res;
  struct zram_stats s;
  uint64_t attempted = 0, marked, rounds = 0;

  fill (z, 5);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);

  /* Only objects of at least 4000 bytes: the huge ones. */
  req.threshold = 4000;
  CHECK (zram_recompress (z, &req, &res) == 0);
  zram_get_stats (z, &s);
  CHECK (res.attempted == s.huge_pages + res.recompressed);

  /* Batches of 10 pages, continuing where the last stopped. */
  req.threshold = 0;
  req.max_pages = 10;
  do {
    CHECK (zram_recompress (z, &req, &res) == 0);
    CHECK (res.attempted <= 10);
    attempted += res.attempted;
    req.start_index = res.next_index;
    rounds++;
  } while (res.next_index < NPAGES);
  CHECK (rounds >= attempted / 10);
  CHECK (zram_recompress (z, &(struct zram_recomp_req) {
                            .type = ZRAM_RECOMP_IDLE }, &res) == 0);
  CHECK (res.attempted == 0);

  /* A range: slots [10, 20) only. */
  fill (z, 6);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_recompress (z, &(struct zram_recomp_req) {
                            .type = ZRAM_RECOMP_IDLE, .start_index = 10,
                            .end_index = 20 }, &res) == 0);
  CHECK (res.next_index == 20 && res.scanned <= 10);

  /* min_age: everything was just written; after 2 s it is all old. */
  fill (z, 7);
  CHECK (zram_mark_idle (z, 1, &marked) == 0 && marked == 0);
  req = (struct zram_recomp_req) { .type = ZRAM_RECOMP_IDLE, .min_age_s = 1 };
  CHECK (zram_recompress (z, &req, &res) == 0 && res.attempted == 0);
  sleep (2);
  /* A page read now is young again. */
  {
    unsigned char buf[PAGE];

    CHECK (zram_read (z, buf, PAGE, 3 * PAGE) == 0);
  }
  CHECK (zram_mark_idle (z, 1, &marked) == 0);
  zram_get_stats (z, &s);
  CHECK (marked == objects (&s) - 1 && s.idle_pages == marked);
  CHECK (zram_recompress (z, &req, &res) == 0 && res.attempted > 0);
  verify (z, 7);
  zram_destroy (z);
}

/* At the memory limit recompression goes on: pages whose smaller class
 * has no room are left as they were (nospace), the others succeed, and
 * the pool never passes the limit.
 */
static void
test_at_limit (void)
{
  struct zram_recomp_algo rc = { ZCOMP_ZSTD, 19 };
  struct zram *z = make (ZCOMP_LZ4, 0, &rc, 1);
  struct zram_recomp_result res;
  struct zram_stats s0, s1;

  fill (z, 10);
  zram_get_stats (z, &s0);
  zram_set_mem_limit (z, s0.mem_used_total);
  zram_reset_mem_used_max (z);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0);
  zram_get_stats (z, &s1);
  printf ("at the limit: %" PRIu64 " recompressed, %" PRIu64 " no space\n",
          res.recompressed, res.nospace);
  CHECK (res.recompressed > 0);
  CHECK (res.recompressed + res.incompressible + res.nospace == res.attempted);
  CHECK (s1.mem_used_max <= s0.mem_used_total);
  CHECK (s1.mem_used_total <= s0.mem_used_total);
  verify (z, 10);
  zram_destroy (z);
}

/* Bad requests are refused with EINVAL and change nothing. */
static void
test_refusals (void)
{
  struct zram_recomp_algo rc[4] = {
    { ZCOMP_ZSTD, 3 }, { ZCOMP_ZSTD, 9 }, { ZCOMP_ZSTD, 19 }, { ZCOMP_ZSTD, 22 },
  };
  struct zram_config c = { .disksize = NPAGES * PAGE, .pool = kind };
  struct zram_recomp_result res;
  struct zram_stats s0, s1;
  struct zram *z;

  c.nr_recomp = 4;
  memcpy (c.recomp, rc, sizeof c.recomp);
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.nr_recomp = 1;
  c.recomp[0].level = 99;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);

  /* No secondary algorithm. */
  z = make (ZCOMP_LZ4, 0, rc, 0);
  fill (z, 8);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == -1 && errno == EINVAL);
  zram_destroy (z);

  z = make (ZCOMP_LZ4, 0, rc, 2);
  fill (z, 8);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  zram_get_stats (z, &s0);
  CHECK (recompress (z, 0, 0, 0, &res) == -1 && errno == EINVAL);
  CHECK (recompress (z, 4, 0, 0, &res) == -1 && errno == EINVAL);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 3, 3, &res) == -1 && errno == EINVAL);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 2, 1, &res) == -1 && errno == EINVAL);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 1, &res) == -1 && errno == EINVAL);
  CHECK (zram_recompress (z, &(struct zram_recomp_req) {
                            .type = ZRAM_RECOMP_IDLE,
                            .end_index = NPAGES + 1 }, &res) == -1 &&
         errno == EINVAL);
  CHECK (zram_recompress (z, &(struct zram_recomp_req) {
                            .type = ZRAM_RECOMP_IDLE, .start_index = 5,
                            .end_index = 4 }, &res) == -1 && errno == EINVAL);
  zram_get_stats (z, &s1);
  CHECK (s1.recomp_attempts == 0 && s1.compr_data_size == s0.compr_data_size);

  /* A reset keeps the algorithms, and starts the statistics afresh. */
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0);
  CHECK (zram_reset (z, true, NULL) == 0);
  zram_get_stats (z, &s1);
  CHECK (s1.nr_recomp == 2 && s1.recomp[1].level == 9);
  CHECK (s1.recomp_attempts == 0 && sum_recomp (&s1) == 0 && s1.idle_pages == 0);
  fill (z, 9);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0);
  CHECK (res.recompressed > 0);
  verify (z, 9);

  /* Trimming everything leaves every counter at zero. */
  CHECK (zram_trim (z, NPAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s1);
  CHECK (s1.idle_pages == 0 && s1.incompressible_pages == 0 &&
         sum_recomp (&s1) == 0 && s1.compr_data_size == 0 &&
         s1.huge_pages == 0 && s1.orig_data_size == 0);
  zram_destroy (z);
}

/* zram_stop_walks: idle marking and recompression refuse with ECANCELED
 * and change nothing while stopped (nested), and work again once resumed.
 */
static void
test_stop_walks (void)
{
  struct zram_recomp_algo rc[1] = { { ZCOMP_ZSTD, 3 } };
  struct zram_recomp_result res;
  struct zram_stats s0, s1;
  uint64_t marked = 99;
  struct zram *z = make (ZCOMP_LZ4, 0, rc, 1);

  fill (z, 11);
  zram_stop_walks (z);
  zram_stop_walks (z);
  CHECK (zram_mark_idle (z, 0, &marked) == -1 && errno == ECANCELED &&
         marked == 0);
  zram_resume_walks (z);
  CHECK (zram_mark_idle (z, 0, &marked) == -1 && errno == ECANCELED);
  zram_resume_walks (z);
  CHECK (zram_mark_idle (z, 0, &marked) == 0 && marked > 0);
  zram_get_stats (z, &s0);
  zram_stop_walks (z);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == -1 &&
         errno == ECANCELED && res.attempted == 0);
  zram_get_stats (z, &s1);
  CHECK (s1.recomp_attempts == 0 && s1.compr_data_size == s0.compr_data_size &&
         s1.idle_pages == s0.idle_pages);
  zram_resume_walks (z);
  CHECK (recompress (z, ZRAM_RECOMP_IDLE, 0, 0, &res) == 0 &&
         res.recompressed > 0);
  verify (z, 11);
  zram_destroy (z);
}

int
main (void)
{
  static const struct { enum zcomp_algo a; int l; } algos[] = {
    { ZCOMP_LZ4, 1 }, { ZCOMP_LZ4, 32 }, { ZCOMP_LZ4HC, 9 },
    { ZCOMP_ZSTD, 1 }, { ZCOMP_ZSTD, 19 },
  };
  const size_t n = sizeof algos / sizeof algos[0];

  for (kind = ZPOOL_ZS; kind <= ZPOOL_MALLOC; kind++) {
    printf ("pool %s\n", zpool_kind_name (kind));
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++)
        test_pair (algos[i].a, algos[i].l, algos[j].a, algos[j].l);
    test_chain ();
    test_huge ();
    test_refusals ();
  }
  kind = ZPOOL_ZS;
  test_stop_walks ();
  test_limits ();
  test_at_limit ();
  printf ("test-recompress: ok\n");
  return 0;
}
