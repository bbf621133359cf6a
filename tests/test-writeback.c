/* Unit test of writeback in the core (no nbdkit): every type selects the
 * right pages; every page round-trips after writeback; writes, partial
 * writes, trims and write-zeroes of written-back pages give their blocks
 * back (and the file its space); bd_stat and the other statistics add up
 * against a model; max_pages batches; a full store stops with ENOSPC and
 * loses nothing; a reset gives every block back; a store that fails a
 * read, or returns other bytes than were written (flipped, zeroed,
 * stale), gives EIO, counted, never other bytes; a store that fails
 * writes keeps those pages in RAM; recompression and idle marking leave
 * written-back pages alone; bad requests are refused.  Runs once per
 * allocator.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#define _GNU_SOURCE             /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE ZRAM_PAGE_SIZE
#define NPAGES 256

static enum zpool_kind kind;
static char dir[256];
static unsigned char model[NPAGES][PAGE];

/* Page p of generation g: every 16th random (huge), every 13th
 * same-filled, the rest a phrase with some noise.
 */
static void
make_page (unsigned char *buf, uint32_t p, uint32_t g)
{
  static const char phrase[] = "cold pages, written back to a file; ";
  unsigned long long r = ((unsigned long long) p << 32 | g) * 0x9e3779b97f4a7c15ULL + 1;
  unsigned noise = p % 16 == 0 ? 16 : (unsigned) (test_rand (&r) % 5);

  if (p % 13 == 5) {
    memset (buf, (int) (p + g), PAGE);
    return;
  }
  for (unsigned i = 0; i < PAGE; i += 16) {
    if (test_rand (&r) % 16 < noise) {
      unsigned long long a = test_rand (&r), b = test_rand (&r);
      memcpy (buf + i, &a, 8);
      memcpy (buf + i + 8, &b, 8);
    }
    else
      for (unsigned j = 0; j < 16; j++)
        buf[i + j] = phrase[(i + j + p) % (sizeof phrase - 1)];
  }
}

static bool is_same (uint32_t p) { return p % 13 == 5; }
static bool is_huge (uint32_t p) { return p % 16 == 0 && !is_same (p); }

static char store_path[512];

/* A device of NPAGES with a store of blocks blocks (0 = as many as pages)
 * on a sparse file; *store gets the store (the device owns it).
 */
static struct zram *
make (uint64_t blocks, struct backing **store, unsigned nr_recomp)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .algo = ZCOMP_LZ4,
                           .pool = kind, .nr_recomp = nr_recomp };
  char err[BACKING_ERR_MAX];
  struct zram *z;
  int fd;

  c.recomp[0].algo = ZCOMP_ZSTD;
  snprintf (store_path, sizeof store_path, "%s/store", dir);
  fd = open (store_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0);
  close (fd);
  c.backing = backing_open (store_path, (blocks ? blocks : NPAGES) * PAGE,
                            err, sizeof err);
  if (c.backing == NULL) {
    fprintf (stderr, "%s\n", err);
    abort ();
  }
  *store = c.backing;
  z = zram_create (&c);
  CHECK (z != NULL);
  return z;
}

static void
fill (struct zram *z, uint32_t g)
{
  for (uint32_t p = 0; p < NPAGES; p++) {
    make_page (model[p], p, g);
    CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
  }
}

static void
verify (struct zram *z)
{
  unsigned char buf[PAGE];

  for (uint32_t p = 0; p < NPAGES; p++) {
    CHECK (zram_read (z, buf, PAGE, (uint64_t) p * PAGE) == 0);
    if (memcmp (buf, model[p], PAGE) != 0) {
      fprintf (stderr, "page %" PRIu32 " differs\n", p);
      abort ();
    }
  }
}

/* Whether dir's file system punches holes: the space checks need it. */
static bool can_punch = true;

