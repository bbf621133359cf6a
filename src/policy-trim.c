/* nbdkit-zram: the background trim of freed store blocks (see
 * include/zram/policy-trim.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>

#include "zram/policy-trim.h"
#include "zram-impl.h"

static int64_t
trim_round (void *opaque, struct zram_bg_round *r)
{
  int64_t n = zram_trim_store (opaque);

  (void) r;
  return n > 0 ? n : -1;      /* -1: nothing to do, not counted */
}

int
zram_trim_policy_add (struct zram_bg *bg, struct zram *zram)
{
  struct zram_bg_policy p = {
    .name = ZRAM_TRIM_POLICY,
    .period_ms = ZRAM_TRIM_POLICY_PERIOD_MS,
    .budget_pm = ZRAM_BG_UNLIMITED,   /* store I/O, little CPU */
    .round = trim_round,
    .opaque = zram,
  };

  if (bg == NULL || zram == NULL) {
    errno = EINVAL;
    return -1;
  }
  if (zram->backing == NULL)
    return 0;
  return zram_bg_add (bg, &p);
}
