/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs): arenas, blocks,
 * spans and span headers.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Design, locking and the reserve are described in src/zsmalloc.h.
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

/* Map a new arena, all its blocks virgin.  NULL with errno ENOMEM. */
static struct zs_arena *
arena_create (void)
{
  struct zs_arena *a = malloc (sizeof *a);
  uint32_t i;

  if (a == NULL)
    return NULL;
  a->base = mmap (NULL, ZS_ARENA_BYTES, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a->base == MAP_FAILED) {
    free (a);
    errno = ENOMEM;
    return NULL;
  }
  assert ((uintptr_t) a->base >> 48 == 0);
  /* A transparent huge page would make the RSS of a sparsely used arena
   * 2 MiB whatever total_bytes says, and every span release would split
   * it.  Best effort: the arena works either way.
   */
  madvise (a->base, ZS_ARENA_BYTES, MADV_NOHUGEPAGE);
  a->nr_virgin = ZS_ARENA_BLOCKS;
  for (i = 0; i < ZS_ARENA_BLOCKS; i++) {
    a->virgin[i] = ZS_ARENA_BLOCKS - 1 - i;   /* low addresses first */
    a->blocks[i].arena = a;
    a->blocks[i].base = a->base + (size_t) i * ZS_BLOCK_BYTES;
    a->blocks[i].used = 0;
    a->blocks[i].run = 0;
    a->blocks[i].state = BLOCK_VIRGIN;
  }
  return a;
}

void
zs_arena_unmap (struct zs_arena *a)
{
  munmap (a->base, ZS_ARENA_BYTES);
  free (a);
}

