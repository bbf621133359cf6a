/* zpool_alloc_limited is a hard cap (cases 05, 12): threads allocating
 * objects of every size against a limit never take total_bytes past it,
 * not even for a moment (a watcher samples it throughout); refusals are
 * ENOSPC and take nothing; frees let allocation in again.
 * Both pools.  Run under TSan for the concurrency claim.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "zram/zpool.h"
#include "check.h"

#define THREADS 4
#define PER_THREAD 2000
#define LIMIT (UINT64_C(1) << 20)

static struct zpool *pool;
static int done;

struct worker {
  unsigned long long seed;
  zpool_handle h[PER_THREAD];
  size_t n, refused;
};

static void *
worker (void *arg)
{
  struct worker *w = arg;

  for (int i = 0; i < PER_THREAD; ++i) {
    size_t size = 1 + test_rand (&w->seed) % ZPOOL_MAX_OBJECT;
    zpool_handle h;

    errno = 0;
    h = zpool_alloc_limited (pool, size, LIMIT);
    if (h == 0) {
      CHECK (errno == ENOSPC);
      w->refused++;
      continue;
    }
    memset (zpool_map (pool, h, ZPOOL_MAP_WO), 0xa5, size);
    zpool_unmap (pool, h);
    w->h[w->n++] = h;
    /* Some churn: frees let others in under the limit. */
    if (test_rand (&w->seed) % 4 == 0)
      zpool_free (pool, w->h[--w->n]);
  }
  return NULL;
}

static void *
watcher (void *arg)
{
  (void) arg;
  while (!__atomic_load_n (&done, __ATOMIC_ACQUIRE))
    CHECK (zpool_total_bytes (pool) <= LIMIT);
  return NULL;
}

static void
run (enum zpool_kind kind)
{
  static struct worker w[THREADS];
  pthread_t t[THREADS], wt;
  size_t refused = 0, live = 0;

  pool = zpool_create (kind);
  CHECK (pool != NULL);
  __atomic_store_n (&done, 0, __ATOMIC_RELAXED);
  CHECK (pthread_create (&wt, NULL, watcher, NULL) == 0);
  for (int i = 0; i < THREADS; ++i) {
    memset (&w[i], 0, sizeof w[i]);
    w[i].seed = 1000 + i;
    CHECK (pthread_create (&t[i], NULL, worker, &w[i]) == 0);
  }
  for (int i = 0; i < THREADS; ++i) {
    pthread_join (t[i], NULL);
    refused += w[i].refused;
    live += w[i].n;
  }
  __atomic_store_n (&done, 1, __ATOMIC_RELEASE);
  pthread_join (wt, NULL);
  /* 8000 objects of 2 KiB on average cannot fit in 1 MiB. */
  CHECK (refused > 0 && live > 0);
  CHECK (zpool_total_bytes (pool) <= LIMIT);

  /* A limit below the current use: the pool may only shrink. */
  uint64_t before = zpool_total_bytes (pool);
  errno = 0;
  CHECK (zpool_alloc_limited (pool, ZPOOL_MAX_OBJECT, 1) == 0 && errno == ENOSPC);
  CHECK (zpool_total_bytes (pool) == before);

  /* Free everything; without a limit, allocation works. */
  for (int i = 0; i < THREADS; ++i)
    while (w[i].n > 0)
      zpool_free (pool, w[i].h[--w[i].n]);
  zpool_handle h = zpool_alloc_limited (pool, 100, 0);
  CHECK (h != 0);
  zpool_free (pool, h);
  CHECK (zpool_alloc_limited (pool, 0, LIMIT) == 0 && errno == EINVAL);
  zpool_destroy (pool);
  printf ("test-zpool-limit: pool=%s ok (%zu refused)\n",
          zpool_kind_name (kind), refused);
}

int
main (void)
{
  run (ZPOOL_ZS);
  run (ZPOOL_MALLOC);
  return 0;
}
