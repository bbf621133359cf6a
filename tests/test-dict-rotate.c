/* Stress test: dictionaries trained and rotated (zram_dict_train) while
 * threads write, read and trim pages, and another marks pages idle,
 * writes them back (so pages in the store keep old dictionaries, read
 * without the slot lock), packs them into multi-page groups and takes
 * groups apart (a page compressed with a dictionary leaves it when it
 * joins a group, and a member taken out is compressed with the newest).  Every read matches a model; in the end the
 * dictionaries no page uses are freed and the counts add up.  Then, with
 * no model, training races resets and writes: nothing breaks, and a
 * training that a reset overtook says so.  Meant to
 * run under ASan and TSan too.
 *   DR_SECONDS   how long the workers run at least (default 5)
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "zram/zcomp-dict.h"
#include "wb-store-util.h"

#define PAGE ZRAM_PAGE_SIZE
#define NPAGES 512
#define WORKERS 3
#define VOCABS 4
#define TOKENS 256
#define TOKEN 32
#define MAX_SECONDS 40

static unsigned char vocab[VOCABS][TOKENS * TOKEN];
static atomic_uint epoch;     /* which vocabulary new pages use */
static atomic_bool stop;

/* A page made of tokens of one vocabulary (its generation says which),
 * except every 32nd page, random, and every 32nd + 1, zeroes.
 */
static void
fill_page (unsigned char *p, uint64_t index, uint32_t gen)
{
  unsigned long long seed = (index << 24 | gen) * 0x9e3779b97f4a7c15ULL + 3;
  const unsigned char *v = vocab[gen % VOCABS];

  if (index % 32 == 1) {
    memset (p, 0, PAGE);
    return;
  }
  for (size_t i = 0; i < PAGE; i += TOKEN) {
    unsigned long long r = test_rand (&seed);
    if (index % 32 == 0)
      for (size_t j = 0; j < TOKEN; j += 8, r = test_rand (&seed))
        memcpy (p + i + j, &r, 8);
    else
      memcpy (p + i, v + (r % TOKENS) * TOKEN, TOKEN);
  }
}

struct worker {
  struct zram *z;
  unsigned id;
  uint32_t gen[NPAGES];       /* 0: trimmed; else generation (low bits:
                                 vocabulary) */
  uint64_t ops;
};

static void *
worker (void *arg)
{
  struct worker *w = arg;
  unsigned long long seed = w->id * 7919 + 1;
  unsigned char page[PAGE], back[PAGE];
  uint32_t next = 0;

  while (!atomic_load (&stop)) {
    uint64_t i = (test_rand (&seed) % (NPAGES / WORKERS)) * WORKERS + w->id;
    unsigned what = test_rand (&seed) % 10;

    w->ops++;
    if (what < 4) {
      next += VOCABS;
      w->gen[i] = next + atomic_load (&epoch) % VOCABS;
      fill_page (page, i, w->gen[i]);
      CHECK (zram_write (w->z, page, PAGE, i * PAGE) == 0);
    }
    else if (what == 4) {
      /* Partial write: decompresses the page (any dictionary) first. */
      if (w->gen[i] == 0)
        continue;
      fill_page (page, i, w->gen[i]);
      CHECK (zram_write (w->z, page + 64, 64, i * PAGE + 64) == 0);
    }
    else if (what == 5) {
      w->gen[i] = 0;
      CHECK (zram_discard (w->z, PAGE, i * PAGE) == 0);
    }
    else {
      if (w->gen[i])
        fill_page (page, i, w->gen[i]);
      else
        memset (page, 0, PAGE);
      CHECK (zram_read (w->z, back, PAGE, i * PAGE) == 0);
      if (memcmp (page, back, PAGE) != 0) {
        fprintf (stderr, "page %llu differs (gen %u)\n",
                 (unsigned long long) i, w->gen[i]);
        abort ();
      }
    }
  }
  return NULL;
}

static uint64_t grouped, ungrouped;

