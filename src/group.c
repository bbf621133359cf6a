/* nbdkit-zram: multi-page group objects (src/group.h, zram_group and
 * zram_group_dissolve in include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Building a group is zram's post-processing, for several pages at once:
 *
 *   for each candidate, in index order:
 *     lock ─ still a candidate? ─ set PP ─ decompress into the frame
 *     buffer ─ unlock
 *   compress the buffer as one frame                    (no lock held)
 *   frame < sum of the members' objects?  allocate its pieces, else drop
 *   for each member: lock ─ PP still set? ─yes─> point the slot at the
 *     group ─ unlock ─ free its old object
 *                                       └─no──> unlock ─ leave it out
 *
 * The walk holds a reference on the group while it installs, so a group
 * whose members are all overwritten at once is freed once, by the last
 * of them or by the walk.  A whole group is built inside one read-side
 * section: its PP marks never outlive the state they were set in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "zram-impl.h"

/* --- lifetime ----------------------------------------------------------- */

static uint64_t next_group_id;  /* atomic: the last id given */

static void
group_free (struct zram_meta *m, struct zram_group *g, bool free_pieces)
{
  if (free_pieces)
    for (unsigned i = 0; i < g->nr_pieces; i++)
      zpool_free (m->pool, g->piece[i]);
  STAT_SUB (m->stats.compr_data_size, g->frame_len);
  STAT_SUB (m->stats.group_compr_size, g->frame_len);
  STAT_SUB (m->stats.group_objects, 1);
  free (g);
}

static void
group_unlink (struct zram_meta *m, struct zram_group *g)
{
  pthread_mutex_lock (&m->group_lock);
  if (g->prev)
    g->prev->next = g->next;
  else
    m->groups = g->next;
  if (g->next)
    g->next->prev = g->prev;
  pthread_mutex_unlock (&m->group_lock);
}

