/* nbdkit-zram: openers and the control path of the device (see
 * include/zram/zram.h): reset, statistics, limits, compaction.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Everything here that changes the published state runs under ctl_lock,
 * which the data path never takes.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "zram-impl.h"

/* --- openers ------------------------------------------------------------- */

int
zram_open (struct zram *z)
{
  uint64_t v = __atomic_load_n (&z->openers, __ATOMIC_RELAXED);

  do {
    if (v & OPENERS_CLAIM) {
      errno = EBUSY;
      return -1;
    }
  } while (!__atomic_compare_exchange_n (&z->openers, &v, v + 1, true,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
  return 0;
}

void
zram_close (struct zram *z)
{
  __atomic_sub_fetch (&z->openers, 1, __ATOMIC_ACQ_REL);
}

int
zram_client_pid_add (struct zram *z, int pid)
{
  size_t i;
  int r = -1;

  pthread_mutex_lock (&z->clients_lock);
  for (i = 0; i < ZRAM_MAX_CLIENT_PIDS; i++)
    if (z->client_pids[i] == 0) {
      z->client_pids[i] = pid;
      r = 0;
      break;
    }
  pthread_mutex_unlock (&z->clients_lock);
  if (r == -1)
    errno = ENOSPC;
  return r;
}

void
zram_client_pid_remove (struct zram *z, int pid)
{
  size_t i;

  pthread_mutex_lock (&z->clients_lock);
  for (i = 0; i < ZRAM_MAX_CLIENT_PIDS; i++)
    if (z->client_pids[i] == pid) {
      z->client_pids[i] = 0;
      break;
    }
  pthread_mutex_unlock (&z->clients_lock);
}

size_t
zram_client_pids (struct zram *z, int *pids, size_t cap)
{
  size_t i, n = 0;

  pthread_mutex_lock (&z->clients_lock);
  for (i = 0; i < ZRAM_MAX_CLIENT_PIDS && n < cap; i++)
    if (z->client_pids[i] != 0)
      pids[n++] = z->client_pids[i];
  pthread_mutex_unlock (&z->clients_lock);
  return n;
}

void
zram_stop_walks (struct zram *z)
{
  __atomic_add_fetch (&z->walks_stopped, 1, __ATOMIC_RELAXED);
}

void
zram_resume_walks (struct zram *z)
{
  __atomic_sub_fetch (&z->walks_stopped, 1, __ATOMIC_RELAXED);
}

/* --- metrics ------------------------------------------------------------ */

void
zram_get_histogram (struct zram *z, enum zram_hist_id id,
                    struct zram_hist_snapshot *out)
{
  zram_hist_read (&z->hist[id], out);
}

static uint64_t
monotonic_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
zram_wait_idle (struct zram *z, unsigned timeout_ms)
{
  uint64_t deadline = monotonic_us () + (uint64_t) timeout_ms * 1000;
  struct timespec step = { .tv_sec = 0, .tv_nsec = 1000000 };

  for (;;) {
    if ((__atomic_load_n (&z->openers, __ATOMIC_ACQUIRE) & ~OPENERS_CLAIM) == 0)
      return 0;
    if (monotonic_us () >= deadline) {
      errno = EBUSY;
      return -1;
    }
    nanosleep (&step, NULL);
    /* 1 ms at first (the usual lag is well under that), then up to 5 ms. */
    if (step.tv_nsec < 5000000)
      step.tv_nsec += 1000000;
  }
}

/* --- control path -------------------------------------------------------- */

int
zram_reset (struct zram *z, bool force, const struct zram_config *new_config)
{
  struct zram_config config;
  struct zram_meta *old, *fresh;
  uint64_t zero = 0;
  int r = -1;

  pthread_mutex_lock (&z->ctl_lock);

  /* Describe the new state from the old one, changed as asked. */
  old = z->meta;              /* only the control path changes it: no RCU */
  config.disksize = z->disksize;
  config.algo = old ? zcomp_get_algo (old->comp) : ZCOMP_DEFAULT_ALGO;
  config.level = old ? zcomp_get_level (old->comp) : 0;
  config.pool = old ? old->pool_kind : ZPOOL_ZS;
  config.reserve = z->reserve;
  config.reserve_wait_ms = z->reserve_wait_ms;
  config.backing = z->backing; /* the device's store: new_config's is ignored */
  /* The recompression algorithms are the device's: a reset keeps them. */
  config.nr_recomp = z->nr_recomp;
  memcpy (config.recomp, z->recomp, sizeof config.recomp);
  config.group_pages = z->group_pages;
  config.group_algo = z->group_algo;
  /* So is the user's dictionary, prepared anew for the algorithm. */
  config.dict = z->dict;
  config.dict_len = z->dict_len;
  if (new_config) {
    if (new_config->disksize != z->disksize) {
      errno = EINVAL;
      goto out;
    }
    config.algo = new_config->algo;
    config.level = new_config->level;
    config.pool = new_config->pool;
  }

  /* Build the new state first: a bad level or no memory leaves the
   * device as it was.
   */
  fresh = zram_meta_create (&config, z->guard);
  if (fresh == NULL)
    goto out;
  fresh->gen = z->gen + 1;
  if (z->started && zram_meta_start (fresh) == -1) {
    zram_meta_destroy (fresh);
    goto out;
  }

  /* Without force, claim the device only if nobody has it open.  Testing
   * for zero and setting the claim in one compare-and-swap closes the race
   * of a connection arriving between the check and the reset: zram_open
   * fails with EBUSY while the claim is set.
   */
  if (!force &&
      !__atomic_compare_exchange_n (&z->openers, &zero, OPENERS_CLAIM, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    zram_meta_destroy (fresh);
    errno = EBUSY;
    goto out;
  }

  /* Unpublish: requests starting from now on find NULL and fail with EIO.
   * Requests already inside a read-side section keep using old; the grace
   * period waits for every one of them to finish, after which nothing can
   * reach old and it is freed.
   */
  old = __atomic_exchange_n (&z->meta, NULL, __ATOMIC_ACQ_REL);
  urcu_bp_synchronize_rcu ();
  rcu_grace_period_done (&z->rcu_sync);
  zram_meta_destroy (old);

  __atomic_store_n (&z->offline_reads, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&z->offline_writes, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&z->nomem_reads, 0, __ATOMIC_RELAXED);
  __atomic_store_n (&z->nomem_writes, 0, __ATOMIC_RELAXED);
  /* Publish: the release store makes every write that built fresh visible
   * to a reader that loads the pointer with acquire (meta_get).
   */
  z->gen = fresh->gen;
  __atomic_store_n (&z->meta, fresh, __ATOMIC_RELEASE);

  if (!force)
    __atomic_fetch_and (&z->openers, ~OPENERS_CLAIM, __ATOMIC_ACQ_REL);
  r = 0;

 out:
  pthread_mutex_unlock (&z->ctl_lock);
  return r;
}

/* The live state for a control-path reader, by the cheapest safe means:
 * in a read-side section if this thread has its context, else under
 * ctl_lock, which keeps reset (the only thing that frees the state) away.
 * The fallback lets statistics answer even on a thread that has no memory
 * for a context; it waits behind a reset or compaction in progress.
 * Returns NULL (errno EIO) while a reset has the device unpublished.
 * Release with ctl_meta_put (z, *locked).
 */
static struct zram_meta *
ctl_meta_get (struct zram *z, bool *locked)
{
  struct zram_thread_ctx *ctx = zram_thread_ctx_get ();

  *locked = ctx == NULL;
  return *locked ? meta_get_locked (z) : meta_get (z, ctx);
}

static void
ctl_meta_put (struct zram *z, bool locked)
{
  if (locked)
    pthread_mutex_unlock (&z->ctl_lock);
  else
    meta_put (z);
}

void
zram_get_stats (struct zram *z, struct zram_stats *s)
{
  struct zram_meta *m;
  struct zpool_stats ps;
  bool locked;

  memset (s, 0, sizeof *s);
  s->disksize = z->disksize;
  s->mem_limit = __atomic_load_n (&z->mem_limit, __ATOMIC_RELAXED);
  s->openers = __atomic_load_n (&z->openers, __ATOMIC_RELAXED) & ~OPENERS_CLAIM;
  s->failed_reads = STAT_GET (z->offline_reads) + STAT_GET (z->nomem_reads);
  s->failed_writes = STAT_GET (z->offline_writes) + STAT_GET (z->nomem_writes);
  zram_get_writeback_limit (z, &s->wb_limit_enable, &s->wb_limit);
  s->room_waits = STAT_GET (z->room_waits);
  s->room_failed = STAT_GET (z->room_failed);

  m = ctl_meta_get (z, &locked);
  if (m == NULL)
    return;                   /* resetting: report an empty device */
  s->initialised = true;
  zpool_get_stats (m->pool, &ps);
  s->orig_data_size = STAT_GET (m->stats.pages_stored) << ZRAM_PAGE_SHIFT;
  s->compr_data_size = STAT_GET (m->stats.compr_data_size);
  s->mem_used_total = ps.total_bytes;
  s->mem_used_max = STAT_GET (m->stats.mem_used_max);
  if (s->mem_used_max < s->mem_used_total)
    s->mem_used_max = s->mem_used_total;
  s->same_pages = STAT_GET (m->stats.same_pages);
  s->pages_compacted = ps.pages_compacted;
  s->huge_pages = STAT_GET (m->stats.huge_pages);
  s->huge_pages_since = STAT_GET (m->stats.huge_pages_since);
  s->failed_reads += STAT_GET (m->stats.failed_reads);
  s->failed_writes += STAT_GET (m->stats.failed_writes);
  s->invalid_io = STAT_GET (m->stats.invalid_io);
  s->notify_free = STAT_GET (m->stats.notify_free);
  s->algo = zcomp_get_algo (m->comp);
  s->level = zcomp_get_level (m->comp);
  s->pool = m->pool_kind;
  s->reserve_bytes = ps.reserve_bytes;
  s->reserve_free = ps.reserve_free;
  s->reserve_refills = ps.reserve_refills;
  s->reserve_empty = ps.reserve_empty;
  s->reserve_failed = ps.reserve_failed;
  s->idle_pages = STAT_GET (m->stats.idle_pages);
  s->incompressible_pages = STAT_GET (m->stats.incompressible_pages);
  s->recomp_attempts = STAT_GET (m->stats.recomp_attempts);
  s->recomp_successes = STAT_GET (m->stats.recomp_successes);
  s->recomp_bytes_saved = STAT_GET (m->stats.recomp_bytes_saved);
  s->bd_count = STAT_GET (m->stats.bd_count);
  s->bd_reads = STAT_GET (m->stats.bd_reads);
  s->bd_writes = STAT_GET (m->stats.bd_writes);
  s->bd_checksum_errors = STAT_GET (m->stats.bd_checksum_errors);
  s->bd_blocks = m->backing ? backing_nr_blocks (m->backing) : 0;
  s->bd_blocks_used = m->backing ? backing_used_blocks (m->backing) : 0;
  s->bd_errors = m->backing ? backing_errors (m->backing) : 0;
  s->bd_reconnects = m->backing ? backing_reconnects (m->backing) : 0;
  s->group_objects = STAT_GET (m->stats.group_objects);
  s->group_pages = STAT_GET (m->stats.group_pages);
  s->group_compr_size = STAT_GET (m->stats.group_compr_size);
  s->groups_dissolved = STAT_GET (m->stats.groups_dissolved);
  s->group_max_pages = m->group_pages;
  if (m->group_comp) {
    s->group_algo.algo = zcomp_get_algo (m->group_comp);
    s->group_algo.level = zcomp_get_level (m->group_comp);
  }
  zram_meta_dict_stats (m, s);
  s->dict_trainings = __atomic_load_n (&z->dict_trainings, __ATOMIC_RELAXED);
  s->dict_rejected = __atomic_load_n (&z->dict_rejected, __ATOMIC_RELAXED);
  s->nr_recomp = m->nr_recomp;
  for (unsigned i = 0; i < m->nr_recomp; i++) {
    s->pages_recomp[i] = STAT_GET (m->stats.pages_recomp[i]);
    s->recomp[i].algo = zcomp_get_algo (m->recomp[i]);
    s->recomp[i].level = zcomp_get_level (m->recomp[i]);
  }
  ctl_meta_put (z, locked);
}

void
zram_set_mem_limit (struct zram *z, uint64_t bytes)
{
  __atomic_store_n (&z->mem_limit, bytes, __ATOMIC_RELAXED);
}

void
zram_reset_mem_used_max (struct zram *z)
{
  bool locked;
  struct zram_meta *m = ctl_meta_get (z, &locked);

  if (m == NULL)
    return;
  __atomic_store_n (&m->stats.mem_used_max, zpool_total_bytes (m->pool),
                    __ATOMIC_RELAXED);
  ctl_meta_put (z, locked);
}

int64_t
zram_compact (struct zram *z)
{
  int64_t pages = -1;

  pthread_mutex_lock (&z->ctl_lock);
  /* The control mutex keeps reset away, so the state cannot be freed under
   * us even though compaction may run long outside any read-side section.
   */
  if (z->meta)
    pages = zpool_compact (z->meta->pool);
  else
    errno = EIO;
  pthread_mutex_unlock (&z->ctl_lock);
  return pages;
}
