/* nbdkit-zram: the control socket server.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   listen fd ──accept──> clients[ZCTL_MAX_CLIENTS]
 *                           in[]  bytes up to the next '\n'
 *                           out[] replies not yet sent
 *             ──refuse──> refused[]  farewell sent, input drained, closed
 *   stop pipe ──> wakes poll() when zctl_server_stop is called
 *   done pipe <── a worker: a blocking command has finished
 *
 *   serve thread (poll loop)          workers, one per lane (zctl_lane)
 *     quick command: zctl_execute       slow: reset, compact
 *     slow command:  hand to ─job──>    walk: idle, recompress
 *                                       reply ─job─> back to the client
 *
 * Walks have a worker of their own: a recompression of a large device
 * takes minutes, and a reset or compaction queued behind it would wait
 * that long (its client gives up after a minute).
 *
 * A client's input is read only while its output buffer has room for a
 * whole reply: a client that never reads stops being read, and is dropped
 * after ZCTL_CLIENT_TIMEOUT, without ever blocking the loop.  While a
 * worker runs a command of a client, that client's further lines wait, so
 * its replies stay in order; other clients' commands go on.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "zram/thread-ctx.h"
#include "zram/zctl.h"
#include "zram/zctl-server.h"
#include "zram/zram.h"
#include "zctl-socket.h"

/* Room for two whole replies: one is read only when one fits. */
#define OUT_CAP (2 * ZCTL_REPLY_MAX)

/* A line, a '\r' and the '\n'; a line that fills it is too long. */
#define IN_CAP (ZCTL_LINE_MAX + 2)

struct client {
  int fd;                       /* -1 = free slot */
  unsigned gen;                 /* changes with each occupant of the slot */
  char in[IN_CAP];
  size_t in_len;
  bool discarding;              /* skipping the rest of a too-long line */
  bool eof;                     /* client shut down its sending side */
  bool busy;                    /* its command is in a worker */
  int lane;                     /* that worker's lane, while busy */
  bool waiting;                 /* its next command waits for a worker */
  char out[OUT_CAP];
  size_t out_len;
  int64_t last_progress;        /* CLOCK_MONOTONIC milliseconds */
};

/* A refused client: its farewell is sent, we read until EOF or deadline. */
struct refused {
  int fd;                       /* -1 = free */
  int64_t deadline;
};

/* The one command a worker works on.  Under job_lock. */
struct job {
  bool pending;                 /* handed over, not finished */
  bool done;                    /* finished, reply not yet taken */
  int client;                   /* index in clients[] */
  unsigned gen;                 /* of that client */
  char line[IN_CAP];
  size_t len;
  char reply[ZCTL_REPLY_MAX];
};

struct zctl_server;

/* A worker thread and its job: lane i of zctl_lane is workers[i - 1]. */
struct worker {
  struct zctl_server *srv;
  pthread_t thread;
  bool running;                 /* thread created, not yet joined */
  bool cancelled;               /* serve thread only: its walk's client
                                   hung up, and zram_stop_walks was called
                                   for it (undone when the job is
                                   collected) */
  int err;                      /* 0, or why it refused to serve */
  struct job job;
};
#define NR_WORKERS (ZCTL_NR_LANES - 1)

struct zctl_server {
  struct zram *zram;
  struct zctl_socket sock;
  int stop_pipe[2];
  int done_pipe[2];
  int spare_fd;                 /* /dev/null, given up to accept when out of fds */
  uid_t uid;                    /* served besides root */
  bool started;
  sem_t ready;                  /* posted by each thread once it has its
                                 * context, or has given up */
  int serve_errno;              /* 0, or why that thread refused to serve */
  pthread_t thread;
  int64_t accept_resume;        /* do not accept before (ms) */
  int accept_delay;             /* current back-off (ms), 0 = none */
  pthread_mutex_t job_lock;
  pthread_cond_t job_cond;
  bool stopping;                /* under job_lock */
  struct worker workers[NR_WORKERS];
  struct client clients[ZCTL_MAX_CLIENTS];
  struct refused refused[ZCTL_MAX_CLIENTS];
};

