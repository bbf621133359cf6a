/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Design, locking and the pin handshake are described in src/zsmalloc.h.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zram/compiler.h"
#include "zsmalloc.h"

/* Fullness lists of a class: ZS_NR_FULLNESS groups (the last one full),
 * then the list of spans isolated by a running compaction.
 */
#define GROUP_FULL      (ZS_NR_FULLNESS - 1)
#define GROUP_ISOLATED  ZS_NR_FULLNESS
#define NR_LISTS        (ZS_NR_FULLNESS + 1)

/* Span slot owners: a used slot holds its handle index; a free one holds
 * SLOT_FREE | the next free slot (SLOT_NONE ends the list).
 */
#define SLOT_FREE  UINT32_C(0x80000000)
#define SLOT_NONE  UINT32_C(0x7fffffff)

struct zs_class;

/* Span memory is mapped ZS_ARENA_BYTES at a time per class, cut into
 * ranges of the class's span length; free ranges are MADV_DONTNEED'd.
 */
struct zs_arena {
  struct zs_arena *prev, *next; /* in the class's avail or full list */
  char *base;
  uint32_t nr_ranges;           /* span ranges in the arena */
  uint32_t nr_free;             /* free ranges, on the stack below */
  uint16_t free[];              /* stack of free range numbers */
};

struct zs_span {
  struct zs_span *prev, *next;  /* in the class list of its group */
  char *base;                   /* its range in the arena */
  struct zs_class *cls;
  struct zs_arena *arena;
  uint32_t inuse;               /* used slots */
  uint32_t free_head;           /* first free slot or SLOT_NONE */
  unsigned group;               /* list it is on */
  uint32_t owner[];             /* per slot, see SLOT_FREE */
};

struct zs_class {
  pthread_mutex_t lock;
  uint32_t size;                /* slot size = largest object */
  uint32_t min_size;            /* smallest object mapped here */
  uint32_t pages;               /* pages per span */
  uint32_t objs;                /* slots per span */
  struct zs_span *lists[NR_LISTS];
  /* Counters written under lock, read without it (atomic loads). */
  uint64_t nr_spans;            /* spans mapped */
  uint64_t live_objects;        /* used slots */
  uint64_t live_bytes;          /* sum of object sizes */
  uint64_t nr_group[NR_LISTS];  /* spans per list */
  struct zs_span *empty;        /* empty spans kept for reuse (next-linked) */
  uint64_t nr_empty;            /* spans on it */
  struct zs_arena *avail;       /* arenas with a free range */
  struct zs_arena *full;        /* arenas without */
  uint32_t arena_ranges;        /* ranges per arena */
  uint32_t waiters;             /* atomic: threads blocked on lock */
} __attribute__ ((aligned (64)));

/* Lock a class for alloc or free, counting ourselves as a waiter while
 * blocked, so that compaction knows to step aside (class_yield).
 */
