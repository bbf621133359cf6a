/* Reset storm: verified I/O on several connections while another thread
 * resets the device with force every few milliseconds through the control
 * socket.  Every read must return what the client's model allows: the data
 * it last wrote, zeroes if a reset may have happened since, or EIO only if
 * a reset may have been in progress during the read.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * How a client knows whether a reset "may have happened": the resetter
 * bumps `started` before it sends each reset and `done` after the reply.
 * A request issued when started == done (loading done first) with started
 * unchanged at its completion ran with no reset anywhere near it.
 *
 *   per page: val        tag of the last successful write (0 = zeroes)
 *             clean_gen  `started` at that write if it was quiet, else -1
 *   read -> data(val)    always fine
 *        -> zeroes       fine if val == 0, or clean_gen == -1, or a reset
 *                        started since (started != clean_gen)
 *        -> EIO          fine only if the read was not quiet
 *        -> else         FAIL (stale, foreign or torn data)
 *
 * The resets switch between algorithms (lz4, zstd, lz4hc), and a second
 * control client keeps asking for stats and compaction meanwhile.
 *
 * Pages are owned by one worker each, so a page has no concurrent writers.
 * libnbd serialises the synchronous calls of threads sharing a handle; the
 * server sees the connections in parallel.
 *
 * Environment: STORM_SECONDS (default 6), STORM_CONNS (3), STORM_THREADS
 * (2 per connection).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libnbd.h>

#include "ctl-test-util.h"

#define PAGE 4096
#define DISK_PAGES 2048                 /* 8 MiB */
#define MAX_WORKERS 32

static struct test_server srv;
static atomic_ullong started, done;     /* resets begun / finished */
static atomic_bool stop;
static atomic_int failed;
static int nworkers;

/* Counters of what the workers saw. */
static atomic_ullong n_verified, n_zero_after_reset, n_read_eio, n_write_eio,
  n_writes, n_reads, n_trims, n_data_after_reset;

struct page_model {
  uint32_t val;
  long long clean_gen;
};

struct worker {
  pthread_t thread;
  int id;
  struct nbd_handle *nbd;
  struct page_model model[DISK_PAGES / 1];     /* indexed by page */
  uint64_t rng;
};

/* Page content for a tag: compressible, not same-filled, self-describing. */
static void
fill (unsigned char *buf, uint32_t tag)
{
  uint64_t s = tag * 0x9e3779b97f4a7c15ULL + 1;
  size_t i;

  for (i = 0; i < PAGE; i += 8) {
    uint64_t w = (rnd (&s) & 0x0f0f0f0f) | ((uint64_t) tag << 32);
    memcpy (buf + i, &w, 8);
  }
}

static bool
is_zero (const unsigned char *buf)
{
  size_t i;

  for (i = 0; i < PAGE; i++)
    if (buf[i])
      return false;
  return true;
}

/* Snapshot before a request: quiet if no reset is in progress. */
static void
before (unsigned long long *s, bool *quiet)
{
  unsigned long long d = atomic_load (&done);

  *s = atomic_load (&started);
  *quiet = *s == d;
}

static void
do_write (struct worker *w, uint64_t page, bool trim)
{
  static _Thread_local unsigned char buf[PAGE];
  struct page_model *m = &w->model[page];
  uint32_t tag = trim ? 0 : (uint32_t) (rnd (&w->rng) | 1);
  unsigned long long s, sa;
  bool quiet;
  int r;

  if (!trim)
    fill (buf, tag);
  before (&s, &quiet);
  r = trim ? nbd_trim (w->nbd, PAGE, page * PAGE, 0)
           : nbd_pwrite (w->nbd, buf, PAGE, page * PAGE, 0);
  sa = atomic_load (&started);
  atomic_fetch_add (trim ? &n_trims : &n_writes, 1);
  if (r == 0) {
    m->val = tag;
    m->clean_gen = quiet && sa == s ? (long long) s : -1;
    return;
  }
  if (nbd_get_errno () != EIO)
    FAIL ("worker %d page %" PRIu64 ": write: %s", w->id, page, nbd_get_error ());
  else if (quiet && sa == s)
    FAIL ("worker %d page %" PRIu64 ": EIO on a write with no reset near it",
          w->id, page);
  atomic_fetch_add (&n_write_eio, 1);
  m->clean_gen = -1;            /* old data or zeroes */
}

