/* nbdkit-zram: one thread for a device's background work
 * (see include/zram/background.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "zram/background.h"
#include "zram/thread-ctx.h"

#define NS_PER_MS INT64_C (1000000)
#define NS_PER_S  INT64_C (1000000000)

struct policy {
  struct zram_bg_policy p;
  int64_t burst_ns;             /* most credit it can save up */
  /* The fields below: bg->lock. */
  int64_t credit_ns;            /* CPU time it may still use */
  int64_t refilled_ns;          /* monotonic time of the last refill */
  int64_t due_ns;               /* monotonic time of the next round */
  bool kicked;
  bool waiting;                 /* due, but out of credit (counted once) */
  struct zram_bg_counts counts;
};

struct zram_bg {
  int nice;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* CLOCK_MONOTONIC */
  sem_t ready;                  /* posted once the thread has its context */
  int start_errno;
  bool stopping;                /* lock; read unlocked by rounds (atomic) */
  unsigned nr;
  struct policy policies[ZRAM_BG_MAX_POLICIES];
};

struct zram_bg_round {
  struct zram_bg *bg;
  int64_t cpu_start_ns;
  int64_t allowance_ns;
  bool urgent;
  bool yielded;
};

static int64_t
clock_ns (clockid_t id)
{
  struct timespec ts;

  clock_gettime (id, &ts);
  return (int64_t) ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t
mono_ns (void)
{
  return clock_ns (CLOCK_MONOTONIC);
}

static int64_t
thread_cpu_ns (void)
{
  return clock_ns (CLOCK_THREAD_CPUTIME_ID);
}

static bool
unlimited (const struct policy *pol)
{
  return pol->p.budget_pm >= ZRAM_BG_UNLIMITED;
}

/* Credit earned since the last refill, capped at the burst.  bg->lock. */
static void
refill (struct policy *pol, int64_t now)
{
  int64_t earned;

  if (unlimited (pol) || now <= pol->refilled_ns)
    return;
  earned = (now - pol->refilled_ns) * (int64_t) pol->p.budget_pm / 1000;
  pol->credit_ns += earned;
  if (pol->credit_ns > pol->burst_ns)
    pol->credit_ns = pol->burst_ns;
  pol->refilled_ns = now;
}

/* When pol may run next: its due time, or later when its credit is
 * repaid.  bg->lock.
 */
static int64_t
next_run (const struct policy *pol, int64_t now)
{
  int64_t t = pol->kicked ? now : pol->due_ns;

  if (!unlimited (pol) && pol->credit_ns <= 0) {
    int64_t repaid = now + (-pol->credit_ns + 1) * 1000 / pol->p.budget_pm;

    if (repaid > t)
      t = repaid;
  }
  return t;
}

static void
run_round (struct zram_bg *bg, struct policy *pol)
{
  struct zram_bg_round r = {
    .bg = bg,
    .allowance_ns = unlimited (pol) ? INT64_MAX : pol->credit_ns,
  };
  int64_t done, used, start = mono_ns ();

  pol->kicked = false;
  pol->waiting = false;
  pthread_mutex_unlock (&bg->lock);
  /* Outside the lock: destroy must be able to wake us meanwhile (it then
   * waits for the round to end), and kicks and counts must not wait.
   */
  r.cpu_start_ns = thread_cpu_ns ();
  done = pol->p.round (pol->p.opaque, &r);
  used = thread_cpu_ns () - r.cpu_start_ns;
  pthread_mutex_lock (&bg->lock);
  if (!unlimited (pol))
    pol->credit_ns -= used;
  pol->counts.cpu_ns += used;
  if (done >= 0) {
    pol->counts.rounds++;
    pol->counts.work += done;
  }
  if (r.urgent)
    pol->counts.urgent++;
  if (r.yielded)
    pol->counts.yielded++;
  /* Periods run from start to start, so a round's own length does not
   * stretch them; a round that outlasts its period is followed at once by
   * the next, if credit is left.
   */
  pol->due_ns = start + pol->p.period_ms * NS_PER_MS;
}

static void *
bg_thread (void *arg)
{
  struct zram_bg *bg = arg;
  struct timespec when;
  int64_t now, wake, t;
  unsigned i;

  /* Allocate what the rounds' calls need now, where the starter can
   * report a failure, not lazily in the middle of a round.
   */
  if (zram_thread_ctx_get () == NULL) {
    bg->start_errno = errno;
    sem_post (&bg->ready);
    return NULL;
  }
  /* setpriority on a thread id changes that thread only (Linux).  A
   * refusal (raising priority without privilege) leaves the inherited
   * value, which is no worse than no framework at all.
   */
  (void) setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), bg->nice);
  /* Named, so that its CPU can be read from /proc/PID/task/TID/stat. */
  (void) pthread_setname_np (pthread_self (), ZRAM_BG_THREAD_NAME);
  sem_post (&bg->ready);

  pthread_mutex_lock (&bg->lock);
  while (!bg->stopping) {
    now = mono_ns ();
    wake = INT64_MAX;
    for (i = 0; i < bg->nr && !bg->stopping; i++) {
      struct policy *pol = &bg->policies[i];

      refill (pol, now);
      if (!pol->kicked && now < pol->due_ns)
        ;                       /* not due */
      else if (unlimited (pol) || pol->credit_ns > 0) {
        run_round (bg, pol);
        now = mono_ns ();
      }
      else if (!pol->waiting) {
        pol->waiting = true;
        pol->counts.throttled++;
      }
      t = next_run (pol, now);
      if (t < wake)
        wake = t;
    }
    if (bg->stopping)
      break;
    if (wake <= now)
      continue;
    if (wake == INT64_MAX)
      wake = now + 3600 * NS_PER_S;
    when.tv_sec = wake / NS_PER_S;
    when.tv_nsec = wake % NS_PER_S;
    /* Kicks signal the condition; spurious wake-ups just loop. */
    pthread_cond_timedwait (&bg->cond, &bg->lock, &when);
  }
  pthread_mutex_unlock (&bg->lock);
  return NULL;
}

