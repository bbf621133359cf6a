/* nbdkit-zram: the backing store (see include/zram/backing.h): choosing
 * the implementation, range checks, and the allocator's front.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "backing-impl.h"

static uint64_t
block_sum (const void *buf)
{
  return XXH3_64bits (buf, BACKING_BLOCK_SIZE);
}

/* Names that will be NBD servers (libnbd's URI schemes). */
static bool
is_nbd_uri (const char *spec)
{
  return strncmp (spec, "nbd://", 6) == 0 || strncmp (spec, "nbds://", 7) == 0 ||
         strncmp (spec, "nbd+unix://", 11) == 0 ||
         strncmp (spec, "nbds+unix://", 12) == 0 ||
         strncmp (spec, "nbd+vsock://", 12) == 0 ||
         strncmp (spec, "nbds+vsock://", 13) == 0;
}

struct backing *
backing_open (const char *spec, uint64_t max_bytes, char *err, size_t err_cap)
{
  struct backing *b;
  int saved_errno;

  if (spec == NULL || *spec == '\0') {
    snprintf (err, err_cap, "backing store: empty name; give the path of a "
              "regular file or block device");
    errno = EINVAL;
    return NULL;
  }
  if (is_nbd_uri (spec)) {
#ifdef HAVE_LIBNBD
    b = backing_nbd_open (spec, max_bytes, err, err_cap);
#else
    snprintf (err, err_cap, "backing store '%s': this nbdkit-zram was built "
              "without libnbd, so it cannot use an NBD server; rebuild it "
              "with libnbd-dev installed, or give the path of a regular "
              "file or block device", spec);
    errno = ENOTSUP;
    return NULL;
#endif
  }
  else if (strstr (spec, "://") != NULL) {
    snprintf (err, err_cap, "backing store '%s': unknown URI scheme; an NBD "
              "server is named nbd://HOST[:PORT]/EXPORT, nbds://..., "
              "nbd+unix:///EXPORT?socket=PATH or nbd+vsock://CID[:PORT], "
              "a file or block device by its path", spec);
    errno = EINVAL;
    return NULL;
  }
  else
    b = backing_file_open (spec, max_bytes, err, err_cap);
  if (b == NULL)
    return NULL;
  b->name = strdup (spec);
  /* calloc of large arrays gives lazily zeroed mappings: blocks never
   * used cost no memory.
   */
  b->sums = calloc (b->nr_blocks, sizeof *b->sums);
  b->refs = calloc (b->nr_blocks, sizeof *b->refs);
  if (b->name == NULL || b->sums == NULL || b->refs == NULL ||
      backing_bitmap_init (&b->map, b->nr_blocks) == -1) {
    snprintf (err, err_cap, "backing store '%s': no memory for its bitmap "
              "and checksums of %" PRIu64 " blocks", spec, b->nr_blocks);
    saved_errno = ENOMEM;
    free (b->sums);
    free (b->refs);
    free (b->name);
    b->ops->close (b);
    errno = saved_errno;
    return NULL;
  }
  return b;
}

void
backing_close (struct backing *b)
{
  if (b == NULL)
    return;
  backing_bitmap_destroy (&b->map);
  free (b->sums);
  free (b->refs);
  free (b->name);
  b->ops->close (b);
}

uint64_t
backing_nr_blocks (const struct backing *b)
{
  return b->nr_blocks;
}

const char *
backing_name (const struct backing *b)
{
  return b->name;
}

const char *
backing_kind (const struct backing *b)
{
  return b->ops->kind;
}

static int
range_ok (const struct backing *b, uint64_t block, uint64_t count)
{
  if (block >= b->nr_blocks || count > b->nr_blocks - block) {
    errno = EINVAL;
    return 0;
  }
  return 1;
}

uint64_t
backing_errors (const struct backing *b)
{
  return __atomic_load_n (&b->errors, __ATOMIC_RELAXED);
}

uint64_t
backing_reconnects (const struct backing *b)
{
  return __atomic_load_n (&b->reconnects, __ATOMIC_RELAXED);
}

/* Count n failures of the store itself (not the caller's range errors). */
static void
count_errors (struct backing *b, uint64_t n)
{
  if (n > 0)
    __atomic_add_fetch (&b->errors, n, __ATOMIC_RELAXED);
}

int
backing_read (struct backing *b, uint64_t block, void *buf)
{
  if (!range_ok (b, block, 1))
    return -1;
  if (b->ops->read (b, buf, BACKING_BLOCK_SIZE,
                    block << BACKING_BLOCK_SHIFT) == -1) {
    count_errors (b, 1);
    return -1;
  }
  if (block_sum (buf) != __atomic_load_n (&b->sums[block], __ATOMIC_RELAXED)) {
    memset (buf, 0, BACKING_BLOCK_SIZE);  /* never hand out those bytes */
    errno = EBADMSG;
    return -1;
  }
  return 0;
}

