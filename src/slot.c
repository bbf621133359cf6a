/* nbdkit-zram: the per-page slot table (see include/zram/slot.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14 */
#endif

#include "zram/slot.h"
#include "zram/zram.h"

/* Spins before yielding.  A slot is held for one (de)compression, about a
 * microsecond, so a short spin usually wins; yielding after that keeps a
 * preempted holder from being starved on 2 CPUs.
 */
#define SLOT_SPINS_BEFORE_YIELD 128

/* An anonymous, zeroed mapping that costs nothing until written. */
static void *
reserve (size_t bytes)
{
  /* MAP_NORESERVE: the table of a 1 TiB device is 4 GiB of address space,
   * paid for only as pages are written.
   */
  void *p = mmap (NULL, bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

  if (p == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

static size_t
touched_bytes (uint64_t nr)
{
  uint64_t groups = (nr + SLOT_GROUP_SLOTS - 1) >> SLOT_GROUP_SHIFT;

  return (groups + 63) / 64 * sizeof (uint64_t);
}

int
slot_table_create (struct slot_table *t, uint64_t nr)
{
  t->slots = NULL;
  t->touched = NULL;
  t->nr = nr;
  if (nr == 0 || nr > SIZE_MAX / sizeof (struct zram_slot)) {
    errno = EOVERFLOW;
    return -1;
  }
  t->slots = reserve (nr * sizeof (struct zram_slot));
  if (t->slots == NULL)
    return -1;
  t->touched = reserve (touched_bytes (nr));
  if (t->touched == NULL) {
    slot_table_destroy (t);
    return -1;
  }
  return 0;
}

/* Populate bytes at p, writable, without changing them.  Before Linux 5.14
 * (no MADV_POPULATE_WRITE) touch a word of each page with an atomic or of
 * nothing, as the memory may be in use.
 */
static int
populate (uint64_t *p, size_t bytes)
{
  size_t i;

  if (madvise (p, bytes, MADV_POPULATE_WRITE) == 0)
    return 0;
  if (errno != EINVAL) {
    errno = ENOMEM;
    return -1;
  }
  for (i = 0; i < bytes; i += 4096)
    __atomic_fetch_or (&p[i / sizeof *p], 0, __ATOMIC_RELAXED);
  return 0;
}

int
slot_table_populate (struct slot_table *t)
{
  if (populate ((uint64_t *) t->slots, t->nr * sizeof (struct zram_slot)) == -1)
    return -1;
  return populate (t->touched, touched_bytes (t->nr));
}

void
slot_table_destroy (struct slot_table *t)
{
  if (t->slots)
    munmap (t->slots, t->nr * sizeof (struct zram_slot));
  if (t->touched)
    munmap (t->touched, touched_bytes (t->nr));
  t->slots = NULL;
  t->touched = NULL;
}

uint64_t
slot_table_next_touched (const struct slot_table *t, uint64_t from,
                         uint64_t to)
{
  uint64_t g, last_g, w;

  if (from >= to)
    return to;
  g = from >> SLOT_GROUP_SHIFT;
  last_g = (to - 1) >> SLOT_GROUP_SHIFT;
  while (g <= last_g) {
    /* The bits of this word from group g on. */
    w = __atomic_load_n (&t->touched[g / 64], __ATOMIC_ACQUIRE) >> (g % 64);
    if (w != 0) {
      g += __builtin_ctzll (w);
      if (g > last_g)
        break;
      return g << SLOT_GROUP_SHIFT > from ? g << SLOT_GROUP_SHIFT : from;
    }
    g = (g / 64 + 1) * 64;
  }
  return to;
}

bool
slot_table_peek_zero (const struct slot_table *t, uint64_t i)
{
  return !slot_table_touched (t, i) || slot_peek_zero (slot_at (t, i));
}

void
slot_lock (struct zram_slot *slot)
{
  unsigned spins = 0;
  uint64_t old = __atomic_load_n (&slot->info, __ATOMIC_RELAXED);

  for (;;) {
    if (!(old & SLOT_BIT (SLOT_LOCK))) {
      if (__atomic_compare_exchange_n (&slot->info, &old,
                                       old | SLOT_BIT (SLOT_LOCK), true,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
      continue;               /* old was reloaded by the failed CAS */
    }
    if (++spins >= SLOT_SPINS_BEFORE_YIELD) {
      sched_yield ();
      spins = 0;
    }
    else
      __builtin_ia32_pause ();
    old = __atomic_load_n (&slot->info, __ATOMIC_RELAXED);
  }
}

void
slot_unlock (struct zram_slot *slot)
{
  __atomic_fetch_and (&slot->info, ~SLOT_BIT (SLOT_LOCK), __ATOMIC_RELEASE);
}

bool
slot_unlock_accessed (struct zram_slot *slot, uint32_t t)
{
  uint64_t info = slot_info (slot);

  /* Only the lock holder changes info (others only try to CAS the lock
   * bit in, which fails while it is set), so one release store both
   * updates and unlocks.
   */
  __atomic_store_n (&slot->info,
                    (info & ~(SLOT_BIT (SLOT_LOCK) | SLOT_BIT (SLOT_IDLE) |
                              SLOT_TIME_MASK)) |
                    ((uint64_t) t << SLOT_TIME_SHIFT),
                    __ATOMIC_RELEASE);
  return (info & SLOT_BIT (SLOT_IDLE)) != 0;
}

bool
slot_peek_zero (const struct zram_slot *slot)
{
  /* Empty slots and zero-filled SAME slots are exactly those whose handle
   * word is 0: a compressed page has a non-zero handle and a SAME page
   * keeps its fill word there.  One atomic load therefore gives a state the
   * slot really had, with no need for the lock.
   */
  return __atomic_load_n (&slot->handle, __ATOMIC_RELAXED) == 0;
}

/* Load the i-th 8-byte word of p, which need not be aligned (NBD buffers
 * are cut at arbitrary byte offsets); compilers turn this into one load.
 */
static inline uint64_t
load_word (const unsigned char *p, size_t i)
{
  uint64_t w;

  memcpy (&w, p + i * sizeof w, sizeof w);
  return w;
}

bool
page_same_filled (const void *page, uint64_t *word)
{
  const unsigned char *p = page;
  const size_t n = ZRAM_PAGE_SIZE / sizeof (uint64_t);
  uint64_t v = load_word (p, 0);
  size_t i;

  /* Check the last word first: most pages that are not same-filled
   * differ there, so they leave at once.
   */
  if (load_word (p, n - 1) != v)
    return false;
  for (i = 1; i < n - 1; ++i)
    if (load_word (p, i) != v)
      return false;
  *word = v;
  return true;
}

void
page_fill (void *page, uint64_t word)
{
  unsigned char *p = page;
  size_t i;

  for (i = 0; i < ZRAM_PAGE_SIZE; i += sizeof word)
    memcpy (p + i, &word, sizeof word);
}
