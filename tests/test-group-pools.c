/* Multi-page groups on both pool kinds, beside a backing store, and under
 * concurrent readers: what test-group (zs only, one thread) does not
 * reach.
 *  - pool=malloc frees each piece itself (zs frees its pages wholesale):
 *    destroying a device with groups must free every piece once (LSan).
 *  - Statistics are exact: members rewritten with the same bytes and the
 *    rest dissolved give back the very compr_data_size of before.
 *  - Members are written back (each compressed alone, leaving its group),
 *    and written-back pages are never grouped.
 *  - Readers of members racing writes, trims, grouping and dissolving on
 *    pool=malloc (freed pieces are really freed: ASan sees a late read).
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zram/backing.h"
#include "zram/zram.h"
#include "check.h"
#include "wb-store-util.h"

#define PAGE  4096u
#define PAGES 128u
#define TEXT  96u               /* 0..95 compressible, all different */

static unsigned char (*model)[PAGE];

static void
text_page (unsigned char *buf, unsigned p, unsigned gen)
{
  static const char *words[] = { "cold ", "page ", "group ", "frame ",
                                 "zstd ", "slot ", "member ", "idle " };
  unsigned long long r = (p + 1) * 0x9e3779b97f4a7c15ULL ^ gen;
  size_t i = 0;

  while (i < PAGE) {
    const char *w = words[test_rand (&r) % 8];
    size_t n = strlen (w);

    if (i + n > PAGE)
      n = PAGE - i;
    memcpy (buf + i, w, n);
    i += n;
    if (i + 4 < PAGE && test_rand (&r) % 8 == 0) {
      uint32_t v = (uint32_t) test_rand (&r);
      memcpy (buf + i, &v, 4);
      i += 4;
    }
  }
}

static void
put (struct zram *z, unsigned p, unsigned gen)
{
  text_page (model[p], p, gen);
  CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
}

static void
verify (struct zram *z, const char *when)
{
  unsigned char got[PAGE];

  for (unsigned p = 0; p < PAGES; p++) {
    CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
    if (memcmp (got, model[p], PAGE) != 0) {
      fprintf (stderr, "%s: page %u differs\n", when, p);
      abort ();
    }
  }
}

static struct zram_group_result
group_all (struct zram *z)
{
  struct zram_group_req req = { .min_age_s = 0 };
  struct zram_group_result res;

  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_group (z, &req, &res) == 0);
  return res;
}

/* Exact statistics through group, rewrite, dissolve, on one pool kind. */
static void
exact_stats (enum zpool_kind pool)
{
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = pool,
                           .group_pages = 16,
                           .group_algo = { ZCOMP_ZSTD, 3 } };
  struct zram_dissolve_result dres;
  struct zram_group_result res;
  struct zram_stats s0, s;
  struct zram *z = zram_create (&c);

  CHECK (z != NULL);
  memset (model, 0, (size_t) PAGES * PAGE);
  for (unsigned p = 0; p < TEXT; p++)
    put (z, p, 0);
  zram_get_stats (z, &s0);
  res = group_all (z);
  CHECK (res.grouped == TEXT && res.groups == TEXT / 16);
  zram_get_stats (z, &s);
  CHECK (s.orig_data_size == s0.orig_data_size);
  CHECK (s.compr_data_size + res.bytes_saved == s0.compr_data_size);
  CHECK (s.idle_pages == TEXT && s.group_pages == TEXT);
  verify (z, "grouped");
  /* Reading is an access: no member is idle any more. */
  zram_get_stats (z, &s);
  CHECK (s.idle_pages == 0 && s.group_pages == TEXT);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);

  /* One member of each group rewritten with its own bytes. */
  for (unsigned p = 0; p < TEXT; p += 16)
    put (z, p, 0);
  zram_get_stats (z, &s);
  CHECK (s.group_pages == TEXT - TEXT / 16);
  if (s.idle_pages != TEXT - TEXT / 16) {
    fprintf (stderr, "idle_pages %" PRIu64 " after rewriting %u members\n",
             s.idle_pages, TEXT / 16);
    abort ();
  }
  CHECK (zram_group_dissolve (z, 100, 0, false, &dres) == 0);
  CHECK (dres.dissolved == TEXT / 16 && dres.failed == 0);
  zram_get_stats (z, &s);
  CHECK (s.group_pages == 0 && s.group_objects == 0 && s.group_compr_size == 0);
  CHECK (s.orig_data_size == s0.orig_data_size);
  if (s.compr_data_size != s0.compr_data_size) {
    fprintf (stderr, "compr_data_size %" PRIu64 ", was %" PRIu64 "\n",
             s.compr_data_size, s0.compr_data_size);
    abort ();
  }
  CHECK (s.idle_pages == TEXT - TEXT / 16);
  CHECK (s.huge_pages == s0.huge_pages);
  verify (z, "dissolved");
  zram_get_stats (z, &s);
  CHECK (s.idle_pages == 0);

  /* Destroyed with groups in it: every piece freed once (LSan, ASan). */
  res = group_all (z);
  CHECK (res.groups > 0);
  /* Some with members gone, one half dissolved at the memory limit. */
  CHECK (zram_trim (z, 3 * PAGE, 16 * PAGE) == 0);
  zram_get_stats (z, &s);
  zram_set_mem_limit (z, s.mem_used_total + 2 * PAGE);
  CHECK (zram_group_dissolve (z, 100, 0, false, &dres) == 0);
  zram_get_stats (z, &s);
  CHECK (s.group_objects > 0 && s.group_pages < TEXT - 3);
  zram_destroy (z);
}

