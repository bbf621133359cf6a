/* nbdkit-zram: a backing store on an NBD server, through libnbd (see
 * include/zram/backing.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A few connections to one export.  An operation takes one connection
 * for itself (a mutex per connection), sends all its requests with
 * libnbd's asynchronous calls, and polls the handle until every reply has
 * come or the deadline (BACKING_NBD_TIMEOUT_MS) has passed.  Holding the
 * connection for the whole operation is what lets the thread poll the
 * handle itself: libnbd's nbd_poll is not meant for two threads at once.
 *
 * A connection that breaks (the server died, a reply came too late, the
 * state machine is dead) is closed at once; nothing waits for it.  One
 * found gone (closed or reset, as after the server restarted while the
 * device was idle) says nothing of the server now, so the requests it
 * failed are sent again on another connection, or a fresh one, within
 * the operation's deadline: a restarted server costs no failed request.
 * One that timed out, or a connect that failed, means the server is out
 * of reach: operations then fail with EIO without touching the network
 * until BACKING_NBD_RETRY_MS has passed, and the next ones to meet a
 * down connection connect again on a fresh handle.  Everything an
 * operation does (waiting for a connection, reconnecting, its requests)
 * shares one deadline, BACKING_NBD_TIMEOUT_MS from its start.
 *
 *   conn[0]  [mutex][handle]    op: lock a connection -> aio requests ->
 *   conn[1]  [mutex][handle]        poll until all replied or deadline ->
 *   ...                             (on breakage: close, handle = NULL)
 *   retry_at  earliest time for the next reconnect attempt (atomic)
 *
 * Several connections are opened only when the server says that they see
 * the same data (NBD_FLAG_CAN_MULTI_CONN): a read on one connection must
 * see a write acknowledged on another.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libnbd.h>

#include "backing-impl.h"

/* Trims are sent in pieces no larger than this (NBD lengths are 32 bits),
 * at most TRIM_BATCH of them in flight.
 */
#define TRIM_CHUNK (UINT64_C (1) << 30)
#define TRIM_BATCH 16

struct nbd_conn {
  pthread_mutex_t lock;       /* held by the operation using the handle */
  struct nbd_handle *h;       /* NULL while the connection is down */
};

struct backing_nbd {
  struct backing b;           /* first: the store is cast to this */
  uint64_t need_bytes;        /* a reconnected export must be this large */
  int64_t retry_at;           /* atomic: CLOCK_MONOTONIC ns; no connect
                                 before (set when the server was out of
                                 reach) */
  unsigned next;              /* atomic: round-robin start */
  unsigned nconns;
  struct nbd_conn conns[BACKING_NBD_CONNS];
};

/* One request of an operation. */
enum req_kind { REQ_READ, REQ_WRITE, REQ_TRIM };
struct nbd_req {
  enum req_kind kind;
  void *buf;                  /* read into / write from (not trim) */
  uint64_t len, offset;
  int64_t cookie;             /* > 0 while in flight */
  bool answered;              /* the server replied (err is its verdict);
                                 else err is EIO for a lost connection */
  int err;
};

static int64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
ms_left (int64_t deadline)
{
  int64_t left = deadline - now_ns ();

  return left <= 0 ? 0 : (int) ((left + 999999) / 1000000);
}

static int
nbd_errno_or (int fallback)
{
  int e = nbd_get_errno ();

  return e ? e : fallback;
}

/* libnbd's message for the last failure of this thread ("" if none). */
static const char *
nbd_error_text (void)
{
  const char *m = nbd_get_error ();

  return m ? m : "";
}

static int64_t
deadline_in (int ms)
{
  return now_ns () + (int64_t) ms * 1000000;
}

/* Connect a fresh handle to uri and wait for the handshake until
 * deadline.  Returns the handle, or NULL with errno and the reason in
 * err: EINVAL (the URI), ETIMEDOUT, EROFS (the export is read-only),
 * EFBIG (smaller than need_bytes, when not 0), or the connection's error.
 */
