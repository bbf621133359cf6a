/* Unit test of the device core without nbdkit: zero reads, same-filled and
 * huge pages, partial writes, discard of partial ranges, extents, limits,
 * reset and openers, a seeded random model test, and concurrent sub-page
 * writers.  Runs once per allocator.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE ZRAM_PAGE_SIZE
#define NPAGES 64

static enum zpool_kind kind;

static struct zram *
make (enum zcomp_algo algo, uint64_t pages)
{
  struct zram_config c = { .disksize = pages * PAGE, .algo = algo, .pool = kind };
  struct zram *z = zram_create (&c);

  CHECK (z != NULL);
  return z;
}

/* Text-like bytes: words from a small vocabulary, which LZ4 (no entropy
 * coder) compresses about 3:1, as it does real text.
 */
static void
fill_text (unsigned char *p, size_t n, unsigned long long seed)
{
  static const char *words[] = { "slot ", "page ", "zram ", "the ", "lock\n",
                                 "compressed ", "memory ", "of " };
  size_t i = 0;

  while (i < n) {
    const char *w = words[test_rand (&seed) % 8];
    for (; *w && i < n; ++w)
      p[i++] = *w;
  }
}

static void
fill_random (unsigned char *p, size_t n, unsigned long long seed)
{
  for (size_t i = 0; i < n; ++i)
    p[i] = test_rand (&seed) >> 56;
}

static struct zram_stats
stats (struct zram *z)
{
  struct zram_stats s;
  zram_get_stats (z, &s);
  return s;
}

static void
test_config (void)
{
  struct zram_config c = { .disksize = 0, .algo = ZCOMP_LZ4, .pool = kind };

  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.disksize = 4095;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.disksize = ZRAM_MAX_DISKSIZE * 2;
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  c.disksize = PAGE;
  c.level = 65538;            /* past lz4's largest acceleration */
  CHECK (zram_create (&c) == NULL && errno == EINVAL);
  /* A 1 TiB device costs nothing until written. */
  c.disksize = UINT64_C(1) << 40;
  c.level = 0;
  struct zram *z = zram_create (&c);
  CHECK (z != NULL);
  unsigned char b[PAGE];
  memset (b, 7, PAGE);
  CHECK (zram_write (z, b, PAGE, c.disksize - PAGE) == 0);
  CHECK (zram_read (z, b, PAGE, 0) == 0 && b[0] == 0);
  zram_destroy (z);
}

static void
test_basic (enum zcomp_algo algo)
{
  struct zram *z = make (algo, NPAGES);
  unsigned char w[PAGE * 3], r[PAGE * 3];
  struct zram_stats s;

  /* Never-written pages read as zeroes. */
  memset (r, 0xff, sizeof r);
  CHECK (zram_read (z, r, sizeof r, 0) == 0);
  for (size_t i = 0; i < sizeof r; ++i) CHECK (r[i] == 0);

  /* A same-filled page keeps only its word. */
  memset (w, 0x3c, PAGE);
  CHECK (zram_write (z, w, PAGE, 0) == 0);
  s = stats (z);
  CHECK (s.same_pages == 1 && s.compr_data_size == 0 && s.orig_data_size == PAGE);
  CHECK (zram_read (z, r, PAGE, 0) == 0 && memcmp (r, w, PAGE) == 0);

  /* An incompressible page is stored raw. */
  fill_random (w, PAGE, 1);
  CHECK (zram_write (z, w, PAGE, PAGE) == 0);
  s = stats (z);
  CHECK (s.huge_pages == 1 && s.huge_pages_since == 1 && s.compr_data_size == PAGE);
  CHECK (zram_read (z, r, PAGE, PAGE) == 0 && memcmp (r, w, PAGE) == 0);

  /* A compressible page is stored smaller. */
  fill_text (w, PAGE, 2);
  CHECK (zram_write (z, w, PAGE, 2 * PAGE) == 0);
  s = stats (z);
  CHECK (s.compr_data_size > PAGE && s.compr_data_size < 2 * PAGE);
  CHECK (s.orig_data_size == 3 * PAGE && s.mem_used_total > 0);
  CHECK (zram_read (z, r, PAGE, 2 * PAGE) == 0 && memcmp (r, w, PAGE) == 0);

  /* Overwriting the huge page with text releases the raw copy. */
  CHECK (zram_write (z, w, PAGE, PAGE) == 0);
  s = stats (z);
  CHECK (s.huge_pages == 0 && s.huge_pages_since == 1 && s.compr_data_size < PAGE);

  /* Out of range: EINVAL, counted, nothing changed. */
  errno = 0;
  CHECK (zram_write (z, w, PAGE, NPAGES * PAGE) == -1 && errno == EINVAL);
  CHECK (zram_read (z, r, 2, NPAGES * PAGE - 1) == -1 && errno == EINVAL);
  CHECK (zram_discard (z, PAGE, UINT64_MAX - 10) == -1 && errno == EINVAL);
  CHECK (stats (z).invalid_io == 3);
  CHECK (zram_read (z, r, 1, NPAGES * PAGE - 1) == 0);

  zram_destroy (z);
}

