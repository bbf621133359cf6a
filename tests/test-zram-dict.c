/* Unit test of the device with a user dictionary (zram_config.dict):
 * pages written with it read back, with every algorithm, after a reset
 * (which keeps it, for a new algorithm too), after writeback (its pages
 * stay counted) and recompression (which drops it); dict_pages follows
 * every store and free; a dictionary the algorithm refuses fails
 * zram_create with EINVAL; trained dictionaries pass or fail the A/B
 * gate, wait with all indices in use, and are freed when unused; the
 * policy trains in its thread.  (Many threads: test-dict-rotate.c.)
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <string.h>

#include "zram/background.h"
#include "zram/policy-dict.h"
#include "zram/zcomp-dict.h"
#include "wb-store-util.h"

#define PAGE ZRAM_PAGE_SIZE
#define NPAGES 256
#define TOKENS 512
#define TOKEN 32

static unsigned char vocab[TOKENS * TOKEN];

/* Generations with this bit are text that zstd compresses much better
 * than lz4 does, dictionary or not.
 */
#define GEN_TEXT 0x80000000u

/* Pages of random tokens from vocab: poor alone, good with vocab as the
 * dictionary.  Every 16th page is random (huge), every 16th + 1 zeroes.
 */
static void
fill_page (unsigned char *p, uint64_t index, uint32_t gen)
{
  static const char *words[] = { "slot ", "page ", "zram ", "the ", "lock\n",
                                 "compressed ", "memory ", "of " };
  unsigned long long seed = (index << 20 | gen) * 0x9e3779b97f4a7c15ULL + 1;

  if (index % 16 == 1) {
    memset (p, 0, PAGE);
    return;
  }
  if ((gen & GEN_TEXT) && index % 16 != 0) {
    for (size_t i = 0; i < PAGE; ) {
      const char *w = words[test_rand (&seed) % 8];
      for (; *w && i < PAGE; ++w)
        p[i++] = *w;
    }
    return;
  }
  for (size_t i = 0; i < PAGE; i += TOKEN) {
    unsigned long long r = test_rand (&seed);
    if (index % 16 == 0)
      for (size_t j = 0; j < TOKEN; j += 8)
        memcpy (p + i + j, &r, 8), r = test_rand (&seed);
    else
      memcpy (p + i, vocab + (r % TOKENS) * TOKEN, TOKEN);
  }
}

static struct zram_stats
stats (struct zram *z)
{
  struct zram_stats s;

  zram_get_stats (z, &s);
  return s;
}

static void
write_all (struct zram *z, uint32_t gen)
{
  unsigned char page[PAGE];

  for (uint64_t i = 0; i < NPAGES; i++) {
    fill_page (page, i, gen);
    CHECK (zram_write (z, page, PAGE, i * PAGE) == 0);
  }
}

static void
check_all (struct zram *z, uint32_t gen)
{
  unsigned char page[PAGE], back[PAGE];

  for (uint64_t i = 0; i < NPAGES; i++) {
    fill_page (page, i, gen);
    CHECK (zram_read (z, back, PAGE, i * PAGE) == 0);
    CHECK (memcmp (page, back, PAGE) == 0);
  }
}

/* Pages neither same-filled nor random: those compressed with the dict. */
#define DICT_PAGES (NPAGES - 2 * NPAGES / 16)