static struct nbd_handle *
connect_handle (const char *uri, uint64_t need_bytes, int64_t deadline,
                char *err, size_t cap)
{
  struct nbd_handle *h;
  int64_t size;
  int e;

  h = nbd_create ();
  if (h == NULL) {
    e = nbd_errno_or (ENOMEM);
    snprintf (err, cap, "%s", nbd_error_text ());
    errno = e;
    return NULL;
  }
  if (nbd_aio_connect_uri (h, uri) == -1) {
    e = nbd_errno_or (EINVAL);
    snprintf (err, cap, "%s", nbd_error_text ());
    goto fail;
  }
  while (!nbd_aio_is_ready (h)) {
    if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h)) {
      e = nbd_errno_or (ECONNRESET);
      snprintf (err, cap, "the server closed the connection during the "
                "handshake: %s", nbd_error_text ());
      goto fail;
    }
    if (ms_left (deadline) == 0) {
      e = ETIMEDOUT;
      snprintf (err, cap, "no handshake in time");
      goto fail;
    }
    if (nbd_poll (h, ms_left (deadline)) == -1) {
      e = nbd_errno_or (EIO);
      snprintf (err, cap, "%s", nbd_error_text ());
      goto fail;
    }
  }
  if (nbd_is_read_only (h) == 1) {
    e = EROFS;
    snprintf (err, cap, "the export is read-only");
    goto fail;
  }
  size = nbd_get_size (h);
  if (size == -1) {
    e = nbd_errno_or (EIO);
    snprintf (err, cap, "%s", nbd_error_text ());
    goto fail;
  }
  if ((uint64_t) size < need_bytes) {
    e = EFBIG;
    snprintf (err, cap, "the export has shrunk to %" PRIi64 " bytes (%"
              PRIu64 " are used)", size, need_bytes);
    goto fail;
  }
  return h;

 fail:
  nbd_close (h);
  errno = e;
  return NULL;
}

/* The server is out of reach: no connect before BACKING_NBD_RETRY_MS. */
static void
hold_off (struct backing_nbd *n)
{
  __atomic_store_n (&n->retry_at,
                    now_ns () + (int64_t) BACKING_NBD_RETRY_MS * 1000000,
                    __ATOMIC_RELAXED);
}

/* Close a connection found broken.  One that timed out holds reconnects
 * off; one found closed or reset does not (the server may well be there
 * again, and the next operation finds out by connecting).
 */
static void
conn_drop (struct backing_nbd *n, struct nbd_conn *c, bool timed_out)
{
  nbd_close (c->h);
  c->h = NULL;
  if (timed_out)
    hold_off (n);
}

/* A down connection (its lock held): connect again, by deadline, unless
 * the server was found out of reach less than BACKING_NBD_RETRY_MS ago.
 * Other down connections may be reconnecting at the same time: a burst of
 * requests after the server came back waits for no one's turn.  Returns
 * true if it is up.
 */
static bool
conn_revive (struct backing_nbd *n, struct nbd_conn *c, int64_t deadline)
{
  char err[BACKING_ERR_MAX];

  if (now_ns () < __atomic_load_n (&n->retry_at, __ATOMIC_RELAXED))
    return false;
  c->h = connect_handle (n->b.name, n->need_bytes, deadline, err, sizeof err);
  if (c->h == NULL) {
    hold_off (n);
    return false;
  }
  /* The server is back: let the other connections come back at once. */
  __atomic_store_n (&n->retry_at, 0, __ATOMIC_RELAXED);
  __atomic_add_fetch (&n->b.reconnects, 1, __ATOMIC_RELAXED);
  return true;
}

/* Take a connection that is up: an idle one if there is, else wait for
 * one until deadline (a connection held by an operation stuck on a server
 * that does not answer is not waited for past it).  Returns it locked, or
 * NULL with errno EIO when the server is out of reach.
 */
static struct nbd_conn *
conn_get (struct backing_nbd *n, int64_t deadline)
{
  unsigned start = __atomic_fetch_add (&n->next, 1, __ATOMIC_RELAXED) % n->nconns;
  struct nbd_conn *c;
  struct timespec until;
  int64_t left;

  for (unsigned i = 0; i < n->nconns; i++) {
    c = &n->conns[(start + i) % n->nconns];
    if (pthread_mutex_trylock (&c->lock) != 0)
      continue;
    if (c->h != NULL || conn_revive (n, c, deadline))
      return c;
    pthread_mutex_unlock (&c->lock);
  }
  /* pthread_mutex_timedlock counts in CLOCK_REALTIME. */
  c = &n->conns[start];
  left = deadline - now_ns ();
  clock_gettime (CLOCK_REALTIME, &until);
  if (left > 0) {
    until.tv_sec += left / 1000000000;
    until.tv_nsec += left % 1000000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
  }
  if (pthread_mutex_timedlock (&c->lock, &until) != 0) {
    errno = EIO;
    return NULL;
  }
  if (c->h != NULL || conn_revive (n, c, deadline))
    return c;
  pthread_mutex_unlock (&c->lock);
  errno = EIO;
  return NULL;
}

