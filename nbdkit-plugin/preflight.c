/* nbdkit-zram: checks made before nbdkit forks (see preflight.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_getattr_default_np */
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zram/compiler.h"
#include "zram/zram.h"
#include "nbdkit-cmdline.h"
#include "preflight.h"

/* Bit of CAP_IPC_LOCK in /proc/self/status's CapEff (linux/capability.h). */
#define CAP_IPC_LOCK_BIT 14

/* Size of a slot table entry, for messages only (the plugin knows no
 * slots; include/zram/slot.h is the authority).
 */
#define TABLE_BYTES_PER_PAGE 16

/* "4.0 GiB", "64 KiB": sizes in messages. */
static const char *
human (uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double v = (double) bytes;
  unsigned u = 0;

  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf (buf, len, "%" PRIu64 " bytes", bytes);
  else
    snprintf (buf, len, "%.1f %s", v, units[u]);
  return buf;
}

/* Read a whole small /proc file into a NUL-terminated buffer.  Returns
 * its length, or -1 with errno.  The caller frees *out.
 */
static ssize_t
read_proc (const char *path, char **out)
{
  size_t cap = 4096, len = 0;
  char *buf = malloc (cap + 1), *p;
  int fd;

  if (buf == NULL)
    return -1;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    free (buf);
    return -1;
  }
  for (;;) {
    ssize_t r = read (fd, buf + len, cap - len);

    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      int e = errno;

      close (fd);
      free (buf);
      errno = e;
      return -1;
    }
    if (r == 0)
      break;
    len += r;
    if (len == cap) {
      p = realloc (buf, 2 * cap + 1);
      if (p == NULL) {
        close (fd);
        free (buf);
        errno = ENOMEM;
        return -1;
      }
      buf = p;
      cap *= 2;
    }
  }
  close (fd);
  buf[len] = '\0';
  *out = buf;
  return len;
}

/* The value of a "Key:" line of /proc/self/status, parsed in base
 * (10 for "VmLck:  123 kB", 16 for "CapEff: 0000..."), or -1.
 */
