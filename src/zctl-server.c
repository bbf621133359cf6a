/* nbdkit-zram: the control socket server.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   listen fd ──accept──> clients[ZCTL_MAX_CLIENTS]
 *                           in[]  bytes up to the next '\n'
 *                           out[] replies not yet sent
 *   stop pipe ──> wakes poll() when zctl_server_stop is called
 *
 * A client's input is read only while its output buffer has room for a
 * whole reply: a client that never reads stops being read, and is dropped
 * after ZCTL_CLIENT_TIMEOUT, without ever blocking the loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* accept4, pipe2, struct ucred */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "zram/thread-ctx.h"
#include "zram/zctl.h"
#include "zram/zctl-server.h"

/* Room for two whole replies: one is read only when one fits. */
#define OUT_CAP (2 * ZCTL_REPLY_MAX)

/* A line, a '\r' and the '\n'; a line that fills it is too long. */
#define IN_CAP (ZCTL_LINE_MAX + 2)

struct client {
  int fd;                       /* -1 = free slot */
  char in[IN_CAP];
  size_t in_len;
  bool discarding;              /* skipping the rest of a too-long line */
  bool eof;                     /* client shut down its sending side */
  char out[OUT_CAP];
  size_t out_len;
  time_t last_progress;         /* CLOCK_MONOTONIC seconds */
};

struct zctl_server {
  char *path;
  struct zram *zram;
  int listen_fd;
  int stop_pipe[2];
  dev_t dev;                    /* identity of the socket file we made */
  ino_t ino;
  uid_t uid;                    /* served besides root */
  bool started;
  pthread_t thread;
  sem_t ready;                  /* posted once the thread has its context */
  int start_errno;              /* 0, or why the thread refused to serve */
  struct client clients[ZCTL_MAX_CLIENTS];
};

static time_t
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* Best effort, non-blocking: a one-line farewell to a refused client.
 * What it already sent is read first: closing a unix socket with unread
 * input makes the peer's next read fail with ECONNRESET, and the client
 * would never see the farewell.
 */
static void
send_farewell (int fd, const char *msg)
{
  char junk[512];
  ssize_t r;

  r = recv (fd, junk, sizeof junk, MSG_DONTWAIT);
  r = send (fd, msg, strlen (msg), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void) r;
}

static void
client_close (struct client *c)
{
  close (c->fd);
  c->fd = -1;
}

static void
client_append (struct client *c, const char *s)
{
  size_t n = strlen (s);

  /* Callers check for room first (see OUT_CAP). */
  if (n > OUT_CAP - c->out_len)
    n = OUT_CAP - c->out_len;
  memcpy (c->out + c->out_len, s, n);
  c->out_len += n;
}

static bool
client_has_room (const struct client *c)
{
  return OUT_CAP - c->out_len >= ZCTL_REPLY_MAX;
}

static void
client_run_line (struct zctl_server *srv, struct client *c,
                 const char *line, size_t len)
{
  char reply[ZCTL_REPLY_MAX];

  zctl_execute (srv->zram, line, len, reply, sizeof reply);
  client_append (c, reply);
}

/* Execute the complete lines in c->in while replies fit.  At EOF a last
 * line without '\n' counts as complete.
 */
static void
client_process (struct zctl_server *srv, struct client *c)
{
  char reply[ZCTL_REPLY_MAX];

  while (client_has_room (c)) {
    char *nl = memchr (c->in, '\n', c->in_len);
    size_t used;

    if (nl == NULL) {
      if (c->discarding)
        c->in_len = 0;          /* more of the line already refused */
      else if (c->in_len == IN_CAP) {
        /* Too long: answer once, then skip up to the next '\n'. */
        zctl_execute (srv->zram, c->in, c->in_len, reply, sizeof reply);
        client_append (c, reply);
        c->discarding = true;
        c->in_len = 0;
      }
      else if (c->eof && c->in_len > 0) {
        client_run_line (srv, c, c->in, c->in_len);
        c->in_len = 0;
      }
      return;
    }
    used = nl - c->in + 1;
    if (c->discarding)
      c->discarding = false;
    else
      client_run_line (srv, c, c->in, nl - c->in);
    memmove (c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
  }
}

/* Returns false if the client must be closed. */
static bool
client_read (struct zctl_server *srv, struct client *c)
{
  ssize_t r = recv (c->fd, c->in + c->in_len, IN_CAP - c->in_len, MSG_DONTWAIT);

  if (r == -1)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  if (r == 0)
    c->eof = true;
  else {
    c->in_len += r;
    c->last_progress = now ();
  }
  client_process (srv, c);
  return true;
}

static bool
client_write (struct client *c)
{
  ssize_t r = send (c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

  if (r == -1)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  memmove (c->out, c->out + r, c->out_len - r);
  c->out_len -= r;
  c->last_progress = now ();
  return true;
}

static void
accept_client (struct zctl_server *srv)
{
  struct ucred cred;
  socklen_t credlen = sizeof cred;
  char msg[160];
  int fd, i;

  fd = accept4 (srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd == -1)
    return;                     /* EAGAIN, ECONNABORTED, EMFILE: try later */

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
    close (fd);
    return;
  }
  if (cred.uid != 0 && cred.uid != srv->uid) {
    snprintf (msg, sizeof msg, "error EACCES: permission denied: uid %u "
              "is neither root nor the server's uid %u\n",
              (unsigned) cred.uid, (unsigned) srv->uid);
    send_farewell (fd, msg);
    close (fd);
    return;
  }

  for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
    struct client *c = &srv->clients[i];

    if (c->fd == -1) {
      c->fd = fd;
      c->in_len = c->out_len = 0;
      c->discarding = c->eof = false;
      c->last_progress = now ();
      return;
    }
  }
  snprintf (msg, sizeof msg, "error EAGAIN: too many control clients "
            "(at most %d at once)\n", ZCTL_MAX_CLIENTS);
  send_farewell (fd, msg);
  close (fd);
}

