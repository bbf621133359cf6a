/* nbdkit-zram: recompression (zram_recompress, include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * One page, the way requests stay fast (zram's post-processing):
 *
 *   lock ─ selected? ─ set PP ─ decompress into ctx->page ─ unlock
 *   compress with priority lo, lo+1, ... until a result lands in a
 *     smaller size class (no lock held: zstd at a high level is slow)
 *   allocate the new object, copy the result in          (no lock held)
 *   lock ─ PP still set? ─yes─> swap in the new object ─ unlock ─ free old
 *                       └─no──> unlock ─ free the new object (raced)
 *
 * Every store into a slot (write, partial write, trim, discard) replaces
 * all its flags, PP included, so "PP still set" proves that nothing was
 * stored in between, even if the old object's handle was freed and handed
 * out again meanwhile: no ABA.  A read or idle marking leaves PP alone
 * (the content is unchanged).  A second recompression skips a slot with
 * PP set.  A reset cannot free the state under us: each page is done
 * inside one read-side section.  Compaction may move the old or new
 * object but keeps handles, and both are only touched while mapped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zram-impl.h"

/* The request checked against the live state, with defaults filled in. */
struct recomp_plan {
  enum zram_recomp_type type;
  uint32_t threshold;
  uint64_t max_pages;
  unsigned prio_min, prio_max;
  uint32_t min_age_s;
  uint64_t start, end;
};

static int
plan_make (const struct zram_meta *m, const struct zram_recomp_req *req,
           struct recomp_plan *p)
{
  if (req->type < ZRAM_RECOMP_IDLE || req->type > ZRAM_RECOMP_HUGE_IDLE ||
      m->nr_recomp == 0)
    goto bad;
  p->type = req->type;
  p->threshold = req->threshold;
  p->max_pages = req->max_pages;
  p->min_age_s = req->min_age_s;
  if (req->prio_min == 0 && req->prio_max == 0) {
    p->prio_min = 1;
    p->prio_max = m->nr_recomp;
  }
  else if (req->prio_min >= 1 && req->prio_min <= req->prio_max &&
           req->prio_max <= m->nr_recomp) {
    p->prio_min = req->prio_min;
    p->prio_max = req->prio_max;
  }
  else
    goto bad;
  p->start = req->start_index;
  p->end = req->end_index ? req->end_index : m->nr_pages;
  if (p->end > m->nr_pages || p->start > p->end)
    goto bad;
  return 0;

 bad:
  errno = EINVAL;
  return -1;
}

/* Whether the locked slot is one the plan recompresses, and from which
 * priority (*lo).
 */
static bool
selected (const struct zram_meta *m, const struct zram_slot *slot,
          const struct recomp_plan *p, unsigned *lo)
{
  uint64_t info = slot_info (slot);
  uint32_t now, t;
  bool idle, huge;

  if (slot_get_handle (slot) == 0 ||
      (info & (SLOT_BIT (SLOT_SAME) | SLOT_BIT (SLOT_INCOMPRESSIBLE) |
               SLOT_BIT (SLOT_PP) | SLOT_BIT (SLOT_WB) | SLOT_BIT (SLOT_GROUP))))
    return false;
  idle = info & SLOT_BIT (SLOT_IDLE);
  if (!idle && p->min_age_s > 0) {
    now = meta_now (m);
    t = slot_get_time (slot);
    idle = now > t && now - t >= p->min_age_s;
  }
  huge = info & SLOT_BIT (SLOT_HUGE);
  if (((p->type & ZRAM_RECOMP_IDLE) && !idle) ||
      ((p->type & ZRAM_RECOMP_HUGE) && !huge))
    return false;
  if (p->threshold && slot_get_size (slot) < p->threshold)
    return false;
  *lo = slot_get_prio (slot) + 1;
  if (*lo < p->prio_min)
    *lo = p->prio_min;
  return *lo <= p->prio_max;
}

/* Clear PP if it is still ours; false if a store took the slot meanwhile. */
static bool
drop_pp (struct zram_slot *slot)
{
  bool ours;

  slot_lock (slot);
  ours = slot_test_flag (slot, SLOT_PP);
  if (ours)
    slot_clear_flag (slot, SLOT_PP);
  slot_unlock (slot);
  return ours;
}

/* Recompress slot index of m if the plan selects it.  Returns 0 (done,
 * skipped, raced, incompressible or no room under the memory limit: see
 * res), or -1 with errno (EIO, ENOMEM) leaving the slot as it was.
 */
