/* nbdkit-zram: what zcomp.c and zcomp-dict.c share (not a public API).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_ZCOMP_IMPL_H
#define ZRAM_ZCOMP_IMPL_H

#include <errno.h>
#include <stdlib.h>

#include <zstd.h>

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

#endif /* ZRAM_ZCOMP_IMPL_H */
