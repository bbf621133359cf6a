/* nbdkit-zram: the automatic writeback policy.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Kernel zram writes pages back only when a daemon writes to its
 * writeback file.  This policy does it by itself, for a device with a
 * backing store, as one policy (named ZRAM_WB_POLICY) of the background
 * framework (include/zram/background.h):
 *
 *   - Pressure: when the pool's memory (mem_used_total) reaches high_pm
 *     per mille of mem_limit, pages go to the store, coldest first, until
 *     it is below low_pm per mille, whatever their age.  Coldest first:
 *     the device is swept with descending age thresholds (ZRAM_WB_COLD
 *     with min_age_s 4^8 s, 4^7 s, ... 4 s, 1 s, then every page), each
 *     sweep continuing where the last round stopped, so the oldest pages
 *     go first to within a factor of 4 of their age.  Such rounds count
 *     as urgent; they do not give way to requests and have no rate (they
 *     are what keeps writes from failing), and a round that leaves the
 *     pool above low_pm kicks the policy again.  After each such round
 *     that wrote pages back, the pool is compacted, so that the objects
 *     freed become memory for any size of object.
 *   - Age: if age_s > 0, pages not read or written for age_s seconds go
 *     to the store (ZRAM_WB_COLD with min_age_s = age_s), at most
 *     rate_pages pages a second.  These rounds give way to requests like
 *     the recompression policy's (ZRAM_WB_POLICY_BUSY_RATE reads and
 *     writes a second or more: the round does not start, or stops between
 *     two batches) and count as yielded.  After a sweep of the whole
 *     device the policy rests max (1, age_s / 8) seconds.
 *   - Both respect the device's writeback_limit (zram_set_writeback_limit):
 *     a round that finds it used up stops (logged once until it is
 *     raised).  Neither ever waits for a writeback or recompression asked
 *     for by hand (they use zram_wb_req.nowait, and try again next round).
 *   - Writes at mem_limit: zram_wb_policy_add sets the device's room wait
 *     (zram_set_room_wait) to room_wait_ms, so that such a write kicks
 *     this policy and waits for room rather than failing at once.
 *
 * The framework counts rounds, pages written back, CPU time, urgent and
 * yielded rounds (zram_bg_counts); each round that wrote pages or failed
 * is described in one line to the log function, if given.  The framework
 * budget of the policy is ZRAM_BG_UNLIMITED: its work is I/O bounded by
 * rate_pages and by the pressure, not CPU.
 *
 * zram_wb_policy_add is not thread-safe against the framework's other
 * set-up calls; the round runs only in the framework's thread.
 */
#ifndef ZRAM_POLICY_WRITEBACK_H
#define ZRAM_POLICY_WRITEBACK_H

#include <stdint.h>

struct zram;
struct zram_bg;

/* The policy's name in its framework (zram_bg_find). */
#define ZRAM_WB_POLICY "writeback"

/* Defaults: no age-based writeback, 10 MiB/s when it is on, pressure from
 * 90 % down to 80 % of mem_limit, a look every 100 ms, writes at the
 * limit wait up to 2 s.
 */
#define ZRAM_WB_POLICY_DEFAULT_AGE_S     0
#define ZRAM_WB_POLICY_DEFAULT_RATE      2560
#define ZRAM_WB_POLICY_DEFAULT_HIGH_PM   900
#define ZRAM_WB_POLICY_DEFAULT_LOW_PM    800
#define ZRAM_WB_POLICY_DEFAULT_PERIOD_MS 100
#define ZRAM_WB_POLICY_DEFAULT_WAIT_MS   2000

/* Limits of the settings. */
#define ZRAM_WB_POLICY_MAX_AGE_S (UINT32_C (1) << 28)
#define ZRAM_WB_POLICY_MAX_RATE  (UINT64_C (1) << 40) /* pages/s */

/* Work per zram_writeback call: slots swept and pages written at most;
 * and the wall time after which a pressure round ends (and kicks itself,
 * so that other policies get their turn in between).
 */
#define ZRAM_WB_POLICY_SPAN     4096
#define ZRAM_WB_POLICY_BATCH    256
#define ZRAM_WB_POLICY_ROUND_MS 50

/* Giving way to requests, as include/zram/policy-recompress.h. */
#define ZRAM_WB_POLICY_BUSY_RATE 50
#define ZRAM_WB_POLICY_BUSY_WINDOW_MS 100

struct zram_wb_policy_config {
  uint32_t age_s;             /* 0 (off) .. ZRAM_WB_POLICY_MAX_AGE_S */
  uint64_t rate_pages;        /* age-based pages a second, 1..MAX_RATE */
  unsigned high_pm;           /* per mille of mem_limit, 1..1000; 0 = no
                                 pressure writeback */
  unsigned low_pm;            /* < high_pm (unless high_pm is 0) */
  unsigned period_ms;         /* >= 1 */
  unsigned room_wait_ms;      /* 0..ZRAM_ROOM_WAIT_MAX_MS */
  /* One line per round (printf format, no trailing newline), or NULL. */
  void (*log) (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
};

/* Fill *c with the defaults above (log NULL). */
extern void zram_wb_policy_defaults (struct zram_wb_policy_config *c);

/* Register the policy for zram with bg (before zram_bg_start) and set the
 * device's room wait.  Returns its id in bg, or -1 with errno EINVAL (a
 * setting out of range, or zram has no backing store), ENOMEM, or as
 * zram_bg_add.
 */
extern int zram_wb_policy_add (struct zram_bg *bg, struct zram *zram,
                               const struct zram_wb_policy_config *c);

#endif /* ZRAM_POLICY_WRITEBACK_H */