static void *
serve (void *arg)
{
  struct zctl_server *srv = arg;
  struct pollfd pfd[ZCTL_MAX_CLIENTS + 2];
  int map[ZCTL_MAX_CLIENTS + 2];

  /* Everything this thread will need to answer under memory pressure
   * (its RCU registration above all) is allocated now, where a failure
   * stops the server from starting with a message, rather than at the
   * first command, where it would abort the server.
   */
  if (zram_thread_ctx_get () == NULL) {
    srv->start_errno = errno;
    sem_post (&srv->ready);
    return NULL;
  }
  sem_post (&srv->ready);

  for (;;) {
    nfds_t n = 0, k;
    time_t t;
    int i;

    pfd[n].fd = srv->stop_pipe[0];
    pfd[n++].events = POLLIN;
    pfd[n].fd = srv->listen_fd;
    pfd[n++].events = POLLIN;
    for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
      struct client *c = &srv->clients[i];
      short ev = 0;

      if (c->fd == -1)
        continue;
      if (!c->eof && client_has_room (c))
        ev |= POLLIN;
      if (c->out_len > 0)
        ev |= POLLOUT;
      map[n] = i;
      pfd[n].fd = c->fd;
      pfd[n++].events = ev;
    }

    if (poll (pfd, n, 1000) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pfd[0].revents)
      break;                    /* zctl_server_stop */
    if (pfd[1].revents & POLLIN)
      accept_client (srv);

    t = now ();
    for (k = 2; k < n; k++) {
      struct client *c = &srv->clients[map[k]];
      bool keep = true;

      if (pfd[k].revents & (POLLERR | POLLNVAL))
        keep = false;
      if (keep && (pfd[k].revents & POLLOUT))
        keep = client_write (c);
      if (keep && (pfd[k].revents & (POLLIN | POLLHUP)) && !c->eof)
        keep = client_read (srv, c);
      /* Input held back while the output was full can go on now. */
      if (keep && client_has_room (c) && c->in_len > 0)
        client_process (srv, c);
      /* Finished: the client sent EOF and has every reply. */
      if (keep && c->eof && c->out_len == 0 && c->in_len == 0)
        keep = false;
      if (keep && t - c->last_progress >= ZCTL_CLIENT_TIMEOUT)
        keep = false;
      if (!keep)
        client_close (c);
    }
  }
  return NULL;
}

/* Is a server accepting connections on path?  1 yes, 0 no, -1 unknown
 * (errno set).
 */
static int
socket_is_live (const struct sockaddr_un *addr)
{
  int fd, r;

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  r = connect (fd, (const struct sockaddr *) addr, sizeof *addr);
  if (r == 0)
    r = 1;
  else if (errno == ECONNREFUSED || errno == ENOENT)
    r = 0;
  else
    r = -1;
  close (fd);
  return r;
}