/* Remember what block will hold.  Before the write: whoever reads the
 * block learned of it after the write returned (the device installs a
 * written-back page only then), through a lock or an atomic that orders
 * this store before its read.
 */
static void
record_sum (struct backing *b, uint64_t block, const void *buf)
{
  __atomic_store_n (&b->sums[block], block_sum (buf), __ATOMIC_RELAXED);
}

int
backing_write (struct backing *b, uint64_t block, const void *buf)
{
  int r;

  if (!range_ok (b, block, 1))
    return -1;
  record_sum (b, block, buf);
  r = b->ops->write (b, buf, BACKING_BLOCK_SIZE, block << BACKING_BLOCK_SHIFT);
  count_errors (b, r == -1);
  return r;
}

size_t
backing_write_batch (struct backing *b, struct backing_io *io, size_t n)
{
  size_t i, failed = 0;
  bool all_in_range = true;

  for (i = 0; i < n; i++) {
    io[i].err = 0;
    if (!range_ok (b, io[i].block, 1)) {
      io[i].err = EINVAL;
      all_in_range = false;
    }
    else
      record_sum (b, io[i].block, io[i].buf);
  }
  if (b->ops->write_batch != NULL && all_in_range) {
    failed = b->ops->write_batch (b, io, n);
    count_errors (b, failed);
    return failed;
  }
  for (i = 0; i < n; i++) {
    if (io[i].err == 0 &&
        b->ops->write (b, io[i].buf, BACKING_BLOCK_SIZE,
                       io[i].block << BACKING_BLOCK_SHIFT) == -1) {
      io[i].err = errno ? errno : EIO;
      count_errors (b, 1);
    }
    if (io[i].err != 0)
      failed++;
  }
  return failed;
}

int
backing_trim (struct backing *b, uint64_t block, uint64_t count)
{
  int r;

  if (!range_ok (b, block, count))
    return -1;
  if (count == 0 || __atomic_load_n (&b->no_trim, __ATOMIC_RELAXED))
    return 0;
  r = b->ops->trim (b, count << BACKING_BLOCK_SHIFT,
                    block << BACKING_BLOCK_SHIFT);
  if (r == 1) {
    __atomic_store_n (&b->no_trim, true, __ATOMIC_RELAXED);
    r = 0;
  }
  count_errors (b, r == -1);
  return r;
}

bool
backing_can_trim (const struct backing *b)
{
  return !__atomic_load_n (&b->no_trim, __ATOMIC_RELAXED);
}

int
backing_alloc_block (struct backing *b, uint64_t *block)
{
  const struct timespec step = { 0, 100000 };   /* 0.1 ms */

  /* Blocks waiting for their trim are free but still marked: trim them
   * now rather than call the store full.  When the queue is empty but
   * blocks are still pending, another thread took them and is trimming
   * them (the background trim, maybe on a slow store): they are free
   * too, so wait for it rather than answer ENOSPC with room in the store.
   * The other caller's trims end by the store's deadline, so this ends.
   */
  while (backing_bitmap_alloc (&b->map, block) == -1) {
    if (backing_trim_pending (b) > 0)
      continue;
    /* Nothing pending: the store is full, unless the other trimmer freed
     * its blocks behind our search (its release of pending orders the
     * freed bits before this last look).
     */
    if (__atomic_load_n (&b->pending, __ATOMIC_ACQUIRE) == 0) {
      if (backing_bitmap_alloc (&b->map, block) == 0)
        break;
      errno = ENOSPC;
      return -1;
    }
    nanosleep (&step, NULL);
  }
  /* Free blocks have no references: the bitmap's acquire orders this
   * store after the last put of the block's previous life.
   */
  __atomic_store_n (&b->refs[*block], 1, __ATOMIC_RELAXED);
  return 0;
}

void
backing_block_get (struct backing *b, uint64_t block, uint32_t n)
{
  uint32_t old = __atomic_fetch_add (&b->refs[block], n, __ATOMIC_RELAXED);

  /* A block at 0 is being freed: reviving it would free it twice. */
  assert (old > 0 && old + n > old);
  (void) old;
}

/* Push the chain first .. last (blocks + 1, linked through their sums
 * words) on the queue of blocks waiting for their trim.  Consumers only
 * take the whole queue (exchange), never pop, so this compare-and-swap
 * has no ABA.
 */
static void
push_chain (struct backing *b, uint64_t first, uint64_t last)
{
  uint64_t head = __atomic_load_n (&b->pending_head, __ATOMIC_RELAXED);

  do
    __atomic_store_n (&b->sums[last - 1], head, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n (&b->pending_head, &head, first,
                                       true, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED));
}