static int64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- refusals ------------------------------------------------------------ */

/* Send a one-line refusal and close, without letting the client's own
 * unread command turn it into a connection reset: shut down our sending
 * side (the client reads the line, then EOF), and drain what it sends for
 * up to ZCTL_REFUSE_LINGER_MS before closing.  Closing a unix socket with
 * unread input is what makes the peer's send fail with EPIPE or its
 * receive with ECONNRESET.
 */
static void
refuse (struct zctl_server *srv, int fd, const char *msg)
{
  char junk[512];
  ssize_t r;
  int i;

  r = recv (fd, junk, sizeof junk, MSG_DONTWAIT);
  r = send (fd, msg, strlen (msg), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void) r;
  shutdown (fd, SHUT_WR);
  for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
    if (srv->refused[i].fd == -1) {
      srv->refused[i].fd = fd;
      srv->refused[i].deadline = now_ms () + ZCTL_REFUSE_LINGER_MS;
      return;
    }
  }
  close (fd);                   /* too many at once: best effort only */
}

/* Returns false once the refused client should be closed. */
static bool
refused_drain (struct refused *f)
{
  char junk[512];
  ssize_t r;

  do
    r = recv (f->fd, junk, sizeof junk, MSG_DONTWAIT);
  while (r > 0);
  return r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

/* --- clients ------------------------------------------------------------- */

static void
client_close (struct client *c)
{
  close (c->fd);
  c->fd = -1;
  c->busy = c->waiting = false;
  c->gen++;                     /* a late slow reply is for nobody now */
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

/* Run one line, here or in its lane's worker.  Returns false if that
 * worker is taken: the caller keeps the line for later.
 */
static bool
client_run_line (struct zctl_server *srv, struct client *c,
                 const char *line, size_t len)
{
  char reply[ZCTL_REPLY_MAX];
  enum zctl_lane lane = len <= ZCTL_LINE_MAX + 1 ? zctl_lane (line, len)
                                                 : ZCTL_LANE_QUICK;
  struct job *job;
  bool taken;

  if (lane != ZCTL_LANE_QUICK) {
    job = &srv->workers[lane - 1].job;
    pthread_mutex_lock (&srv->job_lock);
    taken = job->pending || job->done;
    if (!taken) {
      memcpy (job->line, line, len);
      job->len = len;
      job->client = c - srv->clients;
      job->gen = c->gen;
      job->pending = true;
      c->busy = true;
      c->lane = lane;
      pthread_cond_broadcast (&srv->job_cond);
    }
    pthread_mutex_unlock (&srv->job_lock);
    c->waiting = taken;
    return !taken;
  }
  zctl_execute (srv->zram, line, len, reply, sizeof reply);
  client_append (c, reply);
  return true;
}

/* Execute the complete lines in c->in while replies fit and no command of
 * the client's is in a worker.  At EOF a last line without '\n'
 * counts as complete.
 */
static void
client_process (struct zctl_server *srv, struct client *c)
{
  while (client_has_room (c) && !c->busy) {
    char *nl = memchr (c->in, '\n', c->in_len);
    size_t used;

    if (nl == NULL) {
      if (c->discarding)
        c->in_len = 0;          /* more of the line already refused */
      else if (c->in_len == IN_CAP) {
        /* Too long: answer once (E2BIG), then skip up to the next '\n'. */
        if (!client_run_line (srv, c, c->in, c->in_len))
          return;
        c->discarding = true;
        c->in_len = 0;
      }
      else if (c->eof && c->in_len > 0) {
        if (!client_run_line (srv, c, c->in, c->in_len))
          return;
        c->in_len = 0;
      }
      return;
    }
    used = nl - c->in + 1;
    if (c->discarding)
      c->discarding = false;
    else if (!client_run_line (srv, c, c->in, nl - c->in))
      return;
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
    c->last_progress = now_ms ();
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
  c->last_progress = now_ms ();
  return true;
}

/* --- accepting ----------------------------------------------------------- */

static void
accept_client (struct zctl_server *srv)
{
  struct ucred cred;
  socklen_t credlen = sizeof cred;
  char msg[160];
  int fd, i;

  fd = accept4 (srv->sock.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd == -1 && (errno == EMFILE || errno == ENFILE) && srv->spare_fd >= 0) {
    /* Out of descriptors: give up the spare to serve this client (an
     * administrator may be asking why).  It is taken back once possible.
     */
    close (srv->spare_fd);
    srv->spare_fd = -1;
    fd = accept4 (srv->sock.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  }
  if (fd == -1) {
    /* The pending connection stays queued and the listening socket stays
     * readable: without a pause, poll would return at once, forever.
     */
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
        errno == ENOMEM) {
      srv->accept_delay = srv->accept_delay ? 2 * srv->accept_delay : 10;
      if (srv->accept_delay > ZCTL_ACCEPT_BACKOFF_MAX_MS)
        srv->accept_delay = ZCTL_ACCEPT_BACKOFF_MAX_MS;
      srv->accept_resume = now_ms () + srv->accept_delay;
    }
    return;                     /* EAGAIN, ECONNABORTED: nothing to do */
  }
  srv->accept_delay = 0;

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
    close (fd);
    return;
  }
  if (cred.uid != 0 && cred.uid != srv->uid) {
    snprintf (msg, sizeof msg, "error EACCES: permission denied: uid %u "
              "is neither root nor the server's uid %u\n",
              (unsigned) cred.uid, (unsigned) srv->uid);
    refuse (srv, fd, msg);
    return;
  }

  for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
    struct client *c = &srv->clients[i];

    if (c->fd == -1) {
      c->fd = fd;
      c->in_len = c->out_len = 0;
      c->discarding = c->eof = c->busy = c->waiting = false;
      c->last_progress = now_ms ();
      return;
    }
  }
  snprintf (msg, sizeof msg, "error EAGAIN: too many control clients "
            "(at most %d at once); try again later\n", ZCTL_MAX_CLIENTS);
  refuse (srv, fd, msg);
}

/* --- the workers --------------------------------------------------------- */

static void *
worker_thread (void *arg)
{
  struct worker *w = arg;
  struct zctl_server *srv = w->srv;
  char line[IN_CAP], reply[ZCTL_REPLY_MAX];
  size_t len;
  ssize_t r;

  /* Slow commands run here: this thread needs its context (RCU
   * registration) as much as the serve thread, for the same reason.
   */
  if (zram_thread_ctx_get () == NULL) {
    w->err = errno;
    sem_post (&srv->ready);
    return NULL;
  }
  sem_post (&srv->ready);

  pthread_mutex_lock (&srv->job_lock);
  for (;;) {
    while (!w->job.pending && !srv->stopping)
      pthread_cond_wait (&srv->job_cond, &srv->job_lock);
    if (srv->stopping)
      break;                    /* its client is gone: leave it undone */
    memcpy (line, w->job.line, w->job.len);
    len = w->job.len;
    pthread_mutex_unlock (&srv->job_lock);

    zctl_execute (srv->zram, line, len, reply, sizeof reply);

    pthread_mutex_lock (&srv->job_lock);
    memcpy (w->job.reply, reply, sizeof reply);
    w->job.pending = false;
    w->job.done = true;
    r = write (srv->done_pipe[1], "d", 1);
    (void) r;                   /* one byte in an empty pipe */
  }
  pthread_mutex_unlock (&srv->job_lock);
  return NULL;
}

/* Take finished slow commands' replies to their clients, then let clients
 * whose slow command had to wait have a worker.
 */
static void
collect_job (struct zctl_server *srv)
{
  char reply[ZCTL_REPLY_MAX], junk[16];
  struct client *c;
  unsigned gen;
  bool done, any = false;
  ssize_t r;
  int i, w, first = 0;

  r = read (srv->done_pipe[0], junk, sizeof junk);
  (void) r;
  for (w = 0; w < NR_WORKERS; w++) {
    struct job *job = &srv->workers[w].job;

    pthread_mutex_lock (&srv->job_lock);
    done = job->done;
    c = &srv->clients[job->client];
    gen = job->gen;
    if (done) {
      memcpy (reply, job->reply, sizeof reply);
      job->done = false;
    }
    pthread_mutex_unlock (&srv->job_lock);
    if (!done)
      continue;
    if (srv->workers[w].cancelled) {
      srv->workers[w].cancelled = false;
      zram_resume_walks (srv->zram);
    }
    any = true;
    first = c - srv->clients;
    if (c->fd >= 0 && c->gen == gen) {
      client_append (c, reply);
      c->busy = false;
      c->waiting = c->in_len > 0;   /* served last, below */
      c->last_progress = now_ms ();
    }
  }
  if (!any)
    return;

  /* Round robin from the next client to the last one served, so that a
   * client that sends many slow commands does not keep the others
   * waiting.
   */
  for (i = 1; i <= ZCTL_MAX_CLIENTS; i++) {
    struct client *o = &srv->clients[(first + i) % ZCTL_MAX_CLIENTS];

    if (o->fd >= 0 && o->waiting) {
      o->waiting = false;
      client_process (srv, o);
    }
  }
}

/* --- the serve thread ---------------------------------------------------- */

enum { SLOT_STOP, SLOT_DONE, SLOT_LISTEN, SLOT_FIRST };

static void *
serve (void *arg)
{
  struct zctl_server *srv = arg;
  struct pollfd pfd[SLOT_FIRST + 2 * ZCTL_MAX_CLIENTS];
  int map[SLOT_FIRST + 2 * ZCTL_MAX_CLIENTS];

  /* Everything this thread will need to answer under memory pressure
   * (its RCU registration above all) is allocated now, where a failure
   * stops the server from starting with a message, rather than at the
   * first command, where it would abort the server.
   */
  if (zram_thread_ctx_get () == NULL) {
    srv->serve_errno = errno;
    sem_post (&srv->ready);
    return NULL;
  }
  sem_post (&srv->ready);

  for (;;) {
    nfds_t n = SLOT_FIRST, k;
    int64_t t = now_ms ();
    int timeout = 1000, i;

    /* Take the spare descriptor back as soon as there is one. */
    if (srv->spare_fd == -1)
      srv->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);

    pfd[SLOT_STOP].fd = srv->stop_pipe[0];
    pfd[SLOT_STOP].events = POLLIN;
    pfd[SLOT_DONE].fd = srv->done_pipe[0];
    pfd[SLOT_DONE].events = POLLIN;
    pfd[SLOT_LISTEN].fd = srv->sock.fd;
    pfd[SLOT_LISTEN].events = POLLIN;
    if (srv->accept_resume > t) {
      pfd[SLOT_LISTEN].fd = -1;   /* backing off: poll ignores it */
      timeout = srv->accept_resume - t;
    }
    for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
      struct client *c = &srv->clients[i];
      short ev = 0;

      if (c->fd == -1)
        continue;
      /* Input is read ahead while a command runs (so that EOF is seen),
       * but not executed.
       */
      if (!c->eof && client_has_room (c) && c->in_len < IN_CAP)
        ev |= POLLIN;
      if (c->out_len > 0)
        ev |= POLLOUT;
      /* Nothing to do until its worker is done: leave it out, or a
       * hang-up would wake poll at once, over and over.  Except a walk's
       * client that has sent all it will: its hang-up (POLLHUP, the peer
       * closed both ways) is what ends the walk, below.
       */
      if (ev == 0 && (c->busy || c->waiting) &&
          !(c->busy && c->lane == ZCTL_LANE_WALK && c->eof))
        continue;
      map[n] = i;
      pfd[n].fd = c->fd;
      pfd[n++].events = ev;
    }
    for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
      struct refused *f = &srv->refused[i];

      if (f->fd == -1)
        continue;
      if (f->deadline - t < timeout)
        timeout = f->deadline > t ? f->deadline - t : 0;
      map[n] = ZCTL_MAX_CLIENTS + i;
      pfd[n].fd = f->fd;
      pfd[n++].events = POLLIN;
    }

    if (poll (pfd, n, timeout) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pfd[SLOT_STOP].revents)
      break;                    /* zctl_server_stop */
    if (pfd[SLOT_DONE].revents & POLLIN)
      collect_job (srv);
    if (pfd[SLOT_LISTEN].revents & POLLIN)
      accept_client (srv);

    t = now_ms ();
    for (k = SLOT_FIRST; k < n; k++) {
      struct client *c;
      bool keep = true;

      if (map[k] >= ZCTL_MAX_CLIENTS) {
        struct refused *f = &srv->refused[map[k] - ZCTL_MAX_CLIENTS];

        if ((pfd[k].revents && !refused_drain (f)) || t >= f->deadline) {
          close (f->fd);
          f->fd = -1;
        }
        continue;
      }
      c = &srv->clients[map[k]];
      if (c->fd != pfd[k].fd)
        continue;               /* closed and reused meanwhile */
      if (pfd[k].revents & (POLLERR | POLLNVAL))
        keep = false;
      /* A walk (idle, recompress, writeback) can run for hours on a
       * large device: when its client is gone (nbdzramctl interrupted),
       * nobody wants its reply, and later walks would queue behind it.
       * Stop it at its next page; every page stays valid.
       */
      if (c->busy && c->lane == ZCTL_LANE_WALK && c->eof &&
          (pfd[k].revents & POLLHUP) &&
          !srv->workers[ZCTL_LANE_WALK - 1].cancelled) {
        srv->workers[ZCTL_LANE_WALK - 1].cancelled = true;
        zram_stop_walks (srv->zram);
        keep = false;
      }
      if (keep && (pfd[k].revents & POLLOUT))
        keep = client_write (c);
      if (keep && (pfd[k].revents & (POLLIN | POLLHUP)) && !c->eof &&
          c->in_len < IN_CAP)
        keep = client_read (srv, c);
      /* Input held back while the output was full can go on now. */
      if (keep && client_has_room (c) && c->in_len > 0 && !c->waiting)
        client_process (srv, c);
      /* Finished: the client sent EOF and has every reply. */
      if (keep && c->eof && c->out_len == 0 && c->in_len == 0 && !c->busy)
        keep = false;
      if (keep && !c->busy && !c->waiting &&
          t - c->last_progress >= ZCTL_CLIENT_TIMEOUT * 1000)
        keep = false;
      if (!keep)
        client_close (c);
    }
  }
  return NULL;
}

