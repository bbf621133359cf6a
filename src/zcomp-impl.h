/* nbdkit-zram: what zcomp.c and zcomp-dict.c share (not a public API).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_ZCOMP_IMPL_H
#define ZRAM_ZCOMP_IMPL_H

#include <errno.h>
#include <stdlib.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "zram/zcomp.h"

struct zcomp {
  enum zcomp_algo algo;
  int level;
};

/* The state of one caller (a thread), created piecemeal on first use of
 * each algorithm.  None of it depends on the level: levels are passed per
 * call, so one scratch serves every zcomp.  The LZ4 states double as the
 * streams a dictionary compression copies its prepared stream into
 * (LZ4_sizeofState () is sizeof (LZ4_stream_t), likewise for HC).
 */
struct zcomp_scratch {
  void *lz4;              /* LZ4_sizeofState() bytes */
  void *lz4hc;            /* LZ4_sizeofStateHC() bytes */
  ZSTD_CCtx *zstd_c;
  ZSTD_DCtx *zstd_d;
};

/* Allocate *slot with size bytes unless it is there already. */
static inline void *
zcomp_lazy_alloc (void **slot, size_t size)
{
  if (*slot == NULL)
    *slot = malloc (size);
  return *slot;
}

/* The scratch's zstd contexts, made on first use; NULL with errno ENOMEM. */
static inline ZSTD_CCtx *
zcomp_scratch_cctx (struct zcomp_scratch *s)
{
  if (s->zstd_c == NULL && (s->zstd_c = ZSTD_createCCtx ()) == NULL)
    errno = ENOMEM;
  return s->zstd_c;
}

static inline ZSTD_DCtx *
zcomp_scratch_dctx (struct zcomp_scratch *s)
{
  if (s->zstd_d == NULL && (s->zstd_d = ZSTD_createDCtx ()) == NULL)
    errno = ENOMEM;
  return s->zstd_d;
}

/* The limits every compression checks: 0, or -1 with errno EINVAL. */
static inline int
zcomp_check_args (size_t len, size_t dst_cap)
{
  if (len > ZCOMP_MAX_INPUT || dst_cap > ZCOMP_MAX_INPUT * 2) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* A zstd compression's result r as zcomp_compress returns it. */
static inline int
zcomp_zstd_result (size_t r)
{
  if (ZSTD_isError (r)) {
    if (ZSTD_getErrorCode (r) == ZSTD_error_dstSize_tooSmall)
      return 0;               /* does not fit: store raw */
    errno = ENOMEM;           /* zstd fails otherwise only on allocation */
    return -1;
  }
  return (int) r;
}

/* A decompression that produced got bytes (negative or a zstd error
 * code: failed) where want were due: 0, or -1 with errno EIO.
 */
static inline int
zcomp_decompressed (int failed, size_t got, size_t want)
{
  if (failed || got != want) {
    errno = EIO;
    return -1;
  }
  return 0;
}

#endif /* ZRAM_ZCOMP_IMPL_H */
