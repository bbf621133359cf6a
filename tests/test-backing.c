/* Unit test of the backing store (include/zram/backing.h) on a regular
 * file: blocks round-trip (one by one and in a batch), trim gives space back on a sparse file (as
 * st_blocks shows), the allocator hands out every block once and then
 * fails with ENOSPC, concurrent allocations never share a block, and bad
 * names get clear errors.
 *
 * Works in $TMPDIR (default /tmp).  The space check needs a file system
 * that punches holes; where it cannot, that check is skipped with a note
 * and the rest still runs.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zram/backing.h"
#include "check.h"

#define BS BACKING_BLOCK_SIZE

static char dir[256];

/* A new file in dir of size bytes (sparse); its path in path. */
static void
make_file (char *path, size_t cap, const char *name, off_t size)
{
  int fd;

  snprintf (path, cap, "%s/%s", dir, name);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0);
  CHECK (ftruncate (fd, size) == 0);
  close (fd);
}

static uint64_t
allocated_bytes (const char *path)
{
  struct stat st;

  CHECK (stat (path, &st) == 0);
  return (uint64_t) st.st_blocks * 512;
}

static void
fill (unsigned char *buf, uint64_t block, unsigned gen)
{
  for (unsigned i = 0; i < BS; i++)
    buf[i] = (unsigned char) (block * 7 + i * 13 + gen);
}

static void
test_round_trip (void)
{
  char path[512], err[BACKING_ERR_MAX];
  unsigned char buf[BS], got[BS];
  struct backing *b;
  uint64_t blk;

  make_file (path, sizeof path, "rt", 256 * BS);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);
  CHECK (backing_nr_blocks (b) == 256);
  CHECK (strcmp (backing_kind (b), "file") == 0);
  CHECK (strcmp (backing_name (b), path) == 0);
  for (blk = 0; blk < 256; blk += 5) {
    fill (buf, blk, 1);
    CHECK (backing_write (b, blk, buf) == 0);
  }
  for (blk = 0; blk < 256; blk += 5) {
    fill (buf, blk, 1);
    CHECK (backing_read (b, blk, got) == 0);
    CHECK (memcmp (buf, got, BS) == 0);
  }
  /* Out of range: refused, nothing written past the end. */
  errno = 0;
  CHECK (backing_read (b, 256, got) == -1 && errno == EINVAL);
  errno = 0;
  CHECK (backing_write (b, 256, buf) == -1 && errno == EINVAL);
  errno = 0;
  CHECK (backing_trim (b, 250, 7) == -1 && errno == EINVAL);
  CHECK (backing_trim (b, 0, 0) == 0);
  /* A batch: every in-range write lands; the bad one alone fails. */
  {
    unsigned char bufs[3][BS];
    struct backing_io io[3] = {
      { .block = 1, .buf = bufs[0] }, { .block = 300, .buf = bufs[1] },
      { .block = 2, .buf = bufs[2] },
    };
    fill (bufs[0], 1, 9);
    fill (bufs[1], 300, 9);
    fill (bufs[2], 2, 9);
    CHECK (backing_write_batch (b, io, 3) == 1);
    CHECK (io[0].err == 0 && io[1].err == EINVAL && io[2].err == 0);
    CHECK (backing_read (b, 1, got) == 0 && memcmp (got, bufs[0], BS) == 0);
    CHECK (backing_read (b, 2, got) == 0 && memcmp (got, bufs[2], BS) == 0);
    io[1].block = 3;
    fill (bufs[1], 3, 9);
    CHECK (backing_write_batch (b, io, 3) == 0);
    CHECK (backing_read (b, 3, got) == 0 && memcmp (got, bufs[1], BS) == 0);
  }
  CHECK (allocated_bytes (path) <= 256 * BS + 64 * 1024);
  {
    struct stat st;
    CHECK (stat (path, &st) == 0 && st.st_size == 256 * BS);
  }
  backing_close (b);
  unlink (path);
}