static void
test_partial (void)
{
  struct zram *z = make (ZCOMP_LZ4, NPAGES);
  unsigned char model[4 * PAGE], r[4 * PAGE], w[4 * PAGE];

  memset (model, 0, sizeof model);
  /* Writes of odd sizes at odd offsets, across page boundaries. */
  for (int i = 0; i < 200; ++i) {
    unsigned long long seed = i + 100;
    size_t off = test_rand (&seed) % (sizeof model - 1);
    size_t n = 1 + test_rand (&seed) % (sizeof model - off);
    if (i % 3 == 0) fill_random (w, n, seed); else fill_text (w, n, seed);
    CHECK (zram_write (z, w, n, off) == 0);
    memcpy (model + off, w, n);
    CHECK (zram_read (z, r, sizeof r, 0) == 0);
    CHECK (memcmp (r, model, sizeof r) == 0);
    /* and a partial read of the same range */
    CHECK (zram_read (z, r, n, off) == 0 && memcmp (r, model + off, n) == 0);
  }
  zram_destroy (z);
}

static int
collect (void *opaque, uint64_t offset, uint64_t length, enum zram_extent_type t)
{
  char *map = opaque;
  for (uint64_t p = offset / PAGE; p < (offset + length) / PAGE; ++p)
    map[p] = t == ZRAM_EXTENT_ZERO ? 'z' : 'D';
  return 0;
}

/* Runs recorded by zram_extents, for exact checks. */
struct run { uint64_t offset, length; enum zram_extent_type type; };
struct runs { struct run *v; size_t n, max; };

static int
record (void *opaque, uint64_t offset, uint64_t length, enum zram_extent_type t)
{
  struct runs *rs = opaque;

  CHECK (rs->n < rs->max);
  rs->v[rs->n++] = (struct run) { offset, length, t };
  return 0;
}

static void
test_discard_and_extents (void)
{
  struct zram *z = make (ZCOMP_LZ4, 8);
  unsigned char w[8 * PAGE], r[8 * PAGE];
  char map[9] = "........";

  fill_text (w, sizeof w, 5);
  CHECK (zram_write (z, w, 4 * PAGE, 0) == 0);
  memset (w + 5 * PAGE, 0, PAGE);
  CHECK (zram_write (z, w + 5 * PAGE, PAGE, 5 * PAGE) == 0);   /* zero page */
  CHECK (zram_extents (z, 8 * PAGE, 0, collect, map) == 0);
  CHECK (strcmp (map, "DDDDzzzz") == 0);

  /* Discard [1000, 3 pages + 100): page 0 zeroed from 1000, pages 1 and 2
   * freed, page 3's first 100 bytes zeroed.
   */
  CHECK (zram_discard (z, 3 * PAGE + 100 - 1000, 1000) == 0);
  memset (w + 1000, 0, 3 * PAGE + 100 - 1000);
  CHECK (zram_read (z, r, 4 * PAGE, 0) == 0 && memcmp (r, w, 4 * PAGE) == 0);
  struct zram_stats s = stats (z);
  CHECK (s.notify_free == 2);
  memcpy (map, "........", 8);
  CHECK (zram_extents (z, 8 * PAGE, 0, collect, map) == 0);
  CHECK (strcmp (map, "DzzDzzzz") == 0);
  /* Extents start at offset and end at offset+count exactly. */
  struct run runs[4];
  struct runs rs = { runs, 0, 4 };
  CHECK (zram_extents (z, 10, 3 * PAGE + 5, record, &rs) == 0);
  CHECK (rs.n == 1 && runs[0].offset == 3 * PAGE + 5 && runs[0].length == 10 &&
         runs[0].type == ZRAM_EXTENT_DATA);

  /* Discarding everything frees every object. */
  CHECK (zram_discard (z, 8 * PAGE, 0) == 0);
  s = stats (z);
  CHECK (s.orig_data_size == 0 && s.compr_data_size == 0 && s.same_pages == 0);
  CHECK (zram_read (z, r, 8 * PAGE, 0) == 0);
  for (size_t i = 0; i < sizeof r; ++i) CHECK (r[i] == 0);
  zram_destroy (z);
}

