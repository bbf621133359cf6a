/* nbdkit-zram: the automatic multi-page group policy.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * One policy (named ZRAM_GROUP_POLICY) of the background framework
 * (include/zram/background.h), so it runs in that thread, within its CPU
 * budget, behind the requests:
 *
 *   - Pages not read or written for age_s seconds (and pages marked idle)
 *     are packed into multi-page groups (zram_group), the slot table swept
 *     in index order from a cursor that each round continues, up to
 *     ZRAM_GROUP_POLICY_BATCH pages per call, asking the framework between
 *     calls whether the round's CPU allowance is spent.
 *   - Each round first takes apart up to ZRAM_GROUP_POLICY_DISSOLVE groups
 *     that kept fewer than live_min_pct percent of their members
 *     (zram_group_dissolve), so rewritten and trimmed members do not pin
 *     their frames for long.
 *   - After a sweep of the whole device that built groups, the pool is
 *     compacted (zram_compact): the members' old objects were freed
 *     object by object, which leaves pool pages partly used.  A sweep
 *     that found nothing to group makes the policy rest for
 *     max (1, age_s / 8) seconds.
 *   - It gives way to requests as the recompression policy does
 *     (ZRAM_GROUP_POLICY_BUSY_RATE requests a second or more).
 *   - It shares the post-processing lock with recompression and writeback
 *     (include/zram/zram.h): a round that finds one of them running does
 *     nothing and tries again next period.
 *
 * Each round that changed something is described in one line to the log
 * function, if given.  zram_group_policy_add is not thread-safe against
 * the framework's other set-up calls; the round runs only in the
 * framework's thread.
 */
#ifndef ZRAM_POLICY_GROUP_H
#define ZRAM_POLICY_GROUP_H

#include <stdint.h>

struct zram;
struct zram_bg;

/* The policy's name in its framework (zram_bg_find). */
#define ZRAM_GROUP_POLICY "group"

/* Defaults: pages idle for two minutes, 5 % of one core, a round every
 * second, groups dissolved below half their members.
 */
#define ZRAM_GROUP_POLICY_DEFAULT_AGE_S      120
#define ZRAM_GROUP_POLICY_DEFAULT_BUDGET_PM  50
#define ZRAM_GROUP_POLICY_DEFAULT_PERIOD_MS  1000
#define ZRAM_GROUP_POLICY_DEFAULT_LIVE_MIN   50

#define ZRAM_GROUP_POLICY_MAX_AGE_S (UINT32_C (1) << 28)

/* Work per call: slots swept, pages grouped, groups dissolved. */
#define ZRAM_GROUP_POLICY_SPAN     4096
#define ZRAM_GROUP_POLICY_BATCH    64
#define ZRAM_GROUP_POLICY_DISSOLVE 16

#define ZRAM_GROUP_POLICY_BUSY_RATE 50
#define ZRAM_GROUP_POLICY_BUSY_WINDOW_MS 100

struct zram_group_policy_config {
  uint32_t age_s;             /* 1..ZRAM_GROUP_POLICY_MAX_AGE_S */
  unsigned budget_pm;         /* 1..ZRAM_BG_UNLIMITED */
  unsigned period_ms;         /* >= 1 */
  unsigned live_min_pct;      /* 1..100 */
  /* One line per round that did something (printf format), or NULL. */
  void (*log) (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
};

/* Fill *c with the defaults above (log NULL). */
extern void zram_group_policy_defaults (struct zram_group_policy_config *c);

/* Register the policy for zram with bg (before zram_bg_start).  Returns
 * the policy's id, or -1 with errno EINVAL (a setting out of range, or
 * the device has no groups configured: zram_config.group_pages),
 * ENOMEM or ENOSPC (zram_bg_add).
 */
extern int zram_group_policy_add (struct zram_bg *bg, struct zram *zram,
                                  const struct zram_group_policy_config *c);

#endif /* ZRAM_POLICY_GROUP_H */
