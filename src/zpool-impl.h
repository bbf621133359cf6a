/* nbdkit-zram: what an allocator implementation provides to src/zpool.c.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Each implementation embeds struct zpool as the FIRST member of its own
 * pool structure and fills in a struct zpool_ops whose functions have the
 * meaning given in include/zram/zpool.h.
 */
#ifndef ZRAM_ZPOOL_IMPL_H
#define ZRAM_ZPOOL_IMPL_H

#include <stdbool.h>

#include "zram/zpool.h"

struct zpool_ops {
  const char *name;
  struct zpool *(*create) (void);
  void (*destroy) (struct zpool *pool);
  /* destroy releases live objects too (see zpool_destroy_frees_objects). */
  bool destroy_frees_objects;
  /* limit as in zpool_alloc_limited (0 = none). */
  zpool_handle (*alloc) (struct zpool *pool, size_t size, uint64_t limit);
  void (*free) (struct zpool *pool, zpool_handle handle);
  void *(*map) (struct zpool *pool, zpool_handle handle, enum zpool_map_mode mode);
  void (*unmap) (struct zpool *pool, zpool_handle handle);
  size_t (*huge_class_size) (const struct zpool *pool);
  size_t (*class_size) (const struct zpool *pool, size_t size);
  uint64_t (*total_bytes) (const struct zpool *pool);
  void (*get_stats) (const struct zpool *pool, struct zpool_stats *stats);
  uint64_t (*compact) (struct zpool *pool);
  /* NULL: the pool has no size classes (zpool_class_stats fails ENOTSUP). */
  int (*class_stats) (const struct zpool *pool, unsigned index,
                      struct zpool_class_stats *stats);
  /* NULL: the pool cannot keep a reserve (ENOTSUP). */
  int (*set_reserve) (struct zpool *pool, uint64_t bytes, unsigned wait_ms);
  int (*reserve_start) (struct zpool *pool);
};

/* Implementations zero the whole struct when they create a pool. */
struct zpool {
  const struct zpool_ops *ops;
  zpool_grow_fn grow_fn;        /* NULL: no growth gate */
  void *grow_opaque;
  uint64_t grow_next;           /* atomic: total_bytes allowed unchecked */
  bool reserve;                 /* zpool_set_reserve succeeded */
};

extern const struct zpool_ops zpool_malloc_ops;   /* src/zpool-malloc.c */
extern const struct zpool_ops zpool_zs_ops;       /* src/zsmalloc.c */

#endif /* ZRAM_ZPOOL_IMPL_H */
