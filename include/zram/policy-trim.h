/* nbdkit-zram: trimming the blocks writeback gave back, in the background.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * When a written-back page is overwritten, trimmed or zeroed, its block
 * in the backing store may lose its last object.  The request that did
 * it must not wait for the store's trim (a network round trip, or the
 * 5 s deadline of a hung NBD server), so the block is only queued
 * (backing_block_put, include/zram/backing.h).  This policy of the
 * background framework (include/zram/background.h) trims the queue
 * every ZRAM_TRIM_POLICY_PERIOD_MS, in runs of adjacent blocks, so a
 * sparse file or thin store gives the space back soon after; writeback
 * walks and a full store trim it too.
 */
#ifndef ZRAM_POLICY_TRIM_H
#define ZRAM_POLICY_TRIM_H

#include "zram/background.h"
#include "zram/zram.h"

#define ZRAM_TRIM_POLICY "trim"
#define ZRAM_TRIM_POLICY_PERIOD_MS 200

/* Add the policy to bg for zram (a device with a backing store; without
 * one nothing is added and 0 is returned).  Returns the policy's id or
 * 0, or -1 with errno as zram_bg_add.
 */
extern int zram_trim_policy_add (struct zram_bg *bg, struct zram *zram);

#endif /* ZRAM_POLICY_TRIM_H */
