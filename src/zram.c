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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "group.h"
#include "zram-impl.h"

/* Times a partial write at mem_limit waits for room before it fails
 * (write_partial_page): each wait ends as soon as there is room, but
 * other writers may take that room before this one merges its page.
 */
#define ROOM_PARTIAL_TRIES 8

/* Scratch pages and codec state come from the calling thread's context
 * (include/zram/thread-ctx.h), made explicitly on its first request, not
 * from thread-local storage, whose lazy allocation aborts the process when
 * memory is short.  From a thread's second request on, the write path
 * allocates nothing but the object itself.
 */
_Static_assert (ZRAM_THREAD_CTX_PAGE == ZRAM_PAGE_SIZE,
                "a context's scratch buffers hold one device page");

static const unsigned char zero_page[ZRAM_PAGE_SIZE];

/* --- initialisation ----------------------------------------------------- */

static int
config_valid (const struct zram_config *config)
{
  if (config->disksize == 0 || config->disksize % ZRAM_PAGE_SIZE != 0 ||
      config->disksize > ZRAM_MAX_DISKSIZE ||
      config->nr_recomp > ZRAM_MAX_RECOMP || config->group_pages == 1 ||
      config->group_pages > ZRAM_GROUP_MAX_PAGES ||
      (config->dict != NULL &&
       (config->dict_len == 0 || config->dict_len > ZCOMP_DICT_MAX))) {
    errno = EINVAL;
    return 0;
  }
  return 1;
}

struct zram_meta *
zram_meta_create (const struct zram_config *config, struct zram_mem_guard *guard)
{
  struct zram_meta *m;
  struct timespec ts;
  unsigned i;

  if (!config_valid (config))
    return NULL;
  m = calloc (1, sizeof *m);
  if (m == NULL)
    return NULL;
  m->disksize = config->disksize;
  m->nr_pages = config->disksize >> ZRAM_PAGE_SHIFT;
  m->pool_kind = config->pool;
  pthread_mutex_init (&m->group_lock, NULL);
  clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
  m->epoch_s = ts.tv_sec;
  m->comp = zcomp_create (config->algo, config->level);
  if (m->comp == NULL)
    goto err;
  for (i = 0; i < config->nr_recomp; i++) {
    m->recomp[i] = zcomp_create (config->recomp[i].algo,
                                 config->recomp[i].level);
    if (m->recomp[i] == NULL)
      goto err;
    m->nr_recomp = i + 1;
  }
  if (config->group_pages) {
    m->group_comp = zcomp_create (config->group_algo.algo,
                                  config->group_algo.level);
    if (m->group_comp == NULL)
      goto err;
    m->group_pages = config->group_pages;
  }
  if (config->dict != NULL &&
      zram_meta_dict_init (m, config->dict, config->dict_len, 1) == -1)
    goto err;
  if (slot_table_create (&m->table, m->nr_pages) == -1)
    goto err;
  m->pool = zpool_create (config->pool);
  if (m->pool == NULL)
    goto err;
  /* Under a memory cgroup, growth past its limit would not fail but wake
   * the OOM killer: refuse it before (include/zram/mem-guard.h).
   */
  if (guard)
    zpool_set_grow_gate (m->pool, zram_mem_guard_gate, guard);
  if (config->reserve) {
    if (zpool_set_reserve (m->pool, config->reserve,
                           config->reserve_wait_ms) == -1)
      goto err;
    m->reserve = true;
    m->reserve_bytes = config->reserve;
  }
  m->huge_class_size = zpool_huge_class_size (m->pool);
  m->backing = config->backing;
  return m;

 err:
  zram_meta_destroy (m);
  return NULL;
}

/* Memory the kernel says can be had without swapping (MemAvailable), in
 * bytes; UINT64_MAX if it cannot tell.  Reads a file into a stack buffer.
 */
static uint64_t
mem_available (void)
{
  unsigned long long kb;
  char line[128];
  FILE *f = fopen ("/proc/meminfo", "re");
  uint64_t r = UINT64_MAX;

  if (f == NULL)
    return r;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "MemAvailable: %llu kB", &kb) == 1) {
      r = kb > UINT64_MAX / 1024 ? UINT64_MAX : (uint64_t) kb * 1024;
      break;
    }
  fclose (f);
  return r;
}