static void
probe_punch (void)
{
  char path[512];
  static unsigned char buf[16 * PAGE];
  struct stat st;
  int fd;

  snprintf (path, sizeof path, "%s/probe", dir);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0);
  memset (buf, 1, sizeof buf);
  CHECK (pwrite (fd, buf, sizeof buf, 0) == (ssize_t) sizeof buf);
  CHECK (fsync (fd) == 0);
  can_punch = fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                         sizeof buf) == 0 &&
              fstat (fd, &st) == 0 && st.st_blocks * 512 < (off_t) sizeof buf;
  close (fd);
  unlink (path);
  if (!can_punch)
    printf ("note: %s does not punch holes: store space checks skipped\n", dir);
}

static uint64_t
file_bytes (void)
{
  struct stat st;

  CHECK (stat (store_path, &st) == 0);
  return (uint64_t) st.st_blocks * 512;
}

static int
wb (struct zram *z, enum zram_wb_type type, uint64_t max,
    struct zram_wb_result *res)
{
  struct zram_wb_req req = { .type = type, .max_pages = max };

  return zram_writeback (z, &req, res);
}

/* Statistics that must agree with each other and with the store. */
static void
check_stats (struct zram *z, struct backing *b, uint64_t expect_bd)
{
  struct zram_stats s;

  zram_get_stats (z, &s);
  EXPECT (s.bd_count == expect_bd, "bd_count %" PRIu64 ", expected %" PRIu64,
          s.bd_count, expect_bd);
  /* Packed: a block holds one object or more, and each object is one
   * page; a block with no live object is given back.
   */
  EXPECT (backing_used_blocks (b) <= s.bd_count &&
          (backing_used_blocks (b) > 0) == (s.bd_count > 0),
          "store has %" PRIu64 " blocks in use, bd_count %" PRIu64,
          backing_used_blocks (b), s.bd_count);
  EXPECT (s.bd_blocks_used == backing_used_blocks (b), "bd_blocks_used %"
          PRIu64, s.bd_blocks_used);
  EXPECT (s.bd_blocks == backing_nr_blocks (b), "bd_blocks");
}

