/* nbdkit-zram: writeback to the backing store (zram_writeback,
 * include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * One page, the way requests stay fast (zram's post-processing, as in
 * src/recompress.c):
 *
 *   lock ─ selected? ─ set PP ─ decompress into ctx->page ─ unlock
 *   take a block, write the page to it                   (no lock held)
 *   lock ─ PP still set? ─yes─> slot := WB(block) ─ unlock ─ free the object
 *                       └─no──> unlock ─ give the block back (raced)
 *
 * Every store into a slot (write, partial write, trim, discard) replaces
 * all its flags, PP included, so "PP still set" proves that nothing was
 * stored in between; and since post-processing walks run one at a time
 * (pp_lock), no other walk can have set PP again meanwhile.  A reset
 * cannot free the state under us: each page is done inside one read-side
 * section, and the state's blocks are given back only when it is
 * destroyed, after the grace period.
 */
#include <errno.h>
#include <string.h>

#include "zram-impl.h"

/* The request checked against the live state, with defaults filled in. */
struct wb_plan {
  enum zram_wb_type type;
  uint64_t max_pages;
  uint64_t start, end;
  uint32_t now, min_age_s;    /* ZRAM_WB_COLD: access time <= now - age */
  struct wb_limit *limit;     /* the device's writeback_limit */
};

static int
plan_make (const struct zram_meta *m, const struct zram_wb_req *req,
           struct wb_plan *p)
{
  if (req->type < ZRAM_WB_IDLE || req->type > ZRAM_WB_COLD) {
    errno = EINVAL;
    return -1;
  }
  p->type = req->type;
  p->max_pages = req->max_pages;
  p->start = req->start_index;
  p->end = req->end_index ? req->end_index : m->nr_pages;
  p->now = meta_now (m);
  p->min_age_s = req->min_age_s;
  if (p->end > m->nr_pages || p->start > p->end) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* Whether slot info describes a page the plan writes back. */
static bool
selected (uint64_t handle, uint64_t info, const struct wb_plan *p)
{
  if (handle == 0 ||
      (info & (SLOT_BIT (SLOT_SAME) | SLOT_BIT (SLOT_WB) | SLOT_BIT (SLOT_PP))))
    return false;
  switch (p->type) {
  case ZRAM_WB_IDLE:
    return info & SLOT_BIT (SLOT_IDLE);
  case ZRAM_WB_HUGE:
    return info & SLOT_BIT (SLOT_HUGE);
  case ZRAM_WB_HUGE_IDLE:
    return (info & SLOT_BIT (SLOT_HUGE)) && (info & SLOT_BIT (SLOT_IDLE));
  case ZRAM_WB_INCOMPRESSIBLE:
    return info & SLOT_BIT (SLOT_INCOMPRESSIBLE);
  case ZRAM_WB_COLD:
    /* A page touched after the walk began is younger than any age. */
    return p->min_age_s == 0 ||
           ((uint32_t) (info >> SLOT_TIME_SHIFT) <= p->now &&
            p->now - (uint32_t) (info >> SLOT_TIME_SHIFT) >= p->min_age_s);
  }
  return false;
}

/* Clear PP if it is still ours. */
static void
drop_pp (struct zram_slot *slot)
{
  slot_lock (slot);
  if (slot_test_flag (slot, SLOT_PP))
    slot_clear_flag (slot, SLOT_PP);
  slot_unlock (slot);
}

/* Write back slot index of m if the plan selects it.  Returns 0 (done,
 * skipped or raced: see res), or -1 with errno (ENOSPC: the store is
 * full; EIO: decompression or the store failed) leaving the slot as it
 * was.
 */
static int
writeback_slot (struct zram_meta *m, struct zram_thread_ctx *ctx,
                uint64_t index, const struct wb_plan *p,
                struct zram_wb_result *res)
{
  struct zram_slot *slot = slot_at (&m->table, index);
  struct page_state old;
  uint64_t block;
  int r;

  /* Lock-free first look: most slots a walk meets are not selected, and
   * judging them needs no lock (which would write the table).
   */
  if (!selected (__atomic_load_n (&slot->handle, __ATOMIC_RELAXED),
                 slot_info (slot), p))
    return 0;
  res->scanned++;

  slot_lock (slot);
  if (!selected (slot_get_handle (slot), slot_info (slot), p)) {
    slot_unlock (slot);
    return 0;
  }
  slot_set_flag (slot, SLOT_PP);
  r = zram_read_locked (m, ctx, slot, ctx->page);
  if (r == -1)
    slot_clear_flag (slot, SLOT_PP);
  slot_unlock (slot);
  if (r == -1)
    return -1;

