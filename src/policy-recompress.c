/* nbdkit-zram: the automatic recompression policy
 * (see include/zram/policy-recompress.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zram/background.h"
#include "zram/policy-busy.h"
#include "zram/policy-recompress.h"
#include "zram/zram.h"

/* Sweeps of one cycle: ages 8A, 4A, 2A, A. */
#define TIERS 4

/* The policy's state; only its rounds (one thread) touch it. */
struct recomp_policy {
  struct zram *zram;
  struct zram_recomp_policy_config c;
  unsigned tier;                /* 0..TIERS-1: sweep at age_s << (3 - tier) */
  bool urgent;                  /* sweeping under the soft limit */
  uint64_t cursor;              /* next slot of the sweep */
  uint64_t cycle_attempted;     /* pages attempted in this cycle so far */
  uint64_t cycle_recompressed;  /* of those, pages stored smaller */
  bool compact_due;             /* a finished sweep freed objects */
  int64_t rest_until_ns;        /* monotonic: no sweep before (0 = none) */
  int64_t last_round_ns;        /* monotonic: for the rate */
  int64_t page_cost_ns;         /* CPU per page attempted, a moving
                                   average (0 = not known yet) */
  struct zram_busy busy;        /* requests served, at the last look */
  bool yielding;                /* the last round gave way to requests */
  uint64_t round_no;
};

/* What one round did, for its log line. */
struct round_sum {
  bool busy;                    /* the round stopped for requests */
  uint32_t age_first, age_last; /* the sweeps' ages */
  int64_t compacted;            /* pool pages compaction released; -1 =
                                   no compaction */
  uint64_t first, calls;
  struct zram_recomp_result r;
};

static int64_t
mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t
sweep_age (const struct recomp_policy *rp)
{
  if (rp->urgent)
    return ZRAM_RECOMP_POLICY_URGENT_AGE_S;
  return rp->c.age_s << (TIERS - 1 - rp->tier);
}

static void
add_result (struct zram_recomp_result *sum, const struct zram_recomp_result *r)
{
  sum->scanned += r->scanned;
  sum->attempted += r->attempted;
  sum->recompressed += r->recompressed;
  sum->incompressible += r->incompressible;
  sum->raced += r->raced;
  sum->bytes_saved += r->bytes_saved;
  sum->nospace += r->nospace;
}

/* Pages the rate allows this round, from the time since the last one (at
 * most two periods' worth, so a long rest does not bank a burst).
 */
static uint64_t
rate_allows (struct recomp_policy *rp, int64_t now)
{
  double secs, cap;

  if (rp->c.rate_pages == 0)
    return UINT64_MAX;
  secs = rp->last_round_ns ? (now - rp->last_round_ns) / 1e9
                           : rp->c.period_ms / 1000.0;
  cap = 2.0 * rp->c.period_ms / 1000.0;
  if (secs > cap)
    secs = cap;
  return (uint64_t) (secs * (double) rp->c.rate_pages) + 1;
}

/* Whether the device is serving requests at ZRAM_RECOMP_POLICY_BUSY_RATE
 * a second or more since the last look; starts a new measure.
 */
static bool
busy (struct recomp_policy *rp)
{
  return zram_busy_check (&rp->busy, rp->zram, ZRAM_RECOMP_POLICY_BUSY_RATE,
                          ZRAM_RECOMP_POLICY_BUSY_WINDOW_MS);
}

/* Pages for the next call: what the rest of the allowance pays for at the
 * cost seen so far (so that a round overruns it by about one page, not by
 * a batch of slow compressions), at least 1, at most
 * ZRAM_RECOMP_POLICY_BATCH and what the rate leaves.
 */
static uint64_t
batch_pages (const struct recomp_policy *rp, struct zram_bg_round *r,
             uint64_t pages_left)
{
  int64_t allowance = zram_bg_round_allowance_ns (r);
  uint64_t n = ZRAM_RECOMP_POLICY_BATCH;

  if (allowance != INT64_MAX && rp->page_cost_ns > 0) {
    int64_t left = allowance - zram_bg_round_cpu_ns (r);

    n = left > 0 ? (uint64_t) (left / rp->page_cost_ns) : 0;
    if (n < 1)
      n = 1;
    if (n > ZRAM_RECOMP_POLICY_BATCH)
      n = ZRAM_RECOMP_POLICY_BATCH;
  }
  return n < pages_left ? n : pages_left;
}

/* Fold a call's CPU per attempted page into the moving average (weight
 * 1/4: it follows a change of data within a few calls).  The CPU of a
 * call includes its scanning, which is what a page really costs.
 */
static void
learn_cost (struct recomp_policy *rp, int64_t cpu_ns, uint64_t attempted)
{
  int64_t per;

  if (attempted == 0)
    return;
  per = cpu_ns / (int64_t) attempted;
  rp->page_cost_ns = rp->page_cost_ns == 0 ? per
                     : rp->page_cost_ns + (per - rp->page_cost_ns) / 4;
}

