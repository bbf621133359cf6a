/* bench-rcu-read: what the read side of the device costs per request.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Every data request enters a read-side section, loads the published state
 * and leaves again (zram.c meta_get / meta_put).  This measures that
 * pattern with liburcu-bp called as a library function (as src/rcu.h
 * does), with its fast path inlined (_LGPL_SOURCE), against the same
 * pattern guarded by a pthread rwlock taken for reading, and against no
 * guard at all, on 1 and 2 threads, in one run.  It also
 * measures how long urcu_bp_synchronize_rcu (the wait in zram_reset) takes
 * while readers run flat out.
 *
 * Usage: bench-rcu-read [--smoke] [ITERATIONS]
 *   ITERATIONS per thread per case (default 50000000; --smoke: 2000000).
 * Output: one line per case, "case threads ns/op", ns/op = wall time of
 * the case divided by the iterations of one thread (the latency one
 * request pays; with 2 threads, contention shows as a higher figure).
 */
#define _LGPL_SOURCE 1
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu/urcu-bp.h>

/* The library's out-of-line entry points, which the header hides behind
 * the inline versions when _LGPL_SOURCE is defined.
 */
extern void lib_read_lock (void) __asm__ ("urcu_bp_read_lock");
extern void lib_read_unlock (void) __asm__ ("urcu_bp_read_unlock");

enum guard { GUARD_NONE, GUARD_URCU_BP_CALL, GUARD_URCU_BP_INLINE,
             GUARD_RWLOCK, NR_GUARDS };
static const char *guard_name[] = {
  "none", "urcu-bp", "urcu-bp-inline", "rwlock-rd"
};

/* The "device state" every request reads through the published pointer. */
struct state {
  uint64_t disksize;
  uint64_t pad[7];
};

static struct state the_state = { .disksize = 1 << 30 };
static struct state *published = &the_state;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;

static uint64_t iterations;
static pthread_barrier_t start_barrier;
static atomic_bool stop_readers;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct worker {
  pthread_t thread;
  enum guard guard;
  uint64_t sum;                 /* keeps the loads alive */
};

static void *
run_worker (void *arg)
{
  struct worker *w = arg;
  uint64_t i, sum = 0;

  /* Register before timing starts (bp does it on the first lock anyway). */
  urcu_bp_register_thread ();
  pthread_barrier_wait (&start_barrier);
  switch (w->guard) {
  case GUARD_NONE:
    for (i = 0; i < iterations; i++) {
      struct state *s = __atomic_load_n (&published, __ATOMIC_ACQUIRE);
      sum += s->disksize + i;
      __asm__ volatile ("" ::: "memory");
    }
    break;
  case GUARD_URCU_BP_CALL:
    for (i = 0; i < iterations; i++) {
      struct state *s;

      lib_read_lock ();
      s = __atomic_load_n (&published, __ATOMIC_ACQUIRE);
      sum += s->disksize + i;
      lib_read_unlock ();
    }
    break;
  case GUARD_URCU_BP_INLINE:
    for (i = 0; i < iterations; i++) {
      struct state *s;

      urcu_bp_read_lock ();
      s = __atomic_load_n (&published, __ATOMIC_ACQUIRE);
      sum += s->disksize + i;
      urcu_bp_read_unlock ();
    }
    break;
  case GUARD_RWLOCK:
    for (i = 0; i < iterations; i++) {
      struct state *s;

      pthread_rwlock_rdlock (&rwlock);
      s = __atomic_load_n (&published, __ATOMIC_ACQUIRE);
      sum += s->disksize + i;
      pthread_rwlock_unlock (&rwlock);
    }
    break;
  case NR_GUARDS:
    abort ();
  }
  w->sum = sum;
  return NULL;
}

