/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs), internals.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The public contract is include/zram/zpool.h; src/zpool.c reaches this
 * allocator through zpool_zs_ops (declared in src/zpool-impl.h).  This
 * header explains the design, names its limits, and holds the internals
 * shared by its four files:
 *
 *   src/zsmalloc.c    the pool: classes, create/destroy, alloc, free, map
 *   src/zs-handle.c   the handle table and its free lists
 *   src/zs-span.c     arenas, blocks and spans: getting, keeping, releasing
 *                     memory; span headers
 *   src/zs-reserve.c  the locked reserve and its refill thread
 *   src/zs-compact.c  compaction
 *
 * SIZE CLASSES AND SPANS
 *
 * Object sizes are rounded up to a multiple of ZS_CLASS_STEP (16 bytes),
 * giving ZS_NR_SIZES (256) sizes from 16 to 4096.  Each size packs its
 * objects into spans: 1..ZS_MAX_SPAN_PAGES contiguous OS pages, the length
 * chosen to waste the least (ties: the shorter span).  Objects lie back to
 * back and may cross page boundaries inside a span; a span is contiguous
 * virtual memory, so map() returns a direct pointer and never copies.  Sizes with the same geometry (pages per span, objects per span)
 * share one class, the class of the largest of them (as in the kernel,
 * 256 sizes become about 120 classes at 8 pages a span).
 *
 *   class 1568 B, 5 pages, 13 objects:
 *   |<---------------------- one span, 5 x 4096 bytes --------------------->|
 *   | obj0 | obj1 | obj2 | ... page boundaries fall inside objects ... |o12|w|
 *                                                      w = 96 bytes wasted
 *
 * The huge watermark: the largest class that still puts more than one
 * object in its span is the last useful one; every bigger object gets a
 * whole page of its own (class "4096", 1 page, 1 object), so storing it
 * compressed saves nothing.  zpool_huge_class_size() is one byte more than
 * that class's size (3633 at 8 pages a span).
 *
 * HANDLES
 *
 * A handle is an index into a handle table of 16-byte entries:
 *
 *   chunks[]  (ZS_MAX_CHUNKS pointers, allocated at create)
 *     [0] --> [entry 0 .. ZS_CHUNK_ENTRIES-1]   allocated lazily, never freed
 *     [1] --> [ ... ]                           before zpool_destroy
 *     [2] = NULL
 *
 *   entry = { word: object address | size | USED | PIN  (one atomic u64)
 *             span: the span holding the object  (guarded by the class lock) }
 *
 * A chunk is published with a release store before any handle in it is
 * handed out, and never moves, so readers need no lock.  Free handles are
 * kept in ZS_NR_STRIPES free lists, each with its own mutex; a thread sticks
 * to one stripe (chosen by a hash of its thread id).  A stripe that runs dry takes up to ZS_HANDLE_BATCH free
 * handles from another stripe (locking one at a time, never two), and
 * only if all are empty ZS_HANDLE_BATCH fresh indices from one atomic
 * counter, so the table grows with the live objects, not with churn.  The object's exact size lives in the entry,
 * so freeing finds the class without any lookup and live_bytes is exact.
 *
 * LOCKING AND THE PIN HANDSHAKE
 *
 * Each class has a mutex guarding its span lists, every span's free-slot
 * list and owner array, and the entries' span fields.  alloc and free take
 * the lock of one class only; map and unmap take no lock at all.
 *
 *   map:     CAS the entry word from (w without PIN) to (w | PIN), acquire;
 *            spin while PIN is set.  The address in w is now stable.
 *   unmap:   clear PIN, release (publishes the caller's writes).
 *   compact: holds the class lock; per object, tries once to CAS PIN on.
 *            If the object is mapped (PIN already set) it is skipped and its
 *            span stays.  Otherwise it copies the bytes to a slot of a
 *            fuller span and stores the new word (new address, PIN clear)
 *            with release.  A map racing with it spins for one memcpy.
 *   free:    holds the class lock, so compaction of that class cannot be
 *            inside its move; the contract forbids freeing a mapped handle.
 *
 * Compaction never waits for a pin and map never waits for a lock, so
 * there is no lock-order cycle.  Compaction takes one class at a time and,
 * between two source spans, lets in any alloc or free waiting for that
 * class (they count themselves as waiters while blocked), so none waits
 * longer than the move of one span's objects.
 *
 * ARENAS, BLOCKS AND RETURNING MEMORY
 *
 * Span memory is mapped ZS_ARENA_BYTES (2 MiB) at a time for the whole
 * pool and cut into blocks of ZS_BLOCK_PAGES (8) pages, the longest span.
 * A span of k pages takes k free pages in a row inside one block; the
 * blocks of every class are shared, so pages freed by one class serve any
 * other.  Blocks in use sit on pool lists by their longest run of free
 * pages (1..8; full blocks on none), and a span takes the block whose
 * longest run fits most tightly, which keeps whole free blocks whole:
 *
 *   arena (one mmap) | block | block | block | ... 64 blocks ...  |
 *   block (8 pages)  | span of class A (3) | B (1) | free | free | ... |
 *   runs[2] -> blocks whose longest free run is 2 pages -> ...
 *
 * Blocks not in use are "virgin": unpopulated, on their arena's stack.
 * One pool-wide page_lock guards blocks, arenas and the span header slab;
 * it is taken once per span made or released, never per object, and
 * always after a class lock, never before.
 *
 * A span whose last object is freed (or moved away by compaction) leaves
 * its list under the class lock.  Up to ZS_EMPTY_KEEP_PAGES pages of such
 * empty spans per class are kept whole for reuse, so that a class whose
 * population wobbles around a span boundary does not give back and fault
 * in pages at every step; they are counted in total_bytes and compaction
 * releases them.  Any other empty span is released at once.  Without a
 * reserve its pages get MADV_DONTNEED (RSS falls; under mlockall, where
 * that fails, fresh pages are mapped over the range instead), a block
 * left with no page in use becomes virgin again, and an arena with only
 * virgin blocks is munmapped.  Arenas are MADV_NOHUGEPAGE; they keep the
 * number of mappings low (no VMA split per span).
 *
 * Span headers (struct zs_span and its owner array) are carved from whole
 * blocks taken for them, page by page, in slabs of 64-byte multiples, one
 * free list per size; a freed header is kept for the next span of that
 * size, and header blocks are never given back before the pool is
 * destroyed.  So the
 * only memory a new span needs is pages of blocks, which is what the
 * reserve keeps ready.
 *
 * THE RESERVE (src/zs-reserve.c; off unless zpool_set_reserve is called)
 *
 * With a reserve, the request path never takes a virgin block and never
 * makes an arena or a handle table chunk: it takes span pages and header
 * pages only from blocks already populated, and handles only from table
 * entries already populated.  Released pages stay populated and go back
 * to the block lists; free pages in listed blocks are the reserve.  One
 * refill thread, the only one that waits for memory, populates virgin
 * blocks (MADV_POPULATE_WRITE) while the whole free blocks are fewer than
 * the low watermark, until they reach the high one (the reserve's size),
 * populates the handle table ahead of use, and gives whole free blocks
 * back (MADV_DONTNEED, or the mapping over) while the free pages exceed
 * the size by half.  A span or handle that finds the reserve short wakes
 * the thread and waits for it; it fails with ENOMEM once the thread has
 * added nothing for the reserve's wait while it cannot get memory (see
 * zs_reserve_wait), or after a cap.  Populated is not locked: the process
 * locks its memory (mlockall MCL_FUTURE | MCL_ONFAULT) for the reserve to
 * stay in RAM.
 *
 * WHAT A WRITE INTO A FRESH POOL COSTS (measured 2026-11-22, 2-CPU VM)
 *
 * The allocator's code is under 1 % of a write.  What a write into a fresh
 * pool pays beyond the codec is the kernel's first-touch fault on each new
 * page of span memory: one per 4 KiB stored, 0.44-0.6 per page written,
 * 1.6-2 us each on this VM, so 15-25 % of an LZ4 compression.  Any pool
 * that takes fresh pages pays it: in bench-core pool=malloc looks cheaper
 * only because glibc hands the next device the heap the previous one freed
 * (0.01 faults per page); with malloc_trim (0) after each zram_destroy both
 * pools come out at 1.17-1.24x raw LZ4.  Once memory is reused
 * (overwrites) the zs write path is 1.04-1.07x raw LZ4.  Tried against the
 * faults and dropped, as they did not pay:
 *
 *   MADV_POPULATE_WRITE    per span or per arena: populating costs what
 *                          faulting does (1.7-2.7 us a page, in batches of
 *                          1 to 512 pages), and per arena it fills 2 MiB
 *                          for each class in use.  (The reserve uses it
 *                          for another reason: to fault pages in on its
 *                          own thread, so that a write need not.)
 *   MADV_HUGEPAGE arenas   2 MiB aligned: 0.15 us per 4 KiB when the kernel
 *                          has a huge page at hand, but 8.7 us per 4 KiB on
 *                          a first run (bench-core's first rep 11x slower),
 *                          2 MiB of RSS per class in use, khugepaged may
 *                          refill released holes, and counting whole huge
 *                          pages honestly breaks the fill target (1.03 at
 *                          113 MiB leaves no room for a 2 MiB tail)
 *   prefetch, NT stores    prefetching the object before the copy, or
 *                          copying it with non-temporal stores: no change
 *   more kept spans        128 instead of 16 pages a class: no change,
 *                          overwrites fault only 0.005-0.02 times a page
 *
 * Spans sit on per-class lists by fullness (ZS_NR_FULLNESS groups of
 * tenths, plus full); alloc takes a slot in the fullest non-full span, and
 * compaction moves objects from the emptiest spans into the fullest ones.
 *
 * ACCOUNTING
 *
 * total_bytes counts span pages only (the kernel's mem_used_total also
 * leaves out zsmalloc's own metadata).  The metadata (handle table chunks,
 * span headers with 4 bytes per object slot) is reported apart, in
 * zpool_stats.meta_bytes.
 *
 * A limit (zpool_alloc_limited) is enforced where the pool grows: a new
 * span's pages are added to total_pages by one compare-and-swap against
 * the limit before any memory is taken, so total_bytes never passes it,
 * however many threads grow classes at once.  Kept empty spans are
 * counted already and are reused whatever the limit.
 *
 * KNOWN LIMITS
 *
 * Virtual memory of arenas is given back only when a whole arena is free,
 * so a pool that shrank keeps its address space (not its RSS).  Handle
 * table chunks and header blocks are never freed before zpool_destroy
 * (header blocks: about 1/50 of the peak pool for swap-sized objects).
 * With a reserve, free pages of partly used blocks stay populated (they
 * are stock, reported in reserve_free) and only whole free blocks are
 * given back, so reserve_free can exceed the reserve's size by up to 7
 * pages per partly used block after heavy churn; compaction, which
 * empties spans, lets whole blocks come free.  Handle indices are
 * limited to ZS_MAX_HANDLES (2^30).  Compaction moves objects only within
 * a class; it cannot recover the rounding of objects up to their class
 * size, nor the last, partly used span of each class.
 */
#ifndef ZRAM_ZSMALLOC_H
#define ZRAM_ZSMALLOC_H

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "zpool-impl.h"

#define ZS_PAGE_SIZE       4096u
#define ZS_CLASS_STEP      16u                 /* size class granularity */
#define ZS_NR_SIZES        (ZPOOL_MAX_OBJECT / ZS_CLASS_STEP)
#define ZS_MAX_SPAN_PAGES  8u                  /* longest span, in pages */

#define ZS_ARENA_BYTES     (2u << 20)         /* span memory mapped at once */
#define ZS_BLOCK_PAGES     ZS_MAX_SPAN_PAGES  /* pages in a block */
#define ZS_BLOCK_BYTES     (ZS_BLOCK_PAGES * ZS_PAGE_SIZE)
#define ZS_ARENA_BLOCKS    (ZS_ARENA_BYTES / ZS_BLOCK_BYTES)
#define ZS_EMPTY_KEEP_PAGES 16u               /* empty span pages a class keeps */
#define ZS_HDR_ALIGN       64u                /* span header slab granularity */
#define ZS_HDR_BUCKETS     (ZS_PAGE_SIZE / ZS_HDR_ALIGN)

#define ZS_NR_FULLNESS     ZPOOL_FULLNESS_GROUPS /* 10 partial groups + full */

#define ZS_CHUNK_SHIFT     14
#define ZS_CHUNK_ENTRIES   (1u << ZS_CHUNK_SHIFT)  /* handles per table chunk */
#define ZS_MAX_CHUNKS      (1u << 16)
#define ZS_MAX_HANDLES     ((uint64_t) ZS_CHUNK_ENTRIES * ZS_MAX_CHUNKS)
#define ZS_NR_STRIPES      16u                 /* free-handle lists */
#define ZS_HANDLE_BATCH    64u                 /* fresh handles per refill */


/* ---------------------------------------------------------------------- */
/* Internals shared by zsmalloc.c (pool, alloc, free, map),
 * zs-handle.c (handle table), zs-span.c (arenas, spans), zs-compact.c.
 */

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

enum zs_block_state {
  BLOCK_VIRGIN,                 /* unpopulated, on its arena's stack */
  BLOCK_LISTED,                 /* in use: on runs[run], or full (run 0) */
  BLOCK_MOVING,                 /* the refill thread is populating or
                                   releasing it (page_lock not held) */
};

/* A block of ZS_BLOCK_PAGES pages of an arena; page_lock guards it. */
struct zs_block {
  struct zs_block *prev, *next; /* in the pool's runs[run] list */
  struct zs_arena *arena;
  char *base;
  uint8_t used;                 /* bit i: page i is in use */
  uint8_t run;                  /* longest run of free pages; its list */
  uint8_t state;                /* enum zs_block_state */
};

/* Span memory is mapped ZS_ARENA_BYTES at a time for the whole pool and
 * cut into ZS_ARENA_BLOCKS blocks.
 */
struct zs_arena {
  struct zs_arena *prev, *next; /* in the pool's avail or full list */
  char *base;
  uint32_t nr_virgin;           /* virgin blocks, on the stack below */
  uint16_t virgin[ZS_ARENA_BLOCKS];
  struct zs_block blocks[ZS_ARENA_BLOCKS];
};

struct zs_span {
  struct zs_span *prev, *next;  /* in the class list of its group */
  char *base;                   /* its pages in the block */
  struct zs_class *cls;
  struct zs_block *block;
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
  uint32_t hdr_bucket;          /* its span headers' slab: bytes / 64 - 1 */
  uint32_t waiters;             /* atomic: threads blocked on lock */
} __attribute__ ((aligned (64)));

/* One entry of the handle table; see HANDLES above. */
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

/* The reserve (src/zs-reserve.c).  pages == 0: no reserve. */
struct zs_reserve {
  uint64_t pages;               /* size, the high watermark */
  uint64_t low;                 /* refill while whole free blocks hold
                                   fewer pages than this */
  unsigned wait_ms;             /* longest wait of a request for it */
  uint64_t table_margin;        /* handles populated ahead of use */
  pthread_cond_t added;         /* page_lock; CLOCK_MONOTONIC: the refill
                                   thread added stock (or gave up) */
  pthread_cond_t wake;          /* page_lock; CLOCK_MONOTONIC: wake it */
  bool kicked;                  /* page_lock: wake was signalled */
  bool stopping;                /* page_lock */
  bool running;                 /* the thread exists */
  uint64_t progress;            /* page_lock: stock the thread added, in
                                   blocks and handle-table steps */
  bool busy;                    /* atomic: the thread is at work (between
                                   a wake-up and its next sleep) */
  bool failing;                 /* page_lock: its last refill round wanted
                                   memory and got none */
  uint64_t short_bytes;         /* free memory below this is short (the
                                   kernel reclaims); set at start */
  pthread_t thread;
  uint64_t refills;             /* atomic: refill rounds that added stock */
  uint64_t empty;               /* atomic: requests that found it short */
  uint64_t failed;              /* atomic: requests failed for want of it */
};

struct zs_pool {
  struct zpool base;            /* must come first */
  struct zs_class *class_of[ZS_NR_SIZES]; /* by (size - 1) / step */
  unsigned nr_classes;
  size_t huge_class_size;
  uint64_t total_pages;         /* atomic: pages in spans */
  uint64_t pages_compacted;     /* atomic */
  pthread_mutex_t compact_lock; /* one compaction at a time */

  /* Span memory (src/zs-span.c), under page_lock. */
  pthread_mutex_t page_lock;
  struct zs_block *runs[ZS_BLOCK_PAGES + 1]; /* listed blocks by longest
                                   free run; runs[0] unused */
  struct zs_arena *arenas_avail; /* arenas with a virgin block */
  struct zs_arena *arenas_full; /* arenas without */
  uint64_t free_pages;          /* atomic reads: free pages of listed blocks */
  uint64_t whole_blocks;        /* atomic reads: listed blocks all free */
  uint64_t hdr_pages;           /* atomic reads: pages of header blocks */
  void *hdr_free[ZS_HDR_BUCKETS]; /* free headers by size, next-linked */
  struct zs_block *hdr_block;   /* the header block being cut */
  unsigned hdr_block_cut;       /* its pages cut into headers so far */
  struct zs_reserve reserve;

  /* The handle table. */
  struct zs_entry **chunks;     /* ZS_MAX_CHUNKS, elements atomic */
  pthread_mutex_t chunk_lock;   /* serialises chunk allocation */
  uint64_t nr_chunks;           /* atomic */
  uint64_t next_fresh;          /* atomic: first never-used index */
  uint64_t table_ready;         /* atomic: with a reserve, entries below
                                   this index are populated */
  struct zs_stripe stripes[ZS_NR_STRIPES];

  struct zs_class classes[ZS_NR_SIZES]; /* nr_classes used, by size */
};

#define POOL(p) ((struct zs_pool *) (p))

/* Lock a class for alloc or free, counting ourselves as a waiter while
 * blocked, so that compaction knows to step aside (class_yield).
 */
/* GCC 12 with -fsanitize=address loses track of which class the pointer
 * names and warns that the atomic add writes "into a region of size 0"
 * (-Wstringop-overflow), a known false positive of its object-size
 * analysis on atomics; the pointer always comes from classes[].
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
static inline void
class_lock (struct zs_class *cls)
{
  if (pthread_mutex_trylock (&cls->lock) == 0)
    return;
  __atomic_add_fetch (&cls->waiters, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock (&cls->lock);
  __atomic_sub_fetch (&cls->waiters, 1, __ATOMIC_RELAXED);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* Called by compaction, holding the lock, between two units of work: if
 * alloc or free is waiting, let it in.  Merely unlocking and relocking is
 * not enough: the unlocking thread nearly always wins the lock back before
 * a woken waiter runs, and an alloc could wait for a whole class's
 * compaction (tens of milliseconds).
 */
static inline void
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

static inline struct zs_entry *
handle_entry (const struct zs_pool *p, uint64_t h)
{
  struct zs_entry *chunk =
    __atomic_load_n (&p->chunks[h >> ZS_CHUNK_SHIFT], __ATOMIC_ACQUIRE);

  return &chunk[h & (ZS_CHUNK_ENTRIES - 1)];
}

static inline unsigned
group_of (const struct zs_class *cls, uint32_t inuse)
{
  if (inuse == cls->objs)
    return GROUP_FULL;
  return inuse * (ZS_NR_FULLNESS - 1) / cls->objs;
}

static inline void
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

static inline void
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
static inline void
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

/* Take a free slot of a span that has one; give it to handle h. */
static inline uint32_t
slot_take (struct zs_span *s, uint64_t h)
{
  uint32_t slot = s->free_head;

  assert (slot != SLOT_NONE);
  s->free_head = s->owner[slot] & ~SLOT_FREE;
  s->owner[slot] = h;
  s->inuse++;
  return slot;
}

static inline void
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
static inline struct zs_span *
fullest_partial (struct zs_class *cls)
{
  int g;

  for (g = GROUP_FULL - 1; g >= 0; g--)
    if (cls->lists[g])
      return cls->lists[g];
  return NULL;
}

static inline void
class_count (struct zs_class *cls, int64_t objects, int64_t bytes)
{
  __atomic_store_n (&cls->live_objects, cls->live_objects + objects,
                    __ATOMIC_RELAXED);
  __atomic_store_n (&cls->live_bytes, cls->live_bytes + bytes,
                    __ATOMIC_RELAXED);
}

/* zs-handle.c: take a free handle (0 with errno ENOMEM), give one back. */
extern uint64_t zs_handle_get (struct zs_pool *p);
extern void zs_handle_put (struct zs_pool *p, uint64_t h);

/* zs-span.c: get an empty span for a class within limit bytes of
 * total_bytes (0 = none; class lock held; may be dropped and retaken; NULL
 * with errno ENOSPC or ENOMEM); keep a span that became
 * empty for reuse (class lock held; false: release it instead); release an
 * empty span (class lock NOT held); unmap all the pool's memory (pool
 * being destroyed).
 */
extern struct zs_span *zs_span_get (struct zs_pool *p, struct zs_class *cls,
                                    uint64_t limit);
extern bool zs_span_keep (struct zs_class *cls, struct zs_span *s);
extern void zs_span_release (struct zs_pool *p, struct zs_span *s);
extern void zs_pages_destroy (struct zs_pool *p);
/* Release every class's kept empty spans (ZS_EMPTY_KEEP_PAGES), one class
 * lock at a time; returns the pages released.  No class lock held.  At the
 * memory limit, memory kept for one class must not refuse another's
 * allocation: zs_alloc calls this before it answers ENOSPC.
 */
extern uint64_t zs_release_kept (struct zs_pool *p);

/* zs-span.c, for the refill thread (page_lock held unless said): take a
 * virgin block, mapping an arena if none is left (page_lock dropped and
 * retaken around the mmap; NULL with errno ENOMEM), the block then MOVING;
 * list a populated MOVING block as free stock; take a whole free block
 * out of the lists (NULL if none), then MOVING; make a MOVING block virgin
 * again, its pages already released (returns an arena to unmap with
 * zs_arena_unmap after dropping page_lock, or NULL).
 */
extern struct zs_block *zs_block_take_virgin (struct zs_pool *p);
extern void zs_block_add_free (struct zs_pool *p, struct zs_block *b);
extern struct zs_block *zs_block_take_whole (struct zs_pool *p);
extern struct zs_arena *zs_block_make_virgin (struct zs_pool *p,
                                              struct zs_block *b);
extern void zs_arena_unmap (struct zs_arena *a);

/* Give pages back to the OS: MADV_DONTNEED, or under mlockall (where that
 * fails) fresh pages mapped over them.  -1 if neither worked.
 */
extern int zs_pages_discard (char *base, size_t bytes);

/* zs-reserve.c: the request path found the reserve short (page_lock
 * held, no class lock): count it, wake the refill thread, and wait for it
 * to add stock.  w starts zeroed (ZS_WAIT_INIT) and carries the wait from
 * call to call.  Returns false once the refill thread has added nothing
 * for the reserve's wait_ms while it cannot get memory (its last round
 * got none, or it is at work while free memory is below about twice the
 * kernel's high watermark), or the whole
 * wait has lasted ZS_WAIT_MAX_FACTOR times wait_ms, and at least
 * ZS_WAIT_MAX_MIN_MS (the caller then fails with ENOMEM and counts it
 * with zs_reserve_fail).  Stop the refill thread (pool being destroyed).
 */
#define ZS_WAIT_MAX_FACTOR 5
/* A waiter whose deadline passed while the refill thread was not stuck
 * looks again after wait_ms, but not sooner than this: it is woken at
 * once by any progress, so this only bounds how late it notices the
 * thread becoming stuck.
 */
#define ZS_WAIT_POLL_MS 10
#define ZS_WAIT_MAX_MIN_MS 5000
struct zs_wait {
  struct timespec deadline;     /* no progress by then: give up */
  struct timespec end;          /* give up anyway */
  uint64_t seen;                /* the refill thread's progress seen */
  bool started;
};
#define ZS_WAIT_INIT { { 0, 0 }, { 0, 0 }, 0, false }
extern bool zs_reserve_wait (struct zs_pool *p, struct zs_wait *w);
extern void zs_reserve_fail (struct zs_pool *p);
extern void zs_reserve_stop (struct zs_pool *p);
extern int zs_set_reserve (struct zpool *pool, uint64_t bytes, unsigned wait_ms);
extern int zs_reserve_start (struct zpool *pool);

/* zs-handle.c: with a reserve, populate the handle table so that entries
 * up to next_fresh + margin exist and are resident (refill thread; may
 * wait for memory).  Returns -1 with errno ENOMEM.
 */
extern int zs_handle_prefault (struct zs_pool *p, uint64_t margin);

/* zs-compact.c: the pool's compact operation. */
extern uint64_t zs_compact (struct zpool *pool);

#endif /* ZRAM_ZSMALLOC_H */
