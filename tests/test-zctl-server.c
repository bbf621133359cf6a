/* The control socket server: mode 0600 whatever the umask (which stays
 * untouched), directories others could write refused, stale socket
 * replaced, live one not stolen, non-sockets left alone, long lines and
 * garbage rejected on a connection that stays usable, hung and non-reading
 * clients do not block others, stats answered during a slow command (and
 * during a reset's grace period: initialised=0; and recompress, refused
 * with EIO and answered at once), one client's replies in
 * order, client limit, no spinning and still served when out of file
 * descriptors, peer uid check, clean stop.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <pthread.h>
#include <urcu/urcu-bp.h>

#include "zram/zctl.h"
#include "zram/zctl-server.h"
#include "zram/zram.h"
#include "check.h"

static char path[108];

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
dial (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  strcpy (addr.sun_path, path);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    close (fd);
    return -1;
  }
  return fd;
}

/* Read one whole reply (up to "ok\n" or an "error ...\n" line) within
 * timeout seconds into buf.  Returns its length, or -1.
 */
static ssize_t
read_reply (int fd, char *buf, size_t cap, double timeout)
{
  double end = now () + timeout;
  size_t len = 0;

  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char *last;
    ssize_t r;

    buf[len] = '\0';
    if (len > 0 && buf[len - 1] == '\n') {
      buf[len - 1] = '\0';
      last = strrchr (buf, '\n');
      last = last ? last + 1 : buf;
      buf[len - 1] = '\n';
      if (strcmp (last, "ok\n") == 0 || strncmp (last, "error ", 6) == 0)
        return len;
    }
    if (poll (&p, 1, (int) ((end - now ()) * 1000) + 1) <= 0 || len + 1 >= cap)
      return -1;
    r = recv (fd, buf + len, cap - 1 - len, 0);
    if (r <= 0)
      return -1;
    len += r;
  }
}

/* Send line (with its '\n') and return the reply in a static buffer. */
static const char *
ask (int fd, const char *line, size_t len)
{
  static char buf[ZCTL_REPLY_MAX * 2];

  if (send (fd, line, len, MSG_NOSIGNAL) != (ssize_t) len)
    return "(send failed)";
  if (read_reply (fd, buf, sizeof buf, 5) == -1)
    return "(no reply)";
  return buf;
}

static int
ends_ok (const char *reply)
{
  size_t n = strlen (reply);
  return n >= 3 && strcmp (reply + n - 3, "ok\n") == 0 &&
         (n == 3 || reply[n - 4] == '\n');
}

/* Make a socket file with nobody listening (a dead server's leftover). */
static void
make_stale_socket (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);

  strcpy (addr.sun_path, path);
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == -1)
    perror ("bind stale");
  close (fd);
}

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Holds an RCU read-side section for a second: a reset's grace period
 * waits for it, as it would for a long request in flight.
 */
static int reader_in;             /* atomic */

static void *
rcu_reader (void *arg)
{
  (void) arg;
  urcu_bp_read_lock ();
  __atomic_store_n (&reader_in, 1, __ATOMIC_RELEASE);
  usleep (1000000);
  urcu_bp_read_unlock ();
  return NULL;
}

/* Directories others can write are refused (the symlink swap of case 04
 * needs one); sticky ones (like /tmp) are fine.
 */
