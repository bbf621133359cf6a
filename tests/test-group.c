/* Multi-page groups (zram_group, zram_group_dissolve), one path at a time:
 * what gets grouped, that every byte reads back, that each way a member
 * leaves (write, partial write, trim, zero, dissolve, reset) frees what it
 * should, that the statistics add up after each step, and that the memory
 * limit holds.  The racing of all of these is test-recompress-stress.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE   4096u
#define PAGES  256u
#define TEXT   64u              /* pages 0..63: compressible, all different */
#define ZEROS  8u               /* 64..71: zero */
#define RANDOM 8u               /* 72..79: random (stored raw, "huge") */

static struct zram *z;
static unsigned char (*model)[PAGE];
static unsigned long long rnd = 42;

static void
text_page (unsigned char *buf, unsigned p)
{
  static const char *words[] = { "cold ", "page ", "group ", "frame ",
                                 "zstd ", "slot ", "member ", "idle " };
  size_t i = 0;

  /* Pages share words (what a group's frame gains from) but not their
   * order, so no two are alike.
   */
  while (i < PAGE) {
    const char *w = words[test_rand (&rnd) % 8];
    size_t n = strlen (w);

    if (i + n > PAGE)
      n = PAGE - i;
    memcpy (buf + i, w, n);
    i += n;
    if (i + 4 < PAGE && test_rand (&rnd) % 8 == 0) {
      uint32_t v = (uint32_t) test_rand (&rnd) ^ p;
      memcpy (buf + i, &v, 4);
      i += 4;
    }
  }
}

static void
write_page (unsigned p, const unsigned char *buf)
{
  CHECK (zram_write (z, buf, PAGE, (uint64_t) p * PAGE) == 0);
  memcpy (model[p], buf, PAGE);
}

static void
verify_all (const char *when)
{
  unsigned char got[PAGE];

  for (unsigned p = 0; p < PAGES; p++) {
    CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
    if (memcmp (got, model[p], PAGE) != 0) {
      fprintf (stderr, "%s: page %u differs from the model\n", when, p);
      exit (1);
    }
  }
  /* Unaligned reads across member boundaries too. */
  for (unsigned p = 1; p < TEXT; p += 7) {
    unsigned char two[PAGE];

    CHECK (zram_read (z, two, PAGE, (uint64_t) p * PAGE - 100) == 0);
    CHECK (memcmp (two, model[p - 1] + PAGE - 100, 100) == 0);
    CHECK (memcmp (two + 100, model[p], PAGE - 100) == 0);
  }
}

/* Every stored page is accounted once, and the group bytes are part of
 * compr_data_size.
 */
static void
check_sums (const char *when)
{
  struct zram_stats s;

  zram_get_stats (z, &s);
  CHECK (s.group_compr_size <= s.compr_data_size);
  CHECK (s.group_pages <= s.orig_data_size / PAGE);
  CHECK ((s.group_objects == 0) == (s.group_pages == 0));
  CHECK ((s.group_objects == 0) == (s.group_compr_size == 0));
  printf ("%-28s stored %3" PRIu64 " (same %" PRIu64 ", huge %" PRIu64
          ", in %" PRIu64 " groups %3" PRIu64 ")  compr %7" PRIu64
          " (groups %6" PRIu64 ")  pool %7" PRIu64 "\n", when,
          s.orig_data_size / PAGE, s.same_pages, s.huge_pages, s.group_objects,
          s.group_pages, s.compr_data_size, s.group_compr_size,
          s.mem_used_total);
}

static struct zram_group_result
group_all (void)
{
  struct zram_group_req req = { .min_age_s = 0 };
  struct zram_group_result res;

  CHECK (zram_group (z, &req, &res) == 0);
  CHECK (res.next_index == PAGES);
  return res;
}

static void
fill (void)
{
  unsigned char buf[PAGE];

  for (unsigned p = 0; p < TEXT; p++) {
    text_page (buf, p);
    write_page (p, buf);
  }
  memset (buf, 0, PAGE);
  for (unsigned p = TEXT; p < TEXT + ZEROS; p++)
    write_page (p, buf);
  for (unsigned p = TEXT + ZEROS; p < TEXT + ZEROS + RANDOM; p++) {
    for (unsigned i = 0; i < PAGE; i += 8) {
      uint64_t v = test_rand (&rnd);
      memcpy (buf + i, &v, 8);
    }
    write_page (p, buf);
  }
}

