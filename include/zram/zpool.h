/* nbdkit-zram: allocator interface for compressed objects.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A zpool stores variable-sized objects of 1 to ZPOOL_MAX_OBJECT bytes and
 * names each by an opaque, non-zero handle.  Callers never keep a raw
 * pointer to an object: they map a handle, touch the bytes, and unmap it.
 * Between map and unmap the object is pinned (compaction will not move it);
 * outside that window the allocator may move it, so the address returned by
 * an earlier map must not be reused.
 *
 * Two implementations sit behind this one interface:
 *   ZPOOL_MALLOC  each object is one malloc(3) block.  Simple, and kept as the
 *                 baseline for comparison benchmarks (plugin "pool=malloc").
 *   ZPOOL_ZS      a zsmalloc-style slab allocator (size classes, multi-page
 *                 spans, compaction, empty spans returned to the OS); its
 *                 design, locking and limits are described in
 *                 src/zsmalloc.h.  map and unmap take no lock; alloc and
 *                 free lock one size class; objects are never copied on
 *                 map (a span is contiguous memory).  It can keep a
 *                 reserve of populated memory (zpool_set_reserve).
 *
 * The allocator knows nothing of pages, slots or NBD.
 *
 * Thread safety: every function may be called from any thread concurrently,
 * except zpool_destroy, which needs exclusive access (no other call in
 * flight or later).  A handle may be mapped by one thread at a time; the
 * device guarantees this by mapping only under its per-slot lock.
 *
 * Errors: functions that can fail return 0 / -1 / NULL and set errno; they
 * never print.  The caller reports.
 */
#ifndef ZRAM_ZPOOL_H
#define ZRAM_ZPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Largest object a pool accepts: one uncompressed 4 KiB page. */
#define ZPOOL_MAX_OBJECT 4096

/* An opaque object name.  0 is never a valid handle. */
typedef uint64_t zpool_handle;

enum zpool_kind {
  ZPOOL_ZS,       /* zsmalloc-style slab allocator (the default) */
  ZPOOL_MALLOC,   /* one malloc block per object (baseline) */
};

enum zpool_map_mode {
  ZPOOL_MAP_RO,   /* caller only reads the object */
  ZPOOL_MAP_WO,   /* caller overwrites the whole object, old bytes unused */
};

/* Statistics of a pool; every field is a snapshot, not a consistent cut. */
struct zpool_stats {
  uint64_t total_bytes;      /* memory taken from the OS for objects
                                (zram's mem_used_total) */
  uint64_t live_bytes;       /* sum of the sizes of live objects */
  uint64_t live_objects;     /* number of live objects */
  uint64_t pages_compacted;  /* OS pages released by compaction, ever */
  uint64_t meta_bytes;       /* allocator bookkeeping outside total_bytes
                                (handle table, span headers); 0 if none */
  /* The reserve (zpool_set_reserve); all 0 without one. */
  uint64_t reserve_bytes;    /* its size (high watermark) */
  uint64_t reserve_free;     /* populated memory free for new spans now,
                                outside total_bytes */
  uint64_t reserve_refills;  /* refill rounds that added memory */
  uint64_t reserve_empty;    /* allocations that found it short and had
                                to wait (or fail) */
  uint64_t reserve_failed;   /* allocations failed (ENOMEM) because it
                                stayed short for the whole wait */
};

/* Spans of a class are grouped by fullness: group g < 10 holds spans whose
 * use is in [g/10, (g+1)/10) (g = 0 includes spans under 10 % but not empty
 * ones), group 10 holds full spans.
 */
#define ZPOOL_FULLNESS_GROUPS 11

/* Statistics of one size class (pools with classes only; for debugging). */
struct zpool_class_stats {
  uint32_t size;             /* largest object the class holds, bytes */
  uint32_t min_size;         /* smallest object the class holds, bytes */
  uint32_t pages_per_span;   /* OS pages in one span */
  uint32_t objs_per_span;    /* object slots in one span */
  uint64_t spans;            /* spans currently mapped */
  uint64_t objects;          /* live objects */
  uint64_t live_bytes;       /* sum of their sizes */
  uint64_t empty_spans;      /* empty spans kept for reuse (not in spans,
                                counted in the pool's total_bytes) */
  uint64_t fullness[ZPOOL_FULLNESS_GROUPS]; /* spans per fullness group */
};

struct zpool;