static void
test_mem_limit (void)
{
  struct zram *z = make (ZCOMP_LZ4, NPAGES);
  unsigned char w[PAGE], r[PAGE], old[PAGE];

  fill_text (old, PAGE, 9);
  CHECK (zram_write (z, old, PAGE, 0) == 0);
  zram_set_mem_limit (z, 1);             /* below what is used already */
  fill_random (w, PAGE, 10);
  errno = 0;
  CHECK (zram_write (z, w, PAGE, 0) == -1 && errno == ENOSPC);
  /* partial, into an empty page: an object of a class with no span yet */
  CHECK (zram_write (z, w, 10, 2 * PAGE + 5) == -1 && errno == ENOSPC);
  CHECK (zram_read (z, r, PAGE, 0) == 0 && memcmp (r, old, PAGE) == 0);
  struct zram_stats s = stats (z);
  CHECK (s.failed_writes == 2 && s.mem_limit == 1);
  /* Same-filled pages need no memory and still succeed. */
  memset (w, 0, PAGE);
  CHECK (zram_write (z, w, PAGE, PAGE) == 0);
  zram_set_mem_limit (z, 0);
  fill_random (w, PAGE, 11);
  CHECK (zram_write (z, w, PAGE, 0) == 0);
  CHECK (stats (z).mem_used_max >= PAGE);
  zram_destroy (z);
}

/* The limit is a hard cap on mem_used_total: refused writes leave it, and
 * mem_used_max, at or below the limit (cases 05 and 12).
 */
static void
test_mem_limit_hard_cap (void)
{
  const uint64_t limit = 64 * 1024;
  struct zram *z = make (ZCOMP_LZ4, 256);
  unsigned char w[PAGE];
  struct zram_stats s;
  int i, refused = 0;

  zram_set_mem_limit (z, limit);
  for (i = 0; i < 256; ++i) {
    fill_random (w, PAGE, 1000 + i);
    errno = 0;
    if (zram_write (z, w, PAGE, (uint64_t) i * PAGE) == -1) {
      CHECK (errno == ENOSPC);
      refused++;
    }
    s = stats (z);
    CHECK (s.mem_used_total <= limit && s.mem_used_max <= limit);
  }
  /* 64 KiB holds at most 16 raw pages. */
  CHECK (refused >= 256 - 16);
  for (i = 0; i < 256; ++i) {
    unsigned char r[PAGE];
    CHECK (zram_read (z, r, PAGE, (uint64_t) i * PAGE) == 0);
    fill_random (w, PAGE, 1000 + i);
    CHECK (memcmp (r, w, PAGE) == 0 || (r[0] == 0 && r[PAGE - 1] == 0));
  }
  zram_destroy (z);
}

/* At the limit, what a trim frees is room for new pages of any size: a
 * pool may keep the freed memory for the class it came from, but must not
 * refuse another class's page while it holds it.  (A user found that swap
 * at the limit kept failing after discards until someone compacted.)
 */
static void
test_trim_makes_room_at_limit (void)
{
  struct zram *z = make (ZCOMP_LZ4, 256);
  unsigned char w[PAGE];
  struct zram_stats s;
  int i;

  for (i = 0; i < 64; ++i) {
    fill_random (w, PAGE, 500 + i);     /* huge: a page each */
    CHECK (zram_write (z, w, PAGE, (uint64_t) i * PAGE) == 0);
  }
  s = stats (z);
  zram_set_mem_limit (z, s.mem_used_total);
  fill_text (w, PAGE, 7);               /* compresses: another class */
  errno = 0;
  CHECK (zram_write (z, w, PAGE, 100 * PAGE) == -1 && errno == ENOSPC);
  /* Nine whole pages freed: room for a span of any class (at most 8
   * pages), so the text page fits, without a compaction.
   */
  CHECK (zram_trim (z, 9 * PAGE, 0) == 0);
  EXPECT (zram_write (z, w, PAGE, 100 * PAGE) == 0,
          "pool=%s: a text page after trimming 9 pages at the limit: %m",
          zpool_kind_name (kind));
  s = stats (z);
  CHECK (s.mem_used_total <= s.mem_limit && s.mem_used_max <= s.mem_limit);
  zram_destroy (z);
}