  if (wb_limit_take (p->limit) == -1) {
    drop_pp (slot);
    return -1;                /* EDQUOT */
  }
  if (backing_alloc_block (m->backing, &block) == -1) {
    wb_limit_refund (p->limit);
    drop_pp (slot);
    return -1;                /* ENOSPC */
  }
  if (backing_write (m->backing, block, ctx->page) == -1) {
    wb_limit_refund (p->limit);
    drop_pp (slot);
    backing_free_block (m->backing, block);
    errno = EIO;
    return -1;
  }
  STAT_ADD (m->stats.bd_writes, 1);

  slot_lock (slot);
  if (!slot_test_flag (slot, SLOT_PP)) {
    slot_unlock (slot);
    backing_free_block (m->backing, block);
    res->raced++;
    return 0;
  }
  /* Unchanged since the snapshot.  The page keeps its access time; its
   * other flags describe the object, which goes.  Count the new state
   * before unlocking: a write may replace (and uncount) it at once.
   */
  old.handle = slot_get_handle (slot);
  old.size = slot_get_size (slot);
  old.flags = slot_info (slot) & SLOT_STATE_MASK & ~SLOT_BIT (SLOT_PP);
  slot_set_handle (slot, slot_wb_handle (block));
  slot_set_size_flags (slot, 0, SLOT_BIT (SLOT_WB), slot_get_time (slot));
  STAT_ADD (m->stats.pages_stored, 1);
  STAT_ADD (m->stats.bd_count, 1);
  slot_unlock (slot);
  zram_release_state (m, &old);
  res->written++;
  return 0;
}

static int
writeback_walk (struct zram *z, const struct zram_wb_req *req,
                struct zram_wb_result *res)
{
  struct zram_thread_ctx *ctx;
  struct zram_meta *m;
  struct wb_plan p;
  uint64_t gen, i, batch_end, batch_done;
  int r = 0, saved_errno;

  ctx = zram_thread_ctx_get ();
  if (ctx == NULL)
    return -1;                /* ENOMEM */
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;                /* EIO */
  if (plan_make (m, req, &p) == -1) {
    meta_put (z);
    return -1;
  }
  p.limit = &z->wb_limit;
  if (walks_stopped (z)) {
    meta_put (z);
    errno = ECANCELED;
    return -1;
  }
  gen = m->gen;
  i = p.start;
  while (i < p.end) {
    batch_end = p.end - i > ZRAM_WALK_BATCH_SLOTS ? i + ZRAM_WALK_BATCH_SLOTS
                                                  : p.end;
    /* Store writes are system calls: leave the section after a batch of
     * them too, so a reset waits for few.
     */
    batch_done = res->written + res->raced + ZRAM_WALK_BATCH_ATTEMPTS;
    while (res->written + res->raced < batch_done &&
           (i = slot_table_next_touched (&m->table, i, batch_end)) < batch_end) {
      if (p.max_pages && res->written + res->raced >= p.max_pages)
        goto out;
      if (walks_stopped (z)) {
        errno = ECANCELED;
        r = -1;
        goto out;
      }
      if (writeback_slot (m, ctx, i, &p, res) == -1) {
        r = -1;
        goto out;
      }
      i++;
    }
    if (i >= p.end || (p.max_pages && res->written + res->raced >= p.max_pages))
      break;
    if (!meta_renew (z, ctx, &m, gen)) {
      res->next_index = i;
      return 0;               /* reset: the new state has nothing */
    }
  }

 out:
  res->next_index = i;
  saved_errno = errno;
  meta_put (z);
  errno = saved_errno;
  return r;
}

int
zram_writeback (struct zram *z, const struct zram_wb_req *req,
                struct zram_wb_result *res)
{
  int r, saved_errno;

  memset (res, 0, sizeof *res);
  res->next_index = req->start_index;
  if (z->backing == NULL) {
    errno = ENODEV;
    return -1;
  }
  /* One post-processing walk at a time (see src/recompress.c). */
  if (!req->nowait)
    pthread_mutex_lock (&z->pp_lock);
  else if (pthread_mutex_trylock (&z->pp_lock) != 0) {
    errno = EBUSY;
    return -1;
  }
  r = writeback_walk (z, req, res);
  saved_errno = errno;
  pthread_mutex_unlock (&z->pp_lock);
  errno = saved_errno;
  return r;
}
