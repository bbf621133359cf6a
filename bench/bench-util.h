/* nbdkit-zram benchmarks: small helpers shared by the benchmark programs.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_BENCH_UTIL_H
#define ZRAM_BENCH_UTIL_H

#include <stdint.h>

/* Parse a size like "4096", "64K", "256M", "1G" (powers of 1024).
 * Returns the size, or -1 if the string is not a size.
 */
extern int64_t bench_parse_size (const char *str);

/* Monotonic clock in seconds. */
extern double bench_now (void);

/* CPU time of the whole process (all threads) in seconds.  The
 * micro-benchmarks time with this: on a shared machine it leaves out the
 * time other processes ran instead of us.
 */
extern double bench_cpu_now (void);

/* Read a whole file of `size` bytes into a fresh page-aligned buffer.
 * Returns NULL (and prints why) on error.  Free with free(3).
 */
extern void *bench_read_file (const char *path, uint64_t *size);

/* The benchmark's input: the file `path` if not NULL (its size rounded
 * down to whole pages is stored in *size), else a generated memory-like
 * image of *size bytes from `seed` with the default mix, whose mix is
 * printed to stdout if print_mix.  Returns NULL (and prints why) on error.
 * Free with free(3).
 */
extern void *bench_load_image (const char *path, uint64_t *size, uint64_t seed,
                               int print_mix);

#endif /* ZRAM_BENCH_UTIL_H */