/* Writing 256 blocks takes space; giving them back must return it. */
static void
test_trim_space (void)
{
  char path[512], err[BACKING_ERR_MAX];
  unsigned char buf[BS];
  struct backing *b;
  uint64_t blk, before, full, after;

  make_file (path, sizeof path, "trim", 1024 * BS);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);
  before = allocated_bytes (path);
  for (unsigned i = 0; i < 512; i++) {
    CHECK (backing_alloc_block (b, &blk) == 0);
    CHECK (blk == i);          /* next fit fills the store front to back */
    fill (buf, blk, 2);
    CHECK (backing_write (b, blk, buf) == 0);
  }
  full = allocated_bytes (path);
  CHECK (full >= before + 512 * BS);
  /* Give half back one by one, then the rest at once. */
  for (blk = 0; blk < 256; blk++)
    backing_free_block (b, blk);
  CHECK (backing_used_blocks (b) == 256);
  if (!backing_can_trim (b)) {
    printf ("note: %s cannot punch holes: space check skipped\n", dir);
    backing_free_all (b);
  }
  else {
    /* Given back, but not trimmed on the caller's thread: a request that
     * drops a block must never wait for the store.
     */
    CHECK (backing_pending_blocks (b) == 256);
    EXPECT (allocated_bytes (path) == full, "freeing trimmed at once: %llu "
            "bytes allocated, was %llu",
            (unsigned long long) allocated_bytes (path),
            (unsigned long long) full);
    CHECK (backing_trim_pending (b) == 256);
    CHECK (backing_pending_blocks (b) == 0 && backing_used_blocks (b) == 256);
    CHECK (backing_trim_pending (b) == 0);
    after = allocated_bytes (path);
    EXPECT (after <= full - 256 * BS, "after freeing 256 blocks: %llu bytes "
            "allocated, was %llu", (unsigned long long) after,
            (unsigned long long) full);
    backing_free_all (b);
    after = allocated_bytes (path);
    EXPECT (after <= before + 64 * 1024, "after freeing all: %llu bytes "
            "allocated, at the start %llu", (unsigned long long) after,
            (unsigned long long) before);
  }
  CHECK (backing_used_blocks (b) == 0);
  /* The freed blocks are all free again. */
  CHECK (backing_alloc_block (b, &blk) == 0);
  backing_close (b);
  unlink (path);
}

static void
test_exhaustion (void)
{
  char path[512], err[BACKING_ERR_MAX];
  static unsigned char seen[100];
  struct backing *b;
  uint64_t blk;

  /* 100 blocks: not a multiple of 64, so padding bits are exercised. */
  make_file (path, sizeof path, "ex", 100 * BS + 123);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);
  CHECK (backing_nr_blocks (b) == 100);
  for (unsigned i = 0; i < 100; i++) {
    CHECK (backing_alloc_block (b, &blk) == 0);
    CHECK (blk < 100 && !seen[blk]);
    seen[blk] = 1;
  }
  errno = 0;
  CHECK (backing_alloc_block (b, &blk) == -1 && errno == ENOSPC);
  CHECK (backing_used_blocks (b) == 100);
  /* A block given back waits for its trim; a full store trims it on
   * demand rather than report ENOSPC.
   */
  backing_free_block (b, 77);
  CHECK (backing_used_blocks (b) == 99 && backing_pending_blocks (b) == 1);
  CHECK (backing_alloc_block (b, &blk) == 0 && blk == 77);
  CHECK (backing_pending_blocks (b) == 0);
  errno = 0;
  CHECK (backing_alloc_block (b, &blk) == -1 && errno == ENOSPC);
  /* Giving everything back also empties the queue. */
  backing_free_block (b, 3);
  backing_free_block (b, 4);
  backing_free_all (b);
  CHECK (backing_used_blocks (b) == 0 && backing_pending_blocks (b) == 0);
  CHECK (backing_trim_pending (b) == 0);
  CHECK (backing_alloc_block (b, &blk) == 0);
  backing_close (b);
  unlink (path);
}

/* max_bytes: an empty file grows to it; a larger store is capped to it. */
static void
test_sizes (void)
{
  char path[512], err[BACKING_ERR_MAX];
  struct backing *b;
  struct stat st;

  make_file (path, sizeof path, "empty", 0);
  b = backing_open (path, 64 * BS, err, sizeof err);
  CHECK (b != NULL);
  CHECK (backing_nr_blocks (b) == 64);
  CHECK (stat (path, &st) == 0 && st.st_size == 64 * BS);
  CHECK (allocated_bytes (path) == 0);
  backing_close (b);

  b = backing_open (path, 16 * BS, err, sizeof err);
  CHECK (b != NULL);
  CHECK (backing_nr_blocks (b) == 16);
  backing_close (b);
  unlink (path);
}

struct racer { struct backing *b; uint64_t got[500]; };

static void *
alloc_racer (void *arg)
{
  struct racer *r = arg;

  for (unsigned i = 0; i < 500; i++)
    CHECK (backing_alloc_block (r->b, &r->got[i]) == 0);
  return NULL;
}

