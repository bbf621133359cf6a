/* Stress test: writeback racing writes, partial writes, trims,
 * write-zeroes, zram_reset, recompression, compaction and the trim of
 * freed store blocks, all on the same pages,
 * loses nothing, leaks no block of the store and leaves no statistic
 * behind.
 *
 * Links the core (no nbdkit).  OWNERS threads each own the pages p with
 * p % OWNERS == their number and keep a model of those pages' bytes: they
 * write whole pages, patch byte ranges, trim and zero, and check every
 * read against the model (so pages are read back from the store all the
 * time).  Meanwhile WRITERS threads mark pages idle and write them back
 * (every type, in batches, from random start points) to a store of 1/4 of
 * the device's size, so it fills up and meets ENOSPC too; one thread
 * recompresses and packs idle pages into multi-page groups and takes
 * groups apart (all of them and writeback share the PP mark, and
 * writeback takes members out of their groups); one
 * compacts; one resets the device now and then (it takes a write lock
 * that the owners hold for reading around each operation, so the model
 * knows a reset zeroed everything; the others take no such lock and race
 * the reset).  READERS threads read any page at any time (the store's
 * blocks are pinned by readers and freed by the last one).  At the end
 * everything idle is written back, every page is checked, the store's
 * blocks in use must be at most bd_count (packed), then the whole
 * device is trimmed: every counter 0, no block in use, the file empty.
 *
 * Seeded: WS_SEED; duration WS_SECONDS (default 3).  WS_BACKING names
 * another store (an NBD URI: test-writeback-stress-nbd.sh) instead of a
 * temporary file.  Meant for the plain, ASan+UBSan and TSan builds.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#define _GNU_SOURCE             /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE           4096u
#define PAGES          128u     /* 512 KiB device: owners and writeback meet often */
#define OWNERS         4
#define WRITERS        2
#define READERS        2

static struct zram *z;
static unsigned char (*model)[PAGE];
static pthread_rwlock_t reset_lock;
static bool stop;
static unsigned long long seed0;
static double seconds = 3;

/* Totals over the run (resets clear the device's statistics). */
static uint64_t total_written, total_raced, total_nospace, total_recomp;
static uint64_t total_grouped;
static uint64_t total_resets;

static bool
stopping (void)
{
  return __atomic_load_n (&stop, __ATOMIC_ACQUIRE);
}

