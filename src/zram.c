/* nbdkit-zram: the compressed RAM block device (see include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Life of a write of one whole page:
 *
 *   same-filled? ──yes──> new state = SAME(word)                (no allocation)
 *        │no
 *   compress into this thread's buffer, capped below the pool's huge size
 *        │fits: object = compressed bytes    │doesn't: object = raw page (HUGE)
 *   zpool_alloc + copy in                     (no slot lock held so far)
 *   lock slot ─ swap old state for new ─ unlock ─ free the old object
 *
 * A partial-page write (or the zeroing end of a discard) holds the slot lock
 * across read, patch, compress and swap, so that concurrent partial writes to
 * one page serialise and none is lost.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zram-impl.h"

/* A page state prepared outside the slot lock, or taken out of a slot. */
struct page_state {
  uint64_t handle;            /* object handle, or fill word with SLOT_SAME */
  size_t size;
  uint64_t flags;             /* SLOT_BIT (SLOT_SAME) / SLOT_BIT (SLOT_HUGE) */
};

/* Scratch pages of each request thread.  glibc allocates a dlopened
 * module's TLS on the thread's first use, so from a worker's second request
 * on, the write path allocates nothing but the object itself.
 */
static __thread unsigned char tls_page[ZRAM_PAGE_SIZE] __attribute__ ((aligned (64)));
static __thread unsigned char tls_cbuf[ZRAM_PAGE_SIZE] __attribute__ ((aligned (64)));

static const unsigned char zero_page[ZRAM_PAGE_SIZE];

/* --- initialisation ----------------------------------------------------- */

static int
config_valid (const struct zram_config *config)
{
  if (config->disksize == 0 || config->disksize % ZRAM_PAGE_SIZE != 0 ||
      config->disksize > ZRAM_MAX_DISKSIZE) {
    errno = EINVAL;
    return 0;
  }
  return 1;
}

struct zram_meta *
zram_meta_create (const struct zram_config *config)
{
  struct zram_meta *m;

  if (!config_valid (config))
    return NULL;
  m = calloc (1, sizeof *m);
  if (m == NULL)
    return NULL;
  m->disksize = config->disksize;
  m->nr_pages = config->disksize >> ZRAM_PAGE_SHIFT;
  m->pool_kind = config->pool;
  m->comp = zcomp_create (config->algo, config->level);
  if (m->comp == NULL)
    goto err;
  m->table = slot_table_create (m->nr_pages);
  if (m->table == NULL)
    goto err;
  m->pool = zpool_create (config->pool);
  if (m->pool == NULL)
    goto err;
  m->huge_class_size = zpool_huge_class_size (m->pool);
  return m;

 err:
  zram_meta_destroy (m);
  return NULL;
}

/* Free every object, then the pool, table and compressor.  A pool that
 * releases its objects wholesale (zs: whole arenas are unmapped) is not
 * walked at all: freeing a filled device object by object costs seconds
 * (each emptied span is madvised back to the OS), which delayed exit and
 * reset.  Otherwise the walk stops once every object is found, so a large,
 * lightly used device is freed quickly.
 */
void
zram_meta_destroy (struct zram_meta *m)
{
  int saved_errno = errno;

  if (m == NULL)
    return;
  if (m->table && m->pool && !zpool_destroy_frees_objects (m->pool)) {
    uint64_t objects = STAT_GET (m->stats.pages_stored) -
                       STAT_GET (m->stats.same_pages);
    uint64_t i;

    for (i = 0; objects > 0 && i < m->nr_pages; ++i) {
      struct zram_slot *slot = &m->table[i];

      if (!slot_test_flag (slot, SLOT_SAME) && slot_get_handle (slot) != 0) {
        zpool_free (m->pool, slot_get_handle (slot));
        objects--;
      }
    }
  }
  zpool_destroy (m->pool);
  slot_table_destroy (m->table, m->nr_pages);
  zcomp_destroy (m->comp);
  free (m);
  errno = saved_errno;
}

struct zram *
zram_create (const struct zram_config *config)
{
  struct zram *z;

  z = calloc (1, sizeof *z);
  if (z == NULL)
    return NULL;
  z->meta = zram_meta_create (config);
  if (z->meta == NULL) {
    free (z);
    return NULL;
  }
  z->disksize = config->disksize;
  pthread_mutex_init (&z->ctl_lock, NULL);
  return z;
}

