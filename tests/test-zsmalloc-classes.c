/* Unit test: the zs pool's size classes, edge sizes, the huge threshold,
 * accounting, memory returned to the OS, and that compaction packs a class
 * as tightly as its geometry allows.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zram/zpool.h"
#include "check.h"
#include "zpool-check.h"

#define MAX_CLASSES 512

static struct zpool_class_stats cls[MAX_CLASSES];
static unsigned nr_cls;

static void
load_classes (struct zpool *pool)
{
  for (nr_cls = 0; zpool_class_stats (pool, nr_cls, &cls[nr_cls]) == 0; nr_cls++)
    CHECK (nr_cls < MAX_CLASSES);
  CHECK (errno == ENOENT);
}

/* Index of the class that holds an object of size bytes. */
static unsigned
class_for (size_t size)
{
  for (unsigned i = 0; i < nr_cls; i++)
    if (cls[i].min_size <= size && size <= cls[i].size)
      return i;
  CHECK (!"no class for size");
  return 0;
}

/* Write a pattern that depends on the handle and size. */
static void
fill (struct zpool *pool, zpool_handle h, size_t size)
{
  unsigned char *p = zpool_map (pool, h, ZPOOL_MAP_WO);
  for (size_t i = 0; i < size; i++)
    p[i] = (unsigned char) (h * 131 + i * 7 + size);
  zpool_unmap (pool, h);
}

static void
verify (struct zpool *pool, zpool_handle h, size_t size)
{
  unsigned char *p = zpool_map (pool, h, ZPOOL_MAP_RO);
  for (size_t i = 0; i < size; i++)
    CHECK (p[i] == (unsigned char) (h * 131 + i * 7 + size));
  zpool_unmap (pool, h);
}

static void
test_class_table (struct zpool *pool)
{
  size_t huge = zpool_huge_class_size (pool);

  load_classes (pool);
  printf ("%u classes, huge_class_size %zu\n", nr_cls, huge);
  CHECK (nr_cls >= 64);
  CHECK (cls[0].min_size == 1);
  CHECK (cls[nr_cls - 1].size == ZPOOL_MAX_OBJECT);
  for (unsigned i = 0; i < nr_cls; i++) {
    const struct zpool_class_stats *c = &cls[i];
    uint64_t span = (uint64_t) c->pages_per_span * 4096;

    if (i > 0)
      CHECK (c->min_size == cls[i - 1].size + 1);   /* no gaps */
    CHECK (c->size % 16 == 0);
    CHECK (c->objs_per_span == span / c->size);     /* slots fill the span */
    CHECK (c->spans == 0 && c->objects == 0);
    /* Span lengths are chosen to waste little of each span. */
    CHECK ((double) c->objs_per_span * c->size >= 0.93 * span);
    /* The step is fine: only a class whose geometry no longer span fixes
     * (more pages would not help) covers many sizes.
     */
    CHECK (c->size - c->min_size < 16 * 12 || c->objs_per_span <= 2);
  }
  /* The huge watermark: objects from huge up get a page each; the class
   * just below still packs several objects into a span.
   */
  CHECK (huge >= 4096 / 4 * 3 && huge < 4096);
  CHECK (cls[class_for (huge)].objs_per_span == 1);
  CHECK (cls[class_for (huge)].pages_per_span == 1);
  CHECK (cls[class_for (huge - 1)].objs_per_span > 1);
  CHECK (class_for (huge) == nr_cls - 1);
}

static void
test_edges (struct zpool *pool)
{
  size_t huge = zpool_huge_class_size (pool);
  size_t sizes[3 * MAX_CLASSES + 8];
  zpool_handle h[3 * MAX_CLASSES + 8];
  unsigned n = 0;
  struct zpool_stats st;
  uint64_t live = 0;

  sizes[n++] = 1;
  sizes[n++] = huge - 1;
  sizes[n++] = huge;
  sizes[n++] = ZPOOL_MAX_OBJECT;
  for (unsigned i = 0; i < nr_cls; i++) {
    sizes[n++] = cls[i].min_size;
    sizes[n++] = cls[i].size;
    if (cls[i].size < ZPOOL_MAX_OBJECT)
      sizes[n++] = cls[i].size + 1;
  }
  for (unsigned i = 0; i < n; i++) {
    unsigned c = class_for (sizes[i]);
    struct zpool_class_stats before, after;

    CHECK (zpool_class_stats (pool, c, &before) == 0);
    h[i] = zpool_alloc (pool, sizes[i]);
    CHECK (h[i] != 0);
    CHECK (zpool_class_stats (pool, c, &after) == 0);
    CHECK (after.objects == before.objects + 1);     /* landed in class c */
    CHECK (after.live_bytes == before.live_bytes + sizes[i]);
    fill (pool, h[i], sizes[i]);
    live += sizes[i];
  }
  /* Bad sizes are refused. */
  errno = 0;
  CHECK (zpool_alloc (pool, 0) == 0 && errno == EINVAL);
  errno = 0;
  CHECK (zpool_alloc (pool, ZPOOL_MAX_OBJECT + 1) == 0 && errno == EINVAL);

  zpool_get_stats (pool, &st);
  CHECK (st.live_objects == n);
  CHECK (st.live_bytes == live);
  CHECK (st.total_bytes >= live && st.total_bytes % 4096 == 0);
  CHECK (zpool_total_bytes (pool) == st.total_bytes);
  CHECK (st.meta_bytes > 0);
  for (unsigned i = 0; i < n; i++)
    verify (pool, h[i], sizes[i]);
  zpool_compact (pool);
  for (unsigned i = 0; i < n; i++) {
    verify (pool, h[i], sizes[i]);
    zpool_free (pool, h[i]);
  }
  check_all_returned (pool);
}

