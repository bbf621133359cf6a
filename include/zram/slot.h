/* nbdkit-zram: the per-page slot table.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * One 16-byte slot describes one 4 KiB page of the device:
 *
 *   word 0  handle   the allocator handle of the page's object, or, for a
 *                    same-filled page, the repeated 8-byte value, or, for a
 *                    written-back page (SLOT_WB), where the store holds
 *                    its object: block number << 12 | byte offset in the
 *                    block, plus one (slot_wb_handle), so that it is never
 *                    0 and the lock-free peeks below stay right
 *   word 1  info     bits  0..12  object size in bytes (1..4096; 4096 is
 *                                 a page stored raw, in the pool or in a
 *                                 store block of its own)
 *                    bits 13..21  flags (enum slot_flag), the lock bit among
 *                                 them, and the 2-bit priority (which
 *                                 algorithm compressed the object: 0 the
 *                                 primary, 1..3 a recompression algorithm)
 *                    bits 32..63  access time: seconds since the device
 *                                 state was created, when the page was last
 *                                 read or written (zram's ac_time)
 *
 * A slot with neither SLOT_SAME nor a handle is empty: the page reads as
 * zeroes (never written, or discarded).
 *
 * Locking: the SLOT_LOCK bit is a per-slot spin lock (with yield).  Holding
 * it gives exclusive right to read and change the slot and to map its
 * object.  Everything else in info is changed only by the lock holder,
 * through the setters below, which keep the lock bit set.
 *
 * Memory: the table is one anonymous mapping reserved with MAP_NORESERVE,
 * so untouched parts cost no memory.  Taking a slot lock writes to the
 * table, and even reading an untouched part costs page tables, so a
 * summary, itself reserved the same way, keeps one bit per group of
 * SLOT_GROUP_SLOTS slots (one 4 KiB page of table, 1 MiB of device):
 *
 *   touched  |0|0|1|0|0|0|...        bit g: group g may hold a non-empty slot
 *   slots    [ 256 ][ 256 ][ 256 ]...
 *                          ^ only this page of the table was ever written
 *
 * A writer calls slot_table_touch before it stores a page into a slot; the
 * bit is never cleared for the life of the table.  A clear bit therefore
 * proves every slot of the group empty without loading any of them, so
 * reads, block status, zeroing and teardown of never-written space leave
 * the table (and its page tables) untouched.
 *
 * slot_peek_* and slot_table_*touched* read without the lock; the answer
 * describes a state the slot really had at the moment of the load, and may
 * be stale at once.  A request that overlaps a concurrent write may use it
 * as its linearisation point (it happened before that write).
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
  SLOT_IDLE,                   /* marked idle; a read or write clears it */
  SLOT_INCOMPRESSIBLE,         /* no recompression algorithm shrank it */
  SLOT_PP,                     /* a recompression took a snapshot of it
                                  ("post-processing"); every store into
                                  the slot clears it, so a recompression
                                  that finds it still set knows the slot
                                  is unchanged */
  SLOT_WB,                     /* written back: the page's object (as
                                  the pool held it, compressed with the
                                  algorithm of the slot's priority, or
                                  raw if its size is a page) is in the
                                  backing store at slot_get_wb_block,
                                  slot_get_wb_offset, not in the pool; no
                                  other flag is set with it but the lock
                                  and the priority */
  SLOT_PRIO,                   /* first of the 2 priority bits */
  SLOT_GROUP = SLOT_PRIO + 2,  /* a member of a multi-page group object
                                  (src/group.c): handle is the group and
                                  the member's index in it */
  SLOT_DICT,                   /* first of the 2 dictionary bits: which
                                  of the state's dictionaries (1..3)
                                  compressed the object; 0 = none */
};

#define SLOT_BIT(flag) (UINT64_C(1) << (flag))

#define SLOT_PRIO_BITS 2
#define SLOT_PRIO_MASK (((UINT64_C(1) << SLOT_PRIO_BITS) - 1) << SLOT_PRIO)

