/* 8+ threads, each with its own NBD connection, write non-overlapping
 * sub-page ranges of the same pages (as a client with a 512-byte block
 * size does); every byte of every thread must survive.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libnbd.h>

#include "check.h"

#define THREADS 12
#define PAGES 16
#define ROUNDS 40
#define PAGE 4096

static char sock[64], pidfile[64], uri[128], sanlog[64];

/* Print any sanitizer report nbdkit wrote; true if there was one. */
static int
sanitizer_reported (void)
{
  char cmd[256];

  snprintf (cmd, sizeof cmd, "cat %s.* 2>/dev/null | grep . >&2", sanlog);
  return system (cmd) == 0;
}

/* Thread t owns bytes [t * slice, (t + 1) * slice) of every page, where
 * slice is PAGE / THREADS rounded down; the tail of each page is owned by
 * nobody and must stay zero.
 */
static const size_t slice = PAGE / THREADS;

static unsigned char
pattern (size_t thread, int round, size_t page, size_t i)
{
  return (unsigned char) (thread * 31 + round * 7 + page * 3 + i % 5 + 1);
}

static void *
writer (void *arg)
{
  size_t t = (size_t) arg;
  struct nbd_handle *h = nbd_create ();
  unsigned char buf[PAGE];

  CHECK (h != NULL);
  if (nbd_connect_uri (h, uri) == -1) {
    fprintf (stderr, "connect: %s\n", nbd_get_error ());
    abort ();
  }
  for (int r = 0; r < ROUNDS; ++r)
    for (size_t p = 0; p < PAGES; ++p) {
      for (size_t i = 0; i < slice; ++i)
        buf[i] = pattern (t, r, p, i);
      if (nbd_pwrite (h, buf, slice, p * PAGE + t * slice, 0) == -1) {
        fprintf (stderr, "pwrite: %s\n", nbd_get_error ());
        abort ();
      }
    }
  nbd_shutdown (h, 0);
  nbd_close (h);
  return NULL;
}

int
main (void)
{
  const char *plugin = getenv ("ZRAM_PLUGIN"), *preload = getenv ("ZRAM_PRELOAD");
  char cmd[1024];
  pthread_t th[THREADS];
  unsigned char page[PAGE];
  struct nbd_handle *h;
  FILE *fp;
  int pid = 0;

  if (plugin == NULL) {
    fprintf (stderr, "ZRAM_PLUGIN is not set\n");
    return 77;
  }
  snprintf (sock, sizeof sock, "/tmp/zram-pw-%d.sock", getpid ());
  snprintf (pidfile, sizeof pidfile, "/tmp/zram-pw-%d.pid", getpid ());
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  /* Under a sanitizer build nbdkit gets the runtime preloaded, and its
   * reports (it has no terminal once daemonised) go to a file we read at
   * the end.
   */
  snprintf (sanlog, sizeof sanlog, "/tmp/zram-pw-%d.san", getpid ());
  if (preload && *preload)
    snprintf (cmd, sizeof cmd,
              "LD_PRELOAD=%s ASAN_OPTIONS=$ASAN_OPTIONS:log_path=%s "
              "UBSAN_OPTIONS=$UBSAN_OPTIONS:log_path=%s "
              "TSAN_OPTIONS=$TSAN_OPTIONS:log_path=%s "
              "nbdkit -P %s -U %s %s size=%d",
              preload, sanlog, sanlog, sanlog, pidfile, sock, plugin,
              PAGES * PAGE);
  else
    snprintf (cmd, sizeof cmd, "nbdkit -P %s -U %s %s size=%d",
              pidfile, sock, plugin, PAGES * PAGE);
  CHECK (system (cmd) == 0);
  /* nbdkit writes the pidfile once it is ready to serve. */
  for (int i = 0; i < 300 && pid <= 0; ++i) {
    fp = fopen (pidfile, "r");
    if (fp == NULL || fscanf (fp, "%d", &pid) != 1)
      usleep (100000);
    if (fp)
      fclose (fp);
  }
  CHECK (pid > 0);

  for (size_t t = 0; t < THREADS; ++t)
    CHECK (pthread_create (&th[t], NULL, writer, (void *) t) == 0);
  for (size_t t = 0; t < THREADS; ++t)
    pthread_join (th[t], NULL);

  h = nbd_create ();
  if (h == NULL || nbd_connect_uri (h, uri) == -1) {
    fprintf (stderr, "connect after the writers: %s\n", nbd_get_error ());
    sanitizer_reported ();
    kill (pid, SIGTERM);
    return 1;
  }
  for (size_t p = 0; p < PAGES; ++p) {
    CHECK (nbd_pread (h, page, PAGE, p * PAGE, 0) == 0);
    for (size_t t = 0; t < THREADS; ++t)
      for (size_t i = 0; i < slice; ++i)
        if (page[t * slice + i] != pattern (t, ROUNDS - 1, p, i)) {
          fprintf (stderr, "page %zu byte %zu (thread %zu): got %u want %u\n",
                   p, t * slice + i, t, page[t * slice + i],
                   pattern (t, ROUNDS - 1, p, i));
          kill (pid, SIGTERM);
          return 1;
        }
    for (size_t i = THREADS * slice; i < PAGE; ++i)
      CHECK (page[i] == 0);
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
  kill (pid, SIGTERM);
  for (int i = 0; i < 100 && kill (pid, 0) == 0; ++i)
    usleep (100000);
  CHECK (kill (pid, 0) != 0);
  unlink (pidfile);
  if (sanitizer_reported ()) {
    fprintf (stderr, "nbdkit reported sanitizer errors\n");
    return 1;
  }
  printf ("test-partial-write-threads: %d threads x %d rounds x %d pages ok\n",
          THREADS, ROUNDS, PAGES);
  return 0;
}
