/* nbdkit-zram: background compaction of a device's pool.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Compaction is a policy of the background framework
 * (include/zram/background.h), named "compact", without a CPU budget: it
 * runs every interval_ms, reads zram_get_stats, and calls zram_compact
 * when the pool looks fragmented:
 *
 *     mem_used_total > threshold * compr_data_size
 *     and mem_used_total - compr_data_size >= ZRAM_COMPACTOR_MIN_WASTE
 *
 * Some waste cannot be compacted away (rounding to size classes, the last
 * span of each class).  So after a run that released nothing, the next run
 * waits until compr_data_size has moved by at least ZRAM_COMPACTOR_MIN_WASTE
 * (data was written or freed since).
 *
 * zram_compact serialises with reset and other control calls on the
 * device's control mutex; the data path is never blocked for long (see
 * src/zsmalloc.h: compaction skips mapped objects and drops each class
 * lock between spans).
 *
 * Start it after nbdkit has forked (a thread does not survive fork), stop
 * it before destroying the device.  start and stop are not thread-safe
 * against each other for the same compactor; the other calls are.
 */
#ifndef ZRAM_COMPACTOR_H
#define ZRAM_COMPACTOR_H

#include <stdint.h>

struct zram;
struct zram_bg;
struct zram_compactor;

/* Waste below this is not worth a compaction run (16 pages). */
#define ZRAM_COMPACTOR_MIN_WASTE (UINT64_C (16) * 4096)

/* Suggested settings: poll every second, compact past 10 % overhead. */
#define ZRAM_COMPACTOR_DEFAULT_INTERVAL_MS 1000
#define ZRAM_COMPACTOR_DEFAULT_THRESHOLD   1.10

/* Register the compaction policy with bg (before zram_bg_start).
 * interval_ms >= 1; threshold >= 1.0.  Returns its id in bg, or -1 with
 * errno EINVAL (bad argument) or ENOMEM, or as zram_bg_add.
 */
extern int zram_compactor_add (struct zram_bg *bg, struct zram *zram,
                               unsigned interval_ms, double threshold);

/* A compactor on a framework of its own (nice 0), for callers that run no
 * other background work.  interval_ms >= 1; threshold >= 1.0.  The thread
 * makes its context (include/zram/thread-ctx.h) before this returns.
 * Returns NULL with errno EINVAL (bad argument), the error of
 * pthread_create, or ENOMEM (no memory for the compactor or the thread's
 * context).
 */
extern struct zram_compactor *zram_compactor_start (struct zram *zram,
                                                    unsigned interval_ms,
                                                    double threshold);

/* Wake the thread, wait for it to finish (at most the end of a compaction
 * run in progress) and free it.  NULL is accepted.
 */
extern void zram_compactor_stop (struct zram_compactor *c);

/* Wake the thread now instead of at the end of the interval (for tests
 * and for a control command; it still applies the threshold).
 */
extern void zram_compactor_kick (struct zram_compactor *c);

/* Compaction runs so far and the pages they released. */
extern void zram_compactor_counts (struct zram_compactor *c, uint64_t *runs,
                                   uint64_t *pages);

/* The policy's name in its framework (zram_bg_find). */
#define ZRAM_COMPACTOR_POLICY "compact"

#endif /* ZRAM_COMPACTOR_H */
