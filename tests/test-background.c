/* The background framework (include/zram/background.h): a policy that
 * always has work uses no more CPU than its budget (measured by the
 * process's CPU clock, not by the framework's own accounting), and still
 * gets most of it; an unlimited policy is never told to stop; kicks run a
 * round before its period; bad policies are refused; destroy does not
 * wait for a period.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zram/background.h"
#include "check.h"

static double
clock_s (clockid_t id)
{
  struct timespec ts;

  clock_gettime (id, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spin for about 200 us of CPU. */
static void
burn_step (void)
{
  double t0 = clock_s (CLOCK_THREAD_CPUTIME_ID);

  while (clock_s (CLOCK_THREAD_CPUTIME_ID) - t0 < 200e-6)
    ;
}

struct busy {
  unsigned steps;               /* total, all rounds */
  unsigned released;
};

/* Always has work: burns steps until the round is over. */
static int64_t
busy_round (void *opaque, struct zram_bg_round *r)
{
  struct busy *b = opaque;
  int64_t n = 0;

  do {
    burn_step ();
    n++;
  } while (!zram_bg_round_over (r));
  __atomic_add_fetch (&b->steps, n, __ATOMIC_RELAXED);
  return n;
}

static void
busy_release (void *opaque)
{
  struct busy *b = opaque;

  b->released++;
}

/* budget_pm per mille over wall seconds: the process's CPU (the main
 * thread sleeps) must stay within the budget, plus one burst and a step
 * of slack (and 15 % for clock granularity); and reach half of it.
 */
