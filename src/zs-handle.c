/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs): the handle table.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Design, locking and the pin handshake are described in src/zsmalloc.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "zsmalloc.h"

/* Make sure the chunk holding index h exists.  Returns -1 on ENOMEM. */
static int
ensure_chunk (struct zs_pool *p, uint64_t h)
{
  uint64_t c = h >> ZS_CHUNK_SHIFT;
  struct zs_entry *chunk;

  if (__atomic_load_n (&p->chunks[c], __ATOMIC_ACQUIRE) != NULL)
    return 0;
  pthread_mutex_lock (&p->chunk_lock);
  if (p->chunks[c] == NULL) {
    /* calloc of this size is an mmap: untouched entries cost no RSS. */
    chunk = calloc (ZS_CHUNK_ENTRIES, sizeof *chunk);
    if (chunk == NULL) {
      pthread_mutex_unlock (&p->chunk_lock);
      errno = ENOMEM;
      return -1;
    }
    /* Release: the zeroed chunk is visible before its pointer. */
    __atomic_store_n (&p->chunks[c], chunk, __ATOMIC_RELEASE);
    __atomic_add_fetch (&p->nr_chunks, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock (&p->chunk_lock);
  return 0;
}

/* Each thread sticks to one stripe, chosen by a hash of its thread id.
 * Not thread-local storage: the plugin has none, because glibc allocates
 * a dlopened module's TLS on a thread's first access and aborts the
 * process when that fails (see include/zram/thread-ctx.h).  pthread_self
 * is the address of the thread's descriptor, constant for its life; the
 * multiplicative (Fibonacci) hash spreads descriptors that lie a stack
 * size apart.
 */
static unsigned
my_stripe (void)
{
  uint64_t id = (uint64_t) (uintptr_t) pthread_self ();

  return (unsigned) ((id * UINT64_C (0x9E3779B97F4A7C15)) >> 32) % ZS_NR_STRIPES;
}

/* Take up to ZS_HANDLE_BATCH free handles from the first other stripe
 * that has any, as a chain first..last (last's link is left for the
 * caller to set).  The caller holds no stripe lock, so locking the others
 * one at a time, blocking, cannot deadlock.  Blocking matters: with only
 * a try-lock, a thread that allocates while another frees saw the freeing
 * stripe busy most of the time, took fresh handles instead, and the table
 * grew with the number of allocations.  Returns true if it got any.
 */
static bool
handle_steal (struct zs_pool *p, unsigned self, uint64_t *firstp,
              uint64_t *lastp)
{
  uint64_t first, last, next;
  unsigned k, n;

  for (k = 1; k < ZS_NR_STRIPES; k++) {
    struct zs_stripe *o = &p->stripes[(self + k) % ZS_NR_STRIPES];

    pthread_mutex_lock (&o->lock);
    first = last = o->head;
    if (first == 0) {
      pthread_mutex_unlock (&o->lock);
      continue;
    }
    for (n = 1; n < ZS_HANDLE_BATCH; n++) {
      next = entry_next_free (__atomic_load_n (&handle_entry (p, last)->word,
                                               __ATOMIC_RELAXED));
      if (next == 0)
        break;
      last = next;
    }
    o->head = entry_next_free (__atomic_load_n (&handle_entry (p, last)->word,
                                                __ATOMIC_RELAXED));
    pthread_mutex_unlock (&o->lock);
    *firstp = first;
    *lastp = last;
    return true;
  }
  return false;
}

/* Take a free handle index.  Returns 0 with errno ENOMEM on failure. */
uint64_t
zs_handle_get (struct zs_pool *p)
{
  struct zs_stripe *st = &p->stripes[my_stripe ()];
  uint64_t h, first, i;

  pthread_mutex_lock (&st->lock);
  if (st->head == 0) {
    uint64_t last;
    bool stolen;

    /* Steal without holding our own lock (see handle_steal), then put
     * the chain in front of whatever our stripe got meanwhile.
     */
    pthread_mutex_unlock (&st->lock);
    stolen = handle_steal (p, st - p->stripes, &first, &last);
    pthread_mutex_lock (&st->lock);
    if (stolen) {
      __atomic_store_n (&handle_entry (p, last)->word,
                        st->head << E_ADDR_SHIFT, __ATOMIC_RELAXED);
      st->head = first;
    }
  }
  if (st->head == 0) {
    first = __atomic_fetch_add (&p->next_fresh, ZS_HANDLE_BATCH,
                                __ATOMIC_RELAXED);
    /* A batch never straddles chunks: ZS_HANDLE_BATCH divides them. */
    if (first + ZS_HANDLE_BATCH > ZS_MAX_HANDLES ||
        ensure_chunk (p, first) == -1) {
      pthread_mutex_unlock (&st->lock);
      errno = ENOMEM;
      return 0;
    }
    /* Link the batch, skipping index 0 (never a valid handle). */
    for (i = first + ZS_HANDLE_BATCH; i-- > first && i != 0; ) {
      __atomic_store_n (&handle_entry (p, i)->word,
                        st->head << E_ADDR_SHIFT, __ATOMIC_RELAXED);
      st->head = i;
    }
  }
  h = st->head;
  st->head = entry_next_free (__atomic_load_n (&handle_entry (p, h)->word,
                                               __ATOMIC_RELAXED));
  pthread_mutex_unlock (&st->lock);
  return h;
}

void
zs_handle_put (struct zs_pool *p, uint64_t h)
{
  struct zs_stripe *st = &p->stripes[my_stripe ()];

  pthread_mutex_lock (&st->lock);
  __atomic_store_n (&handle_entry (p, h)->word, st->head << E_ADDR_SHIFT,
                    __ATOMIC_RELAXED);
  st->head = h;
  pthread_mutex_unlock (&st->lock);
}