/* Freeing needs no memory: at the limit, trim with unaligned ends frees
 * its whole pages, and write-zeroes frees its whole pages before it tries
 * (and may fail) to rewrite the ends.
 */
static void
test_free_at_limit (void)
{
  struct zram *z = make (ZCOMP_LZ4, 32);
  unsigned char w[10 * PAGE], r[10 * PAGE];
  struct zram_stats s;

  /* Pages 0 and 9 incompressible, 1-8 text. */
  fill_random (w, PAGE, 77);
  fill_text (w + PAGE, 8 * PAGE, 78);
  fill_random (w + 9 * PAGE, PAGE, 79);
  CHECK (zram_write (z, w, sizeof w, 0) == 0);
  CHECK (zram_write (z, w, sizeof w, 16 * PAGE) == 0);
  zram_set_mem_limit (z, 1);             /* nothing more may be taken */

  /* Trim [100, 9 pages + 100): whole pages 1-8 freed, the ends untouched. */
  CHECK (zram_trim (z, 9 * PAGE, 100) == 0);
  s = stats (z);
  CHECK (s.notify_free == 8 && s.failed_writes == 0);
  CHECK (zram_read (z, r, sizeof r, 0) == 0);
  CHECK (memcmp (r, w, PAGE) == 0 && memcmp (r + 9 * PAGE, w + 9 * PAGE, PAGE) == 0);
  for (size_t i = PAGE; i < 9 * PAGE; ++i) CHECK (r[i] == 0);
  /* Trimming less than a page frees nothing and changes nothing. */
  CHECK (zram_trim (z, 100, 5) == 0 && zram_trim (z, 0, 32 * PAGE) == 0);
  CHECK (zram_read (z, r, PAGE, 0) == 0 && memcmp (r, w, PAGE) == 0);

  /* Write-zeroes of the same range at 16: the ends cannot be rewritten
   * (new objects of classes with no room), but the whole pages are freed
   * first, and the ends keep their content.
   */
  errno = 0;
  CHECK (zram_discard (z, 9 * PAGE, 16 * PAGE + 100) == -1 && errno == ENOSPC);
  s = stats (z);
  CHECK (s.notify_free == 16 && s.failed_writes == 1);
  CHECK (zram_read (z, r, sizeof r, 16 * PAGE) == 0);
  CHECK (memcmp (r, w, PAGE) == 0 && memcmp (r + 9 * PAGE, w + 9 * PAGE, PAGE) == 0);
  for (size_t i = PAGE; i < 9 * PAGE; ++i) CHECK (r[i] == 0);
  CHECK (s.mem_used_total <= s.mem_used_max);

  /* Ends that read as zeroes already need nothing: this one succeeds. */
  CHECK (zram_discard (z, 3 * PAGE, 16 * PAGE + PAGE + 7) == 0);

  /* Without the limit the ends are zeroed. */
  zram_set_mem_limit (z, 0);
  CHECK (zram_discard (z, 9 * PAGE, 16 * PAGE + 100) == 0);
  memset (w + 100, 0, 9 * PAGE);
  CHECK (zram_read (z, r, sizeof r, 16 * PAGE) == 0 && memcmp (r, w, sizeof r) == 0);
  zram_destroy (z);
}

/* Extents of every edge: count 0 anywhere up to the end (no run, no slot
 * loaded: ASan sees a load one slot past the table), odd offsets and
 * lengths, the last byte; runs are clipped to the request, contiguous,
 * alternate in type and match a model.
 */