/* The errno of a command that failed for want of a connection. */
static bool
conn_gone_errno (int e)
{
  return e == ENOTCONN || e == ESHUTDOWN || e == ECONNRESET || e == EPIPE;
}

/* Send the reqs not yet answered on c and wait for their replies, each
 * req's err set.  The connection is dropped (and the requests still out
 * fail with EIO, unanswered) if it breaks or a reply has not come by
 * deadline; *gone says whether it broke by itself (closed, reset: the
 * requests are worth sending again elsewhere) rather than by the
 * deadline.  Returns the number that failed.
 */
static size_t
conn_run (struct backing_nbd *n, struct nbd_conn *c, struct nbd_req *reqs,
          size_t nr, int64_t deadline, bool *gone)
{
  size_t i, pending = 0, failed = 0;
  bool broken = false, timed_out = false;
  int r;

  for (i = 0; i < nr; i++) {
    struct nbd_req *q = &reqs[i];

    q->cookie = 0;
    if (q->answered)
      continue;
    q->err = 0;
    if (broken) {
      q->err = EIO;
      continue;
    }
    switch (q->kind) {
    case REQ_READ:
      q->cookie = nbd_aio_pread (c->h, q->buf, q->len, q->offset,
                                 NBD_NULL_COMPLETION, 0);
      break;
    case REQ_WRITE:
      q->cookie = nbd_aio_pwrite (c->h, q->buf, q->len, q->offset,
                                  NBD_NULL_COMPLETION, 0);
      break;
    case REQ_TRIM:
      q->cookie = nbd_aio_trim (c->h, q->len, q->offset,
                                NBD_NULL_COMPLETION, 0);
      break;
    }
    if (q->cookie == -1) {
      /* The requests are in range and well formed: a handle that will
       * not take one is not connected any more (closed, dead, or shut
       * down by the server).
       */
      q->cookie = 0;
      q->err = EIO;
      broken = true;
    }
    else
      pending++;
  }

  while (pending > 0 && !broken) {
    for (i = 0; i < nr; i++) {
      struct nbd_req *q = &reqs[i];

      if (q->cookie <= 0)
        continue;
      r = nbd_aio_command_completed (c->h, q->cookie);
      if (r == 0)
        continue;
      /* A command the server refused keeps its errno (ENOSPC, EIO...);
       * one that failed because the connection went, or because the
       * server is shutting down, breaks the connection.
       */
      q->err = r == 1 ? 0 : nbd_errno_or (EIO);
      q->cookie = 0;
      pending--;
      if (conn_gone_errno (q->err)) {
        q->err = EIO;
        broken = true;
      }
      else
        q->answered = true;
    }
    if (pending == 0)
      break;
    if (ms_left (deadline) == 0)
      broken = timed_out = true;
    else if (nbd_aio_is_dead (c->h) || nbd_aio_is_closed (c->h) ||
             nbd_poll (c->h, ms_left (deadline)) == -1)
      broken = true;
  }
  *gone = false;
  if (broken || nbd_aio_is_dead (c->h) || nbd_aio_is_closed (c->h)) {
    /* Close before the requests' buffers go back to the caller: libnbd
     * forgets them with the handle.
     */
    *gone = !timed_out;
    conn_drop (n, c, timed_out);
    for (i = 0; i < nr; i++)
      if (reqs[i].cookie > 0) {
        reqs[i].cookie = 0;
        reqs[i].err = EIO;
      }
  }
  for (i = 0; i < nr; i++)
    if (reqs[i].err != 0)
      failed++;
  return failed;
}

/* Run reqs on some connection, all of it within BACKING_NBD_TIMEOUT_MS.
 * Requests that a connection found gone failed are sent again on the
 * next, or a fresh one: every kept connection may be stale after the
 * server restarted, so up to one try more than there are connections.
 */