static void
test_concurrent_alloc (void)
{
  char path[512], err[BACKING_ERR_MAX];
  static struct racer racers[4];
  static unsigned char seen[2000];
  pthread_t th[4];
  struct backing *b;
  uint64_t blk;

  make_file (path, sizeof path, "conc", 2000 * BS);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);
  for (int i = 0; i < 4; i++) {
    racers[i].b = b;
    CHECK (pthread_create (&th[i], NULL, alloc_racer, &racers[i]) == 0);
  }
  for (int i = 0; i < 4; i++)
    CHECK (pthread_join (th[i], NULL) == 0);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 500; j++) {
      CHECK (!seen[racers[i].got[j]]);
      seen[racers[i].got[j]] = 1;
    }
  CHECK (backing_alloc_block (b, &blk) == -1 && errno == ENOSPC);
  backing_free_all (b);
  backing_close (b);
  unlink (path);
}

/* One backing_trim_pending trims at most BACKING_TRIM_MAX blocks (each
 * run a store request: a long queue of scattered blocks would hold the
 * background thread, and a reset, for seconds); the rest stays queued,
 * whole, for the next calls.
 */
static void
test_trim_bounded (void)
{
  char path[512], err[BACKING_ERR_MAX];
  static unsigned char seen[8192];
  struct backing *b;
  uint64_t blk, total = 0, calls = 0, n;

  make_file (path, sizeof path, "bounded", 8192 * BS);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);
  for (unsigned i = 0; i < 8192; i++)
    CHECK (backing_alloc_block (b, &blk) == 0 && blk == i);
  for (unsigned i = 0; i < 8192; i += 2)
    backing_free_block (b, i);
  CHECK (backing_pending_blocks (b) == 4096);
  n = backing_trim_pending (b);
  EXPECT (n == BACKING_TRIM_MAX, "one call trimmed %llu of 4096 scattered "
          "blocks, at most %u expected", (unsigned long long) n,
          BACKING_TRIM_MAX);
  CHECK (backing_pending_blocks (b) == 4096 - n);
  CHECK (backing_used_blocks (b) == 4096);
  for (total = n; (n = backing_trim_pending (b)) > 0; total += n)
    CHECK (++calls < 100);
  CHECK (total == 4096 && backing_pending_blocks (b) == 0);
  /* Every one of them is free once, and only they are. */
  for (unsigned i = 0; i < 4096; i++) {
    CHECK (backing_alloc_block (b, &blk) == 0);
    CHECK (blk % 2 == 0 && !seen[blk]);
    seen[blk] = 1;
  }
  CHECK (backing_alloc_block (b, &blk) == -1 && errno == ENOSPC);
  backing_free_all (b);
  backing_close (b);
  unlink (path);
}

/* The queue of blocks given back, raced: workers take blocks, write them,
 * read them back after a trim of the queue and give them back, while
 * another thread trims the queue.  At most QW_HELD * QW_WORKERS of the
 * QW_BLOCKS blocks are held at once, so the store is never full: every
 * allocation must succeed, even while another thread holds the queue for
 * its trim.  A block is never handed to two owners, a trim never erases
 * a new owner's data, and the count in use never exceeds the store.
 */
#define QW_WORKERS 4
#define QW_HELD 8
#define QW_BLOCKS 64

static struct backing *qb;
static unsigned qowner[QW_BLOCKS];
static int qstop;

