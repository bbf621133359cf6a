/* nbdkit-zram: the dictionary training policy.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Kernel zram uses a dictionary only if someone gives it one.  This policy
 * trains one from the device's own pages, as one policy (named
 * ZRAM_DICT_POLICY) of the background framework
 * (include/zram/background.h): every period_ms, if at least min_pages
 * pages are stored, a round calls zram_dict_train (include/zram/zram.h),
 * which samples, trains, measures the new dictionary on held-out pages
 * against what new writes use now, and publishes it only if it gains
 * gain_pm per mille; else nothing changes.  The same round frees the
 * dictionaries no page uses any more.
 *
 * On data where a dictionary gains little (the project's memory-like
 * image: ~1 % for zstd, see bench/bench-codec), the gate rejects it:
 * that is the intended outcome, and costs one training per period (about
 * half a second of one core for the default 1280 pages).  After a rejection the
 * policy waits twice as long before the next try, up to 8 periods; a
 * published dictionary resets the wait.
 *
 * Decisions are visible: the framework counts rounds (those that trained)
 * and CPU time; zram_stats counts dict_trainings and dict_rejected; each
 * training is described in one line to the log function, if given.
 *
 * zram_dict_policy_add is not thread-safe against the framework's other
 * set-up calls; the round runs only in the framework's thread.
 */
#ifndef ZRAM_POLICY_DICT_H
#define ZRAM_POLICY_DICT_H

#include <stdint.h>

#include "zram/zram.h"

struct zram_bg;

/* The policy's name in its framework (zram_bg_find). */
#define ZRAM_DICT_POLICY "dict"

/* Defaults: a try every 5 minutes once 4096 pages (16 MiB) are stored,
 * 1 % of one core, publish at a 2 % gain.
 */
#define ZRAM_DICT_POLICY_DEFAULT_PERIOD_MS (300 * 1000)
#define ZRAM_DICT_POLICY_DEFAULT_MIN_PAGES 4096
#define ZRAM_DICT_POLICY_DEFAULT_BUDGET_PM 10
#define ZRAM_DICT_POLICY_MAX_BACKOFF 8

struct zram_dict_policy_config {
  unsigned period_ms;         /* >= 1: between tries */
  uint64_t min_pages;         /* pages stored before a try (>= the
                                 samples asked for) */
  unsigned budget_pm;         /* 1..1000 per mille of one core */
  struct zram_dict_train_req req; /* what each try asks for (nowait is
                                 forced on) */
  /* One line per training (printf format, no trailing newline), or NULL. */
  void (*log) (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
};

/* Fill *c with the defaults above (and zram_dict_train's; log NULL). */
extern void zram_dict_policy_defaults (struct zram_dict_policy_config *c);

/* Register the policy for zram with bg (before zram_bg_start).  Returns
 * its id in bg, or -1 with errno EINVAL (a setting out of range), ENOMEM,
 * or as zram_bg_add.
 */
extern int zram_dict_policy_add (struct zram_bg *bg, struct zram *zram,
                                 const struct zram_dict_policy_config *c);

#endif /* ZRAM_POLICY_DICT_H */
