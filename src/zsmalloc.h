/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs), internals.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The public contract is include/zram/zpool.h; src/zpool.c reaches this
 * allocator through zpool_zs_ops (declared in src/zpool-impl.h).  This
 * header explains the design and names its limits.
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
 * to one stripe, and a stripe refills ZS_HANDLE_BATCH fresh indices at a
 * time from one atomic counter.  The object's exact size lives in the entry,
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
 * ARENAS AND RETURNING MEMORY
 *
 * Span memory is mapped per class ZS_ARENA_BYTES (2 MiB) at a time and cut
 * into ranges of the class's span length:
 *
 *   arena (one mmap)  | span | span | free | span | free | ... |
 *                                     ^ MADV_DONTNEED'd, no RSS
 *
 * A span whose last object is freed (or moved away by compaction) leaves
 * its list under the class lock.  Up to ZS_EMPTY_KEEP_PAGES pages of such
 * empty spans per class are kept whole for reuse, so that a class whose
 * population wobbles around a span boundary does not give back and fault
 * in pages at every step; they are counted in total_bytes and compaction
 * releases them.  Any other empty span is released at once: its pages get
 * MADV_DONTNEED (RSS falls) and its range returns to the arena; an arena
 * with no span left is munmapped.  Arenas keep the number of mappings low
 * (no VMA split per span) and make span birth a pointer pop.
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
 * KNOWN LIMITS
 *
 * Virtual memory of arenas is given back only when a whole arena is free,
 * so a pool that shrank keeps its address space (not its RSS).  Handle
 * table chunks are never freed before zpool_destroy.  Handle indices are
 * limited to ZS_MAX_HANDLES (2^30).  Compaction moves objects only within
 * a class; it cannot recover the rounding of objects up to their class
 * size, nor the last, partly used span of each class.
 */
#ifndef ZRAM_ZSMALLOC_H
#define ZRAM_ZSMALLOC_H

#include "zpool-impl.h"

#define ZS_PAGE_SIZE       4096u
#define ZS_CLASS_STEP      16u                 /* size class granularity */
#define ZS_NR_SIZES        (ZPOOL_MAX_OBJECT / ZS_CLASS_STEP)
#define ZS_MAX_SPAN_PAGES  8u                  /* longest span, in pages */

#define ZS_ARENA_BYTES     (2u << 20)         /* span memory mapped at once */
#define ZS_EMPTY_KEEP_PAGES 16u               /* empty span pages a class keeps */

#define ZS_NR_FULLNESS     ZPOOL_FULLNESS_GROUPS /* 10 partial groups + full */

#define ZS_CHUNK_SHIFT     14
#define ZS_CHUNK_ENTRIES   (1u << ZS_CHUNK_SHIFT)  /* handles per table chunk */
#define ZS_MAX_CHUNKS      (1u << 16)
#define ZS_MAX_HANDLES     ((uint64_t) ZS_CHUNK_ENTRIES * ZS_MAX_CHUNKS)
#define ZS_NR_STRIPES      16u                 /* free-handle lists */
#define ZS_HANDLE_BATCH    64u                 /* fresh handles per refill */

#endif /* ZRAM_ZSMALLOC_H */