int
zs_pages_discard (char *base, size_t bytes)
{
  /* MADV_DONTNEED refuses locked memory (mlockall, the plugin's
   * mlock=true): then map fresh zero pages over the range, which drops the
   * old ones.
   */
  if (madvise (base, bytes, MADV_DONTNEED) == 0)
    return 0;
  if (mmap (base, bytes, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED)
    return 0;
  return -1;
}

/* --- blocks (page_lock held throughout) ---------------------------------- */

#define RUN_MASK(k) ((1u << (k)) - 1)

/* Longest run of zero bits in the low ZS_BLOCK_PAGES bits of used. */
static unsigned
longest_run (unsigned used)
{
  unsigned i, cur = 0, best = 0;

  for (i = 0; i < ZS_BLOCK_PAGES; i++) {
    cur = (used >> i) & 1 ? 0 : cur + 1;
    if (cur > best)
      best = cur;
  }
  return best;
}

/* Put a LISTED block on the list of its longest free run (none if full). */
static void
block_link (struct zs_pool *p, struct zs_block *b)
{
  unsigned r = longest_run (b->used);

  b->run = r;
  b->prev = NULL;
  b->next = NULL;
  if (r == 0)
    return;
  b->next = p->runs[r];
  if (b->next)
    b->next->prev = b;
  p->runs[r] = b;
}

static void
block_unlink (struct zs_pool *p, struct zs_block *b)
{
  if (b->run == 0)
    return;
  if (b->prev)
    b->prev->next = b->next;
  else
    p->runs[b->run] = b->next;
  if (b->next)
    b->next->prev = b->prev;
}

static bool
have_reserve (const struct zs_pool *p)
{
  return p->reserve.pages != 0;
}

static void
count_free (struct zs_pool *p, int64_t pages, int64_t whole)
{
  __atomic_store_n (&p->free_pages, p->free_pages + pages, __ATOMIC_RELAXED);
  __atomic_store_n (&p->whole_blocks, p->whole_blocks + whole,
                    __ATOMIC_RELAXED);
}

/* Take a virgin block from an arena, mapping a new arena if none has one.
 * page_lock is dropped around the mmap.  NULL with errno ENOMEM.
 */
struct zs_block *
zs_block_take_virgin (struct zs_pool *p)
{
  struct zs_arena *a;
  struct zs_block *b;

  if (p->arenas_avail == NULL) {
    pthread_mutex_unlock (&p->page_lock);
    a = arena_create ();
    pthread_mutex_lock (&p->page_lock);
    if (a == NULL)
      return NULL;
    arena_link (&p->arenas_avail, a);
  }
  a = p->arenas_avail;
  b = &a->blocks[a->virgin[--a->nr_virgin]];
  if (a->nr_virgin == 0) {
    arena_unlink (&p->arenas_avail, a);
    arena_link (&p->arenas_full, a);
  }
  assert (b->state == BLOCK_VIRGIN);
  b->state = BLOCK_MOVING;
  b->used = 0;
  return b;
}

void
zs_block_add_free (struct zs_pool *p, struct zs_block *b)
{
  assert (b->state == BLOCK_MOVING && b->used == 0);
  b->state = BLOCK_LISTED;
  block_link (p, b);
  count_free (p, ZS_BLOCK_PAGES, 1);
}

struct zs_block *
zs_block_take_whole (struct zs_pool *p)
{
  struct zs_block *b = p->runs[ZS_BLOCK_PAGES];

  if (b == NULL)
    return NULL;
  assert (b->used == 0);
  block_unlink (p, b);
  b->state = BLOCK_MOVING;
  count_free (p, -(int64_t) ZS_BLOCK_PAGES, -1);
  return b;
}

struct zs_arena *
zs_block_make_virgin (struct zs_pool *p, struct zs_block *b)
{
  struct zs_arena *a = b->arena;

  assert (b->state == BLOCK_MOVING && b->used == 0);
  b->state = BLOCK_VIRGIN;
  a->virgin[a->nr_virgin++] = b - a->blocks;
  if (a->nr_virgin == 1) {
    arena_unlink (&p->arenas_full, a);
    arena_link (&p->arenas_avail, a);
  }
  if (a->nr_virgin < ZS_ARENA_BLOCKS)
    return NULL;
  arena_unlink (&p->arenas_avail, a);
  return a;
}

/* Take k free pages in a row, from the listed block whose longest free
 * run fits most tightly.  Without a reserve, a virgin block is taken when
 * no listed block has room (its pages are faulted in by their first
 * use); with one, NULL instead (the reserve is short).  NULL with errno
 * ENOMEM.
 */
static char *
pages_take_in (struct zs_pool *p, struct zs_block *b, unsigned k)
{
  unsigned o;

  for (o = 0; (b->used >> o) & RUN_MASK (k); o++)
    ;
  assert (o + k <= ZS_BLOCK_PAGES);
  count_free (p, -(int64_t) k, b->used == 0 ? -1 : 0);
  block_unlink (p, b);
  b->used |= RUN_MASK (k) << o;
  block_link (p, b);
  return b->base + (size_t) o * ZS_PAGE_SIZE;
}

static char *
pages_take (struct zs_pool *p, unsigned k, struct zs_block **bp)
{
  struct zs_block *b = NULL;
  unsigned r;

  for (r = k; r <= ZS_BLOCK_PAGES && b == NULL; r++)
    b = p->runs[r];
  if (b == NULL) {
    if (have_reserve (p)) {
      errno = ENOMEM;
      return NULL;
    }
    b = zs_block_take_virgin (p);
    if (b == NULL)
      return NULL;
    zs_block_add_free (p, b);
  }
  *bp = b;
  return pages_take_in (p, b, k);
}

/* Give back k pages taken by pages_take.  Without a reserve, a block left
 * with no page in use becomes virgin (the caller discarded the pages), and
 * an arena left with only virgin blocks is returned for the caller to
 * unmap once page_lock is dropped; else NULL.
 */
static struct zs_arena *
pages_put (struct zs_pool *p, struct zs_block *b, char *base, unsigned k)
{
  unsigned o = (base - b->base) / ZS_PAGE_SIZE;

  assert (b->state == BLOCK_LISTED);
  assert ((b->used & (RUN_MASK (k) << o)) == (RUN_MASK (k) << o));
  block_unlink (p, b);
  b->used &= ~(RUN_MASK (k) << o);
  count_free (p, k, b->used == 0 ? 1 : 0);
  if (b->used == 0 && !have_reserve (p)) {
    count_free (p, -(int64_t) ZS_BLOCK_PAGES, -1);
    b->state = BLOCK_MOVING;
    return zs_block_make_virgin (p, b);
  }
  block_link (p, b);
  return NULL;
}

/* --- span headers (page_lock held) --------------------------------------- */

static size_t
header_bytes (const struct zs_class *cls)
{
  return (size_t) (cls->hdr_bucket + 1) * ZS_HDR_ALIGN;
}

/* A header for a span of cls, from the free list of its size; a list that
 * is empty gets a page cut into headers.  NULL with errno ENOMEM.
 */
static struct zs_span *
header_take (struct zs_pool *p, struct zs_class *cls)
{
  void **head = &p->hdr_free[cls->hdr_bucket];
  size_t size = header_bytes (cls), off;
  struct zs_block *b;
  char *page;
  void *h;

  if (*head == NULL) {
    /* Header pages are never given back: they come from blocks of their
     * own, taken whole, so that they pin no block that spans share (its
     * free pages could never be trimmed).
     */
    if (p->hdr_block == NULL || p->hdr_block_cut == ZS_BLOCK_PAGES) {
      if (pages_take (p, ZS_BLOCK_PAGES, &b) == NULL)
        return NULL;
      p->hdr_block = b;
      p->hdr_block_cut = 0;
      __atomic_store_n (&p->hdr_pages, p->hdr_pages + ZS_BLOCK_PAGES,
                        __ATOMIC_RELAXED);
    }
    page = p->hdr_block->base + (size_t) p->hdr_block_cut++ * ZS_PAGE_SIZE;
    for (off = 0; off + size <= ZS_PAGE_SIZE; off += size) {
      *(void **) (page + off) = *head;
      *head = page + off;
    }
  }
  h = *head;
  *head = *(void **) h;
  return h;
}

static void
header_put (struct zs_pool *p, struct zs_class *cls, struct zs_span *s)
{
  void **head = &p->hdr_free[cls->hdr_bucket];

  *(void **) s = *head;
  *head = s;
}

/* --- spans ---------------------------------------------------------------- */

/* Wake the refill thread when the whole free blocks fall below the low
 * watermark (page_lock held).
 */
static void
reserve_check_low (struct zs_pool *p)
{
  struct zs_reserve *r = &p->reserve;

  if (r->pages && !r->kicked && p->whole_blocks * ZS_BLOCK_PAGES < r->low) {
    r->kicked = true;
    pthread_cond_signal (&r->wake);
  }
}

/* Count n more pages in total_pages unless that would take the pool past
 * limit bytes (0 = none).  One compare-and-swap: concurrent growers of
 * different classes cannot overshoot together.
 */
static bool
count_span_pages (struct zs_pool *p, uint32_t n, uint64_t limit)
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
 * total_pages), else a new one, if the pages it adds to total_pages stay
 * within limit bytes (0 = none).  Class lock held on entry and on return;
 * it may be dropped in between (to wait for the reserve).  Returns NULL
 * with errno ENOSPC (over the limit: nothing was taken) or ENOMEM.
 */
