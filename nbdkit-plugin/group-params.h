/* nbdkit-zram: the plugin's multi-page group parameters.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   group_pages=N            pages compressed together, 2..16; 0 (the
 *                            default) = no groups
 *   group_algorithm=NAME[:LEVEL]  their algorithm (default zstd:9)
 *   group_age=SECONDS        idle age before a page is grouped (120)
 *   group_budget=PERCENT     CPU share of one core (5)
 *   group_live_min=PERCENT   dissolve a group below this share of its
 *                            members still stored (50)
 *
 * The policy (include/zram/policy-group.h) runs when group_pages is set.
 * Every function reports its own failures with nbdkit_error.
 */
#ifndef ZRAM_PLUGIN_GROUP_PARAMS_H
#define ZRAM_PLUGIN_GROUP_PARAMS_H

struct zram;
struct zram_bg;
struct zram_config;

/* .config: 1 if key is one of the parameters above (handled), 0 if not,
 * -1 if its value is bad.
 */
extern int group_params_config (const char *key, const char *value);

/* .config_complete: refuse settings that cannot apply, and put the group
 * settings into *config.  Returns 0 or -1.
 */
extern int group_params_complete (struct zram_config *config);

/* bg_start: add the group policy if groups are on.  0 or -1. */
extern int group_policy_add (struct zram_bg *bg, struct zram *zram);

#define GROUP_PARAMS_HELP \
  "group_pages=N            Compress idle pages together, up to N (2-16)\n" \
  "                         pages as one object (default 0: off).\n" \
  "group_algorithm=NAME[:LEVEL]  Their algorithm (default zstd:9).\n" \
  "group_age=SECONDS        Idle age before a page is grouped (default 120).\n" \
  "group_budget=PERCENT     CPU share of one core it may use (default 5).\n" \
  "group_live_min=PERCENT   Take a group apart when fewer of its pages are\n" \
  "                         still stored in it (default 50)."

#endif /* ZRAM_PLUGIN_GROUP_PARAMS_H */