static uint64_t
rss_bytes (void)
{
  FILE *fp = fopen ("/proc/self/statm", "r");
  unsigned long size, resident;

  CHECK (fp != NULL);
  CHECK (fscanf (fp, "%lu %lu", &size, &resident) == 2);
  fclose (fp);
  return (uint64_t) resident * sysconf (_SC_PAGESIZE);
}

#define NOBJ 40000

/* Fill, free most objects in a scattered pattern, compact: every class
 * must then use exactly ceil(objects / objs_per_span) spans (nothing is
 * mapped, so nothing is pinned), the data must survive, and RSS must fall.
 */
static void
test_compact_and_rss (struct zpool *pool)
{
  static zpool_handle h[NOBJ];
  static uint16_t size[NOBJ];
  unsigned long long rng = 42;
  struct zpool_stats st0, st1, st2;
  uint64_t rss0, rss1, rss2, released;
  unsigned i;

  rss0 = rss_bytes ();
  for (i = 0; i < NOBJ; i++) {
    size[i] = 1 + test_rand (&rng) % ZPOOL_MAX_OBJECT;
    h[i] = zpool_alloc (pool, size[i]);
    CHECK (h[i] != 0);
    fill (pool, h[i], size[i]);
  }
  zpool_get_stats (pool, &st0);
  rss1 = rss_bytes ();
  /* Keep one object in five: every span keeps a few, none empties. */
  for (i = 0; i < NOBJ; i++)
    if (i % 5 != 0) {
      zpool_free (pool, h[i]);
      h[i] = 0;
    }
  zpool_get_stats (pool, &st1);
  released = zpool_compact (pool);
  zpool_get_stats (pool, &st2);
  rss2 = rss_bytes ();
  printf ("fill: total %llu live %llu (%.3f); 1/5 kept: total %llu, "
          "compacted %llu pages -> total %llu live %llu (%.3f)\n"
          "rss: start %llu filled %llu compacted %llu (MiB)\n",
          (unsigned long long) st0.total_bytes,
          (unsigned long long) st0.live_bytes,
          (double) st0.total_bytes / st0.live_bytes,
          (unsigned long long) st1.total_bytes, (unsigned long long) released,
          (unsigned long long) st2.total_bytes,
          (unsigned long long) st2.live_bytes,
          (double) st2.total_bytes / st2.live_bytes,
          (unsigned long long) rss0 >> 20, (unsigned long long) rss1 >> 20,
          (unsigned long long) rss2 >> 20);
  CHECK (released > 0);
  CHECK (st1.total_bytes - st2.total_bytes == released * 4096);
  CHECK (st2.pages_compacted == st1.pages_compacted + released);
  for (i = 0; i < nr_cls; i++) {
    struct zpool_class_stats c;

    CHECK (zpool_class_stats (pool, i, &c) == 0);
    CHECK (c.spans == (c.objects + c.objs_per_span - 1) / c.objs_per_span);
  }
  CHECK (rss1 - rss0 >= st0.total_bytes / 2);      /* the fill was real */
  CHECK (rss1 - rss2 >= (st1.total_bytes - st2.total_bytes) / 2);
  zpool_dump_stats (pool, stdout);
  for (i = 0; i < NOBJ; i++)
    if (h[i]) {
      verify (pool, h[i], size[i]);
      zpool_free (pool, h[i]);
    }
  check_all_returned (pool);
}

/* Sanitizers reserve terabytes of address space: no RLIMIT_AS with them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAVE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAVE_SANITIZER 1
#endif
#endif

/* Out of memory (address space capped in a child process): alloc fails
 * with ENOMEM, leaves the pool consistent, and works again once memory is
 * freed.
 */