static void
test_extents_edges (void)
{
  const uint64_t pages = 3 * 256 + 5;    /* several table groups, a ragged end */
  const uint64_t size = pages * PAGE;
  struct zram *z = make (ZCOMP_LZ4, pages);
  static char model[3 * 256 + 5];
  unsigned char w[PAGE];
  struct run runs[1024];
  struct runs rs = { runs, 0, 1024 };
  unsigned long long seed = 4242;

  memset (model, 'z', sizeof model);
  fill_text (w, PAGE, 3);
  /* Data at the first and last page, a group boundary, and a few random. */
  const uint64_t data[] = { 0, 255, 256, 511, 600, pages - 1 };
  for (size_t i = 0; i < sizeof data / sizeof data[0]; ++i) {
    CHECK (zram_write (z, w, PAGE, data[i] * PAGE) == 0);
    model[data[i]] = 'D';
  }

  CHECK (zram_extents (z, 0, size, record, &rs) == 0 && rs.n == 0);
  /* Every data call with count 0 at the very end is valid and empty. */
  CHECK (zram_read (z, w, 0, size) == 0 && zram_write (z, w, 0, size) == 0);
  CHECK (zram_discard (z, 0, size) == 0 && zram_trim (z, 0, size) == 0);
  CHECK (zram_read (z, w, 0, size + 1) == -1 && errno == EINVAL);
  fill_text (w, PAGE, 3);
  CHECK (zram_extents (z, 0, 0, record, &rs) == 0 && rs.n == 0);
  CHECK (zram_extents (z, 0, size - 1, record, &rs) == 0 && rs.n == 0);
  CHECK (zram_extents (z, 1, size, record, &rs) == -1 && errno == EINVAL);
  CHECK (zram_extents (z, 0, size + 1, record, &rs) == -1 && errno == EINVAL);
  CHECK (zram_extents (z, UINT32_MAX, 1, record, &rs) == -1 && errno == EINVAL);
  CHECK (zram_extents (z, 1, size - 1, record, &rs) == 0 && rs.n == 1);
  CHECK (runs[0].offset == size - 1 && runs[0].length == 1 &&
         runs[0].type == ZRAM_EXTENT_DATA);

  for (int k = 0; k < 3000; ++k) {
    uint64_t off = test_rand (&seed) % size;
    uint64_t count = 1 + test_rand (&seed) % (k % 3 ? 3 * PAGE : size - off);
    if (count > size - off) count = size - off;
    if (k % 7 == 0) off &= ~(uint64_t) (PAGE - 1);
    if (count > size - off) count = size - off;
    rs.n = 0;
    CHECK (zram_extents (z, count, off, record, &rs) == 0);
    CHECK (rs.n >= 1 && runs[0].offset == off);
    uint64_t pos = off;
    for (size_t i = 0; i < rs.n; ++i) {
      CHECK (runs[i].offset == pos && runs[i].length > 0);
      CHECK (i == 0 || runs[i].type != runs[i - 1].type);
      for (uint64_t b = pos; b < pos + runs[i].length; b += PAGE - b % PAGE)
        CHECK (model[b / PAGE] == (runs[i].type == ZRAM_EXTENT_DATA ? 'D' : 'z'));
      pos += runs[i].length;
    }
    CHECK (pos == off + count);
  }
  zram_destroy (z);
}

static void
test_reset (void)
{
  struct zram *z = make (ZCOMP_LZ4, NPAGES);
  unsigned char w[PAGE], r[PAGE];
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_ZSTD,
                           .level = 5, .pool = kind };

  fill_text (w, PAGE, 12);
  CHECK (zram_write (z, w, PAGE, 0) == 0);
  CHECK (zram_open (z) == 0);
  errno = 0;
  CHECK (zram_reset (z, false, NULL) == -1 && errno == EBUSY);
  CHECK (zram_read (z, r, PAGE, 0) == 0 && memcmp (r, w, PAGE) == 0);
  c.level = 99;
  CHECK (zram_reset (z, true, &c) == -1 && errno == EINVAL);   /* bad level */
  CHECK (zram_read (z, r, PAGE, 0) == 0 && memcmp (r, w, PAGE) == 0);
  c.level = 5;
  c.disksize = PAGE;
  CHECK (zram_reset (z, true, &c) == -1 && errno == EINVAL);   /* size fixed */
  c.disksize = NPAGES * PAGE;
  CHECK (zram_reset (z, true, &c) == 0);
  CHECK (zram_read (z, r, PAGE, 0) == 0 && r[0] == 0 && r[PAGE - 1] == 0);
  struct zram_stats s = stats (z);
  CHECK (s.algo == ZCOMP_ZSTD && s.level == 5 && s.orig_data_size == 0);
  CHECK (s.openers == 1 && s.initialised);
  zram_close (z);
  CHECK (zram_reset (z, false, NULL) == 0);
  CHECK (stats (z).algo == ZCOMP_ZSTD);  /* kept across a plain reset */
  CHECK (zram_open (z) == 0);
  zram_close (z);
  CHECK (zram_compact (z) >= 0);
  zram_destroy (z);
}