static void
test_directories (struct zram *z, const char *dir)
{
  char sub[128], sock[160], err[256];
  struct zctl_server *srv;
  struct stat st;
  mode_t old;
  static const struct { mode_t mode; const char *why; } modes[] = {
    { 0777, "writable by everyone and not sticky" },
    { 0770, "writable by its group and not sticky" },
    { 01777, NULL },
    { 0700, NULL },
  };
  size_t i;

  snprintf (sub, sizeof sub, "%s/d", dir);
  snprintf (sock, sizeof sock, "%s/s", sub);
  mkdir (sub, 0700);
  for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    chmod (sub, modes[i].mode);
    srv = zctl_server_bind (sock, z, NULL, err, sizeof err);
    if (modes[i].why) {
      EXPECT (srv == NULL && errno == EPERM && strstr (err, modes[i].why),
              "mode %o: %s", modes[i].mode, srv ? "accepted" : err);
      EXPECT (lstat (sock, &st) == -1, "mode %o: a file was created",
              modes[i].mode);
    }
    else
      EXPECT (srv != NULL, "mode %o: %s", modes[i].mode, err);
    zctl_server_stop (srv);
  }
  /* The directory's parent is checked too. */
  chmod (sub, 0700);
  chmod (dir, 0777);
  srv = zctl_server_bind (sock, z, NULL, err, sizeof err);
  EXPECT (srv == NULL && strstr (err, dir), "parent 0777: %s", srv ? "ok" : err);
  zctl_server_stop (srv);
  chmod (dir, 0700);

  /* The mode is 0600 whatever the umask, and the umask is left alone. */
  old = umask (0);
  srv = zctl_server_bind (sock, z, NULL, err, sizeof err);
  EXPECT (srv && stat (sock, &st) == 0 && (st.st_mode & 0777) == 0600,
          "umask 0: mode %o (%s)", st.st_mode & 0777, err);
  EXPECT (umask (old) == 0, "umask changed");
  zctl_server_stop (srv);
  EXPECT (lstat (sock, &st) == -1, "not removed at stop");
  rmdir (sub);
}

/* Out of file descriptors: the first control client is served (on the
 * spare descriptor), the next waits without the server spinning, and is
 * served once a descriptor is free.
 */
