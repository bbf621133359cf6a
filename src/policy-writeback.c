/* nbdkit-zram: the automatic writeback policy
 * (see include/zram/policy-writeback.h).
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
#include "zram/policy-writeback.h"
#include "zram/zram.h"

#define NS_PER_MS INT64_C (1000000)
#define NS_PER_S  INT64_C (1000000000)

/* The age thresholds of the pressure sweeps, coldest first; the last, 0,
 * takes every page.
 */
static const uint32_t tier_age[] = {
  65536, 16384, 4096, 1024, 256, 64, 16, 4, 1, 0,
};
#define NR_TIERS (sizeof tier_age / sizeof tier_age[0])

/* One sweep over the device: a cursor, and what it wrote so far. */
struct sweep {
  uint64_t cursor;
  uint64_t written;
};

/* The policy's state; only its rounds (one thread) touch it, except bg
 * and id, set once before the thread starts.
 */
struct wb_policy {
  struct zram *zram;
  struct zram_bg *bg;
  int id;
  struct zram_wb_policy_config c;
  bool pressure;                /* between high_pm and low_pm */
  unsigned tier;                /* pressure: index into tier_age */
  struct sweep hot;             /* the pressure sweep */
  struct sweep cold;            /* the age sweep */
  int64_t rest_until_ns;        /* age: no sweep before (0 = none) */
  int64_t hot_rest_until_ns;    /* pressure: likewise, after a sweep of
                                   every age found nothing to write */
  double tokens;                /* age: pages the rate allows now */
  int64_t tokens_ns;            /* when they were last added */
  struct zram_busy busy;
  bool yielding;                /* the last age round gave way */
  int last_err;                 /* logged once until it changes */
  uint64_t round_no;
};

/* What one round did, for its log line. */
struct round_sum {
  uint64_t first, calls, scanned, written, raced;
  int64_t compacted;            /* pool pages released; -1 = none */
  bool busy;
  int err;
};

static int64_t
mono_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static const char *
err_text (int err)
{
  switch (err) {
  case EDQUOT: return "writeback_limit is used up";
  case ENOSPC: return "the backing store is full";
  case EBUSY: return "a writeback or recompression asked for by hand runs";
  case EIO: return "the backing store failed a write (or a reset)";
  default: return strerror (err);
  }
}

static void
log_round (struct wb_policy *wp, const char *kind, const struct round_sum *s,
           const struct zram_stats *st)
{
  /* A failure that repeats every round is said once. */
  bool new_err = s->err && s->err != wp->last_err;

  char compacted[64] = "";

  wp->last_err = s->err;
  if (wp->c.log == NULL || (s->written == 0 && !new_err))
    return;
  if (s->compacted >= 0)
    snprintf (compacted, sizeof compacted, "; compaction released %" PRId64
              " pages", s->compacted);
  wp->c.log ("writeback: round %" PRIu64 " (%s%s): from slot %" PRIu64
             " in %" PRIu64 " calls: scanned %" PRIu64 ", written %" PRIu64
             ", raced %" PRIu64 "; pool %" PRIu64 " of limit %" PRIu64
             "; bd_count %" PRIu64 "%s%s%s",
             wp->round_no, kind, s->busy ? ", stopped for requests" : "",
             s->first, s->calls, s->scanned, s->written, s->raced,
             st->mem_used_total, st->mem_limit, st->bd_count, compacted,
             s->err ? "; stopped: " : "", s->err ? err_text (s->err) : "");
}

/* One zram_writeback call of up to max_pages pages of age min_age_s from
 * the sweep's cursor.  Returns 0, or the errno that stopped it (the cursor
 * then stays at the page that failed).  *end is set if the sweep reached
 * the device end (the cursor is then back at 0).
 */
static int
sweep_step (struct wb_policy *wp, struct sweep *sw, uint64_t nr_slots,
            uint32_t min_age_s, uint64_t max_pages, struct round_sum *s,
            bool *end)
{
  struct zram_wb_req req = {
    .type = ZRAM_WB_COLD,
    .min_age_s = min_age_s,
    .max_pages = max_pages,
    .start_index = sw->cursor,
    .end_index = nr_slots - sw->cursor > ZRAM_WB_POLICY_SPAN
                 ? sw->cursor + ZRAM_WB_POLICY_SPAN : nr_slots,
    /* A walk asked for by hand may take minutes: never wait for it. */
    .nowait = true,
  };
  struct zram_wb_result res;
  int err = 0;

  *end = false;
  if (zram_writeback (wp->zram, &req, &res) == -1)
    err = errno;
  s->calls++;
  s->scanned += res.scanned;
  s->written += res.written;
  s->raced += res.raced;
  sw->written += res.written;
  if (err) {
    if (res.next_index > sw->cursor)
      sw->cursor = res.next_index;
    return err;
  }
  /* next_index is end_index when the span is done, earlier at max_pages. */
  sw->cursor = res.next_index > sw->cursor ? res.next_index : req.end_index;
  if (sw->cursor >= nr_slots) {
    sw->cursor = 0;
    *end = true;
  }
  return 0;
}