static void
do_read (struct worker *w, uint64_t page)
{
  static _Thread_local unsigned char buf[PAGE], want[PAGE];
  struct page_model *m = &w->model[page];
  unsigned long long s, sa;
  bool quiet;
  int r;

  before (&s, &quiet);
  r = nbd_pread (w->nbd, buf, PAGE, page * PAGE, 0);
  sa = atomic_load (&started);
  atomic_fetch_add (&n_reads, 1);
  if (r == -1) {
    if (nbd_get_errno () != EIO)
      FAIL ("worker %d page %" PRIu64 ": read: %s", w->id, page, nbd_get_error ());
    else if (quiet && sa == s)
      FAIL ("worker %d page %" PRIu64 ": EIO on a read with no reset near it",
            w->id, page);
    atomic_fetch_add (&n_read_eio, 1);
    return;
  }
  if (m->val != 0) {
    fill (want, m->val);
    if (memcmp (buf, want, PAGE) == 0) {
      atomic_fetch_add (&n_verified, 1);
      if (s > 0)
        atomic_fetch_add (&n_data_after_reset, 1);
      return;
    }
  }
  if (is_zero (buf)) {
    if (m->val == 0) {
      atomic_fetch_add (&n_verified, 1);
      return;
    }
    if (m->clean_gen != -1 && (unsigned long long) m->clean_gen == sa) {
      FAIL ("worker %d page %" PRIu64 ": zeroes, but no reset since the "
            "write of tag %08x (generation %lld)", w->id, page, m->val,
            m->clean_gen);
      return;
    }
    atomic_fetch_add (&n_zero_after_reset, 1);
    m->val = 0;                 /* erased by a reset: zeroes from now on */
    m->clean_gen = -1;
    return;
  }
  {
    uint32_t seen;
    memcpy (&seen, buf + 4, 4);
    FAIL ("worker %d page %" PRIu64 ": wrong data: expected tag %08x or "
          "zeroes, found tag %08x", w->id, page, m->val, seen);
  }
}

static void *
run_worker (void *arg)
{
  struct worker *w = arg;
  uint64_t mine = (DISK_PAGES - w->id + nworkers - 1) / nworkers;

  while (!atomic_load (&stop)) {
    uint64_t page = w->id + (rnd (&w->rng) % mine) * nworkers;
    unsigned op = rnd (&w->rng) % 16;

    if (op < 7)
      do_write (w, page, false);
    else if (op == 7)
      do_write (w, page, true);
    else
      do_read (w, page);
  }
  return NULL;
}

/* Stats, compaction and peak resets on a second control connection, all
 * through the storm: they race with resets and I/O (and must answer).
 */
static unsigned long long n_pokes;

static void *
run_poker (void *arg)
{
  static const char *cmds[] = { "stats", "compact", "stats", "mem_used_max 0" };
  char reply[4096];
  int fd = ctl_connect (srv.ctl);
  unsigned i = 0;

  (void) arg;
  if (fd == -1) {
    FAIL ("poker: cannot connect to the control socket");
    return NULL;
  }
  while (!atomic_load (&stop)) {
    const char *cmd = cmds[i++ % 4];
    int r = ctl_command (fd, cmd, reply, sizeof reply);

    /* compact fails with EIO only while a reset has the device. */
    if (r == -1 || (r == 1 && strncmp (reply, "error EIO: compact", 18) != 0)) {
      FAIL ("poker: %s: %s", cmd, r == -1 ? "no reply" : reply);
      break;
    }
    n_pokes++;
    test_sleep_us (500);
  }
  close (fd);
  return NULL;
}

/* Final pass, no resets: every page must read back exactly. */
static void
verify_all (struct worker *w)
{
  uint64_t page;

  for (page = w->id; page < DISK_PAGES && !atomic_load (&failed);
       page += nworkers) {
    do_write (w, page, false);
    do_read (w, page);
  }
}

