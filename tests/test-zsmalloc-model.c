/* Unit test: long random sequences of alloc / write / read / free /
 * compact against a simple model, checking every object's bytes; first on
 * one thread (both pool kinds), then on several threads with compaction
 * and statistics readers running concurrently with alloc, free and map.
 *
 * Reproducible: the seed is printed; rerun with ZS_SEED=<seed>.  ZS_OPS
 * scales the length (operations per thread).
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zram/zpool.h"
#include "check.h"
#include "zpool-check.h"

#define SLOTS   2048            /* model objects per thread */

/* ThreadSanitizer runs this about 20 times slower; keep it to seconds. */
#if defined(__SANITIZE_THREAD__)
#define DEFAULT_OPS 40000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DEFAULT_OPS 40000
#endif
#endif
#ifndef DEFAULT_OPS
#define DEFAULT_OPS 100000
#endif
#define THREADS 3               /* mutator threads in the concurrent run */

struct obj {
  zpool_handle h;               /* 0 = no object */
  uint32_t size;
  uint32_t tag;                 /* seeds the contents */
};

struct model {
  struct zpool *pool;
  unsigned long long rng;
  struct obj objs[SLOTS];
  uint64_t live_bytes, live_objects;
  unsigned long ops;
  size_t huge;
};

/* Sizes a compressor would produce, with the edges over-represented. */
static uint32_t
pick_size (struct model *m)
{
  unsigned r = test_rand (&m->rng) % 100;

  if (r < 5)
    return 1 + test_rand (&m->rng) % 32;
  if (r < 10)
    return ZPOOL_MAX_OBJECT - test_rand (&m->rng) % 4;
  if (r < 15)
    return m->huge - 2 + test_rand (&m->rng) % 4;   /* huge-2 .. huge+1 */
  if (r < 25) {
    /* A multiple of the 16-byte step, or one byte either side. */
    uint32_t s = 16 * (1 + test_rand (&m->rng) % 256) + test_rand (&m->rng) % 3 - 1;
    return s > ZPOOL_MAX_OBJECT ? ZPOOL_MAX_OBJECT : s;
  }
  return 1 + test_rand (&m->rng) % ZPOOL_MAX_OBJECT;
}

static inline unsigned char
pattern (uint32_t tag, uint32_t i)
{
  uint32_t x = tag * 2654435761u + i * 40503u;
  return (unsigned char) (x >> 13 ^ x);
}

static void
write_obj (struct model *m, struct obj *o)
{
  unsigned char *p = zpool_map (m->pool, o->h, ZPOOL_MAP_WO);

  o->tag = (uint32_t) test_rand (&m->rng);
  for (uint32_t i = 0; i < o->size; i++)
    p[i] = pattern (o->tag, i);
  zpool_unmap (m->pool, o->h);
}

static void
check_obj (struct model *m, struct obj *o, bool linger)
{
  unsigned char *p = zpool_map (m->pool, o->h, ZPOOL_MAP_RO);

  for (uint32_t i = 0; i < o->size; i++)
    if (p[i] != pattern (o->tag, i)) {
      fprintf (stderr, "object %#" PRIx64 " size %" PRIu32 ": byte %" PRIu32
               " is %#x, want %#x\n", o->h, o->size, i, p[i],
               pattern (o->tag, i));
      abort ();
    }
  /* Keep it pinned a little, so compaction meets mapped objects. */
  if (linger)
    sched_yield ();
  zpool_unmap (m->pool, o->h);
}

/* One random step.  may_compact: this thread also compacts. */
static void
step (struct model *m, bool may_compact)
{
  struct obj *o = &m->objs[test_rand (&m->rng) % SLOTS];
  unsigned r = test_rand (&m->rng) % 100;

  m->ops++;
  if (o->h == 0) {
    if (r < 70) {
      o->size = pick_size (m);
      o->h = zpool_alloc (m->pool, o->size);
      CHECK (o->h != 0);
      write_obj (m, o);
      m->live_bytes += o->size;
      m->live_objects++;
    }
  }
  else if (r < 40) {
    check_obj (m, o, r < 5);
    zpool_free (m->pool, o->h);
    m->live_bytes -= o->size;
    m->live_objects--;
    o->h = 0;
  }
  else if (r < 55) {
    check_obj (m, o, false);
    write_obj (m, o);
  }
  else
    check_obj (m, o, r < 60);
  if (may_compact && m->ops % 5000 == 0)
    zpool_compact (m->pool);
}

