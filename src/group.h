/* nbdkit-zram: multi-page group objects (internal to the core).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A 4 KiB page is a short input for any codec: cold pages compress
 * better together.  A group is up to ZRAM_GROUP_MAX_PAGES idle pages
 * compressed as one frame with the state's group compressor
 * (zram_meta.group_comp).  The frame is cut into pieces of at most one
 * page (the pool holds no larger object: a full piece fills a page of its
 * own, with no size-class waste) and held in the pool; the group's
 * descriptor is a small malloc'd block.
 *
 *   slot 7  SLOT_GROUP, handle = &g | 0 ─┐
 *   slot 8  SLOT_GROUP, handle = &g | 1 ─┼─> struct zram_group g
 *   slot 12 SLOT_GROUP, handle = &g | 2 ─┘     live 0b111, refs 3
 *                                              piece[0..n) -> pool objects
 *
 * Lifetime: refs counts the members still stored in the group plus
 * temporary holds (the walk that builds it, a dissolve in progress).  A
 * member leaves when a store replaces its slot (write, trim, zero, reset,
 * a dissolve that stores it alone): zram_release_state calls
 * group_put_member after the slot is unlocked.  The one that takes refs
 * to 0 frees the group.  So a thread that holds a member's slot lock
 * (a read) has the group alive: its member still counts.
 *
 * Every group of a state is on the state's list (group_lock), so that
 * destroying the state frees them all without a table walk, and the
 * dissolve walk finds groups whose live share fell low.  A holder found on
 * the list takes a hold only if refs is not 0 yet (a group at 0 is being
 * freed: its freer unlinks it under the same lock before freeing).
 */
#ifndef ZRAM_GROUP_H
#define ZRAM_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "zram/zpool.h"
#include "zram/zram.h"

struct zram_meta;
struct zram_thread_ctx;

/* Pieces of a frame: a frame is stored only if smaller than the members'
 * separate objects, so below ZRAM_GROUP_MAX_PAGES pages.
 */
#define ZRAM_GROUP_MAX_PIECES ZRAM_GROUP_MAX_PAGES

/* Low bits of a member's handle word that hold its index in the group. */
#define ZRAM_GROUP_INDEX_MASK ((uint64_t) ZRAM_GROUP_MAX_PAGES - 1)

struct zram_group {
  struct zram_group *prev, *next; /* the state's list (group_lock) */
  uint32_t refs;              /* atomic: members stored + holds */
  uint32_t live;              /* atomic: bit i set while member i is stored */
  uint32_t frame_len;         /* bytes of the compressed frame */
  uint64_t id;                /* unique in the process, never reused: names
                                 the frame in a thread's cache of the
                                 last group it decompressed */
  uint8_t nr;                 /* members when built (pages in the frame) */
  uint8_t nr_pieces;
  uint8_t dict;               /* the state's dictionary index whose
                                 group_dict compressed the frame, 0 =
                                 none; each member stored counts as one
                                 of its objects */
  uint64_t index[ZRAM_GROUP_MAX_PAGES]; /* each member's slot */
  zpool_handle piece[ZRAM_GROUP_MAX_PIECES]; /* ZPOOL_MAX_OBJECT bytes
                                 each, the last one the rest */
} __attribute__ ((aligned (ZRAM_GROUP_MAX_PAGES)));

/* A member's handle word, and back. */
static inline uint64_t
group_member_handle (const struct zram_group *g, unsigned i)
{
  return (uint64_t) (uintptr_t) g | i;
}

static inline struct zram_group *
group_of (uint64_t handle)
{
  return (struct zram_group *) (uintptr_t) (handle & ~ZRAM_GROUP_INDEX_MASK);
}

static inline unsigned
group_member_of (uint64_t handle)
{
  return handle & ZRAM_GROUP_INDEX_MASK;
}

/* Decompress the group of the locked member slot whose handle word is
 * handle and copy the member's page into dst (ZRAM_PAGE_SIZE bytes).
 * Uses ctx's group buffer.  0, or -1 with errno ENOMEM (no group
 * buffer) or EIO (the frame failed to decompress).
 */
extern int group_read_member (struct zram_meta *m, struct zram_thread_ctx *ctx,
                              uint64_t handle, unsigned char *dst);

/* A member left its group (its slot was given another state and
 * unlocked): uncount it, and free the group if it was the last reference.
 */
extern void group_put_member (struct zram_meta *m, uint64_t handle);

/* Free every group of m (its destruction: no reader, no writer).  Frees
 * the pieces too unless free_pieces is false (a pool that releases its
 * objects wholesale).
 */
extern void group_free_all (struct zram_meta *m, bool free_pieces);

#endif /* ZRAM_GROUP_H */