static void *
queue_worker (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg, gen = 0;
  unsigned char buf[BS], back[BS];
  uint64_t blk[QW_HELD];

  while (!__atomic_load_n (&qstop, __ATOMIC_RELAXED)) {
    unsigned n = 1 + gen % QW_HELD, i;

    gen++;
    for (i = 0; i < n; i++) {
      unsigned none = 0;

      if (backing_alloc_block (qb, &blk[i]) == -1) {
        EXPECT (0, "allocation failed (%s) with at most %u of %u blocks held",
                strerror (errno), QW_HELD * QW_WORKERS, QW_BLOCKS);
        break;
      }
      CHECK (__atomic_compare_exchange_n (&qowner[blk[i]], &none, id + 1,
                                          false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
      fill (buf, blk[i], gen + id);
      CHECK (backing_write (qb, blk[i], buf) == 0);
    }
    /* Let the trimmer run (a trim of a block after it was handed out
     * again would erase it), and let the queue grow, so that the store
     * fills with blocks waiting for their trim and allocations must trim.
     */
    n = i;
    usleep (200);
    CHECK (backing_used_blocks (qb) <= QW_BLOCKS);
    for (i = 0; i < n; i++) {
      fill (buf, blk[i], gen + id);
      EXPECT (backing_read (qb, blk[i], back) == 0 &&
              memcmp (buf, back, BS) == 0,
              "block %llu lost its owner's data (trimmed after reuse?)",
              (unsigned long long) blk[i]);
      __atomic_store_n (&qowner[blk[i]], 0, __ATOMIC_RELEASE);
      backing_free_block (qb, blk[i]);
    }
  }
  return NULL;
}

static void *
queue_trimmer (void *arg)
{
  (void) arg;
  while (!__atomic_load_n (&qstop, __ATOMIC_RELAXED)) {
    backing_trim_pending (qb);
    CHECK (backing_used_blocks (qb) <= QW_BLOCKS);
    usleep (1000);
  }
  return NULL;
}

static void
test_queue_race (void)
{
  char path[512], err[BACKING_ERR_MAX];
  pthread_t th[QW_WORKERS + 2];

  make_file (path, sizeof path, "queue", QW_BLOCKS * BS);
  qb = backing_open (path, 0, err, sizeof err);
  CHECK (qb != NULL);
  for (unsigned i = 0; i < QW_WORKERS; i++)
    CHECK (pthread_create (&th[i], NULL, queue_worker,
                           (void *) (uintptr_t) i) == 0);
  for (unsigned i = QW_WORKERS; i < QW_WORKERS + 2; i++)
    CHECK (pthread_create (&th[i], NULL, queue_trimmer, NULL) == 0);
  sleep (2);
  __atomic_store_n (&qstop, 1, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < QW_WORKERS + 2; i++)
    CHECK (pthread_join (th[i], NULL) == 0);
  CHECK (backing_used_blocks (qb) == 0);
  backing_trim_pending (qb);
  CHECK (backing_pending_blocks (qb) == 0);
  backing_free_all (qb);
  backing_close (qb);
  unlink (path);
}

/* Open spec and expect failure with errno e and a message naming what. */
static void
expect_refused (const char *spec, uint64_t max, int e, const char *what)
{
  char err[BACKING_ERR_MAX] = "";
  struct backing *b;

  errno = 0;
  b = backing_open (spec, max, err, sizeof err);
  EXPECT (b == NULL, "'%s' was accepted", spec);
  if (b) {
    backing_close (b);
    return;
  }
  EXPECT (errno == e, "'%s': errno %d (%s), expected %d", spec, errno,
          strerror (errno), e);
  EXPECT (strstr (err, what) != NULL, "'%s': message '%s' lacks '%s'", spec,
          err, what);
  printf ("refused as expected: %s\n", err);
}

static void
test_bad_names (void)
{
  char path[512], small[512], missing[512], err[BACKING_ERR_MAX];
  struct backing *b;

  snprintf (missing, sizeof missing, "%s/no-such-file", dir);
  expect_refused (missing, 0, ENOENT, "No such file");
  /* It was not created either. */
  CHECK (access (missing, F_OK) == -1);
  expect_refused (dir, 0, EINVAL, "not a regular file or block device");
  expect_refused ("/dev/null", 0, EINVAL, "not a regular file or block device");
  expect_refused ("", 0, EINVAL, "empty name");
  snprintf (path, sizeof path, "nbd+unix:///?socket=%s/no-such-socket", dir);
#ifdef HAVE_LIBNBD
  /* NBD stores that cannot be reached (test-backing-nbd has the rest). */
  expect_refused (path, 0, ENOENT, "cannot connect to the NBD server");
  expect_refused ("nbd://localhost:port/", 0, EINVAL, "unable to parse URI");
#else
  expect_refused (path, 0, ENOTSUP, "built without libnbd");
#endif
  expect_refused ("https://localhost/export", 0, EINVAL, "unknown URI scheme");
  make_file (small, sizeof small, "small", 100);
  expect_refused (small, 0, EINVAL, "smaller than one block");
  make_file (small, sizeof small, "small", 0);
  expect_refused (small, 0, EINVAL, "smaller than one block");
  unlink (small);

  /* A store in use by another opener is refused. */
  make_file (path, sizeof path, "locked", 16 * BS);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);
  expect_refused (path, 0, EBUSY, "another process uses it");
  backing_close (b);
  b = backing_open (path, 0, err, sizeof err);
  CHECK (b != NULL);          /* free again once closed */
  backing_close (b);
  unlink (path);
}

int
main (void)
{
  const char *tmp = getenv ("TMPDIR");

  snprintf (dir, sizeof dir, "%s/test-backing.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK (mkdtemp (dir) != NULL);
  test_round_trip ();
  test_trim_space ();
  test_exhaustion ();
  test_sizes ();
  test_concurrent_alloc ();
  test_queue_race ();
  test_trim_bounded ();
  test_bad_names ();
  rmdir (dir);
  if (check_failures)
    return 1;
  printf ("test-backing: ok\n");
  return 0;
}