static int64_t
status_field (const char *key, int base)
{
  char *buf, *p;
  size_t klen = strlen (key);
  int64_t v = -1;

  if (read_proc ("/proc/self/status", &buf) == -1)
    return -1;
  for (p = buf; p && *p; p = strchr (p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp (p, key, klen) == 0 && p[klen] == ':') {
      v = strtoll (p + klen + 1, NULL, base);
      break;
    }
  free (buf);
  return v;
}

/* nbdkit's command line, or NULL (with a debug message) if it cannot be
 * read: the checks below then assume neither --swap nor -u, as they are
 * only there to turn a later failure into an early message.
 */
static const struct cmdline *
nbdkit_args (void)
{
  const struct cmdline *cl = cmdline_get ();

  if (cl == NULL)
    nbdkit_debug ("cannot read /proc/self/cmdline: %m");
  return cl;
}

int
preflight_refuse_nbdkit_swap (uint64_t disksize)
{
  const struct cmdline *cl = nbdkit_args ();
  char table[32];

  if (cl == NULL || !cl->swap)
    return 0;
  nbdkit_error ("nbdkit --swap is not supported by this plugin: it locks "
                "and populates the whole slot table at start-up (%s for "
                "this device, before anything is written), and a daemonised "
                "nbdkit loses the lock when it forks; use the plugin's "
                "mlock=true instead, which locks memory as it is used",
                human (disksize / ZRAM_PAGE_SIZE * TABLE_BYTES_PER_PAGE, table,
                       sizeof table));
  return -1;
}

/* Whether nbdkit will switch to a user other than root before it forks
 * (-u), which drops every capability, CAP_IPC_LOCK included.
 */
static bool
drops_privileges (void)
{
  const struct cmdline *cl = nbdkit_args ();
  char *endp;
  bool drops = false;

  if (cl && cl->user && geteuid () == 0) {
    struct passwd *pw = getpwnam (cl->user);
    long uid = strtol (cl->user, &endp, 10);

    if (pw)
      drops = pw->pw_uid != 0;
    else if (*cl->user && *endp == '\0')
      drops = uid != 0;
  }
  return drops;
}

/* What a trial thread does: nothing; starting is the test. */
static void *
trial_thread (void *arg UNUSED)
{
  return NULL;
}

/* Whether this process may lock memory beyond RLIMIT_MEMLOCK. */
static bool
has_cap_ipc_lock (void)
{
  int64_t caps = status_field ("CapEff", 16);

  return caps != -1 && (caps >> CAP_IPC_LOCK_BIT) & 1;
}

/* Called with all memory locked: check that the lock limit leaves room
 * for what the running server will map.  Under MCL_FUTURE every new
 * mapping counts against the limit in full, even with MCL_ONFAULT: thread
 * stacks (so connections fail) and pool growth (so writes fail with
 * ENOMEM); those get a warning.  Returns -1 (reported) when the lock fits
 * only thanks to CAP_IPC_LOCK, which nbdkit -u drops before .after_fork.
 */
static int
check_headroom (uint64_t disksize)
{
  struct rlimit rl;
  pthread_attr_t attr;
  size_t stack = 8 << 20;
  int64_t locked_kib = status_field ("VmLck", 10);
  uint64_t locked, room, threads;
  char b1[32], b2[32], b3[32];

  if (getrlimit (RLIMIT_MEMLOCK, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
      locked_kib < 0)
    return 0;
  if (pthread_getattr_default_np (&attr) == 0) {
    pthread_attr_getstacksize (&attr, &stack);
    pthread_attr_destroy (&attr);
  }
  locked = (uint64_t) locked_kib * 1024;
  threads = (uint64_t) PREFLIGHT_THREADS_PER_CONNECTION * stack;
  if (has_cap_ipc_lock ()) {
    if (locked + threads > rl.rlim_cur && drops_privileges ()) {
      nbdkit_error ("mlock: the server's memory (%s, and %s more for one "
                    "connection's threads) can be locked only with "
                    "CAP_IPC_LOCK, which nbdkit -u drops before the plugin "
                    "locks it; the limit for other users is %s ('ulimit "
                    "-l'): raise it (LimitMEMLOCK=infinity under systemd), "
                    "or leave out -u",
                    human (locked, b1, sizeof b1),
                    human (threads, b2, sizeof b2),
                    human (rl.rlim_cur, b3, sizeof b3));
      return -1;
    }
    return 0;                   /* the limit does not apply to us */
  }
  room = rl.rlim_cur > locked ? rl.rlim_cur - locked : 0;
  if (room < threads)
    nbdkit_error ("warning: mlock: the lock limit ('ulimit -l', %s) leaves "
                  "%s for new memory, but one connection's threads need "
                  "%s of stack: connections will fail; raise 'ulimit -l' "
                  "(LimitMEMLOCK=infinity under systemd)",
                  human (rl.rlim_cur, b1, sizeof b1),
                  human (room, b2, sizeof b2), human (threads, b3, sizeof b3));
  else if (room - threads < disksize)
    nbdkit_error ("warning: mlock: the lock limit ('ulimit -l', %s) leaves "
                  "room for %s of compressed data, less than the %s device: "
                  "writes will fail (ENOMEM) once the pool reaches it; "
                  "raise 'ulimit -l' (LimitMEMLOCK=infinity under systemd)",
                  human (rl.rlim_cur, b1, sizeof b1),
                  human (room - threads, b2, sizeof b2),
                  human (disksize, b3, sizeof b3));
  return 0;
}

int
preflight_try_start (int lock_memory, uint64_t disksize)
{
  struct rlimit rl;
  pthread_t thread;
  char limit[32] = "unlimited";
  int err;

  if (getrlimit (RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    human (rl.rlim_cur, limit, sizeof limit);
  /* The same call as .after_fork, on the same mappings (the fork copies
   * them): if it fails now it would fail there.
   */
  if (lock_memory &&
      mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
    nbdkit_error ("mlock: cannot lock the server's memory: mlockall: %m "
                  "(locked memory is limited to %s by 'ulimit -l'); run as "
                  "root, raise 'ulimit -l' (LimitMEMLOCK=infinity under "
                  "systemd), or leave out mlock=true", limit);
    return -1;
  }
  /* A thread started and joined before the fork leaves nothing behind
   * (nbdkit's rule is no thread alive at the fork).  Under the lock its
   * stack counts against the limit, as the real threads' will.
   */
  err = pthread_create (&thread, NULL, trial_thread, NULL);
  if (err == 0)
    pthread_join (thread, NULL);
  if (lock_memory) {
    int r = err == 0 ? check_headroom (disksize) : 0;

    munlockall ();
    if (r == -1)
      return -1;
  }
  if (err != 0) {
    errno = err;
    if (lock_memory)
      nbdkit_error ("mlock: cannot start a thread with memory locked: %m "
                    "(a thread's stack does not fit under the lock limit of "
                    "%s set by 'ulimit -l', or 'ulimit -u' is reached); "
                    "raise 'ulimit -l' (LimitMEMLOCK=infinity under "
                    "systemd), or leave out mlock=true", limit);
    else
      nbdkit_error ("cannot start a thread: %m (is 'ulimit -u' reached?)");
    return -1;
  }
  return 0;
}
