/* nbdkit-zram: writeback to the backing store (zram_writeback,
 * include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Compressed, packed and batched, the way requests stay fast (zram's
 * post-processing, as in src/recompress.c):
 *
 *   per selected page:  lock ─ set PP ─ copy its object (as stored:
 *                       compressed, or raw if huge) into the open block
 *                       buffer ─ unlock
 *   per batch (up to ZRAM_WB_BATCH_BLOCKS buffers full, or the section's
 *   end):               take a block for each buffer; write them all with
 *                       one backing_write_batch            (no lock held)
 *   per written block:  refs += members; then per member:
 *                       lock ─ PP still set? ─yes─> slot := WB(block, off)
 *                                  │                ─ unlock ─ free object
 *                                  └─no──> unlock ─ refs -= 1 (raced)
 *                       then drop the allocation's ref: a block whose
 *                       members all raced is freed here
 *   per failed block:   clear its members' PP (they stay in RAM), free it
 *
 *   block buffer   | obj a (lz4) | obj b (zstd, prio 1) | obj c |  zeroes  |
 *                  0             off(b)                 off(c)   used    4096
 *
 * Every store into a slot (write, partial write, trim, discard) replaces
 * all its flags, PP included, so "PP still set" proves that nothing was
 * stored in between, and the copy is still the page's object; and since
 * post-processing walks run one at a time (pp_lock), no other walk can
 * have set PP again meanwhile.  A reset cannot free the state under us:
 * each batch is written and installed inside one read-side section, and
 * the state's blocks are given back only when it is destroyed, after the
 * grace period.  The block's references (include/zram/backing.h) are
 * taken before any member is installed, since an installed member may be
 * overwritten, and drop its reference, at once.
 *
 * A member of a multi-page group (src/group.h) has no object of its own
 * to copy: its page is decompressed from the group under the lock (as a
 * read does), marked PP, and compressed alone with the primary algorithm
 * after the lock is let go; installing it takes it out of its group.  So
 * the coldest pages, which groups hold, can still make room at the
 * memory limit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zram/backing.h"

#include "group.h"
#include "zram-impl.h"

/* The request checked against the live state, with defaults filled in. */
struct wb_plan {
  enum zram_wb_type type;
  uint64_t max_pages;
  uint64_t start, end;
  uint32_t now, min_age_s;    /* ZRAM_WB_COLD: access time <= now - age */
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

/* One object snapshotted into a block buffer. */
struct wb_member {
  uint64_t index;             /* its slot */
  unsigned off;               /* where in the block */
  unsigned size;              /* its bytes (ZRAM_PAGE_SIZE: raw) */
  unsigned prio;              /* the algorithm that compressed it */
  unsigned dict;              /* and its dictionary index (0 none) */
};

/* A block being filled: objects packed front to back, never across the
 * end (a raw page fills a block alone).  The tail past used is zeroes,
 * so the checksum covers a defined block.
 */
struct wb_block {
  unsigned char buf[BACKING_BLOCK_SIZE];
  unsigned used;              /* bytes taken */
  unsigned nr;                /* members */
  struct wb_member member[ZRAM_WB_BLOCK_OBJECTS];
};

/* The blocks of one batch: blk[0..open] hold members, blk[open] is the
 * one being filled.
 */
struct wb_batch {
  struct wb_block blk[ZRAM_WB_BATCH_BLOCKS];
  unsigned open;
  uint64_t queued;            /* members in the batch */
  struct wb_limit *limit;     /* the device's writeback_limit */
};

static void
batch_reset (struct wb_batch *bt)
{
  for (unsigned k = 0; k <= bt->open && k < ZRAM_WB_BATCH_BLOCKS; k++) {
    memset (bt->blk[k].buf, 0, BACKING_BLOCK_SIZE);
    bt->blk[k].used = bt->blk[k].nr = 0;
  }
  bt->open = 0;
  bt->queued = 0;
}

/* Pages written back or raced, counting those queued in the batch: what
 * max_pages and the walk's read-side batches count.
 */
static uint64_t
attempts (const struct zram_wb_result *res, const struct wb_batch *bt)
{
  return res->written + res->raced + bt->queued;
}

/* The block an object of size bytes goes into, or NULL if the batch has
 * no room left for it (flush first).
 */
static struct wb_block *
block_for (struct wb_batch *bt, size_t size)
{
  struct wb_block *b = &bt->blk[bt->open];

  if (b->used + size <= BACKING_BLOCK_SIZE && b->nr < ZRAM_WB_BLOCK_OBJECTS)
    return b;
  if (bt->open + 1 >= ZRAM_WB_BATCH_BLOCKS)
    return NULL;
  return &bt->blk[++bt->open];
}

/* Queue slot index of m into the batch if the plan selects it: mark it
 * PP and copy its object, as stored (compressed, or raw if huge), into a
 * block buffer.  Returns 0 (queued or skipped), 1 if the batch is full
 * (flush, then call again), or -1 with errno EDQUOT if the page would
 * start a block and writeback_limit has none left.
 */
/* Queue the locked member slot of a group (see the top): unlocks it.
 * Returns as writeback_slot; a member whose group fails to decompress
 * (EIO, or ENOMEM for the group buffer) is left as it is.
 */
static int
writeback_member (struct zram_meta *m, struct zram_thread_ctx *ctx,
                  struct zram_slot *slot, uint64_t index, struct wb_batch *bt,
                  struct zram_wb_result *res)
{
  const unsigned char *data;
  struct wb_member *mb;
  struct wb_block *b;
  size_t size;
  int clen;

