/* nbdkit-zram: background compaction (see include/zram/compactor.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "zram/compactor.h"
#include "zram/thread-ctx.h"
#include "zram/zram.h"

struct zram_compactor {
  struct zram *zram;
  unsigned interval_ms;
  double threshold;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* CLOCK_MONOTONIC */
  sem_t ready;                  /* posted once the thread has its context */
  int start_errno;              /* 0, or why the thread refused to run */
  bool stopping;                /* lock */
  bool kicked;                  /* lock */
  uint64_t runs;                /* lock */
  uint64_t pages;               /* lock */
};

/* Decide from the device's statistics whether a run is worthwhile.
 * *futile_compr is compr_data_size after the last run that released
 * nothing (UINT64_MAX if the last run did release pages).
 */
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

static void *
compactor_thread (void *arg)
{
  struct zram_compactor *c = arg;
  uint64_t futile_compr = UINT64_MAX;
  struct zram_stats st;
  struct timespec when;
  int64_t pages;

  /* Allocate what the statistics and compaction calls need now, where the
   * starter can report a failure, not lazily in the middle of a run.
   */
  if (zram_thread_ctx_get () == NULL) {
    c->start_errno = errno;
    sem_post (&c->ready);
    return NULL;
  }
  sem_post (&c->ready);

  pthread_mutex_lock (&c->lock);
  while (!c->stopping) {
    clock_gettime (CLOCK_MONOTONIC, &when);
    when.tv_sec += c->interval_ms / 1000;
    when.tv_nsec += (long) (c->interval_ms % 1000) * 1000000;
    if (when.tv_nsec >= 1000000000) {
      when.tv_sec++;
      when.tv_nsec -= 1000000000;
    }
    while (!c->stopping && !c->kicked &&
           pthread_cond_timedwait (&c->cond, &c->lock, &when) != ETIMEDOUT)
      ;
    if (c->stopping)
      break;
    c->kicked = false;
    pthread_mutex_unlock (&c->lock);

    /* Outside our lock: stop must be able to wake us meanwhile (it then
     * waits for this run to end).
     */
    zram_get_stats (c->zram, &st);
    pages = -1;
    if (worth_compacting (&st, c->threshold, futile_compr)) {
      pages = zram_compact (c->zram);
      if (pages == 0) {
        zram_get_stats (c->zram, &st);
        futile_compr = st.compr_data_size;
      }
      else if (pages > 0)
        futile_compr = UINT64_MAX;
    }

    pthread_mutex_lock (&c->lock);
    if (pages >= 0) {
      c->runs++;
      c->pages += pages;
    }
  }
  pthread_mutex_unlock (&c->lock);
  return NULL;
}

struct zram_compactor *
zram_compactor_start (struct zram *zram, unsigned interval_ms, double threshold)
{
  struct zram_compactor *c;
  pthread_condattr_t attr;
  int err;

  if (zram == NULL || interval_ms == 0 || !(threshold >= 1.0)) {
    errno = EINVAL;
    return NULL;
  }
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->zram = zram;
  c->interval_ms = interval_ms;
  c->threshold = threshold;
  pthread_mutex_init (&c->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&c->cond, &attr);
  pthread_condattr_destroy (&attr);
  if (sem_init (&c->ready, 0, 0) == -1) {
    err = errno;
    goto out_free;
  }
  err = pthread_create (&c->thread, NULL, compactor_thread, c);
  if (err != 0)
    goto out_sem;
  while (sem_wait (&c->ready) == -1 && errno == EINTR)
    ;
  err = c->start_errno;
  if (err != 0) {
    pthread_join (c->thread, NULL);
    goto out_sem;
  }
  sem_destroy (&c->ready);
  return c;

 out_sem:
  sem_destroy (&c->ready);
 out_free:
  pthread_cond_destroy (&c->cond);
  pthread_mutex_destroy (&c->lock);
  free (c);
  errno = err;
  return NULL;
}

void
zram_compactor_stop (struct zram_compactor *c)
{
  if (c == NULL)
    return;
  pthread_mutex_lock (&c->lock);
  c->stopping = true;
  pthread_cond_signal (&c->cond);
  pthread_mutex_unlock (&c->lock);
  pthread_join (c->thread, NULL);
  pthread_cond_destroy (&c->cond);
  pthread_mutex_destroy (&c->lock);
  free (c);
}

void
zram_compactor_kick (struct zram_compactor *c)
{
  pthread_mutex_lock (&c->lock);
  c->kicked = true;
  pthread_cond_signal (&c->cond);
  pthread_mutex_unlock (&c->lock);
}

void
zram_compactor_counts (struct zram_compactor *c, uint64_t *runs,
                       uint64_t *pages)
{
  pthread_mutex_lock (&c->lock);
  *runs = c->runs;
  *pages = c->pages;
  pthread_mutex_unlock (&c->lock);
}