/* Pages recompressed, or found incompressible, then grouped: the
 * per-priority counts follow them out.  And every group codec works (lz4
 * frames do not beat zstd pages: those pages stay primary).
 */
static void
recompressed (enum zcomp_algo group_algo, bool recomp)
{
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
                           .nr_recomp = 1,
                           .recomp = { { ZCOMP_ZSTD, 3 } },
                           .group_pages = 16,
                           .group_algo = { group_algo, 0 } };
  struct zram_recomp_req rreq = { .type = ZRAM_RECOMP_IDLE };
  struct zram_recomp_result rres;
  struct zram_dissolve_result dres;
  struct zram_group_result res;
  struct zram_stats s, s0;
  struct zram *z = zram_create (&c);

  CHECK (z != NULL);
  memset (model, 0, (size_t) PAGES * PAGE);
  for (unsigned p = 0; p < TEXT; p++)
    put (z, p, 3);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  memset (&rres, 0, sizeof rres);
  if (recomp)
    CHECK (zram_recompress (z, &rreq, &rres) == 0);
  zram_get_stats (z, &s0);
  CHECK (!recomp || s0.pages_recomp[0] + s0.incompressible_pages > 0);
  res = group_all (z);
  fprintf (stderr, "recompressed %" PRIu64 " (incompressible %" PRIu64 "), then "
          "scanned %" PRIu64 " grouped %" PRIu64 " rejected %" PRIu64 "\n",
          rres.recompressed, rres.incompressible, res.scanned, res.grouped,
          res.rejected);
  CHECK (res.grouped > 0);
  zram_get_stats (z, &s);
  /* Every stored page is in exactly one of: a group, priority 1, or
   * neither; none is counted twice.
   */
  CHECK (s.group_pages + s.pages_recomp[0] <= TEXT);
  CHECK (s.group_pages + s.incompressible_pages <= TEXT);
  CHECK (s.compr_data_size + res.bytes_saved == s0.compr_data_size);
  verify (z, "recompressed, grouped");
  /* Every member out again (one trimmed per group), recompression
   * finds them as primary pages.
   */
  for (unsigned p = 0; p < TEXT; p += 16) {
    CHECK (zram_trim (z, PAGE, (uint64_t) p * PAGE) == 0);
    memset (model[p], 0, PAGE);
  }
  CHECK (zram_group_dissolve (z, 100, 0, false, &dres) == 0);
  zram_get_stats (z, &s);
  CHECK (s.group_pages == 0 && s.group_objects == 0);
  CHECK (s.pages_recomp[0] + s.incompressible_pages <= TEXT - TEXT / 16);
  verify (z, "dissolved");
  CHECK (zram_trim (z, PAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s);
  CHECK (s.pages_recomp[0] == 0 && s.incompressible_pages == 0 &&
         s.idle_pages == 0 && s.compr_data_size == 0);
  zram_destroy (z);
}

/* Members stay in memory; written-back pages stay out of groups. */
static void
with_store (enum zpool_kind pool)
{
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = pool,
                           .group_pages = 8,
                           .group_algo = { ZCOMP_ZSTD, 1 } };
  char dir[256];
  struct zram_wb_req wreq = { .type = ZRAM_WB_IDLE };
  struct zram_group_result res;
  struct zram_wb_result wres;
  struct zram_stats s;
  struct zram *z;

  wbt_tmpdir (dir, sizeof dir, "test-group-pools");
  c.backing = wbt_store (dir, c.disksize);
  z = zram_create (&c);
  CHECK (z != NULL);
  memset (model, 0, (size_t) PAGES * PAGE);
  for (unsigned p = 0; p < TEXT; p++)
    put (z, p, 1);

  /* Half grouped, then every idle page asked to go to the store. */
  {
    struct zram_group_req req = { .end_index = TEXT / 2 };

    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    CHECK (zram_group (z, &req, &res) == 0);
    CHECK (res.grouped == TEXT / 2);
  }
  /* Members go too (each compressed alone): the coldest pages are in
   * groups, and at the memory limit they must be able to make room.
   */
  CHECK (zram_writeback (z, &wreq, &wres) == 0);
  zram_get_stats (z, &s);
  CHECK (s.group_pages == 0 && s.group_objects == 0 &&
         s.group_compr_size == 0);
  CHECK (s.bd_count == TEXT && wres.written == TEXT);
  verify (z, "members and the rest written back");

  /* Grouping again takes no written-back page. */
  res = group_all (z);
  CHECK (res.grouped == 0);
  /* Members rewritten partly, written back pages read into a merge. */
  for (unsigned p = 0; p < TEXT; p += 5) {
    memset (model[p] + 100, 'q', 50);
    CHECK (zram_write (z, model[p] + 100, 50, (uint64_t) p * PAGE + 100) == 0);
  }
  verify (z, "after partial writes");
  CHECK (zram_trim (z, PAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s);
  CHECK (s.orig_data_size == 0 && s.group_pages == 0 && s.bd_count == 0 &&
         s.compr_data_size == 0);
  zram_destroy (z);
  wbt_cleanup (dir);
}