static int
recompress_slot (struct zram *z, struct zram_meta *m,
                 struct zram_thread_ctx *ctx, uint64_t index,
                 const struct recomp_plan *p, struct zram_recomp_result *res)
{
  struct zram_slot *slot = slot_at (&m->table, index);
  zpool_handle old_h, new_h;
  size_t old_size, old_class;
  unsigned lo, prio, old_prio;
  uint64_t old_flags;
  int clen = 0, r;
  void *dst;

  /* Lock-free first look: empty and same-filled slots are most of what a
   * walk meets and need no lock (which would write the table).
   */
  if (__atomic_load_n (&slot->handle, __ATOMIC_RELAXED) == 0 ||
      slot_test_flag (slot, SLOT_SAME) || slot_test_flag (slot, SLOT_WB))
    return 0;
  res->scanned++;

  slot_lock (slot);
  if (!selected (m, slot, p, &lo)) {
    slot_unlock (slot);
    return 0;
  }
  slot_set_flag (slot, SLOT_PP);
  old_size = slot_get_size (slot);
  r = zram_read_locked (m, ctx, slot, ctx->page);
  if (r == -1)
    slot_clear_flag (slot, SLOT_PP);
  slot_unlock (slot);
  if (r == -1)
    return -1;

  res->attempted++;
  STAT_ADD (m->stats.recomp_attempts, 1);
  old_class = zpool_class_size (m->pool, old_size);
  for (prio = lo; prio <= p->prio_max; prio++) {
    /* Capped below the huge size, as a write is: a result that does not
     * fit there could not be smaller than the raw page anyway.
     */
    clen = zcomp_compress (m->recomp[prio - 1], ctx->codec, ctx->page,
                           ZRAM_PAGE_SIZE, ctx->cbuf, m->huge_class_size - 1);
    if (clen == -1) {
      drop_pp (slot);
      return -1;              /* ENOMEM for the codec's state */
    }
    if (clen > 0 && zpool_class_size (m->pool, clen) < old_class)
      break;
  }

  if (prio > p->prio_max) {
    /* Nothing shrank it.  Only a page that met the last algorithm is
     * incompressible: a request limited to lower priorities says nothing
     * about the higher ones.
     */
    slot_lock (slot);
    if (!slot_test_flag (slot, SLOT_PP))
      res->raced++;
    else {
      slot_clear_flag (slot, SLOT_PP);
      if (p->prio_max == m->nr_recomp) {
        slot_set_flag (slot, SLOT_INCOMPRESSIBLE);
        STAT_ADD (m->stats.incompressible_pages, 1);
        res->incompressible++;
      }
    }
    slot_unlock (slot);
    return 0;
  }

  new_h = zpool_alloc_limited (m->pool, clen,
                               __atomic_load_n (&z->mem_limit, __ATOMIC_RELAXED));
  if (new_h == 0) {
    drop_pp (slot);
    /* At the memory limit, this page's class may have no free room while
     * others do, and each success frees memory: go on with the next page.
     */
    if (errno == ENOSPC) {
      res->nospace++;
      return 0;
    }
    return -1;                /* ENOMEM */
  }
  zram_update_mem_used_max (m, zpool_total_bytes (m->pool));
  dst = zpool_map (m->pool, new_h, ZPOOL_MAP_WO);
  memcpy (dst, ctx->cbuf, clen);
  zpool_unmap (m->pool, new_h);

  slot_lock (slot);
  if (!slot_test_flag (slot, SLOT_PP)) {
    slot_unlock (slot);
    zpool_free (m->pool, new_h);
    res->raced++;
    return 0;
  }
  /* Unchanged since the snapshot: same object, same size.  The page keeps
   * its access time and IDLE (recompression is not an access); it is no
   * longer huge, and now has priority prio and no dictionary.
   */
  old_h = slot_get_handle (slot);
  old_flags = slot_info (slot) & SLOT_STATE_MASK;
  assert (slot_get_size (slot) == old_size);
  slot_set_handle (slot, new_h);
  slot_set_size_flags (slot, clen,
                       (old_flags & ~(SLOT_BIT (SLOT_PP) | SLOT_BIT (SLOT_HUGE) |
                                      SLOT_PRIO_MASK | SLOT_DICT_MASK)) |
                       slot_prio_bits (prio),
                       slot_get_time (slot));
  slot_unlock (slot);

  old_prio = (old_flags & SLOT_PRIO_MASK) >> SLOT_PRIO;
  if (old_prio > 0)
    STAT_SUB (m->stats.pages_recomp[old_prio - 1], 1);
  STAT_ADD (m->stats.pages_recomp[prio - 1], 1);
  if (old_flags & SLOT_DICT_MASK)
    meta_dict_put (m, slot_dict_of (old_flags));
  if (old_flags & SLOT_BIT (SLOT_HUGE))
    STAT_SUB (m->stats.huge_pages, 1);
  STAT_SUB (m->stats.compr_data_size, old_size - clen);
  STAT_ADD (m->stats.recomp_successes, 1);
  STAT_ADD (m->stats.recomp_bytes_saved, old_size - clen);
  zpool_free (m->pool, old_h);
  res->recompressed++;
  res->bytes_saved += old_size - clen;
  return 0;
}

static int recompress_walk (struct zram *z, const struct zram_recomp_req *req,
                            struct zram_recomp_result *res);

/* One post-processing walk at a time (zram-impl.h, pp_lock): a
 * recompression and a writeback, or two recompressions, each seeing PP
 * set by the other after a write cleared their own, would install a stale
 * page.  Taken outside any read-side section, so a walk waiting for it
 * never holds up a reset.
 */
