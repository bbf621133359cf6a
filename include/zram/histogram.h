/* nbdkit-zram: log2 histograms that any thread may add to (metrics).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A struct zram_hist counts non-negative integer samples (microseconds of
 * a request, bytes of a compressed object) in power-of-two buckets:
 *
 *   bucket 0      v <= 1
 *   bucket i      2^(i-1) < v <= 2^i          (1 <= i < ZRAM_HIST_BUCKETS-1)
 *   last bucket   v > 2^(ZRAM_HIST_BUCKETS-2) (the overflow, "+Inf")
 *
 * so the upper bound of bucket i is 2^i, the "le" label of a Prometheus
 * histogram.  It also keeps the sum of all samples.
 *
 * Adding is wait-free and never allocates: the counters are split into
 * ZRAM_HIST_STRIPES cache-line-aligned stripes chosen by the CPU the
 * caller runs on, so request threads on different CPUs never write the
 * same cache line, and a stripe shared by two threads stays correct
 * (relaxed atomic adds).  Reading sums the stripes; a reader racing with
 * adders sees each counter at some recent value (monotonic, never torn).
 * The structure is plain memory: zero it (static storage, calloc or
 * memset) to initialise; there is nothing to destroy.
 */
#ifndef ZRAM_HISTOGRAM_H
#define ZRAM_HISTOGRAM_H

#include <stdint.h>

/* Buckets per histogram; the last one has no upper bound.  2^30 us is
 * about 18 minutes, more than any request; 2^12 bytes is a whole page.
 */
#define ZRAM_HIST_BUCKETS 32

/* Stripes (a power of two); CPUs beyond it share stripes. */
#define ZRAM_HIST_STRIPES 16

struct zram_hist_stripe {
  uint64_t count[ZRAM_HIST_BUCKETS];
  uint64_t sum;
} __attribute__ ((aligned (64)));

struct zram_hist {
  struct zram_hist_stripe stripe[ZRAM_HIST_STRIPES];
};

/* What zram_hist_read returns: per-bucket counts (not cumulative), their
 * total, and the sum of the samples.
 */
struct zram_hist_snapshot {
  uint64_t count[ZRAM_HIST_BUCKETS];
  uint64_t total;
  uint64_t sum;
};

/* Bucket of a sample value (0 .. ZRAM_HIST_BUCKETS-1). */
extern unsigned zram_hist_bucket (uint64_t value);

/* Count one sample.  Thread-safe, wait-free, never fails, keeps errno. */
extern void zram_hist_add (struct zram_hist *h, uint64_t value);

/* Sum the stripes into *out.  Thread-safe. */
extern void zram_hist_read (const struct zram_hist *h,
                            struct zram_hist_snapshot *out);

#endif /* ZRAM_HISTOGRAM_H */
