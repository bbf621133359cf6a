/* Multi-page groups and dictionaries together, one step at a time:
 * groups built with the user's dictionary (their frames count on it),
 * then dictionaries rotated several times while other groups are built
 * with each newest one, then the members read, written back, dissolved,
 * trimmed; the device reset while such groups exist.  After each step
 * every byte reads back and dict_pages says how many pages a dictionary
 * holds; in the end no page uses one and every retired one is freed.
 * dict_mem_bytes counts the dictionaries' copies for the groups'
 * compressor.  Last, all of it races trainings and resets.  Run with
 * argument "zs" or "malloc" (the pool); under ASan a dictionary freed too
 * early is a use after free.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "wb-store-util.h"

#define PAGE    ZRAM_PAGE_SIZE
#define NPAGES  256u
#define HALF    64u             /* 0..HALF-1: the user's dictionary's pages */
#define VOCABS  5
#define TOKENS  256
#define TOKEN   32

static unsigned char vocab[VOCABS][TOKENS * TOKEN];
static unsigned char (*model)[PAGE];
static struct zram *z;

/* Page p of vocabulary v: its tokens in an order of its own, so that a
 * dictionary of the vocabulary pays, for one page and for a group.
 */
static void
make_page (unsigned char *buf, unsigned p, unsigned v, unsigned round)
{
  unsigned long long r = ((unsigned long long) p << 32 | round << 8 | v) *
                         0x9e3779b97f4a7c15ULL + 1;

  for (size_t i = 0; i < PAGE; i += TOKEN)
    memcpy (buf + i, vocab[v] + (test_rand (&r) % TOKENS) * TOKEN, TOKEN);
}

static void
write_range (unsigned from, unsigned to, unsigned v, unsigned round)
{
  for (unsigned p = from; p < to; p++) {
    make_page (model[p], p, v, round);
    CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
  }
}

static void
check_all (const char *when)
{
  unsigned char back[PAGE];

  for (unsigned p = 0; p < NPAGES; p++) {
    CHECK (zram_read (z, back, PAGE, (uint64_t) p * PAGE) == 0);
    if (memcmp (back, model[p], PAGE) != 0) {
      fprintf (stderr, "%s: page %u differs\n", when, p);
      abort ();
    }
  }
}

static uint64_t
group_range (unsigned from, unsigned to)
{
  struct zram_group_req req = { .start_index = from, .end_index = to };
  struct zram_group_result res;

  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_group (z, &req, &res) == 0);
  return res.grouped;
}

static struct zram_stats
stats (void)
{
  struct zram_stats s;

  zram_get_stats (z, &s);
  return s;
}

/* --- the race phase: no model, only "nothing breaks" ------------------- */

static volatile int stop_race;  /* written once, by main, after the join's */

static void *
race_walker (void *arg)
{
  struct zram_wb_req wreq = { .type = ZRAM_WB_IDLE, .max_pages = 32 };
  struct zram_group_req greq = { .max_pages = 0 };
  struct zram_group_result gres;
  struct zram_wb_result wres;
  struct zram_dissolve_result dres;
  unsigned long long r = 3;

  (void) arg;
  while (!__atomic_load_n (&stop_race, __ATOMIC_RELAXED)) {
    /* Each may find the device down (EIO) or its pages gone meanwhile. */
    if (zram_mark_idle (z, 0, NULL) == -1)
      CHECK (errno == EIO);
    if (zram_group (z, &greq, &gres) == -1)
      CHECK (errno == EIO);
    if (test_rand (&r) % 2 && zram_writeback (z, &wreq, &wres) == -1)
      CHECK (errno == EIO || errno == ENOSPC);
    if (zram_group_dissolve (z, 1 + test_rand (&r) % 100, 4, false,
                             &dres) == -1)
      CHECK (errno == EIO);
    /* The statistics read each dictionary (and its group copy) while a
     * training may free it.
     */
    CHECK (stats ().dict_pages <= NPAGES);
  }
  return NULL;
}

static void *
race_writer (void *arg)
{
  unsigned char page[PAGE], back[PAGE];
  unsigned long long r = 5;
  unsigned round = 1000;

  (void) arg;
  while (!__atomic_load_n (&stop_race, __ATOMIC_RELAXED)) {
    unsigned p = test_rand (&r) % NPAGES, what = test_rand (&r) % 4;

    make_page (page, p, (round / 4096) % VOCABS, round);
    round++;
    if (what == 0 && zram_discard (z, PAGE, (uint64_t) p * PAGE) == -1)
      CHECK (errno == EIO);
    else if (what == 1 && zram_read (z, back, PAGE, (uint64_t) p * PAGE) == -1)
      CHECK (errno == EIO);
    else if (what >= 2 &&
             zram_write (z, page, PAGE, (uint64_t) p * PAGE) == -1)
      CHECK (errno == EIO);
  }
  return NULL;
}

