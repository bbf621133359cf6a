/* nbdkit-zram: what nbdkit was told on its command line (see nbdkit-cmdline.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbdkit-cmdline.h"

/* nbdkit 1.32's options (server/options.h).  Only has_arg matters for
 * parsing; the values are nbdkit's own for short options, and 0 for long
 * ones, except those this module reports.
 */
enum { LONG_SWAP = 256 };       /* beyond every short option */
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
  { "swap",             no_argument,       NULL, LONG_SWAP },
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

/* Read /proc/self/cmdline into a malloc'ed NULL-terminated argv whose
 * strings live in *bufp (free both).  NULL with errno on failure.
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
  n = errno;
  if (fd >= 0)
    close (fd);
  free (buf);
  errno = n;
  return NULL;
}

/* Kept until cmdline_release: the strings point into buf. */
static struct cmdline cached;
static char **argv, *buf;

const struct cmdline *
cmdline_get (void)
{
  int argc, c, saved_optind = optind, saved_opterr = opterr;

  if (argv)
    return &cached;
  argv = read_cmdline (&argc, &buf);
  if (argv == NULL)
    return NULL;
  /* optind = 0 makes glibc start a fresh scan; nbdkit is done with it. */
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, short_options, long_options, NULL)) != -1) {
    if (c == 'u')
      cached.user = optarg;
    else if (c == 'g')
      cached.group = optarg;
    else if (c == LONG_SWAP)
      cached.swap = true;
  }
  optind = saved_optind;
  opterr = saved_opterr;
  return &cached;
}

void
cmdline_release (void)
{
  free (argv);
  free (buf);
  argv = NULL;
  buf = NULL;
  memset (&cached, 0, sizeof cached);
}