/* Random operations against a byte model, reproducible from the seed. */
static void
test_model (unsigned long long seed)
{
  const size_t size = 32 * PAGE;
  struct zram *z = make (ZCOMP_LZ4, 32);
  unsigned char *model = calloc (1, size), *buf = malloc (size);

  CHECK (model && buf);
  for (int i = 0; i < 3000; ++i) {
    size_t off = test_rand (&seed) % size;
    size_t n = 1 + test_rand (&seed) % (i % 4 == 0 ? size - off : PAGE);
    if (n > size - off) n = size - off;
    switch (test_rand (&seed) % 6) {
    case 0: case 1:
      fill_text (buf, n, seed);
      CHECK (zram_write (z, buf, n, off) == 0);
      memcpy (model + off, buf, n);
      break;
    case 2:
      if (test_rand (&seed) % 2) memset (buf, test_rand (&seed) & 0xff, n);
      else fill_random (buf, n, seed);
      CHECK (zram_write (z, buf, n, off) == 0);
      memcpy (model + off, buf, n);
      break;
    case 3:
      CHECK (zram_discard (z, n, off) == 0);
      memset (model + off, 0, n);
      break;
    case 4:
      CHECK (zram_read (z, buf, n, off) == 0);
      CHECK (memcmp (buf, model + off, n) == 0);
      break;
    case 5: {
      /* Trim: whole pages read as zeroes, partial ends are left alone. */
      size_t first = (off + PAGE - 1) / PAGE * PAGE, end = (off + n) / PAGE * PAGE;
      CHECK (zram_trim (z, n, off) == 0);
      if (first < end)
        memset (model + first, 0, end - first);
      break;
    }
    }
    if (i % 500 == 0 && kind == ZPOOL_ZS)
      CHECK (zram_compact (z) >= 0);
  }
  CHECK (zram_read (z, buf, size, 0) == 0 && memcmp (buf, model, size) == 0);
  free (model);
  free (buf);
  zram_destroy (z);
}

/* 8 threads write disjoint byte ranges of the same pages; nothing is lost. */
#define WRITERS 8
static struct zram *shared;

static void *
sub_page_writer (void *arg)
{
  uintptr_t id = (uintptr_t) arg;
  unsigned char b[PAGE / WRITERS];

  for (int round = 0; round < 200; ++round)
    for (uint64_t page = 0; page < 4; ++page) {
      memset (b, (int) (id * 16 + round % 16 + 1), sizeof b);
      CHECK (zram_write (shared, b, sizeof b, page * PAGE + id * sizeof b) == 0);
    }
  return NULL;
}

static void
test_concurrent_sub_page (void)
{
  pthread_t t[WRITERS];
  unsigned char r[4 * PAGE];

  shared = make (ZCOMP_LZ4, 4);
  for (uintptr_t i = 0; i < WRITERS; ++i)
    CHECK (pthread_create (&t[i], NULL, sub_page_writer, (void *) i) == 0);
  for (int i = 0; i < WRITERS; ++i)
    pthread_join (t[i], NULL);
  CHECK (zram_read (shared, r, sizeof r, 0) == 0);
  for (uint64_t page = 0; page < 4; ++page)
    for (size_t id = 0; id < WRITERS; ++id)
      for (size_t k = 0; k < PAGE / WRITERS; ++k)
        CHECK (r[page * PAGE + id * (PAGE / WRITERS) + k] == id * 16 + 199 % 16 + 1);
  zram_destroy (shared);
}

/* Lock-free peeks under races: threads write whole pages (each a pattern
 * that names itself), zero, trim and partially zero-write them, read them
 * and map them, on pages either side of a table-group boundary.  Every
 * read must see a whole page that one writer wrote, or zeroes; every map
 * must be contiguous.  Run it under TSan for the memory-ordering claims.
 */
#define PEEK_THREADS 4
#define PEEK_PAGES 8
#define PEEK_BASE (256 - PEEK_PAGES / 2)   /* pages 252..259: groups 0 and 1 */

