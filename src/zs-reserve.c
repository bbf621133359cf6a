/* nbdkit-zram: the zsmalloc-style slab allocator (pool=zs): the reserve.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * What the reserve is and why: include/zram/zpool.h ("THE RESERVE") and
 * src/zsmalloc.h.  This file holds its refill thread, the only thread of
 * the pool that may wait for memory, and the bounded wait of a request
 * that finds the reserve short.
 *
 *   request path                         refill thread
 *   ------------                         -------------
 *   take pages of listed blocks          wakes on a kick or every second:
 *   whole free blocks < low? kick ---->    while whole free < size:
 *   none left: kick, wait on "added"         take a virgin block (mmap an
 *     until the deadline (wait_ms) <----       arena if needed), populate
 *     then fail with ENOMEM                    it unlocked, list it, signal
 *                                          give back whole free blocks
 *                                            beyond 1.5 x size
 *                                          populate the handle table ahead
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_setname_np */
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "zsmalloc.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  /* Linux 5.14 */
#endif

/* How often the refill thread looks without being kicked: to give back
 * what exceeds the reserve, and to catch up after a failed refill.
 */
#define REFILL_PERIOD_MS 1000

/* Handles populated ahead of use, per page of reserve: swap's objects
 * average well over 256 bytes, so 16 objects per page is ample.
 */
#define TABLE_MARGIN_PER_PAGE 16

