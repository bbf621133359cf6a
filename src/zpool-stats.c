/* nbdkit-zram: per-class allocator statistics (see include/zram/zpool.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "zpool-impl.h"

int
zpool_class_stats (const struct zpool *pool, unsigned index,
                   struct zpool_class_stats *stats)
{
  if (pool->ops->class_stats == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  return pool->ops->class_stats (pool, index, stats);
}

void
zpool_dump_stats (const struct zpool *pool, FILE *fp)
{
  struct zpool_stats st;
  struct zpool_class_stats cs;
  unsigned i, g;

  zpool_get_stats (pool, &st);
  fprintf (fp, "pool %s: total %" PRIu64 " live %" PRIu64 " objects %" PRIu64
           " compacted-pages %" PRIu64 " meta %" PRIu64 "\n",
           pool->ops->name, st.total_bytes, st.live_bytes, st.live_objects,
           st.pages_compacted, st.meta_bytes);
  if (pool->ops->class_stats == NULL)
    return;
  fprintf (fp, "%9s %5s %4s %8s %10s %12s  spans by fullness "
           "(0-9%% .. 90-99%%, full)\n",
           "size", "pages", "objs", "spans", "objects", "live-bytes");
  for (i = 0; zpool_class_stats (pool, i, &cs) == 0; i++) {
    if (cs.spans == 0)
      continue;
    fprintf (fp, "%4" PRIu32 "-%4" PRIu32 " %5" PRIu32 " %4" PRIu32
             " %8" PRIu64 " %10" PRIu64 " %12" PRIu64 " ",
             cs.min_size, cs.size, cs.pages_per_span, cs.objs_per_span,
             cs.spans, cs.objects, cs.live_bytes);
    for (g = 0; g < ZPOOL_FULLNESS_GROUPS; g++)
      fprintf (fp, " %" PRIu64, cs.fullness[g]);
    fputc ('\n', fp);
  }
}