static void
peek_pattern (unsigned char *p, uint64_t tag)
{
  for (size_t i = 0; i < PAGE; i += 8) {
    uint64_t w = tag * 0x9e3779b97f4a7c15ULL + i;
    memcpy (p + i, &w, 8);
  }
  memcpy (p, &tag, 8);
}

static int
peek_check_run (void *opaque, uint64_t offset, uint64_t length,
                enum zram_extent_type t)
{
  uint64_t *pos = opaque;

  (void) t;
  CHECK (offset == *pos && length > 0);
  *pos += length;
  return 0;
}

static void *
peek_worker (void *arg)
{
  unsigned long long seed = 77 + (uintptr_t) arg;
  unsigned char w[PAGE], r[PAGE], expect[PAGE];

  for (int i = 0; i < 4000; ++i) {
    uint64_t page = PEEK_BASE + test_rand (&seed) % PEEK_PAGES;
    uint64_t off = page * PAGE, tag, pos;

    switch (test_rand (&seed) % 6) {
    case 0:
      tag = (uintptr_t) arg << 32 | (uint64_t) i << 1 | 1;  /* never 0 */
      peek_pattern (w, tag);
      CHECK (zram_write (shared, w, PAGE, off) == 0);
      break;
    case 1:
      CHECK (zram_trim (shared, PAGE, off) == 0);
      break;
    case 2:
      memset (w, 0, PAGE);
      CHECK (zram_write (shared, w, PAGE, off) == 0);   /* SAME 0 */
      break;
    case 3:
      /* Zeroing part of a page reading as zeroes changes nothing; of a
       * pattern page, makes it neither: only ever on the upper page so
       * reads of the others stay checkable.
       */
      if (page == PEEK_BASE + PEEK_PAGES - 1)
        CHECK (zram_discard (shared, 100, off + 7) == 0);
      break;
    case 4:
      CHECK (zram_read (shared, r, PAGE, off) == 0);
      if (page == PEEK_BASE + PEEK_PAGES - 1)
        break;
      memcpy (&tag, r, 8);
      if (tag == 0)
        for (size_t k = 0; k < PAGE; ++k) CHECK (r[k] == 0);
      else {
        peek_pattern (expect, tag);
        CHECK (memcmp (r, expect, PAGE) == 0);
      }
      break;
    case 5:
      pos = PEEK_BASE * PAGE + 3;
      CHECK (zram_extents (shared, PEEK_PAGES * PAGE - 5, pos, peek_check_run,
                           &pos) == 0);
      CHECK (pos == (PEEK_BASE + PEEK_PAGES) * PAGE - 2);
      break;
    }
  }
  return NULL;
}

static void
test_concurrent_peek (void)
{
  pthread_t t[PEEK_THREADS];

  shared = make (ZCOMP_LZ4, 1024);
  for (uintptr_t i = 0; i < PEEK_THREADS; ++i)
    CHECK (pthread_create (&t[i], NULL, peek_worker, (void *) (i + 1)) == 0);
  for (int i = 0; i < PEEK_THREADS; ++i)
    pthread_join (t[i], NULL);
  zram_destroy (shared);
}

int
main (void)
{
  static const enum zpool_kind kinds[] = { ZPOOL_MALLOC, ZPOOL_ZS };

  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
    struct zpool *probe = zpool_create (kinds[k]);
    kind = kinds[k];
    if (probe == NULL) {
      printf ("test-zram-core: pool=%s not available, skipped\n",
              zpool_kind_name (kind));
      continue;
    }
    zpool_destroy (probe);
    test_config ();
    test_basic (ZCOMP_LZ4);
    test_basic (ZCOMP_LZ4HC);
    test_basic (ZCOMP_ZSTD);
    test_partial ();
    test_discard_and_extents ();
    test_extents_edges ();
    test_mem_limit ();
    test_mem_limit_hard_cap ();
    test_free_at_limit ();
    test_trim_makes_room_at_limit ();
    test_reset ();
    test_model (1);
    test_model (0x9e3779b97f4a7c15ULL);
    test_concurrent_sub_page ();
    test_concurrent_peek ();
    printf ("test-zram-core: pool=%s ok\n", zpool_kind_name (kind));
  }
  return check_failures ? 1 : 0;
}