/* Compact the pool, adding what it released to s. */
static void
compact (struct wb_policy *wp, struct round_sum *s)
{
  int64_t pages = zram_compact (wp->zram);

  if (pages >= 0)
    s->compacted = (s->compacted > 0 ? s->compacted : 0) + pages;
}

/* Whether the pool is under low_pm.  Objects freed show in mem_used_total
 * only once their spans are empty, so when what was freed since the last
 * compaction (compr_data_size fell by that much since *mark) would take
 * the pool under low_pm, or always with force, compact and look again.
 */
static bool
under_low (struct wb_policy *wp, struct zram_stats *st, struct round_sum *s,
           uint64_t *mark, bool force)
{
  uint64_t low, freed;

  zram_get_stats (wp->zram, st);
  low = st->mem_limit / 1000 * wp->c.low_pm;
  if (st->mem_limit == 0 || st->mem_used_total < low)
    return true;
  freed = *mark > st->compr_data_size ? *mark - st->compr_data_size : 0;
  if (freed == 0 || (!force && st->mem_used_total - low >= freed))
    return false;
  compact (wp, s);
  zram_get_stats (wp->zram, st);
  *mark = st->compr_data_size;
  return st->mem_used_total < low;
}

/* Near mem_limit: coldest first until the pool is under low_pm. */
static int64_t
pressure_round (struct wb_policy *wp, struct zram_bg_round *r,
                struct zram_stats *st)
{
  uint64_t nr_slots = st->disksize / ZRAM_PAGE_SIZE;
  uint64_t mark = st->compr_data_size; /* at the last compaction */
  int64_t deadline = mono_ns () + ZRAM_WB_POLICY_ROUND_MS * NS_PER_MS;
  struct round_sum s = { .first = wp->hot.cursor, .compacted = -1 };
  bool end, idle_sweep = false;

  zram_bg_round_urgent (r);
  for (;;) {
    s.err = sweep_step (wp, &wp->hot, nr_slots, tier_age[wp->tier],
                        ZRAM_WB_POLICY_BATCH, &s, &end);
    if (s.err)
      break;
    if (end) {
      /* The next younger tier only once a sweep found no page of this
       * age left (pages only grow older), and after the memory the older
       * ones left in partly used spans is taken back: it may be enough.
       * A sweep of every age that wrote nothing: everything is in the
       * store or same-filled already.
       */
      bool found = wp->hot.written > 0;

      wp->hot.written = 0;
      if (!found && under_low (wp, st, &s, &mark, true)) {
        wp->pressure = false;
        break;
      }
      if (!found && wp->tier == NR_TIERS - 1) {
        /* Everything is in the store or same-filled: sweeping again at
         * once would only burn CPU.
         */
        idle_sweep = true;
        wp->hot_rest_until_ns = mono_ns () + NS_PER_S;
        break;
      }
      if (!found)
        wp->tier++;
    }
    if (under_low (wp, st, &s, &mark, false)) {
      wp->pressure = false;
      break;
    }
    if (mono_ns () >= deadline || zram_bg_round_over (r))
      break;
  }
  /* Objects freed leave their spans partly used: compact, so that the
   * room made serves writes of every size class.
   */
  if (wp->pressure && s.written > 0 && under_low (wp, st, &s, &mark, true))
    wp->pressure = false;
  /* Still above low_pm with work possible: come back at once. */
  if (wp->pressure && !s.err && !idle_sweep)
    zram_bg_kick (wp->bg, wp->id);
  log_round (wp, "near mem_limit", &s, st);
  return s.written ? (int64_t) s.written : -1;
}

/* Pages the rate allows now: tokens earned since the last look, capped at
 * two periods' worth so that a long rest does not bank a burst.
 */
static uint64_t
rate_tokens (struct wb_policy *wp, int64_t now)
{
  double cap = 2.0 * wp->c.period_ms / 1000.0 * (double) wp->c.rate_pages + 1;

  wp->tokens += (now - wp->tokens_ns) / 1e9 * (double) wp->c.rate_pages;
  wp->tokens_ns = now;
  if (wp->tokens > cap)
    wp->tokens = cap;
  return (uint64_t) wp->tokens;
}

/* Pages idle for age_s, within the rate, behind the requests. */
static int64_t
age_round (struct wb_policy *wp, struct zram_bg_round *r,
           struct zram_stats *st)
{
  uint64_t nr_slots = st->disksize / ZRAM_PAGE_SIZE, allowed, n;
  int64_t now = mono_ns ();
  struct round_sum s = { .first = wp->cold.cursor, .compacted = -1 };
  bool end;