/* --- readers of members racing everything else (pool=malloc) --------- */

static struct zram *rz;
static volatile int stop;

static void *
reader (void *arg)
{
  unsigned long long r = (uintptr_t) arg + 7;
  unsigned char got[PAGE];

  (void) arg;
  while (!__atomic_load_n (&stop, __ATOMIC_RELAXED)) {
    /* Even pages are never written: their bytes are known. */
    unsigned p = test_rand (&r) % TEXT & ~1u;
    CHECK (zram_read (rz, got, PAGE, (uint64_t) p * PAGE) == 0);
    CHECK (memcmp (got, model[p], PAGE) == 0);
    /* A read ends a page's idleness: leave the grouper some. */
    usleep (test_rand (&r) % 64);
  }
  return NULL;
}

static void *
churner (void *arg)
{
  unsigned long long r = 99;
  unsigned char buf[PAGE];

  (void) arg;
  while (!__atomic_load_n (&stop, __ATOMIC_RELAXED)) {
    unsigned p = test_rand (&r) % TEXT | 1;  /* odd: shares groups */

    switch (test_rand (&r) % 3) {
    case 0:
      text_page (buf, p, 5);
      CHECK (zram_write (rz, buf, PAGE, (uint64_t) p * PAGE) == 0);
      break;
    case 1:
      CHECK (zram_trim (rz, PAGE, (uint64_t) p * PAGE) == 0);
      break;
    default:
      CHECK (zram_discard (rz, 100, (uint64_t) p * PAGE + 9) == 0);
    }
  }
  return NULL;
}

static void
readers_race (void)
{
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = ZPOOL_MALLOC,
                           .group_pages = 16,
                           .group_algo = { ZCOMP_ZSTD, 1 } };
  pthread_t rd[2], ch;
  struct zram_dissolve_result dres;
  struct zram_group_result res;
  uint64_t grouped = 0, out = 0;

  rz = zram_create (&c);
  CHECK (rz != NULL);
  memset (model, 0, (size_t) PAGES * PAGE);
  for (unsigned p = 0; p < TEXT; p++)
    put (rz, p, 2);
  for (unsigned i = 0; i < 2; i++)
    CHECK (pthread_create (&rd[i], NULL, reader, (void *) (uintptr_t) i) == 0);
  CHECK (pthread_create (&ch, NULL, churner, NULL) == 0);
  for (unsigned round = 0; round < 2000; round++) {
    res = group_all (rz);
    grouped += res.grouped;
    CHECK (zram_group_dissolve (rz, 1 + round % 100, 0, false, &dres) == 0);
    out += dres.pages;
    if (round % 50 == 49)
      CHECK (zram_compact (rz) >= 0);
  }
  __atomic_store_n (&stop, 1, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < 2; i++)
    pthread_join (rd[i], NULL);
  pthread_join (ch, NULL);
  printf ("race: %" PRIu64 " pages grouped, %" PRIu64 " dissolved\n",
          grouped, out);
  CHECK (grouped > 0);
  CHECK (zram_trim (rz, PAGES * PAGE, 0) == 0);
  {
    struct zram_stats s;

    zram_get_stats (rz, &s);
    CHECK (s.orig_data_size == 0 && s.compr_data_size == 0 &&
           s.group_pages == 0 && s.group_objects == 0 &&
           s.group_compr_size == 0 && s.idle_pages == 0);
  }
  zram_destroy (rz);
}

int
main (void)
{
  model = calloc (PAGES, PAGE);
  CHECK (model != NULL);
  exact_stats (ZPOOL_ZS);
  exact_stats (ZPOOL_MALLOC);
  recompressed (ZCOMP_ZSTD, true);
  recompressed (ZCOMP_LZ4, false);
  recompressed (ZCOMP_LZ4HC, false);
  with_store (ZPOOL_ZS);
  with_store (ZPOOL_MALLOC);
  readers_race ();
  free (model);
  printf ("test-group-pools: ok\n");
  return 0;
}