/* Drop one reference; the last frees the group. */
static void
group_unref (struct zram_meta *m, struct zram_group *g)
{
  if (__atomic_sub_fetch (&g->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    group_unlink (m, g);
    group_free (m, g, true);
  }
}

/* Take a hold on a listed group unless it is being freed.  group_lock. */
static bool
group_hold_locked (struct zram_group *g)
{
  uint32_t refs = __atomic_load_n (&g->refs, __ATOMIC_RELAXED);

  do {
    if (refs == 0)
      return false;
  } while (!__atomic_compare_exchange_n (&g->refs, &refs, refs + 1, true,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
  return true;
}

void
group_put_member (struct zram_meta *m, uint64_t handle)
{
  struct zram_group *g = group_of (handle);

  __atomic_fetch_and (&g->live, ~(UINT32_C (1) << group_member_of (handle)),
                      __ATOMIC_RELAXED);
  STAT_SUB (m->stats.group_pages, 1);
  if (g->dict)
    meta_dict_put (m, g->dict);
  group_unref (m, g);
}

void
group_free_all (struct zram_meta *m, bool free_pieces)
{
  struct zram_group *g, *next;

  for (g = m->groups; g; g = next) {
    next = g->next;
    group_free (m, g, free_pieces);
  }
  m->groups = NULL;
}

/* --- reading ------------------------------------------------------------ */

int
group_read_member (struct zram_meta *m, struct zram_thread_ctx *ctx,
                   uint64_t handle, unsigned char *dst)
{
  const struct zram_group *g = group_of (handle);
  unsigned char *buf = zram_thread_ctx_group (ctx), *frame, *pages;
  size_t len, done = 0;
  int r;

  if (buf == NULL)
    return -1;                /* ENOMEM */
  frame = buf;
  pages = buf + ZRAM_THREAD_CTX_GROUP / 2;
  /* A frame never changes once built, and ids are never reused. */
  if (ctx->group_cached == g->id)
    goto copy;
  ctx->group_cached = 0;
  for (unsigned i = 0; i < g->nr_pieces; i++) {
    len = g->frame_len - done < ZPOOL_MAX_OBJECT ? g->frame_len - done
                                                 : ZPOOL_MAX_OBJECT;
    memcpy (frame + done, zpool_map (m->pool, g->piece[i], ZPOOL_MAP_RO), len);
    zpool_unmap (m->pool, g->piece[i]);
    done += len;
  }
  if (g->dict)
    r = zcomp_dict_decompress (__atomic_load_n (&m->dicts[g->dict].group_dict,
                                                __ATOMIC_ACQUIRE),
                               ctx->codec, frame, g->frame_len, pages,
                               (size_t) g->nr * ZRAM_PAGE_SIZE);
  else
    r = zcomp_decompress (m->group_comp, ctx->codec, frame, g->frame_len,
                          pages, (size_t) g->nr * ZRAM_PAGE_SIZE);
  if (r == -1)
    return -1;
  ctx->group_cached = g->id;
 copy:
  memcpy (dst, pages + (size_t) group_member_of (handle) * ZRAM_PAGE_SIZE,
          ZRAM_PAGE_SIZE);
  return 0;
}

/* --- building ----------------------------------------------------------- */

struct group_build {
  unsigned n;                 /* members collected */
  uint64_t index[ZRAM_GROUP_MAX_PAGES];
  size_t old_bytes;           /* sum of their objects' sizes */
  unsigned char *in, *out;    /* the thread's group buffer, halves */
};

/* Whether slot info and handle describe a page to group. */
static bool
candidate (uint64_t handle, uint64_t info, uint32_t now, uint32_t min_age_s)
{
  uint32_t t = info >> SLOT_TIME_SHIFT;

  if (handle == 0 ||
      (info & (SLOT_BIT (SLOT_SAME) | SLOT_BIT (SLOT_HUGE) | SLOT_BIT (SLOT_PP) |
               SLOT_BIT (SLOT_WB) | SLOT_BIT (SLOT_GROUP))))
    return false;
  if (info & SLOT_BIT (SLOT_IDLE))
    return true;
  return min_age_s > 0 && now > t && now - t >= min_age_s;
}

/* Clear PP on the collected slots still ours (the group was not stored). */
static void
drop_all (struct zram_meta *m, const struct group_build *b)
{
  for (unsigned j = 0; j < b->n; j++) {
    struct zram_slot *slot = slot_at (&m->table, b->index[j]);

    slot_lock (slot);
    slot_clear_flag (slot, SLOT_PP);
    slot_unlock (slot);
  }
}

/* Take slot index into b if it is a candidate.  0, or -1 with errno EIO
 * (its object failed to decompress: left as it was) or ENOMEM.
 */
static int
collect (struct zram_meta *m, struct zram_thread_ctx *ctx, struct group_build *b,
         uint64_t index, uint32_t now, uint32_t min_age_s,
         struct zram_group_result *res)
{
  struct zram_slot *slot = slot_at (&m->table, index);
  int r = 0;

  if (!candidate (__atomic_load_n (&slot->handle, __ATOMIC_RELAXED),
                  slot_info (slot), now, min_age_s))
    return 0;
  slot_lock (slot);
  if (candidate (slot_get_handle (slot), slot_info (slot), now, min_age_s)) {
    res->scanned++;
    r = zram_read_locked (m, ctx, slot,
                          b->in + (size_t) b->n * ZRAM_PAGE_SIZE);
    if (r == 0) {
      slot_set_flag (slot, SLOT_PP);
      b->old_bytes += slot_get_size (slot);
      b->index[b->n++] = index;
    }
  }
  slot_unlock (slot);
  return r;
}

/* Compress the collected pages into b->out, capped below the members'
 * bytes ("does not fit" is "saves nothing"), with the newest dictionary if
 * groups use it (see struct meta_dict).  Returns the frame's size, 0, or
 * -1 (ENOMEM); *dict is the index used, 0 for none.  Inside the walk's
 * read-side section, the newest index stays valid (src/dict-train.c
 * frees one only after a grace period), and the frame's members count on
 * it once installed.
 */
static int
compress_frame (struct zram_meta *m, struct zram_thread_ctx *ctx,
                struct group_build *b, unsigned *dict)
{
  size_t len = (size_t) b->n * ZRAM_PAGE_SIZE;
  unsigned cur = __atomic_load_n (&m->cur_dict, __ATOMIC_ACQUIRE);
  struct meta_dict *md = &m->dicts[cur];
  const struct zcomp_dict *gd = cur
    ? __atomic_load_n (&md->group_dict, __ATOMIC_ACQUIRE) : NULL;
  int plain, with;

  *dict = 0;
  if (gd == NULL || (md->group_trials >= ZRAM_GROUP_DICT_TRIALS &&
                     !md->group_use))
    return zcomp_compress (m->group_comp, ctx->codec, b->in, len, b->out,
                           b->old_bytes - 1);
  if (md->group_trials >= ZRAM_GROUP_DICT_TRIALS) {
    *dict = cur;
    return zcomp_dict_compress (gd, ctx->codec, b->in, len, b->out,
                                b->old_bytes - 1);
  }
  /* A trial: both ways; out ends with the smaller (the plain frame is
   * made again if it wins: out holds one frame).
   */
  plain = zcomp_compress (m->group_comp, ctx->codec, b->in, len, b->out,
                          b->old_bytes - 1);
  if (plain < 0)
    return -1;
  with = zcomp_dict_compress (gd, ctx->codec, b->in, len, b->out,
                              b->old_bytes - 1);
  if (with < 0)
    return -1;
  md->group_trials++;
  md->group_plain += plain ? (uint64_t) plain : b->old_bytes;
  md->group_with += with ? (uint64_t) with : b->old_bytes;
  if (md->group_trials == ZRAM_GROUP_DICT_TRIALS)
    md->group_use = md->group_with * 1000 <=
                    md->group_plain * (1000 - ZRAM_GROUP_DICT_GAIN_PM);
  if (with > 0 && (plain == 0 || with <= plain)) {
    *dict = cur;
    return with;
  }
  if (plain == 0)
    return 0;
  return zcomp_compress (m->group_comp, ctx->codec, b->in, len, b->out,
                         b->old_bytes - 1);
}

/* Store the collected pages as one group if that saves memory. */
static int
flush (struct zram *z, struct zram_meta *m, struct zram_thread_ctx *ctx,
       struct group_build *b, struct zram_group_result *res)
{
  struct zram_group *g;
  size_t len, done, freed = 0;
  unsigned dict;
  int clen;

  if (b->n < 2) {
    drop_all (m, b);
    goto out;
  }
  clen = compress_frame (m, ctx, b, &dict);
  if (clen <= 0) {
    drop_all (m, b);
    if (clen < 0)
      return -1;              /* ENOMEM */
    res->rejected += b->n;
    goto out;
  }
  g = aligned_alloc (_Alignof (struct zram_group), sizeof *g);
  if (g == NULL) {
    drop_all (m, b);
    return -1;
  }
  memset (g, 0, sizeof *g);
  g->id = __atomic_add_fetch (&next_group_id, 1, __ATOMIC_RELAXED);
  g->frame_len = clen;
  g->nr = b->n;
  g->dict = dict;
  memcpy (g->index, b->index, b->n * sizeof b->index[0]);
  for (done = 0; done < (size_t) clen; done += len) {
    len = clen - done < ZPOOL_MAX_OBJECT ? clen - done : ZPOOL_MAX_OBJECT;
    g->piece[g->nr_pieces] =
      zpool_alloc_limited (m->pool, len,
                           __atomic_load_n (&z->mem_limit, __ATOMIC_RELAXED));
    if (g->piece[g->nr_pieces] == 0) {
      int err = errno;

      for (unsigned i = 0; i < g->nr_pieces; i++)
        zpool_free (m->pool, g->piece[i]);
      free (g);
      drop_all (m, b);
      if (err != ENOSPC) {
        errno = err;
        return -1;
      }
      res->nospace += b->n;
      goto out;
    }
    memcpy (zpool_map (m->pool, g->piece[g->nr_pieces], ZPOOL_MAP_WO),
            b->out + done, len);
    zpool_unmap (m->pool, g->piece[g->nr_pieces]);
    g->nr_pieces++;
  }
  zram_update_mem_used_max (m, zpool_total_bytes (m->pool));
  g->refs = b->n + 1;         /* the members, and this walk's hold */
  g->live = (UINT32_C (1) << b->n) - 1;
  STAT_ADD (m->stats.compr_data_size, g->frame_len);
  STAT_ADD (m->stats.group_compr_size, g->frame_len);
  STAT_ADD (m->stats.group_objects, 1);
  pthread_mutex_lock (&m->group_lock);
  g->next = m->groups;
  if (g->next)
    g->next->prev = g;
  m->groups = g;
  pthread_mutex_unlock (&m->group_lock);

  for (unsigned j = 0; j < b->n; j++) {
    struct zram_slot *slot = slot_at (&m->table, b->index[j]);
    uint64_t info, old_h;
    size_t old_size;
    unsigned prio;

    slot_lock (slot);
    if (!slot_test_flag (slot, SLOT_PP)) {
      /* Stored to meanwhile: that store won. */
      slot_unlock (slot);
      __atomic_fetch_and (&g->live, ~(UINT32_C (1) << j), __ATOMIC_RELAXED);
      __atomic_sub_fetch (&g->refs, 1, __ATOMIC_ACQ_REL); /* hold remains */
      res->raced++;
      continue;
    }
    info = slot_info (slot);
    old_h = slot_get_handle (slot);
    old_size = slot_get_size (slot);
    prio = slot_get_prio (slot);
    /* Counted while the slot names the group (see struct meta_dict). */
    if (dict)
      __atomic_add_fetch (&m->dicts[dict].objects, 1, __ATOMIC_RELAXED);
    slot_set_handle (slot, group_member_handle (g, j));
    slot_set_size_flags (slot, 0, SLOT_BIT (SLOT_GROUP) |
                         (info & SLOT_BIT (SLOT_IDLE)), slot_get_time (slot));
    slot_unlock (slot);
    zpool_free (m->pool, old_h);
    STAT_SUB (m->stats.compr_data_size, old_size);
    STAT_ADD (m->stats.group_pages, 1);
    if (info & SLOT_BIT (SLOT_INCOMPRESSIBLE))
      STAT_SUB (m->stats.incompressible_pages, 1);
    if (prio > 0)
      STAT_SUB (m->stats.pages_recomp[prio - 1], 1);
    if (info & SLOT_DICT_MASK)
      meta_dict_put (m, slot_dict_of (info));
    res->grouped++;
    freed += old_size;
  }
  /* What the installed members gave up, less the frame they share (a
   * group most of whose members raced may save nothing: dissolving
   * takes care of it).
   */
  if (__atomic_load_n (&g->live, __ATOMIC_RELAXED) != 0) {
    res->groups++;
    if (freed > g->frame_len)
      res->bytes_saved += freed - g->frame_len;
  }
  group_unref (m, g);

 out:
  b->n = 0;
  b->old_bytes = 0;
  return 0;
}

static int group_walk (struct zram *z, const struct zram_group_req *req,
                       struct zram_group_result *res);

/* One post-processing walk at a time: see zram_recompress. */
int
zram_group (struct zram *z, const struct zram_group_req *req,
            struct zram_group_result *res)
{
  int r, saved_errno;

  memset (res, 0, sizeof *res);
  res->next_index = req->start_index;
  if (req->nowait) {
    if (pthread_mutex_trylock (&z->pp_lock) != 0) {
      errno = EBUSY;
      return -1;
    }
  }
  else
    pthread_mutex_lock (&z->pp_lock);
  r = group_walk (z, req, res);
  saved_errno = errno;
  pthread_mutex_unlock (&z->pp_lock);
  errno = saved_errno;
  return r;
}

static int
group_walk (struct zram *z, const struct zram_group_req *req,
            struct zram_group_result *res)
{
  struct zram_thread_ctx *ctx;
  struct zram_meta *m;
  struct group_build b = { .n = 0 };
  uint64_t gen, i, end, batch_end;
  uint32_t now;
  int r = 0, saved_errno;

  ctx = zram_thread_ctx_get ();
  if (ctx == NULL)
    return -1;                /* ENOMEM */
  b.in = zram_thread_ctx_group (ctx);
  if (b.in == NULL)
    return -1;
  b.out = b.in + ZRAM_THREAD_CTX_GROUP / 2;
  ctx->group_cached = 0;      /* b.out overwrites the cached pages */
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;                /* EIO */
  end = req->end_index ? req->end_index : m->nr_pages;
  if (m->group_comp == NULL || end > m->nr_pages || req->start_index > end) {
    meta_put (z);
    errno = EINVAL;
    return -1;
  }
  gen = m->gen;
  i = req->start_index;
  while (i < end) {
    batch_end = end - i > ZRAM_WALK_BATCH_SLOTS ? i + ZRAM_WALK_BATCH_SLOTS : end;
    now = meta_now (m);
    while ((i = slot_table_next_touched (&m->table, i, batch_end)) < batch_end) {
      if (req->max_pages && res->grouped + b.n >= req->max_pages)
        break;
      if (walks_stopped (z)) {
        errno = ECANCELED;
        r = -1;
        break;
      }
      if (collect (m, ctx, &b, i, now, req->min_age_s, res) == -1) {
        r = -1;
        break;
      }
      i++;
      if (b.n == m->group_pages && flush (z, m, ctx, &b, res) == -1) {
        r = -1;
        break;
      }
    }
    /* Never carry PP marks out of the read-side section. */
    saved_errno = errno;
    if (flush (z, m, ctx, &b, res) == -1 && r == 0) {
      r = -1;
      saved_errno = errno;
    }
    errno = saved_errno;
    if (r == -1 || i < batch_end || i >= end)
      break;
    if (!meta_renew (z, ctx, &m, gen)) {
      res->next_index = i;
      return 0;               /* reset: the new state is empty */
    }
  }
  res->next_index = i;
  saved_errno = errno;
  meta_put (z);
  errno = saved_errno;
  return r;
}

/* --- dissolving --------------------------------------------------------- */

/* Whether g kept fewer than live_min_pct percent of its members. */
static bool
group_low (const struct zram_group *g, unsigned live_min_pct)
{
  unsigned live = __builtin_popcount (__atomic_load_n (&g->live,
                                                       __ATOMIC_RELAXED));

  return live * 100 < live_min_pct * g->nr ||
         (live_min_pct == 100 && live < g->nr);
}

/* Store member j of held group g alone again.  0 (done or left), or -1
 * with errno.
 */
static int
dissolve_member (struct zram *z, struct zram_meta *m,
                 struct zram_thread_ctx *ctx, struct zram_group *g, unsigned j,
                 struct zram_dissolve_result *res)
{
  struct zram_slot *slot = slot_at (&m->table, g->index[j]);
  uint64_t handle = group_member_handle (g, j);
  struct page_state st, old;
  uint64_t idle;
  uint32_t t;

  slot_lock (slot);
  if (!slot_test_flag (slot, SLOT_GROUP) || slot_get_handle (slot) != handle) {
    slot_unlock (slot);
    return 0;                 /* left already */
  }
  if (group_read_member (m, ctx, handle, ctx->page) == -1) {
    slot_unlock (slot);
    res->failed++;
    return -1;
  }
  slot_set_flag (slot, SLOT_PP);
  slot_unlock (slot);

  if (zram_prepare_page (z, m, ctx, ctx->page, &st) == -1) {
    slot_lock (slot);
    slot_clear_flag (slot, SLOT_PP);
    slot_unlock (slot);
    res->failed++;
    return errno == ENOSPC ? 0 : -1;
  }
  slot_lock (slot);
  if (!slot_test_flag (slot, SLOT_PP)) {
    slot_unlock (slot);
    if (!(st.flags & SLOT_BIT (SLOT_SAME)))
      zpool_free (m->pool, st.handle);
    res->failed++;
    return 0;
  }
  idle = slot_info (slot) & SLOT_BIT (SLOT_IDLE);
  t = slot_get_time (slot);
  st.flags |= idle;
  zram_install_locked (m, slot, &st, &old, t);
  slot_unlock (slot);
  if (idle)
    STAT_ADD (m->stats.idle_pages, 1);  /* old's is uncounted below */
  zram_release_state (m, &old);
  res->pages++;
  return 0;
}

static int dissolve_walk (struct zram *z, unsigned live_min_pct,
                          uint64_t max_groups, struct zram_dissolve_result *res);

int
zram_group_dissolve (struct zram *z, unsigned live_min_pct, uint64_t max_groups,
                     bool nowait, struct zram_dissolve_result *res)
{
  int r, saved_errno;

  memset (res, 0, sizeof *res);
  if (live_min_pct < 1 || live_min_pct > 100) {
    errno = EINVAL;
    return -1;
  }
  if (nowait) {
    if (pthread_mutex_trylock (&z->pp_lock) != 0) {
      errno = EBUSY;
      return -1;
    }
  }
  else
    pthread_mutex_lock (&z->pp_lock);
  r = dissolve_walk (z, live_min_pct, max_groups, res);
  saved_errno = errno;
  pthread_mutex_unlock (&z->pp_lock);
  errno = saved_errno;
  return r;
}

static int
dissolve_walk (struct zram *z, unsigned live_min_pct, uint64_t max_groups,
               struct zram_dissolve_result *res)
{
  struct zram_thread_ctx *ctx;
  struct zram_meta *m;
  struct zram_group *g, *next;
  int r = 0, saved_errno;

  ctx = zram_thread_ctx_get ();
  if (ctx == NULL)
    return -1;
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;
  /* New groups go in at the head, so the walk sees each group once. */
  pthread_mutex_lock (&m->group_lock);
  for (g = m->groups; g && !group_hold_locked (g); g = g->next)
    ;
  pthread_mutex_unlock (&m->group_lock);
  while (g && r == 0 && !(max_groups && res->groups >= max_groups)) {
    if (walks_stopped (z)) {
      errno = ECANCELED;
      r = -1;
    }
    else if (group_low (g, live_min_pct)) {
      res->groups++;
      for (unsigned j = 0; j < g->nr && r == 0; j++)
        if (__atomic_load_n (&g->live, __ATOMIC_RELAXED) & (UINT32_C (1) << j))
          r = dissolve_member (z, m, ctx, g, j, res);
      if (__atomic_load_n (&g->live, __ATOMIC_RELAXED) == 0) {
        res->dissolved++;
        STAT_ADD (m->stats.groups_dissolved, 1);
      }
    }
    /* Hold the next one before letting go of this one (which keeps it
     * listed, so its next pointer is good).
     */
    pthread_mutex_lock (&m->group_lock);
    for (next = g->next; next && !group_hold_locked (next); next = next->next)
      ;
    pthread_mutex_unlock (&m->group_lock);
    group_unref (m, g);
    g = next;
  }
  if (g)
    group_unref (m, g);
  saved_errno = errno;
  meta_put (z);
  errno = saved_errno;
  return r;
}
