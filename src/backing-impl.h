/* nbdkit-zram: what the backing store's implementations share (not a
 * public API; see include/zram/backing.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * An implementation embeds struct backing as its first member and fills
 * in ops; src/backing.c checks ranges, keeps the allocator, and calls the
 * ops with byte offsets that are in range and block-aligned.
 */
#ifndef ZRAM_BACKING_IMPL_H
#define ZRAM_BACKING_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "zram/backing.h"

/* The block bitmap (src/backing-alloc.c): bit i set while block i is
 * allocated.  Lock-free: bits are claimed by compare-and-swap.
 */
struct backing_bitmap {
  uint64_t *words;            /* (nr + 63) / 64 words, bits past nr set */
  uint64_t nr;                /* blocks */
  uint64_t used;              /* atomic: bits set (blocks allocated) */
  uint64_t hint;              /* atomic: word to start the next search at */
};

/* 0, or -1 with errno ENOMEM. */
extern int backing_bitmap_init (struct backing_bitmap *map, uint64_t nr);
extern void backing_bitmap_destroy (struct backing_bitmap *map);
/* 0 and *block, or -1 with errno ENOSPC. */
extern int backing_bitmap_alloc (struct backing_bitmap *map, uint64_t *block);
extern void backing_bitmap_free (struct backing_bitmap *map, uint64_t block);
/* The first allocated block in [from, nr), or nr if none. */
extern uint64_t backing_bitmap_next_used (const struct backing_bitmap *map,
                                          uint64_t from);

struct backing;

struct backing_ops {
  const char *kind;           /* "file", "block device", "nbd" */
  /* len bytes at offset; 0, or -1 with errno.  A short transfer is EIO. */
  int (*read) (struct backing *b, void *buf, size_t len, uint64_t offset);
  int (*write) (struct backing *b, const void *buf, size_t len,
                uint64_t offset);
  /* Optional (NULL: src/backing.c calls write for each in turn).  ios
   * are in range and name distinct blocks; sets each io's err; returns
   * the number that failed.
   */
  size_t (*write_batch) (struct backing *b, struct backing_io *io, size_t n);
  /* 0; 1 if the store cannot trim (never asked again); -1 with errno. */
  int (*trim) (struct backing *b, uint64_t len, uint64_t offset);
  void (*close) (struct backing *b);  /* frees the implementation */
};

struct backing {
  const struct backing_ops *ops;
  char *name;                 /* the spec, malloc'd */
  uint64_t nr_blocks;
  bool no_trim;               /* atomic: the store said it cannot trim */
  uint64_t errors;            /* atomic: reads, writes, trims that failed */
  uint64_t reconnects;        /* atomic: connections made again after they
                                 broke (nbd) */
  struct backing_bitmap map;
  /* Per block, in RAM (12 bytes per 4 KiB block; lazily zeroed, so a
   * large store costs memory only where blocks are used):
   */
  uint64_t *sums;             /* atomic: XXH3-64 of the block as last
                                 written through this store */
  uint32_t *refs;             /* atomic: references (backing_block_get) */
  /* Blocks whose last reference is gone, waiting for their trim
   * (backing_trim_pending): a stack linked through their sums words.
   */
  uint64_t pending_head;      /* atomic: first block + 1, 0 if none */
  uint64_t pending;           /* atomic: blocks in the queue */
  uint64_t stranded;          /* atomic: given back, but their trim failed:
                                 kept marked until backing_free_all */
};

/* Open a regular file or block device (src/backing-file.c).  On success
 * the returned store has ops and nr_blocks set (name and map are left to
 * the caller); NULL with errno and a message otherwise.
 */
extern struct backing *backing_file_open (const char *path, uint64_t max_bytes,
                                          char *err, size_t err_cap);

/* Open an NBD export named by a URI (src/backing-nbd.c), likewise. */
extern struct backing *backing_nbd_open (const char *uri, uint64_t max_bytes,
                                         char *err, size_t err_cap);

#endif /* ZRAM_BACKING_IMPL_H */
