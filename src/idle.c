/* nbdkit-zram: marking pages idle (zram_mark_idle, include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>

#include "zram-impl.h"

int
zram_mark_idle (struct zram *z, uint32_t min_age_s, uint64_t *marked)
{
  (void) z; (void) min_age_s; (void) marked;
  errno = ENOSYS;
  return -1;
}
