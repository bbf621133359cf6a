/* nbdkit-zram: the writeback limit (zram_set_writeback_limit,
 * include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * zram's writeback_limit: a budget of 4 KiB blocks written to the store
 * that writeback spends while writeback_limit_enable is set.  The budget is one atomic word:
 * taking a unit is a compare-and-swap that never goes below 0, so a
 * setting made during a walk is seen at its next page and never
 * overspent.
 */
#include <errno.h>

#include "zram-impl.h"

int
wb_limit_take (struct wb_limit *l)
{
  uint64_t left;

  if (!__atomic_load_n (&l->enabled, __ATOMIC_RELAXED))
    return 0;
  left = __atomic_load_n (&l->blocks, __ATOMIC_RELAXED);
  do {
    if (left == 0) {
      errno = EDQUOT;
      return -1;
    }
  } while (!__atomic_compare_exchange_n (&l->blocks, &left, left - 1, true,
                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return 0;
}

void
wb_limit_refund (struct wb_limit *l)
{
  /* Only while enabled: a unit taken while enabled and refunded after the
   * limit was switched off is lost, which costs at most one page of
   * budget, and never lets writeback exceed it.
   */
  if (__atomic_load_n (&l->enabled, __ATOMIC_RELAXED))
    __atomic_add_fetch (&l->blocks, 1, __ATOMIC_RELAXED);
}

int
zram_set_writeback_limit (struct zram *z, uint64_t blocks)
{
  if (blocks > ZRAM_WB_LIMIT_MAX) {
    errno = EINVAL;
    return -1;
  }
  __atomic_store_n (&z->wb_limit.blocks, blocks, __ATOMIC_RELAXED);
  return 0;
}

void
zram_set_writeback_limit_enable (struct zram *z, bool enable)
{
  __atomic_store_n (&z->wb_limit.enabled, enable, __ATOMIC_RELAXED);
}

void
zram_get_writeback_limit (struct zram *z, bool *enabled, uint64_t *blocks)
{
  *enabled = __atomic_load_n (&z->wb_limit.enabled, __ATOMIC_RELAXED);
  *blocks = __atomic_load_n (&z->wb_limit.blocks, __ATOMIC_RELAXED);
}
