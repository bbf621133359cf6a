/* nbdkit-zram: page compression front end.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A zcomp is an immutable choice of algorithm and level.  The scratch state
 * each algorithm needs (LZ4 hash tables, zstd contexts) lives in a struct
 * zcomp_scratch that the caller owns and passes to every call: one per
 * thread (the device keeps it in the thread's context, see
 * include/zram/thread-ctx.h), so any number of threads may compress and
 * decompress with the same zcomp at once without locks.  A scratch is
 * created empty and gets an algorithm's state on its first use with that
 * algorithm, by malloc: when that fails, the call fails with ENOMEM and
 * the next call tries again.  Nothing here allocates lazily behind the
 * caller's back (no thread-local storage, no pthread keys).
 *
 * Thread safety: all functions are thread-safe, as long as one scratch is
 * used by one thread at a time.  zcomp_destroy needs that no other call on
 * that zcomp is in flight.  A scratch serves every zcomp (its state does
 * not depend on the level).
 */
#ifndef ZRAM_ZCOMP_H
#define ZRAM_ZCOMP_H

#include <stddef.h>

enum zcomp_algo {
  ZCOMP_LZ4,      /* LZ4 fast (the default): best speed */
  ZCOMP_LZ4HC,    /* LZ4 high compression: slower writes, same fast reads */
  ZCOMP_ZSTD,     /* Zstandard: best ratio, slower */
};

#define ZCOMP_DEFAULT_ALGO ZCOMP_LZ4

/* Names of every algorithm, for messages: "lz4, lz4hc, zstd". */
#define ZCOMP_ALGO_NAMES "lz4, lz4hc, zstd"

struct zcomp;
struct zcomp_scratch;

/* Parse an algorithm name.  Returns 0 and sets *algo, or -1 (errno EINVAL). */
extern int zcomp_parse_algo (const char *name, enum zcomp_algo *algo);

/* The name of an algorithm ("lz4", "lz4hc", "zstd"). */
extern const char *zcomp_algo_name (enum zcomp_algo algo);

/* The range and default of an algorithm's level.  Every algorithm takes
 * one: for lz4 it is LZ4's acceleration (as Linux zram's algorithm_params
 * level for lz4): 1, the default, compresses best; larger is faster and
 * compresses less.  lz4hc and zstd: larger compresses more, slower.
 */
extern void zcomp_level_range (enum zcomp_algo algo,
                               int *min, int *max, int *dflt);

/* Create a compressor.  level 0 means the algorithm's default.  Returns NULL
 * with errno EINVAL if the level is out of range for the algorithm
 * (zcomp_level_range), or ENOMEM.
 */
extern struct zcomp *zcomp_create (enum zcomp_algo algo, int level);
extern void zcomp_destroy (struct zcomp *comp);

/* Create an empty scratch (a few bytes; algorithm state comes on first
 * use).  Returns NULL with errno ENOMEM.
 */
extern struct zcomp_scratch *zcomp_scratch_create (void);

/* Free a scratch and all algorithm state in it.  NULL is accepted. */
extern void zcomp_scratch_destroy (struct zcomp_scratch *scratch);

extern enum zcomp_algo zcomp_get_algo (const struct zcomp *comp);
extern int zcomp_get_level (const struct zcomp *comp);   /* effective level */

/* Compress len bytes (len <= ZCOMP_MAX_INPUT: a page, or a group of up to
 * 16 pages compressed as one frame, src/group.c) from src into dst, which
 * has room for dst_cap bytes (<= 2 * ZCOMP_MAX_INPUT), using the caller's
 * scratch.  Returns the compressed size (> 0), 0 if the result would not
 * fit in dst_cap (the caller then stores the data raw), or -1 with errno ENOMEM if the
 * algorithm's state cannot be allocated in scratch.
 */
#define ZCOMP_MAX_INPUT 65536
extern int zcomp_compress (const struct zcomp *comp, struct zcomp_scratch *scratch,
                           const void *src, size_t len, void *dst, size_t dst_cap);

/* Decompress exactly src_len bytes from src into dst, which must come out
 * to exactly dst_len bytes, using the caller's scratch (only zstd needs
 * any).  Returns 0, or -1 with errno EIO (corrupt or wrong-sized data) or
 * ENOMEM.  Never writes outside dst[0..dst_len).
 */
extern int zcomp_decompress (const struct zcomp *comp, struct zcomp_scratch *scratch,
                             const void *src, size_t src_len,
                             void *dst, size_t dst_len);

#endif /* ZRAM_ZCOMP_H */