static void
test_algo (enum zcomp_algo algo)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = algo,
                           .pool = ZPOOL_ZS };
  struct zram *plain, *z;
  struct zram_stats s, sp;
  unsigned char page[PAGE];

  plain = zram_create (&c);
  CHECK (plain != NULL);
  c.dict = vocab;
  c.dict_len = sizeof vocab;
  z = zram_create (&c);
  CHECK (z != NULL);
  s = stats (z);
  CHECK (s.dict_version == 1 && s.dict_bytes == sizeof vocab);
  CHECK (s.dict_pages == 0 && s.dict_mem_bytes >= sizeof vocab / 4);

  write_all (plain, 0);
  write_all (z, 0);
  check_all (z, 0);
  s = stats (z);
  sp = stats (plain);
  CHECK (s.dict_pages == DICT_PAGES);
  CHECK (sp.dict_pages == 0 && sp.dict_version == 0);
  /* The vocabulary is in the dictionary: at least half the bytes go. */
  CHECK (s.compr_data_size * 2 < sp.compr_data_size);
  CHECK (s.huge_pages == NPAGES / 16 && s.same_pages == NPAGES / 16);

  /* Overwrite, partial write, trim: the count follows. */
  write_all (z, 1);
  check_all (z, 1);
  CHECK (stats (z).dict_pages == DICT_PAGES);
  fill_page (page, 2, 1);
  memset (page + 100, 0xee, 10);
  CHECK (zram_write (z, page + 100, 10, 2 * PAGE + 100) == 0);
  CHECK (zram_read (z, page, PAGE, 2 * PAGE) == 0);
  CHECK (page[100] == 0xee && page[109] == 0xee);
  CHECK (stats (z).dict_pages == DICT_PAGES);
  CHECK (zram_discard (z, 4 * PAGE, 2 * PAGE) == 0);   /* pages 2..5 */
  CHECK (stats (z).dict_pages == DICT_PAGES - 4);

  /* A reset keeps the dictionary, prepared for the new algorithm. */
  {
    struct zram_config nc = c;

    nc.algo = algo == ZCOMP_ZSTD ? ZCOMP_LZ4 : ZCOMP_ZSTD;
    nc.level = 0;
    CHECK (zram_reset (z, true, &nc) == 0);
    s = stats (z);
    CHECK (s.dict_version == 1 && s.dict_pages == 0 && s.algo == nc.algo);
    write_all (z, 2);
    check_all (z, 2);
    CHECK (stats (z).dict_pages == DICT_PAGES);
    CHECK (zram_reset (z, true, NULL) == 0);
    CHECK (stats (z).dict_pages == 0);
  }
  zram_destroy (z);
  zram_destroy (plain);
}

/* A zstd dictionary header that is no dictionary: refused. */
static void
test_bad_dict (void)
{
  unsigned char fake[256] = { 0x37, 0xa4, 0x30, 0xec };
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_ZSTD,
                           .pool = ZPOOL_ZS, .dict = fake,
                           .dict_len = sizeof fake };

  errno = 0;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.dict_len = ZCOMP_DICT_MAX + 1;
  c.dict = vocab;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
}

/* Written back, the pages keep their dictionary; recompressed, they
 * leave it.
 */
static void
test_writeback_recompress (void)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_LZ4,
                           .pool = ZPOOL_ZS, .dict = vocab,
                           .dict_len = sizeof vocab, .nr_recomp = 1,
                           .recomp = { { ZCOMP_ZSTD, 19 } } };
  struct zram_recomp_req rq = { .type = ZRAM_RECOMP_IDLE };
  struct zram_recomp_result rr;
  struct zram_wb_req wq = { .type = ZRAM_WB_IDLE, .end_index = NPAGES / 2 };
  struct zram_wb_result wr;
  struct zram *z;
  unsigned char page[PAGE], back[PAGE];
  char dir[256], path[512], err[BACKING_ERR_MAX];
  int fd;

  wbt_tmpdir (dir, sizeof dir, "test-zram-dict");
  snprintf (path, sizeof path, "%s/store", dir);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0);
  close (fd);
  c.backing = backing_open (path, c.disksize, err, sizeof err);
  CHECK (c.backing != NULL);
  z = zram_create (&c);
  CHECK (z != NULL);
  write_all (z, 3);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_writeback (z, &wq, &wr) == 0);
  CHECK (wr.written > 0);
  CHECK (stats (z).dict_pages == DICT_PAGES);
  check_all (z, 3);           /* reads from the store, with the dictionary */
  /* Text in the second half (lz4 with the dictionary still), which
   * zstd-19 beats: those pages leave the dictionary.
   */
  for (uint64_t i = NPAGES / 2; i < NPAGES; i++) {
    fill_page (page, i, 3 | GEN_TEXT);
    CHECK (zram_write (z, page, PAGE, i * PAGE) == 0);
  }
  CHECK (stats (z).dict_pages == DICT_PAGES);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_recompress (z, &rq, &rr) == 0);
  CHECK (rr.recompressed > 0);
  CHECK (stats (z).dict_pages == DICT_PAGES - rr.recompressed);
  for (uint64_t i = 0; i < NPAGES; i++) {
    fill_page (page, i, i < NPAGES / 2 ? 3 : 3 | GEN_TEXT);
    CHECK (zram_read (z, back, PAGE, i * PAGE) == 0);
    CHECK (memcmp (page, back, PAGE) == 0);
  }
  /* Writing over the written-back pages uncounts them. */
  write_all (z, 4);
  check_all (z, 4);
  CHECK (stats (z).dict_pages == DICT_PAGES);
  zram_destroy (z);
  wbt_cleanup (dir);
}

