/* nbdkit-zram: the automatic multi-page group policy
 * (see include/zram/policy-group.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zram/background.h"
#include "zram/policy-busy.h"
#include "zram/policy-group.h"
#include "zram/zram.h"

struct group_policy {
  struct zram *zram;
  struct zram_group_policy_config c;
  uint64_t cursor;              /* next slot of the sweep */
  uint64_t sweep_grouped;       /* pages grouped by the sweep so far */
  int64_t rest_until_ns;        /* no sweep before (0 = none) */
  struct zram_busy busy;
  uint64_t round_no;
};

static int64_t
mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
zram_group_policy_defaults (struct zram_group_policy_config *c)
{
  memset (c, 0, sizeof *c);
  c->age_s = ZRAM_GROUP_POLICY_DEFAULT_AGE_S;
  c->budget_pm = ZRAM_GROUP_POLICY_DEFAULT_BUDGET_PM;
  c->period_ms = ZRAM_GROUP_POLICY_DEFAULT_PERIOD_MS;
  c->live_min_pct = ZRAM_GROUP_POLICY_DEFAULT_LIVE_MIN;
}

static bool
busy (struct group_policy *gp)
{
  return zram_busy_check (&gp->busy, gp->zram, ZRAM_GROUP_POLICY_BUSY_RATE,
                          ZRAM_GROUP_POLICY_BUSY_WINDOW_MS);
}

static int64_t
group_round (void *opaque, struct zram_bg_round *r)
{
  struct group_policy *gp = opaque;
  struct zram_dissolve_result dres;
  struct zram_group_result res;
  struct zram_group_req req;
  uint64_t nr = zram_disksize (gp->zram) / ZRAM_PAGE_SIZE;
  uint64_t first = gp->cursor, grouped = 0, groups = 0, saved = 0;
  int64_t compacted = -1, now = mono_ns ();
  bool yielded = false;
  int err = 0;

  if (busy (gp)) {
    zram_bg_round_yielded (r);
    return -1;
  }
  gp->round_no++;
  memset (&dres, 0, sizeof dres);
  if (zram_group_dissolve (gp->zram, gp->c.live_min_pct,
                           ZRAM_GROUP_POLICY_DISSOLVE, true, &dres) == -1 &&
      errno != EBUSY && errno != EIO)
    err = errno;

  if (now >= gp->rest_until_ns) {
    gp->rest_until_ns = 0;
    do {
      memset (&req, 0, sizeof req);
      req.min_age_s = gp->c.age_s;
      req.max_pages = ZRAM_GROUP_POLICY_BATCH;
      req.start_index = gp->cursor;
      req.end_index = nr - gp->cursor > ZRAM_GROUP_POLICY_SPAN
                      ? gp->cursor + ZRAM_GROUP_POLICY_SPAN : nr;
      req.nowait = true;
      if (zram_group (gp->zram, &req, &res) == -1) {
        if (errno != EBUSY && errno != EIO)
          err = errno;
        break;                /* a walk asked for by hand, or a reset */
      }
      grouped += res.grouped;
      groups += res.groups;
      saved += res.bytes_saved;
      gp->sweep_grouped += res.grouped;
      gp->cursor = res.next_index;
      if (gp->cursor >= nr) {
        /* A sweep ended: compact what it freed, or rest. */
        gp->cursor = 0;
        if (gp->sweep_grouped > 0)
          compacted = zram_compact (gp->zram);
        else {
          uint32_t rest = gp->c.age_s / 8 ? gp->c.age_s / 8 : 1;

          gp->rest_until_ns = mono_ns () + (int64_t) rest * 1000000000;
        }
        gp->sweep_grouped = 0;
        break;
      }
      if (busy (gp)) {
        yielded = true;
        zram_bg_round_yielded (r);
        break;
      }
    } while (!zram_bg_round_over (r));
  }

  if (gp->c.log && (grouped || dres.pages || err))
    gp->c.log ("group: round %" PRIu64 ": from slot %" PRIu64 ": %" PRIu64
               " pages into %" PRIu64 " groups, %" PRIu64 " bytes saved; "
               "%" PRIu64 " pages out of %" PRIu64 " dissolved groups%s%s%s",
               gp->round_no, first, grouped, groups, saved, dres.pages,
               dres.dissolved, compacted > 0 ? "; compacted" : "",
               yielded ? "; stopped for requests" : "",
               err ? "; failed" : "");
  return grouped + dres.pages > 0 || compacted >= 0 ? (int64_t) (grouped + dres.pages) : -1;
}

int
zram_group_policy_add (struct zram_bg *bg, struct zram *zram,
                       const struct zram_group_policy_config *c)
{
  struct group_policy *gp;
  struct zram_stats st;
  struct zram_bg_policy p = {
    .name = ZRAM_GROUP_POLICY,
    .round = group_round,
    .release = free,
  };

  if (bg == NULL || zram == NULL || c == NULL || c->age_s == 0 ||
      c->age_s > ZRAM_GROUP_POLICY_MAX_AGE_S || c->budget_pm == 0 ||
      c->budget_pm > ZRAM_BG_UNLIMITED || c->period_ms == 0 ||
      c->live_min_pct < 1 || c->live_min_pct > 100) {
    errno = EINVAL;
    return -1;
  }
  zram_get_stats (zram, &st);
  if (st.group_max_pages == 0) {
    errno = EINVAL;
    return -1;
  }
  gp = calloc (1, sizeof *gp);
  if (gp == NULL)
    return -1;
  gp->zram = zram;
  gp->c = *c;
  zram_busy_init (&gp->busy, zram);
  p.period_ms = c->period_ms;
  p.budget_pm = c->budget_pm;
  p.opaque = gp;
  return zram_bg_add (bg, &p);
}