/* The access time: seconds, in the top half of info. */
#define SLOT_TIME_SHIFT 32
#define SLOT_TIME_MASK (UINT64_C(0xffffffff) << SLOT_TIME_SHIFT)

#define SLOT_DICT_BITS 2
#define SLOT_DICT_MASK (((UINT64_C(1) << SLOT_DICT_BITS) - 1) << SLOT_DICT)

_Static_assert (SLOT_DICT + SLOT_DICT_BITS <= SLOT_TIME_SHIFT,
                "the flags, priority and dictionary fit below the access time");

/* Every bit of info that describes the stored page (not its size, lock
 * or access time): what a store replaces and a free clears.
 */
#define SLOT_STATE_MASK (~(SLOT_SIZE_MASK | SLOT_BIT (SLOT_LOCK) | SLOT_TIME_MASK))

/* Slots summarised by one bit of the touched map: one 4 KiB page of table. */
#define SLOT_GROUP_SHIFT 8
#define SLOT_GROUP_SLOTS (UINT64_C(1) << SLOT_GROUP_SHIFT)

struct slot_table {
  struct zram_slot *slots;    /* nr slots, zeroed (empty) at creation */
  uint64_t *touched;          /* one bit per group, atomic words */
  uint64_t nr;                /* slots */
};

/* Reserve a zeroed table of nr slots and its touched map.  Returns 0, or
 * -1 with errno ENOMEM (or EOVERFLOW if nr * 16 does not fit in size_t),
 * leaving *t unusable.  Touches none of the memory it reserves.
 */
extern int slot_table_create (struct slot_table *t, uint64_t nr);

/* Unmap both.  Accepts a table whose creation failed or that was zeroed. */
extern void slot_table_destroy (struct slot_table *t);

/* Slot i (i < nr). */
static inline struct zram_slot *
slot_at (const struct slot_table *t, uint64_t i)
{
  return &t->slots[i];
}

/* False if no slot of slot i's group was ever stored to: slot i is
 * certainly empty and its table page was never written.
 */
static inline bool
slot_table_touched (const struct slot_table *t, uint64_t i)
{
  uint64_t g = i >> SLOT_GROUP_SHIFT;

  return (__atomic_load_n (&t->touched[g / 64], __ATOMIC_ACQUIRE)
          >> (g % 64)) & 1;
}

/* Mark slot i's group as touched.  Call before storing a page into slot i
 * (before slot_lock, which itself writes the slot).  Cheap once set: a
 * load, no store.
 */
static inline void
slot_table_touch (struct slot_table *t, uint64_t i)
{
  uint64_t g = i >> SLOT_GROUP_SHIFT, bit = UINT64_C(1) << (g % 64);

  if (!(__atomic_load_n (&t->touched[g / 64], __ATOMIC_RELAXED) & bit))
    __atomic_fetch_or (&t->touched[g / 64], bit, __ATOMIC_SEQ_CST);
}

/* The first slot index in [from, to) whose group is touched, or to if
 * none (every slot in between is empty).  Reads only the touched map, one
 * word per 64 groups (64 MiB of device).
 */
extern uint64_t slot_table_next_touched (const struct slot_table *t,
                                         uint64_t from, uint64_t to);

/* True if slot i certainly reads as zeroes as of some recent moment, found
 * without loading the slot when its group was never touched.
 */
extern bool slot_table_peek_zero (const struct slot_table *t, uint64_t i);

/* Fault in the whole table and its touched map now (they stay as they
 * are), so that first writes to slots never fault.  Safe while other
 * threads use the table.  Returns 0, or -1 with errno ENOMEM.
 */
extern int slot_table_populate (struct slot_table *t);

/* Spin (yielding the CPU after a while) until the lock is ours. */
extern void slot_lock (struct zram_slot *slot);
extern void slot_unlock (struct zram_slot *slot);

/* Unlock after an access (a read): clear SLOT_IDLE and set the access time
 * to t in the same store that releases the lock, so the stamp costs no
 * extra atomic operation.  Returns true if SLOT_IDLE was set.
 */
