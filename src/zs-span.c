/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs): arenas and spans.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Design, locking and the pin handshake are described in src/zsmalloc.h.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "zsmalloc.h"

static void
arena_link (struct zs_arena **head, struct zs_arena *a)
{
  a->prev = NULL;
  a->next = *head;
  if (a->next)
    a->next->prev = a;
  *head = a;
}

static void
arena_unlink (struct zs_arena **head, struct zs_arena *a)
{
  if (a->prev)
    a->prev->next = a->next;
  else
    *head = a->next;
  if (a->next)
    a->next->prev = a->prev;
}

/* Map a new arena for a class (no lock held). */
static struct zs_arena *
arena_create (struct zs_class *cls)
{
  uint32_t n = cls->arena_ranges, i;
  struct zs_arena *a = malloc (sizeof *a + n * sizeof a->free[0]);

  if (a == NULL)
    return NULL;
  a->base = mmap (NULL, n * span_bytes (cls), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a->base == MAP_FAILED) {
    free (a);
    return NULL;
  }
  assert ((uintptr_t) a->base >> 48 == 0);
  /* A transparent huge page would make the RSS of a sparsely used arena
   * 2 MiB whatever total_bytes says, and every span release would split
   * it.  Best effort: the arena works either way.
   */
  madvise (a->base, n * span_bytes (cls), MADV_NOHUGEPAGE);
  a->nr_ranges = n;
  a->nr_free = n;
  for (i = 0; i < n; i++)
    a->free[i] = n - 1 - i;     /* hand out low addresses first */
  return a;
}

/* Count n more pages in total_pages unless that would take the pool past
 * limit bytes (0 = none).  One compare-and-swap: concurrent growers of
 * different classes cannot overshoot together.
 */
static bool
reserve_pages (struct zs_pool *p, uint32_t n, uint64_t limit)
{
  uint64_t total = __atomic_load_n (&p->total_pages, __ATOMIC_RELAXED);

  do {
    if (limit && (total + n) * ZS_PAGE_SIZE > limit)
      return false;
  } while (!__atomic_compare_exchange_n (&p->total_pages, &total, total + n,
                                         true, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED));
  return true;
}

/* Get an empty span for the class: a kept one (already counted in
 * total_pages), else a new one in an arena, if the pages it adds to
 * total_pages stay within limit bytes (0 = none).  Class lock held on
 * entry and on return; it may be dropped in between (to map an arena).
 * Returns NULL with errno ENOSPC (over the limit: nothing was taken) or
 * ENOMEM.
 */
struct zs_span *
zs_span_get (struct zs_pool *p, struct zs_class *cls, uint64_t limit)
{
  size_t meta = sizeof (struct zs_span) + cls->objs * sizeof (uint32_t);
  struct zs_span *s;
  struct zs_arena *a;
  uint32_t i;

  if ((s = cls->empty) != NULL) {
    cls->empty = s->next;
    __atomic_store_n (&cls->nr_empty, cls->nr_empty - 1, __ATOMIC_RELAXED);
    return s;
  }
  /* Before any memory is taken, so a refusal leaves the pool as it was. */
  if (!reserve_pages (p, cls->pages, limit)) {
    errno = ENOSPC;
    return NULL;
  }
  s = malloc (meta);
  if (s == NULL)
    goto nomem;
  if (cls->avail == NULL) {
    pthread_mutex_unlock (&cls->lock);
    a = arena_create (cls);
    class_lock (cls);
    if (a == NULL) {
      free (s);
      goto nomem;
    }
    arena_link (&cls->avail, a);
  }
  a = cls->avail;
  s->arena = a;
  s->base = a->base + a->free[--a->nr_free] * span_bytes (cls);
  if (a->nr_free == 0) {
    arena_unlink (&cls->avail, a);
    arena_link (&cls->full, a);
  }
  s->cls = cls;
  s->inuse = 0;
  s->free_head = 0;
  for (i = 0; i < cls->objs; i++)
    s->owner[i] = SLOT_FREE | (i + 1 < cls->objs ? i + 1 : SLOT_NONE);
  __atomic_add_fetch (&p->span_meta_bytes, meta, __ATOMIC_RELAXED);
  return s;

 nomem:
  __atomic_sub_fetch (&p->total_pages, cls->pages, __ATOMIC_RELAXED);
  errno = ENOMEM;
  return NULL;
}

