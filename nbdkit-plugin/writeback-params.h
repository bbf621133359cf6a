/* nbdkit-zram: the plugin's writeback limit and writeback policy
 * parameters.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * With backing=, the plugin runs the automatic writeback policy
 * (include/zram/policy-writeback.h) in its background framework unless
 * writeback_policy=off.  Parameters:
 *
 *   writeback_policy=on|off     default on with backing=
 *   writeback_age=SECONDS       write back pages idle this long (0 = off,
 *                               the default)
 *   writeback_rate=SIZE         most bytes a second written back by age
 *                               (10M)
 *   writeback_high=PERCENT      of mem_limit: write back the coldest pages
 *                               from here (90; 0 = never) ...
 *   writeback_low=PERCENT       ... down to here (80)
 *   writeback_wait=MS           a write at mem_limit waits this long for
 *                               room (2000; 0 = fails at once)
 *   writeback_limit=BLOCKS       zram's writeback_limit (4 KiB blocks); it
 *                               enables the limit unless
 *   writeback_limit_enable=true|false  says otherwise
 *
 * Every function reports its own failures with nbdkit_error.  Call them
 * from nbdkit's main thread, in the callbacks named.
 */
#ifndef ZRAM_PLUGIN_WRITEBACK_PARAMS_H
#define ZRAM_PLUGIN_WRITEBACK_PARAMS_H

#include <stdbool.h>

struct zram;
struct zram_bg;

/* .config: 1 if key is one of the parameters above (handled), 0 if not,
 * -1 if its value is bad.
 */
extern int wb_params_config (const char *key, const char *value);

/* .config_complete: refuse settings that cannot apply (policy settings
 * without backing=, writeback_low not below writeback_high).  Returns 0
 * or -1.
 */
extern int wb_params_complete (bool have_backing);

/* .get_ready, once the device exists: set its writeback limit. */
extern void wb_params_apply (struct zram *zram);

/* From bg_start: add the writeback policy to bg if it is to run.
 * Returns 0 or -1.
 */
extern int wb_policy_add (struct zram_bg *bg, struct zram *zram);

#define WB_PARAMS_HELP \
  "writeback_policy=on|off  Write pages back to backing= by itself (default\n" \
  "                         on with backing=).\n" \
  "writeback_age=SECONDS    Write back pages idle this long (default 0: off).\n" \
  "writeback_rate=SIZE      Most bytes a second written back by age (10M).\n" \
  "writeback_high=PERCENT   Of mem_limit: write back the coldest pages from\n" \
  "                         here (default 90; 0 = never)...\n" \
  "writeback_low=PERCENT    ...down to here (default 80).\n" \
  "writeback_wait=MS        A write at mem_limit waits this long for room\n" \
  "                         (default 2000; 0 = fails at once).\n" \
  "writeback_limit=BLOCKS    Budget of 4 KiB blocks writeback may write\n" \
  "                         (enables the limit).\n" \
  "writeback_limit_enable=true|false  Whether the budget applies."

#endif /* ZRAM_PLUGIN_WRITEBACK_PARAMS_H */
