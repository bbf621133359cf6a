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
    snprintf (err, err_cap, "backing store '%s': NBD servers are not yet "
              "supported as backing stores; give the path of a regular file "
              "or block device", spec);
    errno = ENOTSUP;
    return NULL;
  }
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

int
backing_read (struct backing *b, uint64_t block, void *buf)
{
  if (!range_ok (b, block, 1))
    return -1;
  if (b->ops->read (b, buf, BACKING_BLOCK_SIZE,
                    block << BACKING_BLOCK_SHIFT) == -1)
    return -1;
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
  if (!range_ok (b, block, 1))
    return -1;
  record_sum (b, block, buf);
  return b->ops->write (b, buf, BACKING_BLOCK_SIZE,
                        block << BACKING_BLOCK_SHIFT);
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
  if (b->ops->write_batch != NULL && all_in_range)
    return b->ops->write_batch (b, io, n);
  for (i = 0; i < n; i++) {
    if (io[i].err == 0 &&
        b->ops->write (b, io[i].buf, BACKING_BLOCK_SIZE,
                       io[i].block << BACKING_BLOCK_SHIFT) == -1)
      io[i].err = errno ? errno : EIO;
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
  if (backing_bitmap_alloc (&b->map, block) == -1)
    return -1;
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

void
backing_block_put (struct backing *b, uint64_t block)
{
  uint32_t left = __atomic_sub_fetch (&b->refs[block], 1, __ATOMIC_ACQ_REL);

  assert (left != UINT32_MAX);
  if (left > 0)
    return;
  /* Trim before the bit is cleared: once clear, the block may be handed
   * out and written at once, and a trim after that would erase the new
   * owner's page.
   */
  backing_trim (b, block, 1);
  backing_bitmap_free (&b->map, block);
}

void
backing_free_block (struct backing *b, uint64_t block)
{
  backing_block_put (b, block);
}

uint64_t
backing_used_blocks (const struct backing *b)
{
  return __atomic_load_n (&b->map.used, __ATOMIC_RELAXED);
}

void
backing_free_all (struct backing *b)
{
  uint64_t i = 0, end;

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