static void
check_all (struct model *m)
{
  for (unsigned i = 0; i < SLOTS; i++)
    if (m->objs[i].h)
      check_obj (m, &m->objs[i], false);
}

static void
free_all (struct model *m)
{
  for (unsigned i = 0; i < SLOTS; i++)
    if (m->objs[i].h) {
      check_obj (m, &m->objs[i], false);
      zpool_free (m->pool, m->objs[i].h);
      m->objs[i].h = 0;
    }
  m->live_bytes = m->live_objects = 0;
}

static unsigned long long seed;
static unsigned long nops;

static void
run_single (enum zpool_kind kind)
{
  static struct model m;
  struct zpool_stats st;

  memset (&m, 0, sizeof m);
  m.pool = zpool_create (kind);
  CHECK (m.pool != NULL);
  m.rng = seed;
  m.huge = zpool_huge_class_size (m.pool);
  for (unsigned long i = 0; i < nops; i++) {
    step (&m, true);
    if (i % 20000 == 0) {
      zpool_get_stats (m.pool, &st);
      CHECK (st.live_objects == m.live_objects);
      CHECK (st.live_bytes == m.live_bytes);
      CHECK (st.total_bytes >= st.live_bytes);
      check_all (&m);
    }
  }
  zpool_compact (m.pool);
  check_all (&m);
  zpool_get_stats (m.pool, &st);
  printf ("%s single: %lu ops, %" PRIu64 " objects, total/live %.3f, "
          "%" PRIu64 " pages compacted\n", zpool_kind_name (kind), m.ops,
          st.live_objects, st.live_bytes ? (double) st.total_bytes / st.live_bytes
          : 0.0, st.pages_compacted);
  free_all (&m);
  check_all_returned (m.pool);
  zpool_destroy (m.pool);
}

/* --- concurrent run ------------------------------------------------------ */

static struct model tm[THREADS];
static int stop;                 /* atomic */
static unsigned long compactions, pages_released;

static void *
mutator (void *arg)
{
  struct model *m = arg;

  for (unsigned long i = 0; i < nops; i++)
    step (m, false);
  check_all (m);
  return NULL;
}

static void *
compactor (void *arg)
{
  struct zpool *pool = arg;
  struct zpool_stats st;

  while (!__atomic_load_n (&stop, __ATOMIC_RELAXED)) {
    pages_released += zpool_compact (pool);
    compactions++;
    zpool_get_stats (pool, &st);
    CHECK (st.total_bytes % 4096 == 0);
    sched_yield ();
  }
  return NULL;
}

