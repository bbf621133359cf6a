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
 * getopt_long with nbdkit 1.32's short and long options (server/options.h)
 * reproduces its parsing exactly, abbreviations and permutation included.
 * If a later nbdkit parses differently, the check in .after_fork reports
 * the mismatch and root can still use the socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "ctl-owner.h"

/* nbdkit 1.32's options (server/options.h); only has_arg and the values
 * for -u and -g matter here.
 */
static const char short_options[] = "46D:e:fg:i:nop:P:rst:u:U:vV";
static const struct option long_options[] = {
  { "ipv4-only",        no_argument,       NULL, '4' },
  { "ipv6-only",        no_argument,       NULL, '6' },
  { "debug",            required_argument, NULL, 'D' },
  { "dump-config",      no_argument,       NULL, 0 },
  { "dump-plugin",      no_argument,       NULL, 0 },
  { "exit-with-parent", no_argument,       NULL, 0 },
  { "export",           required_argument, NULL, 'e' },
  { "export-name",      required_argument, NULL, 'e' },
  { "exportname",       required_argument, NULL, 'e' },
  { "filter",           required_argument, NULL, 0 },
  { "foreground",       no_argument,       NULL, 'f' },
  { "no-fork",          no_argument,       NULL, 'f' },
  { "group",            required_argument, NULL, 'g' },
  { "help",             no_argument,       NULL, 0 },
  { "ip-addr",          required_argument, NULL, 'i' },
  { "ipaddr",           required_argument, NULL, 'i' },
  { "log",              required_argument, NULL, 0 },
  { "long-options",     no_argument,       NULL, 0 },
  { "mask-handshake",   required_argument, NULL, 0 },
  { "new-style",        no_argument,       NULL, 'n' },
  { "newstyle",         no_argument,       NULL, 'n' },
  { "no-sr",            no_argument,       NULL, 0 },
  { "old-style",        no_argument,       NULL, 'o' },
  { "oldstyle",         no_argument,       NULL, 'o' },
  { "pid-file",         required_argument, NULL, 'P' },
  { "pidfile",          required_argument, NULL, 'P' },
  { "port",             required_argument, NULL, 'p' },
  { "read-only",        no_argument,       NULL, 'r' },
  { "readonly",         no_argument,       NULL, 'r' },
  { "run",              required_argument, NULL, 0 },
  { "selinux-label",    required_argument, NULL, 0 },
  { "short-options",    no_argument,       NULL, 0 },
  { "single",           no_argument,       NULL, 's' },
  { "stdin",            no_argument,       NULL, 's' },
  { "swap",             no_argument,       NULL, 0 },
  { "threads",          required_argument, NULL, 't' },
  { "tls",              required_argument, NULL, 0 },
  { "tls-certificates", required_argument, NULL, 0 },
  { "tls-psk",          required_argument, NULL, 0 },
  { "tls-verify-peer",  no_argument,       NULL, 0 },
  { "unix",             required_argument, NULL, 'U' },
  { "user",             required_argument, NULL, 'u' },
  { "verbose",          no_argument,       NULL, 'v' },
  { "version",          no_argument,       NULL, 'V' },
  { "vsock",            no_argument,       NULL, 0 },
  { NULL, 0, NULL, 0 },
};

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

/* Read /proc/self/cmdline into a malloc'ed NULL-terminated argv whose
 * strings live in *bufp (free both).
 */
static char **
read_cmdline (int *argc, char **bufp)
{
  char *buf = NULL, **argv;
  size_t len = 0, cap = 0;
  ssize_t r;
  int fd, n = 0, i;

  fd = open ("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return NULL;
  for (;;) {
    if (len + 4096 > cap) {
      char *nb = realloc (buf, cap = len + 65536);
      if (nb == NULL)
        goto fail;
      buf = nb;
    }
    r = read (fd, buf + len, cap - len - 1);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      goto fail;
    if (r == 0)
      break;
    len += r;
  }
  close (fd);
  fd = -1;
  buf[len] = '\0';
  for (i = 0; (size_t) i < len; i++)
    if (buf[i] == '\0')
      n++;
  argv = malloc ((n + 1) * sizeof *argv);
  if (argv == NULL)
    goto fail;
  *argc = 0;
  for (i = 0; (size_t) i < len && *argc < n; i += strlen (buf + i) + 1)
    argv[(*argc)++] = buf + i;
  argv[*argc] = NULL;
  *bufp = buf;
  return argv;

 fail:
  if (fd >= 0)
    close (fd);
  free (buf);
  return NULL;
}

int
ctl_owner_get (struct ctl_owner *o, char *err, size_t errlen)
{
  const char *user = NULL, *group = NULL;
  char **argv, *buf = NULL;
  int argc, c, saved_optind = optind, saved_opterr = opterr;
  unsigned id;

  memset (o, 0, sizeof *o);
  o->owner.uid = geteuid ();
  o->owner.gid = getegid ();

  argv = read_cmdline (&argc, &buf);
  if (argv == NULL) {
    /* Only root can switch user: elsewhere -u would have failed. */
    if (geteuid () != 0)
      return 0;
    snprintf (err, errlen, "/proc/self/cmdline: %s (needed to learn "
              "nbdkit's -u/-g)", strerror (errno));
    return -1;
  }
  /* optind = 0 makes glibc start a fresh scan; nbdkit is done with it. */
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, short_options, long_options, NULL)) != -1) {
    if (c == 'u')
      user = optarg;
    else if (c == 'g')
      group = optarg;
  }
  optind = saved_optind;
  opterr = saved_opterr;

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
      goto fail;
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
      goto fail;
    }
  }
  free (buf);
  free (argv);
  return 0;

 fail:
  free (buf);
  free (argv);
  return -1;
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