static void
test_types_and_round_trip (void)
{
  struct zram_stats s, s0;
  struct zram_wb_result res;
  struct backing *b;
  struct zram *z = make (0, &b, 0);
  uint64_t huge = 0, same = 0, marked;

  for (uint32_t p = 0; p < NPAGES; p++) {
    huge += is_huge (p);
    same += is_same (p);
  }
  fill (z, 1);
  zram_get_stats (z, &s0);
  CHECK (s0.huge_pages == huge && s0.same_pages == same);

  /* Nothing idle, nothing incompressible yet: nothing to do. */
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0 && res.written == 0);
  CHECK (wb (z, ZRAM_WB_INCOMPRESSIBLE, 0, &res) == 0 && res.written == 0);
  check_stats (z, b, 0);

  /* huge: exactly the huge pages. */
  CHECK (wb (z, ZRAM_WB_HUGE, 0, &res) == 0);
  EXPECT (res.written == huge, "huge wrote %" PRIu64 ", expected %" PRIu64,
          res.written, huge);
  CHECK (res.next_index == NPAGES && res.raced == 0);
  zram_get_stats (z, &s);
  EXPECT (s.huge_pages == 0, "huge_pages %" PRIu64 " after writeback",
          s.huge_pages);
  EXPECT (s.orig_data_size == s0.orig_data_size, "orig_data_size changed");
  EXPECT (s.compr_data_size == s0.compr_data_size - huge * PAGE,
          "compr_data_size %" PRIu64 ", expected %" PRIu64,
          s.compr_data_size, s0.compr_data_size - huge * PAGE);
  EXPECT (s.bd_writes == huge, "bd_writes %" PRIu64, s.bd_writes);
  check_stats (z, b, huge);
  /* Raw pages take a block each. */
  EXPECT (backing_used_blocks (b) == huge, "%" PRIu64 " blocks for %" PRIu64
          " huge pages", backing_used_blocks (b), huge);
  verify (z);
  zram_get_stats (z, &s);
  EXPECT (s.bd_reads == huge, "bd_reads %" PRIu64 " after reading %" PRIu64
          " written-back pages", s.bd_reads, huge);
  EXPECT (file_bytes () >= huge * PAGE, "store file holds %" PRIu64 " bytes",
          file_bytes ());

  /* idle: every page with an object (the written-back ones are not
   * marked, and same-filled pages never are).
   */
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  EXPECT (marked == NPAGES - same - huge, "marked %" PRIu64, marked);
  CHECK (wb (z, ZRAM_WB_HUGE_IDLE, 0, &res) == 0 && res.written == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0);
  EXPECT (res.written == NPAGES - same - huge, "idle wrote %" PRIu64,
          res.written);
  zram_get_stats (z, &s);
  EXPECT (s.idle_pages == 0 && s.compr_data_size == 0 && s.huge_pages == 0,
          "idle %" PRIu64 " compr %" PRIu64, s.idle_pages, s.compr_data_size);
  EXPECT (s.orig_data_size == s0.orig_data_size, "orig_data_size changed");
  EXPECT (s.same_pages == same, "same_pages");
  check_stats (z, b, NPAGES - same);
  /* Compressed and packed: the compressible pages share blocks. */
  EXPECT (backing_used_blocks (b) < huge + (NPAGES - same - huge) / 2,
          "%" PRIu64 " blocks for %" PRIu64 " pages", backing_used_blocks (b),
          NPAGES - same);
  CHECK (zram_mark_idle (z, 0, &marked) == 0 && marked == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0 && res.written == 0 &&
         res.scanned == 0);
  verify (z);

  /* Change written-back pages every way there is. */
  {
    uint64_t bd = NPAGES - same, gone = 0;
    unsigned char buf[PAGE];

    for (uint32_t p = 0; p < NPAGES; p++) {
      if (is_same (p))
        continue;
      switch (p % 5) {
      case 0:                   /* whole-page write */
        make_page (model[p], p, 2);
        CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
        break;
      case 1:                   /* partial write: read-modify-write */
        memset (model[p] + 100, 0xab, 50);
        CHECK (zram_write (z, model[p] + 100, 50, (uint64_t) p * PAGE + 100) == 0);
        break;
      case 2:                   /* trim */
        memset (model[p], 0, PAGE);
        CHECK (zram_trim (z, PAGE, (uint64_t) p * PAGE) == 0);
        break;
      case 3:                   /* write-zeroes */
        memset (model[p], 0, PAGE);
        CHECK (zram_discard (z, PAGE, (uint64_t) p * PAGE) == 0);
        break;
      case 4:                   /* partial read: stays written back */
        CHECK (zram_read (z, buf, 10, (uint64_t) p * PAGE + 7) == 0);
        CHECK (memcmp (buf, model[p] + 7, 10) == 0);
        continue;
      }
      gone++;
    }
    check_stats (z, b, bd - gone);
    verify (z);
    /* Blocks given back wait for the background trim: run it. */
    CHECK (zram_trim_store (z) >= 0);
    EXPECT (!can_punch ||
            file_bytes () <= (backing_used_blocks (b) + 16) * PAGE,
            "store file %" PRIu64 " bytes with %" PRIu64 " blocks in use",
            file_bytes (), backing_used_blocks (b));
    zram_get_stats (z, &s);
    EXPECT (s.notify_free >= NPAGES / 5, "notify_free %" PRIu64, s.notify_free);
  }

  /* Trim everything: every block back, every counter 0, file empty. */
  CHECK (zram_trim (z, NPAGES * PAGE, 0) == 0);
  zram_get_stats (z, &s);
  EXPECT (s.orig_data_size == 0 && s.compr_data_size == 0 && s.bd_count == 0 &&
          s.same_pages == 0 && s.idle_pages == 0,
          "after trimming all: orig %" PRIu64 " bd_count %" PRIu64,
          s.orig_data_size, s.bd_count);
  check_stats (z, b, 0);
  CHECK (zram_trim_store (z) >= 0);
  EXPECT (!can_punch || file_bytes () <= 16 * PAGE, "store file keeps %" PRIu64 " bytes",
          file_bytes ());
  zram_destroy (z);
  unlink (store_path);
}

