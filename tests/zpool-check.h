/* nbdkit-zram: checks shared by the allocator tests.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_TEST_ZPOOL_CHECK_H
#define ZRAM_TEST_ZPOOL_CHECK_H

#include <stdint.h>

#include "zram/zpool.h"
#include "check.h"

/* Bytes of empty spans the pool keeps for reuse (0 for pools without
 * classes).  After everything is freed, total_bytes must equal this, and
 * compaction must give these back too.
 */
static uint64_t
kept_bytes (struct zpool *pool)
{
  struct zpool_class_stats c;
  uint64_t sum = 0;

  for (unsigned i = 0; zpool_class_stats (pool, i, &c) == 0; i++)
    sum += c.empty_spans * c.pages_per_span * 4096;
  return sum;
}

static void
check_all_returned (struct zpool *pool)
{
  struct zpool_stats st;

  zpool_get_stats (pool, &st);
  CHECK (st.live_objects == 0 && st.live_bytes == 0);
  CHECK (st.total_bytes == kept_bytes (pool));
  zpool_compact (pool);
  zpool_get_stats (pool, &st);
  CHECK (st.total_bytes == 0);             /* every span went back */
  CHECK (kept_bytes (pool) == 0);
}

#endif
