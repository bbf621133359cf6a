/* nbdkit-zram: page compression front end (see include/zram/zcomp.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4hc.h>
#include <zstd.h>

#include "zram/zcomp.h"
#include "zcomp-impl.h"

/* Level limits we accept.  lz4hc's own range is 1..LZ4HC_CLEVEL_MAX; zstd's
 * negative "fast" levels are left out to keep the interface simple.
 */
#define LZ4HC_LEVEL_MIN 1
#define ZSTD_LEVEL_MIN 1
#define ZSTD_LEVEL_DEFAULT 3
/* lz4's level is its acceleration; lz4.h clamps it to LZ4_ACCELERATION_MAX
 * (65537 in 1.9.x), which we accept as the top rather than clamp silently.
 */
#define LZ4_LEVEL_MIN 1
#define LZ4_LEVEL_MAX 65537
#define LZ4_LEVEL_DEFAULT 1

struct zcomp_scratch *
zcomp_scratch_create (void)
{
  return calloc (1, sizeof (struct zcomp_scratch));
}

void
zcomp_scratch_destroy (struct zcomp_scratch *s)
{
  if (s == NULL)
    return;
  free (s->lz4);
  free (s->lz4hc);
  ZSTD_freeCCtx (s->zstd_c);
  ZSTD_freeDCtx (s->zstd_d);
  free (s);
}

int
zcomp_parse_algo (const char *name, enum zcomp_algo *algo)
{
  static const struct { const char *name; enum zcomp_algo algo; } names[] = {
    { "lz4", ZCOMP_LZ4 }, { "lz4hc", ZCOMP_LZ4HC }, { "zstd", ZCOMP_ZSTD },
  };
  size_t i;

  for (i = 0; i < sizeof names / sizeof names[0]; ++i) {
    if (strcmp (name, names[i].name) == 0) {
      *algo = names[i].algo;
      return 0;
    }
  }
  errno = EINVAL;
  return -1;
}

const char *
zcomp_algo_name (enum zcomp_algo algo)
{
  switch (algo) {
  case ZCOMP_LZ4: return "lz4";
  case ZCOMP_LZ4HC: return "lz4hc";
  case ZCOMP_ZSTD: return "zstd";
  }
  return "unknown";
}

void
zcomp_level_range (enum zcomp_algo algo, int *min, int *max, int *dflt)
{
  switch (algo) {
  case ZCOMP_LZ4:
    *min = LZ4_LEVEL_MIN;
    *max = LZ4_LEVEL_MAX;
    *dflt = LZ4_LEVEL_DEFAULT;
    return;
  case ZCOMP_LZ4HC:
    *min = LZ4HC_LEVEL_MIN;
    *max = LZ4HC_CLEVEL_MAX;
    *dflt = LZ4HC_CLEVEL_DEFAULT;
    return;
  case ZCOMP_ZSTD:
    *min = ZSTD_LEVEL_MIN;
    *max = ZSTD_maxCLevel ();
    *dflt = ZSTD_LEVEL_DEFAULT;
    return;
  }
  *min = *max = *dflt = 0;
}

struct zcomp *
zcomp_create (enum zcomp_algo algo, int level)
{
  struct zcomp *comp;
  int min, max, dflt;

  if (algo != ZCOMP_LZ4 && algo != ZCOMP_LZ4HC && algo != ZCOMP_ZSTD) {
    errno = EINVAL;
    return NULL;
  }
  zcomp_level_range (algo, &min, &max, &dflt);
  if (level == 0)
    level = dflt;
  else if (level < min || level > max) {
    errno = EINVAL;
    return NULL;
  }
  comp = malloc (sizeof *comp);
  if (comp == NULL)
    return NULL;
  comp->algo = algo;
  comp->level = level;
  return comp;
}

void
zcomp_destroy (struct zcomp *comp)
{
  free (comp);
}

enum zcomp_algo
zcomp_get_algo (const struct zcomp *comp)
{
  return comp->algo;
}

int
zcomp_get_level (const struct zcomp *comp)
{
  return comp->level;
}

int
zcomp_compress (const struct zcomp *comp, struct zcomp_scratch *s,
                const void *src, size_t len, void *dst, size_t dst_cap)
{
  size_t r;

  if (zcomp_check_args (len, dst_cap) == -1)
    return -1;

  switch (comp->algo) {
  case ZCOMP_LZ4:
    if (zcomp_lazy_alloc (&s->lz4, LZ4_sizeofState ()) == NULL)
      return -1;
    /* Returns 0 when the output does not fit: exactly our "store raw". */
    return LZ4_compress_fast_extState (s->lz4, src, dst, (int) len,
                                       (int) dst_cap, comp->level);
  case ZCOMP_LZ4HC:
    if (zcomp_lazy_alloc (&s->lz4hc, LZ4_sizeofStateHC ()) == NULL)
      return -1;
    return LZ4_compress_HC_extStateHC (s->lz4hc, src, dst, (int) len,
                                       (int) dst_cap, comp->level);
  case ZCOMP_ZSTD:
    if (zcomp_scratch_cctx (s) == NULL)
      return -1;
    r = ZSTD_compressCCtx (s->zstd_c, dst, dst_cap, src, len, comp->level);
    return zcomp_zstd_result (r);
  }
  errno = EINVAL;
  return -1;
}

int
zcomp_decompress (const struct zcomp *comp, struct zcomp_scratch *s,
                  const void *src, size_t src_len, void *dst, size_t dst_len)
{
  size_t r;

  switch (comp->algo) {
  case ZCOMP_LZ4:
  case ZCOMP_LZ4HC:   /* same format, same decoder */
    {
      int n = LZ4_decompress_safe (src, dst, (int) src_len, (int) dst_len);

      return zcomp_decompressed (n < 0, (size_t) n, dst_len);
    }
  case ZCOMP_ZSTD:
    if (zcomp_scratch_dctx (s) == NULL)
      return -1;
    r = ZSTD_decompressDCtx (s->zstd_d, dst, dst_len, src, src_len);
    return zcomp_decompressed (ZSTD_isError (r), r, dst_len);
  }
  errno = EINVAL;
  return -1;
}