/* Recompression marks random pages incompressible; writeback type
 * incompressible takes exactly those; recompression leaves WB pages be.
 */
static void
test_incompressible (void)
{
  struct zram_recomp_req rq = { .type = ZRAM_RECOMP_HUGE };
  struct zram_recomp_result rr;
  struct zram_wb_result res;
  struct zram_stats s;
  struct backing *b;
  struct zram *z = make (0, &b, 1);
  uint64_t huge = 0, marked;

  for (uint32_t p = 0; p < NPAGES; p++)
    huge += is_huge (p);
  fill (z, 3);
  CHECK (zram_recompress (z, &rq, &rr) == 0);
  zram_get_stats (z, &s);
  CHECK (s.incompressible_pages == huge);
  CHECK (wb (z, ZRAM_WB_INCOMPRESSIBLE, 0, &res) == 0);
  EXPECT (res.written == huge, "incompressible wrote %" PRIu64, res.written);
  zram_get_stats (z, &s);
  EXPECT (s.incompressible_pages == 0, "incompressible_pages %" PRIu64,
          s.incompressible_pages);
  check_stats (z, b, huge);

  /* Recompression of everything idle skips the written-back pages. */
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  rq.type = ZRAM_RECOMP_IDLE;
  CHECK (zram_recompress (z, &rq, &rr) == 0);
  EXPECT (rr.attempted == marked, "recompression attempted %" PRIu64
          " of %" PRIu64 " idle pages", rr.attempted, marked);
  verify (z);
  check_stats (z, b, huge);
  zram_destroy (z);
  unlink (store_path);
}

static void
test_batches_and_full_store (void)
{
  struct zram_wb_req req = { .type = ZRAM_WB_IDLE, .max_pages = 7 };
  struct zram_wb_result res;
  struct zram_stats s;
  struct backing *b;
  struct zram *z = make (0, &b, 0);
  uint64_t total = 0, marked;

  fill (z, 4);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  /* Batches of 7 continuing at next_index cover every page once. */
  for (;;) {
    CHECK (zram_writeback (z, &req, &res) == 0);
    CHECK (res.written <= 7);
    total += res.written;
    if (res.next_index == NPAGES)
      break;
    CHECK (res.written == 7);
    req.start_index = res.next_index;
  }
  EXPECT (total == marked, "batches wrote %" PRIu64 " of %" PRIu64, total,
          marked);
  check_stats (z, b, marked);
  verify (z);
  zram_destroy (z);
  unlink (store_path);

  /* A store of 10 blocks: 10 blocks' worth go, then ENOSPC; nothing is
   * lost, and next_index is the first page left in RAM.
   */
  z = make (10, &b, 0);
  fill (z, 5);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  errno = 0;
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == -1 && errno == ENOSPC);
  EXPECT (res.written >= 10 && res.next_index < NPAGES,
          "written %" PRIu64 " next_index %" PRIu64, res.written,
          res.next_index);
  total = res.written;
  zram_get_stats (z, &s);
  EXPECT (s.idle_pages == marked - total, "idle_pages %" PRIu64, s.idle_pages);
  EXPECT (backing_used_blocks (b) == 10, "%" PRIu64 " blocks used",
          backing_used_blocks (b));
  check_stats (z, b, total);
  {
    struct zram_wb_req from = { .type = ZRAM_WB_IDLE,
                                .start_index = res.next_index,
                                .end_index = res.next_index + 1 };

    /* The page at next_index was selected and is still in RAM. */
    CHECK (zram_writeback (z, &from, &res) == -1 && errno == ENOSPC &&
           res.written == 0 && res.next_index == from.start_index);
  }
  verify (z);
  /* Freeing a whole block makes room for one block: the first written
   * pages are in the first blocks; trim them all.
   */
  CHECK (zram_trim (z, NPAGES * PAGE / 2, 0) == 0);
  memset (model, 0, NPAGES / 2 * PAGE);
  zram_get_stats (z, &s);
  CHECK (backing_used_blocks (b) < 10);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);  /* verify's reads cleared it */
  {
    int r = wb (z, ZRAM_WB_IDLE, 0, &res);
    EXPECT (r == -1 && errno == ENOSPC && res.written > 0,
            "r %d errno %d written %" PRIu64 " raced %" PRIu64, r, errno,
            res.written, res.raced);
  }
  EXPECT (backing_used_blocks (b) == 10, "%" PRIu64 " blocks used",
          backing_used_blocks (b));
  zram_get_stats (z, &s);
  check_stats (z, b, s.bd_count);
  verify (z);

  /* A reset gives every block back and the file its space. */
  CHECK (zram_reset (z, true, NULL) == 0);
  check_stats (z, b, 0);
  zram_get_stats (z, &s);
  CHECK (s.bd_writes == 0 && s.bd_reads == 0);
  EXPECT (!can_punch || file_bytes () <= 16 * PAGE, "after reset the store keeps %" PRIu64
          " bytes", file_bytes ());
  memset (model, 0, sizeof model);
  verify (z);
  /* And writeback works in the new state. */
  fill (z, 6);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == -1 && errno == ENOSPC &&
         res.written >= 10);
  CHECK (backing_used_blocks (b) == 10);
  verify (z);
  zram_destroy (z);
  EXPECT (!can_punch || file_bytes () <= 16 * PAGE, "after destroy the store keeps %" PRIu64
          " bytes", file_bytes ());
  unlink (store_path);
}

