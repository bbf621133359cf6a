/* nbdkit-zram: allocator dispatch (see include/zram/zpool.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <string.h>

#include "zpool-impl.h"

/* Index by enum zpool_kind.  A kind whose implementation is not built has
 * a NULL entry and zpool_create fails with ENOTSUP.
 */
static const struct zpool_ops *const kinds[] = {
  [ZPOOL_ZS] = &zpool_zs_ops,                 /* zsmalloc-style: src/zsmalloc.c */
  [ZPOOL_MALLOC] = &zpool_malloc_ops,
};

#define NR_KINDS (sizeof kinds / sizeof kinds[0])

int
zpool_parse_kind (const char *name, enum zpool_kind *kind)
{
  if (strcmp (name, "zs") == 0)
    *kind = ZPOOL_ZS;
  else if (strcmp (name, "malloc") == 0)
    *kind = ZPOOL_MALLOC;
  else {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

const char *
zpool_kind_name (enum zpool_kind kind)
{
  switch (kind) {
  case ZPOOL_ZS: return "zs";
  case ZPOOL_MALLOC: return "malloc";
  }
  return "unknown";
}

struct zpool *
zpool_create (enum zpool_kind kind)
{
  if ((size_t) kind >= NR_KINDS) {
    errno = EINVAL;
    return NULL;
  }
  if (kinds[kind] == NULL) {
    errno = ENOTSUP;
    return NULL;
  }
  return kinds[kind]->create ();
}

void
zpool_destroy (struct zpool *pool)
{
  if (pool)
    pool->ops->destroy (pool);
}

void
zpool_set_grow_gate (struct zpool *pool, zpool_grow_fn fn, void *opaque)
{
  pool->grow_fn = fn;
  pool->grow_opaque = opaque;
  __atomic_store_n (&pool->grow_next, 0, __ATOMIC_RELAXED);
}

/* Ask the growth gate if this allocation may take the pool past what it
 * allowed last.  Returns 0, or -1 with the gate's errno.
 */
static int
grow_gate_pass (struct zpool *pool, size_t size)
{
  uint64_t total = pool->ops->total_bytes (pool);

  if (total + size <= __atomic_load_n (&pool->grow_next, __ATOMIC_RELAXED))
    return 0;
  if (pool->grow_fn (pool->grow_opaque, total) == -1)
    return -1;
  __atomic_store_n (&pool->grow_next, total + ZPOOL_GROW_STEP, __ATOMIC_RELAXED);
  return 0;
}

bool
zpool_destroy_frees_objects (const struct zpool *pool)
{
  return pool->ops->destroy_frees_objects;
}

zpool_handle
zpool_alloc_limited (struct zpool *pool, size_t size, uint64_t limit)
{
  if (size == 0 || size > ZPOOL_MAX_OBJECT) {
    errno = EINVAL;
    return 0;
  }
  /* With a reserve, allocations take memory the refill thread has taken
   * already, asking the gate first: the request path does not read the
   * gate's files (which would also touch new stack).
   */
  if (pool->grow_fn && !pool->reserve && grow_gate_pass (pool, size) == -1)
    return 0;
  return pool->ops->alloc (pool, size, limit);
}

zpool_handle
zpool_alloc (struct zpool *pool, size_t size)
{
  return zpool_alloc_limited (pool, size, 0);
}

void
zpool_free (struct zpool *pool, zpool_handle handle)
{
  pool->ops->free (pool, handle);
}

void *
zpool_map (struct zpool *pool, zpool_handle handle, enum zpool_map_mode mode)
{
  return pool->ops->map (pool, handle, mode);
}

void
zpool_unmap (struct zpool *pool, zpool_handle handle)
{
  pool->ops->unmap (pool, handle);
}

size_t
zpool_huge_class_size (const struct zpool *pool)
{
  return pool->ops->huge_class_size (pool);
}

size_t
zpool_class_size (const struct zpool *pool, size_t size)
{
  if (size == 0)
    size = 1;
  if (size > ZPOOL_MAX_OBJECT)
    size = ZPOOL_MAX_OBJECT;
  return pool->ops->class_size (pool, size);
}

uint64_t
zpool_total_bytes (const struct zpool *pool)
{
  return pool->ops->total_bytes (pool);
}

void
zpool_get_stats (const struct zpool *pool, struct zpool_stats *stats)
{
  memset (stats, 0, sizeof *stats);
  pool->ops->get_stats (pool, stats);
}

int
zpool_set_reserve (struct zpool *pool, uint64_t bytes, unsigned wait_ms)
{
  if (pool->ops->set_reserve == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  if (bytes < ZPOOL_RESERVE_MIN || wait_ms > ZPOOL_RESERVE_MAX_WAIT_MS) {
    errno = EINVAL;
    return -1;
  }
  if (pool->ops->set_reserve (pool, bytes, wait_ms) == -1)
    return -1;
  pool->reserve = true;
  return 0;
}

int
zpool_reserve_start (struct zpool *pool)
{
  if (pool->ops->reserve_start == NULL) {
    errno = EINVAL;
    return -1;
  }
  return pool->ops->reserve_start (pool);
}

uint64_t
zpool_compact (struct zpool *pool)
{
  return pool->ops->compact ? pool->ops->compact (pool) : 0;
}
