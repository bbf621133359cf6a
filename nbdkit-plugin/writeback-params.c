/* nbdkit-zram: the plugin's writeback limit and writeback policy
 * parameters (see writeback-params.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zram/background.h"
#include "zram/policy-writeback.h"
#include "zram/size.h"
#include "zram/zram.h"
#include "background-params.h"
#include "writeback-params.h"

static struct zram_wb_policy_config policy = {
  .age_s = ZRAM_WB_POLICY_DEFAULT_AGE_S,
  .rate_pages = ZRAM_WB_POLICY_DEFAULT_RATE,
  .high_pm = ZRAM_WB_POLICY_DEFAULT_HIGH_PM,
  .low_pm = ZRAM_WB_POLICY_DEFAULT_LOW_PM,
  .period_ms = ZRAM_WB_POLICY_DEFAULT_PERIOD_MS,
  .room_wait_ms = ZRAM_WB_POLICY_DEFAULT_WAIT_MS,
};
static int policy_on = -1;          /* writeback_policy=; -1 = not given */
static const char *setting_given;   /* a policy setting other than on/off */
static bool low_given;
static uint64_t limit_pages;
static int limit_enable = -1;       /* -1 = not given */
static bool limit_given;

/* Decimal digits only, at most max (as the plugin's milliseconds). */
static int
parse_decimal (const char *key, const char *value, uint64_t max,
               const char *what, uint64_t *out)
{
  const char *c;
  uint64_t v = 0;

  for (c = value; *c >= '0' && *c <= '9' && v <= max; c++)
    v = v * 10 + (unsigned) (*c - '0');
  if (c == value || (*c != '\0' && !(*c >= '0' && *c <= '9'))) {
    nbdkit_error ("%s: '%s' is not a number of %s: use decimal digits "
                  "only, 0 to %" PRIu64, key, value, what, max);
    return -1;
  }
  if (*c != '\0' || v > max) {
    nbdkit_error ("%s: %s %s is too many; at most %" PRIu64, key, value,
                  what, max);
    return -1;
  }
  *out = v;
  return 0;
}

static int
parse_percent (const char *key, const char *value, unsigned *pm)
{
  if (bg_parse_permille (value, pm) == -1 || *pm > 1000) {
    nbdkit_error ("%s: '%s' is not a percentage of mem_limit from 0 to 100 "
                  "(e.g. %s=90)", key, value, key);
    return -1;
  }
  return 0;
}

int
wb_params_config (const char *key, const char *value)
{
  uint64_t v;

  if (strcmp (key, "writeback_policy") == 0) {
    int r = nbdkit_parse_bool (value);

    if (r == -1) {
      nbdkit_error ("writeback_policy: expected on or off, not '%s'", value);
      return -1;
    }
    policy_on = r;
    return 1;
  }
  if (strcmp (key, "writeback_limit") == 0) {
    if (parse_decimal (key, value, ZRAM_WB_LIMIT_MAX, "4 KiB blocks",
                       &limit_pages) == -1)
      return -1;
    limit_given = true;
    return 1;
  }
  if (strcmp (key, "writeback_limit_enable") == 0) {
    limit_enable = nbdkit_parse_bool (value);
    if (limit_enable == -1) {
      nbdkit_error ("writeback_limit_enable: expected true or false, not "
                    "'%s'", value);
      return -1;
    }
    return 1;
  }
  if (strcmp (key, "writeback_age") == 0) {
    if (parse_decimal (key, value, ZRAM_WB_POLICY_MAX_AGE_S, "seconds",
                       &v) == -1)
      return -1;
    policy.age_s = v;
    setting_given = "writeback_age";
  }
  else if (strcmp (key, "writeback_rate") == 0) {
    if (zram_parse_size (value, &v) == -1 || v < ZRAM_PAGE_SIZE ||
        v / ZRAM_PAGE_SIZE > ZRAM_WB_POLICY_MAX_RATE) {
      nbdkit_error ("writeback_rate: '%s' is not a size a second from 4K "
                    "to %" PRIu64 "T (e.g. writeback_rate=10M)", value,
                    ZRAM_WB_POLICY_MAX_RATE * ZRAM_PAGE_SIZE >> 40);
      return -1;
    }
    policy.rate_pages = v / ZRAM_PAGE_SIZE;
    setting_given = "writeback_rate";
  }
  else if (strcmp (key, "writeback_high") == 0) {
    if (parse_percent (key, value, &policy.high_pm) == -1)
      return -1;
    setting_given = "writeback_high";
  }
  else if (strcmp (key, "writeback_low") == 0) {
    if (parse_percent (key, value, &policy.low_pm) == -1)
      return -1;
    low_given = true;
    setting_given = "writeback_low";
  }
  else if (strcmp (key, "writeback_wait") == 0) {
    if (parse_decimal (key, value, ZRAM_ROOM_WAIT_MAX_MS, "milliseconds",
                       &v) == -1)
      return -1;
    policy.room_wait_ms = v;
    setting_given = "writeback_wait";
  }
  else
    return 0;
  return 1;
}

int
wb_params_complete (bool have_backing)
{
  if (!have_backing && (policy_on == 1 || setting_given)) {
    nbdkit_error ("%s: the writeback policy needs a backing store; give "
                  "backing=PATH", policy_on == 1 ? "writeback_policy"
                  : setting_given);
    return -1;
  }
  if (setting_given && policy_on == 0) {
    nbdkit_error ("%s: applies to the writeback policy, but "
                  "writeback_policy=off; leave one of them out",
                  setting_given);
    return -1;
  }
  /* A high watermark below the default low one brings the low one down,
   * unless it was given: then the two must make sense together.
   */
  if (!low_given && policy.high_pm && policy.low_pm >= policy.high_pm)
    policy.low_pm = policy.high_pm * 8 / 9;
  if (policy.high_pm && policy.low_pm >= policy.high_pm) {
    nbdkit_error ("writeback_low: %u.%u %% must be below writeback_high "
                  "(%u.%u %%): pages go to the store from the high mark "
                  "until the pool is under the low one",
                  policy.low_pm / 10, policy.low_pm % 10,
                  policy.high_pm / 10, policy.high_pm % 10);
    return -1;
  }
  if (policy_on == -1)
    policy_on = have_backing;
  if (limit_given && limit_enable == -1)
    limit_enable = 1;
  return 0;
}

void
wb_params_apply (struct zram *zram)
{
  /* Checked in .config: cannot fail. */
  (void) zram_set_writeback_limit (zram, limit_pages);
  zram_set_writeback_limit_enable (zram, limit_enable == 1);
}

int
wb_policy_add (struct zram_bg *bg, struct zram *zram)
{
  if (policy_on != 1)
    return 0;
  policy.log = bg_log_debug;
  if (zram_wb_policy_add (bg, zram, &policy) == -1) {
    nbdkit_error ("writeback_policy: cannot add the writeback policy: %m");
    return -1;
  }
  nbdkit_debug ("writeback policy: pages idle %" PRIu32 " s (0: off) at "
                "most %" PRIu64 " pages/s; coldest first from %u.%u %% to "
                "%u.%u %% of mem_limit; writes at the limit wait %u ms",
                policy.age_s, policy.rate_pages, policy.high_pm / 10,
                policy.high_pm % 10, policy.low_pm / 10, policy.low_pm % 10,
                policy.room_wait_ms);
  return 0;
}
