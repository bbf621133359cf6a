/* Helpers for the C tests that run the plugin under nbdkit and drive its
 * control socket (test-reset-storm.c, test-reset-seed-race.c).  Header
 * only: each test is one translation unit.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Environment (set by tests/meson.build): ZRAM_PLUGIN (required, else the
 * test skips), ZRAM_PRELOAD (a sanitizer runtime for nbdkit, or empty).
 */
#ifndef ZRAM_CTL_TEST_UTIL_H
#define ZRAM_CTL_TEST_UTIL_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "check.h"          /* test_now, test_sleep_us */

struct test_server {
  pid_t pid;
  char dir[64];
  char sock[108];               /* NBD socket (fits sun_path) */
  char ctl[108];                /* control socket */
};

/* Start "nbdkit -f -U SOCK PLUGIN size=SIZE ctl=CTL [extra]" in a private
 * directory; wait until both sockets exist.  Exits 77 if ZRAM_PLUGIN is
 * unset, 1 on failure.
 */
static inline void
test_server_start (struct test_server *srv, const char *size, const char *extra)
{
  const char *plugin = getenv ("ZRAM_PLUGIN");
  const char *preload = getenv ("ZRAM_PRELOAD");
  char size_arg[64], ctl_arg[160];
  double t0;

  if (plugin == NULL || *plugin == '\0') {
    fprintf (stderr, "SKIP: ZRAM_PLUGIN is not set\n");
    exit (77);
  }
  strcpy (srv->dir, "/tmp/zram-ctl-test-XXXXXX");
  if (mkdtemp (srv->dir) == NULL) {
    perror ("mkdtemp");
    exit (1);
  }
  snprintf (srv->sock, sizeof srv->sock, "%s/nbd.sock", srv->dir);
  snprintf (srv->ctl, sizeof srv->ctl, "%s/ctl.sock", srv->dir);
  snprintf (size_arg, sizeof size_arg, "size=%s", size);
  snprintf (ctl_arg, sizeof ctl_arg, "ctl=%s", srv->ctl);

  srv->pid = fork ();
  if (srv->pid == -1) {
    perror ("fork");
    exit (1);
  }
  if (srv->pid == 0) {
    if (preload && *preload)
      setenv ("LD_PRELOAD", preload, 1);
    execlp ("nbdkit", "nbdkit", "-f", "-U", srv->sock, plugin,
            size_arg, ctl_arg, extra, (char *) NULL);
    perror ("nbdkit");
    _exit (126);
  }
  t0 = test_now ();
  for (;;) {
    struct stat st;
    int status;

    if (stat (srv->sock, &st) == 0 && stat (srv->ctl, &st) == 0)
      break;
    if (waitpid (srv->pid, &status, WNOHANG) == srv->pid) {
      fprintf (stderr, "nbdkit exited early (status 0x%x)\n", status);
      exit (1);
    }
    if (test_now () - t0 > 30) {
      fprintf (stderr, "nbdkit did not create its sockets in 30 s\n");
      kill (srv->pid, SIGKILL);
      exit (1);
    }
    test_sleep_us (10000);
  }
  /* The control socket is created in .get_ready and served from
   * .after_fork, a moment later: connections queue until then.
   */
}

/* SIGTERM; returns 0 if nbdkit exited with status 0 within timeout
 * seconds, else prints why and returns -1 (killing it if still alive).
 */
static inline int
test_server_stop (struct test_server *srv, double timeout)
{
  double t0 = test_now ();
  int status;

  kill (srv->pid, SIGTERM);
  for (;;) {
    pid_t r = waitpid (srv->pid, &status, WNOHANG);

    if (r == srv->pid)
      break;
    if (test_now () - t0 > timeout) {
      fprintf (stderr, "nbdkit still running %.0f s after SIGTERM\n", timeout);
      kill (srv->pid, SIGKILL);
      waitpid (srv->pid, &status, 0);
      return -1;
    }
    test_sleep_us (10000);
  }
  unlink (srv->sock);
  unlink (srv->ctl);
  rmdir (srv->dir);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    fprintf (stderr, "nbdkit exited badly (status 0x%x)\n", status);
    return -1;
  }
  fprintf (stderr, "nbdkit exited cleanly %.2f s after SIGTERM\n",
           test_now () - t0);
  return 0;
}

/* Connect to the control socket; -1 on failure. */
static inline int
ctl_connect (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  snprintf (addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (fd == -1 || connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    if (fd >= 0)
      close (fd);
    return -1;
  }
  return fd;
}

/* Send one command line (without '\n') and read its reply into reply.
 * Returns 0 for "ok", 1 for "error ...", -1 if the exchange failed.  The
 * socket must carry only this exchange (no pipelining).
 */
static inline int
ctl_command (int fd, const char *cmd, char *reply, size_t cap)
{
  char line[300];
  size_t len = 0, n = snprintf (line, sizeof line, "%s\n", cmd);

  if (send (fd, line, n, MSG_NOSIGNAL) != (ssize_t) n)
    return -1;
  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    ssize_t r;
    char *last;

    reply[len] = '\0';
    if (len > 0 && reply[len - 1] == '\n') {
      reply[len - 1] = '\0';
      last = strrchr (reply, '\n');
      last = last ? last + 1 : reply;
      reply[len - 1] = '\n';
      if (strcmp (last, "ok\n") == 0)
        return 0;
      if (strncmp (last, "error ", 6) == 0)
        return 1;
    }
    if (len + 1 >= cap || poll (&p, 1, 30000) != 1)
      return -1;
    r = recv (fd, reply + len, cap - 1 - len, 0);
    if (r <= 0)
      return -1;
    len += r;
  }
}

/* Value of "key=" in a stats reply, or -1. */
static inline long long
ctl_stat (const char *reply, const char *key)
{
  size_t klen = strlen (key);
  const char *p = reply;

  while (p && *p) {
    if (strncmp (p, key, klen) == 0 && p[klen] == '=')
      return atoll (p + klen + 1);
    p = strchr (p, '\n');
    if (p)
      p++;
  }
  return -1;
}

/* For the multi-threaded NBD tests, which define "failed" (atomic_int)
 * and "stop" (atomic_bool): report, mark the test failed, stop all threads.
 */
#define FAIL(...)                                               \
  do {                                                          \
    fprintf (stderr, "FAIL: " __VA_ARGS__);                     \
    fputc ('\n', stderr);                                       \
    atomic_store (&failed, 1);                                  \
    atomic_store (&stop, true);                                 \
  } while (0)

/* A small xorshift generator, reproducible from its seed. */
static inline uint64_t
rnd (uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

#endif /* ZRAM_CTL_TEST_UTIL_H */