static size_t
run (struct backing_nbd *n, struct nbd_req *reqs, size_t nr)
{
  int64_t deadline = deadline_in (BACKING_NBD_TIMEOUT_MS);
  struct nbd_conn *c;
  size_t failed = nr, i;
  bool gone = true;

  for (i = 0; i < nr; i++)
    reqs[i].answered = false;
  for (unsigned tries = 0; failed > 0 && gone && tries <= n->nconns; tries++) {
    c = conn_get (n, deadline);
    if (c == NULL)
      break;
    failed = conn_run (n, c, reqs, nr, deadline, &gone);
    pthread_mutex_unlock (&c->lock);
  }
  if (failed > 0)
    for (i = 0; i < nr; i++)
      if (!reqs[i].answered)
        reqs[i].err = EIO;
  return failed;
}

static int
run_one (struct backing_nbd *n, struct nbd_req *q)
{
  if (run (n, q, 1) == 0)
    return 0;
  errno = q->err;
  return -1;
}

static int
nbdstore_read (struct backing *b, void *buf, size_t len, uint64_t offset)
{
  struct nbd_req q = { .kind = REQ_READ, .buf = buf, .len = len,
                       .offset = offset };

  return run_one ((struct backing_nbd *) b, &q);
}

static int
nbdstore_write (struct backing *b, const void *buf, size_t len, uint64_t offset)
{
  /* libnbd only reads the buffer of a write. */
  struct nbd_req q = { .kind = REQ_WRITE, .buf = (void *) buf, .len = len,
                       .offset = offset };

  return run_one ((struct backing_nbd *) b, &q);
}

static size_t
nbdstore_write_batch (struct backing *b, struct backing_io *io, size_t n)
{
  struct nbd_req stack[64], *reqs = stack;
  size_t i, failed;

  if (n > sizeof stack / sizeof stack[0]) {
    reqs = calloc (n, sizeof *reqs);
    if (reqs == NULL) {
      for (i = 0; i < n; i++)
        io[i].err = ENOMEM;
      return n;
    }
  }
  for (i = 0; i < n; i++)
    reqs[i] = (struct nbd_req) { .kind = REQ_WRITE, .buf = (void *) io[i].buf,
                                 .len = BACKING_BLOCK_SIZE,
                                 .offset = io[i].block << BACKING_BLOCK_SHIFT };
  failed = run ((struct backing_nbd *) b, reqs, n);
  for (i = 0; i < n; i++)
    io[i].err = reqs[i].err;
  if (reqs != stack)
    free (reqs);
  return failed;
}

static int
nbdstore_trim (struct backing *b, uint64_t len, uint64_t offset)
{
  struct backing_nbd *n = (struct backing_nbd *) b;
  struct nbd_req reqs[TRIM_BATCH];
  struct nbd_conn *c;
  size_t nr, i;
  bool gone;
  int r = 0;

  /* A long run of trims (a reset) gets a deadline per batch. */
  c = conn_get (n, deadline_in (BACKING_NBD_TIMEOUT_MS));
  if (c == NULL)
    return -1;
  if (nbd_can_trim (c->h) != 1) {
    pthread_mutex_unlock (&c->lock);
    return 1;                 /* the server cannot: do not ask again */
  }
  while (len > 0 && r == 0) {
    for (nr = 0; nr < TRIM_BATCH && len > 0; nr++) {
      uint64_t piece = len < TRIM_CHUNK ? len : TRIM_CHUNK;

      reqs[nr] = (struct nbd_req) { .kind = REQ_TRIM, .len = piece,
                                    .offset = offset };
      offset += piece;
      len -= piece;
    }
    if (conn_run (n, c, reqs, nr, deadline_in (BACKING_NBD_TIMEOUT_MS),
                  &gone) > 0) {
      for (i = 0; i < nr && reqs[i].err == 0; i++)
        ;
      errno = reqs[i].err;
      r = -1;
    }
    if (c->h == NULL)
      break;
  }
  pthread_mutex_unlock (&c->lock);
  return r;
}

static void
nbdstore_close (struct backing *b)
{
  struct backing_nbd *n = (struct backing_nbd *) b;

  for (unsigned i = 0; i < BACKING_NBD_CONNS; i++) {
    struct nbd_conn *c = &n->conns[i];

    if (c->h != NULL) {
      /* A polite goodbye, but no waiting on a server that does not answer. */
      int64_t deadline = deadline_in (1000);

      if (nbd_aio_disconnect (c->h, 0) == 0)
        while (!nbd_aio_is_closed (c->h) && !nbd_aio_is_dead (c->h) &&
               ms_left (deadline) > 0 &&
               nbd_poll (c->h, ms_left (deadline)) != -1)
          ;
      nbd_close (c->h);
    }
    pthread_mutex_destroy (&c->lock);
  }
  free (n);
}

