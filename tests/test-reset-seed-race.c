/* Reset without force while connections come and go.  A reset without
 * force must either fail with EBUSY or run while no connection is open;
 * connecting must either succeed or be refused while a reset holds the
 * device.  So data a connection wrote must read back exactly for as long
 * as that connection stays open: zeroes there would mean a reset ran under
 * an open connection.  The server must not crash, and must exit cleanly.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The churners pause together now and then (the main thread flips
 * `quiet` every 20-60 ms) so that the device really is without connections
 * at times, however slow connecting is (under a sanitizer it is slow):
 * resets then both succeed and fail, at the edges of those pauses.
 *
 * Environment: RACE_SECONDS (default 4), RACE_CHURNERS (3).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libnbd.h>

#include "ctl-test-util.h"

#define PAGE 4096

static struct test_server srv;
static atomic_bool stop;
static atomic_bool quiet;               /* churners: no new connection */
static atomic_int failed;
static atomic_ullong n_sessions, n_refused, n_checked;

struct churner {
  pthread_t thread;
  int id;
  uint64_t rng;
};

static void *
churn (void *arg)
{
  struct churner *c = arg;
  unsigned char buf[PAGE], got[PAGE];

  while (!atomic_load (&stop)) {
    struct nbd_handle *nbd;
    int k, n;

    if (atomic_load (&quiet)) {
      test_sleep_us (1000);
      continue;
    }
    nbd = nbd_create ();
    if (nbd == NULL) {
      FAIL ("nbd_create: %s", nbd_get_error ());
      break;
    }
    if (nbd_connect_unix (nbd, srv.sock) == -1) {
      /* Refused while a reset holds the device: expected. */
      atomic_fetch_add (&n_refused, 1);
      nbd_close (nbd);
      test_sleep_us (rnd (&c->rng) % 2000);
      continue;
    }
    atomic_fetch_add (&n_sessions, 1);
    n = 1 + rnd (&c->rng) % 4;
    for (k = 0; k < n && !atomic_load (&stop); k++) {
      uint64_t page = c->id * 64 + rnd (&c->rng) % 64;
      uint32_t tag = (uint32_t) rnd (&c->rng) | 1;
      size_t i;

      for (i = 0; i < PAGE; i += 4)
        memcpy (buf + i, &tag, 4);
      buf[0] ^= 1;              /* not same-filled: goes through the codec */
      if (nbd_pwrite (nbd, buf, PAGE, page * PAGE, 0) == -1 ||
          nbd_pread (nbd, got, PAGE, page * PAGE, 0) == -1) {
        FAIL ("churner %d: I/O on an open connection: %s", c->id,
              nbd_get_error ());
        break;
      }
      if (memcmp (buf, got, PAGE) != 0) {
        FAIL ("churner %d page %" PRIu64 ": data written on this connection "
              "changed while it was open (a reset without force ran under "
              "it?)", c->id, page);
        break;
      }
      atomic_fetch_add (&n_checked, 1);
    }
    nbd_shutdown (nbd, 0);
    nbd_close (nbd);
    test_sleep_us (rnd (&c->rng) % 3000);
  }
  return NULL;
}

int
main (void)
{
  static struct churner churners[16];
  double seconds = 4, deadline;
  int nchurners = 3, ctl, i;
  unsigned long long ok = 0, busy = 0;
  uint64_t seed = (uint64_t) time (NULL), rs;
  char reply[4096];
  const char *e;

  if ((e = getenv ("RACE_SECONDS")))
    seconds = atof (e);
  if ((e = getenv ("RACE_CHURNERS")))
    nchurners = atoi (e);
  if (nchurners < 1 || nchurners > 16) {
    fprintf (stderr, "bad RACE_CHURNERS\n");
    return 1;
  }
  printf ("seed %" PRIu64 ", %d churners, %.1f s\n", seed, nchurners, seconds);

  test_server_start (&srv, "4M", NULL);
  ctl = ctl_connect (srv.ctl);
  if (ctl == -1) {
    perror ("ctl connect");
    test_server_stop (&srv, 5);
    return 1;
  }
  for (i = 0; i < nchurners; i++) {
    churners[i].id = i;
    churners[i].rng = seed * 2654435761u + i + 1;
    pthread_create (&churners[i].thread, NULL, churn, &churners[i]);
  }

  rs = seed ^ 0xa5a5;
  deadline = test_now () + seconds;
  {
    double flip = test_now () + 0.02;

  while (!atomic_load (&stop) && test_now () < deadline) {
    int r;

    if (test_now () >= flip) {
      atomic_store (&quiet, !atomic_load (&quiet));
      flip = test_now () + (20 + rnd (&rs) % 40) / 1000.0;
    }
    /* nowait: a plain reset waits up to 2 s for connections to close,
     * which would all but hide the race this test is about.
     */
    r = ctl_command (ctl, "reset nowait", reply, sizeof reply);

    if (r == 0)
      ok++;
    else if (r == 1 && strncmp (reply, "error EBUSY: reset refused: ", 28) == 0)
      busy++;
    else
      FAIL ("reset: %s", r == -1 ? "no reply" : reply);
    test_sleep_us (rnd (&rs) % 1000);
  }
  }
  atomic_store (&stop, true);
  for (i = 0; i < nchurners; i++)
    pthread_join (churners[i].thread, NULL);

  /* All connections are gone, so a reset without force must succeed
   * (nbdkit runs .close after the client's disconnect: allow a moment).
   */
  if (!atomic_load (&failed)) {
    int r = 1;

    for (i = 0; i < 200 && r == 1; i++) {
      r = ctl_command (ctl, "reset", reply, sizeof reply);
      if (r == 1)
        test_sleep_us (10000);
    }
    if (r != 0)
      FAIL ("reset with no connection open: %s", reply);
    if (ctl_command (ctl, "stats", reply, sizeof reply) != 0 ||
        ctl_stat (reply, "connections") != 0 ||
        ctl_stat (reply, "initialised") != 1)
      FAIL ("stats after the race: %s", reply);
  }
  close (ctl);

  printf ("resets: %llu done, %llu EBUSY; sessions %llu, refused %llu, "
          "pages checked %llu\n", ok, busy, atomic_load (&n_sessions),
          atomic_load (&n_refused), atomic_load (&n_checked));
  if (!atomic_load (&failed)) {
    if (ok == 0 || busy == 0)
      FAIL ("the race did not happen (resets %llu done, %llu EBUSY)", ok, busy);
    if (atomic_load (&n_checked) < 50)
      FAIL ("too little I/O");
  }
  if (test_server_stop (&srv, 5) == -1)
    atomic_store (&failed, 1);
  if (atomic_load (&failed)) {
    fprintf (stderr, "test-reset-seed-race: FAILED (seed %" PRIu64 ")\n", seed);
    return 1;
  }
  printf ("test-reset-seed-race: passed\n");
  return 0;
}