/* Idle marking, writeback, grouping and dissolving, over and over. */
static void *
writer_back (void *arg)
{
  struct zram *z = arg;
  struct zram_wb_req req = { .type = ZRAM_WB_IDLE, .max_pages = 64 };
  struct zram_wb_result res;
  struct zram_group_req greq = { .max_pages = 64 };
  struct zram_group_result gres;
  struct zram_dissolve_result dres;
  unsigned long long r = 11;

  while (!atomic_load (&stop)) {
    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    if (test_rand (&r) % 2 && zram_writeback (z, &req, &res) == -1)
      CHECK (errno == ENOSPC);
    greq.start_index = test_rand (&r) % NPAGES;
    CHECK (zram_group (z, &greq, &gres) == 0);
    grouped += gres.grouped;
    CHECK (zram_group_dissolve (z, 1 + test_rand (&r) % 100, 8, false,
                                &dres) == 0);
    ungrouped += dres.pages;
    usleep (2000);
  }
  return NULL;
}

/* Resets, over and over, until stop. */
static void *
resetter (void *arg)
{
  struct zram *z = arg;

  while (!atomic_load (&stop)) {
    CHECK (zram_reset (z, true, NULL) == 0);
    usleep (3000);
  }
  return NULL;
}

/* Writes that may fail with EIO while a reset has the device down. */
static void *
blind_writer (void *arg)
{
  struct zram *z = arg;
  unsigned char page[PAGE];
  uint32_t g = 1;

  while (!atomic_load (&stop)) {
    for (uint64_t i = 0; i < NPAGES && !atomic_load (&stop); i++) {
      fill_page (page, i, g);
      if (zram_write (z, page, PAGE, i * PAGE) == -1)
        CHECK (errno == EIO);
    }
    g++;
  }
  return NULL;
}

static void
race_resets (struct zram *z)
{
  struct zram_dict_train_req req = { .dict_bytes = 8192, .samples = 64 };
  struct zram_dict_train_result res;
  unsigned n = 0, raced = 0;
  pthread_t r, w;
  double t0 = test_now ();

  atomic_store (&stop, false);
  CHECK (pthread_create (&w, NULL, blind_writer, z) == 0);
  CHECK (pthread_create (&r, NULL, resetter, z) == 0);
  while (test_now () - t0 < 2 || n < 5) {
    if (zram_dict_train (z, &req, &res) == -1)
      CHECK (errno == EIO);   /* the device was down */
    else {
      raced += res.outcome == ZRAM_DICT_RACED;
      n++;
    }
  }
  atomic_store (&stop, true);
  pthread_join (r, NULL);
  pthread_join (w, NULL);
  printf ("under resets: %u trainings, %u overtaken by a reset\n", n, raced);
}