  if (group_read_member (m, ctx, slot_get_handle (slot), ctx->page) == -1) {
    slot_unlock (slot);
    return 0;
  }
  slot_set_flag (slot, SLOT_PP);
  slot_unlock (slot);
  /* Capped below the huge size, as a write: 0 means "store it raw". */
  clen = zcomp_compress (m->comp, ctx->codec, ctx->page, ZRAM_PAGE_SIZE,
                         ctx->cbuf, m->huge_class_size - 1);
  if (clen < 0) {
    drop_pp (slot);
    return 0;
  }
  data = clen ? ctx->cbuf : ctx->page;
  size = clen ? (size_t) clen : ZRAM_PAGE_SIZE;
  b = block_for (bt, size);
  if (b == NULL) {
    drop_pp (slot);
    return 1;
  }
  if (b->nr == 0 && wb_limit_take (bt->limit) == -1) {
    drop_pp (slot);
    return -1;
  }
  res->scanned++;
  memcpy (b->buf + b->used, data, size);
  mb = &b->member[b->nr++];
  mb->index = index;
  mb->off = b->used;
  mb->size = size;
  mb->prio = 0;               /* the primary algorithm, no dictionary */
  mb->dict = 0;
  b->used += size;
  bt->queued++;
  return 0;
}

static int
writeback_slot (struct zram_meta *m, struct zram_thread_ctx *ctx,
                uint64_t index, const struct wb_plan *p,
                struct wb_batch *bt, struct zram_wb_result *res)
{
  struct zram_slot *slot = slot_at (&m->table, index);
  struct wb_member *mb;
  struct wb_block *b;
  const void *src;
  size_t size;

  /* Lock-free first look: most slots a walk meets are not selected, and
   * judging them needs no lock (which would write the table).
   */
  if (!selected (__atomic_load_n (&slot->handle, __ATOMIC_RELAXED),
                 slot_info (slot), p))
    return 0;

