/* nbdkit-zram: the dictionary training policy (see
 * include/zram/policy-dict.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdlib.h>

#include "zram/background.h"
#include "zram/policy-dict.h"
#include "zram/zcomp-dict.h"

struct dict_policy {
  struct zram *zram;
  struct zram_dict_policy_config c;
  unsigned backoff;           /* periods to wait after rejections (1..) */
  unsigned skip;              /* periods still to wait */
};

static const char *const outcome_names[] = {
  [ZRAM_DICT_PUBLISHED] = "published", [ZRAM_DICT_REJECTED] = "rejected",
  [ZRAM_DICT_TOO_FEW] = "too few pages", [ZRAM_DICT_FULL] = "all indices in use",
  [ZRAM_DICT_RACED] = "a reset came in between",
};

static int64_t
dict_round (void *opaque, struct zram_bg_round *r)
{
  struct dict_policy *dp = opaque;
  struct zram_dict_train_result res;
  struct zram_stats st;
  int64_t cpu0 = zram_bg_round_cpu_ns (r);

  if (dp->skip > 0) {
    dp->skip--;
    return -1;
  }
  zram_get_stats (dp->zram, &st);
  /* The counters are read one by one while writes go on: compare without
   * subtracting, which could wrap below zero and train too early.
   */
  if (!st.initialised ||
      st.orig_data_size / 4096 < st.same_pages + st.bd_count + dp->c.min_pages)
    return -1;
  if (zram_dict_train (dp->zram, &dp->c.req, &res) == -1) {
    if (errno == EBUSY || errno == ECANCELED)
      return -1;
    if (dp->c.log)
      dp->c.log ("dict policy: training failed: %m");
    return 0;
  }
  if (res.outcome == ZRAM_DICT_PUBLISHED)
    dp->backoff = 1;
  else if (res.outcome == ZRAM_DICT_REJECTED &&
           dp->backoff < ZRAM_DICT_POLICY_MAX_BACKOFF)
    dp->backoff *= 2;
  dp->skip = dp->backoff - 1;
  if (dp->c.log)
    dp->c.log ("dict policy: %s (version %llu): %u pages sampled, %u held "
               "out: %llu bytes now, %llu with a %zu-byte dictionary; %u "
               "freed; %.0f ms; next try in %u period(s)",
               outcome_names[res.outcome], (unsigned long long) res.version,
               res.sampled, res.held_out, (unsigned long long) res.bytes_now,
               (unsigned long long) res.bytes_dict, res.dict_size, res.freed,
               (zram_bg_round_cpu_ns (r) - cpu0) / 1e6, dp->backoff);
  return res.sampled;
}

void
zram_dict_policy_defaults (struct zram_dict_policy_config *c)
{
  *c = (struct zram_dict_policy_config) {
    .period_ms = ZRAM_DICT_POLICY_DEFAULT_PERIOD_MS,
    .min_pages = ZRAM_DICT_POLICY_DEFAULT_MIN_PAGES,
    .budget_pm = ZRAM_DICT_POLICY_DEFAULT_BUDGET_PM,
    .req = {
      .dict_bytes = ZRAM_DICT_TRAIN_DEFAULT_BYTES,
      .samples = ZRAM_DICT_TRAIN_DEFAULT_SAMPLES,
      .gain_pm = ZRAM_DICT_TRAIN_DEFAULT_GAIN_PM,
    },
  };
}

int
zram_dict_policy_add (struct zram_bg *bg, struct zram *zram,
                      const struct zram_dict_policy_config *c)
{
  struct dict_policy *dp;
  struct zram_bg_policy p = {
    .name = ZRAM_DICT_POLICY,
    .round = dict_round,
    .release = free,
  };

  if (bg == NULL || zram == NULL || c == NULL || c->period_ms == 0 ||
      c->budget_pm == 0 || c->budget_pm > ZRAM_BG_UNLIMITED ||
      c->req.gain_pm > 1000 ||
      (c->req.dict_bytes && c->req.dict_bytes > ZCOMP_DICT_MAX) ||
      (c->req.samples && (c->req.samples < ZCOMP_DICT_MIN_SAMPLES ||
                          c->req.samples > ZRAM_DICT_TRAIN_MAX_SAMPLES))) {
    errno = EINVAL;
    return -1;
  }
  dp = calloc (1, sizeof *dp);
  if (dp == NULL)
    return -1;
  dp->zram = zram;
  dp->c = *c;
  dp->c.req.nowait = true;
  dp->backoff = 1;
  p.period_ms = c->period_ms;
  p.budget_pm = c->budget_pm;
  p.opaque = dp;
  return zram_bg_add (bg, &p);
}