int
main (void)
{
  static struct worker w[WORKERS];
  const char *env = getenv ("DR_SECONDS");
  double seconds = env ? atof (env) : 5, t0;
  struct zram_dict_train_req req = { .dict_bytes = 8192, .samples = 64,
                                     .gain_pm = 0 };
  struct zram_dict_train_result res;
  unsigned outcomes[6] = { 0 }, freed = 0;
  pthread_t t[WORKERS], wb;
  unsigned long long seed = 5;
  char dir[256];
  struct zram_stats s;
  struct zram *z;

  for (unsigned v = 0; v < VOCABS; v++)
    for (size_t i = 0; i < sizeof vocab[v]; i++)
      vocab[v][i] = test_rand (&seed) >> 56;
  wbt_tmpdir (dir, sizeof dir, "test-dict-rotate");
  {
    struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_LZ4,
                             .pool = ZPOOL_ZS, .group_pages = 8,
                             .group_algo = { ZCOMP_ZSTD, 1 } };

    c.backing = wbt_store (dir, c.disksize);
    z = zram_create (&c);
    CHECK (z != NULL);
  }

  for (unsigned j = 0; j < WORKERS; j++) {
    w[j].z = z;
    w[j].id = j;
    CHECK (pthread_create (&t[j], NULL, worker, &w[j]) == 0);
  }
  CHECK (pthread_create (&wb, NULL, writer_back, z) == 0);
  t0 = test_now ();
  /* At least DR_SECONDS, and until rotation has both published and
   * freed (slow under TSan), but never past MAX_SECONDS.
   */
  while (test_now () - t0 < MAX_SECONDS &&
         (test_now () - t0 < seconds || outcomes[ZRAM_DICT_PUBLISHED] < 4 ||
          freed < 1)) {
    CHECK (zram_dict_train (z, &req, &res) == 0);
    CHECK (res.outcome >= ZRAM_DICT_PUBLISHED && res.outcome <= ZRAM_DICT_RACED);
    outcomes[res.outcome]++;
    freed += res.freed;
    atomic_fetch_add (&epoch, 1);
    usleep (20000);
  }
  atomic_store (&stop, true);
  for (unsigned j = 0; j < WORKERS; j++)
    pthread_join (t[j], NULL);
  pthread_join (wb, NULL);

  zram_get_stats (z, &s);
  printf ("ops %llu; trainings: %u published, %u rejected, %u too few, "
          "%u full; %u freed; dict_pages %llu of %llu stored\n",
          (unsigned long long) (w[0].ops + w[1].ops + w[2].ops),
          outcomes[ZRAM_DICT_PUBLISHED], outcomes[ZRAM_DICT_REJECTED],
          outcomes[ZRAM_DICT_TOO_FEW], outcomes[ZRAM_DICT_FULL], freed,
          (unsigned long long) s.dict_pages,
          (unsigned long long) (s.orig_data_size / PAGE));
  printf ("%llu pages grouped, %llu taken out of groups\n",
          (unsigned long long) grouped, (unsigned long long) ungrouped);
  CHECK (grouped > 0);
  /* Rotation happened, and made indices run out and come free again. */
  CHECK (outcomes[ZRAM_DICT_PUBLISHED] >= 3);
  CHECK (freed >= 1);
  CHECK (s.dict_trainings == outcomes[ZRAM_DICT_PUBLISHED] +
                             outcomes[ZRAM_DICT_REJECTED]);
  CHECK (s.dict_rejected == outcomes[ZRAM_DICT_REJECTED]);
  CHECK (s.dict_pages <= s.orig_data_size / PAGE - s.same_pages - s.huge_pages);

  /* Every byte, once more, with nothing moving. */
  for (unsigned j = 0; j < WORKERS; j++) {
    unsigned char page[PAGE], back[PAGE];

    for (uint64_t i = j; i < NPAGES; i += WORKERS) {
      if (w[j].gen[i])
        fill_page (page, i, w[j].gen[i]);
      else
        memset (page, 0, PAGE);
      CHECK (zram_read (z, back, PAGE, i * PAGE) == 0);
      CHECK (memcmp (page, back, PAGE) == 0);
    }
  }

  /* Trim everything: no page uses a dictionary; a training frees all but
   * the current one (and finds too few pages).
   */
  CHECK (zram_discard (z, NPAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s);
  CHECK (s.dict_pages == 0);
  CHECK (zram_dict_train (z, &req, &res) == 0);
  CHECK (res.outcome == ZRAM_DICT_TOO_FEW);
  {
    struct zram_stats s2;
    zram_get_stats (z, &s2);
    /* Only the current dictionary is left. */
    CHECK (s2.dict_version == 0 || s2.dict_mem_bytes < s.dict_mem_bytes ||
           res.freed == 0);
    CHECK (s2.dict_version == s.dict_version);
  }
  /* Bad settings. */
  req.samples = 1;
  CHECK (zram_dict_train (z, &req, &res) == -1 && errno == EINVAL);
  req.samples = 64;
  req.gain_pm = 1001;
  CHECK (zram_dict_train (z, &req, &res) == -1 && errno == EINVAL);

  race_resets (z);
  zram_destroy (z);
  wbt_cleanup (dir);
  printf ("test-dict-rotate: ok\n");
  return 0;
}
