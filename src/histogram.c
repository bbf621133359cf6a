/* nbdkit-zram: log2 histograms (see include/zram/histogram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* sched_getcpu */
#endif
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "zram/histogram.h"

unsigned
zram_hist_bucket (uint64_t value)
{
  unsigned b;

  if (value <= 1)
    return 0;
  /* The smallest i with value <= 2^i is the bit length of value - 1. */
  b = 64 - __builtin_clzll (value - 1);
  return b < ZRAM_HIST_BUCKETS - 1 ? b : ZRAM_HIST_BUCKETS - 1;
}

void
zram_hist_add (struct zram_hist *h, uint64_t value)
{
  /* glibc answers sched_getcpu from the thread's rseq area (no system
   * call) on Linux >= 4.18; a failure (-1) just picks the last stripe,
   * and must not change the errno a data-path caller is returning.
   */
  int saved_errno = errno;
  unsigned cpu = (unsigned) sched_getcpu ();
  struct zram_hist_stripe *s = &h->stripe[cpu & (ZRAM_HIST_STRIPES - 1)];

  errno = saved_errno;
  __atomic_add_fetch (&s->count[zram_hist_bucket (value)], 1, __ATOMIC_RELAXED);
  __atomic_add_fetch (&s->sum, value, __ATOMIC_RELAXED);
}

void
zram_hist_read (const struct zram_hist *h, struct zram_hist_snapshot *out)
{
  unsigned s, b;

  memset (out, 0, sizeof *out);
  for (s = 0; s < ZRAM_HIST_STRIPES; s++) {
    for (b = 0; b < ZRAM_HIST_BUCKETS; b++) {
      uint64_t n = __atomic_load_n (&h->stripe[s].count[b], __ATOMIC_RELAXED);

      out->count[b] += n;
      out->total += n;
    }
    out->sum += __atomic_load_n (&h->stripe[s].sum, __ATOMIC_RELAXED);
  }
}