static void
run_threads (void)
{
  struct zpool *pool = zpool_create (ZPOOL_ZS);
  pthread_t t[THREADS], c;
  struct zpool_stats st;
  uint64_t live_objects = 0, live_bytes = 0;

  CHECK (pool != NULL);
  for (unsigned i = 0; i < THREADS; i++) {
    memset (&tm[i], 0, sizeof tm[i]);
    tm[i].pool = pool;
    tm[i].rng = seed + i + 1;
    tm[i].huge = zpool_huge_class_size (pool);
  }
  CHECK (pthread_create (&c, NULL, compactor, pool) == 0);
  for (unsigned i = 0; i < THREADS; i++)
    CHECK (pthread_create (&t[i], NULL, mutator, &tm[i]) == 0);
  for (unsigned i = 0; i < THREADS; i++)
    CHECK (pthread_join (t[i], NULL) == 0);
  __atomic_store_n (&stop, 1, __ATOMIC_RELAXED);
  CHECK (pthread_join (c, NULL) == 0);

  for (unsigned i = 0; i < THREADS; i++) {
    live_objects += tm[i].live_objects;
    live_bytes += tm[i].live_bytes;
  }
  zpool_get_stats (pool, &st);
  CHECK (st.live_objects == live_objects);
  CHECK (st.live_bytes == live_bytes);
  /* With nothing mapped, a final compaction packs every class fully. */
  zpool_compact (pool);
  for (unsigned i = 0; ; i++) {
    struct zpool_class_stats cs;

    if (zpool_class_stats (pool, i, &cs) == -1)
      break;
    CHECK (cs.spans == (cs.objects + cs.objs_per_span - 1) / cs.objs_per_span);
  }
  printf ("zs threads: %d x %lu ops, %lu compactions released %lu pages, "
          "%" PRIu64 " objects left\n", THREADS, nops, compactions,
          pages_released, st.live_objects);
  for (unsigned i = 0; i < THREADS; i++)
    free_all (&tm[i]);
  check_all_returned (pool);
  zpool_destroy (pool);
}

/* --- one thread allocates, another frees ------------------------------ */

#define RING 1024

static zpool_handle ring[RING];
static unsigned long ring_head, ring_tail;   /* atomic */

static void *
producer (void *arg)
{
  struct zpool *pool = arg;
  unsigned long long r = seed;

  for (unsigned long i = 0; i < nops; i++) {
    zpool_handle h = zpool_alloc (pool, 1 + test_rand (&r) % ZPOOL_MAX_OBJECT);

    CHECK (h != 0);
    while (i - __atomic_load_n (&ring_tail, __ATOMIC_ACQUIRE) >= RING)
      sched_yield ();
    ring[i % RING] = h;
    __atomic_store_n (&ring_head, i + 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void *
consumer (void *arg)
{
  struct zpool *pool = arg;

  for (unsigned long i = 0; i < nops; i++) {
    while (__atomic_load_n (&ring_head, __ATOMIC_ACQUIRE) <= i)
      sched_yield ();
    zpool_free (pool, ring[i % RING]);
    __atomic_store_n (&ring_tail, i + 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

/* Handles freed by one thread must be reused by another: the handle table
 * (in meta_bytes) may not grow with the number of allocations.
 */
static void
run_producer_consumer (void)
{
  struct zpool *pool = zpool_create (ZPOOL_ZS);
  struct zpool_stats st0, st1;
  pthread_t a, b;

  CHECK (pool != NULL);
  zpool_get_stats (pool, &st0);
  CHECK (pthread_create (&a, NULL, producer, pool) == 0);
  CHECK (pthread_create (&b, NULL, consumer, pool) == 0);
  CHECK (pthread_join (a, NULL) == 0);
  CHECK (pthread_join (b, NULL) == 0);
  zpool_compact (pool);
  zpool_get_stats (pool, &st1);
  printf ("producer/consumer: %lu objects, meta_bytes %" PRIu64 " -> %"
          PRIu64 "\n", nops, st0.meta_bytes, st1.meta_bytes);
  CHECK (st1.live_objects == 0 && st1.total_bytes == 0);
  /* One table chunk (16 KiB entries) covers far more than RING + stripes
   * of cached handles; without reuse, nops handles would need nops / 16384.
   */
  CHECK (st1.meta_bytes - st0.meta_bytes <= 2 * 16384 * 16);
  zpool_destroy (pool);
}

int
main (void)
{
  const char *s = getenv ("ZS_SEED");
  const char *n = getenv ("ZS_OPS");

  seed = s ? strtoull (s, NULL, 0) : 0x5eed2026;
  nops = n ? strtoul (n, NULL, 0) : DEFAULT_OPS;
  printf ("seed %#llx, %lu ops (ZS_SEED, ZS_OPS to change)\n", seed, nops);
  run_single (ZPOOL_ZS);
  run_single (ZPOOL_MALLOC);
  run_threads ();
  run_producer_consumer ();
  printf ("ok\n");
  return 0;
}