static void
test_enomem (void)
{
#ifndef HAVE_SANITIZER
  pid_t pid;
  int status;

  fflush (stdout);              /* or the child prints it again */
  pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    struct rlimit rl = { 256 << 20, 256 << 20 };
    static zpool_handle h[1 << 20];
    struct zpool *pool = zpool_create (ZPOOL_ZS);
    struct zpool_stats st;
    unsigned n = 0, i;

    CHECK (pool != NULL);
    CHECK (setrlimit (RLIMIT_AS, &rl) == 0);
    for (;;) {
      CHECK (n < (1 << 20));
      errno = 0;
      h[n] = zpool_alloc (pool, 100 + (n * 37) % 3900);
      if (h[n] == 0)
        break;
      fill (pool, h[n], 100 + (n * 37) % 3900);
      n++;
    }
    CHECK (errno == ENOMEM);
    zpool_get_stats (pool, &st);
    CHECK (st.live_objects == n);
    printf ("ENOMEM after %u objects, %llu MiB\n", n,
            (unsigned long long) st.total_bytes >> 20);
    for (i = 0; i < n; i += 2) {
      verify (pool, h[i], 100 + (i * 37) % 3900);
      zpool_free (pool, h[i]);
    }
    zpool_compact (pool);
    for (i = 0; i < n / 4; i++) {
      h[i * 2] = zpool_alloc (pool, 100 + (i * 2 * 37) % 3900);
      CHECK (h[i * 2] != 0);
    }
    for (i = 0; i < n; i++)
      if (i % 2 == 1 || i / 2 < n / 4)
        zpool_free (pool, h[i]);
    check_all_returned (pool);
    zpool_destroy (pool);
    fflush (stdout);
    _exit (0);
  }
  CHECK (waitpid (pid, &status, 0) == pid);
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
#endif
}

/* With all memory locked (the plugin's mlock=true), MADV_DONTNEED fails;
 * freed spans must still give their pages back.  In a child process.
 */
static void
test_mlocked (void)
{
#ifndef HAVE_SANITIZER
  pid_t pid;
  int status;

  fflush (stdout);
  pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    static zpool_handle h[40000];
    struct zpool *pool;
    uint64_t rss0, rss1, rss2;
    unsigned i;

    if (mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
      printf ("mlocked: skipped, mlockall: %s\n", strerror (errno));
      fflush (stdout);
      _exit (0);
    }
    pool = zpool_create (ZPOOL_ZS);
    CHECK (pool != NULL);
    rss0 = rss_bytes ();
    for (i = 0; i < 40000; i++) {
      h[i] = zpool_alloc (pool, 1000 + i % 2000);
      CHECK (h[i] != 0);
      fill (pool, h[i], 1000 + i % 2000);
    }
    rss1 = rss_bytes ();
    /* Keep one in ten: arenas stay mapped, most spans empty out. */
    for (i = 0; i < 40000; i++)
      if (i % 10)
        zpool_free (pool, h[i]);
    zpool_compact (pool);
    rss2 = rss_bytes ();
    printf ("mlocked: rss %llu -> %llu -> %llu MiB, total %llu MiB\n",
            (unsigned long long) rss0 >> 20, (unsigned long long) rss1 >> 20,
            (unsigned long long) rss2 >> 20,
            (unsigned long long) zpool_total_bytes (pool) >> 20);
    CHECK (rss1 - rss0 > 40 << 20);
    CHECK (rss2 - rss0 < (rss1 - rss0) / 4);
    for (i = 0; i < 40000; i += 10) {
      verify (pool, h[i], 1000 + i % 2000);
      zpool_free (pool, h[i]);
    }
    check_all_returned (pool);
    zpool_destroy (pool);
    fflush (stdout);
    _exit (0);
  }
  CHECK (waitpid (pid, &status, 0) == pid);
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
#endif
}

int
main (void)
{
  struct zpool *pool = zpool_create (ZPOOL_ZS);
  struct zpool_class_stats c;

  CHECK (pool != NULL);
  test_class_table (pool);
  test_edges (pool);
  test_compact_and_rss (pool);
  zpool_destroy (pool);
  test_enomem ();
  test_mlocked ();

  /* The malloc pool has no classes. */
  pool = zpool_create (ZPOOL_MALLOC);
  CHECK (pool != NULL);
  errno = 0;
  CHECK (zpool_class_stats (pool, 0, &c) == -1 && errno == ENOTSUP);
  zpool_destroy (pool);
  printf ("ok\n");
  return 0;
}