struct zctl_server *
zctl_server_bind (const char *path, struct zram *zram, char *err, size_t errlen)
{
  struct zctl_server *srv;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  int i, saved;

  if (strlen (path) >= sizeof addr.sun_path) {
    snprintf (err, errlen, "%s: control socket path longer than %zu bytes",
              path, sizeof addr.sun_path - 1);
    errno = ENAMETOOLONG;
    return NULL;
  }
  strcpy (addr.sun_path, path);

  srv = calloc (1, sizeof *srv);
  if (srv == NULL) {
    snprintf (err, errlen, "calloc: %s", strerror (errno));
    return NULL;
  }
  srv->zram = zram;
  srv->listen_fd = srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
  for (i = 0; i < ZCTL_MAX_CLIENTS; i++)
    srv->clients[i].fd = -1;
  srv->path = strdup (path);
  if (srv->path == NULL) {
    snprintf (err, errlen, "strdup: %s", strerror (errno));
    goto out_free;
  }
  if (pipe2 (srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    snprintf (err, errlen, "pipe2: %s", strerror (errno));
    goto out_free;
  }
  srv->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (srv->listen_fd == -1) {
    snprintf (err, errlen, "socket: %s", strerror (errno));
    goto out_free;
  }

  if (bind (srv->listen_fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    if (errno != EADDRINUSE) {
      snprintf (err, errlen, "%s: cannot create control socket: %s",
                path, strerror (errno));
      goto out_free;
    }
    /* Something is there.  Replace it only if it is a socket nobody
     * answers on: the leftover of a server that died without cleanup.
     */
    if (lstat (path, &st) == -1 || !S_ISSOCK (st.st_mode)) {
      snprintf (err, errlen, "%s: exists and is not a socket; "
                "refusing to replace it", path);
      errno = EEXIST;
      goto out_free;
    }
    switch (socket_is_live (&addr)) {
    case 1:
      snprintf (err, errlen, "%s: a running server already listens on "
                "this control socket", path);
      errno = EADDRINUSE;
      goto out_free;
    case -1:
      snprintf (err, errlen, "%s: cannot tell whether the control socket "
                "is in use: %s", path, strerror (errno));
      goto out_free;
    }
    if (unlink (path) == -1 && errno != ENOENT) {
      snprintf (err, errlen, "%s: cannot remove stale control socket: %s",
                path, strerror (errno));
      goto out_free;
    }
    if (bind (srv->listen_fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
      snprintf (err, errlen, "%s: cannot create control socket: %s",
                path, strerror (errno));
      goto out_free;
    }
  }

  /* Nobody can connect before listen(), so the mode the file had for a
   * moment after bind() (from the umask) let nobody in.
   */
  if (chmod (path, 0600) == -1 || stat (path, &st) == -1) {
    snprintf (err, errlen, "%s: chmod: %s", path, strerror (errno));
    goto out_unlink;
  }
  srv->dev = st.st_dev;
  srv->ino = st.st_ino;
  if (listen (srv->listen_fd, ZCTL_MAX_CLIENTS) == -1) {
    snprintf (err, errlen, "%s: listen: %s", path, strerror (errno));
    goto out_unlink;
  }
  srv->uid = geteuid ();
  return srv;

 out_unlink:
  saved = errno;
  unlink (path);
  errno = saved;
 out_free:
  saved = errno;
  if (srv->listen_fd >= 0)
    close (srv->listen_fd);
  if (srv->stop_pipe[0] >= 0) {
    close (srv->stop_pipe[0]);
    close (srv->stop_pipe[1]);
  }
  free (srv->path);
  free (srv);
  errno = saved;
  return NULL;
}

int
zctl_server_start (struct zctl_server *srv)
{
  sigset_t all, old;
  int r;

  /* nbdkit may have changed uid (-u) between bind and now. */
  srv->uid = geteuid ();

  if (sem_init (&srv->ready, 0, 0) == -1)
    return -1;
  srv->start_errno = 0;

  /* Signals belong to nbdkit's main thread, not to ours. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  r = pthread_create (&srv->thread, NULL, serve, srv);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (r != 0) {
    sem_destroy (&srv->ready);
    errno = r;
    return -1;
  }
  while (sem_wait (&srv->ready) == -1 && errno == EINTR)
    ;
  sem_destroy (&srv->ready);
  if (srv->start_errno != 0) {
    pthread_join (srv->thread, NULL);
    errno = srv->start_errno;
    return -1;
  }
  srv->started = true;
  return 0;
}

void
zctl_server_stop (struct zctl_server *srv)
{
  struct stat st;
  int i;

  if (srv == NULL)
    return;
  if (srv->started) {
    ssize_t r = write (srv->stop_pipe[1], "x", 1);
    (void) r;                   /* the pipe is empty: cannot fail */
    pthread_join (srv->thread, NULL);
  }
  for (i = 0; i < ZCTL_MAX_CLIENTS; i++)
    if (srv->clients[i].fd >= 0)
      client_close (&srv->clients[i]);
  close (srv->listen_fd);
  close (srv->stop_pipe[0]);
  close (srv->stop_pipe[1]);
  /* Remove the file only if it is still ours, not a successor's. */
  if (lstat (srv->path, &st) == 0 && st.st_dev == srv->dev &&
      st.st_ino == srv->ino)
    unlink (srv->path);
  free (srv->path);
  free (srv);
}