int
main (void)
{
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
                           .group_pages = 16,
                           .group_algo = { ZCOMP_ZSTD, 3 } };
  struct zram_group_result res;
  struct zram_dissolve_result dres;
  struct zram_stats s0, s;
  unsigned char buf[PAGE];

  model = calloc (PAGES, PAGE);
  CHECK (model != NULL);

  /* Bad configurations and requests change nothing. */
  c.group_pages = 1;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.group_pages = ZRAM_GROUP_MAX_PAGES + 1;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.group_pages = 0;
  z = zram_create (&c);
  CHECK (z != NULL);
  {
    struct zram_group_req req = { .min_age_s = 0 };

    CHECK (zram_group (z, &req, &res) == -1 && errno == EINVAL);
  }
  zram_destroy (z);
  c.group_pages = 16;
  z = zram_create (&c);
  CHECK (z != NULL);
  CHECK (zram_group_dissolve (z, 0, 0, false, &dres) == -1 && errno == EINVAL);
  CHECK (zram_group_dissolve (z, 101, 0, false, &dres) == -1 && errno == EINVAL);
  {
    struct zram_group_req req = { .start_index = 10, .end_index = 5 };

    CHECK (zram_group (z, &req, &res) == -1 && errno == EINVAL);
    req.start_index = 0;
    req.end_index = PAGES + 1;
    CHECK (zram_group (z, &req, &res) == -1 && errno == EINVAL);
  }

  fill ();
  check_sums ("written");
  zram_get_stats (z, &s0);

  /* Nothing is idle yet: nothing is grouped. */
  res = group_all ();
  CHECK (res.grouped == 0 && res.groups == 0);

  /* Idle pages are grouped, 16 at a time; zero and raw pages are not. */
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  res = group_all ();
  printf ("grouped %" PRIu64 " pages in %" PRIu64 " groups, saved %" PRIu64
          " bytes, rejected %" PRIu64 "\n", res.grouped, res.groups,
          res.bytes_saved, res.rejected);
  CHECK (res.grouped == TEXT && res.groups == TEXT / 16 && res.raced == 0);
  check_sums ("grouped");
  CHECK (zram_compact (z) >= 0);
  check_sums ("compacted");
  zram_get_stats (z, &s);
  CHECK (s.group_pages == TEXT && s.group_objects == TEXT / 16);
  CHECK (s.orig_data_size == s0.orig_data_size);
  CHECK (s.compr_data_size + res.bytes_saved == s0.compr_data_size);
  CHECK (s.compr_data_size < s0.compr_data_size);
  CHECK (s.idle_pages == s0.idle_pages + TEXT + RANDOM ||
         s.idle_pages == TEXT + RANDOM);
  CHECK (s.same_pages == s0.same_pages && s.huge_pages == s0.huge_pages);
  verify_all ("after grouping");

  /* A second pass finds nothing new: members are not grouped again. */
  res = group_all ();
  CHECK (res.grouped == 0);

  /* Members leave one way each: whole write, partial write, trim,
   * partial zero, whole zero.
   */
  text_page (buf, 1000);
  write_page (0, buf);
  memset (buf, 'x', 300);
  CHECK (zram_write (z, buf, 300, 1 * PAGE + 1000) == 0);
  memcpy (model[1] + 1000, buf, 300);
  CHECK (zram_trim (z, PAGE, 2 * PAGE) == 0);
  memset (model[2], 0, PAGE);
  CHECK (zram_discard (z, 500, 3 * PAGE + 7) == 0);
  memset (model[3] + 7, 0, 500);
  CHECK (zram_discard (z, PAGE, 4 * PAGE) == 0);
  memset (model[4], 0, PAGE);
  check_sums ("5 members left group 0");
  zram_get_stats (z, &s);
  CHECK (s.group_pages == TEXT - 5 && s.group_objects == TEXT / 16);
  verify_all ("after members left");

  /* A group whose members all leave is freed: trim group 1 whole. */
  CHECK (zram_trim (z, 16 * PAGE, 16 * PAGE) == 0);
  memset (model[16], 0, 16 * PAGE);
  check_sums ("group 1 trimmed");
  zram_get_stats (z, &s);
  CHECK (s.group_pages == TEXT - 5 - 16 && s.group_objects == TEXT / 16 - 1);

  /* Dissolve: group 0 kept 11 of 16 (68 %): below 70 % it goes, not
   * below 50 %.
   */
  CHECK (zram_group_dissolve (z, 50, 0, false, &dres) == 0);
  CHECK (dres.groups == 0 && dres.pages == 0);
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  zram_get_stats (z, &s0);
  CHECK (zram_group_dissolve (z, 70, 0, false, &dres) == 0);
  CHECK (dres.groups == 1 && dres.dissolved == 1 && dres.pages == 11 &&
         dres.failed == 0);
  check_sums ("group 0 dissolved");
  zram_get_stats (z, &s);
  CHECK (s.group_pages == 32 && s.group_objects == 2 && s.groups_dissolved == 1);
  /* Its pages kept their idleness, so they can be grouped again: with
   * pages 0, 1 and 3 (alone since they were written), 14 pages.
   */
  CHECK (s.idle_pages == s0.idle_pages);
  res = group_all ();
  CHECK (res.grouped == 14 && res.groups == 1);
  verify_all ("after dissolving and regrouping");
  verify_all ("after regrouping");

  /* Compaction moves pieces, not meaning. */
  CHECK (zram_compact (z) >= 0);
  verify_all ("after compaction");

  /* The memory limit: a group's frame is allocated before its members'
   * objects are freed, so at the limit grouping leaves pages alone.
   */
  CHECK (zram_reset (z, true, NULL) == 0);
  memset (model, 0, (size_t) PAGES * PAGE);
  fill ();
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  zram_get_stats (z, &s0);
  zram_set_mem_limit (z, s0.mem_used_total);
  res = group_all ();
  zram_get_stats (z, &s);
  printf ("at the limit: grouped %" PRIu64 ", nospace %" PRIu64 "\n",
          res.grouped, res.nospace);
  CHECK (s.mem_used_total <= s0.mem_used_total);
  CHECK (res.grouped + res.nospace + res.rejected == TEXT);
  verify_all ("at the limit");
  zram_set_mem_limit (z, 0);

  /* Reset frees groups too (ASan/LSan see leaks), and leaves nothing. */
  res = group_all ();
  CHECK (zram_reset (z, true, NULL) == 0);
  memset (model, 0, (size_t) PAGES * PAGE);
  zram_get_stats (z, &s);
  CHECK (s.group_objects == 0 && s.group_pages == 0 && s.compr_data_size == 0);
  verify_all ("after reset");

  /* And so does destroying a device that has groups. */
  fill ();
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  res = group_all ();
  CHECK (res.groups > 0);
  zram_destroy (z);

  /* With a dictionary (the words the pages are made of): pages written
   * with it give it up when grouped; frames use it only if the groups'
   * own trial says it pays, and each member then counts on it.  Every
   * byte reads back either way, and the counts end at 0.
   */
  {
    static const char dict[] = "cold page group frame zstd slot member idle "
                               "cold page group frame zstd slot member idle ";
    uint64_t with_dict;

    c.dict = dict;
    c.dict_len = sizeof dict - 1;
    z = zram_create (&c);
    CHECK (z != NULL);
    memset (model, 0, (size_t) PAGES * PAGE);
    fill ();
    zram_get_stats (z, &s);
    CHECK (s.dict_version == 1 && s.dict_pages == TEXT);
    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    res = group_all ();
    CHECK (res.grouped == TEXT);
    zram_get_stats (z, &s);
    with_dict = s.dict_pages;
    printf ("with a dictionary: %" PRIu64 " pages in %" PRIu64 " groups, "
            "%" PRIu64 " of them counted on the dictionary, saved %" PRIu64
            "\n", res.grouped, res.groups, with_dict, res.bytes_saved);
    CHECK (with_dict <= TEXT && with_dict % 16 == 0);
    verify_all ("groups with a dictionary");
    /* Members leave: their counts go. */
    CHECK (zram_trim (z, 8 * PAGE, 0) == 0);
    memset (model[0], 0, 8 * PAGE);
    zram_get_stats (z, &s);
    CHECK (s.dict_pages == (with_dict >= 16 ? with_dict - 8 : with_dict) ||
           s.dict_pages == with_dict);
    CHECK (zram_group_dissolve (z, 100, 0, false, &dres) == 0);
    verify_all ("dissolved, with a dictionary");
    CHECK (zram_trim (z, PAGES * PAGE, 0) == 0);
    zram_get_stats (z, &s);
    CHECK (s.dict_pages == 0 && s.group_pages == 0 && s.compr_data_size == 0);
    zram_destroy (z);
  }
  free (model);
  printf ("test-group: ok\n");
  return 0;
}
