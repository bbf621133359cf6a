/* nbdkit-zram: compressing pages with a dictionary (see
 * include/zram/zcomp-dict.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4hc.h>
/* For ZDICT_optimizeTrainFromBuffer_fastCover, whose parameters let us
 * bound the trainer's memory (the shared library exports it).
 */
#define ZDICT_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "zram/zcomp-dict.h"
#include "zcomp-impl.h"

struct zcomp_dict {
  struct zcomp comp;          /* algorithm and level it was made for */
  size_t size;                /* bytes given */
  unsigned char *bytes;       /* zstd: all of them; LZ4: its window */
  size_t nbytes;
  /* LZ4: a stream that has hashed the window, copied per page.  It
   * points into bytes, which therefore live as long as it.
   */
  void *stream;
  ZSTD_CDict *cdict;
  ZSTD_DDict *ddict;
};

void
zcomp_dict_destroy (struct zcomp_dict *d)
{
  if (d == NULL)
    return;
  ZSTD_freeCDict (d->cdict);
  ZSTD_freeDDict (d->ddict);
  free (d->stream);
  free (d->bytes);
  free (d);
}

/* Hash the window into a fresh LZ4 (or LZ4HC) stream. */
static int
prepare_lz4 (struct zcomp_dict *d)
{
  if (d->comp.algo == ZCOMP_LZ4) {
    d->stream = malloc (sizeof (LZ4_stream_t));
    if (d->stream == NULL)
      return -1;
    LZ4_initStream (d->stream, sizeof (LZ4_stream_t));
    LZ4_loadDict (d->stream, (const char *) d->bytes, (int) d->nbytes);
  }
  else {
    d->stream = malloc (sizeof (LZ4_streamHC_t));
    if (d->stream == NULL)
      return -1;
    LZ4_initStreamHC (d->stream, sizeof (LZ4_streamHC_t));
    /* Sets the level (LZ4_setCompressionLevel is not exported by the
     * shared library); LZ4_loadDictHC keeps it.
     */
    LZ4_resetStreamHC_fast (d->stream, d->comp.level);
    LZ4_loadDictHC (d->stream, (const char *) d->bytes, (int) d->nbytes);
  }
  return 0;
}

static int
prepare_zstd (struct zcomp_dict *d)
{
  d->cdict = ZSTD_createCDict (d->bytes, d->nbytes, d->comp.level);
  d->ddict = ZSTD_createDDict (d->bytes, d->nbytes);
  if (d->cdict == NULL || d->ddict == NULL) {
    /* A buffer that starts with zstd's dictionary magic but is not a
     * valid dictionary is refused too: call that bad input, not memory.
     */
    errno = EINVAL;
    return -1;
  }
  return 0;
}

struct zcomp_dict *
zcomp_dict_create (const struct zcomp *comp, const void *buf, size_t len)
{
  struct zcomp_dict *d;
  size_t skip = 0;

  if (len == 0 || len > ZCOMP_DICT_MAX) {
    errno = EINVAL;
    return NULL;
  }
  d = calloc (1, sizeof *d);
  if (d == NULL)
    return NULL;
  d->comp = *comp;
  d->size = len;
  if (comp->algo != ZCOMP_ZSTD && len > ZCOMP_DICT_LZ4_WINDOW)
    skip = len - ZCOMP_DICT_LZ4_WINDOW;
  d->nbytes = len - skip;
  d->bytes = malloc (d->nbytes);
  if (d->bytes == NULL)
    goto err;
  memcpy (d->bytes, (const unsigned char *) buf + skip, d->nbytes);
  if ((comp->algo == ZCOMP_ZSTD ? prepare_zstd (d) : prepare_lz4 (d)) == -1)
    goto err;
  return d;

 err:
  {
    int e = errno;
    zcomp_dict_destroy (d);
    errno = e;
  }
  return NULL;
}

struct zcomp_dict *
zcomp_dict_remake (const struct zcomp_dict *d, const struct zcomp *comp,
                   size_t max_bytes)
{
  size_t n = d->nbytes < max_bytes ? d->nbytes : max_bytes;

  return zcomp_dict_create (comp, d->bytes + d->nbytes - n, n);
}

size_t
zcomp_dict_size (const struct zcomp_dict *d)
{
  return d->size;
}

size_t
zcomp_dict_mem_bytes (const struct zcomp_dict *d)
{
  size_t n = sizeof *d + d->nbytes;

  if (d->stream)
    n += d->comp.algo == ZCOMP_LZ4 ? sizeof (LZ4_stream_t)
                                   : sizeof (LZ4_streamHC_t);
  n += ZSTD_sizeof_CDict (d->cdict) + ZSTD_sizeof_DDict (d->ddict);
  return n;
}