static void
test_emfile (void)
{
  struct rlimit old, low;
  int c1, c2, fillers[512], n = 0;
  double cpu0, cpu1;
  const char *r;

  getrlimit (RLIMIT_NOFILE, &old);
  low = old;
  low.rlim_cur = 128;
  if (old.rlim_cur < 128 || setrlimit (RLIMIT_NOFILE, &low) == -1) {
    fprintf (stderr, "cannot lower RLIMIT_NOFILE: EMFILE not tested\n");
    return;
  }
  c1 = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  c2 = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  while (n < 512 && (fillers[n] = open ("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    n++;
  EXPECT (n < 512 && errno == EMFILE, "could not run out of descriptors");
  {
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    strcpy (addr.sun_path, path);
    EXPECT (connect (c1, (struct sockaddr *) &addr, sizeof addr) == 0, "c1");
    r = ask (c1, "stats\n", 6);
    EXPECT (ends_ok (r), "first client out of fds: %s", r);
    EXPECT (connect (c2, (struct sockaddr *) &addr, sizeof addr) == 0, "c2");
  }
  EXPECT (send (c2, "stats\n", 6, MSG_NOSIGNAL) == 6, "c2 send");
  usleep (200000);
  cpu0 = cpu_seconds ();
  usleep (1500000);
  cpu1 = cpu_seconds ();
  EXPECT (cpu1 - cpu0 < 0.15, "the server spun: %.3f s CPU in 1.5 s", cpu1 - cpu0);
  close (fillers[--n]);
  close (fillers[--n]);
  {
    char buf[ZCTL_REPLY_MAX * 2];
    ssize_t len = read_reply (c2, buf, sizeof buf, 5);
    EXPECT (len > 0 && ends_ok (buf), "second client not served once a "
            "descriptor was free: %s", len > 0 ? buf : "(no reply)");
  }
  close (c1);
  close (c2);
  while (n > 0)
    close (fillers[--n]);
  setrlimit (RLIMIT_NOFILE, &old);
}

int
main (void)
{
  struct zram_config config = {
    .disksize = 1 << 20, .algo = ZCOMP_LZ4, .pool = ZPOOL_MALLOC,
    .nr_recomp = 1, .recomp = { { ZCOMP_ZSTD, 3 } },
  };
  char dir[] = "/tmp/zctl-server-XXXXXX";
  char err[256], big[8 * ZCTL_LINE_MAX];
  struct zctl_server *srv, *srv2;
  struct zram *z;
  struct stat st;
  int fds[ZCTL_MAX_CLIENTS + 2];
  int hung, greedy, fd, i;
  const char *r;
  double t0;

  z = zram_create (&config);
  if (z == NULL || mkdtemp (dir) == NULL) {
    perror ("setup");
    return 1;
  }
  snprintf (path, sizeof path, "%s/ctl.sock", dir);

  /* A path that exists and is not a socket is never replaced. */
  fd = open (path, O_CREAT | O_WRONLY, 0644);
  close (fd);
  srv = zctl_server_bind (path, z, NULL, err, sizeof err);
  EXPECT (srv == NULL && strstr (err, "not a socket"), "%s", err);
  EXPECT (stat (path, &st) == 0 && S_ISREG (st.st_mode), "regular file removed");
  unlink (path);

  /* Too long a path. */
  {
    char longp[200];
    memset (longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    EXPECT (zctl_server_bind (longp, z, NULL, err, sizeof err) == NULL &&
           errno == ENAMETOOLONG, "%s", err);
  }

  test_directories (z, dir);

  /* A stale socket is replaced; the new one has mode 0600. */
  make_stale_socket ();
  srv = zctl_server_bind (path, z, NULL, err, sizeof err);
  EXPECT (srv != NULL, "bind over stale socket: %s", err);
  if (srv == NULL)
    return 1;
  EXPECT (stat (path, &st) == 0 && S_ISSOCK (st.st_mode) &&
         (st.st_mode & 0777) == 0600, "mode %o", st.st_mode & 0777);
  EXPECT (zctl_server_start (srv) == 0, "start: %m");

  /* A live socket is not stolen, and keeps working. */
  srv2 = zctl_server_bind (path, z, NULL, err, sizeof err);
  EXPECT (srv2 == NULL && strstr (err, "running server"), "%s", err);
  fd = dial ();
  EXPECT (fd >= 0, "dial after refused steal: %m");
  r = ask (fd, "stats\n", 6);
  EXPECT (ends_ok (r) && strstr (r, "disksize=1048576\n"), "%s", r);

  /* Several commands in one write, answered in order. */
  {
    char buf[2 * ZCTL_REPLY_MAX];
    size_t len = 0;
    double end = now () + 5;
    const char *ok1, *stats;

    EXPECT (send (fd, "help\nstats\n", 11, 0) == 11, "send");
    while (now () < end && (len < 3 || !strstr (buf, "disksize=") ||
                            strcmp (buf + len - 3, "ok\n") != 0)) {
      ssize_t n = recv (fd, buf + len, sizeof buf - 1 - len, MSG_DONTWAIT);
      if (n > 0)
        len += n;
      else
        usleep (1000);
      buf[len] = '\0';
    }
    ok1 = strstr (buf, "\nok\n");
    stats = strstr (buf, "disksize=");
    EXPECT (strncmp (buf, "command=", 8) == 0 && ok1 && stats && ok1 < stats &&
           ends_ok (buf), "%s", buf);
  }

  /* A too-long line gets one E2BIG, then the connection is still usable. */
  memset (big, 'x', sizeof big);
  big[sizeof big - 1] = '\n';
  r = ask (fd, big, sizeof big);
  EXPECT (strncmp (r, "error E2BIG:", 12) == 0, "%s", r);
  r = ask (fd, "mem_limit 1M\n", 13);
  EXPECT (strcmp (r, "ok\n") == 0, "after long line: %s", r);
  /* Binary garbage: NUL, high bytes, escape codes. */
  r = ask (fd, "mem_limit 5M\0\n", 14);
  EXPECT (strncmp (r, "error EINVAL:", 13) == 0, "%s", r);
  r = ask (fd, "\xff\xfe\x1b[2J\n", 7);
  EXPECT (strncmp (r, "error EINVAL:", 13) == 0, "%s", r);
  r = ask (fd, "stats\r\n", 7);
  EXPECT (ends_ok (r) && strstr (r, "mem_limit=1048576\n"), "garbage changed "
         "the limit: %s", r);
  close (fd);

  /* A client that never finishes its line, and one that floods commands
   * and never reads, do not slow down a third.
   */
  hung = dial ();
  EXPECT (hung >= 0 && send (hung, "sta", 3, 0) == 3, "hung client");
  greedy = dial ();
  EXPECT (greedy >= 0, "greedy client");
  {
    int flags = fcntl (greedy, F_GETFL);
    long sent = 0;

    fcntl (greedy, F_SETFL, flags | O_NONBLOCK);
    /* Until the kernel buffers are full both ways (bounded). */
    for (i = 0; i < 200000; i++) {
      ssize_t n = send (greedy, "stats\n", 6, MSG_NOSIGNAL);
      if (n <= 0)
        break;
      sent += n;
    }
    EXPECT (sent > 0, "greedy sent nothing");
  }
  t0 = now ();
  fd = dial ();
  r = ask (fd, "stats\n", 6);
  EXPECT (ends_ok (r), "%s", r);
  EXPECT (now () - t0 < 2.0, "stats took %.3f s beside stuck clients", now () - t0);
  close (fd);

  /* A slow command (a reset waiting for a connection to close) does not
   * hold up another client's stats; the same client's replies stay in
   * order.
   */
  {
    int a2 = dial (), b2 = dial ();
    char buf[ZCTL_REPLY_MAX * 2];
    ssize_t len;

    EXPECT (zram_open (z) == 0, "open");
    EXPECT (send (a2, "reset\nstats\n", 12, 0) == 12, "send reset");
    usleep (300000);
    t0 = now ();
    r = ask (b2, "stats\n", 6);
    EXPECT (ends_ok (r) && strstr (r, "connections=1\n"), "%s", r);
    EXPECT (now () - t0 < 0.5, "stats waited %.3f s behind a reset", now () - t0);
    /* Both replies, the reset's first (they may come in one read). */
    len = read_reply (a2, buf, sizeof buf, 5);
    if (len > 0 && strchr (buf, '\n') == buf + len - 1) {
      ssize_t more = read_reply (a2, buf + len, sizeof buf - len, 5);
      len = more > 0 ? len + more : -1;
    }
    EXPECT (len > 0 && strncmp (buf, "error EBUSY:", 12) == 0 &&
            strstr (buf, "\ndisksize=") && ends_ok (buf),
            "reset then stats: %s", len > 0 ? buf : "(none)");
    zram_close (z);

    /* During a forced reset's grace period the device reads as not
     * initialised, and stats says so at once.
     */
    {
      pthread_t th;

      __atomic_store_n (&reader_in, 0, __ATOMIC_RELAXED);
      pthread_create (&th, NULL, rcu_reader, NULL);
      while (!__atomic_load_n (&reader_in, __ATOMIC_ACQUIRE))
        usleep (1000);
      EXPECT (send (a2, "reset force\n", 12, 0) == 12, "send reset force");
      usleep (200000);
      t0 = now ();
      r = ask (b2, "stats\n", 6);
      EXPECT (now () - t0 < 0.5 && strstr (r, "initialised=0\n"),
              "stats during a grace period (%.3f s): %s", now () - t0, r);
      /* A walk has a worker of its own: answered at once, and told why
       * it cannot run (not that the device has no algorithm).
       */
      t0 = now ();
      r = ask (b2, "recompress type=idle\n", 21);
      EXPECT (now () - t0 < 0.5 && strncmp (r, "error EIO", 9) == 0 &&
              strstr (r, "a reset is in progress"),
              "recompress during a grace period (%.3f s): %s", now () - t0, r);
      len = read_reply (a2, buf, sizeof buf, 5);
      EXPECT (len > 0 && strcmp (buf, "ok\n") == 0, "reset force: %s",
              len > 0 ? buf : "(none)");
      pthread_join (th, NULL);
      r = ask (b2, "stats\n", 6);
      EXPECT (strstr (r, "initialised=1\n"), "after the reset: %s", r);
    }
    close (a2);
    close (b2);
  }

  /* At most ZCTL_MAX_CLIENTS: the next one is told EAGAIN and closed. */
  for (i = 0; i < ZCTL_MAX_CLIENTS - 2; i++)
    fds[i] = dial ();
  /* Make sure the server has accepted them all before the extra one. */
  for (i = 0; i < ZCTL_MAX_CLIENTS - 2; i++) {
    r = ask (fds[i], "help\n", 5);
    EXPECT (ends_ok (r), "client %d: %s", i, r);
  }
  fd = dial ();
  EXPECT (fd >= 0, "extra dial");
  /* It asks at once: its unread command must not turn the farewell into
   * a connection reset.
   */
  if (send (fd, "stats\n", 6, MSG_NOSIGNAL) != 6)
    fprintf (stderr, "(the server closed the extra client first)\n");
  {
    char buf[256];
    ssize_t n = read_reply (fd, buf, sizeof buf, 5);
    EXPECT (n > 0 && strncmp (buf, "error EAGAIN:", 13) == 0, "%s",
           n > 0 ? buf : "(nothing)");
  }
  close (fd);
  for (i = 0; i < ZCTL_MAX_CLIENTS - 2; i++)
    close (fds[i]);
  close (greedy);
  /* A freed slot serves again (the server notices the closes). */
  t0 = now ();
  for (;;) {
    fd = dial ();
    r = ask (fd, "stats\n", 6);
    close (fd);
    if (ends_ok (r) || now () - t0 > 5)
      break;
    usleep (10000);
  }
  EXPECT (ends_ok (r), "slots not freed: %s", r);

  test_emfile ();

  /* Peer check: another uid is refused even if the file mode allowed it. */
  if (geteuid () == 0) {
    pid_t pid;
    int status;

    chmod (path, 0666);
    chmod (dir, 0711);
    pid = fork ();
    if (pid == 0) {
      char buf[256];
      ssize_t n;

      if (setgid (65534) == -1 || setuid (65534) == -1)
        _exit (2);
      fd = dial ();
      if (fd == -1)
        _exit (3);
      n = send (fd, "stats\n", 6, MSG_NOSIGNAL);
      (void) n;
      n = read_reply (fd, buf, sizeof buf, 5);
      _exit (n > 0 && strncmp (buf, "error EACCES:", 13) == 0 ? 0 : 4);
    }
    waitpid (pid, &status, 0);
    EXPECT (WIFEXITED (status) && WEXITSTATUS (status) == 0,
           "uid 65534 not refused (child status %d)", status);
    chmod (path, 0600);
  }
  else
    fprintf (stderr, "not root: peer uid check not tested\n");

  /* Stop with a client still connected and one half line pending: joins,
   * closes, and removes the socket file.
   */
  t0 = now ();
  zctl_server_stop (srv);
  EXPECT (now () - t0 < 2.0, "stop took %.3f s", now () - t0);
  EXPECT (lstat (path, &st) == -1 && errno == ENOENT, "socket file left behind");
  close (hung);

  /* Stop of a server that never started; and a successor's file is not
   * removed by its predecessor.
   */
  srv = zctl_server_bind (path, z, NULL, err, sizeof err);
  EXPECT (srv != NULL, "rebind: %s", err);
  unlink (path);
  make_stale_socket ();
  zctl_server_stop (srv);
  EXPECT (lstat (path, &st) == 0, "stop removed a file it did not create");
  unlink (path);
  zctl_server_stop (NULL);

  rmdir (dir);
  zram_destroy (z);
  if (check_failures) {
    fprintf (stderr, "%d failure(s)\n", check_failures);
    return 1;
  }
  printf ("test-zctl-server: all passed\n");
  return 0;
}