static void
test_budget (unsigned budget_pm, unsigned period_ms, double wall)
{
  struct busy b = { 0 };
  struct zram_bg_policy p = {
    .name = "busy", .period_ms = period_ms, .budget_pm = budget_pm,
    .round = busy_round, .opaque = &b, .release = busy_release,
  };
  struct zram_bg *bg = zram_bg_create (0);
  struct zram_bg_counts c;
  double cpu0, t0, cpu, elapsed, limit, burst;
  int id;

  CHECK (bg != NULL);
  id = zram_bg_add (bg, &p);
  CHECK (id == 0);
  cpu0 = clock_s (CLOCK_PROCESS_CPUTIME_ID);
  t0 = clock_s (CLOCK_MONOTONIC);
  CHECK (zram_bg_start (bg) == 0);
  usleep ((useconds_t) (wall * 1e6));
  zram_bg_counts (bg, id, &c);
  cpu = clock_s (CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  elapsed = clock_s (CLOCK_MONOTONIC) - t0;
  zram_bg_destroy (bg);
  CHECK (b.released == 1);

  burst = period_ms / 1000.0 * budget_pm / 1000;
  if (burst < ZRAM_BG_MIN_BURST_NS / 1e9)
    burst = ZRAM_BG_MIN_BURST_NS / 1e9;
  limit = (elapsed * budget_pm / 1000 + burst + 200e-6) * 1.15 + 0.005;
  printf ("budget %u pm, period %u ms: %.3f s CPU in %.3f s wall (%.1f %%), "
          "limit %.3f s; %" PRIu64 " rounds, framework counted %.3f s, "
          "throttled %" PRIu64 "\n", budget_pm, period_ms, cpu, elapsed,
          100 * cpu / elapsed, limit, c.rounds, c.cpu_ns / 1e9, c.throttled);
  EXPECT (cpu <= limit, "%.3f s of CPU over a limit of %.3f s", cpu, limit);
  EXPECT (cpu >= 0.5 * elapsed * budget_pm / 1000,
          "only %.3f s of CPU of a budget of %.3f s", cpu,
          elapsed * budget_pm / 1000);
  EXPECT (c.rounds >= 2, "%" PRIu64 " rounds", c.rounds);
  EXPECT (c.cpu_ns / 1e9 <= cpu * 1.05 + 0.002,
          "framework counted %.3f s, process used %.3f s", c.cpu_ns / 1e9, cpu);
}

struct once {
  unsigned rounds;
  int64_t allowance;
};

static int64_t
once_round (void *opaque, struct zram_bg_round *r)
{
  struct once *o = opaque;

  o->allowance = zram_bg_round_allowance_ns (r);
  __atomic_add_fetch (&o->rounds, 1, __ATOMIC_RELAXED);
  return zram_bg_round_over (r) ? -1 : 1;
}

static void
test_kick_and_stop (void)
{
  struct once o = { 0 };
  struct zram_bg_policy p = {
    .name = "once", .period_ms = 60000, .budget_pm = ZRAM_BG_UNLIMITED,
    .round = once_round, .opaque = &o,
  };
  struct zram_bg *bg = zram_bg_create (5);
  struct zram_bg_counts c;
  double t0;
  int id;

  CHECK (bg != NULL);
  id = zram_bg_add (bg, &p);
  CHECK (id == 0);
  CHECK (zram_bg_find (bg, "once") == id);
  CHECK (zram_bg_find (bg, "nothing") == -1);
  CHECK (zram_bg_find (NULL, "once") == -1);
  CHECK (zram_bg_start (bg) == 0);
  CHECK (zram_bg_start (bg) == -1 && errno == EINVAL);
  CHECK (zram_bg_add (bg, &p) == -1 && errno == EINVAL);
  usleep (50000);
  CHECK (__atomic_load_n (&o.rounds, __ATOMIC_RELAXED) == 0);
  zram_bg_kick (bg, id);
  zram_bg_kick (bg, 7);         /* no such policy: ignored */
  t0 = clock_s (CLOCK_MONOTONIC);
  while (__atomic_load_n (&o.rounds, __ATOMIC_RELAXED) == 0 &&
         clock_s (CLOCK_MONOTONIC) - t0 < 5)
    usleep (1000);
  zram_bg_counts (bg, id, &c);
  CHECK (c.rounds == 1 && c.work == 1);
  CHECK (o.allowance == INT64_MAX);
  /* Destroy does not wait for the 60-second period. */
  t0 = clock_s (CLOCK_MONOTONIC);
  zram_bg_destroy (bg);
  CHECK (clock_s (CLOCK_MONOTONIC) - t0 < 1.0);
  zram_bg_destroy (NULL);
}

static void
test_refusals (void)
{
  struct busy b = { 0 };
  struct zram_bg_policy good = {
    .name = "p", .period_ms = 10, .budget_pm = 10,
    .round = busy_round, .opaque = &b, .release = busy_release,
  }, bad;
  struct zram_bg *bg;
  unsigned i;

  CHECK (zram_bg_create (20) == NULL && errno == EINVAL);
  CHECK (zram_bg_create (-21) == NULL && errno == EINVAL);
  bg = zram_bg_create (0);
  CHECK (bg != NULL);
  bad = good; bad.period_ms = 0;
  CHECK (zram_bg_add (bg, &bad) == -1 && errno == EINVAL);
  bad = good; bad.budget_pm = 0;
  CHECK (zram_bg_add (bg, &bad) == -1 && errno == EINVAL);
  bad = good; bad.budget_pm = ZRAM_BG_UNLIMITED + 1;
  CHECK (zram_bg_add (bg, &bad) == -1 && errno == EINVAL);
  bad = good; bad.round = NULL;
  CHECK (zram_bg_add (bg, &bad) == -1 && errno == EINVAL);
  bad = good; bad.name = "";
  CHECK (zram_bg_add (bg, &bad) == -1 && errno == EINVAL);
  /* Each refusal released the policy's state. */
  CHECK (b.released == 5);
  for (i = 0; i < ZRAM_BG_MAX_POLICIES; i++)
    CHECK (zram_bg_add (bg, &good) == (int) i);
  CHECK (zram_bg_add (bg, &good) == -1 && errno == ENOSPC);
  CHECK (b.released == 6);
  zram_bg_destroy (bg);         /* never started: releases all the same */
  CHECK (b.released == 6 + ZRAM_BG_MAX_POLICIES);
}

int
main (void)
{
  test_refusals ();
  test_kick_and_stop ();
  test_budget (50, 1000, 3.0);  /* 5 %, the recompression default's kind */
  test_budget (200, 100, 2.0);  /* 20 %, short periods */
  if (check_failures)
    return 1;
  printf ("test-background: ok\n");
  return 0;
}