/* --- life cycle ---------------------------------------------------------- */

static void
server_free (struct zctl_server *srv)
{
  int i;

  for (i = 0; i < ZCTL_MAX_CLIENTS; i++) {
    if (srv->clients[i].fd >= 0)
      client_close (&srv->clients[i]);
    if (srv->refused[i].fd >= 0)
      close (srv->refused[i].fd);
  }
  zctl_socket_remove (&srv->sock);
  for (i = 0; i < 2; i++) {
    if (srv->stop_pipe[i] >= 0)
      close (srv->stop_pipe[i]);
    if (srv->done_pipe[i] >= 0)
      close (srv->done_pipe[i]);
  }
  if (srv->spare_fd >= 0)
    close (srv->spare_fd);
  pthread_mutex_destroy (&srv->job_lock);
  pthread_cond_destroy (&srv->job_cond);
  free (srv);
}

struct zctl_server *
zctl_server_bind (const char *path, struct zram *zram,
                  const struct zctl_owner *owner, char *err, size_t errlen)
{
  struct zctl_server *srv;
  uid_t uid = owner ? owner->uid : geteuid ();
  gid_t gid = owner ? owner->gid : getegid ();
  int i, saved;

  srv = calloc (1, sizeof *srv);
  if (srv == NULL) {
    snprintf (err, errlen, "calloc: %s", strerror (errno));
    return NULL;
  }
  srv->zram = zram;
  srv->uid = uid;
  srv->sock.fd = srv->sock.dir_fd = -1;
  srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
  srv->done_pipe[0] = srv->done_pipe[1] = -1;
  srv->spare_fd = -1;
  pthread_mutex_init (&srv->job_lock, NULL);
  pthread_cond_init (&srv->job_cond, NULL);
  for (i = 0; i < ZCTL_MAX_CLIENTS; i++)
    srv->clients[i].fd = srv->refused[i].fd = -1;

  if (pipe2 (srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1 ||
      pipe2 (srv->done_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    snprintf (err, errlen, "pipe2: %s", strerror (errno));
    goto fail;
  }
  srv->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (srv->spare_fd == -1) {
    snprintf (err, errlen, "/dev/null: %s", strerror (errno));
    goto fail;
  }
  if (zctl_socket_create (&srv->sock, path, uid, gid, err, errlen) == -1)
    goto fail;
  return srv;

 fail:
  saved = errno;
  server_free (srv);
  errno = saved;
  return NULL;
}

/* Stop and join the threads (each may have exited already). */
static void
stop_threads (struct zctl_server *srv)
{
  ssize_t r = write (srv->stop_pipe[1], "x", 1);
  int w;

  (void) r;                     /* the pipe is empty: cannot fail */
  pthread_join (srv->thread, NULL);
  /* A command in a worker completes first, but an idle marking or
   * recompression is told to stop at its next page: recompressing a large
   * device with zstd at a high level takes minutes, and a shutdown that
   * waits for it ends in SIGKILL.  Its client has been disconnected with
   * the serve thread already; a command still waiting is not started.
   */
  pthread_mutex_lock (&srv->job_lock);
  srv->stopping = true;
  pthread_cond_broadcast (&srv->job_cond);
  pthread_mutex_unlock (&srv->job_lock);
  zram_stop_walks (srv->zram);
  for (w = 0; w < NR_WORKERS; w++)
    if (srv->workers[w].running) {
      pthread_join (srv->workers[w].thread, NULL);
      srv->workers[w].running = false;
    }
  for (w = 0; w < NR_WORKERS; w++)
    if (srv->workers[w].cancelled) {
      srv->workers[w].cancelled = false;
      zram_resume_walks (srv->zram);
    }
  zram_resume_walks (srv->zram);
}

int
zctl_server_start (struct zctl_server *srv)
{
  static const char *const names[NR_WORKERS] = { "zctl-slow", "zctl-walk" };
  sigset_t all, old;
  int r, w, threads = 0;

  /* nbdkit may have changed uid (-u) between bind and now. */
  srv->uid = geteuid ();

  if (sem_init (&srv->ready, 0, 0) == -1)
    return -1;
  srv->serve_errno = 0;

  /* Signals belong to nbdkit's main thread, not to ours. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  r = pthread_create (&srv->thread, NULL, serve, srv);
  if (r == 0)
    threads++;
  for (w = 0; r == 0 && w < NR_WORKERS; w++) {
    srv->workers[w].srv = srv;
    srv->workers[w].err = 0;
    r = pthread_create (&srv->workers[w].thread, NULL, worker_thread,
                        &srv->workers[w]);
    if (r == 0) {
      srv->workers[w].running = true;
      threads++;
    }
  }
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  /* Each thread posts once: with its context made, or having given up. */
  while (threads-- > 0)
    while (sem_wait (&srv->ready) == -1 && errno == EINTR)
      ;
  sem_destroy (&srv->ready);
  if (r != 0) {
    /* The serve thread exists if any worker was tried. */
    if (srv->workers[0].srv != NULL)
      stop_threads (srv);
    errno = r;
    return -1;
  }
  for (w = 0; w < NR_WORKERS; w++)
    if (srv->workers[w].err != 0)
      r = srv->workers[w].err;
  if (srv->serve_errno != 0 || r != 0) {
    stop_threads (srv);
    errno = srv->serve_errno ? srv->serve_errno : r;
    return -1;
  }
  pthread_setname_np (srv->thread, "zctl");
  for (w = 0; w < NR_WORKERS; w++)
    pthread_setname_np (srv->workers[w].thread, names[w]);
  srv->started = true;
  return 0;
}

void
zctl_server_stop (struct zctl_server *srv)
{
  if (srv == NULL)
    return;
  if (srv->started)
    stop_threads (srv);
  server_free (srv);
}
