/* nbdkit-zram: who the control socket is for when nbdkit switches user.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Why parse the command line rather than something else:
 *  - nbdkit exports neither its -u/-g values nor a hook after the switch
 *    that still runs before the fork (where errors would be visible);
 *  - binding in .after_fork, after the switch, would report errors only to
 *    syslog (the parent has already exited 0), and the user could not bind
 *    in the root-owned directories where -u is typically used;
 *  - a world-connectable socket guarded only by SO_PEERCRED would admit
 *    every local user to the accept queue.
 * nbdkit-cmdline.h reads the command line with nbdkit 1.32's own grammar.
 * If a later nbdkit parses differently, the check in .after_fork reports
 * the mismatch and root can still use the socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "ctl-owner.h"
#include "nbdkit-cmdline.h"

/* A decimal id as nbdkit_parse_int would take it (no sign, no junk). */
static int
parse_id (const char *s, unsigned *out)
{
  char *end;
  unsigned long v;

  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoul (s, &end, 10);
  if (errno || *end || v > INT_MAX)
    return -1;
  *out = v;
  return 0;
}

int
ctl_owner_get (struct ctl_owner *o, char *err, size_t errlen)
{
  const struct cmdline *cl;
  const char *user, *group;
  unsigned id;

  memset (o, 0, sizeof *o);
  o->owner.uid = geteuid ();
  o->owner.gid = getegid ();

  cl = cmdline_get ();
  if (cl == NULL) {
    /* Only root can switch user: elsewhere -u would have failed. */
    if (geteuid () != 0)
      return 0;
    snprintf (err, errlen, "/proc/self/cmdline: %s (needed to learn "
              "nbdkit's -u/-g)", strerror (errno));
    return -1;
  }
  user = cl->user;
  group = cl->group;

  if (group) {
    struct group *gr = getgrnam (group);

    o->switch_group = true;
    snprintf (o->group, sizeof o->group, "%s", group);
    if (gr)
      o->owner.gid = gr->gr_gid;
    else if (parse_id (group, &id) == 0)
      o->owner.gid = id;
    else {
      snprintf (err, errlen, "-g %s: no such group", group);
      return -1;
    }
  }
  if (user) {
    struct passwd *pw = getpwnam (user);

    o->switch_user = true;
    snprintf (o->user, sizeof o->user, "%s", user);
    if (pw)
      o->owner.uid = pw->pw_uid;
    else if (parse_id (user, &id) == 0)
      o->owner.uid = id;
    else {
      snprintf (err, errlen, "-u %s: no such user", user);
      return -1;
    }
  }
  return 0;
}

bool
ctl_owner_can_remove (const struct ctl_owner *o, const char *path)
{
  char dir[PATH_MAX];
  const char *slash = strrchr (path, '/');
  int status;
  pid_t pid;

  if (!o->switch_user && !o->switch_group)
    return true;
  if (slash == NULL)
    snprintf (dir, sizeof dir, ".");
  else if (slash == path)
    snprintf (dir, sizeof dir, "/");
  else
    snprintf (dir, sizeof dir, "%.*s", (int) (slash - path), path);

  /* .get_ready runs before any thread of ours: fork is safe, and the
   * child only makes system calls.
   */
  pid = fork ();
  if (pid == -1)
    return true;                /* cannot tell: do not cry wolf */
  if (pid == 0) {
    gid_t gid = o->owner.gid;

    if (o->switch_group && (setgid (gid) == -1 || setgroups (1, &gid) == -1))
      _exit (2);
    if (o->switch_user && setuid (o->owner.uid) == -1)
      _exit (2);
    _exit (faccessat (AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0 ? 0 : 1);
  }
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  return !(WIFEXITED (status) && WEXITSTATUS (status) == 1);
}
