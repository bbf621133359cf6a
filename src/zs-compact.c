/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs): compaction.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Design, locking and the pin handshake are described in src/zsmalloc.h.
 */
#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "zsmalloc.h"

/* Try to move the object in slot of span src into dst.  Returns false if
 * it is mapped (pinned) right now.  Class lock held.
 */
static bool
move_object (struct zs_pool *p, struct zs_span *src, uint32_t slot,
             struct zs_span *dst)
{
  uint64_t h = src->owner[slot];
  struct zs_entry *e = handle_entry (p, h);
  uint64_t w = __atomic_load_n (&e->word, __ATOMIC_RELAXED);
  uint32_t dslot;
  char *to;

  /* One try: never wait for a mapper (see the handshake in zsmalloc.h). */
  if ((w & E_PIN) ||
      !__atomic_compare_exchange_n (&e->word, &w, w | E_PIN, false,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
    return false;
  assert (entry_addr (w) == slot_addr (src, slot));
  dslot = slot_take (dst, h);
  to = slot_addr (dst, dslot);
  memcpy (to, entry_addr (w), entry_size (w));
  slot_release (src, slot);
  e->span = dst;
  /* Release: the copied bytes before the new address (and unpin). */
  __atomic_store_n (&e->word, entry_make (to, entry_size (w)),
                    __ATOMIC_RELEASE);
  return true;
}

/* Free slots the class could fill outside span src and isolated spans. */
static uint64_t
free_slots_elsewhere (struct zs_class *cls, struct zs_span *src)
{
  uint64_t free = cls->nr_spans * cls->objs - cls->live_objects;
  struct zs_span *s;

  for (s = cls->lists[GROUP_ISOLATED]; s; s = s->next)
    free -= cls->objs - s->inuse;
  if (src->group != GROUP_ISOLATED)
    free -= cls->objs - src->inuse;
  return free;
}

/* Compact one class.  Returns the pages released. */
static uint64_t
compact_class (struct zs_pool *p, struct zs_class *cls)
{
  struct zs_span *src, *dst, *done = NULL, *s;
  uint64_t released = 0, rounds;
  uint32_t slot;
  int g;

  pthread_mutex_lock (&cls->lock);
  /* Kept empty spans go back to the OS first. */
  while ((s = cls->empty) != NULL) {
    cls->empty = s->next;
    s->next = done;
    done = s;
    released += cls->pages;
  }
  __atomic_store_n (&cls->nr_empty, 0, __ATOMIC_RELAXED);
  /* Each round isolates one span; bound the rounds by the spans present at
   * the start, so that allocations in between cannot keep us going.
   */
  for (rounds = cls->nr_spans; rounds > 0; rounds--) {
    /* The emptiest span is the source. */
    src = NULL;
    for (g = 0; g < GROUP_FULL && src == NULL; g++)
      src = cls->lists[g];
    if (src == NULL || free_slots_elsewhere (cls, src) < src->inuse)
      break;
    /* Isolate it: alloc will not refill it, and it will not be a
     * destination or a source again in this run.
     */
    list_del (cls, src);
    list_add (cls, src, GROUP_ISOLATED);
    for (slot = 0; slot < cls->objs && src->inuse > 0; slot++) {
      if (src->owner[slot] & SLOT_FREE)
        continue;
      dst = fullest_partial (cls);
      if (dst == NULL)
        break;
      if (move_object (p, src, slot, dst))
        span_regroup (cls, dst);
    }
    if (src->inuse == 0) {
      list_del (cls, src);
      __atomic_store_n (&cls->nr_spans, cls->nr_spans - 1, __ATOMIC_RELAXED);
      src->next = done;
      done = src;
      released += cls->pages;
    }
    /* Let alloc and free of this class in between sources. */
    class_yield (cls);
  }
  /* Put back spans that kept a pinned object. */
  while ((s = cls->lists[GROUP_ISOLATED]) != NULL) {
    list_del (cls, s);
    assert (s->inuse > 0);      /* free releases isolated spans that empty */
    list_add (cls, s, group_of (cls, s->inuse));
  }
  pthread_mutex_unlock (&cls->lock);

  while ((s = done) != NULL) {
    done = s->next;
    zs_span_release (p, s);
  }
  return released;
}

uint64_t
zs_compact (struct zpool *pool)
{
  struct zs_pool *p = POOL (pool);
  uint64_t released = 0;
  unsigned i;

  pthread_mutex_lock (&p->compact_lock);
  for (i = 0; i < p->nr_classes; i++)
    released += compact_class (p, &p->classes[i]);
  pthread_mutex_unlock (&p->compact_lock);
  __atomic_add_fetch (&p->pages_compacted, released, __ATOMIC_RELAXED);
  return released;
}