static const struct backing_ops nbd_ops = {
  .kind = "nbd", .read = nbdstore_read, .write = nbdstore_write,
  .write_batch = nbdstore_write_batch, .trim = nbdstore_trim,
  .close = nbdstore_close,
};

struct backing *
backing_nbd_open (const char *uri, uint64_t max_bytes, char *err,
                  size_t err_cap)
{
  struct backing_nbd *n;
  char why[BACKING_ERR_MAX];
  uint64_t size;
  int64_t got;
  int e;

  /* Reconnects use the URI as given, after the server has changed
   * directory to / (nbdkit does when it forks): a relative socket path
   * would work at start and never again.
   */
  {
    const char *q = strchr (uri, '?'), *s = q ? strstr (q, "socket=") : NULL;

    if (s != NULL && (s == q + 1 || s[-1] == '&') && s[7] != '/') {
      snprintf (err, err_cap, "backing store '%s': the socket path is "
                "relative; give an absolute one (socket=/...), which still "
                "names the socket when the store reconnects", uri);
      errno = EINVAL;
      return NULL;
    }
  }
  n = calloc (1, sizeof *n);
  if (n == NULL) {
    snprintf (err, err_cap, "backing store '%s': out of memory", uri);
    errno = ENOMEM;
    return NULL;
  }
  for (unsigned i = 0; i < BACKING_NBD_CONNS; i++)
    pthread_mutex_init (&n->conns[i].lock, NULL);
  n->nconns = 1;
  n->b.ops = &nbd_ops;

  n->conns[0].h = connect_handle (uri, 0,
                                  deadline_in (BACKING_NBD_CONNECT_TIMEOUT_MS),
                                  why, sizeof why);
  if (n->conns[0].h == NULL) {
    e = errno;
    if (e == EROFS)
      snprintf (err, err_cap, "backing store '%s': the NBD server exports it "
                "read-only; serve it writable (e.g. nbdkit without -r)", uri);
    else if (e == ETIMEDOUT)
      snprintf (err, err_cap, "backing store '%s': the NBD server did not "
                "complete the handshake within %d ms; check that it runs and "
                "serves this export", uri, BACKING_NBD_CONNECT_TIMEOUT_MS);
    else
      snprintf (err, err_cap, "backing store '%s': cannot connect to the NBD "
                "server: %s; check the URI (nbd://HOST[:PORT]/EXPORT, "
                "nbd+unix:///EXPORT?socket=PATH, ...) and that the server "
                "runs", uri, why);
    goto fail;
  }
  got = nbd_get_size (n->conns[0].h);
  size = got < 0 ? 0 : (uint64_t) got;
  if (max_bytes > 0 && size > max_bytes)
    size = max_bytes;
  if (size < BACKING_BLOCK_SIZE) {
    snprintf (err, err_cap, "backing store '%s': the export's %" PRIu64
              " bytes are smaller than one block (%u bytes); serve a larger "
              "export", uri, size, BACKING_BLOCK_SIZE);
    e = EINVAL;
    goto fail;
  }
  n->b.nr_blocks = size >> BACKING_BLOCK_SHIFT;
  n->need_bytes = n->b.nr_blocks << BACKING_BLOCK_SHIFT;

  if (nbd_can_multi_conn (n->conns[0].h) == 1) {
    for (; n->nconns < BACKING_NBD_CONNS; n->nconns++) {
      n->conns[n->nconns].h =
        connect_handle (uri, n->need_bytes,
                        deadline_in (BACKING_NBD_CONNECT_TIMEOUT_MS),
                        why, sizeof why);
      if (n->conns[n->nconns].h == NULL) {
        e = errno;
        snprintf (err, err_cap, "backing store '%s': connection %u of %d to "
                  "the NBD server failed: %s", uri, n->nconns + 1,
                  BACKING_NBD_CONNS, why);
        goto fail;
      }
    }
  }
  return &n->b;

 fail:
  nbdstore_close (&n->b);
  errno = e;
  return NULL;
}
