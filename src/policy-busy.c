/* nbdkit-zram: whether a device is busy (see include/zram/policy-busy.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <time.h>

#include "zram/policy-busy.h"
#include "zram/zram.h"

static int64_t
mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads and writes the device has served so far. */
static uint64_t
requests_served (struct zram *z)
{
  struct zram_hist_snapshot h;
  uint64_t n;

  zram_get_histogram (z, ZRAM_HIST_READ_US, &h);
  n = h.total;
  zram_get_histogram (z, ZRAM_HIST_WRITE_US, &h);
  return n + h.total;
}

void
zram_busy_init (struct zram_busy *b, struct zram *zram)
{
  b->seen = requests_served (zram);
  b->seen_ns = mono_ns ();
}

bool
zram_busy_check (struct zram_busy *b, struct zram *zram, unsigned rate,
                 unsigned window_ms)
{
  const int64_t window = window_ms * INT64_C (1000000);
  uint64_t served = requests_served (zram);
  int64_t now = mono_ns (), dt = now - b->seen_ns;
  uint64_t n = served - b->seen;

  b->seen = served;
  b->seen_ns = now;
  if (dt < window)
    dt = window;
  /* n / (dt / 1e9) >= rate, without a division that rounds to 0. */
  return (double) n * 1e9 >= (double) rate * dt;
}