/* A span just became empty and is on no list.  Keep it for reuse if the
 * class keeps fewer than ZS_EMPTY_KEEP_PAGES pages of them, and return
 * true; else return false: the caller must span_release it after dropping
 * the class lock.  Class lock held.
 */
bool
zs_span_keep (struct zs_class *cls, struct zs_span *s)
{
  if ((cls->nr_empty + 1) * cls->pages > ZS_EMPTY_KEEP_PAGES)
    return false;
  s->next = cls->empty;
  cls->empty = s;
  __atomic_store_n (&cls->nr_empty, cls->nr_empty + 1, __ATOMIC_RELAXED);
  return true;
}

uint64_t
zs_release_kept (struct zs_pool *p)
{
  uint64_t released = 0;
  unsigned c;

  for (c = 0; c < p->nr_classes; c++) {
    struct zs_class *cls = &p->classes[c];
    struct zs_span *s, *next;

    if (__atomic_load_n (&cls->nr_empty, __ATOMIC_RELAXED) == 0)
      continue;
    class_lock (cls);
    s = cls->empty;
    cls->empty = NULL;
    __atomic_store_n (&cls->nr_empty, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock (&cls->lock);
    for (; s; s = next) {
      next = s->next;
      released += cls->pages;
      zs_span_release (p, s);
    }
  }
  return released;
}

/* Give an empty span's pages back to the OS and its range back to its
 * arena; unmap the arena if it is then unused.  Class lock NOT held.
 */
void
zs_span_release (struct zs_pool *p, struct zs_span *s)
{
  struct zs_class *cls = s->cls;
  struct zs_arena *a = s->arena, *dead = NULL;
  bool reusable = true;

  /* Before the range can be handed out again, so no new data is lost.
   * MADV_DONTNEED refuses locked memory (mlockall, the plugin's
   * mlock=true): then map fresh zero pages over the range, which drops the
   * old ones.  If even that fails, the range may be unmapped: never hand it
   * out again (its arena then stays until the pool is destroyed).
   */
  if (madvise (s->base, span_bytes (cls), MADV_DONTNEED) == -1 &&
      mmap (s->base, span_bytes (cls), PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
    reusable = false;
  class_lock (cls);
  if (reusable) {
    a->free[a->nr_free++] = (s->base - a->base) / span_bytes (cls);
    if (a->nr_free == 1) {
      arena_unlink (&cls->full, a);
      arena_link (&cls->avail, a);
    }
    if (a->nr_free == a->nr_ranges) {
      arena_unlink (&cls->avail, a);
      dead = a;
    }
  }
  pthread_mutex_unlock (&cls->lock);

  __atomic_sub_fetch (&p->total_pages, cls->pages, __ATOMIC_RELAXED);
  __atomic_sub_fetch (&p->span_meta_bytes,
                      sizeof (struct zs_span) + cls->objs * sizeof (uint32_t),
                      __ATOMIC_RELAXED);
  free (s);
  if (dead) {
    munmap (dead->base, dead->nr_ranges * span_bytes (cls));
    free (dead);
  }
}

void
zs_class_free_all (struct zs_class *cls)
{
  struct zs_span *s, *next;
  struct zs_arena *a, *anext;
  unsigned g;

  for (g = 0; g < NR_LISTS; g++)
    for (s = cls->lists[g]; s; s = next) {
      next = s->next;
      free (s);
    }
  for (s = cls->empty; s; s = next) {
    next = s->next;
    free (s);
  }
  for (a = cls->avail; a; a = anext) {
    anext = a->next;
    munmap (a->base, a->nr_ranges * span_bytes (cls));
    free (a);
  }
  for (a = cls->full; a; a = anext) {
    anext = a->next;
    munmap (a->base, a->nr_ranges * span_bytes (cls));
    free (a);
  }
}
