/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs): the pool.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Design, locking and the pin handshake are described in src/zsmalloc.h.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "zram/compiler.h"
#include "zsmalloc.h"

/* Choose pages per span for a slot size: the fewest pages among those
 * wasting the least (in tenths of a percent, like the kernel's percentage).
 */
static void
class_geometry (uint32_t size, uint32_t *pages, uint32_t *objs)
{
  uint32_t p, best_use = 0;

  for (p = 1; p <= ZS_MAX_SPAN_PAGES; p++) {
    uint32_t n = p * ZS_PAGE_SIZE / size;
    uint32_t use = (uint64_t) n * size * 1000 / (p * ZS_PAGE_SIZE);

    if (n > 0 && use > best_use) {
      best_use = use;
      *pages = p;
      *objs = n;
    }
  }
}

static struct zpool *
zs_create (void)
{
  struct zs_pool *p;
  struct zs_class *cur = NULL;
  unsigned i, n = 0;
  int k;

  p = aligned_alloc (64, (sizeof *p + 63) & ~(size_t) 63);
  if (p == NULL)
    return NULL;
  memset (p, 0, sizeof *p);
  p->base.ops = &zpool_zs_ops;
  p->chunks = calloc (ZS_MAX_CHUNKS, sizeof *p->chunks);
  if (p->chunks == NULL) {
    free (p);
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_init (&p->compact_lock, NULL);
  pthread_mutex_init (&p->chunk_lock, NULL);
  pthread_mutex_init (&p->page_lock, NULL);
  for (i = 0; i < ZS_NR_STRIPES; i++)
    pthread_mutex_init (&p->stripes[i].lock, NULL);

  /* Build the classes from the largest size down, merging sizes whose
   * geometry equals that of the class above (it holds them all).
   */
  for (k = ZS_NR_SIZES - 1; k >= 0; k--) {
    uint32_t size = (k + 1) * ZS_CLASS_STEP, pages = 1, objs = 1;

    class_geometry (size, &pages, &objs);
    if (cur == NULL || cur->pages != pages || cur->objs != objs) {
      cur = &p->classes[n++];
      cur->size = size;
      cur->pages = pages;
      cur->objs = objs;
    }
    cur->min_size = size - ZS_CLASS_STEP + 1;
    p->class_of[k] = cur;
    if (objs > 1 && p->huge_class_size == 0)
      p->huge_class_size = cur->size + 1;
  }
  p->nr_classes = n;
  /* classes[] was filled largest first; index it smallest first. */
  for (i = 0; i < n / 2; i++) {
    struct zs_class tmp = p->classes[i];

    p->classes[i] = p->classes[n - 1 - i];
    p->classes[n - 1 - i] = tmp;
  }
  for (k = 0; k < (int) ZS_NR_SIZES; k++)
    p->class_of[k] = &p->classes[n - 1 - (p->class_of[k] - p->classes)];
  for (i = 0; i < n; i++) {
    size_t hdr = sizeof (struct zs_span) + p->classes[i].objs * sizeof (uint32_t);

    pthread_mutex_init (&p->classes[i].lock, NULL);
    /* Span headers come from a slab of the next multiple of 64 bytes. */
    p->classes[i].hdr_bucket = (hdr + ZS_HDR_ALIGN - 1) / ZS_HDR_ALIGN - 1;
    assert (p->classes[i].hdr_bucket < ZS_HDR_BUCKETS);
  }
  return &p->base;
}

static void
zs_destroy (struct zpool *pool)
{
  struct zs_pool *p = POOL (pool);
  unsigned i;

  /* Spans and their headers live in the arenas: unmapping those frees
   * them all.
   */
  zs_reserve_stop (p);
  zs_pages_destroy (p);
  for (i = 0; i < p->nr_classes; i++)
    pthread_mutex_destroy (&p->classes[i].lock);
  for (i = 0; i < ZS_MAX_CHUNKS && p->chunks[i]; i++)
    free (p->chunks[i]);
  free (p->chunks);
  for (i = 0; i < ZS_NR_STRIPES; i++)
    pthread_mutex_destroy (&p->stripes[i].lock);
  pthread_mutex_destroy (&p->chunk_lock);
  pthread_mutex_destroy (&p->compact_lock);
  pthread_mutex_destroy (&p->page_lock);
  free (p);
}

static inline struct zs_class *
size_class (struct zs_pool *p, size_t size)
{
  return p->class_of[(size - 1) / ZS_CLASS_STEP];
}

static zpool_handle
zs_alloc (struct zpool *pool, size_t size, uint64_t limit)
{
  struct zs_pool *p = POOL (pool);
  struct zs_class *cls = size_class (p, size);
  struct zs_entry *e;
  struct zs_span *s, *fresh = NULL;
  uint64_t h;
  uint32_t slot;
  bool released = false;      /* kept spans released once already */

  h = zs_handle_get (p);
  if (h == 0)
    return 0;
  e = handle_entry (p, h);

 retry:
  class_lock (cls);
  s = fullest_partial (cls);
  if (s == NULL) {
    /* Use the new span at once even if span_get dropped the lock and
     * another thread made a span meanwhile: no empty span may sit on a
     * list.
     */
    fresh = zs_span_get (p, cls, limit);
    if (fresh == NULL) {
      int err = errno;        /* ENOMEM or ENOSPC */

      pthread_mutex_unlock (&cls->lock);
      /* At the limit, empty spans other classes keep for reuse are
       * memory that trims gave back: release them and try once more,
       * so that freeing pages always makes room for new ones.
       */
      if (err == ENOSPC && !released) {
        released = true;
        if (zs_release_kept (p) > 0)
          goto retry;
      }
      zs_handle_put (p, h);
      errno = err;
      return 0;
    }
    s = fresh;
    __atomic_store_n (&cls->nr_spans, cls->nr_spans + 1, __ATOMIC_RELAXED);
  }
  slot = slot_take (s, h);
  if (fresh)
    list_add (cls, s, group_of (cls, s->inuse));
  else
    span_regroup (cls, s);
  class_count (cls, 1, size);
  e->span = s;
  /* Release: pairs with the acquire of map; nothing to publish yet but the
   * address, the object's bytes are undefined until the caller writes them.
   */
  __atomic_store_n (&e->word, entry_make (slot_addr (s, slot), size),
                    __ATOMIC_RELEASE);
  pthread_mutex_unlock (&cls->lock);
  return h;
}

static void
zs_free (struct zpool *pool, zpool_handle h)
{
  struct zs_pool *p = POOL (pool);
  struct zs_entry *e = handle_entry (p, h);
  uint64_t w = __atomic_load_n (&e->word, __ATOMIC_ACQUIRE);
  size_t size = entry_size (w);
  struct zs_class *cls = size_class (p, size);
  struct zs_span *s, *empty = NULL;

  assert (w & E_USED);
  class_lock (cls);
  /* Compaction may have moved the object before we got the lock. */
  w = __atomic_load_n (&e->word, __ATOMIC_RELAXED);
  assert ((w & E_PIN) == 0);     /* freeing a mapped handle */
  s = e->span;
  slot_release (s, (entry_addr (w) - s->base) / cls->size);
  class_count (cls, -1, -(int64_t) size);
  if (s->inuse == 0) {
    list_del (cls, s);
    __atomic_store_n (&cls->nr_spans, cls->nr_spans - 1, __ATOMIC_RELAXED);
    if (!zs_span_keep (cls, s))
      empty = s;
  }
  else
    span_regroup (cls, s);
  pthread_mutex_unlock (&cls->lock);

  if (empty)
    zs_span_release (p, empty);
  zs_handle_put (p, h);
}

static void *
zs_map (struct zpool *pool, zpool_handle h, enum zpool_map_mode mode UNUSED)
{
  struct zs_entry *e = handle_entry (POOL (pool), h);
  uint64_t w = __atomic_load_n (&e->word, __ATOMIC_RELAXED);
  unsigned spins = 0;

  for (;;) {
    if ((w & E_PIN) == 0 &&
        __atomic_compare_exchange_n (&e->word, &w, w | E_PIN, true,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return entry_addr (w);
    /* Only compaction holds a pin we did not take, for one memcpy. */
    if (++spins % 64 == 0)
      sched_yield ();
    w = __atomic_load_n (&e->word, __ATOMIC_RELAXED);
  }
}

static void
zs_unmap (struct zpool *pool, zpool_handle h)
{
  struct zs_entry *e = handle_entry (POOL (pool), h);

  /* Release: the caller's writes to the object happen before anyone who
   * pins it next (another map, or compaction copying it) reads them.
   */
  __atomic_fetch_and (&e->word, ~E_PIN, __ATOMIC_RELEASE);
}

static size_t
zs_huge_class_size (const struct zpool *pool)
{
  return POOL (pool)->huge_class_size;
}

static size_t
zs_class_size (const struct zpool *pool, size_t size)
{
  return size_class (POOL (pool), size)->size;
}

static uint64_t
zs_total_bytes (const struct zpool *pool)
{
  return __atomic_load_n (&POOL (pool)->total_pages, __ATOMIC_RELAXED)
    * ZS_PAGE_SIZE;
}

static void
zs_get_stats (const struct zpool *pool, struct zpool_stats *stats)
{
  const struct zs_pool *p = POOL (pool);
  unsigned i;

  stats->total_bytes = zs_total_bytes (pool);
  for (i = 0; i < p->nr_classes; i++) {
    stats->live_objects += __atomic_load_n (&p->classes[i].live_objects,
                                            __ATOMIC_RELAXED);
    stats->live_bytes += __atomic_load_n (&p->classes[i].live_bytes,
                                          __ATOMIC_RELAXED);
  }
  stats->pages_compacted = __atomic_load_n (&p->pages_compacted,
                                            __ATOMIC_RELAXED);
  stats->meta_bytes = sizeof *p
    + ZS_MAX_CHUNKS * sizeof *p->chunks
    + __atomic_load_n (&p->nr_chunks, __ATOMIC_RELAXED)
      * ZS_CHUNK_ENTRIES * sizeof (struct zs_entry)
    + __atomic_load_n (&p->hdr_pages, __ATOMIC_RELAXED) * ZS_PAGE_SIZE;
  if (p->reserve.pages) {
    stats->reserve_bytes = p->reserve.pages * ZS_PAGE_SIZE;
    stats->reserve_free = __atomic_load_n (&p->free_pages, __ATOMIC_RELAXED)
      * ZS_PAGE_SIZE;
    stats->reserve_refills = __atomic_load_n (&p->reserve.refills,
                                              __ATOMIC_RELAXED);
    stats->reserve_empty = __atomic_load_n (&p->reserve.empty,
                                            __ATOMIC_RELAXED);
    stats->reserve_failed = __atomic_load_n (&p->reserve.failed,
                                             __ATOMIC_RELAXED);
  }
}

static int
zs_class_stats (const struct zpool *pool, unsigned index,
                struct zpool_class_stats *st)
{
  struct zs_pool *p = POOL (pool);
  struct zs_class *cls;
  unsigned g;

  if (index >= p->nr_classes) {
    errno = ENOENT;
    return -1;
  }
  cls = &p->classes[index];
  pthread_mutex_lock (&cls->lock);
  st->size = cls->size;
  st->min_size = cls->min_size;
  st->pages_per_span = cls->pages;
  st->objs_per_span = cls->objs;
  st->spans = cls->nr_spans;
  st->objects = cls->live_objects;
  st->live_bytes = cls->live_bytes;
  st->empty_spans = cls->nr_empty;
  for (g = 0; g < ZS_NR_FULLNESS; g++)
    st->fullness[g] = cls->nr_group[g];
  pthread_mutex_unlock (&cls->lock);
  return 0;
}

const struct zpool_ops zpool_zs_ops = {
  .name = "zs",
  .create = zs_create,
  .destroy = zs_destroy,
  .destroy_frees_objects = true,  /* spans live in arenas, unmapped whole */
  .alloc = zs_alloc,
  .free = zs_free,
  .map = zs_map,
  .unmap = zs_unmap,
  .huge_class_size = zs_huge_class_size,
  .class_size = zs_class_size,
  .total_bytes = zs_total_bytes,
  .get_stats = zs_get_stats,
  .compact = zs_compact,
  .class_stats = zs_class_stats,
  .set_reserve = zs_set_reserve,
  .reserve_start = zs_reserve_start,
};
