/* Unit test of writeback_limit (zram's semantics), in the core and through
 * the control protocol: the budget is spent one unit per 4 KiB block
 * written to the store (packing one or more pages) and stops writeback
 * with EDQUOT at 0; disabled, writeback is unlimited and
 * the budget stays; set and get agree; bad values are refused and change
 * nothing.  Also ZRAM_WB_COLD's age selection, which the policy uses.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "zram/zctl.h"
#include "wb-store-util.h"

#define NPAGES 512

static char dir[256];
static unsigned char model[NPAGES][ZRAM_PAGE_SIZE];
static char reply[ZCTL_REPLY_MAX];

static int
ctl (struct zram *z, const char *line)
{
  return zctl_execute (z, line, strlen (line), reply, sizeof reply);
}

/* The value of key in the last "stats" reply, or UINT64_MAX. */
static uint64_t
stat_key (struct zram *z, const char *key)
{
  char want[64];
  const char *p;

  CHECK (ctl (z, "stats") == 0);
  snprintf (want, sizeof want, "\n%s=", key);
  p = strstr (reply, want);
  return p ? strtoull (p + strlen (want), NULL, 10) : UINT64_MAX;
}

static uint64_t
limit_left (struct zram *z, bool *enabled)
{
  uint64_t pages;

  zram_get_writeback_limit (z, enabled, &pages);
  return pages;
}

static int
wb_all (struct zram *z, struct zram_wb_result *res)
{
  struct zram_wb_req req = { .type = ZRAM_WB_COLD, .min_age_s = 0 };

  return zram_writeback (z, &req, res);
}

static void
verify (struct zram *z)
{
  unsigned char buf[ZRAM_PAGE_SIZE];

  for (uint64_t p = 0; p < NPAGES; p++) {
    CHECK (zram_read (z, buf, ZRAM_PAGE_SIZE, p * ZRAM_PAGE_SIZE) == 0);
    CHECK (memcmp (buf, model[p], ZRAM_PAGE_SIZE) == 0);
  }
}

static struct zram *
filled (void)
{
  struct zram *z = wbt_device (dir, NPAGES, 0);

  for (uint64_t p = 0; p < NPAGES; p++) {
    wbt_page (model[p], p, 0);
    CHECK (zram_write (z, model[p], ZRAM_PAGE_SIZE, p * ZRAM_PAGE_SIZE) == 0);
  }
  return z;
}

/* Blocks of the store in use (none are freed in these tests, so: blocks
 * written).
 */
static uint64_t
blocks_used (struct zram *z)
{
  struct zram_stats s;

  zram_get_stats (z, &s);
  return s.bd_blocks_used;
}

static void
test_budget (void)
{
  struct zram *z = filled ();
  struct zram_wb_result res;
  struct zram_stats s;
  uint64_t same = NPAGES / 8, total = 0, used;
  bool on;

  /* zram's defaults: disabled, no budget. */
  EXPECT (limit_left (z, &on) == 0 && !on, "default limit");

  /* Enabled with 0 left: nothing is written. */
  zram_set_writeback_limit_enable (z, true);
  EXPECT (wb_all (z, &res) == -1 && errno == EDQUOT && res.written == 0,
          "budget 0: errno %d, written %" PRIu64, errno, res.written);
  EXPECT (blocks_used (z) == 0, "budget 0 wrote blocks");

  /* 10 blocks of budget: exactly 10 blocks written (packing at least one
   * page each), then EDQUOT, budget 0.
   */
  CHECK (zram_set_writeback_limit (z, 10) == 0);
  EXPECT (wb_all (z, &res) == -1 && errno == EDQUOT && res.written >= 10,
          "budget 10: errno %d, written %" PRIu64, errno, res.written);
  total += res.written;
  EXPECT (blocks_used (z) == 10, "budget 10 wrote %" PRIu64 " blocks",
          blocks_used (z));
  EXPECT (limit_left (z, &on) == 0 && on, "budget after 10");
  zram_get_stats (z, &s);
  EXPECT (s.bd_count == total && s.wb_limit == 0 && s.wb_limit_enable,
          "stats: bd_count %" PRIu64 " wb_limit %" PRIu64, s.bd_count,
          s.wb_limit);
  printf ("budget of 10 blocks: %" PRIu64 " pages written back\n", total);

  /* max_pages below what the budget allows: the budget keeps the rest. */
  CHECK (zram_set_writeback_limit (z, 50) == 0);
  used = blocks_used (z);
  {
    struct zram_wb_req req = { .type = ZRAM_WB_COLD, .max_pages = 20 };

    EXPECT (zram_writeback (z, &req, &res) == 0 && res.written == 20,
            "max_pages 20, budget 50: written %" PRIu64, res.written);
  }
  total += res.written;
  used = blocks_used (z) - used;
  EXPECT (used >= 1 && used <= 20 && limit_left (z, &on) == 50 - used,
          "%" PRIu64 " blocks for 20 pages, budget left %" PRIu64, used,
          limit_left (z, &on));

  /* Disabled: unlimited, and the budget is left alone. */
  zram_set_writeback_limit_enable (z, false);
  EXPECT (wb_all (z, &res) == 0 && res.written == NPAGES - same - total,
          "unlimited: written %" PRIu64 ", expected %" PRIu64, res.written,
          NPAGES - same - total);
  EXPECT (limit_left (z, &on) == 50 - used && !on,
          "budget kept while disabled");
  verify (z);

  /* Refusals change nothing. */
  EXPECT (zram_set_writeback_limit (z, ZRAM_WB_LIMIT_MAX + 1) == -1 &&
          errno == EINVAL, "too large accepted");
  EXPECT (limit_left (z, &on) == 50 - used, "refused value changed the budget");
  CHECK (zram_set_writeback_limit (z, ZRAM_WB_LIMIT_MAX) == 0);
  EXPECT (limit_left (z, &on) == ZRAM_WB_LIMIT_MAX, "largest budget");

  /* A reset keeps the limit, as zram's does not clear it either. */
  CHECK (zram_set_writeback_limit (z, 5) == 0);
  zram_set_writeback_limit_enable (z, true);
  CHECK (zram_reset (z, true, NULL) == 0);
  EXPECT (limit_left (z, &on) == 5 && on, "limit after reset");
  zram_destroy (z);
}

