/* nbdkit-zram: the plugin's multi-page group parameters
 * (see group-params.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zram/policy-group.h"
#include "zram/zram.h"
#include "background-params.h"
#include "group-params.h"

/* The default group algorithm: zstd at 9 stores the memory-like image's
 * groups 4 % smaller than at 3 for about 5x the CPU (bench/README.md),
 * which the policy spends in the background, within its budget.
 */
#define GROUP_DEFAULT_ALGO ZCOMP_ZSTD
#define GROUP_DEFAULT_LEVEL 9

static unsigned group_pages;
static struct zram_recomp_algo group_algo = { GROUP_DEFAULT_ALGO,
                                              GROUP_DEFAULT_LEVEL };
static struct zram_group_policy_config policy;
static bool policy_ready;
static const char *setting_given;  /* a group_* setting other than pages */

int
group_params_config (const char *key, const char *value)
{
  unsigned pm;

  if (!policy_ready) {
    zram_group_policy_defaults (&policy);
    policy_ready = true;
  }
  if (strcmp (key, "group_pages") == 0) {
    if (nbdkit_parse_unsigned ("group_pages", value, &group_pages) == -1)
      return -1;
    if (group_pages == 1 || group_pages > ZRAM_GROUP_MAX_PAGES) {
      nbdkit_error ("group_pages: %u is out of range; give 2 to %d (pages "
                    "compressed together), or 0 for no groups", group_pages,
                    ZRAM_GROUP_MAX_PAGES);
      return -1;
    }
    return 1;
  }
  if (strcmp (key, "group_algorithm") == 0) {
    struct zram_config tmp = { .nr_recomp = 0 };
    char err[160];

    if (*value == '\0') {
      nbdkit_error ("group_algorithm: give one algorithm, NAME or "
                    "NAME:LEVEL (e.g. group_algorithm=zstd:9)");
      return -1;
    }
    if (strchr (value, ',') != NULL) {
      nbdkit_error ("group_algorithm: one algorithm, not a list: '%s' "
                    "(e.g. group_algorithm=zstd:9)", value);
      return -1;
    }
    if (zram_parse_recomp_spec (value, &tmp, err, sizeof err) == -1) {
      nbdkit_error ("group_algorithm: %s", err);
      return -1;
    }
    group_algo = tmp.recomp[0];
  }
  else if (strcmp (key, "group_age") == 0) {
    if (nbdkit_parse_uint32_t ("group_age", value, &policy.age_s) == -1)
      return -1;
    if (policy.age_s == 0 || policy.age_s > ZRAM_GROUP_POLICY_MAX_AGE_S) {
      nbdkit_error ("group_age: %" PRIu32 " seconds is out of range; give "
                    "1 to %" PRIu32 " (how long a page must go unread and "
                    "unwritten before it is grouped)", policy.age_s,
                    ZRAM_GROUP_POLICY_MAX_AGE_S);
      return -1;
    }
  }
  else if (strcmp (key, "group_budget") == 0) {
    if (bg_parse_permille (value, &pm) == -1 || pm == 0 || pm > 1000) {
      nbdkit_error ("group_budget: '%s' is not a share of one core between "
                    "0.1 and 100 (per cent, e.g. group_budget=5)", value);
      return -1;
    }
    policy.budget_pm = pm;
  }
  else if (strcmp (key, "group_live_min") == 0) {
    if (bg_parse_permille (value, &pm) == -1 || pm < 10 || pm > 1000 ||
        pm % 10 != 0) {
      nbdkit_error ("group_live_min: '%s' is not a whole percentage from 1 "
                    "to 100 (e.g. group_live_min=50)", value);
      return -1;
    }
    policy.live_min_pct = pm / 10;
  }
  else
    return 0;
  setting_given = key;
  return 1;
}

int
group_params_complete (struct zram_config *config)
{
  if (setting_given && group_pages == 0) {
    nbdkit_error ("%s: applies to multi-page groups, which are off; give "
                  "group_pages= (e.g. group_pages=16) or leave %s out",
                  setting_given, setting_given);
    return -1;
  }
  config->group_pages = group_pages;
  config->group_algo = group_algo;
  return 0;
}

int
group_policy_add (struct zram_bg *bg, struct zram *zram)
{
  if (group_pages == 0)
    return 0;
  if (!policy_ready)
    zram_group_policy_defaults (&policy);
  policy.log = bg_log_debug;
  if (zram_group_policy_add (bg, zram, &policy) == -1) {
    nbdkit_error ("group_pages: cannot add the group policy: %m");
    return -1;
  }
  nbdkit_debug ("group policy: up to %u pages idle %" PRIu32 " s as one "
                "%s:%d object, budget %u.%u %% of a core, dissolved below "
                "%u %% live", group_pages, policy.age_s,
                zcomp_algo_name (group_algo.algo), group_algo.level,
                policy.budget_pm / 10, policy.budget_pm % 10,
                policy.live_min_pct);
  return 0;
}
