/* nbdkit-zram: the backing store's block allocator (a bitmap).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * One bit per block, claimed and released with atomic operations on its
 * 64-bit word, so allocating (writeback) and freeing (the data path, when
 * a written-back page is overwritten or trimmed) never wait for each
 * other.  A search starts at the word where the last one succeeded (next
 * fit), so a run of writebacks fills the store front to back and a
 * search usually looks at one word.  The bits past the last block in the
 * last word are set at creation, so they are never handed out.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "backing-impl.h"

static uint64_t
nr_words (uint64_t nr)
{
  return (nr + 63) / 64;
}

int
backing_bitmap_init (struct backing_bitmap *map, uint64_t nr)
{
  uint64_t n = nr_words (nr);

  map->nr = nr;
  map->used = 0;
  map->hint = 0;
  /* calloc of a large bitmap is a lazily zeroed mapping: a 1 TiB store's
   * 32 MiB bitmap costs memory only where blocks are taken.
   */
  map->words = n > SIZE_MAX / sizeof (uint64_t) ? NULL
               : calloc (n, sizeof (uint64_t));
  if (map->words == NULL) {
    errno = ENOMEM;
    return -1;
  }
  if (nr % 64)
    map->words[n - 1] = ~UINT64_C(0) << (nr % 64);
  return 0;
}

void
backing_bitmap_destroy (struct backing_bitmap *map)
{
  free (map->words);
  map->words = NULL;
}

int
backing_bitmap_alloc (struct backing_bitmap *map, uint64_t *block)
{
  uint64_t n = nr_words (map->nr);
  uint64_t start = __atomic_load_n (&map->hint, __ATOMIC_RELAXED) % n;
  uint64_t i, w, old;

  if (__atomic_load_n (&map->used, __ATOMIC_RELAXED) >= map->nr) {
    errno = ENOSPC;
    return -1;
  }
  /* One round over every word from the hint on.  A word another thread
   * fills meanwhile is passed over; a block freed behind us is missed by
   * this round, so ENOSPC can be answered while the last free block is
   * being given back: the caller sees a store that was full a moment ago.
   */
  for (i = 0; i < n; i++) {
    w = (start + i) % n;
    old = __atomic_load_n (&map->words[w], __ATOMIC_RELAXED);
    while (old != ~UINT64_C(0)) {
      uint64_t bit = UINT64_C(1) << __builtin_ctzll (~old);

      if (__atomic_compare_exchange_n (&map->words[w], &old, old | bit, true,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        __atomic_add_fetch (&map->used, 1, __ATOMIC_RELAXED);
        __atomic_store_n (&map->hint, w, __ATOMIC_RELAXED);
        *block = w * 64 + __builtin_ctzll (bit);
        return 0;
      }
    }
  }
  errno = ENOSPC;
  return -1;
}

void
backing_bitmap_free (struct backing_bitmap *map, uint64_t block)
{
  uint64_t bit = UINT64_C(1) << (block % 64);
  uint64_t old;

  old = __atomic_fetch_and (&map->words[block / 64], ~bit, __ATOMIC_ACQ_REL);
  /* Freeing a free block would hand it to two owners later. */
  assert (old & bit);
  __atomic_sub_fetch (&map->used, 1, __ATOMIC_RELAXED);
}

uint64_t
backing_bitmap_next_used (const struct backing_bitmap *map, uint64_t from)
{
  uint64_t n = nr_words (map->nr), w, word;

  for (w = from / 64; w < n && from < map->nr; w++, from = w * 64) {
    word = __atomic_load_n (&map->words[w], __ATOMIC_RELAXED) >> (from % 64);
    /* The padding bits past nr are set: stop at nr. */
    if (word != 0) {
      from += __builtin_ctzll (word);
      return from < map->nr ? from : map->nr;
    }
  }
  return map->nr;
}