int
main (void)
{
  const char *e;
  double seconds = 6, t0, deadline;
  int conns = 3, threads = 2, ctl, i;
  struct nbd_handle *nbd[MAX_WORKERS];
  static struct worker workers[MAX_WORKERS];
  static const char *resets_cmds[] = {
    "reset force", "reset force algorithm=zstd level=1",
    "reset force algorithm=lz4hc", "reset force algorithm=lz4",
  };
  pthread_t poker;
  unsigned long long resets = 0;
  double reset_time = 0, reset_max = 0;
  uint64_t seed = (uint64_t) time (NULL);
  char reply[4096];

  if ((e = getenv ("STORM_SECONDS")))
    seconds = atof (e);
  if ((e = getenv ("STORM_CONNS")))
    conns = atoi (e);
  if ((e = getenv ("STORM_THREADS")))
    threads = atoi (e);
  if (conns < 1 || threads < 1 || conns * threads > MAX_WORKERS) {
    fprintf (stderr, "bad STORM_CONNS/STORM_THREADS\n");
    return 1;
  }
  nworkers = conns * threads;
  printf ("seed %" PRIu64 ", %d connections x %d threads, %.1f s\n",
          seed, conns, threads, seconds);

  test_server_start (&srv, "8M", NULL);
  for (i = 0; i < conns; i++) {
    nbd[i] = nbd_create ();
    if (nbd[i] == NULL || nbd_connect_unix (nbd[i], srv.sock) == -1) {
      fprintf (stderr, "connect: %s\n", nbd_get_error ());
      test_server_stop (&srv, 5);
      return 1;
    }
  }
  ctl = ctl_connect (srv.ctl);
  if (ctl == -1) {
    perror ("ctl connect");
    test_server_stop (&srv, 5);
    return 1;
  }

  for (i = 0; i < nworkers; i++) {
    workers[i].id = i;
    workers[i].nbd = nbd[i % conns];
    workers[i].rng = seed * 2654435761u + i + 1;
    if (pthread_create (&workers[i].thread, NULL, run_worker, &workers[i])) {
      perror ("pthread_create");
      return 1;
    }
  }

  pthread_create (&poker, NULL, run_poker, NULL);

  /* The storm: reset with force every 1-8 ms. */
  t0 = test_now ();
  deadline = t0 + seconds;
  {
    uint64_t rs = seed ^ 0x5a5a;
    while (!atomic_load (&stop) && test_now () < deadline) {
      int r;

      test_sleep_us (1000 + rnd (&rs) % 7000);
      double t1, t2;

      atomic_fetch_add (&started, 1);
      t1 = test_now ();
      r = ctl_command (ctl, resets_cmds[resets % 4], reply, sizeof reply);
      t2 = test_now ();
      atomic_fetch_add (&done, 1);
      reset_time += t2 - t1;
      if (t2 - t1 > reset_max)
        reset_max = t2 - t1;
      if (r != 0) {
        FAIL ("reset force: %s", r == -1 ? "no reply" : reply);
        break;
      }
      resets++;
    }
  }
  atomic_store (&stop, true);
  for (i = 0; i < nworkers; i++)
    pthread_join (workers[i].thread, NULL);
  pthread_join (poker, NULL);

  /* Quiet now: everything must be exact. */
  if (!atomic_load (&failed))
    for (i = 0; i < nworkers; i++)
      verify_all (&workers[i]);

  if (ctl_command (ctl, "stats", reply, sizeof reply) != 0)
    FAIL ("stats: %s", reply);
  else if (ctl_stat (reply, "connections") != conns)
    FAIL ("stats: connections=%lld, expected %d",
          ctl_stat (reply, "connections"), conns);
  close (ctl);

  printf ("resets %llu; reads %llu (verified %llu, zeroes after reset %llu, "
          "EIO %llu, data after a reset %llu); writes %llu, trims %llu "
          "(EIO %llu); %llu stats/compact\n", resets, atomic_load (&n_reads),
          atomic_load (&n_verified), atomic_load (&n_zero_after_reset),
          atomic_load (&n_read_eio), atomic_load (&n_data_after_reset),
          atomic_load (&n_writes), atomic_load (&n_trims),
          atomic_load (&n_write_eio), n_pokes);

  if (resets > 0)
    printf ("reset round trip through the control socket under I/O: "
            "mean %.2f ms, max %.2f ms\n", reset_time * 1e3 / resets,
            reset_max * 1e3);

  /* The storm must have been a storm, or the test proves nothing. */
  if (!atomic_load (&failed)) {
    if (resets < 20)
      FAIL ("only %llu resets", resets);
    if (atomic_load (&n_zero_after_reset) == 0)
      FAIL ("no read ever saw a reset erase data");
    if (atomic_load (&n_data_after_reset) < 100)
      FAIL ("too few verified reads after resets");
  }

  for (i = 0; i < conns; i++) {
    nbd_shutdown (nbd[i], 0);
    nbd_close (nbd[i]);
  }
  if (test_server_stop (&srv, 5) == -1)
    atomic_store (&failed, 1);
  if (atomic_load (&failed)) {
    fprintf (stderr, "test-reset-storm: FAILED (seed %" PRIu64 ")\n", seed);
    return 1;
  }
  printf ("test-reset-storm: passed\n");
  return 0;
}
