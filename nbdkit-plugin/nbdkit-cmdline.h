/* nbdkit-zram: what nbdkit was told on its command line.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * nbdkit tells a plugin nothing of its own options, yet two of them change
 * what the plugin must do before nbdkit forks: -u/-g (the control socket
 * must be created for the user nbdkit switches to, see ctl-owner.h, and
 * -u drops CAP_IPC_LOCK, see preflight.h) and --swap (refused, see
 * preflight.h).  This module reads /proc/self/cmdline once and parses it
 * with getopt_long and nbdkit 1.32's own option table (server/options.h),
 * so that abbreviations ("--us"), clusters ("-fu nobody"), "--opt=value",
 * options after the plugin name and "--" come out exactly as nbdkit saw
 * them.
 *
 * Limits:
 *  - The table is nbdkit 1.32's.  A later nbdkit that adds an option
 *    taking an argument could have that argument read as an option here;
 *    callers treat the result as a guess where it matters (ctl-owner checks
 *    it against the real credentials after the switch).
 *  - Values are returned as given; resolving a user or group name is the
 *    caller's business (nbdkit does it only when it switches).
 *  - Linux only (/proc).
 *
 * Not thread-safe (getopt_long's globals, and the cached result is filled
 * without a lock): call from nbdkit's main thread, in .config_complete,
 * .get_ready or .after_fork, where no other thread of ours runs.
 */
#ifndef ZRAM_PLUGIN_NBDKIT_CMDLINE_H
#define ZRAM_PLUGIN_NBDKIT_CMDLINE_H

#include <stdbool.h>

struct cmdline {
  const char *user;             /* last -u/--user, or NULL */
  const char *group;            /* last -g/--group, or NULL */
  bool swap;                    /* --swap given */
};

/* nbdkit's options, parsed on the first successful call and cached until
 * cmdline_release (the strings too: do not free them).  Returns
 * NULL with errno set if /proc/self/cmdline cannot be read (a later call
 * tries again).
 */
extern const struct cmdline *cmdline_get (void);

/* Free what cmdline_get keeps; a later cmdline_get reads it again.  The
 * plugin calls it in .unload: the module's memory would otherwise outlive
 * the dlclose'd plugin as a leak.
 */
extern void cmdline_release (void);

#endif /* ZRAM_PLUGIN_NBDKIT_CMDLINE_H */