static void
make_data (unsigned char *buf, size_t n, unsigned long long *r)
{
  static const char phrase[] = "racing the writeback, page by page.   ";
  unsigned kind = test_rand (r) % 10;
  unsigned noise = kind == 0 ? 16 : (unsigned) (test_rand (r) % 8);

  if (kind == 1) {
    memset (buf, (int) test_rand (r), n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (i % 16 == 0 && test_rand (r) % 16 < noise) {
      for (size_t j = i; j < i + 16 && j < n; j++)
        buf[j] = test_rand (r) >> 56;
      i += 15;
    }
    else
      buf[i] = phrase[(i + kind) % (sizeof phrase - 1)];
  }
}

static void
verify (uint32_t p)
{
  unsigned char got[PAGE];

  CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
  if (memcmp (got, model[p], PAGE) != 0) {
    fprintf (stderr, "page %" PRIu32 " differs from the model\n", p);
    abort ();
  }
}

static void *
owner (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg;
  unsigned long long r = seed0 ^ (id + 1) * 0x9e3779b97f4a7c15ULL;
  unsigned char buf[PAGE];

  while (!stopping ()) {
    uint32_t p = (uint32_t) (test_rand (&r) % (PAGES / OWNERS)) * OWNERS + id;
    uint64_t off = (uint64_t) p * PAGE;
    unsigned op = test_rand (&r) % 100;
    size_t a, n;

    pthread_rwlock_rdlock (&reset_lock);
    if (op < 30) {            /* whole page */
      make_data (buf, PAGE, &r);
      CHECK (zram_write (z, buf, PAGE, off) == 0);
      memcpy (model[p], buf, PAGE);
    }
    else if (op < 50) {       /* a byte range inside the page */
      a = test_rand (&r) % PAGE;
      n = 1 + test_rand (&r) % (PAGE - a);
      make_data (buf, n, &r);
      CHECK (zram_write (z, buf, n, off + a) == 0);
      memcpy (model[p] + a, buf, n);
    }
    else if (op < 55) {       /* trim: whole page */
      CHECK (zram_trim (z, PAGE, off) == 0);
      memset (model[p], 0, PAGE);
    }
    else if (op < 60) {       /* write-zeroes of a range */
      a = test_rand (&r) % PAGE;
      n = 1 + test_rand (&r) % (PAGE - a);
      CHECK (zram_discard (z, n, off + a) == 0);
      memset (model[p] + a, 0, n);
    }
    else
      verify (p);
    pthread_rwlock_unlock (&reset_lock);
  }
  return NULL;
}

/* Reads any page, whole or a range, while its owner changes it and
 * writeback moves it: no model to check against (the read may come
 * before or after a racing write), but it must never fail.  A store block
 * freed and reused under a reader that fetches a written-back page would
 * fail its checksum or its decompression (EIO).
 */
static void *
reader (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg;
  unsigned long long r = seed0 ^ (id + 201) * 0x9e3779b97f4a7c15ULL;
  unsigned char buf[PAGE];

  while (!stopping ()) {
    uint32_t p = test_rand (&r) % PAGES;
    size_t a = test_rand (&r) % 2 ? 0 : test_rand (&r) % PAGE;
    size_t n = a == 0 ? PAGE : 1 + test_rand (&r) % (PAGE - a);

    /* Not across a reset: reads fail (EIO) while it has the device. */
    pthread_rwlock_rdlock (&reset_lock);
    if (zram_read (z, buf, n, (uint64_t) p * PAGE + a) == -1) {
      fprintf (stderr, "read of page %" PRIu32 " [%zu, +%zu): %s\n", p, a, n,
               strerror (errno));
      abort ();
    }
    pthread_rwlock_unlock (&reset_lock);
  }
  return NULL;
}

static void *
writer (void *arg)
{
  unsigned id = (unsigned) (uintptr_t) arg;
  unsigned long long r = seed0 ^ (id + 101) * 0x9e3779b97f4a7c15ULL;
  struct zram_wb_result res;
  struct zram_wb_req req;

  while (!stopping ()) {
    if (test_rand (&r) % 2 == 0)
      CHECK (zram_mark_idle (z, 0, NULL) == 0 || errno == EIO);
    memset (&req, 0, sizeof req);
    req.type = 1 + test_rand (&r) % 4;
    req.max_pages = test_rand (&r) % 2 ? 0 : 1 + test_rand (&r) % 64;
    req.start_index = test_rand (&r) % PAGES;
    if (zram_writeback (z, &req, &res) == -1) {
      /* Only a reset in progress or a full store may refuse us. */
      if (errno == ENOSPC)
        __atomic_add_fetch (&total_nospace, 1, __ATOMIC_RELAXED);
      else if (errno != EIO) {
        fprintf (stderr, "writeback: %s\n", strerror (errno));
        abort ();
      }
    }
    __atomic_add_fetch (&total_written, res.written, __ATOMIC_RELAXED);
    __atomic_add_fetch (&total_raced, res.raced, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void *
recompressor (void *arg)
{
  unsigned long long r = seed0 ^ 77;
  struct zram_recomp_result res;
  struct zram_recomp_req req;

  (void) arg;
  while (!stopping ()) {
    memset (&req, 0, sizeof req);
    req.type = 1 + test_rand (&r) % 3;
    req.max_pages = 1 + test_rand (&r) % 64;
    req.start_index = test_rand (&r) % PAGES;
    if (zram_recompress (z, &req, &res) == -1)
      CHECK (errno == EIO);
    __atomic_add_fetch (&total_recomp, res.recompressed, __ATOMIC_RELAXED);
    {
      struct zram_group_req greq = { .start_index = test_rand (&r) % PAGES };
      struct zram_group_result gres;
      struct zram_dissolve_result dres;

      if (zram_group (z, &greq, &gres) == -1)
        CHECK (errno == EIO);
      __atomic_add_fetch (&total_grouped, gres.grouped, __ATOMIC_RELAXED);
      if (zram_group_dissolve (z, 1 + test_rand (&r) % 100, 4, false,
                               &dres) == -1)
        CHECK (errno == EIO);
    }
  }
  return NULL;
}

static void *
compactor (void *arg)
{
  (void) arg;
  while (!stopping ()) {
    zram_compact (z);
    /* And the background trim of blocks given back, as the plugin's
     * trim policy runs it, racing the writers that give them back and
     * the walks that take them.
     */
    CHECK (zram_trim_store (z) >= 0 || errno == EIO);
    usleep (2000);
  }
  return NULL;
}

static void *
resetter (void *arg)
{
  (void) arg;
  while (!stopping ()) {
    usleep (150000);
    pthread_rwlock_wrlock (&reset_lock);
    CHECK (zram_reset (z, true, NULL) == 0);
    memset (model, 0, (size_t) PAGES * PAGE);
    pthread_rwlock_unlock (&reset_lock);
    total_resets++;
  }
  return NULL;
}

static uint64_t
file_bytes (const char *path)
{
  struct stat st;

  CHECK (stat (path, &st) == 0);
  return (uint64_t) st.st_blocks * 512;
}

int
main (void)
{
  static const struct zram_recomp_algo rc[] = { { ZCOMP_ZSTD, 3 } };
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
                           .nr_recomp = 1, .group_pages = 8,
                           .group_algo = { ZCOMP_ZSTD, 1 } };
  pthread_t owners[OWNERS], writers[WRITERS], readers[READERS], rec, comp;
  pthread_t reset;
  char path[512], err[BACKING_ERR_MAX];
  const char *e, *tmp = getenv ("TMPDIR"), *spec = getenv ("WS_BACKING");
  pthread_rwlockattr_t ra;
  struct backing *store;
  struct zram_stats s;
  int fd;

  /* glibc prefers readers by default: the resetter would starve. */
  pthread_rwlockattr_init (&ra);
  pthread_rwlockattr_setkind_np (&ra,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  CHECK (pthread_rwlock_init (&reset_lock, &ra) == 0);
  seed0 = (e = getenv ("WS_SEED")) ? strtoull (e, NULL, 0) : 12345;
  if ((e = getenv ("WS_SECONDS")))
    seconds = atof (e);
  memcpy (c.recomp, rc, sizeof rc);

  if (spec && *spec)
    snprintf (path, sizeof path, "%s", spec);
  else {
    snprintf (path, sizeof path, "%s/test-writeback-stress.XXXXXX",
              tmp && *tmp ? tmp : "/tmp");
    fd = mkstemp (path);
    CHECK (fd >= 0);
    close (fd);
    spec = NULL;
  }
  /* 1/4 of the device: packed, a block holds several pages, and
   * writeback still fills it now and then and meets ENOSPC.
   */
  store = backing_open (path, (uint64_t) PAGES / 4 * PAGE, err, sizeof err);
  if (store == NULL) {
    fprintf (stderr, "%s\n", err);
    abort ();
  }
  c.backing = store;
  z = zram_create (&c);
  CHECK (z != NULL);
  model = calloc (PAGES, PAGE);
  CHECK (model != NULL);

  for (unsigned i = 0; i < OWNERS; i++)
    CHECK (pthread_create (&owners[i], NULL, owner, (void *) (uintptr_t) i) == 0);
  for (unsigned i = 0; i < WRITERS; i++)
    CHECK (pthread_create (&writers[i], NULL, writer,
                           (void *) (uintptr_t) i) == 0);
  for (unsigned i = 0; i < READERS; i++)
    CHECK (pthread_create (&readers[i], NULL, reader,
                           (void *) (uintptr_t) i) == 0);
  CHECK (pthread_create (&rec, NULL, recompressor, NULL) == 0);
  CHECK (pthread_create (&comp, NULL, compactor, NULL) == 0);
  CHECK (pthread_create (&reset, NULL, resetter, NULL) == 0);
  usleep ((useconds_t) (seconds * 1e6));
  __atomic_store_n (&stop, true, __ATOMIC_RELEASE);
  for (unsigned i = 0; i < OWNERS; i++)
    pthread_join (owners[i], NULL);
  for (unsigned i = 0; i < WRITERS; i++)
    pthread_join (writers[i], NULL);
  for (unsigned i = 0; i < READERS; i++)
    pthread_join (readers[i], NULL);
  pthread_join (rec, NULL);
  pthread_join (comp, NULL);
  pthread_join (reset, NULL);

  /* A last writeback of everything idle (nobody races it now), then
   * every page checked, twice: the reads come from the store.
   */
  {
    struct zram_wb_result res;
    struct zram_wb_req req = { .type = ZRAM_WB_IDLE };
    unsigned long long r = seed0;

    /* Half the pages rewritten, so that there is something to write
     * back even if a reset came last.
     */
    for (uint32_t p = 0; p < PAGES; p += 2) {
      make_data (model[p], PAGE, &r);
      CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
    }

    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    if (zram_writeback (z, &req, &res) == -1)
      CHECK (errno == ENOSPC);
    total_written += res.written;
    CHECK (res.raced == 0);
  }
  /* bd_count is the number of pages whose read goes to the store. */
  {
    uint64_t from_store = 0;
    struct zram_stats s0;

    for (uint32_t p = 0; p < PAGES; p++) {
      zram_get_stats (z, &s0);
      verify (p);
      zram_get_stats (z, &s);
      from_store += s.bd_reads - s0.bd_reads;
    }
    if (from_store != s.bd_count) {
      fprintf (stderr, "%" PRIu64 " pages read from the store, bd_count %"
               PRIu64 "\n", from_store, s.bd_count);
      abort ();
    }
  }
  for (uint32_t p = 0; p < PAGES; p++)
    verify (p);
  zram_get_stats (z, &s);
  CHECK (s.bd_count > 0);
  CHECK (backing_used_blocks (store) > 0 &&
         backing_used_blocks (store) <= s.bd_count);
  CHECK (s.bd_blocks_used == backing_used_blocks (store));
  CHECK (s.orig_data_size >= (s.bd_count + s.same_pages) * PAGE);
  CHECK (s.bd_checksum_errors == 0);

  printf ("seed %llu: %" PRIu64 " written back, %" PRIu64 " raced, %" PRIu64
          " store-full stops, %" PRIu64 " recompressed, %" PRIu64 " grouped, "
          "%" PRIu64 " resets; now %" PRIu64 " pages in the store, %" PRIu64
          " read from it\n",
          seed0, total_written, total_raced, total_nospace, total_recomp,
          total_grouped, total_resets, s.bd_count, s.bd_reads);
  CHECK (total_written > 0 && total_grouped > 0);

  /* Nothing leaked: trim everything, all page counts 0, no block used. */
  CHECK (zram_trim (z, PAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s);
  CHECK (s.orig_data_size == 0 && s.compr_data_size == 0);
  CHECK (s.same_pages == 0 && s.huge_pages == 0 && s.bd_count == 0);
  CHECK (s.idle_pages == 0 && s.incompressible_pages == 0);
  CHECK (s.group_pages == 0 && s.group_objects == 0);
  CHECK (s.pages_recomp[0] == 0);
  CHECK (backing_used_blocks (store) == 0);
  CHECK (zram_trim_store (z) >= 0 && backing_pending_blocks (store) == 0);
  CHECK (spec || !backing_can_trim (store) || file_bytes (path) <= 16 * PAGE);
  CHECK (backing_errors (store) == 0);
  zram_destroy (z);
  if (!spec)
    unlink (path);
  free (model);
  printf ("test-writeback-stress: ok\n");
  return 0;
}
