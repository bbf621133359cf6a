/* nbdkit-zram: background compaction (see include/zram/compactor.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "zram/background.h"
#include "zram/compactor.h"
#include "zram/zram.h"

/* The policy's state; only its rounds (one thread) touch it. */
struct compact_policy {
  struct zram *zram;
  double threshold;
  uint64_t futile_compr;        /* compr_data_size after the last run that
                                   released nothing; UINT64_MAX if the last
                                   run did release pages */
};

struct zram_compactor {
  struct zram_bg *bg;
  int id;
};

/* Decide from the device's statistics whether a run is worthwhile. */
static bool
worth_compacting (const struct zram_stats *st, double threshold,
                  uint64_t futile_compr)
{
  uint64_t moved;

  if (!st->initialised || st->mem_used_total <= st->compr_data_size)
    return false;
  if (st->mem_used_total - st->compr_data_size < ZRAM_COMPACTOR_MIN_WASTE)
    return false;
  if ((double) st->mem_used_total <= threshold * (double) st->compr_data_size)
    return false;
  if (futile_compr != UINT64_MAX) {
    moved = st->compr_data_size > futile_compr
      ? st->compr_data_size - futile_compr : futile_compr - st->compr_data_size;
    if (moved < ZRAM_COMPACTOR_MIN_WASTE)
      return false;
  }
  return true;
}

/* One round: a compaction run if worthwhile.  Returns the pages released,
 * or -1 if no run was made (not counted as a round).
 */
static int64_t
compact_round (void *opaque, struct zram_bg_round *r)
{
  struct compact_policy *cp = opaque;
  struct zram_stats st;
  int64_t pages;

  (void) r;                     /* no budget: one zram_compact is the step */
  zram_get_stats (cp->zram, &st);
  if (!worth_compacting (&st, cp->threshold, cp->futile_compr))
    return -1;
  pages = zram_compact (cp->zram);
  if (pages == 0) {
    zram_get_stats (cp->zram, &st);
    cp->futile_compr = st.compr_data_size;
  }
  else if (pages > 0)
    cp->futile_compr = UINT64_MAX;
  return pages;
}

int
zram_compactor_add (struct zram_bg *bg, struct zram *zram,
                    unsigned interval_ms, double threshold)
{
  struct compact_policy *cp;
  struct zram_bg_policy p = {
    .name = ZRAM_COMPACTOR_POLICY,
    .period_ms = interval_ms,
    .budget_pm = ZRAM_BG_UNLIMITED,
    .round = compact_round,
    .release = free,
  };

  if (bg == NULL || zram == NULL || interval_ms == 0 || !(threshold >= 1.0)) {
    errno = EINVAL;
    return -1;
  }
  cp = calloc (1, sizeof *cp);
  if (cp == NULL)
    return -1;
  cp->zram = zram;
  cp->threshold = threshold;
  cp->futile_compr = UINT64_MAX;
  p.opaque = cp;
  return zram_bg_add (bg, &p);
}

struct zram_compactor *
zram_compactor_start (struct zram *zram, unsigned interval_ms, double threshold)
{
  struct zram_compactor *c;
  int err;

  if (zram == NULL || interval_ms == 0 || !(threshold >= 1.0)) {
    errno = EINVAL;
    return NULL;
  }
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->bg = zram_bg_create (0);
  if (c->bg == NULL)
    goto fail;
  c->id = zram_compactor_add (c->bg, zram, interval_ms, threshold);
  if (c->id == -1 || zram_bg_start (c->bg) == -1)
    goto fail;
  return c;

 fail:
  err = errno;
  zram_bg_destroy (c->bg);
  free (c);
  errno = err;
  return NULL;
}

void
zram_compactor_stop (struct zram_compactor *c)
{
  if (c == NULL)
    return;
  zram_bg_destroy (c->bg);
  free (c);
}

void
zram_compactor_kick (struct zram_compactor *c)
{
  zram_bg_kick (c->bg, c->id);
}

void
zram_compactor_counts (struct zram_compactor *c, uint64_t *runs,
                       uint64_t *pages)
{
  struct zram_bg_counts n;

  zram_bg_counts (c->bg, c->id, &n);
  *runs = n.rounds;
  *pages = n.work;
}