void
zram_destroy (struct zram *z)
{
  if (z == NULL)
    return;
  zram_meta_destroy (z->meta);
  pthread_mutex_destroy (&z->ctl_lock);
  free (z);
}

uint64_t
zram_disksize (const struct zram *z)
{
  return z->disksize;
}

/* Check [offset, offset+count) against the live size. */
static int
range_valid (struct zram_meta *m, uint32_t count, uint64_t offset)
{
  if (offset > m->disksize || count > m->disksize - offset) {
    STAT_ADD (m->stats.invalid_io, 1);
    errno = EINVAL;
    return 0;
  }
  return 1;
}

/* --- page states -------------------------------------------------------- */

static void
update_mem_used_max (struct zram_meta *m, uint64_t total)
{
  uint64_t max = STAT_GET (m->stats.mem_used_max);

  while (total > max &&
         !__atomic_compare_exchange_n (&m->stats.mem_used_max, &max, total,
                                       true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
}

/* Turn a page of data into a page state: a SAME word, or an object in the
 * pool holding the compressed (or, if that saves nothing, raw) page.  Takes
 * no slot lock.  Returns 0, or -1 with errno (ENOMEM, ENOSPC).
 */
static int
prepare_page (struct zram *z, struct zram_meta *m, const unsigned char *src,
              struct page_state *st)
{
  const unsigned char *data = tls_cbuf;
  uint64_t word, limit, total;
  zpool_handle h;
  int clen;
  void *dst;

  if (page_same_filled (src, &word)) {
    st->handle = word;
    st->size = 0;
    st->flags = SLOT_BIT (SLOT_SAME);
    return 0;
  }

  /* Capping the output just below the huge size makes "does not fit" and
   * "not worth compressing" the same answer: 0.
   */
  clen = zcomp_compress (m->comp, src, ZRAM_PAGE_SIZE, tls_cbuf,
                         m->huge_class_size - 1);
  if (clen < 0)
    return -1;
  if (clen == 0) {
    data = src;
    st->size = ZRAM_PAGE_SIZE;
    st->flags = SLOT_BIT (SLOT_HUGE);
  }
  else {
    st->size = clen;
    st->flags = 0;
  }

  h = zpool_alloc (m->pool, st->size);
  if (h == 0)
    return -1;
  total = zpool_total_bytes (m->pool);
  limit = __atomic_load_n (&z->mem_limit, __ATOMIC_RELAXED);
  if (limit && total > limit) {
    zpool_free (m->pool, h);
    errno = ENOSPC;
    return -1;
  }
  update_mem_used_max (m, total);

  dst = zpool_map (m->pool, h, ZPOOL_MAP_WO);
  memcpy (dst, data, st->size);
  zpool_unmap (m->pool, h);
  st->handle = h;
  return 0;
}

/* Put st into the locked slot and return what was there in *old. */
static void
install_locked (struct zram_meta *m, struct zram_slot *slot,
                const struct page_state *st, struct page_state *old)
{
  old->handle = slot_get_handle (slot);
  old->size = slot_get_size (slot);
  old->flags = slot_info (slot) & (SLOT_BIT (SLOT_SAME) | SLOT_BIT (SLOT_HUGE));

  slot_set_handle (slot, st->handle);
  slot_set_size_flags (slot, st->size, st->flags);

  if (st->flags & SLOT_BIT (SLOT_SAME)) {
    STAT_ADD (m->stats.pages_stored, 1);
    STAT_ADD (m->stats.same_pages, 1);
  }
  else if (st->handle != 0) {
    STAT_ADD (m->stats.pages_stored, 1);
    STAT_ADD (m->stats.compr_data_size, st->size);
    if (st->flags & SLOT_BIT (SLOT_HUGE)) {
      STAT_ADD (m->stats.huge_pages, 1);
      STAT_ADD (m->stats.huge_pages_since, 1);
    }
  }
}

/* Release a state taken out of a slot: free its object and uncount it.
 * Called after the slot is unlocked: nobody can reach the old object any
 * more, because readers find objects only through the slot, under its lock.
 * Returns true if the state held a page.
 */
static bool
release_state (struct zram_meta *m, const struct page_state *old)
{
  if (old->flags & SLOT_BIT (SLOT_SAME)) {
    STAT_SUB (m->stats.pages_stored, 1);
    STAT_SUB (m->stats.same_pages, 1);
    return true;
  }
  if (old->handle == 0)
    return false;
  zpool_free (m->pool, old->handle);
  STAT_SUB (m->stats.pages_stored, 1);
  STAT_SUB (m->stats.compr_data_size, old->size);
  if (old->flags & SLOT_BIT (SLOT_HUGE))
    STAT_SUB (m->stats.huge_pages, 1);
  return true;
}

/* Read the locked slot's page into dst (ZRAM_PAGE_SIZE bytes). */
static int
read_locked (struct zram_meta *m, struct zram_slot *slot, unsigned char *dst)
{
  zpool_handle h = slot_get_handle (slot);
  const void *src;
  int r = 0;

  if (slot_test_flag (slot, SLOT_SAME)) {
    page_fill (dst, h);
    return 0;
  }
  if (h == 0) {
    memset (dst, 0, ZRAM_PAGE_SIZE);
    return 0;
  }
  src = zpool_map (m->pool, h, ZPOOL_MAP_RO);
  if (slot_test_flag (slot, SLOT_HUGE))
    memcpy (dst, src, ZRAM_PAGE_SIZE);
  else
    r = zcomp_decompress (m->comp, src, slot_get_size (slot), dst, ZRAM_PAGE_SIZE);
  zpool_unmap (m->pool, h);
  return r;
}

/* --- per-page operations ------------------------------------------------- */

static int
write_full_page (struct zram *z, struct zram_meta *m, uint64_t index,
                 const unsigned char *src)
{
  struct zram_slot *slot = &m->table[index];
  struct page_state st, old;

  /* Compression and allocation happen before the lock: readers and writers
   * of this page wait only for the swap below.
   */
  if (prepare_page (z, m, src, &st) == -1)
    return -1;
  slot_lock (slot);
  install_locked (m, slot, &st, &old);
  slot_unlock (slot);
  release_state (m, &old);
  return 0;
}

static int
write_partial_page (struct zram *z, struct zram_meta *m, uint64_t index,
                    const unsigned char *src, size_t off, size_t n)
{
  struct zram_slot *slot = &m->table[index];
  struct page_state st, old;

  slot_lock (slot);
  /* Zeroes written into a page that reads as zeroes change nothing. */
  if (slot_is_empty (slot) && memcmp (src, zero_page, n) == 0) {
    slot_unlock (slot);
    return 0;
  }
  if (read_locked (m, slot, tls_page) == -1)
    goto err;
  memcpy (tls_page + off, src, n);
  if (prepare_page (z, m, tls_page, &st) == -1)
    goto err;
  install_locked (m, slot, &st, &old);
  slot_unlock (slot);
  release_state (m, &old);
  return 0;

 err:
  slot_unlock (slot);
  return -1;
}

static int
read_page (struct zram_meta *m, uint64_t index, unsigned char *dst,
           size_t off, size_t n)
{
  struct zram_slot *slot = &m->table[index];
  int r;

  slot_lock (slot);
  if (n == ZRAM_PAGE_SIZE)
    r = read_locked (m, slot, dst);
  else {
    r = read_locked (m, slot, tls_page);
    if (r == 0)
      memcpy (dst, tls_page + off, n);
  }
  slot_unlock (slot);
  return r;
}

static void
discard_full_page (struct zram_meta *m, uint64_t index)
{
  static const struct page_state empty = { 0, 0, 0 };
  struct zram_slot *slot = &m->table[index];
  struct page_state old;

  if (slot_is_empty (slot))
    return;                   /* empty already (a racing write may win) */
  slot_lock (slot);
  install_locked (m, slot, &empty, &old);
  slot_unlock (slot);
  if (release_state (m, &old))
    STAT_ADD (m->stats.notify_free, 1);
}

/* --- data path ----------------------------------------------------------- */

/* Walk [offset, offset+count) page by page: index, offset in page, length. */
#define FOR_EACH_PAGE_PIECE(offset, count, index, off, n)                     \
  for (uint64_t pos_ = (offset), end_ = (offset) + (count);                   \
       pos_ < end_ &&                                                          \
         ((index) = pos_ >> ZRAM_PAGE_SHIFT,                                   \
          (off) = pos_ & (ZRAM_PAGE_SIZE - 1),                                 \
          (n) = ZRAM_PAGE_SIZE - (off) < end_ - pos_ ?                         \
                ZRAM_PAGE_SIZE - (off) : end_ - pos_, 1);                      \
       pos_ += (n))

/* What a data request does to each page it covers. */
enum io_op { IO_READ, IO_WRITE, IO_DISCARD };

/* The common frame of every data request: enter the read-side section,
 * check the range against the live size, apply op page by page (stopping
 * at the first failure, which leaves that page as it was), count a
 * failure, leave.  buf is written for IO_READ, read for IO_WRITE, unused
 * for IO_DISCARD.
 */
static int
do_io (struct zram *z, enum io_op op, unsigned char *buf, uint32_t count,
       uint64_t offset)
{
  struct zram_meta *m = meta_get (z);
  uint64_t index;
  size_t off, n;
  int r = 0;

  if (m == NULL) {
    STAT_ADD (*(op == IO_READ ? &z->offline_reads : &z->offline_writes), 1);
    return -1;
  }
  if (!range_valid (m, count, offset))
    r = -1;
  else {
    FOR_EACH_PAGE_PIECE (offset, count, index, off, n) {
      switch (op) {
      case IO_READ:
        r = read_page (m, index, buf, off, n);
        break;
      case IO_WRITE:
        r = n == ZRAM_PAGE_SIZE ? write_full_page (z, m, index, buf)
                                : write_partial_page (z, m, index, buf, off, n);
        break;
      case IO_DISCARD:
        /* Whole pages are freed; the ends are zeroed in place. */
        if (n == ZRAM_PAGE_SIZE)
          discard_full_page (m, index);
        else
          r = write_partial_page (z, m, index, zero_page, off, n);
        break;
      }
      if (r == -1)
        break;
      if (op != IO_DISCARD)
        buf += n;
    }
  }
  if (r == -1)
    STAT_ADD (*(op == IO_READ ? &m->stats.failed_reads
                               : &m->stats.failed_writes), 1);
  meta_put (z);
  return r;
}

int
zram_read (struct zram *z, void *buf, uint32_t count, uint64_t offset)
{
  return do_io (z, IO_READ, buf, count, offset);
}

int
zram_write (struct zram *z, const void *buf, uint32_t count, uint64_t offset)
{
  /* do_io only reads buf for IO_WRITE. */
  return do_io (z, IO_WRITE, (unsigned char *) buf, count, offset);
}

int
zram_discard (struct zram *z, uint32_t count, uint64_t offset)
{
  return do_io (z, IO_DISCARD, NULL, count, offset);
}

int
zram_extents (struct zram *z, uint32_t count, uint64_t offset,
              zram_extent_fn fn, void *opaque)
{
  struct zram_meta *m = meta_get (z);
  uint64_t first, last, i, run_start;
  enum zram_extent_type run_type;
  int r = 0;

  if (m == NULL)
    return -1;
  if (!range_valid (m, count, offset)) {
    meta_put (z);
    return -1;
  }
  first = offset >> ZRAM_PAGE_SHIFT;
  last = (offset + count + ZRAM_PAGE_SIZE - 1) >> ZRAM_PAGE_SHIFT;
  if (last <= first)
    last = first + 1;         /* count 0: still describe the page at offset */
  if (last > m->nr_pages)
    last = m->nr_pages;

  run_start = first;
  run_type = slot_peek_zero (&m->table[first]) ? ZRAM_EXTENT_ZERO : ZRAM_EXTENT_DATA;
  for (i = first + 1; i <= last; ++i) {
    enum zram_extent_type t = ZRAM_EXTENT_DATA;

    if (i < last)
      t = slot_peek_zero (&m->table[i]) ? ZRAM_EXTENT_ZERO : ZRAM_EXTENT_DATA;
    if (i == last || t != run_type) {
      if (fn (opaque, run_start << ZRAM_PAGE_SHIFT,
              (i - run_start) << ZRAM_PAGE_SHIFT, run_type) == -1) {
        r = -1;
        break;
      }
      run_start = i;
      run_type = t;
    }
  }
  meta_put (z);
  return r;
}
