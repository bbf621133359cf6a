/* nbdkit-zram: whether a device is busy serving requests, for background
 * policies that give way to them.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A policy keeps one struct zram_busy and asks zram_busy_check between
 * steps: the device is busy while it serves at least `rate` reads and
 * writes a second, measured over the time since the last look but never
 * less than window_ms (so that one request between two steps a few ms
 * apart does not count as a stream of them).  The counts come from the
 * device's request-time histograms, which count every request.  Not
 * thread-safe: one policy thread owns each struct.
 */
#ifndef ZRAM_POLICY_BUSY_H
#define ZRAM_POLICY_BUSY_H

#include <stdbool.h>
#include <stdint.h>

struct zram;

struct zram_busy {
  uint64_t seen;              /* reads + writes served at the last look */
  int64_t seen_ns;            /* CLOCK_MONOTONIC time of that look */
};

/* Start measuring from now. */
extern void zram_busy_init (struct zram_busy *b, struct zram *zram);

/* Whether zram served rate or more requests a second since the last look
 * (over at least window_ms); starts a new measure.
 */
extern bool zram_busy_check (struct zram_busy *b, struct zram *zram,
                             unsigned rate, unsigned window_ms);

#endif /* ZRAM_POLICY_BUSY_H */
