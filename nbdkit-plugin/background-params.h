/* nbdkit-zram: the plugin's background work and its parameters.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The plugin runs one background framework (include/zram/background.h)
 * per device, with the compaction policy always, the recompression
 * policy (include/zram/policy-recompress.h) when the device has a
 * secondary algorithm and recomp_policy is not off, and the writeback
 * policy when it has a store (writeback-params.h).  Parameters:
 *
 *   recomp_policy=on|off     default on with recomp_algorithm=
 *   recomp_age=SECONDS       idle age before a page is recompressed
 *   recomp_budget=PERCENT    CPU share of one core, 0.1 to 100 (5)
 *   recomp_rate=PAGES        most pages attempted per second (0 = no cap)
 *   recomp_soft_limit=PERCENT  of mem_limit: recompress regardless of age
 *                            from here (90; 0 = never)
 *
 * Every function reports its own failures with nbdkit_error.  Call them
 * from nbdkit's main thread, in the callbacks named.
 */
#ifndef ZRAM_PLUGIN_BACKGROUND_PARAMS_H
#define ZRAM_PLUGIN_BACKGROUND_PARAMS_H

struct zram;

/* The nice value of the background thread: 0, as the compactor always
 * had.  Its policies yield to requests through their CPU budgets (the
 * recompression policy takes at most recomp_budget of one core, 5 % by
 * default: at most 2.5 % of this 2-core machine), not through priority.
 * Measured with nice 10 (2026-11-30, load average 8 to 13 from other
 * work): the thread got about half of a 30 % budget, and background
 * compaction fell so far behind that test-auto-compact.sh failed in the
 * parallel suite.  SCHED_IDLE would be worse: a thread that holds a pool
 * class lock and gets no CPU while requests keep the cores busy stalls
 * the writers waiting for that lock (priority inversion).
 */
#define BG_NICE 0

/* A percentage with at most one decimal ("5", "2.5", "5%"), in per mille.
 * Returns 0, or -1 (not such a number).
 */
extern int bg_parse_permille (const char *s, unsigned *pm);

/* nbdkit_debug for a policy's log function. */
extern void bg_log_debug (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* .config: 1 if key is one of the parameters above (handled), 0 if not,
 * -1 if its value is bad.
 */
extern int bg_params_config (const char *key, const char *value);

/* .config_complete, once the secondary algorithms are known: refuse
 * settings that cannot apply.  nr_recomp: secondary algorithms
 * configured.  Returns 0 or -1.
 */
extern int bg_params_complete (unsigned nr_recomp);

/* .after_fork: make and start the framework for zram and link it to the
 * device (zram_set_background).  Returns 0 or -1.
 */
extern int bg_start (struct zram *zram);

/* .cleanup, after the control socket has stopped: unlink, stop, free.
 * Does nothing if bg_start was not called or failed.
 */
extern void bg_stop (struct zram *zram);

#define BG_PARAMS_HELP \
  "recomp_policy=on|off     Recompress idle pages by itself (default on with\n" \
  "                         recomp_algorithm=).\n" \
  "recomp_age=SECONDS       Idle age before recompression (default 60).\n" \
  "recomp_budget=PERCENT    CPU share of one core it may use (default 5).\n" \
  "recomp_rate=PAGES        Most pages recompressed per second (0: no cap).\n" \
  "recomp_soft_limit=PERCENT  Of mem_limit: recompress regardless of age\n" \
  "                         from here (default 90; 0 = never)."

#endif /* ZRAM_PLUGIN_BACKGROUND_PARAMS_H */