int
zcomp_dict_compress (const struct zcomp_dict *d, struct zcomp_scratch *s,
                     const void *src, size_t len, void *dst, size_t dst_cap)
{
  size_t r;

  if (zcomp_check_args (len, dst_cap) == -1)
    return -1;

  switch (d->comp.algo) {
  case ZCOMP_LZ4:
    /* A copy of the prepared stream: 16 KiB of memcpy instead of hashing
     * 64 KiB of dictionary.  The copy refers to d->bytes as its external
     * dictionary; compressing changes only the copy.
     */
    if (zcomp_lazy_alloc (&s->lz4, sizeof (LZ4_stream_t)) == NULL)
      return -1;
    memcpy (s->lz4, d->stream, sizeof (LZ4_stream_t));
    return LZ4_compress_fast_continue (s->lz4, src, dst, (int) len,
                                       (int) dst_cap, d->comp.level);
  case ZCOMP_LZ4HC:
    if (zcomp_lazy_alloc (&s->lz4hc, sizeof (LZ4_streamHC_t)) == NULL)
      return -1;
    memcpy (s->lz4hc, d->stream, sizeof (LZ4_streamHC_t));
    /* Returns 0 when the output does not fit (dst_cap below the bound). */
    return LZ4_compress_HC_continue (s->lz4hc, src, dst, (int) len,
                                     (int) dst_cap);
  case ZCOMP_ZSTD:
    if (zcomp_scratch_cctx (s) == NULL)
      return -1;
    r = ZSTD_compress_usingCDict (s->zstd_c, dst, dst_cap, src, len, d->cdict);
    return zcomp_zstd_result (r);
  }
  errno = EINVAL;
  return -1;
}

int
zcomp_dict_decompress (const struct zcomp_dict *d, struct zcomp_scratch *s,
                       const void *src, size_t src_len,
                       void *dst, size_t dst_len)
{
  size_t r;

  switch (d->comp.algo) {
  case ZCOMP_LZ4:
  case ZCOMP_LZ4HC:
    {
      int n = LZ4_decompress_safe_usingDict (src, dst, (int) src_len,
                                             (int) dst_len,
                                             (const char *) d->bytes,
                                             (int) d->nbytes);

      return zcomp_decompressed (n < 0, (size_t) n, dst_len);
    }
  case ZCOMP_ZSTD:
    if (zcomp_scratch_dctx (s) == NULL)
      return -1;
    r = ZSTD_decompress_usingDDict (s->zstd_d, dst, dst_len, src, src_len,
                                    d->ddict);
    return zcomp_decompressed (ZSTD_isError (r), r, dst_len);
  }
  errno = EINVAL;
  return -1;
}

/* log2 of the trainer's frequency table (6 * 2^F bytes of memory). */
#ifndef ZCOMP_DICT_TRAIN_F
#define ZCOMP_DICT_TRAIN_F 18
#endif

long
zcomp_dict_train (void *dst, size_t cap, const void *samples,
                  const size_t *sizes, unsigned n)
{
  size_t r;

  if (n < ZCOMP_DICT_MIN_SAMPLES || cap == 0 || cap > ZCOMP_DICT_MAX) {
    errno = EINVAL;
    return -1;
  }
  /* ZDICT_trainFromBuffer's choices (fastCover, d 8, 4 steps, level 3)
   * but with a frequency table of 2^ZCOMP_DICT_TRAIN_F entries instead
   * of 2^20: its ~6 MiB would stay in the training thread's malloc arena
   * after it is freed (glibc trims only the main arena's top).
   */
  {
    ZDICT_fastCover_params_t p;

    memset (&p, 0, sizeof p);
    p.d = 8;
    p.steps = 4;
    p.f = ZCOMP_DICT_TRAIN_F;
    p.accel = 1;
    r = ZDICT_optimizeTrainFromBuffer_fastCover (dst, cap, samples, sizes, n, &p);
  }
  if (ZDICT_isError (r)) {
    /* The trainer fails on allocation too, but says so only in its
     * (unstable) error codes: most failures are samples it cannot use.
     */
    errno = ZSTD_getErrorCode (r) == ZSTD_error_memory_allocation
            ? ENOMEM : EINVAL;
    return -1;
  }
  return (long) r;
}

int
zcomp_dict_ab (const struct zcomp *comp, const struct zcomp_dict *d,
               struct zcomp_scratch *s, const void *pages, size_t n,
               size_t huge_cap, uint64_t *plain, uint64_t *with_dict)
{
  unsigned char out[ZCOMP_DICT_AB_PAGE], back[ZCOMP_DICT_AB_PAGE];
  const unsigned char *p = pages;
  uint64_t a = 0, b = 0;
  size_t cap;
  int r;

  if (huge_cap < 2 || huge_cap > ZCOMP_DICT_AB_PAGE + 1) {
    errno = EINVAL;
    return -1;
  }
  cap = huge_cap - 1;
  for (size_t i = 0; i < n; i++, p += ZCOMP_DICT_AB_PAGE) {
    r = zcomp_compress (comp, s, p, ZCOMP_DICT_AB_PAGE, out, cap);
    if (r < 0)
      return -1;
    a += r > 0 ? (uint64_t) r : ZCOMP_DICT_AB_PAGE;
    r = zcomp_dict_compress (d, s, p, ZCOMP_DICT_AB_PAGE, out, cap);
    if (r < 0)
      return -1;
    if (r > 0) {
      if (zcomp_dict_decompress (d, s, out, r, back, sizeof back) == -1 ||
          memcmp (back, p, ZCOMP_DICT_AB_PAGE) != 0) {
        errno = EIO;
        return -1;
      }
    }
    b += r > 0 ? (uint64_t) r : ZCOMP_DICT_AB_PAGE;
  }
  *plain = a;
  *with_dict = b;
  return 0;
}