/* Parse a pool name ("zs" or "malloc").  Returns 0 and sets *kind, or -1
 * (errno EINVAL) for an unknown name.
 */
extern int zpool_parse_kind (const char *name, enum zpool_kind *kind);

/* The name of a kind ("zs", "malloc"). */
extern const char *zpool_kind_name (enum zpool_kind kind);

/* Create an empty pool.  Returns NULL with errno ENOMEM on failure. */
extern struct zpool *zpool_create (enum zpool_kind kind);

/* Free the pool.  NULL is accepted.  The caller guarantees that no other
 * call on this pool is in flight or will follow.  If
 * zpool_destroy_frees_objects (pool) is true, every object still allocated
 * is released with the pool, wholesale; otherwise the caller must free
 * every object first, or they leak.
 */
extern void zpool_destroy (struct zpool *pool);

/* Whether zpool_destroy releases live objects itself (ZPOOL_ZS: it unmaps
 * its arenas whole, which is much faster than freeing objects one by one).
 * false for ZPOOL_MALLOC, which keeps no list of its blocks.
 */
extern bool zpool_destroy_frees_objects (const struct zpool *pool);

/* Allocate an object of size bytes (1 <= size <= ZPOOL_MAX_OBJECT).  Its
 * contents are undefined until written through zpool_map.  Returns the
 * handle, or 0 with errno ENOMEM (out of memory), EINVAL (bad size) or
 * whatever the growth gate refused with (see zpool_set_grow_gate).
 */
extern zpool_handle zpool_alloc (struct zpool *pool, size_t size);

/* Like zpool_alloc, but total_bytes never grows past limit (bytes; 0 = no
 * limit).  An object that fits in memory the pool holds already is
 * allocated whatever total_bytes is; one that needs more memory from the
 * OS, taking total_bytes past limit, is refused before anything is taken:
 * returns 0 with errno ENOSPC.  The check and the growth are one atomic
 * step, so concurrent callers together stay within limit too.  (A pool
 * whose total_bytes is already above limit, because the limit was lowered,
 * only shrinks.)
 */
extern zpool_handle zpool_alloc_limited (struct zpool *pool, size_t size,
                                         uint64_t limit);

/* Free an object.  The handle must come from zpool_alloc on this pool, must
 * not be mapped, and becomes invalid.
 */
extern void zpool_free (struct zpool *pool, zpool_handle handle);

/* Pin the object and return its address.  The object's bytes are
 * contiguous in memory.  Pair every map with zpool_unmap on the same
 * thread; do not map the same handle twice at once.  Never fails.
 */
extern void *zpool_map (struct zpool *pool, zpool_handle handle,
                        enum zpool_map_mode mode);

/* Unpin an object mapped by zpool_map.  The address becomes invalid. */
extern void zpool_unmap (struct zpool *pool, zpool_handle handle);

/* The size at and above which storing an object saves nothing over storing
 * a whole ZPOOL_MAX_OBJECT: the device stores pages that compress to this
 * size or more uncompressed ("huge").  Constant for the life of the pool.
 */
extern size_t zpool_huge_class_size (const struct zpool *pool);

/* The bytes of pool memory an object of size bytes (1 <= size <=
 * ZPOOL_MAX_OBJECT) occupies: the size of its class in a pool with size
 * classes, the allocator's rounded chunk otherwise.  Two sizes with the
 * same answer cost the same; a caller that wants to know whether a smaller
 * object saves memory compares these (recompression does).  Constant for
 * the life of the pool; cheap, takes no lock.
 */
extern size_t zpool_class_size (const struct zpool *pool, size_t size);

/* A gate on the pool's growth (for example src/mem-guard.c, which keeps
 * the pool below its cgroup's memory limit).  Called by zpool_alloc before
 * an allocation that may take more memory from the OS: when total_bytes
 * would pass what the gate last allowed, at most once per ZPOOL_GROW_STEP
 * bytes of growth (concurrent allocations may call it together).  It
 * returns 0 to allow growth by another ZPOOL_GROW_STEP, or -1 with errno
 * set to refuse: zpool_alloc then fails with that errno, and asks again on
 * the next allocation that would grow the pool.  Allocations that reuse
 * memory freed earlier (total_bytes below what was allowed) never ask.
 * total_bytes is the pool's zpool_total_bytes at the time of the call.
 */
typedef int (*zpool_grow_fn) (void *opaque, uint64_t total_bytes);