  slot_lock (slot);
  if (!selected (slot_get_handle (slot), slot_info (slot), p)) {
    slot_unlock (slot);
    return 0;
  }
  if (slot_test_flag (slot, SLOT_GROUP))
    return writeback_member (m, ctx, slot, index, bt, res);
  size = slot_get_size (slot);
  b = block_for (bt, size);
  if (b == NULL) {
    slot_unlock (slot);
    return 1;
  }
  /* writeback_limit counts 4 KiB blocks written to the store. */
  if (b->nr == 0 && wb_limit_take (bt->limit) == -1) {
    slot_unlock (slot);
    return -1;
  }
  res->scanned++;
  /* A copy of the object under the lock (as a read decompresses it
   * there): the pool may move or free it once we let go.
   */
  slot_set_flag (slot, SLOT_PP);
  src = zpool_map (m->pool, slot_get_handle (slot), ZPOOL_MAP_RO);
  memcpy (b->buf + b->used, src, size);
  zpool_unmap (m->pool, slot_get_handle (slot));
  mb = &b->member[b->nr++];
  mb->index = index;
  mb->off = b->used;
  mb->size = size;
  mb->prio = slot_get_prio (slot);
  mb->dict = slot_get_dict (slot);
  slot_unlock (slot);
  b->used += size;
  bt->queued++;
  return 0;
}

/* Make member mb of the block written at block its slot's state, if its
 * PP mark is still there.  Returns true if installed.
 */
static bool
install_member (struct zram_meta *m, const struct wb_member *mb,
                uint64_t block)
{
  struct zram_slot *slot = slot_at (&m->table, mb->index);
  struct page_state old;

  slot_lock (slot);
  if (!slot_test_flag (slot, SLOT_PP)) {
    slot_unlock (slot);
    return false;
  }
  /* Unchanged since the snapshot.  The page keeps its access time and
   * its priority and dictionary (the stored object is the same, and
   * stays counted by its dictionary); its other flags
   * describe the pool object, which goes.  Count the new state before
   * unlocking: a write may replace (and uncount) it at once.
   */
  old.handle = slot_get_handle (slot);
  old.size = slot_get_size (slot);
  old.flags = slot_info (slot) & SLOT_STATE_MASK &
              ~(SLOT_BIT (SLOT_PP) | SLOT_PRIO_MASK | SLOT_DICT_MASK);
  slot_set_handle (slot, slot_wb_handle (block, mb->off));
  slot_set_size_flags (slot, mb->size,
                       SLOT_BIT (SLOT_WB) | slot_prio_bits (mb->prio) |
                       slot_dict_bits (mb->dict),
                       slot_get_time (slot));
  STAT_ADD (m->stats.pages_stored, 1);
  STAT_ADD (m->stats.bd_count, 1);
  slot_unlock (slot);
  zram_release_state (m, &old);
  return true;
}

/* Drop the members of blk[from..to) back to RAM (clear their PP) and
 * lower *first_failed to the first of them; the blocks, never written,
 * give their writeback_limit units back.
 */
static void
drop_blocks (struct zram_meta *m, struct wb_batch *bt, unsigned from,
             unsigned to, uint64_t *first_failed)
{
  for (unsigned k = from; k < to; k++) {
    if (bt->blk[k].nr > 0)
      wb_limit_refund (bt->limit);
    for (unsigned j = 0; j < bt->blk[k].nr; j++) {
      drop_pp (slot_at (&m->table, bt->blk[k].member[j].index));
      if (bt->blk[k].member[j].index < *first_failed)
        *first_failed = bt->blk[k].member[j].index;
    }
  }
}

/* Write the batch's blocks with one backing_write_batch and install
 * their members.  No lock is held across the store's I/O.  A block that
 * cannot be taken (ENOSPC) or written (EIO) leaves its members in RAM,
 * nothing lost.  Returns 0, or -1 with errno ENOSPC (no free block, or
 * the file system under the store is full) or EIO, setting
 * *first_failed to the lowest slot index left in RAM; the batch is empty
 * afterwards either way.
 */
static int
flush (struct zram_meta *m, struct wb_batch *bt, struct zram_wb_result *res,
       uint64_t *first_failed)
{
  struct backing_io io[ZRAM_WB_BATCH_BLOCKS];
  unsigned n = bt->open + 1, taken, k, j, live;
  int err = 0;

  if (bt->queued == 0)
    return 0;
  if (bt->blk[bt->open].nr == 0)
    n--;
  for (taken = 0; taken < n; taken++) {
    if (backing_alloc_block (m->backing, &io[taken].block) == -1) {
      err = ENOSPC;
      drop_blocks (m, bt, taken, n, first_failed);
      break;
    }
    io[taken].buf = bt->blk[taken].buf;
  }
  backing_write_batch (m->backing, io, taken);
  for (k = 0; k < taken; k++) {
    struct wb_block *b = &bt->blk[k];

    if (io[k].err != 0) {
      /* A sparse file whose file system filled up is a full store too:
       * say so, rather than EIO, since freeing space fixes it.
       */
      if (!err)
        err = io[k].err == ENOSPC || io[k].err == EDQUOT ? ENOSPC : EIO;
      drop_blocks (m, bt, k, k + 1, first_failed);
      backing_free_block (m->backing, io[k].block);
      continue;
    }
    STAT_ADD (m->stats.bd_writes, b->nr);
    /* One reference per member, taken before any is installed (the
     * first could be overwritten, and put, at once); ours, from the
     * allocation, goes last: if every member raced, it frees the block.
     */
    backing_block_get (m->backing, io[k].block, b->nr);
    for (j = live = 0; j < b->nr; j++) {
      if (install_member (m, &b->member[j], io[k].block))
        live++;
      else
        backing_block_put (m->backing, io[k].block);
    }
    res->written += live;
    res->raced += b->nr - live;
    backing_block_put (m->backing, io[k].block);
  }
  batch_reset (bt);
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

/* Flush the batch; on failure, rewind *i to the first page left in RAM
 * so that a caller continuing at next_index sees it again.
 */
static int
flush_at (struct zram_meta *m, struct wb_batch *bt, struct zram_wb_result *res,
          uint64_t *i)
{
  uint64_t first_failed = UINT64_MAX;

  if (flush (m, bt, res, &first_failed) == 0)
    return 0;
  if (first_failed < *i)
    *i = first_failed;
  return -1;
}

static int
writeback_walk (struct zram *z, struct wb_batch *bt, const struct zram_wb_req *req,
                struct zram_wb_result *res)
{
  struct zram_thread_ctx *ctx;
  struct zram_meta *m;
  struct wb_plan p;
  uint64_t gen, i, batch_end;
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
  if (walks_stopped (z)) {
    meta_put (z);
    errno = ECANCELED;
    return -1;
  }
  /* This state writes to the store: its destruction must give the
   * store's blocks back (see zram_meta_destroy), and blocks freed since
   * the last walk are trimmed now, so the walk finds them free.
   */
  __atomic_store_n (&m->used_store, true, __ATOMIC_RELAXED);
  backing_trim_pending (m->backing);
  gen = m->gen;
  i = p.start;
  while (i < p.end) {
    batch_end = p.end - i > ZRAM_WALK_BATCH_SLOTS ? i + ZRAM_WALK_BATCH_SLOTS
                                                  : p.end;
    /* Store writes are I/O: leave the section after each batch of them
     * too (at most ZRAM_WB_BATCH_BLOCKS writes), so a reset waits for few.
     */
    while ((i = slot_table_next_touched (&m->table, i, batch_end)) < batch_end) {
      if (p.max_pages && attempts (res, bt) >= p.max_pages)
        goto out;
      if (walks_stopped (z)) {
        errno = ECANCELED;
        r = -1;
        goto out;
      }
      r = writeback_slot (m, ctx, i, &p, bt, res);
      if (r == 1) {
        r = 0;
        break;                /* the batch is full: write it, then again */
      }
      if (r == -1)
        goto out;             /* EDQUOT: write what is queued, stop */
      i++;
    }
    /* Every member must be installed or dropped before the section
     * ends: they are slots of this state.
     */
    if (flush_at (m, bt, res, &i) == -1) {
      r = -1;
      goto out;
    }
    if (i >= p.end || (p.max_pages && attempts (res, bt) >= p.max_pages))
      break;
    if (!meta_renew (z, ctx, &m, gen)) {
      res->next_index = i;
      return 0;               /* reset: the new state has nothing */
    }
  }

 out:
  saved_errno = errno;
  if (flush_at (m, bt, res, &i) == -1 && r == 0) {
    r = -1;
    saved_errno = errno;
  }
  res->next_index = i;
  meta_put (z);
  errno = saved_errno;
  return r;
}

int
zram_writeback (struct zram *z, const struct zram_wb_req *req,
                struct zram_wb_result *res)
{
  struct wb_batch *bt;
  int r, saved_errno;

  memset (res, 0, sizeof *res);
  res->next_index = req->start_index;
  if (z->backing == NULL) {
    errno = ENODEV;
    return -1;
  }
  /* The batch's block buffers: ~100 KiB, for this call only. */
  bt = calloc (1, sizeof *bt);
  if (bt == NULL)
    return -1;                /* ENOMEM */
  bt->limit = &z->wb_limit;
  /* One post-processing walk at a time (see src/recompress.c). */
  if (!req->nowait)
    pthread_mutex_lock (&z->pp_lock);
  else if (pthread_mutex_trylock (&z->pp_lock) != 0) {
    free (bt);
    errno = EBUSY;
    return -1;
  }
  r = writeback_walk (z, bt, req, res);
  saved_errno = errno;
  pthread_mutex_unlock (&z->pp_lock);
  free (bt);
  errno = saved_errno;
  return r;
}

int64_t
zram_trim_store (struct zram *z)
{
  struct zram_thread_ctx *ctx;
  struct zram_meta *m;
  uint64_t n;

  if (z->backing == NULL) {
    errno = ENODEV;
    return -1;
  }
  ctx = zram_thread_ctx_get ();
  if (ctx == NULL)
    return -1;                /* ENOMEM */
  /* Inside the state's read-side section, so that a reset, which gives
   * every block back at once (backing_free_all, exclusive), waits for us.
   */
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;                /* EIO: a reset is under way */
  n = backing_trim_pending (m->backing);
  meta_put (z);
  return (int64_t) n;
}