static double
run_case (enum guard guard, int nthreads)
{
  struct worker w[2];
  double t0, t1;
  int i;

  pthread_barrier_init (&start_barrier, NULL, nthreads + 1);
  for (i = 0; i < nthreads; i++) {
    w[i].guard = guard;
    if (pthread_create (&w[i].thread, NULL, run_worker, &w[i]) != 0) {
      perror ("pthread_create");
      exit (1);
    }
  }
  pthread_barrier_wait (&start_barrier);
  t0 = now ();
  for (i = 0; i < nthreads; i++)
    pthread_join (w[i].thread, NULL);
  t1 = now ();
  pthread_barrier_destroy (&start_barrier);
  if (w[0].sum == 42)
    putchar (' ');              /* never: defeats dead-code elimination */
  return (t1 - t0) * 1e9 / (double) iterations;
}

/* Readers that loop until told to stop, for the grace-period timing. */
static void *
busy_reader (void *arg)
{
  uint64_t n = 0;

  (void) arg;
  while (!atomic_load_explicit (&stop_readers, memory_order_relaxed)) {
    struct state *s;

    urcu_bp_read_lock ();
    s = __atomic_load_n (&published, __ATOMIC_ACQUIRE);
    n += s->disksize;
    urcu_bp_read_unlock ();
  }
  return (void *) (uintptr_t) n;
}

static double
time_synchronize (int nreaders, int rounds)
{
  pthread_t t[2];
  double t0, t1;
  int i;

  atomic_store (&stop_readers, false);
  for (i = 0; i < nreaders; i++)
    pthread_create (&t[i], NULL, busy_reader, NULL);
  t0 = now ();
  for (i = 0; i < rounds; i++)
    urcu_bp_synchronize_rcu ();
  t1 = now ();
  atomic_store (&stop_readers, true);
  for (i = 0; i < nreaders; i++)
    pthread_join (t[i], NULL);
  return (t1 - t0) * 1e6 / rounds;
}

int
main (int argc, char **argv)
{
  bool smoke = false;
  int i, threads, sync_rounds;
  double ns[NR_GUARDS][3];

  iterations = 50000000;
  for (i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--smoke") == 0) {
      smoke = true;
      iterations = 2000000;
    }
    else if (argv[i][0] >= '0' && argv[i][0] <= '9')
      iterations = strtoull (argv[i], NULL, 10);
    else {
      fprintf (stderr, "usage: %s [--smoke] [ITERATIONS]\n", argv[0]);
      return 1;
    }
  }
  if (iterations == 0)
    iterations = 1;
  sync_rounds = smoke ? 200 : 2000;

  printf ("# read-side cost per request, %llu iterations per thread\n",
          (unsigned long long) iterations);
  printf ("%-15s %7s %9s\n", "guard", "threads", "ns/op");
  for (threads = 1; threads <= 2; threads++) {
    enum guard g;

    for (g = GUARD_NONE; g < NR_GUARDS; g++) {
      ns[g][threads] = run_case (g, threads);
      printf ("%-15s %7d %9.2f\n", guard_name[g], threads, ns[g][threads]);
    }
  }
  printf ("# rwlock-rd / urcu-bp: %.1fx on 1 thread, %.1fx on 2 threads\n",
          ns[GUARD_RWLOCK][1] / ns[GUARD_URCU_BP_CALL][1],
          ns[GUARD_RWLOCK][2] / ns[GUARD_URCU_BP_CALL][2]);
  printf ("# rwlock-rd / urcu-bp-inline: %.1fx on 1 thread, %.1fx on 2 threads\n",
          ns[GUARD_RWLOCK][1] / ns[GUARD_URCU_BP_INLINE][1],
          ns[GUARD_RWLOCK][2] / ns[GUARD_URCU_BP_INLINE][2]);
  for (i = 0; i <= 2; i++)
    printf ("# urcu_bp_synchronize_rcu with %d busy reader%s: %.1f us\n",
            i, i == 1 ? "" : "s", time_synchronize (i, sync_rounds));

  /* Sanity for the smoke test: every figure is a positive number. */
  for (threads = 1; threads <= 2; threads++)
    for (i = 0; i < NR_GUARDS; i++)
      if (!(ns[i][threads] > 0)) {
        fprintf (stderr, "bench-rcu-read: bad timing\n");
        return 1;
      }
  return 0;
}