extern bool slot_unlock_accessed (struct zram_slot *slot, uint32_t t);

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

/* Replace size and flags at once (the lock bit is kept), and set the
 * access time to t.  flag_bits may hold the priority bits (slot_prio_bits).
 */
static inline void
slot_set_size_flags (struct zram_slot *slot, size_t size, uint64_t flag_bits,
                     uint32_t t)
{
  __atomic_store_n (&slot->info,
                    (size & SLOT_SIZE_MASK) | flag_bits | SLOT_BIT (SLOT_LOCK) |
                    ((uint64_t) t << SLOT_TIME_SHIFT),
                    __ATOMIC_RELAXED);
}

static inline void
slot_set_flag (struct zram_slot *slot, enum slot_flag flag)
{
  __atomic_store_n (&slot->info, slot_info (slot) | SLOT_BIT (flag),
                    __ATOMIC_RELAXED);
}

static inline void
slot_clear_flag (struct zram_slot *slot, enum slot_flag flag)
{
  __atomic_store_n (&slot->info, slot_info (slot) & ~SLOT_BIT (flag),
                    __ATOMIC_RELAXED);
}

/* The priority of the algorithm that compressed the object (0..3). */
static inline unsigned
slot_get_prio (const struct zram_slot *slot)
{
  return (slot_info (slot) & SLOT_PRIO_MASK) >> SLOT_PRIO;
}

/* The info bits that encode priority prio, for slot_set_size_flags. */
static inline uint64_t
slot_prio_bits (unsigned prio)
{
  return ((uint64_t) prio << SLOT_PRIO) & SLOT_PRIO_MASK;
}

/* The dictionary that compressed the object: 0 none, else 1..3. */
static inline unsigned
slot_get_dict (const struct zram_slot *slot)
{
  return (slot_info (slot) & SLOT_DICT_MASK) >> SLOT_DICT;
}

/* The dictionary index held in info (or state flag) bits. */
static inline unsigned
slot_dict_of (uint64_t info)
{
  return (info & SLOT_DICT_MASK) >> SLOT_DICT;
}

/* The info bits that encode dictionary index dict, for slot_set_size_flags. */
static inline uint64_t
slot_dict_bits (unsigned dict)
{
  return ((uint64_t) dict << SLOT_DICT) & SLOT_DICT_MASK;
}

/* The access time (seconds since the state was created). */
static inline uint32_t
slot_get_time (const struct zram_slot *slot)
{
  return slot_info (slot) >> SLOT_TIME_SHIFT;
}

/* Bits of a written-back handle that hold the offset in the block. */
#define SLOT_WB_OFFSET_BITS 12
#define SLOT_WB_OFFSET_MASK ((UINT64_C(1) << SLOT_WB_OFFSET_BITS) - 1)

/* The handle word of an object written back to block at byte offset off
 * (< 4096; see the layout).
 */
static inline uint64_t
slot_wb_handle (uint64_t block, unsigned off)
{
  return ((block << SLOT_WB_OFFSET_BITS) | (off & SLOT_WB_OFFSET_MASK)) + 1;
}

/* The store block named by the handle word of a written-back page. */
static inline uint64_t
slot_wb_block_of (uint64_t handle)
{
  return (handle - 1) >> SLOT_WB_OFFSET_BITS;
}

/* The object's byte offset in its block, from the handle word. */
static inline unsigned
slot_wb_offset_of (uint64_t handle)
{
  return (handle - 1) & SLOT_WB_OFFSET_MASK;
}

/* The store block of a written-back slot (SLOT_WB set). */
static inline uint64_t
slot_get_wb_block (const struct zram_slot *slot)
{
  return slot_wb_block_of (slot_get_handle (slot));
}

/* The offset of a written-back slot's object in its block. */
static inline unsigned
slot_get_wb_offset (const struct zram_slot *slot)
{
  return slot_wb_offset_of (slot_get_handle (slot));
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
