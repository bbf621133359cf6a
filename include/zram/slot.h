/* nbdkit-zram: the per-page slot table.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * One 16-byte slot describes one 4 KiB page of the device:
 *
 *   word 0  handle   the allocator handle of the page's object, or, for a
 *                    same-filled page, the repeated 8-byte value
 *   word 1  info     bits  0..12  object size in bytes (0..4096)
 *                    bits 13..    flags (enum slot_flag), the lock bit among
 *                                 them
 *
 * A slot with neither SLOT_SAME nor a handle is empty: the page reads as
 * zeroes (never written, or discarded).
 *
 * Locking: the SLOT_LOCK bit is a per-slot spin lock (with yield).  Holding
 * it gives exclusive right to read and change the slot and to map its
 * object.  Everything else in info is changed only by the lock holder,
 * through the setters below, which keep the lock bit set.  The table is one
 * anonymous mapping reserved with MAP_NORESERVE, so untouched parts cost no
 * memory.
 *
 * slot_peek_* read a slot without the lock; the answer may be stale at once
 * and is meant only for advisory uses (block status).
 */
#ifndef ZRAM_SLOT_H
#define ZRAM_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zram_slot {
  uint64_t handle;
  uint64_t info;
};

#define SLOT_SIZE_BITS 13
#define SLOT_SIZE_MASK ((UINT64_C(1) << SLOT_SIZE_BITS) - 1)

enum slot_flag {
  SLOT_LOCK = SLOT_SIZE_BITS,  /* the per-slot lock */
  SLOT_SAME,                   /* handle holds the fill word, no object */
  SLOT_HUGE,                   /* object is the page stored uncompressed */
};

#define SLOT_BIT(flag) (UINT64_C(1) << (flag))

/* Reserve a zeroed table of nr slots.  Returns NULL with errno ENOMEM (or
 * EOVERFLOW if nr * 16 does not fit in size_t).
 */
extern struct zram_slot *slot_table_create (uint64_t nr);
extern void slot_table_destroy (struct zram_slot *table, uint64_t nr);

/* Fault in the whole table now (it stays zeroed), so that first writes to
 * slots never fault.  Safe while other threads use the table.  Returns 0,
 * or -1 with errno ENOMEM.
 */
extern int slot_table_populate (struct zram_slot *table, uint64_t nr);

/* Spin (yielding the CPU after a while) until the lock is ours. */
extern void slot_lock (struct zram_slot *slot);
extern void slot_unlock (struct zram_slot *slot);

/* --- accessors; the caller holds the slot lock ------------------------- */

static inline uint64_t
slot_get_handle (const struct zram_slot *slot)
{
  return __atomic_load_n (&slot->handle, __ATOMIC_RELAXED);
}

static inline void
slot_set_handle (struct zram_slot *slot, uint64_t handle)
{
  __atomic_store_n (&slot->handle, handle, __ATOMIC_RELAXED);
}

static inline uint64_t
slot_info (const struct zram_slot *slot)
{
  return __atomic_load_n (&slot->info, __ATOMIC_RELAXED);
}

static inline size_t
slot_get_size (const struct zram_slot *slot)
{
  return slot_info (slot) & SLOT_SIZE_MASK;
}

static inline bool
slot_test_flag (const struct zram_slot *slot, enum slot_flag flag)
{
  return (slot_info (slot) & SLOT_BIT (flag)) != 0;
}

/* Replace size and flags at once (the lock bit is kept). */
static inline void
slot_set_size_flags (struct zram_slot *slot, size_t size, uint64_t flag_bits)
{
  __atomic_store_n (&slot->info,
                    (size & SLOT_SIZE_MASK) | flag_bits | SLOT_BIT (SLOT_LOCK),
                    __ATOMIC_RELAXED);
}

/* True if the slot holds nothing (reads as zeroes). */
static inline bool
slot_is_empty (const struct zram_slot *slot)
{
  return !slot_test_flag (slot, SLOT_SAME) && slot_get_handle (slot) == 0;
}

/* --- lock-free peeks (advisory) ---------------------------------------- */

/* True if the page certainly reads as zeroes as of some recent moment:
 * empty, or same-filled with the word 0.
 */
extern bool slot_peek_zero (const struct zram_slot *slot);

/* --- page contents ----------------------------------------------------- */

/* If the 4096-byte page is one 8-byte word repeated, store it in *word and
 * return true.
 */
extern bool page_same_filled (const void *page, uint64_t *word);

/* Fill a 4096-byte page with a repeated 8-byte word. */
extern void page_fill (void *page, uint64_t word);

#endif /* ZRAM_SLOT_H */