static unsigned race_published; /* atomic: publications in the race */

/* A reset after each publication (so that the state it frees holds
 * groups built with trained dictionaries), or every second.
 */
static void *
race_resetter (void *arg)
{
  unsigned seen = 0;

  (void) arg;
  while (!__atomic_load_n (&stop_race, __ATOMIC_RELAXED)) {
    double t0 = test_now ();

    while (!__atomic_load_n (&stop_race, __ATOMIC_RELAXED) &&
           __atomic_load_n (&race_published, __ATOMIC_RELAXED) == seen &&
           test_now () - t0 < 1)
      usleep (1000);
    seen = __atomic_load_n (&race_published, __ATOMIC_RELAXED);
    usleep (20000);           /* time for a group walk with it */
    CHECK (zram_reset (z, true, NULL) == 0);
  }
  return NULL;
}

int
main (int argc, char **argv)
{
  enum zpool_kind pool = argc > 1 && strcmp (argv[1], "malloc") == 0
                         ? ZPOOL_MALLOC : ZPOOL_ZS;
  struct zram_dict_train_req treq = { .dict_bytes = 8192, .samples = 64 };
  struct zram_dict_train_result tres;
  struct zram_wb_req wreq = { .type = ZRAM_WB_IDLE };
  struct zram_wb_result wres;
  struct zram_dissolve_result dres;
  unsigned long long seed = 9;
  unsigned published = 0, freed = 0;
  struct zram_stats s;
  char dir[256];

  setvbuf (stdout, NULL, _IOLBF, 0);
  model = calloc (NPAGES, PAGE);
  CHECK (model != NULL);
  for (unsigned v = 0; v < VOCABS; v++)
    for (size_t i = 0; i < sizeof vocab[v]; i++)
      vocab[v][i] = test_rand (&seed) >> 56;
  wbt_tmpdir (dir, sizeof dir, "test-group-dict");
  {
    struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_ZSTD,
                             .pool = pool, .group_pages = 16,
                             .group_algo = { ZCOMP_ZSTD, 1 },
                             .dict = vocab[0], .dict_len = sizeof vocab[0] };

    c.backing = wbt_store (dir, c.disksize);
    z = zram_create (&c);
    CHECK (z != NULL);
  }

  /* 1. Pages of the user's dictionary, grouped: the frames use it too
   * (their trial: the dictionary holds every token), so the pages stay
   * counted on it.
   */
  write_range (0, HALF, 0, 0);
  s = stats ();
  CHECK (s.dict_pages == HALF);
  CHECK (group_range (0, HALF) == HALF);
  s = stats ();
  printf ("user dictionary: %llu groups of %llu pages, %llu bytes; "
          "dict_pages %llu\n", (unsigned long long) s.group_objects,
          (unsigned long long) s.group_pages,
          (unsigned long long) s.group_compr_size,
          (unsigned long long) s.dict_pages);
  CHECK (s.group_pages == HALF);
  CHECK (s.dict_pages == HALF);
  check_all ("grouped with the user's dictionary");
  {
    /* The dictionary prepared for the groups' compressor is memory the
     * dictionaries take too: more than the same device without groups.
     */
    struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_ZSTD,
                             .pool = pool, .dict = vocab[0],
                             .dict_len = sizeof vocab[0] };
    struct zram *plain = zram_create (&c);
    struct zram_stats ps;

    CHECK (plain != NULL);
    zram_get_stats (plain, &ps);
    printf ("dict_mem_bytes %llu with groups, %llu without\n",
            (unsigned long long) s.dict_mem_bytes,
            (unsigned long long) ps.dict_mem_bytes);
    CHECK (s.dict_mem_bytes > ps.dict_mem_bytes);
    zram_destroy (plain);
  }

  /* 2. Rotate: the other half written with another vocabulary, a
   * dictionary trained on it, the half written again and grouped with
   * the new one; the index of the round before frees up.
   */
  for (unsigned round = 1; round <= 6; round++) {
    unsigned v = 1 + round % (VOCABS - 1);

    write_range (HALF, NPAGES, v, round);
    CHECK (zram_dict_train (z, &treq, &tres) == 0);
    freed += tres.freed;
    printf ("round %u: outcome %d, freed %u, now %llu dict %llu\n", round,
            tres.outcome, tres.freed, (unsigned long long) tres.bytes_now,
            (unsigned long long) tres.bytes_dict);
    published += tres.outcome == ZRAM_DICT_PUBLISHED;
    CHECK (tres.outcome == ZRAM_DICT_PUBLISHED);
    write_range (HALF, NPAGES, v, round + 100);
    CHECK (group_range (HALF, NPAGES) == NPAGES - HALF);
    s = stats ();
    CHECK (s.dict_pages == NPAGES);   /* every page, by some dictionary */
    check_all ("after a rotation");
  }
  printf ("%u published, %u freed\n", published, freed);
  CHECK (freed >= 4);

  /* 3. Members leave their groups each way, the pages read back. */
  wreq.end_index = 40;        /* groups 0, 1 and half of 2 */
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_writeback (z, &wreq, &wres) == 0);
  printf ("written back: %llu\n", (unsigned long long) wres.written);
  CHECK (wres.written > 0);
  s = stats ();
  CHECK (s.dict_pages == NPAGES - wres.written);
  check_all ("after writeback");
  CHECK (zram_group_dissolve (z, 100, 0, false, &dres) == 0);
  CHECK (dres.pages == 8 && dres.failed == 0);  /* group 2's other half */
  check_all ("after dissolve");
  CHECK (stats ().group_pages == s.group_pages - dres.pages);
  s = stats ();
  /* Dissolved members are compressed with the newest dictionary. */
  CHECK (s.dict_pages == NPAGES - wres.written);

  /* 4. Trimmed: no page uses a dictionary, every retired one is freed. */
  CHECK (zram_discard (z, NPAGES * PAGE, 0) == 0);
  memset (model, 0, (size_t) NPAGES * PAGE);
  s = stats ();
  CHECK (s.dict_pages == 0);
  CHECK (s.group_objects == 0 && s.group_pages == 0 && s.group_compr_size == 0);
  CHECK (zram_dict_train (z, &treq, &tres) == 0);
  CHECK (tres.outcome == ZRAM_DICT_TOO_FEW);
  CHECK (tres.freed == ZRAM_MAX_DICT - 1);
  check_all ("trimmed");

  /* 5. A reset with groups of several dictionaries stored. */
  write_range (0, HALF, 0, 7);
  CHECK (group_range (0, HALF) == HALF);
  write_range (HALF, NPAGES, 1, 7);
  CHECK (zram_dict_train (z, &treq, &tres) == 0);
  CHECK (tres.outcome == ZRAM_DICT_PUBLISHED);
  write_range (HALF, NPAGES, 1, 8);
  CHECK (group_range (HALF, NPAGES) == NPAGES - HALF);
  check_all ("before the reset");
  CHECK (zram_reset (z, true, NULL) == 0);
  memset (model, 0, (size_t) NPAGES * PAGE);
  check_all ("after the reset");
  s = stats ();
  CHECK (s.dict_pages == 0 && s.group_objects == 0);
  CHECK (s.dict_version == 1);        /* the user's, anew */
  write_range (0, HALF, 0, 9);
  CHECK (group_range (0, HALF) == HALF);
  CHECK (stats ().dict_pages == HALF);
  check_all ("grouped after the reset");

  /* 6. All of it at once, with trainings, resets and statistics: groups
   * with dictionaries freed by a reset while walks, reads and a training
   * use them (ASan, TSan).
   */
  {
    pthread_t t[3];
    void *(*fn[3]) (void *) = { race_walker, race_writer, race_resetter };
    unsigned trainings = 0, outcomes[6] = { 0 };
    double t0 = test_now ();

    published = 0;

    for (unsigned j = 0; j < 3; j++)
      CHECK (pthread_create (&t[j], NULL, fn[j], NULL) == 0);
    /* At least 2 s and a few publications (slow under TSan), at most 20 s. */
    while (test_now () - t0 < 20 &&
           (test_now () - t0 < 2 || trainings < 5 || published < 3)) {
      if (zram_dict_train (z, &treq, &tres) == -1)
        CHECK (errno == EIO);
      else {
        trainings++;
        published += tres.outcome == ZRAM_DICT_PUBLISHED;
        __atomic_store_n (&race_published, published, __ATOMIC_RELAXED);
        outcomes[tres.outcome]++;
      }
      s = stats ();
      CHECK (s.dict_pages <= NPAGES);
    }
    __atomic_store_n (&stop_race, 1, __ATOMIC_RELAXED);
    for (unsigned j = 0; j < 3; j++)
      pthread_join (t[j], NULL);
    printf ("race: %u trainings, %u published, %u rejected, %u too few, "
            "%u full, %u raced\n", trainings, published,
            outcomes[ZRAM_DICT_REJECTED], outcomes[ZRAM_DICT_TOO_FEW],
            outcomes[ZRAM_DICT_FULL], outcomes[ZRAM_DICT_RACED]);
  }
  /* Still consistent: trimmed, nothing counts on a dictionary. */
  CHECK (zram_discard (z, NPAGES * PAGE, 0) == 0);
  s = stats ();
  CHECK (s.dict_pages == 0 && s.group_objects == 0 && s.group_pages == 0);

  zram_destroy (z);
  wbt_cleanup (dir);
  free (model);
  printf ("test-group-dict: ok\n");
  return 0;
}
