/* nbdkit-zram: the malloc-backed allocator (pool=malloc).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Each object is one malloc(3) block and its handle is the block's address.
 * Objects never move, so map/unmap are trivial and there is nothing to
 * compact.  It is the baseline the slab allocator is measured against.
 *
 * total_bytes counts what glibc really hands out: malloc_usable_size plus
 * the 8-byte chunk header of glibc's allocator.  Memory lost to
 * fragmentation inside glibc's heap is not visible from here, so the
 * figure is a lower bound of the true cost.
 */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>

#include "zram/compiler.h"
#include "zpool-impl.h"

/* Per-chunk bookkeeping glibc keeps in front of every block. */
#define MALLOC_CHUNK_OVERHEAD 8

/* Same watermark as the old kernel zram (max_zpage_size = 3/4 page): a
 * malloc pool has no classes, so there is no better-founded figure.
 */
#define MALLOC_HUGE_CLASS_SIZE (ZPOOL_MAX_OBJECT / 4 * 3)

struct malloc_pool {
  struct zpool base;           /* must come first */
  uint64_t total_bytes;        /* atomic */
  uint64_t live_bytes;         /* atomic */
  uint64_t live_objects;       /* atomic */
};

/* Blocks carry their requested size in front, so live_bytes stays exact. */
struct malloc_obj {
  uint32_t size;
  uint32_t pad;
  unsigned char data[];
};

static struct zpool *
malloc_create (void)
{
  struct malloc_pool *p = calloc (1, sizeof *p);

  if (p == NULL)
    return NULL;
  p->base.ops = &zpool_malloc_ops;
  return &p->base;
}

static void
malloc_destroy (struct zpool *pool)
{
  /* The device frees every object before destroying its pool; a malloc
   * pool keeps no list of its blocks, so it could not do it itself.
   */
  free (pool);
}

static zpool_handle
malloc_alloc (struct zpool *pool, size_t size, uint64_t limit)
{
  struct malloc_pool *p = (struct malloc_pool *) pool;
  struct malloc_obj *o = malloc (sizeof *o + size);
  uint64_t charge, total;

  if (o == NULL) {
    errno = ENOMEM;
    return 0;
  }
  /* What glibc hands out is known only once it has: charge it if it fits
   * under the limit, else give the block straight back.  glibc may keep
   * what it took from the OS for the next malloc; this pool counts blocks,
   * not glibc's heap (see the top of this file).
   */
  charge = malloc_usable_size (o) + MALLOC_CHUNK_OVERHEAD;
  total = __atomic_load_n (&p->total_bytes, __ATOMIC_RELAXED);
  do {
    if (limit && (total > limit || charge > limit - total)) {
      free (o);
      errno = ENOSPC;
      return 0;
    }
  } while (!__atomic_compare_exchange_n (&p->total_bytes, &total,
                                         total + charge, true,
                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  o->size = size;
  __atomic_add_fetch (&p->live_bytes, size, __ATOMIC_RELAXED);
  __atomic_add_fetch (&p->live_objects, 1, __ATOMIC_RELAXED);
  return (zpool_handle) (uintptr_t) o;
}

static void
malloc_free (struct zpool *pool, zpool_handle handle)
{
  struct malloc_pool *p = (struct malloc_pool *) pool;
  struct malloc_obj *o = (struct malloc_obj *) (uintptr_t) handle;

  __atomic_sub_fetch (&p->total_bytes,
                      malloc_usable_size (o) + MALLOC_CHUNK_OVERHEAD,
                      __ATOMIC_RELAXED);
  __atomic_sub_fetch (&p->live_bytes, o->size, __ATOMIC_RELAXED);
  __atomic_sub_fetch (&p->live_objects, 1, __ATOMIC_RELAXED);
  free (o);
}

static void *
malloc_map (struct zpool *pool UNUSED, zpool_handle handle,
            enum zpool_map_mode mode UNUSED)
{
  return ((struct malloc_obj *) (uintptr_t) handle)->data;
}

static void
malloc_unmap (struct zpool *pool UNUSED, zpool_handle handle UNUSED)
{
}

static size_t
malloc_huge_class_size (const struct zpool *pool UNUSED)
{
  return MALLOC_HUGE_CLASS_SIZE;
}

/* glibc's chunk for a request of n bytes: n plus its size word, rounded
 * up to 16, at least 32; what malloc_alloc charges for it.
 */
static size_t
malloc_class_size (const struct zpool *pool UNUSED, size_t size)
{
  size_t chunk = (sizeof (struct malloc_obj) + size + 8 + 15) & ~(size_t) 15;

  return chunk < 32 ? 32 : chunk;
}

static uint64_t
malloc_total_bytes (const struct zpool *pool)
{
  const struct malloc_pool *p = (const struct malloc_pool *) pool;

  return __atomic_load_n (&p->total_bytes, __ATOMIC_RELAXED);
}

static void
malloc_get_stats (const struct zpool *pool, struct zpool_stats *stats)
{
  const struct malloc_pool *p = (const struct malloc_pool *) pool;

  stats->total_bytes = __atomic_load_n (&p->total_bytes, __ATOMIC_RELAXED);
  stats->live_bytes = __atomic_load_n (&p->live_bytes, __ATOMIC_RELAXED);
  stats->live_objects = __atomic_load_n (&p->live_objects, __ATOMIC_RELAXED);
  stats->pages_compacted = 0;
}

const struct zpool_ops zpool_malloc_ops = {
  .name = "malloc",
  .create = malloc_create,
  .destroy = malloc_destroy,
  .destroy_frees_objects = false,
  .alloc = malloc_alloc,
  .free = malloc_free,
  .map = malloc_map,
  .unmap = malloc_unmap,
  .huge_class_size = malloc_huge_class_size,
  .class_size = malloc_class_size,
  .total_bytes = malloc_total_bytes,
  .get_stats = malloc_get_stats,
  .compact = NULL,            /* objects never move: nothing to compact */
};