#define ZPOOL_GROW_STEP (UINT64_C (2) << 20)

/* Install (or with fn NULL remove) the growth gate.  Call before the pool
 * is shared with other threads.
 */
extern void zpool_set_grow_gate (struct zpool *pool, zpool_grow_fn fn,
                                 void *opaque);

/* THE RESERVE
 *
 * A pool whose memory backs swap must not need new memory to store a page:
 * when the whole machine is out of memory, a page fault of the thread
 * storing a page waits in reclaim for swap-out, which waits for that very
 * store.  A reserve keeps populated memory ready so that allocation never
 * faults in new memory: zpool_alloc takes memory only from the reserve,
 * and one background thread, the only one that waits for memory, refills
 * it between a low watermark (half its size) and a high one (its size),
 * and gives back what exceeds its size by half.  When an allocation finds
 * the reserve short it wakes that thread and waits for it.  While the
 * thread keeps adding memory, or merely has not had the CPU, the wait goes
 * on (memory is there; a burst outran the refill, or the machine is
 * busy).  Once it has added nothing for wait_ms milliseconds while it
 * cannot get memory (its last attempt got none, or it is at work while
 * free memory is below about twice the kernel's high watermark: waiting
 * in reclaim, the machine is out of memory), or after 5 times wait_ms in
 * all (and at least 5 s), the
 * allocation fails with ENOMEM (counted in reserve_failed): the caller
 * fails that one write instead of stalling.
 *
 * The memory is populated, not locked: the process must lock its memory
 * (mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)) for the reserve to
 * stay in RAM.  It is held in addition to total_bytes, and the memory
 * limit of the device counts only total_bytes.  With a reserve the growth
 * gate (zpool_set_grow_gate) is asked by the refill thread before it takes
 * more memory, not by zpool_alloc.
 */

/* Largest wait_ms accepted: one minute. */
#define ZPOOL_RESERVE_MAX_WAIT_MS 60000

/* Give the pool a reserve of bytes (rounded up to whole 32 KiB blocks; at
 * least ZPOOL_RESERVE_MIN) and wait_ms, how long an allocation waits for
 * a refill that makes no progress.
 * Call once, before the pool is shared and before zpool_reserve_start;
 * until then allocations behave as without a reserve.  Returns 0, or -1
 * with errno ENOTSUP (a pool kind without reserves: ZPOOL_MALLOC), EINVAL
 * (bytes below ZPOOL_RESERVE_MIN, wait_ms above the maximum, or called
 * twice).
 */
#define ZPOOL_RESERVE_MIN (UINT64_C (256) << 10)
extern int zpool_set_reserve (struct zpool *pool, uint64_t bytes,
                              unsigned wait_ms);

/* Fill the reserve to its size (the calling thread may wait for memory),
 * then start its refill thread.  From then on allocations take memory only
 * from the reserve.  Start threads only where the process will not fork
 * any more (nbdkit: .after_fork); zpool_destroy stops it.  Returns 0, or
 * -1 with errno ENOMEM (the memory or the thread could not be had; the
 * pool is unchanged but for what was filled) or EINVAL (no reserve set, or
 * started already).
 */
extern int zpool_reserve_start (struct zpool *pool);

/* Memory taken from the OS for objects, in bytes (cheap; for limits). */
extern uint64_t zpool_total_bytes (const struct zpool *pool);

/* Fill *stats. */
extern void zpool_get_stats (const struct zpool *pool, struct zpool_stats *stats);

/* Move objects out of sparsely used spans and release emptied spans to the
 * OS.  Safe while other threads alloc, free, map and unmap.  Returns the
 * number of OS pages released by this call (0 for pools that cannot
 * compact).
 */
extern uint64_t zpool_compact (struct zpool *pool);

/* Fill *stats for the size class number index (0 = smallest size).
 * Returns 0, or -1 with errno ENOENT when index is past the last class, or
 * ENOTSUP for a pool without classes (ZPOOL_MALLOC).  Takes the class lock
 * briefly; safe at any time.
 */
extern int zpool_class_stats (const struct zpool *pool, unsigned index,
                              struct zpool_class_stats *stats);

/* Print the pool's statistics, then one line per non-empty class, to fp
 * (for debugging; the format is not stable).
 */
extern void zpool_dump_stats (const struct zpool *pool, FILE *fp);

#endif /* ZRAM_ZPOOL_H */