/* A store that fails a read: EIO, counted, never wrong bytes. */
static void
test_store_failure (void)
{
  struct zram_wb_result res;
  struct zram_stats s;
  struct backing *b;
  struct zram *z = make (0, &b, 0);
  unsigned char buf[PAGE];

  fill (z, 7);
  CHECK (wb (z, ZRAM_WB_HUGE, 0, &res) == 0 && res.written > 0);
  CHECK (truncate (store_path, 0) == 0);
  errno = 0;
  CHECK (zram_read (z, buf, PAGE, 0) == -1 && errno == EIO);  /* page 0: huge */
  zram_get_stats (z, &s);
  EXPECT (s.failed_reads == 1, "failed_reads %" PRIu64, s.failed_reads);
  /* Other pages still read; the failed one can be rewritten. */
  CHECK (zram_read (z, buf, PAGE, PAGE) == 0 && memcmp (buf, model[1], PAGE) == 0);
  CHECK (zram_write (z, model[0], PAGE, 0) == 0);
  CHECK (zram_read (z, buf, PAGE, 0) == 0 && memcmp (buf, model[0], PAGE) == 0);
  zram_destroy (z);
  unlink (store_path);
}

/* A store that fails writes past its first blocks (RLIMIT_FSIZE: pwrite
 * fails with EFBIG beyond it): the blocks that could be written hold
 * their pages, the pages of the others stay in RAM, nothing is lost, and
 * a store that works again takes them.
 */
static void
test_write_failure (void)
{
  struct rlimit old, lim;
  struct zram_wb_result res;
  struct zram_stats s;
  struct backing *b;
  struct zram *z = make (0, &b, 0);
  uint64_t marked;

  fill (z, 9);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  CHECK (getrlimit (RLIMIT_FSIZE, &old) == 0);
  signal (SIGXFSZ, SIG_IGN);
  lim = old;
  lim.rlim_cur = 4 * PAGE;
  CHECK (setrlimit (RLIMIT_FSIZE, &lim) == 0);
  errno = 0;
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == -1 && errno == EIO);
  CHECK (setrlimit (RLIMIT_FSIZE, &old) == 0);
  zram_get_stats (z, &s);
  EXPECT (res.written > 0 && res.written < marked && s.bd_count == res.written,
          "written %" PRIu64 " of %" PRIu64 ", bd_count %" PRIu64,
          res.written, marked, s.bd_count);
  EXPECT (backing_used_blocks (b) <= 4, "%" PRIu64 " blocks used",
          backing_used_blocks (b));
  EXPECT (s.idle_pages == marked - res.written, "idle_pages %" PRIu64
          ", expected %" PRIu64, s.idle_pages, marked - res.written);
  check_stats (z, b, res.written);
  verify (z);
  /* The store works again: the rest goes (verify's reads ended idleness). */
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0);
  zram_get_stats (z, &s);
  EXPECT (s.compr_data_size == 0, "compr_data_size %" PRIu64,
          s.compr_data_size);
  check_stats (z, b, s.bd_count);
  verify (z);
  zram_destroy (z);
  unlink (store_path);
}