void
backing_block_put (struct backing *b, uint64_t block)
{
  uint32_t left = __atomic_sub_fetch (&b->refs[block], 1, __ATOMIC_ACQ_REL);

  assert (left != UINT32_MAX);
  if (left > 0)
    return;
  /* The last reference: the block must be trimmed before its bit is
   * cleared (once clear, it may be handed out and written at once, and a
   * trim after that would erase the new owner's page).  But the caller
   * may be a request overwriting the page, and a trim is store I/O (a
   * network round trip, or 5 s on a hung NBD server): queue the block
   * for backing_trim_pending instead.  Its checksum word, unused until
   * the block is written again, links the queue (block + 1; 0 ends it).
   * Counted as pending before it is reachable, so that the consumer
   * never subtracts what was not added.
   */
  __atomic_add_fetch (&b->pending, 1, __ATOMIC_RELAXED);
  push_chain (b, block + 1, block + 1);
}

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

  return x < y ? -1 : x > y;
}

/* Queue a taken list again (first is its first block + 1): it is ours
 * alone, so its last link can be found and pointed at the queue's head.
 */
static void
requeue (struct backing *b, uint64_t first)
{
  uint64_t last = first, next;

  while ((next = __atomic_load_n (&b->sums[last - 1], __ATOMIC_RELAXED)) != 0)
    last = next;
  push_chain (b, first, last);
}

/* Trim and free the blocks of one taken list, in runs of adjacent
 * blocks (one store request a run), at most BACKING_TRIM_MAX of them:
 * the rest goes back to the queue, so that one call costs a bounded time
 * (a scattered queue of 100000 blocks took 5 s of fallocate calls on a
 * file, seconds to minutes of round trips to an NBD server) and the
 * background thread's other work, which writes at mem_limit wait for,
 * and a reset, which waits for the call, are not held up behind it.
 */
static uint64_t
trim_list (struct backing *b, uint64_t link)
{
  uint64_t batch[256], n = 0, done = 0, i, j;

  while ((link != 0 || n > 0) && done < BACKING_TRIM_MAX) {
    while (link != 0 && n < sizeof batch / sizeof batch[0]) {
      batch[n++] = link - 1;
      link = __atomic_load_n (&b->sums[link - 1], __ATOMIC_RELAXED);
    }
    qsort (batch, n, sizeof batch[0], cmp_u64);
    for (i = 0; i < n; i = j) {
      for (j = i + 1; j < n && batch[j] == batch[j - 1] + 1; j++)
        ;
      /* A trim that failed may still happen: an NBD server past its
       * deadline can carry it out later, and would then erase a new
       * owner's data.  So such blocks are never handed out again: they
       * stay marked (and counted in use) until the store is emptied by a
       * reset, which costs space, never data.
       */
      if (backing_trim (b, batch[i], j - i) == 0) {
        for (uint64_t k = i; k < j; k++)
          backing_bitmap_free (&b->map, batch[k]);
      }
      else
        __atomic_add_fetch (&b->stranded, j - i, __ATOMIC_RELAXED);
      __atomic_sub_fetch (&b->pending, j - i, __ATOMIC_RELEASE);
    }
    done += n;
    n = 0;
  }
  if (link != 0)
    requeue (b, link);
  return done;
}

uint64_t
backing_trim_pending (struct backing *b)
{
  /* Take the whole queue at once: producers only push, so the list taken
   * is ours alone, and concurrent callers get disjoint lists.
   */
  uint64_t link = __atomic_exchange_n (&b->pending_head, 0, __ATOMIC_ACQUIRE);

  return link == 0 ? 0 : trim_list (b, link);
}

uint64_t
backing_stranded_blocks (const struct backing *b)
{
  return __atomic_load_n (&b->stranded, __ATOMIC_RELAXED);
}

uint64_t
backing_pending_blocks (const struct backing *b)
{
  return __atomic_load_n (&b->pending, __ATOMIC_RELAXED);
}

void
backing_free_block (struct backing *b, uint64_t block)
{
  backing_block_put (b, block);
}

uint64_t
backing_used_blocks (const struct backing *b)
{
  /* Pending first: a block leaves pending only after it left used, so
   * this order can only overstate, and the clamp covers the rest.
   */
  uint64_t pending = __atomic_load_n (&b->pending, __ATOMIC_ACQUIRE);
  uint64_t used = __atomic_load_n (&b->map.used, __ATOMIC_ACQUIRE);

  return used > pending ? used - pending : 0;
}

void
backing_free_all (struct backing *b)
{
  uint64_t i = 0, end;

  /* Exclusive use: the queued blocks are among the marked ones below. */
  __atomic_store_n (&b->pending_head, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&b->pending, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&b->stranded, 0, __ATOMIC_RELAXED);
  while ((i = backing_bitmap_next_used (&b->map, i)) < b->nr_blocks) {
    for (end = i + 1; end < b->nr_blocks &&
           backing_bitmap_next_used (&b->map, end) == end; end++)
      ;
    backing_trim (b, i, end - i);
    for (; i < end; i++) {
      __atomic_store_n (&b->refs[i], 0, __ATOMIC_RELAXED);
      backing_bitmap_free (&b->map, i);
    }
  }
}