static void
class_lock (struct zs_class *cls)
{
  if (pthread_mutex_trylock (&cls->lock) == 0)
    return;
  __atomic_add_fetch (&cls->waiters, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock (&cls->lock);
  __atomic_sub_fetch (&cls->waiters, 1, __ATOMIC_RELAXED);
}

/* Called by compaction, holding the lock, between two units of work: if
 * alloc or free is waiting, let it in.  Merely unlocking and relocking is
 * not enough: the unlocking thread nearly always wins the lock back before
 * a woken waiter runs, and an alloc could wait for a whole class's
 * compaction (tens of milliseconds).
 */
static void
class_yield (struct zs_class *cls)
{
  unsigned spins;

  if (__atomic_load_n (&cls->waiters, __ATOMIC_RELAXED) == 0)
    return;
  pthread_mutex_unlock (&cls->lock);
  for (spins = 0; spins < 1000 &&
         __atomic_load_n (&cls->waiters, __ATOMIC_RELAXED) > 0; spins++)
    sched_yield ();
  pthread_mutex_lock (&cls->lock);
}

/* One entry of the handle table; see the diagram in zsmalloc.h. */
struct zs_entry {
  uint64_t word;                /* atomic: address | size | flags */
  struct zs_span *span;         /* class lock */
};

/* The entry word.  Used: bit 0 PIN, bit 1 USED, bits 2-14 the size,
 * bits 20-63 the address >> 4 (objects are 16-byte aligned, addresses
 * below 2^48).  Free: bits 20-63 hold the next free handle of its stripe.
 */
#define E_PIN        UINT64_C(1)
#define E_USED       UINT64_C(2)
#define E_SIZE_SHIFT 2
#define E_SIZE_MASK  UINT64_C(0x1fff)
#define E_ADDR_SHIFT 20

static inline uint64_t
entry_make (const void *addr, size_t size)
{
  return ((uint64_t) (uintptr_t) addr >> 4) << E_ADDR_SHIFT
    | (uint64_t) size << E_SIZE_SHIFT | E_USED;
}

static inline char *
entry_addr (uint64_t w)
{
  return (char *) (uintptr_t) ((w >> E_ADDR_SHIFT) << 4);
}

static inline size_t
entry_size (uint64_t w)
{
  return (w >> E_SIZE_SHIFT) & E_SIZE_MASK;
}

static inline uint64_t
entry_next_free (uint64_t w)
{
  return w >> E_ADDR_SHIFT;
}

struct zs_stripe {
  pthread_mutex_t lock;
  uint64_t head;                /* first free handle, 0 = none */
} __attribute__ ((aligned (64)));

struct zs_pool {
  struct zpool base;            /* must come first */
  struct zs_class *class_of[ZS_NR_SIZES]; /* by (size - 1) / step */
  unsigned nr_classes;
  size_t huge_class_size;
  uint64_t total_pages;         /* atomic: pages in spans */
  uint64_t span_meta_bytes;     /* atomic: span headers */
  uint64_t pages_compacted;     /* atomic */
  pthread_mutex_t compact_lock; /* one compaction at a time */

  /* The handle table. */
  struct zs_entry **chunks;     /* ZS_MAX_CHUNKS, elements atomic */
  pthread_mutex_t chunk_lock;   /* serialises chunk allocation */
  uint64_t nr_chunks;           /* atomic */
  uint64_t next_fresh;          /* atomic: first never-used index */
  struct zs_stripe stripes[ZS_NR_STRIPES];

  struct zs_class classes[ZS_NR_SIZES]; /* nr_classes used, by size */
};

#define POOL(p) ((struct zs_pool *) (p))

/* ---------------------------------------------------------------------- */
/* Handle table */

static inline struct zs_entry *
handle_entry (const struct zs_pool *p, uint64_t h)
{
  struct zs_entry *chunk =
    __atomic_load_n (&p->chunks[h >> ZS_CHUNK_SHIFT], __ATOMIC_ACQUIRE);

  return &chunk[h & (ZS_CHUNK_ENTRIES - 1)];
}

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

/* Each thread sticks to one stripe, assigned round robin. */
static unsigned
my_stripe (void)
{
  static unsigned next;
  static __thread unsigned stripe = UINT32_MAX;

  if (stripe == UINT32_MAX)
    stripe = __atomic_fetch_add (&next, 1, __ATOMIC_RELAXED) % ZS_NR_STRIPES;
  return stripe;
}

/* Move up to ZS_HANDLE_BATCH free handles from another stripe to st,
 * whose lock the caller holds and whose list is empty.  Only try-locks
 * others, so two threads stealing from each other cannot deadlock.  This
 * keeps the table from growing when some threads mostly allocate and
 * others mostly free.  Returns true if it got any.
 */
static bool
handle_steal (struct zs_pool *p, struct zs_stripe *st)
{
  unsigned self = st - p->stripes, k, n;
  uint64_t first, last, next;

  for (k = 1; k < ZS_NR_STRIPES; k++) {
    struct zs_stripe *o = &p->stripes[(self + k) % ZS_NR_STRIPES];

    if (pthread_mutex_trylock (&o->lock) != 0)
      continue;
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
    __atomic_store_n (&handle_entry (p, last)->word, st->head << E_ADDR_SHIFT,
                      __ATOMIC_RELAXED);
    st->head = first;
    return true;
  }
  return false;
}

/* Take a free handle index.  Returns 0 with errno ENOMEM on failure. */
static uint64_t
handle_get (struct zs_pool *p)
{
  struct zs_stripe *st = &p->stripes[my_stripe ()];
  uint64_t h, first, i;

  pthread_mutex_lock (&st->lock);
  if (st->head == 0 && !handle_steal (p, st)) {
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

static void
handle_put (struct zs_pool *p, uint64_t h)
{
  struct zs_stripe *st = &p->stripes[my_stripe ()];

  pthread_mutex_lock (&st->lock);
  __atomic_store_n (&handle_entry (p, h)->word, st->head << E_ADDR_SHIFT,
                    __ATOMIC_RELAXED);
  st->head = h;
  pthread_mutex_unlock (&st->lock);
}

/* ---------------------------------------------------------------------- */
/* Spans and their lists (class lock held unless said otherwise) */

static inline unsigned
group_of (const struct zs_class *cls, uint32_t inuse)
{
  if (inuse == cls->objs)
    return GROUP_FULL;
  return inuse * (ZS_NR_FULLNESS - 1) / cls->objs;
}

static void
list_add (struct zs_class *cls, struct zs_span *s, unsigned group)
{
  s->group = group;
  s->prev = NULL;
  s->next = cls->lists[group];
  if (s->next)
    s->next->prev = s;
  cls->lists[group] = s;
  __atomic_store_n (&cls->nr_group[group], cls->nr_group[group] + 1,
                    __ATOMIC_RELAXED);
}

static void
list_del (struct zs_class *cls, struct zs_span *s)
{
  if (s->prev)
    s->prev->next = s->next;
  else
    cls->lists[s->group] = s->next;
  if (s->next)
    s->next->prev = s->prev;
  __atomic_store_n (&cls->nr_group[s->group], cls->nr_group[s->group] - 1,
                    __ATOMIC_RELAXED);
}

/* Move a non-empty span to the list its fullness calls for.  Spans
 * isolated by compaction stay where they are until it puts them back.
 */
static void
span_regroup (struct zs_class *cls, struct zs_span *s)
{
  unsigned g = group_of (cls, s->inuse);

  if (s->group == GROUP_ISOLATED || s->group == g)
    return;
  list_del (cls, s);
  list_add (cls, s, g);
}

static inline size_t
span_bytes (const struct zs_class *cls)
{
  return (size_t) cls->pages * ZS_PAGE_SIZE;
}

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
  a->nr_ranges = n;
  a->nr_free = n;
  for (i = 0; i < n; i++)
    a->free[i] = n - 1 - i;     /* hand out low addresses first */
  return a;
}

/* Get an empty span for the class: a kept one, else a new one in an
 * arena.  Class lock held on entry and on return; it may be dropped in
 * between (to map an arena).  Returns NULL with errno ENOMEM.
 */
static struct zs_span *
span_get (struct zs_pool *p, struct zs_class *cls)
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
  __atomic_add_fetch (&p->total_pages, cls->pages, __ATOMIC_RELAXED);
  __atomic_add_fetch (&p->span_meta_bytes, meta, __ATOMIC_RELAXED);
  return s;

 nomem:
  errno = ENOMEM;
  return NULL;
}

/* A span just became empty and is on no list.  Keep it for reuse if the
 * class keeps fewer than ZS_EMPTY_KEEP_PAGES pages of them, and return
 * true; else return false: the caller must span_release it after dropping
 * the class lock.  Class lock held.
 */
static bool
span_keep (struct zs_class *cls, struct zs_span *s)
{
  if ((cls->nr_empty + 1) * cls->pages > ZS_EMPTY_KEEP_PAGES)
    return false;
  s->next = cls->empty;
  cls->empty = s;
  __atomic_store_n (&cls->nr_empty, cls->nr_empty + 1, __ATOMIC_RELAXED);
  return true;
}

/* Give an empty span's pages back to the OS and its range back to its
 * arena; unmap the arena if it is then unused.  Class lock NOT held.
 */
static void
span_release (struct zs_pool *p, struct zs_span *s)
{
  struct zs_class *cls = s->cls;
  struct zs_arena *a = s->arena, *dead = NULL;

  /* Before the range can be handed out again, so no new data is lost. */
  madvise (s->base, span_bytes (cls), MADV_DONTNEED);
  class_lock (cls);
  a->free[a->nr_free++] = (s->base - a->base) / span_bytes (cls);
  if (a->nr_free == 1) {
    arena_unlink (&cls->full, a);
    arena_link (&cls->avail, a);
  }
  if (a->nr_free == a->nr_ranges) {
    arena_unlink (&cls->avail, a);
    dead = a;
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

/* Take a free slot of a span that has one; give it to handle h. */
static uint32_t
slot_take (struct zs_span *s, uint64_t h)
{
  uint32_t slot = s->free_head;

  assert (slot != SLOT_NONE);
  s->free_head = s->owner[slot] & ~SLOT_FREE;
  s->owner[slot] = h;
  s->inuse++;
  return slot;
}

static void
slot_release (struct zs_span *s, uint32_t slot)
{
  assert (!(s->owner[slot] & SLOT_FREE));
  s->owner[slot] = SLOT_FREE | s->free_head;
  s->free_head = slot;
  s->inuse--;
}

static inline char *
slot_addr (const struct zs_span *s, uint32_t slot)
{
  return s->base + (size_t) slot * s->cls->size;
}

/* The fullest span with a free slot, or NULL. */
static struct zs_span *
fullest_partial (struct zs_class *cls)
{
  int g;

  for (g = GROUP_FULL - 1; g >= 0; g--)
    if (cls->lists[g])
      return cls->lists[g];
  return NULL;
}

static void
class_count (struct zs_class *cls, int64_t objects, int64_t bytes)
{
  __atomic_store_n (&cls->live_objects, cls->live_objects + objects,
                    __ATOMIC_RELAXED);
  __atomic_store_n (&cls->live_bytes, cls->live_bytes + bytes,
                    __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------- */
/* Pool */

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

static void zs_destroy (struct zpool *pool);

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
    pthread_mutex_init (&p->classes[i].lock, NULL);
    p->classes[i].arena_ranges =
      ZS_ARENA_BYTES / (p->classes[i].pages * ZS_PAGE_SIZE);
  }
  return &p->base;
}

static void
zs_destroy (struct zpool *pool)
{
  struct zs_pool *p = POOL (pool);
  unsigned i, g;
  struct zs_span *s, *next;

  for (i = 0; i < p->nr_classes; i++) {
    struct zs_class *cls = &p->classes[i];
    struct zs_arena *a, *anext;

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
    pthread_mutex_destroy (&cls->lock);
  }
  for (i = 0; i < ZS_MAX_CHUNKS && p->chunks[i]; i++)
    free (p->chunks[i]);
  free (p->chunks);
  for (i = 0; i < ZS_NR_STRIPES; i++)
    pthread_mutex_destroy (&p->stripes[i].lock);
  pthread_mutex_destroy (&p->chunk_lock);
  pthread_mutex_destroy (&p->compact_lock);
  free (p);
}

static inline struct zs_class *
size_class (struct zs_pool *p, size_t size)
{
  return p->class_of[(size - 1) / ZS_CLASS_STEP];
}

static zpool_handle
zs_alloc (struct zpool *pool, size_t size)
{
  struct zs_pool *p = POOL (pool);
  struct zs_class *cls = size_class (p, size);
  struct zs_entry *e;
  struct zs_span *s, *fresh = NULL;
  uint64_t h;
  uint32_t slot;

  h = handle_get (p);
  if (h == 0)
    return 0;
  e = handle_entry (p, h);

  class_lock (cls);
  s = fullest_partial (cls);
  if (s == NULL) {
    /* Use the new span at once even if span_get dropped the lock and
     * another thread made a span meanwhile: no empty span may sit on a
     * list.
     */
    fresh = span_get (p, cls);
    if (fresh == NULL) {
      pthread_mutex_unlock (&cls->lock);
      handle_put (p, h);
      errno = ENOMEM;
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
    if (!span_keep (cls, s))
      empty = s;
  }
  else
    span_regroup (cls, s);
  pthread_mutex_unlock (&cls->lock);

  if (empty)
    span_release (p, empty);
  handle_put (p, h);
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
    + __atomic_load_n (&p->span_meta_bytes, __ATOMIC_RELAXED);
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

/* ---------------------------------------------------------------------- */
/* Compaction */

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
    if (s->inuse == 0) {
      /* Cannot happen: free releases isolated spans that empty. */
      assert (0);
    }
    list_add (cls, s, group_of (cls, s->inuse));
  }
  pthread_mutex_unlock (&cls->lock);

  while ((s = done) != NULL) {
    done = s->next;
    span_release (p, s);
  }
  return released;
}

static uint64_t
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

const struct zpool_ops zpool_zs_ops = {
  .name = "zs",
  .create = zs_create,
  .destroy = zs_destroy,
  .alloc = zs_alloc,
  .free = zs_free,
  .map = zs_map,
  .unmap = zs_unmap,
  .huge_class_size = zs_huge_class_size,
  .total_bytes = zs_total_bytes,
  .get_stats = zs_get_stats,
  .compact = zs_compact,
  .class_stats = zs_class_stats,
};