/* Read every page: each must read as the model or fail with EIO (never
 * other bytes); returns the EIOs and checks that the checksum errors
 * counted the same number.
 */
static uint64_t
read_all_or_eio (struct zram *z)
{
  struct zram_stats s0, s;
  unsigned char buf[PAGE];
  uint64_t eio = 0;

  zram_get_stats (z, &s0);
  for (uint32_t p = 0; p < NPAGES; p++) {
    errno = 0;
    if (zram_read (z, buf, PAGE, (uint64_t) p * PAGE) == -1) {
      EXPECT (errno == EIO, "page %" PRIu32 ": errno %d", p, errno);
      eio++;
    }
    else if (memcmp (buf, model[p], PAGE) != 0) {
      fprintf (stderr, "page %" PRIu32 " served other bytes\n", p);
      abort ();
    }
  }
  zram_get_stats (z, &s);
  EXPECT (s.bd_checksum_errors - s0.bd_checksum_errors == eio,
          "%" PRIu64 " reads failed, %" PRIu64 " checksum errors counted", eio,
          s.bd_checksum_errors - s0.bd_checksum_errors);
  return eio;
}

/* A store that returns other bytes than were written: a flipped byte,
 * zeroes (a hole), the stale contents of an earlier life of its blocks.
 * Every such read fails with EIO and is counted; none serves the bytes;
 * rewriting the page heals it.
 */
static void
test_corruption (void)
{
  struct zram_wb_result res;
  struct zram_stats s;
  struct backing *b;
  struct zram *z = make (0, &b, 0);
  uint64_t marked, wbd, eio, size;
  unsigned char *snap;
  int fd;

  fill (z, 11);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0 && res.written > 0);
  wbd = res.written;
  CHECK (read_all_or_eio (z) == 0);

  /* Stale: keep the store as it is, write every page anew and back
   * again (reusing the freed blocks), then put the old contents back.
   */
  fd = open (store_path, O_RDWR);
  CHECK (fd >= 0);
  size = NPAGES * PAGE;
  snap = malloc (size);
  CHECK (snap != NULL);
  CHECK (pread (fd, snap, size, 0) == (ssize_t) size);
  fill (z, 12);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0 && res.written == wbd);
  CHECK (read_all_or_eio (z) == 0);
  CHECK (pwrite (fd, snap, size, 0) == (ssize_t) size);
  eio = read_all_or_eio (z);
  EXPECT (eio == wbd, "stale store: %" PRIu64 " of %" PRIu64
          " written-back pages failed", eio, wbd);

  /* A flipped byte in every block (the free tail of a packed block
   * counts as much as the object's bytes).
   */
  fill (z, 13);
  CHECK (zram_mark_idle (z, 0, &marked) == 0);
  CHECK (wb (z, ZRAM_WB_IDLE, 0, &res) == 0 && res.written == wbd);
  CHECK (pread (fd, snap, size, 0) == (ssize_t) size);
  for (uint64_t off = 0; off < size; off += PAGE)
    snap[off + (off / PAGE * 37) % PAGE] ^= 0x40;
  CHECK (pwrite (fd, snap, size, 0) == (ssize_t) size);
  eio = read_all_or_eio (z);
  EXPECT (eio == wbd, "flipped bytes: %" PRIu64 " of %" PRIu64 " failed",
          eio, wbd);

  /* Zeroes: the store lost everything. */
  memset (snap, 0, size);
  CHECK (pwrite (fd, snap, size, 0) == (ssize_t) size);
  eio = read_all_or_eio (z);
  EXPECT (eio == wbd, "zeroed store: %" PRIu64 " of %" PRIu64 " failed",
          eio, wbd);

  /* Partial writes fail too, and change nothing; whole writes heal. */
  errno = 0;
  CHECK (zram_write (z, "x", 1, 0) == -1 && errno == EIO);
  fill (z, 14);
  CHECK (read_all_or_eio (z) == 0);
  zram_get_stats (z, &s);
  EXPECT (s.bd_count == 0, "bd_count %" PRIu64 " after rewriting all",
          s.bd_count);
  EXPECT (backing_used_blocks (b) == 0, "%" PRIu64 " blocks still used",
          backing_used_blocks (b));
  free (snap);
  close (fd);
  zram_destroy (z);
  unlink (store_path);
}