/* Trained dictionaries, one step at a time: the A/B gate rejects what
 * does not gain enough; three dictionaries in use make training wait;
 * freeing the pages of one frees it for the next training.  Quarter q of
 * the device holds pages of vocabulary q; when the next quarter is
 * written, all but KEEP pages of the last one are trimmed, so that the
 * samples come from the new quarter and each old dictionary stays in use.
 */
enum { PER = NPAGES / 4, KEEP = 4 };
static unsigned char vocabs[4][sizeof vocab];

static void
fill_q (unsigned char *page, uint64_t i)
{
  memcpy (vocab, vocabs[i / PER], sizeof vocab);
  fill_page (page, i, 5);
}

static void
write_q (struct zram *z, unsigned q)
{
  unsigned char page[PAGE];

  for (uint64_t i = q * PER; i < (q + 1) * PER; i++) {
    fill_q (page, i);
    CHECK (zram_write (z, page, PAGE, i * PAGE) == 0);
  }
}

static void
test_train (enum zcomp_algo algo)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = algo,
                           .pool = ZPOOL_ZS };
  struct zram_dict_train_req req = { .dict_bytes = 16384, .samples = 32,
                                     .gain_pm = 20 };
  struct zram_dict_train_result res;
  unsigned char page[PAGE], back[PAGE];
  unsigned long long seed = 1234;
  struct zram_stats s;
  struct zram *z = zram_create (&c);

  CHECK (z != NULL);
  for (unsigned q = 0; q < 4; q++)
    for (size_t i = 0; i < sizeof vocab; ++i)
      vocabs[q][i] = test_rand (&seed) >> 56;
  /* Nothing stored: too few. */
  CHECK (zram_dict_train (z, &req, &res) == 0 && res.outcome == ZRAM_DICT_TOO_FEW);
  for (unsigned q = 0; q < 4; q++) {
    /* Pages 2..2+KEEP of a quarter are token pages (see fill_page). */
    if (q > 0)
      CHECK (zram_discard (z, (PER - 2 - KEEP) * PAGE,
                           ((q - 1) * PER + 2 + KEEP) * PAGE) == 0);
    write_q (z, q);
    /* A gain of 100 % is never reached.  With 3 in use, training waits
     * before it samples.
     */
    req.gain_pm = 1000;
    CHECK (zram_dict_train (z, &req, &res) == 0);
    CHECK (res.outcome == (q < 3 ? ZRAM_DICT_REJECTED : ZRAM_DICT_FULL));
    if (q < 3)
      CHECK (res.bytes_dict > 0 && res.held_out == 8 && res.sampled == 32);
    req.gain_pm = 20;
    CHECK (zram_dict_train (z, &req, &res) == 0);
    s = stats (z);
    if (q < 3) {
      CHECK (res.outcome == ZRAM_DICT_PUBLISHED);
      CHECK (res.bytes_dict * 1000 <= res.bytes_now * 980);
      CHECK (s.dict_version == res.version && res.version == q + 2);
      write_q (z, q);         /* now with its dictionary */
      CHECK (stats (z).dict_pages >= q * KEEP + PER / 2);
    }
    else
      CHECK (res.outcome == ZRAM_DICT_FULL);   /* 3 in use */
  }
  s = stats (z);
  CHECK (s.dict_trainings == 3 + 3 && s.dict_rejected == 3);
  /* Without the last quarter, only the kept pages use dictionaries (and
   * maybe a random page 0 of a quarter, when the trainer put its bytes
   * into a dictionary: it samples pages stored raw too).
   */
  CHECK (zram_discard (z, PER * PAGE, 3 * PER * PAGE) == 0);
  s = stats (z);
  CHECK (s.dict_pages >= 3 * KEEP && s.dict_pages <= 3 * (KEEP + 1));
  /* Free the first quarter's pages: its dictionary goes at the next
   * training (which finds too few pages), and the one after publishes.
   */
  CHECK (zram_discard (z, PER * PAGE, 0) == 0);
  CHECK (zram_dict_train (z, &req, &res) == 0);
  CHECK (res.freed == 1 && res.outcome == ZRAM_DICT_TOO_FEW);
  s = stats (z);
  CHECK (s.dict_pages >= 2 * KEEP && s.dict_pages <= 2 * (KEEP + 1));
  write_q (z, 3);
  CHECK (zram_dict_train (z, &req, &res) == 0);
  CHECK (res.freed == 0 && res.outcome == ZRAM_DICT_PUBLISHED);
  CHECK (res.version == 5);
  /* What is left reads back, each page with its own dictionary. */
  for (uint64_t i = PER; i < NPAGES; i++) {
    if (i < 3 * PER && i % PER >= 2 + KEEP)
      memset (page, 0, PAGE);
    else
      fill_q (page, i);
    CHECK (zram_read (z, back, PAGE, i * PAGE) == 0);
    CHECK (memcmp (page, back, PAGE) == 0);
  }
  /* A reset keeps no trained dictionary. */
  CHECK (zram_reset (z, true, NULL) == 0);
  s = stats (z);
  CHECK (s.dict_version == 0 && s.dict_mem_bytes == 0);
  zram_destroy (z);
}

