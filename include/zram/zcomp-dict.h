/* nbdkit-zram: compressing pages with a dictionary.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A 4 KiB page is a short input: a dictionary of bytes typical of the
 * device's pages gives the codec history to match against from the first
 * byte.  A struct zcomp_dict is a dictionary prepared once for one zcomp
 * (its algorithm and level), so that each page pays as little as possible:
 *
 *   zstd        a ZSTD_CDict at the zcomp's level and a ZSTD_DDict, used
 *               with the caller's scratch contexts;
 *   lz4, lz4hc  the last ZCOMP_DICT_LZ4_WINDOW bytes (all LZ4 can reach),
 *               and an LZ4 stream that has already hashed them: each page
 *               copies that stream into the caller's scratch and
 *               compresses with the copy, instead of hashing the
 *               dictionary again (LZ4_loadDict per page).  Decompression
 *               reads the dictionary bytes directly.
 *
 * A page compressed with a dictionary decompresses only with the same
 * dictionary: the caller records which one it used (zram keeps it in the
 * slot, see SLOT_DICT in include/zram/slot.h).
 *
 * Memory: a dictionary owns a copy of its bytes and its prepared state
 * (about 0.1 .. 1 MiB, more for zstd at high levels).  The scratch is the
 * caller's, as in include/zram/zcomp.h.
 *
 * Thread safety: a dictionary is immutable once made; any number of
 * threads may compress and decompress with it at once, each with its own
 * scratch.  zcomp_dict_destroy needs that no call on it is in flight.
 * Training and the A/B measure take only their arguments.
 */
#ifndef ZRAM_ZCOMP_DICT_H
#define ZRAM_ZCOMP_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "zram/zcomp.h"

struct zcomp_dict;

/* The largest dictionary accepted, bytes (kernel zram reads a dictionary
 * file of any size; ours stays in memory for the device's life, and zstd's
 * gains flatten well below this).
 */
#define ZCOMP_DICT_MAX (1024 * 1024)

/* How much of a dictionary LZ4 uses: its window, the last 64 KiB. */
#define ZCOMP_DICT_LZ4_WINDOW (64 * 1024)

/* Pages the trainer needs at the least: ZDICT fails on fewer, or makes a
 * dictionary that only fits its samples.
 */
#define ZCOMP_DICT_MIN_SAMPLES 16

/* Prepare len bytes of dictionary (1 <= len <= ZCOMP_DICT_MAX; raw content
 * or a zstd dictionary as ZDICT makes, whose header LZ4 ignores along with
 * anything else before its window) for comp's algorithm and level; the
 * bytes are copied.  Returns the dictionary, or NULL with errno EINVAL
 * (len out of range, or zstd refuses the bytes) or ENOMEM.
 */
extern struct zcomp_dict *zcomp_dict_create (const struct zcomp *comp,
                                             const void *buf, size_t len);

/* The same dictionary prepared for another zcomp, from the last max_bytes
 * (at most) of the bytes d keeps (all of them, or for LZ4 its window):
 * for a second algorithm that should share what was trained for the
 * first.  A zstd dictionary cut this way loses its header and is used as
 * raw content.  NULL with errno as zcomp_dict_create.
 */
extern struct zcomp_dict *zcomp_dict_remake (const struct zcomp_dict *d,
                                             const struct zcomp *comp,
                                             size_t max_bytes);

/* Free a dictionary.  NULL is accepted. */
extern void zcomp_dict_destroy (struct zcomp_dict *d);

/* The dictionary's size as given to zcomp_dict_create, bytes. */
extern size_t zcomp_dict_size (const struct zcomp_dict *d);

/* Bytes of memory the dictionary holds: its copy and its prepared state. */
extern size_t zcomp_dict_mem_bytes (const struct zcomp_dict *d);

/* As zcomp_compress, with the dictionary (and its zcomp's algorithm and
 * level): the compressed size (> 0), 0 if it would not fit in dst_cap, or
 * -1 with errno ENOMEM (scratch state) or EINVAL (len > ZCOMP_MAX_INPUT
 * or dst_cap > 2 * ZCOMP_MAX_INPUT).
 */
extern int zcomp_dict_compress (const struct zcomp_dict *d,
                                struct zcomp_scratch *scratch,
                                const void *src, size_t len,
                                void *dst, size_t dst_cap);

/* As zcomp_decompress, with the dictionary: 0, or -1 with errno EIO
 * (corrupt, wrong-sized, or made with another dictionary, where the codec
 * can tell) or ENOMEM.  Never writes outside dst[0..dst_len).
 */
extern int zcomp_dict_decompress (const struct zcomp_dict *d,
                                  struct zcomp_scratch *scratch,
                                  const void *src, size_t src_len,
                                  void *dst, size_t dst_len);

/* Train a dictionary of at most cap bytes (cap <= ZCOMP_DICT_MAX) with
 * libzstd's trainer (fastCover with ZDICT_trainFromBuffer's settings, but
 * a frequency table of 1.5 MiB rather than 6, which would stay in the
 * calling thread's malloc arena: ~5 % less gain on the memory-like image,
 * 7 MiB less RSS) from n samples laid end to end
 * in samples, sample i being sizes[i] bytes.  Returns the dictionary's
 * size (<= cap) written to dst, or -1 with errno EINVAL (fewer than
 * ZCOMP_DICT_MIN_SAMPLES samples, cap out of range, or the trainer found
 * nothing worth keeping: too few or too uniform samples) or ENOMEM.
 * CPU-heavy: about half a second per 4 MiB of samples.  Allocates.
 */
extern long zcomp_dict_train (void *dst, size_t cap, const void *samples,
                              const size_t *sizes, unsigned n);

/* The unit of the A/B measure: one device page. */
#define ZCOMP_DICT_AB_PAGE 4096

/* The A/B measure: compress n pages of ZCOMP_DICT_AB_PAGE bytes each, laid end
 * to end in pages, once with comp and once with d (made for comp), and
 * add up the stored bytes of each (a page that does not fit in
 * huge_cap - 1 bytes counts as stored raw: ZCOMP_DICT_AB_PAGE).  Sets
 * *plain and *with_dict and returns 0, or -1 with errno ENOMEM or EINVAL.
 * Every page is also decompressed with the dictionary and compared, so
 * that a dictionary that round-trips wrongly is never published: then -1
 * with errno EIO.
 */
extern int zcomp_dict_ab (const struct zcomp *comp, const struct zcomp_dict *d,
                          struct zcomp_scratch *scratch,
                          const void *pages, size_t n, size_t huge_cap,
                          uint64_t *plain, uint64_t *with_dict);

#endif /* ZRAM_ZCOMP_DICT_H */