struct zs_span *
zs_span_get (struct zs_pool *p, struct zs_class *cls, uint64_t limit)
{
  struct zs_wait wait = ZS_WAIT_INIT;
  struct zs_span *s;
  struct zs_block *b;
  char *base;
  uint32_t i;

  if ((s = cls->empty) != NULL) {
    cls->empty = s->next;
    __atomic_store_n (&cls->nr_empty, cls->nr_empty - 1, __ATOMIC_RELAXED);
    return s;
  }
  /* Before any memory is taken, so a refusal leaves the pool as it was. */
  if (!count_span_pages (p, cls->pages, limit)) {
    errno = ENOSPC;
    return NULL;
  }
  pthread_mutex_lock (&p->page_lock);
  for (;;) {
    s = header_take (p, cls);
    if (s != NULL) {
      base = pages_take (p, cls->pages, &b);
      if (base != NULL)
        break;
      header_put (p, cls, s);
    }
    if (!have_reserve (p)) {
      pthread_mutex_unlock (&p->page_lock);
      goto nomem;
    }
    /* Short of reserve: wait for the refill thread without the class
     * lock (lock order: class lock, then page_lock).
     */
    pthread_mutex_unlock (&p->page_lock);
    pthread_mutex_unlock (&cls->lock);
    pthread_mutex_lock (&p->page_lock);
    if (!zs_reserve_wait (p, &wait)) {
      zs_reserve_fail (p);
      pthread_mutex_unlock (&p->page_lock);
      class_lock (cls);
      goto nomem;
    }
    pthread_mutex_unlock (&p->page_lock);
    class_lock (cls);
    pthread_mutex_lock (&p->page_lock);
  }
  reserve_check_low (p);
  pthread_mutex_unlock (&p->page_lock);

  s->block = b;
  s->base = base;
  s->cls = cls;
  s->inuse = 0;
  s->free_head = 0;
  for (i = 0; i < cls->objs; i++)
    s->owner[i] = SLOT_FREE | (i + 1 < cls->objs ? i + 1 : SLOT_NONE);
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

/* Release an empty span: its pages go back to their block, its header to
 * the slab.  Without a reserve the pages are given back to the OS first,
 * before anyone can take them again, so no new data is lost; if that
 * fails the pages stay in use for good (their arena then stays until the
 * pool is destroyed).  With a reserve they stay populated: they are
 * reserve now.  Class lock NOT held.
 */
void
zs_span_release (struct zs_pool *p, struct zs_span *s)
{
  struct zs_class *cls = s->cls;
  struct zs_arena *dead = NULL;
  bool reusable = true;

  if (!have_reserve (p))
    reusable = zs_pages_discard (s->base, span_bytes (cls)) == 0;
  pthread_mutex_lock (&p->page_lock);
  if (reusable)
    dead = pages_put (p, s->block, s->base, cls->pages);
  header_put (p, cls, s);
  pthread_mutex_unlock (&p->page_lock);

  __atomic_sub_fetch (&p->total_pages, cls->pages, __ATOMIC_RELAXED);
  if (dead)
    zs_arena_unmap (dead);
}

void
zs_pages_destroy (struct zs_pool *p)
{
  struct zs_arena *a, *next;

  for (a = p->arenas_avail; a; a = next) {
    next = a->next;
    zs_arena_unmap (a);
  }
  for (a = p->arenas_full; a; a = next) {
    next = a->next;
    zs_arena_unmap (a);
  }
  p->arenas_avail = p->arenas_full = NULL;
}