static void
deadline_after (struct timespec *ts, unsigned ms)
{
  clock_gettime (CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

static bool
passed (const struct timespec *deadline)
{
  struct timespec now;

  clock_gettime (CLOCK_MONOTONIC, &now);
  return now.tv_sec > deadline->tv_sec ||
    (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static bool
before (const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec ||
    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void
kick (struct zs_reserve *r)
{
  if (!r->kicked) {
    r->kicked = true;
    pthread_cond_signal (&r->wake);
  }
}

/* Is free memory so low that the kernel reclaims to satisfy allocations
 * (below about twice its high watermark)?  sysinfo fills our buffer and
 * allocates nothing.
 */
static bool
memory_short (const struct zs_reserve *r)
{
  struct sysinfo si;

  if (sysinfo (&si) == -1)
    return true;
  return (uint64_t) si.freeram * si.mem_unit < r->short_bytes;
}

/* Is the refill thread unable to get memory: its last round failed (no
 * memory, or the growth gate refused), or it is at work (not asleep) while
 * free memory is low, so that it has added nothing for the waiter's
 * wait_ms because it waits in reclaim (in populate or mmap, or a page
 * fault of its own: the gate's file reads, the handle table)?  At work
 * with plenty of memory free, it is a thread that did not get the CPU
 * (measured: 70 ms in one populate under TCG on a loaded host), not one
 * that cannot get memory.  page_lock held.
 */
static bool
refill_stuck (const struct zs_reserve *r)
{
  return r->failing ||
    (__atomic_load_n (&r->busy, __ATOMIC_RELAXED) && memory_short (r));
}

/* Read a number from a /proc/sys file; dflt if it cannot be read. */
static uint64_t
read_sysctl (const char *path, uint64_t dflt)
{
  unsigned long long v;
  FILE *f = fopen (path, "re");
  int ok;

  if (f == NULL)
    return dflt;
  ok = fscanf (f, "%llu", &v) == 1;
  fclose (f);
  return ok ? v : dflt;
}

/* Free memory below which the kernel is reclaiming for its allocations:
 * twice its high watermark, estimated as Linux sets the watermarks
 * (mm/page_alloc.c: min = min_free_kbytes; low and high each add the
 * larger of min / 4 and total * watermark_scale_factor / 10000).
 */
static uint64_t
short_threshold (void)
{
  uint64_t min = read_sysctl ("/proc/sys/vm/min_free_kbytes", 65536) * 1024;
  uint64_t wsf = read_sysctl ("/proc/sys/vm/watermark_scale_factor", 10);
  uint64_t total = 0, gap;
  struct sysinfo si;

  if (sysinfo (&si) == 0)
    total = (uint64_t) si.totalram * si.mem_unit;
  gap = total / 10000 * wsf;
  if (gap < min / 4)
    gap = min / 4;
  return 2 * (min + 2 * gap);
}

/* Waiting while the refill thread makes progress is waiting for memory
 * that is there, being populated (a burst of writes drained the stock
 * faster than one thread refills it): that must not fail a write.  Nor
 * must a refill thread that merely did not get the CPU (a loaded machine,
 * a slow VM).  Only a refill thread that can get no memory, because the
 * machine is out of it (it waits in reclaim) or the growth gate refuses,
 * is a reason to fail, once it has added nothing for wait_ms: then the
 * kernel can pick another page or call the OOM killer instead of
 * stalling.
 */
bool
zs_reserve_wait (struct zs_pool *p, struct zs_wait *w)
{
  struct zs_reserve *r = &p->reserve;
  const struct timespec *until;
  unsigned cap_ms;

  if (!w->started) {
    w->started = true;
    w->seen = r->progress;
    __atomic_add_fetch (&r->empty, 1, __ATOMIC_RELAXED);
    deadline_after (&w->deadline, r->wait_ms);
    cap_ms = r->wait_ms * ZS_WAIT_MAX_FACTOR;
    deadline_after (&w->end, cap_ms > ZS_WAIT_MAX_MIN_MS ? cap_ms
                                                         : ZS_WAIT_MAX_MIN_MS);
  }
  else if (r->progress != w->seen) {
    w->seen = r->progress;
    deadline_after (&w->deadline, r->wait_ms);
  }
  kick (r);
  if (passed (&w->end))
    return false;
  if (passed (&w->deadline)) {
    if (refill_stuck (r))
      return false;
    /* No progress, but the thread is not stuck: look again later, and
     * sleep meanwhile.  With a wait of 0 ms (or 1) the deadline would be
     * now, the timed wait would return at once, and the request would
     * spin on the pool's locks for as long as the refill takes.
     */
    deadline_after (&w->deadline, r->wait_ms > ZS_WAIT_POLL_MS
                                  ? r->wait_ms : ZS_WAIT_POLL_MS);
  }
  until = before (&w->deadline, &w->end) ? &w->deadline : &w->end;
  pthread_cond_timedwait (&r->added, &p->page_lock, until);
  return true;
}

void
zs_reserve_fail (struct zs_pool *p)
{
  __atomic_add_fetch (&p->reserve.failed, 1, __ATOMIC_RELAXED);
}

/* Fault in a block's pages, writable.  MADV_POPULATE_WRITE does it in one
 * call; before Linux 5.14 it is EINVAL and we touch each page instead.
 * Under mlockall (MCL_ONFAULT) either way locks them.  Returns -1 (errno
 * ENOMEM, or what madvise said) if the kernel could not populate them.
 */
static int
block_populate (char *base)
{
  static bool no_populate;
  size_t i;

  while (!__atomic_load_n (&no_populate, __ATOMIC_RELAXED)) {
    if (madvise (base, ZS_BLOCK_BYTES, MADV_POPULATE_WRITE) == 0)
      return 0;
    if (errno == EINTR)
      continue;
    if (errno != EINVAL)
      return -1;
    __atomic_store_n (&no_populate, true, __ATOMIC_RELAXED);
  }
  for (i = 0; i < ZS_BLOCK_BYTES; i += ZS_PAGE_SIZE)
    ((volatile char *) base)[i] = 0;
  return 0;
}

/* Ask the pool's growth gate (zpool_set_grow_gate) whether taking more
 * memory is allowed now.  page_lock NOT held.
 */
static bool
gate_allows (struct zs_pool *p)
{
  struct zpool *pool = &p->base;

  return pool->grow_fn == NULL ||
    pool->grow_fn (pool->grow_opaque,
                   __atomic_load_n (&p->total_pages, __ATOMIC_RELAXED)
                   * ZS_PAGE_SIZE) == 0;
}

/* Populate virgin blocks until the whole free blocks hold the reserve's
 * size.  page_lock held; dropped around each populate.  Returns the number
 * of blocks added, or -1 if none could be added for want of memory.
 */
static int
refill (struct zs_pool *p)
{
  struct zs_reserve *r = &p->reserve;
  struct zs_block *b;
  struct zs_arena *dead;
  int added = 0, failed = 0;
  uint64_t since_gate = UINT64_MAX;

  while (!r->stopping && p->whole_blocks * ZS_BLOCK_PAGES < r->pages) {
    /* The gate reads files: ask it once per ZPOOL_GROW_STEP. */
    if (since_gate >= ZPOOL_GROW_STEP) {
      pthread_mutex_unlock (&p->page_lock);
      failed = !gate_allows (p);
      pthread_mutex_lock (&p->page_lock);
      if (failed)
        break;
      since_gate = 0;
    }
    b = zs_block_take_virgin (p);
    if (b == NULL) {
      failed = 1;
      break;
    }
    pthread_mutex_unlock (&p->page_lock);
    failed = block_populate (b->base) == -1;
    /* A populate that failed half way leaves some pages populated. */
    if (failed)
      zs_pages_discard (b->base, ZS_BLOCK_BYTES);
    pthread_mutex_lock (&p->page_lock);
    if (failed) {
      dead = zs_block_make_virgin (p, b);
      if (dead) {
        pthread_mutex_unlock (&p->page_lock);
        zs_arena_unmap (dead);
        pthread_mutex_lock (&p->page_lock);
      }
      break;
    }
    zs_block_add_free (p, b);
    r->progress++;
    added++;
    since_gate += ZS_BLOCK_BYTES;
    /* Waiters can go on as soon as there is one block. */
    pthread_cond_broadcast (&r->added);
  }
  if (added > 0)
    __atomic_add_fetch (&r->refills, 1, __ATOMIC_RELAXED);
  /* Stuck for waiters: a round that wanted memory and got none. */
  r->failing = added == 0 && failed;
  return added == 0 && failed ? -1 : added;
}

/* Give whole free blocks back to the OS while the free pages exceed the
 * size by half, keeping the whole free blocks at the size or more (the
 * free pages in partly used blocks cannot be given back, and counting
 * them alone would make trim and refill undo each other).  page_lock
 * held; dropped around each release.
 */
static void
trim (struct zs_pool *p)
{
  struct zs_reserve *r = &p->reserve;
  struct zs_block *b;
  struct zs_arena *dead;

  while (!r->stopping &&
         p->free_pages > r->pages + r->pages / 2 &&
         p->whole_blocks > 0 &&
         (p->whole_blocks - 1) * ZS_BLOCK_PAGES >= r->pages &&
         (b = zs_block_take_whole (p)) != NULL) {
    pthread_mutex_unlock (&p->page_lock);
    if (zs_pages_discard (b->base, ZS_BLOCK_BYTES) == -1) {
      /* The pages may be gone or not: keep the block out of use. */
      pthread_mutex_lock (&p->page_lock);
      break;
    }
    pthread_mutex_lock (&p->page_lock);
    dead = zs_block_make_virgin (p, b);
    if (dead) {
      pthread_mutex_unlock (&p->page_lock);
      zs_arena_unmap (dead);
      pthread_mutex_lock (&p->page_lock);
    }
  }
}

static void *
refill_thread (void *arg)
{
  struct zs_pool *p = arg;
  struct zs_reserve *r = &p->reserve;
  struct timespec when;
  uint64_t ready;

  pthread_setname_np (pthread_self (), "zram-reserve");
  pthread_mutex_lock (&p->page_lock);
  while (!r->stopping) {
    if (!r->kicked) {
      deadline_after (&when, REFILL_PERIOD_MS);
      pthread_cond_timedwait (&r->wake, &p->page_lock, &when);
    }
    r->kicked = false;
    if (r->stopping)
      break;
    __atomic_store_n (&r->busy, true, __ATOMIC_RELAXED);
    refill (p);
    trim (p);
    pthread_mutex_unlock (&p->page_lock);
    ready = __atomic_load_n (&p->table_ready, __ATOMIC_RELAXED);
    zs_handle_prefault (p, r->table_margin);
    pthread_mutex_lock (&p->page_lock);
    if (__atomic_load_n (&p->table_ready, __ATOMIC_RELAXED) != ready)
      r->progress++;
    __atomic_store_n (&r->busy, false, __ATOMIC_RELAXED);
    /* Also after a refill that failed: waiters check their deadline. */
    pthread_cond_broadcast (&r->added);
  }
  pthread_mutex_unlock (&p->page_lock);
  return NULL;
}

int
zs_set_reserve (struct zpool *pool, uint64_t bytes, unsigned wait_ms)
{
  struct zs_pool *p = POOL (pool);
  struct zs_reserve *r = &p->reserve;
  pthread_condattr_t attr;
  uint64_t blocks = (bytes + ZS_BLOCK_BYTES - 1) / ZS_BLOCK_BYTES;

  /* Pages taken before the reserve was set may be unpopulated. */
  if (r->pages != 0 || p->arenas_avail != NULL || p->arenas_full != NULL) {
    errno = EINVAL;
    return -1;
  }
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&r->added, &attr);
  pthread_cond_init (&r->wake, &attr);
  pthread_condattr_destroy (&attr);
  r->pages = blocks * ZS_BLOCK_PAGES;
  r->low = (blocks + 1) / 2 * ZS_BLOCK_PAGES;
  r->wait_ms = wait_ms;
  r->table_margin = r->pages * TABLE_MARGIN_PER_PAGE;
  if (r->table_margin < ZS_NR_STRIPES * ZS_HANDLE_BATCH * 4)
    r->table_margin = ZS_NR_STRIPES * ZS_HANDLE_BATCH * 4;
  return 0;
}

int
zs_reserve_start (struct zpool *pool)
{
  struct zs_pool *p = POOL (pool);
  struct zs_reserve *r = &p->reserve;
  sigset_t all, old;
  int err;

  if (r->pages == 0 || r->running) {
    errno = EINVAL;
    return -1;
  }
  r->short_bytes = short_threshold ();
  /* Fill it now, where a failure can be reported.  All of it: a reserve
   * filled only in part (the address space or the growth gate ran out
   * half way) would start short, and its refill thread, which gets no
   * more memory than this call did, would fail writes from the first
   * burst on; the caller asked for a size and is told it cannot have it.
   */
  pthread_mutex_lock (&p->page_lock);
  refill (p);
  err = p->whole_blocks * ZS_BLOCK_PAGES < r->pages;
  pthread_mutex_unlock (&p->page_lock);
  if (err || zs_handle_prefault (p, r->table_margin) == -1) {
    errno = ENOMEM;
    return -1;
  }
  /* Signals belong to the application's threads, not to ours. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  err = pthread_create (&r->thread, NULL, refill_thread, p);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err != 0) {
    errno = err == EAGAIN ? ENOMEM : err;
    return -1;
  }
  r->running = true;
  return 0;
}

void
zs_reserve_stop (struct zs_pool *p)
{
  struct zs_reserve *r = &p->reserve;

  if (r->pages == 0)
    return;
  if (r->running) {
    pthread_mutex_lock (&p->page_lock);
    r->stopping = true;
    pthread_cond_signal (&r->wake);
    pthread_mutex_unlock (&p->page_lock);
    pthread_join (r->thread, NULL);
    r->running = false;
  }
  pthread_cond_destroy (&r->added);
  pthread_cond_destroy (&r->wake);
}
