/* nbdkit-zram: marking pages idle (zram_mark_idle, include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A walk over the touched groups of the table.  Each candidate is first
 * judged without the lock (empty, same-filled, already idle or too young
 * are skipped: most slots of a busy device, and no table page is written
 * for them), then locked and judged again, since a write may have
 * replaced it in between.
 */
#include <errno.h>

#include "zram-impl.h"

/* Seconds since slot time t at now; 0 if t is later (a write stamped after
 * the walk read its clock).
 */
static inline uint32_t
age (uint32_t now, uint32_t t)
{
  return now > t ? now - t : 0;
}

/* Whether info describes a page that this walk should mark. */
static inline bool
wants_idle (uint64_t handle, uint64_t info, uint32_t now, uint32_t min_age_s)
{
  /* Written-back pages are not marked: they hold no memory, and zram
   * leaves them alone too.
   */
  if (handle == 0 || (info & (SLOT_BIT (SLOT_SAME) | SLOT_BIT (SLOT_IDLE) |
                              SLOT_BIT (SLOT_WB))))
    return false;
  return min_age_s == 0 ||
         age (now, info >> SLOT_TIME_SHIFT) >= min_age_s;
}

int
zram_mark_idle (struct zram *z, uint32_t min_age_s, uint64_t *marked)
{
  struct zram_thread_ctx *ctx = zram_thread_ctx_get ();
  struct zram_meta *m;
  uint64_t gen, i = 0, end, n = 0;
  uint32_t now;

  if (marked)
    *marked = 0;
  if (ctx == NULL)
    return -1;                /* ENOMEM */
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;                /* EIO */
  gen = m->gen;
  for (;;) {
    end = i + ZRAM_WALK_BATCH_SLOTS < m->nr_pages ? i + ZRAM_WALK_BATCH_SLOTS
                                                 : m->nr_pages;
    if (walks_stopped (z)) {
      meta_put (z);
      if (marked)
        *marked = n;
      errno = ECANCELED;
      return -1;
    }
    now = meta_now (m);
    while ((i = slot_table_next_touched (&m->table, i, end)) < end) {
      struct zram_slot *slot = slot_at (&m->table, i++);

      if (!wants_idle (__atomic_load_n (&slot->handle, __ATOMIC_RELAXED),
                       slot_info (slot), now, min_age_s))
        continue;
      slot_lock (slot);
      if (wants_idle (slot_get_handle (slot), slot_info (slot), now,
                      min_age_s)) {
        slot_set_flag (slot, SLOT_IDLE);
        STAT_ADD (m->stats.idle_pages, 1);
        n++;
      }
      slot_unlock (slot);
    }
    if (end == m->nr_pages)
      break;
    if (!meta_renew (z, ctx, &m, gen))
      goto out;               /* reset: its new state has nothing to mark */
  }
  meta_put (z);
 out:
  if (marked)
    *marked = n;
  return 0;
}