/* Bytes zram_meta_start populates: the reserve, and the slot table when it
 * is populated at all.
 */
static uint64_t
meta_start_bytes (const struct zram_meta *m)
{
  uint64_t table = m->nr_pages * sizeof (struct zram_slot);

  return m->reserve_bytes + (table <= ZRAM_TABLE_POPULATE_MAX ? table : 0);
}

/* Refuse (ENOMEM) to populate more than ZRAM_START_AVAIL_DIV-th of the
 * memory available: that much populated and locked memory would not fail
 * but push the machine into reclaim and the OOM killer, which may pick
 * any process, this server included.
 */
static int
meta_start_fits (const struct zram_meta *m)
{
  uint64_t avail = mem_available ();

  if (avail != UINT64_MAX && meta_start_bytes (m) > avail / ZRAM_START_AVAIL_DIV) {
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

int
zram_meta_start (struct zram_meta *m)
{
  if (!m->reserve)
    return 0;
  if (meta_start_fits (m) == -1)
    return -1;
  /* After the fork: pages populated before it would be copied on their
   * first write in the child, a fault on the data path.
   */
  if (m->nr_pages * sizeof (struct zram_slot) <= ZRAM_TABLE_POPULATE_MAX &&
      slot_table_populate (&m->table) == -1)
    return -1;
  return zpool_reserve_start (m->pool);
}

/* Free every object, then the pool, table and compressor.  A pool that
 * releases its objects wholesale (zs: whole arenas are unmapped) is not
 * walked at all: freeing a filled device object by object costs seconds
 * (each emptied span is madvised back to the OS), which delayed exit and
 * reset.  Otherwise the walk visits only the touched groups of the table
 * and stops once every object is found, so a large, lightly used device
 * is freed quickly and its never-written table pages are not faulted in.
 */
void
zram_meta_destroy (struct zram_meta *m)
{
  int saved_errno = errno;

  if (m == NULL)
    return;
  if (m->table.slots && m->pool && !zpool_destroy_frees_objects (m->pool)) {
    uint64_t objects = STAT_GET (m->stats.pages_stored) -
                       STAT_GET (m->stats.same_pages) -
                       STAT_GET (m->stats.bd_count) -
                       STAT_GET (m->stats.group_pages);
    uint64_t i = 0;

    while (objects > 0 &&
           (i = slot_table_next_touched (&m->table, i, m->nr_pages)) < m->nr_pages) {
      struct zram_slot *slot = slot_at (&m->table, i++);

      if (!slot_test_flag (slot, SLOT_SAME) && !slot_test_flag (slot, SLOT_WB) &&
          !slot_test_flag (slot, SLOT_GROUP) && slot_get_handle (slot) != 0) {
        zpool_free (m->pool, slot_get_handle (slot));
        objects--;
      }
    }
  }
  /* Every block in use is this state's: only the published state writes
   * back, a state is destroyed only once unreachable (its writebacks
   * done), and a state never published has none (bd_count 0 and
   * used_store false: no walk ran in it, so the
   * blocks of the live state are left alone when a reset's new state is
   * thrown away).  Give them back in runs rather than slot by slot.
   */
  if (m->backing && (STAT_GET (m->stats.bd_count) > 0 ||
                     __atomic_load_n (&m->used_store, __ATOMIC_RELAXED)))
    backing_free_all (m->backing);
  /* Groups are found through their list, not the table. */
  if (m->pool)
    group_free_all (m, !zpool_destroy_frees_objects (m->pool));
  zpool_destroy (m->pool);
  slot_table_destroy (&m->table);
  zram_meta_dict_destroy (m);
  zcomp_destroy (m->comp);
  zcomp_destroy (m->group_comp);
  pthread_mutex_destroy (&m->group_lock);
  for (unsigned i = 0; i < m->nr_recomp; i++)
    zcomp_destroy (m->recomp[i]);
  free (m);
  errno = saved_errno;
}

struct zram *
zram_create (const struct zram_config *config)
{
  struct zram *z;

  if (!config_valid (config))
    return NULL;
  z = calloc (1, sizeof *z);
  if (z == NULL)
    return NULL;
  z->guard = zram_mem_guard_create (NULL, NULL);
  if (z->guard == NULL) {
    free (z);
    return NULL;
  }
  if (config->dict != NULL) {
    z->dict = malloc (config->dict_len);
    if (z->dict == NULL)
      goto err;
    memcpy (z->dict, config->dict, config->dict_len);
    z->dict_len = config->dict_len;
  }
  z->meta = zram_meta_create (config, z->guard);
  if (z->meta == NULL)
    goto err;
  z->disksize = config->disksize;
  z->nr_recomp = config->nr_recomp;
  memcpy (z->recomp, config->recomp, sizeof z->recomp);
  z->meta->gen = z->gen = 1;
  z->reserve = config->reserve;
  z->reserve_wait_ms = config->reserve_wait_ms;
  z->backing = config->backing;
  z->group_pages = config->group_pages;
  z->group_algo = config->group_algo;
  pthread_mutex_init (&z->ctl_lock, NULL);
  pthread_mutex_init (&z->pp_lock, NULL);
  pthread_mutex_init (&z->dict_lock, NULL);
  z->dict_versions = 1;       /* the user's dictionary, if any */
  pthread_mutex_init (&z->clients_lock, NULL);
  return z;

 err:
  {
    int e = errno;
    free (z->dict);
    zram_mem_guard_destroy (z->guard);
    free (z);
    errno = e;
  }
  return NULL;
}

int
zram_start (struct zram *z)
{
  int r = -1;

  pthread_mutex_lock (&z->ctl_lock);
  if (z->started)
    errno = EINVAL;
  else if (z->meta == NULL || zram_meta_start (z->meta) == 0) {
    z->started = true;
    r = 0;
  }
  pthread_mutex_unlock (&z->ctl_lock);
  return r;
}

int
zram_try_start (struct zram *z)
{
  struct zram_meta *m;
  struct zpool *pool;
  int r = -1, err;

  pthread_mutex_lock (&z->ctl_lock);
  m = z->meta;
  if (z->started) {
    errno = EINVAL;
    goto out;
  }
  if (m == NULL || !m->reserve) {
    r = 0;
    goto out;
  }
  if (meta_start_fits (m) == -1)
    goto out;
  /* The pool part on a pool of its own, as zram_meta_start will fill it:
   * same kind, same gate, same size; then given back whole.
   */
  pool = zpool_create (m->pool_kind);
  if (pool == NULL)
    goto out;
  zpool_set_grow_gate (pool, zram_mem_guard_gate, z->guard);
  if (zpool_set_reserve (pool, z->reserve, z->reserve_wait_ms) == 0 &&
      zpool_reserve_start (pool) == 0)
    r = 0;
  err = errno;
  zpool_destroy (pool);
  errno = err;
 out:
  pthread_mutex_unlock (&z->ctl_lock);
  return r;
}

void
zram_destroy (struct zram *z)
{
  if (z == NULL)
    return;
  zram_meta_destroy (z->meta);
  backing_close (z->backing);
  zram_mem_guard_destroy (z->guard);
  free (z->dict);
  pthread_mutex_destroy (&z->ctl_lock);
  pthread_mutex_destroy (&z->pp_lock);
  pthread_mutex_destroy (&z->dict_lock);
  pthread_mutex_destroy (&z->clients_lock);
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

void
zram_update_mem_used_max (struct zram_meta *m, uint64_t total)
{
  uint64_t max = STAT_GET (m->stats.mem_used_max);

  while (total > max &&
         !__atomic_compare_exchange_n (&m->stats.mem_used_max, &max, total,
                                       true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
}

/* Turn a page of data into a page state: a SAME word, or an object in the
 * pool holding the compressed (or, if that saves nothing, raw) page.  Takes
 * no slot lock.  Returns 0, or -1 with errno (ENOMEM, or ENOSPC when the
 * pool would have to grow past the memory limit: the pool refuses before
 * it grows, so mem_used_total never passes the limit, not even briefly).
 */
static int
prepare_page (struct zram *z, struct zram_meta *m, struct zram_thread_ctx *ctx,
              const unsigned char *src, struct page_state *st, bool may_wait);

int
zram_prepare_page (struct zram *z, struct zram_meta *m,
                   struct zram_thread_ctx *ctx, const unsigned char *src,
                   struct page_state *st)
{
  return prepare_page (z, m, ctx, src, st, false);
}

static int
prepare_page (struct zram *z, struct zram_meta *m, struct zram_thread_ctx *ctx,
              const unsigned char *src, struct page_state *st, bool may_wait)
{
  const unsigned char *data = ctx->cbuf;
  uint64_t word;
  zpool_handle h;
  unsigned dict;
  int clen;
  void *dst;

  if (page_same_filled (src, &word)) {
    st->handle = word;
    st->size = 0;
    st->flags = SLOT_BIT (SLOT_SAME);
    zram_hist_add (&z->hist[ZRAM_HIST_COMPR_SIZE], 0);
    return 0;
  }

  /* Capping the output just below the huge size makes "does not fit" and
   * "not worth compressing" the same answer: 0.
   */
  dict = __atomic_load_n (&m->cur_dict, __ATOMIC_ACQUIRE);
  if (__builtin_expect (dict == 0, 1))
    clen = zcomp_compress (m->comp, ctx->codec, src, ZRAM_PAGE_SIZE, ctx->cbuf,
                           m->huge_class_size - 1);
  else
    clen = zcomp_dict_compress (meta_dict (m, dict), ctx->codec, src,
                                ZRAM_PAGE_SIZE, ctx->cbuf,
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
    st->flags = slot_dict_bits (dict);
  }

  h = zpool_alloc_limited (m->pool, st->size,
                           __atomic_load_n (&z->mem_limit, __ATOMIC_RELAXED));
  /* At the limit with a store, writeback may make room (at a cost only
   * to writes that would fail anyway).  Not while a slot lock is held
   * (may_wait false): the writeback policy may need that slot.
   */
  if (h == 0 && may_wait && errno == ENOSPC && m->backing != NULL)
    h = zram_wait_room (z, m, st->size);
  if (h == 0)
    return -1;
  zram_update_mem_used_max (m, zpool_total_bytes (m->pool));
  zram_hist_add (&z->hist[ZRAM_HIST_COMPR_SIZE], st->size);

  dst = zpool_map (m->pool, h, ZPOOL_MAP_WO);
  memcpy (dst, data, st->size);
  zpool_unmap (m->pool, h);
  st->handle = h;
  return 0;
}

/* Put st into the locked slot, stamped with access time t, and return
 * what was there in *old.  Every flag of the old state goes with it (IDLE,
 * INCOMPRESSIBLE, PP: a recompression in flight finds PP clear and drops
 * its work).
 */
void
zram_install_locked (struct zram_meta *m, struct zram_slot *slot,
                     const struct page_state *st, struct page_state *old,
                     uint32_t t)
{
  old->handle = slot_get_handle (slot);
  old->size = slot_get_size (slot);
  old->flags = slot_info (slot) & SLOT_STATE_MASK;

  slot_set_handle (slot, st->handle);
  slot_set_size_flags (slot, st->size, st->flags, t);

  if (st->flags & SLOT_BIT (SLOT_SAME)) {
    STAT_ADD (m->stats.pages_stored, 1);
    STAT_ADD (m->stats.same_pages, 1);
  }
  else if (st->handle != 0) {
    STAT_ADD (m->stats.pages_stored, 1);
    STAT_ADD (m->stats.compr_data_size, st->size);
    /* Counted while the slot names it: see struct meta_dict. */
    if (st->flags & SLOT_DICT_MASK)
      __atomic_add_fetch (&m->dicts[slot_dict_of (st->flags)].objects, 1,
                          __ATOMIC_RELAXED);
    if (st->flags & SLOT_BIT (SLOT_HUGE)) {
      STAT_ADD (m->stats.huge_pages, 1);
      STAT_ADD (m->stats.huge_pages_since, 1);
    }
  }
}

/* Uncount the flag-borne statistics of a state (see zram-impl.h). */
void
zram_uncount_flags (struct zram_meta *m, uint64_t flags)
{
  unsigned prio = (flags & SLOT_PRIO_MASK) >> SLOT_PRIO;

  if (flags & SLOT_BIT (SLOT_IDLE))
    STAT_SUB (m->stats.idle_pages, 1);
  if (flags & SLOT_BIT (SLOT_INCOMPRESSIBLE))
    STAT_SUB (m->stats.incompressible_pages, 1);
  if (prio > 0)
    STAT_SUB (m->stats.pages_recomp[prio - 1], 1);
  if (flags & SLOT_DICT_MASK)
    meta_dict_put (m, slot_dict_of (flags));
}

/* Release a state taken out of a slot: free its object and uncount it.
 * Called after the slot is unlocked: nobody can reach the old object any
 * more, because readers find objects only through the slot, under its lock.
 * Returns true if the state held a page.
 */
bool
zram_release_state (struct zram_meta *m, const struct page_state *old)
{
  zram_uncount_flags (m, old->flags);
  if (old->flags & SLOT_BIT (SLOT_WB)) {
    /* The object's reference on its block.  The last one queues the
     * block for its trim (backing_block_put): no store I/O here, on the
     * thread of the request that replaced the page.
     */
    backing_block_put (m->backing, slot_wb_block_of (old->handle));
    STAT_SUB (m->stats.pages_stored, 1);
    STAT_SUB (m->stats.bd_count, 1);
    return true;
  }
  if (old->flags & SLOT_BIT (SLOT_SAME)) {
    STAT_SUB (m->stats.pages_stored, 1);
    STAT_SUB (m->stats.same_pages, 1);
    return true;
  }
  if (old->flags & SLOT_BIT (SLOT_GROUP)) {
    group_put_member (m, old->handle);
    STAT_SUB (m->stats.pages_stored, 1);
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

int
zram_read_locked (struct zram_meta *m, struct zram_thread_ctx *ctx,
                  struct zram_slot *slot, unsigned char *dst)
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
  assert (!slot_test_flag (slot, SLOT_WB));
  if (slot_test_flag (slot, SLOT_GROUP))
    return group_read_member (m, ctx, h, dst);
  src = zpool_map (m->pool, h, ZPOOL_MAP_RO);
  if (slot_test_flag (slot, SLOT_HUGE))
    memcpy (dst, src, ZRAM_PAGE_SIZE);
  else
    r = meta_decompress (m, ctx, slot_get_prio (slot),
                         meta_dict (m, slot_get_dict (slot)), src,
                         slot_get_size (slot), dst);
  zpool_unmap (m->pool, h);
  return r;
}

/* --- per-page operations ------------------------------------------------- */

static int
write_full_page (struct zram *z, struct zram_meta *m, struct zram_thread_ctx *ctx,
                 uint64_t index, const unsigned char *src)
{
  struct zram_slot *slot = slot_at (&m->table, index);
  struct page_state st, old;

  /* Compression and allocation happen before the lock: readers and writers
   * of this page wait only for the swap below.
   */
  uint32_t t;

  if (prepare_page (z, m, ctx, src, &st, true) == -1)
    return -1;
  t = meta_now (m);
  slot_table_touch (&m->table, index);
  slot_lock (slot);
  zram_install_locked (m, slot, &st, &old, t);
  slot_unlock (slot);
  zram_release_state (m, &old);
  return 0;
}

static int
write_partial_page (struct zram *z, struct zram_meta *m,
                    struct zram_thread_ctx *ctx, uint64_t index,
                    const unsigned char *src, size_t off, size_t n)
{
  struct zram_slot *slot = slot_at (&m->table, index);
  struct page_state st, old;
  struct wb_loc loc;
  bool pinned = false;
  unsigned waits = 0;
  uint32_t t;

  /* Zeroes written into a page that reads as zeroes change nothing, and
   * are decided without the lock (which would write to the table): the
   * peek is a moment the page read as zeroes, the write's linearisation
   * point.  Zeroing never-written space thus costs no memory.
   */
  if (slot_table_peek_zero (&m->table, index) &&
      memcmp (src, zero_page, n) == 0)
    return 0;
  if (ctx == NULL) {
    errno = ENOMEM;           /* a context-less trim or zero (do_io) */
    return -1;
  }
  t = meta_now (m);
  slot_table_touch (&m->table, index);
 again:
  slot_lock (slot);
  /* A written-back page is fetched with the lock dropped; the pin keeps
   * its block, so if the slot still names the same place afterwards, it
   * still holds the same object (a block is written once per life) and
   * what was fetched is the page to modify.  Otherwise start again.
   */
  while (slot_test_flag (slot, SLOT_WB)) {
    zram_wb_pin_locked (m, slot, &loc);
    pinned = true;
    slot_unlock (slot);
    if (zram_wb_fetch (m, ctx, &loc, ctx->page) == -1)
      goto err_unpin;
    slot_lock (slot);
    if (slot_test_flag (slot, SLOT_WB) && slot_get_handle (slot) == loc.handle)
      break;
    slot_unlock (slot);
    zram_wb_unpin (m, &loc);
    pinned = false;
    slot_lock (slot);
  }
  if (!pinned && zram_read_locked (m, ctx, slot, ctx->page) == -1)
    goto err;
  memcpy (ctx->page + off, src, n);
  if (prepare_page (z, m, ctx, ctx->page, &st, false) == -1) {
    zpool_handle room;

    /* At the limit with a store: wait for room without the slot lock,
     * then merge again (the page may have changed meanwhile).  The room
     * found is given back before the merge, so another writer may take
     * it first: try again, a few times, before the write fails.
     */
    if (errno != ENOSPC || m->backing == NULL)
      goto err;
    if (waits == ROOM_PARTIAL_TRIES) {
      STAT_ADD (z->room_failed, 1);
      goto err;
    }
    slot_unlock (slot);
    if (pinned) {
      zram_wb_unpin (m, &loc);
      pinned = false;
    }
    waits++;
    room = zram_wait_room (z, m, st.size);
    if (room == 0)
      return -1;
    zpool_free (m->pool, room);
    goto again;
  }
  zram_install_locked (m, slot, &st, &old, t);
  slot_unlock (slot);
  if (pinned)
    zram_wb_unpin (m, &loc);
  zram_release_state (m, &old);
  return 0;

 err:
  slot_unlock (slot);
 err_unpin:
  if (pinned)
    zram_wb_unpin (m, &loc);
  return -1;
}

static int
read_page (struct zram_meta *m, struct zram_thread_ctx *ctx, uint64_t index,
           unsigned char *dst, size_t off, size_t n)
{
  struct zram_slot *slot;
  uint32_t t;
  int r;

  /* A page that reads as zeroes needs no lock: the lock-free peek is a
   * state the slot really had during this request, a valid point at which
   * the read happened.  Taking the lock would write to the table and make
   * reading never-written space cost memory.
   */
  if (slot_table_peek_zero (&m->table, index)) {
    memset (dst, 0, n);
    return 0;
  }
  t = meta_now (m);
  slot = slot_at (&m->table, index);
  slot_lock (slot);
  if (slot_test_flag (slot, SLOT_WB)) {
    struct wb_loc loc;
    int saved_errno;

    /* Never across the store's I/O: see src/writeback-read.c. */
    zram_wb_pin_locked (m, slot, &loc);
    if (slot_unlock_accessed (slot, t))
      STAT_SUB (m->stats.idle_pages, 1);
    r = zram_wb_fetch (m, ctx, &loc, n == ZRAM_PAGE_SIZE ? dst : ctx->page);
    saved_errno = errno;
    if (r == 0 && n != ZRAM_PAGE_SIZE)
      memcpy (dst, ctx->page + off, n);
    zram_wb_unpin (m, &loc);
    errno = saved_errno;
    return r;
  }
  if (n == ZRAM_PAGE_SIZE)
    r = zram_read_locked (m, ctx, slot, dst);
  else {
    r = zram_read_locked (m, ctx, slot, ctx->page);
    if (r == 0)
      memcpy (dst, ctx->page + off, n);
  }
  /* A read is an access: it ends the page's idleness (zram's semantics)
   * in the store that unlocks.  It leaves PP alone: the content is the
   * same, so a recompression in flight may still install.
   */
  if (slot_unlock_accessed (slot, t))
    STAT_SUB (m->stats.idle_pages, 1);
  return r;
}

static void
discard_full_page (struct zram_meta *m, uint64_t index)
{
  static const struct page_state empty = { 0, 0, 0 };
  struct zram_slot *slot = slot_at (&m->table, index);
  struct page_state old;

  if (!slot_table_touched (&m->table, index) || slot_is_empty (slot))
    return;                   /* empty already (a racing write may win) */
  slot_lock (slot);
  zram_install_locked (m, slot, &empty, &old, 0);
  slot_unlock (slot);
  if (zram_release_state (m, &old))
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

/* What a data request does to the pages it covers. */
enum io_op { IO_READ, IO_WRITE, IO_TRIM, IO_ZERO };

/* The latency histogram of each operation: trim and write-zeroes are
 * both discards.
 */
static const enum zram_hist_id op_hist[] = {
  [IO_READ] = ZRAM_HIST_READ_US,
  [IO_WRITE] = ZRAM_HIST_WRITE_US,
  [IO_TRIM] = ZRAM_HIST_DISCARD_US,
  [IO_ZERO] = ZRAM_HIST_DISCARD_US,
};

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Free every whole page of [offset, offset+count), visiting only touched
 * groups of the table, so discarding never-written space writes nothing.
 * Needs no memory and cannot fail.
 */
static void
discard_whole_pages (struct zram_meta *m, uint32_t count, uint64_t offset)
{
  uint64_t i = (offset + ZRAM_PAGE_SIZE - 1) >> ZRAM_PAGE_SHIFT;
  uint64_t end = (offset + count) >> ZRAM_PAGE_SHIFT;

  while ((i = slot_table_next_touched (&m->table, i, end)) < end)
    discard_full_page (m, i++);
}

/* Zero the partial pages at the ends of [offset, offset+count), after the
 * whole pages are freed: freeing never waits for memory, rewriting an end
 * may need it.  Both ends are tried; returns -1 (errno of the first
 * failure) if either fails, that end keeping its old content.
 */
static int
zero_partial_ends (struct zram *z, struct zram_meta *m,
                   struct zram_thread_ctx *ctx, uint32_t count, uint64_t offset)
{
  uint64_t end = offset + count;
  size_t head_off = offset & (ZRAM_PAGE_SIZE - 1);
  size_t head_n = ZRAM_PAGE_SIZE - head_off < count ?
                  ZRAM_PAGE_SIZE - head_off : count;
  size_t tail_n = end & (ZRAM_PAGE_SIZE - 1);
  int r = 0, err = 0;

  if (count == 0)
    return 0;
  if (head_n < ZRAM_PAGE_SIZE &&
      write_partial_page (z, m, ctx, offset >> ZRAM_PAGE_SHIFT, zero_page,
                          head_off, head_n) == -1) {
    r = -1;
    err = errno;
  }
  /* The tail, unless the head piece already reached the end. */
  if (tail_n != 0 && end >> ZRAM_PAGE_SHIFT != offset >> ZRAM_PAGE_SHIFT &&
      write_partial_page (z, m, ctx, end >> ZRAM_PAGE_SHIFT, zero_page,
                          0, tail_n) == -1 && r == 0) {
    r = -1;
    err = errno;
  }
  if (r == -1)
    errno = err;
  return r;
}

/* The common frame of every data request: get the thread's context,
 * enter the read-side section, check the range against the live size,
 * apply op (reads and writes go page by page, stopping at the first
 * failure, which leaves that page as it was), count a failure, leave, and
 * count the request's time.  buf is written for IO_READ, read for
 * IO_WRITE, unused otherwise.
 */
static int
do_io (struct zram *z, enum io_op op, unsigned char *buf, uint32_t count,
       uint64_t offset)
{
  uint64_t start = now_ns ();
  struct zram_thread_ctx *ctx = zram_thread_ctx_get ();
  bool freeing = op == IO_TRIM || op == IO_ZERO;
  struct zram_meta *m;
  uint64_t index;
  size_t off, n;
  int r = 0;

  /* Freeing must never need memory, not even a thread's first context:
   * without one, trim and zero run under the control mutex instead of in
   * a read-side section, free every whole page, and fail only the partial
   * ends of a zero that would have to be rewritten.
   */
  if (ctx == NULL && !freeing) {
    STAT_ADD (*(op == IO_READ ? &z->nomem_reads : &z->nomem_writes), 1);
    return -1;                /* ENOMEM */
  }
  m = ctx ? meta_get (z, ctx) : meta_get_locked (z);
  if (m == NULL) {
    STAT_ADD (*(op == IO_READ ? &z->offline_reads : &z->offline_writes), 1);
    return -1;
  }
  if (!range_valid (m, count, offset))
    r = -1;
  else if (freeing) {
    discard_whole_pages (m, count, offset);
    if (op == IO_ZERO)
      r = zero_partial_ends (z, m, ctx, count, offset);
  }
  else {
    FOR_EACH_PAGE_PIECE (offset, count, index, off, n) {
      if (op == IO_READ)
        r = read_page (m, ctx, index, buf, off, n);
      else
        r = n == ZRAM_PAGE_SIZE ? write_full_page (z, m, ctx, index, buf)
                                : write_partial_page (z, m, ctx, index, buf,
                                                      off, n);
      if (r == -1)
        break;
      buf += n;
    }
  }
  if (r == -1)
    STAT_ADD (*(op == IO_READ ? &m->stats.failed_reads
                               : &m->stats.failed_writes), 1);
  if (ctx)
    meta_put (z);
  else
    pthread_mutex_unlock (&z->ctl_lock);
  zram_hist_add (&z->hist[op_hist[op]], (now_ns () - start) / 1000);
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
  return do_io (z, IO_ZERO, NULL, count, offset);
}

int
zram_trim (struct zram *z, uint32_t count, uint64_t offset)
{
  return do_io (z, IO_TRIM, NULL, count, offset);
}

/* Pages [i, stop) from i on that share page i's state: returns the end
 * of the run and sets *type.  Runs of zeroes cross untouched groups of the
 * table through the touched map alone, never loading their slots.
 */
static uint64_t
scan_run (const struct slot_table *t, uint64_t i, uint64_t stop,
          enum zram_extent_type *type)
{
  bool zero = slot_table_peek_zero (t, i);

  *type = zero ? ZRAM_EXTENT_ZERO : ZRAM_EXTENT_DATA;
  for (++i; i < stop; ++i) {
    if (!slot_table_touched (t, i)) {
      if (!zero)
        return i;
      i = slot_table_next_touched (t, i, stop);
      if (i == stop)
        break;
    }
    if (slot_peek_zero (slot_at (t, i)) != zero)
      return i;
  }
  return stop;
}

int
zram_extents (struct zram *z, uint32_t count, uint64_t offset,
              zram_extent_fn fn, void *opaque)
{
  struct zram_thread_ctx *ctx = zram_thread_ctx_get ();
  struct zram_meta *m;
  uint64_t pos, end, next, stop;
  enum zram_extent_type type;
  int r = 0;

  if (ctx == NULL)
    return -1;                /* ENOMEM */
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;
  if (!range_valid (m, count, offset)) {
    meta_put (z);
    return -1;
  }
  /* range_valid: end <= disksize, so every page index below is < nr_pages;
   * count 0 describes nothing and loads no slot.
   */
  end = offset + count;
  stop = (end + ZRAM_PAGE_SIZE - 1) >> ZRAM_PAGE_SHIFT;
  for (pos = offset; pos < end; pos = next) {
    next = scan_run (&m->table, pos >> ZRAM_PAGE_SHIFT, stop, &type)
           << ZRAM_PAGE_SHIFT;
    if (next > end)
      next = end;             /* clip the last run to the request */
    if (fn (opaque, pos, next - pos, type) == -1) {
      r = -1;
      break;
    }
  }
  meta_put (z);
  return r;
}
