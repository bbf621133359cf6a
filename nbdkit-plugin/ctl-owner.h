/* nbdkit-zram: who the control socket is for when nbdkit switches user.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * nbdkit 1.32 runs .get_ready as the user who started it, then binds its
 * own sockets, switches to the user and group of -u/--user and -g/--group
 * (server/usergroup.c: setgid + setgroups if -g; setuid if -u), forks into
 * the background and only then runs .after_fork.  The control socket must
 * be created in .get_ready, where errors still reach the user (and where
 * root may still create files in root's directories), but it is served
 * after the switch.  A plugin is not told about -u or -g, so this module
 * reads them from nbdkit's command line, with nbdkit's own option grammar,
 * and resolves them the way nbdkit does; the socket is then created for
 * that user (see zctl_server_bind) and after the switch the guess is
 * checked against the real credentials.
 *
 * Not thread-safe (uses getopt_long); call from .get_ready and
 * .after_fork only, where nbdkit runs no other thread of ours.
 */
#ifndef ZRAM_CTL_OWNER_H
#define ZRAM_CTL_OWNER_H

#include <stdbool.h>
#include <stddef.h>

#include "zram/zctl-server.h"

struct ctl_owner {
  struct zctl_owner owner;      /* uid and gid the server will run as */
  bool switch_user;             /* -u given */
  bool switch_group;            /* -g given */
  char user[64], group[64];     /* as given, for messages */
};

/* Fill *o from /proc/self/cmdline: the current euid and egid, replaced by
 * -u and -g if given.  Returns 0, or -1 with a message in err[errlen] (an
 * unknown user or group, or /proc unreadable while we are root).
 */
extern int ctl_owner_get (struct ctl_owner *o, char *err, size_t errlen);

/* Whether the server, once it runs as o, may remove files in the directory
 * of path (so that the control socket goes away at exit).  Checked in a
 * child process that switches credentials exactly as nbdkit will.  Returns
 * true if it may, or if o is no switch at all.
 */
extern bool ctl_owner_can_remove (const struct ctl_owner *o, const char *path);

#endif /* ZRAM_CTL_OWNER_H */