/* The sweep reached the device end: next tier, or the end of a cycle.
 * Returns true if the round should stop (a cycle found nothing to do: rest).
 */
static bool
sweep_done (struct recomp_policy *rp, int64_t now)
{
  rp->cursor = 0;
  if (rp->urgent) {
    /* One whole sweep under the limit; the next round looks again. */
    if (rp->cycle_recompressed > 0)
      rp->compact_due = true;
    rp->cycle_recompressed = 0;
    return true;
  }
  if (++rp->tier < TIERS)
    return false;
  rp->tier = 0;
  /* Recompression frees objects but not pool pages: the spans they sat in
   * are left partly used.  The compaction policy tidies up only past its
   * fragmentation threshold (10 %), so after a cycle that stored pages
   * smaller, compact now: the saving is then memory given back.
   */
  if (rp->cycle_recompressed > 0)
    rp->compact_due = true;
  rp->cycle_recompressed = 0;
  if (rp->cycle_attempted == 0) {
    uint32_t rest = rp->c.age_s / 8 ? rp->c.age_s / 8 : 1;

    rp->rest_until_ns = now + (int64_t) rest * 1000000000;
    return true;
  }
  rp->cycle_attempted = 0;
  return false;
}

static void
log_round (struct recomp_policy *rp, struct zram_bg_round *r,
           const struct round_sum *s, const struct zram_stats *st,
           int err)
{
  char compacted[64] = "";

  if (rp->c.log == NULL || (s->r.attempted == 0 && err == 0))
    return;
  if (s->compacted >= 0)
    snprintf (compacted, sizeof compacted, "; compaction released %" PRId64
              " pages", s->compacted);
  rp->c.log ("recompress: round %" PRIu64 "%s%s: idle >= %" PRIu32 "..%" PRIu32
             " s, from slot %" PRIu64 " to %" PRIu64 " in %" PRIu64
             " calls: scanned %" PRIu64
             ", attempted %" PRIu64 ", recompressed %" PRIu64 " (saved %"
             PRIu64 " bytes), incompressible %" PRIu64 ", raced %" PRIu64
             ", no room under the limit %" PRIu64
             "; CPU %.1f of %.1f ms; pool %" PRIu64 " of limit %" PRIu64
             "%s%s%s", rp->round_no, rp->urgent ? " (urgent, near mem_limit)" : "",
             s->busy ? " (stopped: requests are being served)" : "",
             s->age_first, s->age_last, s->first, rp->cursor, s->calls, s->r.scanned,
             s->r.attempted, s->r.recompressed, s->r.bytes_saved,
             s->r.incompressible, s->r.raced, s->r.nospace,
             zram_bg_round_cpu_ns (r) / 1e6,
             zram_bg_round_allowance_ns (r) == INT64_MAX ? 0.0
             : zram_bg_round_allowance_ns (r) / 1e6,
             st->mem_used_total, st->mem_limit,
             compacted,
             err ? "; stopped: " : "", err ? strerror (err) : "");
}