/* One hot page: a thread rewrites and rereads it without pause while
 * writeback takes it again and again, so the write often lands between
 * writeback's snapshot and its install.  The write must win every time
 * (the page reads as last written), and the raced blocks go back.
 */
static bool hot_stop;

static void *
hot_writer (void *arg)
{
  struct zram *z = arg;
  unsigned char buf[PAGE];
  uint32_t g = 100;

  while (!__atomic_load_n (&hot_stop, __ATOMIC_ACQUIRE)) {
    make_page (model[0], 0, ++g);     /* page 0: random, so huge */
    CHECK (zram_write (z, model[0], PAGE, 0) == 0);
    CHECK (zram_read (z, buf, PAGE, 0) == 0);
    CHECK (memcmp (buf, model[0], PAGE) == 0);
  }
  return NULL;
}

static void
test_hot_page (void)
{
  struct zram_wb_req req = { .type = ZRAM_WB_HUGE, .end_index = 1 };
  struct zram_wb_result res;
  uint64_t written = 0, raced = 0;
  struct backing *b;
  struct zram *z = make (0, &b, 0);
  pthread_t th;
  double end = test_now () + 10;

  fill (z, 9);
  __atomic_store_n (&hot_stop, false, __ATOMIC_RELEASE);
  CHECK (pthread_create (&th, NULL, hot_writer, z) == 0);
  while (test_now () < end && (raced < 20 || written < 20)) {
    CHECK (zram_writeback (z, &req, &res) == 0);
    written += res.written;
    raced += res.raced;
  }
  __atomic_store_n (&hot_stop, true, __ATOMIC_RELEASE);
  CHECK (pthread_join (th, NULL) == 0);
  printf ("hot page: %" PRIu64 " written back, %" PRIu64 " raced\n",
          written, raced);
  EXPECT (raced > 0 && written > 0, "the race was not met (%" PRIu64
          " written, %" PRIu64 " raced)", written, raced);
  verify (z);
  {
    struct zram_stats s;

    zram_get_stats (z, &s);
    check_stats (z, b, s.bd_count);
    EXPECT (s.bd_count <= 1, "bd_count %" PRIu64 " for one hot page", s.bd_count);
    EXPECT (s.bd_writes == written + raced, "bd_writes %" PRIu64, s.bd_writes);
  }
  zram_destroy (z);
  unlink (store_path);
}

/* Post-processing walks run one at a time; a recompression with nowait
 * (the background policy's) is refused with EBUSY rather than wait while
 * a writeback runs, and runs when none does.
 */
static void *
wb_loop (void *arg)
{
  struct zram *z = arg;
  struct zram_wb_result res;
  struct zram_wb_req req = { .type = ZRAM_WB_IDLE };

  while (!__atomic_load_n (&hot_stop, __ATOMIC_ACQUIRE)) {
    CHECK (zram_mark_idle (z, 0, NULL) == 0);
    CHECK (zram_writeback (z, &req, &res) == 0);
    /* Bring the pages back into the pool for the next round. */
    for (uint32_t p = 0; p < NPAGES; p++)
      CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
  }
  return NULL;
}