  allowed = rate_tokens (wp, now);
  if (now < wp->rest_until_ns || allowed == 0)
    return -1;
  wp->rest_until_ns = 0;
  if (zram_busy_check (&wp->busy, wp->zram, ZRAM_WB_POLICY_BUSY_RATE,
                       ZRAM_WB_POLICY_BUSY_WINDOW_MS)) {
    zram_bg_round_yielded (r);
    if (!wp->yielding && wp->c.log)
      wp->c.log ("writeback: giving way to requests (%d or more a second) "
                 "until the device is quiet", ZRAM_WB_POLICY_BUSY_RATE);
    wp->yielding = true;
    return -1;
  }
  wp->yielding = false;
  do {
    n = allowed < ZRAM_WB_POLICY_BATCH ? allowed : ZRAM_WB_POLICY_BATCH;
    s.err = sweep_step (wp, &wp->cold, nr_slots, wp->c.age_s, n, &s, &end);
    allowed -= s.written + s.raced < allowed ? s.written + s.raced : allowed;
    if (s.err)
      break;
    if (end) {
      bool found = wp->cold.written > 0;

      wp->cold.written = 0;
      if (!found) {
        uint32_t rest = wp->c.age_s / 8 ? wp->c.age_s / 8 : 1;

        wp->rest_until_ns = mono_ns () + (int64_t) rest * NS_PER_S;
        break;
      }
    }
    if (zram_busy_check (&wp->busy, wp->zram, ZRAM_WB_POLICY_BUSY_RATE,
                         ZRAM_WB_POLICY_BUSY_WINDOW_MS)) {
      s.busy = true;
      zram_bg_round_yielded (r);
      break;
    }
  } while (allowed > 0 && !zram_bg_round_over (r));
  wp->tokens -= (double) (s.written + s.raced);
  if (wp->tokens < 0)
    wp->tokens = 0;
  if (s.written || s.err)
    zram_get_stats (wp->zram, st);
  log_round (wp, "idle pages", &s, st);
  return s.written ? (int64_t) s.written : -1;
}

static int64_t
wb_round (void *opaque, struct zram_bg_round *r)
{
  struct wb_policy *wp = opaque;
  struct zram_stats st;

  zram_get_stats (wp->zram, &st);
  if (!st.initialised || st.bd_blocks == 0)
    return -1;
  if (wp->c.high_pm && st.mem_limit &&
      st.mem_used_total >= st.mem_limit / 1000 * wp->c.high_pm) {
    if (!wp->pressure) {
      /* A new spell of pressure starts with the coldest pages. */
      wp->pressure = true;
      wp->tier = 0;
      wp->hot.cursor = 0;
      wp->hot.written = 0;
    }
  }
  else if (wp->pressure && (st.mem_limit == 0 || st.mem_used_total <
                            st.mem_limit / 1000 * wp->c.low_pm))
    wp->pressure = false;
  wp->round_no++;
  if (wp->pressure && mono_ns () >= wp->hot_rest_until_ns)
    return pressure_round (wp, r, &st);
  if (wp->pressure)
    return -1;
  if (wp->c.age_s)
    return age_round (wp, r, &st);
  return -1;
}

void
zram_wb_policy_defaults (struct zram_wb_policy_config *c)
{
  memset (c, 0, sizeof *c);
  c->age_s = ZRAM_WB_POLICY_DEFAULT_AGE_S;
  c->rate_pages = ZRAM_WB_POLICY_DEFAULT_RATE;
  c->high_pm = ZRAM_WB_POLICY_DEFAULT_HIGH_PM;
  c->low_pm = ZRAM_WB_POLICY_DEFAULT_LOW_PM;
  c->period_ms = ZRAM_WB_POLICY_DEFAULT_PERIOD_MS;
  c->room_wait_ms = ZRAM_WB_POLICY_DEFAULT_WAIT_MS;
}

int
zram_wb_policy_add (struct zram_bg *bg, struct zram *zram,
                    const struct zram_wb_policy_config *c)
{
  struct wb_policy *wp;
  struct zram_stats st;
  struct zram_bg_policy p = {
    .name = ZRAM_WB_POLICY,
    .round = wb_round,
    .release = free,
    .budget_pm = ZRAM_BG_UNLIMITED,
  };
  int id;

  if (bg == NULL || zram == NULL || c == NULL ||
      c->age_s > ZRAM_WB_POLICY_MAX_AGE_S ||
      c->rate_pages == 0 || c->rate_pages > ZRAM_WB_POLICY_MAX_RATE ||
      c->high_pm > 1000 || (c->high_pm && c->low_pm >= c->high_pm) ||
      c->period_ms == 0 || c->room_wait_ms > ZRAM_ROOM_WAIT_MAX_MS) {
    errno = EINVAL;
    return -1;
  }
  zram_get_stats (zram, &st);
  if (st.bd_blocks == 0) {
    errno = EINVAL;
    return -1;
  }
  wp = calloc (1, sizeof *wp);
  if (wp == NULL)
    return -1;
  wp->zram = zram;
  wp->bg = bg;
  wp->c = *c;
  wp->tokens_ns = mono_ns ();
  zram_busy_init (&wp->busy, zram);
  p.period_ms = c->period_ms;
  p.opaque = wp;
  id = zram_bg_add (bg, &p);
  if (id == -1)
    return -1;                  /* zram_bg_add freed wp */
  wp->id = id;
  /* Writes at the limit wait only if pressure writeback can make room. */
  (void) zram_set_room_wait (zram, c->high_pm ? c->room_wait_ms : 0);
  return id;
}