int
zram_recompress (struct zram *z, const struct zram_recomp_req *req,
                 struct zram_recomp_result *res)
{
  int r, saved_errno;

  if (req->nowait) {
    if (pthread_mutex_trylock (&z->pp_lock) != 0) {
      memset (res, 0, sizeof *res);
      res->next_index = req->start_index;
      errno = EBUSY;
      return -1;
    }
  }
  else
    pthread_mutex_lock (&z->pp_lock);
  r = recompress_walk (z, req, res);
  saved_errno = errno;
  pthread_mutex_unlock (&z->pp_lock);
  errno = saved_errno;
  return r;
}

static int
recompress_walk (struct zram *z, const struct zram_recomp_req *req,
                 struct zram_recomp_result *res)
{
  struct zram_thread_ctx *ctx;
  struct zram_meta *m;
  struct recomp_plan p;
  uint64_t gen, i, batch_end, batch_attempts;
  int r = 0, saved_errno;

  memset (res, 0, sizeof *res);
  res->next_index = req->start_index;
  ctx = zram_thread_ctx_get ();
  if (ctx == NULL)
    return -1;                /* ENOMEM */
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;                /* EIO */
  if (plan_make (m, req, &p) == -1) {
    meta_put (z);
    return -1;
  }
  if (walks_stopped (z)) {
    meta_put (z);
    errno = ECANCELED;
    return -1;
  }
  gen = m->gen;
  i = p.start;
  while (i < p.end) {
    batch_end = p.end - i > ZRAM_WALK_BATCH_SLOTS ? i + ZRAM_WALK_BATCH_SLOTS
                                                  : p.end;
    batch_attempts = res->attempted + ZRAM_WALK_BATCH_ATTEMPTS;
    while (res->attempted < batch_attempts &&
           (i = slot_table_next_touched (&m->table, i, batch_end)) < batch_end) {
      if (p.max_pages && res->attempted >= p.max_pages)
        goto out;
      if (walks_stopped (z)) {
        errno = ECANCELED;
        r = -1;
        goto out;
      }
      if (recompress_slot (z, m, ctx, i, &p, res) == -1) {
        r = -1;
        goto out;
      }
      i++;
    }
    if (i >= p.end || (p.max_pages && res->attempted >= p.max_pages))
      break;
    if (!meta_renew (z, ctx, &m, gen)) {
      res->next_index = i;
      return 0;               /* reset: the new state is empty */
    }
  }

 out:
  res->next_index = i;
  saved_errno = errno;
  meta_put (z);
  errno = saved_errno;
  return r;
}

/* One item "NAME[:LEVEL]" of len bytes.  0, or -1 with a message. */
static int
parse_item (const char *item, size_t len, struct zram_recomp_algo *out,
            char *err, size_t err_cap)
{
  char name[16], *colon, *end;
  int min, max, dflt;
  long level = 0;

  if (len == 0) {
    snprintf (err, err_cap, "an empty item; write NAME[:LEVEL][,NAME[:LEVEL]...]"
              " (e.g. zstd:3,zstd:19)");
    return -1;
  }
  if (len >= sizeof name) {
    snprintf (err, err_cap, "unknown algorithm '%.*s'; accepted: %s",
              (int) len, item, ZCOMP_ALGO_NAMES);
    return -1;
  }
  memcpy (name, item, len);
  name[len] = '\0';
  colon = strchr (name, ':');
  if (colon)
    *colon = '\0';
  if (zcomp_parse_algo (name, &out->algo) == -1) {
    snprintf (err, err_cap, "unknown algorithm '%s'; accepted: %s", name,
              ZCOMP_ALGO_NAMES);
    return -1;
  }
  zcomp_level_range (out->algo, &min, &max, &dflt);
  if (colon) {
    errno = 0;
    level = strtol (colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 ||
        level < min || level > max) {
      snprintf (err, err_cap, "level '%s' of %s is not accepted: %d to %d "
                "(default %d)", colon + 1, name, min, max, dflt);
      return -1;
    }
  }
  out->level = (int) level;
  return 0;
}

int
zram_parse_recomp_spec (const char *spec, struct zram_config *config,
                        char *err, size_t err_cap)
{
  struct zram_recomp_algo list[ZRAM_MAX_RECOMP];
  unsigned n = 0;
  const char *p = spec, *comma;

  for (;;) {
    comma = strchr (p, ',');
    if (n == ZRAM_MAX_RECOMP) {
      snprintf (err, err_cap, "more than %d algorithms", ZRAM_MAX_RECOMP);
      errno = EINVAL;
      return -1;
    }
    if (parse_item (p, comma ? (size_t) (comma - p) : strlen (p), &list[n],
                    err, err_cap) == -1) {
      errno = EINVAL;
      return -1;
    }
    n++;
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  memcpy (config->recomp, list, n * sizeof list[0]);
  config->nr_recomp = n;
  return 0;
}