static void
test_nowait (void)
{
  struct zram_recomp_req rq = { .type = ZRAM_RECOMP_HUGE, .nowait = true };
  struct zram_recomp_result rr;
  uint64_t busy = 0, ran = 0;
  struct backing *b;
  struct zram *z = make (0, &b, 1);
  double end = test_now () + 10;
  pthread_t th;

  fill (z, 10);
  CHECK (zram_recompress (z, &rq, &rr) == 0);   /* nobody else: runs */
  __atomic_store_n (&hot_stop, false, __ATOMIC_RELEASE);
  CHECK (pthread_create (&th, NULL, wb_loop, z) == 0);
  while (test_now () < end && busy == 0) {
    errno = 0;
    if (zram_recompress (z, &rq, &rr) == -1) {
      CHECK (errno == EBUSY && rr.attempted == 0 && rr.next_index == 0);
      busy++;
    }
    else
      ran++;
  }
  __atomic_store_n (&hot_stop, true, __ATOMIC_RELEASE);
  CHECK (pthread_join (th, NULL) == 0);
  printf ("nowait: %" PRIu64 " refused (EBUSY), %" PRIu64 " ran\n", busy, ran);
  EXPECT (busy > 0, "a recompression with nowait never met a writeback");
  verify (z);
  zram_destroy (z);
  unlink (store_path);
}

static void
test_refusals (void)
{
  struct zram_config c = { .disksize = NPAGES * PAGE, .pool = kind };
  struct zram_wb_req req = { .type = ZRAM_WB_IDLE };
  struct zram_wb_result res;
  struct backing *b;
  struct zram *z = zram_create (&c);

  CHECK (z != NULL);
  errno = 0;
  CHECK (zram_writeback (z, &req, &res) == -1 && errno == ENODEV);
  zram_destroy (z);

  z = make (0, &b, 0);
  fill (z, 8);
  req.type = 0;
  CHECK (zram_writeback (z, &req, &res) == -1 && errno == EINVAL);
  req.type = ZRAM_WB_COLD + 1;   /* past the last type */
  CHECK (zram_writeback (z, &req, &res) == -1 && errno == EINVAL);
  req.type = ZRAM_WB_HUGE;
  req.start_index = 10;
  req.end_index = 5;
  CHECK (zram_writeback (z, &req, &res) == -1 && errno == EINVAL);
  req.start_index = 0;
  req.end_index = NPAGES + 1;
  CHECK (zram_writeback (z, &req, &res) == -1 && errno == EINVAL);
  /* A stopped walk: refused at once, and works again once resumed. */
  req.end_index = 0;
  zram_stop_walks (z);
  errno = 0;
  CHECK (zram_writeback (z, &req, &res) == -1 && errno == ECANCELED &&
         res.written == 0);
  zram_resume_walks (z);
  check_stats (z, b, 0);
  CHECK (zram_writeback (z, &req, &res) == 0 && res.written > 0);
  check_stats (z, b, res.written);
  verify (z);
  zram_destroy (z);
  unlink (store_path);
}

int
main (void)
{
  const char *tmp = getenv ("TMPDIR");

  snprintf (dir, sizeof dir, "%s/test-writeback.XXXXXX",
            tmp && *tmp ? tmp : "/tmp");
  CHECK (mkdtemp (dir) != NULL);
  probe_punch ();
  for (int k = 0; k < 2; k++) {
    kind = k == 0 ? ZPOOL_ZS : ZPOOL_MALLOC;
    test_types_and_round_trip ();
    test_incompressible ();
    test_batches_and_full_store ();
    test_store_failure ();
    test_corruption ();
    test_write_failure ();
    test_hot_page ();
    test_nowait ();
    test_refusals ();
  }
  rmdir (dir);
  if (check_failures)
    return 1;
  printf ("test-writeback: ok\n");
  return 0;
}