static void
test_ctl (void)
{
  static const char *const bad[] = {
    "writeback_limit", "writeback_limit -1", "writeback_limit abc",
    "writeback_limit 1 2", "writeback_limit 0x10", "writeback_limit 1e3",
    "writeback_limit 4503599627370497",
    "writeback_limit 99999999999999999999999",
    "writeback_limit_enable", "writeback_limit_enable 2",
    "writeback_limit_enable yes", "writeback_limit_enable 1 1",
    "writeback_limit_enable -1",
  };
  struct zram *z = filled ();

  EXPECT (stat_key (z, "writeback_limit_enable") == 0 &&
          stat_key (z, "writeback_limit") == 0, "stats keys: %s", reply);
  CHECK (ctl (z, "writeback_limit 7") == 0);
  CHECK (ctl (z, "writeback_limit_enable 1") == 0);
  EXPECT (stat_key (z, "writeback_limit") == 7 &&
          stat_key (z, "writeback_limit_enable") == 1, "set: %s", reply);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    EXPECT (ctl (z, bad[i]) == -1 && strncmp (reply, "error EINVAL: ", 14) == 0,
            "'%s' accepted or wrong error: %s", bad[i], reply);
    EXPECT (stat_key (z, "writeback_limit") == 7 &&
            stat_key (z, "writeback_limit_enable") == 1,
            "'%s' changed the limit", bad[i]);
  }
  /* Writeback through the socket spends it and says why it stopped. */
  EXPECT (ctl (z, "idle all") == 0, "idle all");
  EXPECT (ctl (z, "writeback type=idle") == -1 &&
          strncmp (reply, "error EDQUOT: ", 14) == 0 &&
          strstr (reply, "writeback limit is used up after") != NULL,
          "EDQUOT reply: %s", reply);
  EXPECT (stat_key (z, "backing_blocks_used") == 7 &&
          stat_key (z, "bd_count") >= 7 &&
          stat_key (z, "writeback_limit") == 0, "after: %s", reply);
  CHECK (ctl (z, "writeback_limit_enable 0") == 0);
  EXPECT (ctl (z, "writeback type=idle") == 0, "unlimited: %s", reply);
  EXPECT (stat_key (z, "bd_count") == NPAGES - NPAGES / 8, "all written");
  /* The stats reply, with the new keys, still fits with room to spare
   * (a reply that does not fit loses its last keys).
   */
  CHECK (ctl (z, "stats") == 0);
  EXPECT (strlen (reply) < ZCTL_REPLY_MAX - 512 &&
          strstr (reply, "\ngroup_policy_yielded=") != NULL,
          "stats reply of %zu bytes", strlen (reply));
  printf ("stats reply: %zu of %d bytes\n", strlen (reply), ZCTL_REPLY_MAX);
  verify (z);
  zram_destroy (z);
}

/* ZRAM_WB_COLD selects by access time. */
static void
test_cold (void)
{
  struct zram *z = filled ();
  struct zram_wb_req req = { .type = ZRAM_WB_COLD, .min_age_s = 3600 };
  struct zram_wb_result res;

  EXPECT (zram_writeback (z, &req, &res) == 0 && res.written == 0,
          "pages an hour old: %" PRIu64, res.written);
  req.min_age_s = 0;
  req.start_index = 100;
  req.end_index = 108;
  EXPECT (zram_writeback (z, &req, &res) == 0 && res.written == 7,
          "every page of 100..107 but the same-filled: %" PRIu64, res.written);
  req.type = ZRAM_WB_COLD + 1;
  EXPECT (zram_writeback (z, &req, &res) == -1 && errno == EINVAL,
          "unknown type accepted");
  verify (z);
  zram_destroy (z);
}

int
main (void)
{
  wbt_tmpdir (dir, sizeof dir, "test-writeback-limit");
  test_budget ();
  test_ctl ();
  test_cold ();
  wbt_cleanup (dir);
  return check_failures ? 1 : 0;
}
