/* nbdkit-zram: recompression (zram_recompress, include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <string.h>

#include "zram-impl.h"

int
zram_recompress (struct zram *z, const struct zram_recomp_req *req,
                 struct zram_recomp_result *res)
{
  (void) z; (void) req;
  memset (res, 0, sizeof *res);
  errno = ENOSYS;
  return -1;
}
