/* nbdkit-zram: reading written-back pages, with no slot lock held.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A read of a WB slot must not hold the slot's spin lock across the
 * store's I/O (a network round trip for an NBD store: every other
 * request on the page would spin that long).  So:
 *
 *   lock ─ copy the location, pin the block ─ unlock
 *   read the block, check its checksum, decompress          (no lock held)
 *   unpin
 *
 * The pin (a reference on the block, include/zram/backing.h) keeps the
 * block from being freed and reused while it is read, even if the page
 * is overwritten meanwhile and the block's last object dies: the unpin
 * then frees it.  Such a read returns the page as it was before the
 * write, a state it really had during the read (its linearisation point
 * is the copy under the lock), as the lock-free peeks of slot.h do.
 */
#include <errno.h>
#include <string.h>

#include "zram/backing.h"
#include "zram-impl.h"

void
zram_wb_pin_locked (struct zram_meta *m, const struct zram_slot *slot,
                    struct wb_loc *loc)
{
  loc->handle = slot_get_handle (slot);
  loc->block = slot_wb_block_of (loc->handle);
  loc->off = slot_wb_offset_of (loc->handle);
  loc->size = slot_get_size (slot);
  loc->prio = slot_get_prio (slot);
  loc->dict = meta_dict (m, slot_get_dict (slot));
  /* The slot's object holds a reference, and cannot drop it while we
   * hold the slot lock: the block is alive.
   */
  backing_block_get (m->backing, loc->block, 1);
}

int
zram_wb_fetch (struct zram_meta *m, struct zram_thread_ctx *ctx,
               const struct wb_loc *loc, unsigned char *dst)
{
  if (backing_read (m->backing, loc->block, ctx->cbuf) == -1) {
    if (errno == EBADMSG)
      STAT_ADD (m->stats.bd_checksum_errors, 1);
    errno = EIO;
    return -1;
  }
  STAT_ADD (m->stats.bd_reads, 1);
  if (loc->size == ZRAM_PAGE_SIZE) {
    memcpy (dst, ctx->cbuf, ZRAM_PAGE_SIZE);
    return 0;
  }
  return meta_decompress (m, ctx, loc->prio, loc->dict, ctx->cbuf + loc->off,
                          loc->size, dst);
}

void
zram_wb_unpin (struct zram_meta *m, const struct wb_loc *loc)
{
  backing_block_put (m->backing, loc->block);
}
