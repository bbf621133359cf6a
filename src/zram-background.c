/* nbdkit-zram: the device's link to its background framework
 * (zram_set_background, include/zram/background.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include "zram/background.h"
#include "zram-impl.h"

void
zram_set_background (struct zram *z, struct zram_bg *bg)
{
  /* Release: a reader that sees bg sees it fully made and started. */
  __atomic_store_n (&z->bg, bg, __ATOMIC_RELEASE);
}

struct zram_bg *
zram_background (struct zram *z)
{
  return __atomic_load_n (&z->bg, __ATOMIC_ACQUIRE);
}
