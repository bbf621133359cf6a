/* nbdkit-zram: the automatic recompression policy.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Kernel zram recompresses only when a daemon writes to its
 * recompress file.  This policy does it by itself, as one policy (named
 * ZRAM_RECOMP_POLICY) of the background framework
 * (include/zram/background.h), so it runs in that thread, within its CPU
 * budget, behind the requests:
 *
 *   - Pages not read or written for age_s seconds (and pages marked idle:
 *     zram_recompress counts them as idle whatever their age) are
 *     recompressed with the device's secondary algorithms
 *     (zram_recompress, type idle, with min_age_s), oldest first: the
 *     slot table is swept with descending age thresholds, 8 age_s,
 *     4 age_s, 2 age_s, then age_s, one sweep after the other, and the
 *     sweeps start over.  A sweep advances
 *     ZRAM_RECOMP_POLICY_SPAN slots and at most ZRAM_RECOMP_POLICY_BATCH
 *     pages per call, asking the framework between calls whether the
 *     round's CPU allowance is spent; the next round continues where it
 *     stopped.  After four sweeps that found nothing to attempt, the
 *     policy rests for max (1, age_s / 8) seconds before it sweeps again
 *     (a page that just became old enough waits at most that long).
 *   - Near the memory limit, when mem_used_total reaches soft_pm per mille
 *     of mem_limit, age no longer matters: every page not accessed in the
 *     last ZRAM_RECOMP_POLICY_URGENT_AGE_S seconds is a candidate, so the
 *     pool shrinks before writes have to fail with ENOSPC.  Such rounds
 *     count as urgent.  The budget still applies.
 *   - rate_pages, if not 0, caps the pages attempted per second (on top of
 *     the budget).
 *   - It yields to requests: while the device serves reads and writes at
 *     ZRAM_RECOMP_POLICY_BUSY_RATE a second or more (measured since the
 *     last look, over at least ZRAM_RECOMP_POLICY_BUSY_WINDOW_MS), a round
 *     does not start, and a round that sees them start between two of its
 *     calls stops; such rounds count as yielded.  The credit it does not
 *     use is kept for when the requests stop (up to the budget's burst).
 *     A device that is never quiet is recompressed only near the memory
 *     limit, where urgent rounds do not yield: there recompression is what
 *     keeps writes from failing.
 *
 *   - Recompression frees objects, not pool pages (their spans are left
 *     partly used), so the policy compacts the pool (zram_compact) after a
 *     cycle of sweeps that stored pages smaller, and after every urgent
 *     round that did; within its budget, like the rest of its work.
 *
 * A device without a secondary algorithm is never touched: the policy
 * refuses to be added (EINVAL), and a round that finds none (after a
 * reset) does nothing.
 *
 * Decisions are visible: the framework counts rounds, pages recompressed
 * (stored smaller), CPU time, rounds that waited for budget and urgent
 * rounds (zram_bg_counts); and each round that attempted pages, or that
 * failed, is described in one line to the log function, if given.
 *
 * zram_recomp_policy_add is not thread-safe against the framework's other
 * set-up calls (see there); the round runs only in the framework's thread.
 */
#ifndef ZRAM_POLICY_RECOMPRESS_H
#define ZRAM_POLICY_RECOMPRESS_H

#include <stdint.h>

struct zram;
struct zram_bg;

/* The policy's name in its framework (zram_bg_find). */
#define ZRAM_RECOMP_POLICY "recompress"

/* Defaults: pages idle for a minute, 5 % of one core, no rate limit,
 * urgent at 90 % of mem_limit, a round every second.
 */
#define ZRAM_RECOMP_POLICY_DEFAULT_AGE_S     60
#define ZRAM_RECOMP_POLICY_DEFAULT_BUDGET_PM 50
#define ZRAM_RECOMP_POLICY_DEFAULT_RATE      0
#define ZRAM_RECOMP_POLICY_DEFAULT_SOFT_PM   900
#define ZRAM_RECOMP_POLICY_DEFAULT_PERIOD_MS 1000

/* Limits of the settings. */
#define ZRAM_RECOMP_POLICY_MAX_AGE_S   (UINT32_C (1) << 28) /* 8 years; 8x fits */
#define ZRAM_RECOMP_POLICY_MAX_RATE    (UINT64_C (1) << 40) /* pages/s */

/* Work per zram_recompress call: slots swept, and pages attempted at most.
 * Small, so that a round overruns its allowance by little (a zstd-19
 * compression of a page costs up to about 1 ms).
 */
#define ZRAM_RECOMP_POLICY_SPAN  4096
#define ZRAM_RECOMP_POLICY_BATCH 8

/* The device counts as busy, and the policy gives way (except near the
 * memory limit), while it serves at least ZRAM_RECOMP_POLICY_BUSY_RATE
 * reads and writes a second.  The rate is taken over the time since the
 * policy last looked, but never less than ZRAM_RECOMP_POLICY_BUSY_WINDOW_MS,
 * so that a single request between two calls of a round (a few ms apart)
 * does not count as a stream of them.  A swap device that trickles a few
 * pages a second is quiet enough to be recompressed; a benchmark, a copy
 * or a file system at work is not.
 */
#define ZRAM_RECOMP_POLICY_BUSY_RATE 50
#define ZRAM_RECOMP_POLICY_BUSY_WINDOW_MS 100

/* Under the soft limit: pages idle at least this long are candidates. */
#define ZRAM_RECOMP_POLICY_URGENT_AGE_S 1

struct zram_recomp_policy_config {
  uint32_t age_s;             /* 1..ZRAM_RECOMP_POLICY_MAX_AGE_S */
  unsigned budget_pm;         /* 1..1000: per mille of one core */
  uint64_t rate_pages;        /* pages attempted per second; 0 = no cap */
  unsigned soft_pm;           /* 1..1000 per mille of mem_limit; 0 = never
                                 urgent */
  unsigned period_ms;         /* >= 1 */
  /* One line per round (printf format, no trailing newline), or NULL. */
  void (*log) (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
};

/* Fill *c with the defaults above (log NULL). */
extern void zram_recomp_policy_defaults (struct zram_recomp_policy_config *c);

/* Register the policy for zram with bg (before zram_bg_start).  Returns
 * its id in bg, or -1 with errno EINVAL (a setting out of range, or zram
 * has no secondary algorithm), ENOMEM, or as zram_bg_add.
 */
extern int zram_recomp_policy_add (struct zram_bg *bg, struct zram *zram,
                                   const struct zram_recomp_policy_config *c);

#endif /* ZRAM_POLICY_RECOMPRESS_H */