static int64_t
recomp_round (void *opaque, struct zram_bg_round *r)
{
  struct recomp_policy *rp = opaque;
  struct zram_recomp_result res;
  struct zram_recomp_req req;
  struct round_sum s = { .compacted = -1 };
  struct zram_stats st;
  uint64_t nr_slots, pages_left;
  bool urgent;
  int64_t now = mono_ns ();
  int err = 0;

  zram_get_stats (rp->zram, &st);
  if (!st.initialised || st.nr_recomp == 0)
    return -1;
  urgent = rp->c.soft_pm && st.mem_limit &&
           st.mem_used_total >= st.mem_limit / 1000 * rp->c.soft_pm;
  if (urgent != rp->urgent) {
    /* Entering or leaving urgency starts a sweep from the beginning. */
    if (rp->cycle_recompressed > 0)
      rp->compact_due = true;
    rp->urgent = urgent;
    rp->cursor = 0;
    rp->tier = 0;
    rp->cycle_attempted = 0;
    rp->cycle_recompressed = 0;
    rp->rest_until_ns = 0;
  }
  if (!urgent && now < rp->rest_until_ns && !rp->compact_due)
    return -1;
  rp->rest_until_ns = 0;
  /* Requests come first: while they are being served, no round (except
   * near the memory limit, where recompression is what keeps writes from
   * failing).  The first round gives way, or starts, once per busy spell
   * in the log.
   */
  if (busy (rp) && !urgent) {
    zram_bg_round_yielded (r);
    if (!rp->yielding && rp->c.log)
      rp->c.log ("recompress: giving way to requests (%d or more a second) "
                 "until the device is quiet", ZRAM_RECOMP_POLICY_BUSY_RATE);
    rp->yielding = true;
    return -1;
  }
  rp->yielding = false;
  if (urgent)
    zram_bg_round_urgent (r);
  rp->round_no++;
  pages_left = rate_allows (rp, now);
  rp->last_round_ns = now;
  nr_slots = st.disksize / ZRAM_PAGE_SIZE;
  s.first = rp->cursor;
  s.age_first = sweep_age (rp);
  do {
    int64_t cpu0 = zram_bg_round_cpu_ns (r);

    memset (&req, 0, sizeof req);
    req.type = ZRAM_RECOMP_IDLE;
    req.min_age_s = s.age_last = sweep_age (rp);
    req.max_pages = batch_pages (rp, r, pages_left);
    req.start_index = rp->cursor;
    req.end_index = nr_slots - rp->cursor > ZRAM_RECOMP_POLICY_SPAN
                    ? rp->cursor + ZRAM_RECOMP_POLICY_SPAN : nr_slots;
    /* A recompression or writeback asked for by hand may walk the whole
     * device for minutes: this thread also compacts, so it must not wait
     * for it.
     */
    req.nowait = true;
    if (zram_recompress (rp->zram, &req, &res) == -1)
      err = errno;
    s.calls++;
    add_result (&s.r, &res);
    rp->cycle_attempted += res.attempted;
    rp->cycle_recompressed += res.recompressed;
    learn_cost (rp, zram_bg_round_cpu_ns (r) - cpu0, res.attempted);
    pages_left -= res.attempted < pages_left ? res.attempted : pages_left;
    if (err) {
      /* EBUSY: a recompression or writeback by hand runs; EIO: a
       * reset, or a page that fails to decompress; ENOMEM.
       * Continue after the batch next round.  (At the memory limit,
       * pages without room for their new object are skipped, not an
       * error: see zram_recompress.)
       */
      if (res.next_index > rp->cursor)
        rp->cursor = res.next_index;
      break;
    }
    rp->cursor = res.next_index > rp->cursor ? res.next_index : req.end_index;
    if (rp->cursor >= nr_slots && sweep_done (rp, mono_ns ()))
      break;
    /* Requests that start during the round count too: a round that began
     * on a quiet device stops when they come.
     */
    if (!urgent && busy (rp)) {
      s.busy = true;
      zram_bg_round_yielded (r);
      break;
    }
  } while (pages_left > 0 && !zram_bg_round_over (r));

  /* Under the soft limit, memory is wanted back now, not at the end of
   * the sweep.
   */
  if (rp->urgent && s.r.recompressed > 0)
    rp->compact_due = true;
  if (rp->compact_due) {
    rp->compact_due = false;
    s.compacted = zram_compact (rp->zram);
  }
  if (err || s.r.attempted)
    zram_get_stats (rp->zram, &st);
  log_round (rp, r, &s, &st, err);
  return s.r.attempted ? (int64_t) s.r.recompressed : -1;
}

void
zram_recomp_policy_defaults (struct zram_recomp_policy_config *c)
{
  memset (c, 0, sizeof *c);
  c->age_s = ZRAM_RECOMP_POLICY_DEFAULT_AGE_S;
  c->budget_pm = ZRAM_RECOMP_POLICY_DEFAULT_BUDGET_PM;
  c->rate_pages = ZRAM_RECOMP_POLICY_DEFAULT_RATE;
  c->soft_pm = ZRAM_RECOMP_POLICY_DEFAULT_SOFT_PM;
  c->period_ms = ZRAM_RECOMP_POLICY_DEFAULT_PERIOD_MS;
}

int
zram_recomp_policy_add (struct zram_bg *bg, struct zram *zram,
                        const struct zram_recomp_policy_config *c)
{
  struct recomp_policy *rp;
  struct zram_stats st;
  struct zram_bg_policy p = {
    .name = ZRAM_RECOMP_POLICY,
    .round = recomp_round,
    .release = free,
  };

  if (bg == NULL || zram == NULL || c == NULL ||
      c->age_s == 0 || c->age_s > ZRAM_RECOMP_POLICY_MAX_AGE_S ||
      c->budget_pm == 0 || c->budget_pm > ZRAM_BG_UNLIMITED ||
      c->rate_pages > ZRAM_RECOMP_POLICY_MAX_RATE ||
      c->soft_pm > 1000 || c->period_ms == 0) {
    errno = EINVAL;
    return -1;
  }
  zram_get_stats (zram, &st);
  if (st.nr_recomp == 0) {
    errno = EINVAL;
    return -1;
  }
  rp = calloc (1, sizeof *rp);
  if (rp == NULL)
    return -1;
  rp->zram = zram;
  rp->c = *c;
  /* The first round measures the requests from now. */
  zram_busy_init (&rp->busy, zram);
  p.period_ms = c->period_ms;
  p.budget_pm = c->budget_pm;
  p.opaque = rp;
  return zram_bg_add (bg, &p);
}
