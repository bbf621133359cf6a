/* nbdkit-zram: the plugin's background work and its parameters
 * (see background-params.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zram/background.h"
#include "zram/policy-trim.h"
#include "zram/compactor.h"
#include "zram/policy-recompress.h"
#include "zram/zram.h"
#include "background-params.h"
#include "writeback-params.h"
#include "group-params.h"
#include "dict-params.h"

static struct zram_recomp_policy_config policy = {
  .age_s = ZRAM_RECOMP_POLICY_DEFAULT_AGE_S,
  .budget_pm = ZRAM_RECOMP_POLICY_DEFAULT_BUDGET_PM,
  .rate_pages = ZRAM_RECOMP_POLICY_DEFAULT_RATE,
  .soft_pm = ZRAM_RECOMP_POLICY_DEFAULT_SOFT_PM,
  .period_ms = ZRAM_RECOMP_POLICY_DEFAULT_PERIOD_MS,
};
static int policy_on = -1;         /* recomp_policy=; -1 = not given */
static const char *setting_given;  /* a recomp_* setting other than on/off */
static struct zram_bg *bg;

int
bg_parse_permille (const char *s, unsigned *pm)
{
  unsigned whole = 0, tenth = 0, digits = 0;

  for (; *s >= '0' && *s <= '9'; s++, digits++) {
    if (whole > 1000)
      return -1;
    whole = whole * 10 + (unsigned) (*s - '0');
  }
  if (*s == '.' && s[1] >= '0' && s[1] <= '9') {
    tenth = (unsigned) (s[1] - '0');
    s += 2;
    digits++;
  }
  if (*s == '%')
    s++;
  if (digits == 0 || *s != '\0' || whole > 1000)
    return -1;
  *pm = whole * 10 + tenth;
  return 0;
}

void
bg_log_debug (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  nbdkit_vdebug (fmt, ap);
  va_end (ap);
}

int
bg_params_config (const char *key, const char *value)
{
  unsigned pm;

  if (strcmp (key, "recomp_policy") == 0) {
    int r = nbdkit_parse_bool (value);

    if (r == -1) {
      nbdkit_error ("recomp_policy: expected on or off, not '%s'", value);
      return -1;
    }
    policy_on = r;
    return 1;
  }
  if (strcmp (key, "recomp_age") == 0) {
    if (nbdkit_parse_uint32_t ("recomp_age", value, &policy.age_s) == -1)
      return -1;
    if (policy.age_s == 0 || policy.age_s > ZRAM_RECOMP_POLICY_MAX_AGE_S) {
      nbdkit_error ("recomp_age: %" PRIu32 " seconds is out of range; give "
                    "1 to %" PRIu32 " (how long a page must go unread and "
                    "unwritten before it is recompressed)", policy.age_s,
                    ZRAM_RECOMP_POLICY_MAX_AGE_S);
      return -1;
    }
  }
  else if (strcmp (key, "recomp_budget") == 0) {
    if (bg_parse_permille (value, &pm) == -1 || pm == 0 || pm > 1000) {
      nbdkit_error ("recomp_budget: '%s' is not a share of one core between "
                    "0.1 and 100 (per cent, e.g. recomp_budget=5)", value);
      return -1;
    }
    policy.budget_pm = pm;
  }
  else if (strcmp (key, "recomp_rate") == 0) {
    if (nbdkit_parse_uint64_t ("recomp_rate", value, &policy.rate_pages) == -1)
      return -1;
    if (policy.rate_pages > ZRAM_RECOMP_POLICY_MAX_RATE) {
      nbdkit_error ("recomp_rate: %" PRIu64 " pages a second is too many; "
                    "at most %" PRIu64 ", or 0 for no cap",
                    policy.rate_pages, ZRAM_RECOMP_POLICY_MAX_RATE);
      return -1;
    }
  }
  else if (strcmp (key, "recomp_soft_limit") == 0) {
    if (bg_parse_permille (value, &pm) == -1 || pm > 1000) {
      nbdkit_error ("recomp_soft_limit: '%s' is not a percentage of "
                    "mem_limit from 0 to 100 (e.g. recomp_soft_limit=90; "
                    "0 = never)", value);
      return -1;
    }
    policy.soft_pm = pm;
  }
  else
    return 0;
  setting_given = key[7] == 'a' ? "recomp_age" : key[7] == 'b'
    ? "recomp_budget" : key[7] == 'r' ? "recomp_rate" : "recomp_soft_limit";
  return 1;
}

int
bg_params_complete (unsigned nr_recomp)
{
  if (policy_on == 1 && nr_recomp == 0) {
    nbdkit_error ("recomp_policy: recompression needs a secondary algorithm; "
                  "give recomp_algorithm= (e.g. recomp_algorithm=zstd:19)");
    return -1;
  }
  if (setting_given && nr_recomp == 0) {
    nbdkit_error ("%s: applies to the recompression policy, which needs a "
                  "secondary algorithm; give recomp_algorithm= or leave "
                  "%s out", setting_given, setting_given);
    return -1;
  }
  if (setting_given && policy_on == 0) {
    nbdkit_error ("%s: applies to the recompression policy, but "
                  "recomp_policy=off; leave one of them out",
                  setting_given);
    return -1;
  }
  if (policy_on == -1)
    policy_on = nr_recomp > 0;
  return 0;
}

int
bg_start (struct zram *zram)
{
  policy.log = bg_log_debug;
  bg = zram_bg_create (BG_NICE);
  if (bg == NULL) {
    nbdkit_error ("cannot make the background framework: %m");
    return -1;
  }
  /* Background compaction when fragmentation passes the threshold. */
  if (zram_compactor_add (bg, zram, ZRAM_COMPACTOR_DEFAULT_INTERVAL_MS,
                          ZRAM_COMPACTOR_DEFAULT_THRESHOLD) == -1) {
    nbdkit_error ("cannot add background compaction: %m");
    goto fail;
  }
  if (policy_on == 1 && zram_recomp_policy_add (bg, zram, &policy) == -1) {
    nbdkit_error ("recomp_policy: cannot add the recompression policy: %m");
    goto fail;
  }
  if (wb_policy_add (bg, zram) == -1 || group_policy_add (bg, zram) == -1 ||
      dict_policy_add (bg, zram) == -1)
    goto fail;
  /* Blocks of the store given back by requests are trimmed here. */
  if (zram_trim_policy_add (bg, zram) == -1) {
    nbdkit_error ("cannot add the background trim of the backing store: %m");
    goto fail;
  }
  if (zram_bg_start (bg) == -1) {
    nbdkit_error ("cannot start the background thread: %m");
    goto fail;
  }
  zram_set_background (zram, bg);
  if (policy_on == 1)
    nbdkit_debug ("recompression policy: pages idle %" PRIu32 " s, budget "
                  "%u.%u %% of a core, rate %" PRIu64 " pages/s (0: no cap), "
                  "soft limit %u.%u %% of mem_limit", policy.age_s,
                  policy.budget_pm / 10, policy.budget_pm % 10,
                  policy.rate_pages, policy.soft_pm / 10, policy.soft_pm % 10);
  return 0;

 fail:
  zram_bg_destroy (bg);
  bg = NULL;
  return -1;
}

void
bg_stop (struct zram *zram)
{
  if (bg == NULL)
    return;
  zram_set_background (zram, NULL);
  zram_bg_destroy (bg);
  bg = NULL;
}