struct zram_bg *
zram_bg_create (int nice)
{
  struct zram_bg *bg;
  pthread_condattr_t attr;

  if (nice < -20 || nice > 19) {
    errno = EINVAL;
    return NULL;
  }
  bg = calloc (1, sizeof *bg);
  if (bg == NULL)
    return NULL;
  bg->nice = nice;
  pthread_mutex_init (&bg->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&bg->cond, &attr);
  pthread_condattr_destroy (&attr);
  return bg;
}

int
zram_bg_add (struct zram_bg *bg, const struct zram_bg_policy *p)
{
  struct policy *pol;
  int err = EINVAL;

  if (bg == NULL || bg->started || p->round == NULL || p->name == NULL ||
      p->name[0] == '\0' || p->period_ms == 0 || p->budget_pm == 0 ||
      p->budget_pm > ZRAM_BG_UNLIMITED)
    goto fail;
  if (bg->nr == ZRAM_BG_MAX_POLICIES) {
    err = ENOSPC;
    goto fail;
  }
  pol = &bg->policies[bg->nr];
  memset (pol, 0, sizeof *pol);
  pol->p = *p;
  pol->burst_ns = (int64_t) p->period_ms * NS_PER_MS * p->budget_pm / 1000;
  if (pol->burst_ns < ZRAM_BG_MIN_BURST_NS)
    pol->burst_ns = ZRAM_BG_MIN_BURST_NS;
  /* The first round waits a period, as the compactor always did, and
   * starts with a full allowance.
   */
  pol->credit_ns = pol->burst_ns;
  return (int) bg->nr++;

 fail:
  if (p->release)
    p->release (p->opaque);
  errno = err;
  return -1;
}

int
zram_bg_start (struct zram_bg *bg)
{
  int64_t now = mono_ns ();
  unsigned i;
  int err;

  if (bg == NULL || bg->started) {
    errno = EINVAL;
    return -1;
  }
  for (i = 0; i < bg->nr; i++) {
    bg->policies[i].refilled_ns = now;
    bg->policies[i].due_ns = now + bg->policies[i].p.period_ms * NS_PER_MS;
  }
  if (sem_init (&bg->ready, 0, 0) == -1)
    return -1;
  err = pthread_create (&bg->thread, NULL, bg_thread, bg);
  if (err != 0)
    goto out;
  while (sem_wait (&bg->ready) == -1 && errno == EINTR)
    ;
  err = bg->start_errno;
  if (err != 0) {
    pthread_join (bg->thread, NULL);
    goto out;
  }
  bg->started = true;
  sem_destroy (&bg->ready);
  return 0;

 out:
  sem_destroy (&bg->ready);
  errno = err;
  return -1;
}

void
zram_bg_destroy (struct zram_bg *bg)
{
  unsigned i;

  if (bg == NULL)
    return;
  if (bg->started) {
    pthread_mutex_lock (&bg->lock);
    __atomic_store_n (&bg->stopping, true, __ATOMIC_RELAXED);
    pthread_cond_signal (&bg->cond);
    pthread_mutex_unlock (&bg->lock);
    pthread_join (bg->thread, NULL);
  }
  for (i = 0; i < bg->nr; i++)
    if (bg->policies[i].p.release)
      bg->policies[i].p.release (bg->policies[i].p.opaque);
  pthread_cond_destroy (&bg->cond);
  pthread_mutex_destroy (&bg->lock);
  free (bg);
}

void
zram_bg_kick (struct zram_bg *bg, int id)
{
  if (bg == NULL || id < 0 || (unsigned) id >= bg->nr)
    return;
  pthread_mutex_lock (&bg->lock);
  bg->policies[id].kicked = true;
  pthread_cond_signal (&bg->cond);
  pthread_mutex_unlock (&bg->lock);
}

void
zram_bg_counts (struct zram_bg *bg, int id, struct zram_bg_counts *out)
{
  memset (out, 0, sizeof *out);
  if (bg == NULL || id < 0 || (unsigned) id >= bg->nr)
    return;
  pthread_mutex_lock (&bg->lock);
  *out = bg->policies[id].counts;
  pthread_mutex_unlock (&bg->lock);
}

int
zram_bg_find (struct zram_bg *bg, const char *name)
{
  unsigned i;

  if (bg == NULL)
    return -1;
  /* Policies are added before the thread starts and never removed, so
   * their names can be read without the lock once it runs.
   */
  for (i = 0; i < bg->nr; i++)
    if (strcmp (bg->policies[i].p.name, name) == 0)
      return (int) i;
  return -1;
}

bool
zram_bg_round_over (struct zram_bg_round *r)
{
  if (__atomic_load_n (&r->bg->stopping, __ATOMIC_RELAXED))
    return true;
  if (r->allowance_ns == INT64_MAX)
    return false;
  return thread_cpu_ns () - r->cpu_start_ns >= r->allowance_ns;
}

int64_t
zram_bg_round_allowance_ns (const struct zram_bg_round *r)
{
  return r->allowance_ns;
}

int64_t
zram_bg_round_cpu_ns (const struct zram_bg_round *r)
{
  return thread_cpu_ns () - r->cpu_start_ns;
}

void
zram_bg_round_urgent (struct zram_bg_round *r)
{
  r->urgent = true;
}

void
zram_bg_round_yielded (struct zram_bg_round *r)
{
  r->yielded = true;
}