/* The policy: bad settings refused; in its thread, it publishes a
 * dictionary for pages that need one.
 */
static void
test_policy (void)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_LZ4,
                           .pool = ZPOOL_ZS };
  struct zram_dict_policy_config pc;
  struct zram *z = zram_create (&c);
  struct zram_bg *bg = zram_bg_create (0);
  struct zram_bg_counts counts;
  double t0;
  int id;

  CHECK (z != NULL && bg != NULL);
  zram_dict_policy_defaults (&pc);
  CHECK (pc.req.gain_pm == ZRAM_DICT_TRAIN_DEFAULT_GAIN_PM);
  pc.period_ms = 0;
  CHECK (zram_dict_policy_add (bg, z, &pc) == -1 && errno == EINVAL);
  zram_dict_policy_defaults (&pc);
  pc.req.samples = 2;
  CHECK (zram_dict_policy_add (bg, z, &pc) == -1 && errno == EINVAL);
  zram_dict_policy_defaults (&pc);
  pc.req.gain_pm = 1001;
  CHECK (zram_dict_policy_add (bg, z, &pc) == -1 && errno == EINVAL);
  zram_dict_policy_defaults (&pc);
  pc.period_ms = 10;
  pc.min_pages = 64;
  pc.budget_pm = ZRAM_BG_UNLIMITED;
  pc.req.samples = 64;
  pc.req.dict_bytes = 16384;
  id = zram_dict_policy_add (bg, z, &pc);
  CHECK (id >= 0 && zram_bg_find (bg, ZRAM_DICT_POLICY) == id);
  /* Every page stored before the policy starts: a round that began
   * half-way through the writes (slow under TSan) trained on the fewer
   * pages there were then, and work >= 64 below failed.
   */
  write_all (z, 7);
  CHECK (zram_bg_start (bg) == 0);
  t0 = test_now ();
  /* The round is counted once it returns, after it published. */
  do {
    usleep (10000);
    zram_bg_counts (bg, id, &counts);
  } while ((stats (z).dict_version == 0 || counts.rounds == 0) &&
           test_now () - t0 < 30);
  CHECK (stats (z).dict_version >= 2);
  CHECK (counts.rounds >= 1 && counts.work >= 64);
  write_all (z, 7);
  check_all (z, 7);
  CHECK (stats (z).dict_pages > 0);
  zram_bg_destroy (bg);
  zram_destroy (z);
}

int
main (void)
{
  unsigned long long seed = 99;

  for (size_t i = 0; i < sizeof vocab; ++i)
    vocab[i] = test_rand (&seed) >> 56;
  test_bad_dict ();
  test_algo (ZCOMP_LZ4);
  test_algo (ZCOMP_LZ4HC);
  test_algo (ZCOMP_ZSTD);
  test_writeback_recompress ();
  test_train (ZCOMP_LZ4);
  test_train (ZCOMP_ZSTD);
  test_policy ();
  printf ("test-zram-dict: ok\n");
  return 0;
}
