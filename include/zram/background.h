/* nbdkit-zram: one thread for a device's background work.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Work done behind the requests' backs (compaction, recompression of idle
 * pages, and whatever comes next) runs as policies of one background
 * thread.  A policy is a round function, a period and a CPU budget:
 *
 *   zram_bg_create          the framework, no thread yet
 *   zram_bg_add             register a policy (before zram_bg_start)
 *   zram_bg_start           start the thread (after nbdkit's fork: a
 *                           thread does not survive fork)
 *   zram_bg_destroy         stop and join the thread (at most the end of
 *                           the round in progress), release every policy
 *
 * The thread runs one round at a time, never two policies at once.  A
 * policy's round is due every period_ms (or at once after zram_bg_kick).
 *
 * The budget is a share of one core, in per mille, measured with the
 * thread's own CPU clock (CLOCK_THREAD_CPUTIME_ID), not wall time: each
 * policy has a credit of CPU time that grows by budget_pm / 1000 of the
 * wall time that passes, up to one period's worth (and at least
 * ZRAM_BG_MIN_BURST_NS), and each round spends what it uses.  A round may
 * start only with credit left, and it is given that credit as its
 * allowance: the round function asks zram_bg_round_over between small
 * batches and stops when it says so.  A round that overruns (one batch
 * too many) leaves the credit negative, and the policy waits until it is
 * repaid.  So over any window of W seconds a policy uses at most
 * budget_pm / 1000 * W seconds of CPU plus one period's worth plus one
 * batch.  budget_pm 1000 means no limit (the round is never told to stop
 * for CPU).
 *
 * The thread runs at the nice value given to zram_bg_create (Linux
 * nice applies per thread).  A niced thread that holds a lock a request
 * needs can be kept off the CPU by other requests (priority inversion):
 * policies must hold slot and pool locks only for short steps
 * (zram_recompress and zram_compact do), never across compression; and
 * budgets, not priority, are what keep policies out of the requests' way
 * (the plugin uses nice 0: nbdkit-plugin/background-params.h says why).
 *
 * Thread-safety: zram_bg_kick, zram_bg_counts and zram_bg_find may be
 * called from any thread at any time between create and destroy; the
 * others are not thread-safe against each other (call them from one
 * thread, in the order above).
 */
#ifndef ZRAM_BACKGROUND_H
#define ZRAM_BACKGROUND_H

#include <stdbool.h>
#include <stdint.h>

/* The thread's name (/proc/PID/task/TID/comm), for tools that measure it. */
#define ZRAM_BG_THREAD_NAME "zram-bg"

/* Most policies one framework runs. */
#define ZRAM_BG_MAX_POLICIES 8

/* The budget that means "no limit" (all of one core). */
#define ZRAM_BG_UNLIMITED 1000

/* The smallest credit a policy can save up, so that a short period with a
 * small budget can still afford one batch of work: 20 ms.
 */
#define ZRAM_BG_MIN_BURST_NS (INT64_C (20) * 1000000)

struct zram_bg;
struct zram_bg_round;

/* A round: do some work, asking zram_bg_round_over (r) between steps.
 * Returns the units of work done (>= 0: the round counts; pages, for the
 * policies we have), or -1 if there was nothing to do (the round is not
 * counted, but its CPU time is).
 */
typedef int64_t (*zram_bg_round_fn) (void *opaque, struct zram_bg_round *r);

struct zram_bg_policy {
  const char *name;           /* short, static storage: "compact" */
  unsigned period_ms;         /* >= 1: between the starts of rounds */
  unsigned budget_pm;         /* 1..ZRAM_BG_UNLIMITED: per mille of one
                                 core */
  zram_bg_round_fn round;
  void *opaque;               /* passed to round and release */
  void (*release) (void *opaque); /* called by zram_bg_destroy (and by
                                 zram_bg_add when it fails); may be NULL */
};

/* Counters of one policy since zram_bg_start. */
struct zram_bg_counts {
  uint64_t rounds;            /* rounds that did work (returned >= 0) */
  uint64_t work;              /* units those rounds reported (pages) */
  uint64_t cpu_ns;            /* thread CPU time of all its rounds */
  uint64_t throttled;         /* times a due round waited for credit */
  uint64_t urgent;            /* rounds marked with zram_bg_round_urgent */
  uint64_t yielded;           /* rounds marked with zram_bg_round_yielded */
};

/* Make a framework whose thread will run at nice value nice (-20..19; it
 * can only raise its own nice value without privilege, so a negative one
 * may be refused: the thread then keeps the nice value it inherits).
 * Returns NULL with errno EINVAL or ENOMEM.
 */
extern struct zram_bg *zram_bg_create (int nice);

/* Register a copy of *p.  Returns the policy's id (0, 1, ...), or -1 with
 * errno EINVAL (bad period, budget or name, NULL round, or the thread is
 * already started) or ENOSPC (ZRAM_BG_MAX_POLICIES already).  On failure
 * p->release (p->opaque) has been called, so the caller never leaks it.
 */
extern int zram_bg_add (struct zram_bg *bg, const struct zram_bg_policy *p);

/* Start the thread.  It makes its thread context (include/zram/thread-ctx.h)
 * before this returns.  Returns 0, or -1 with errno EINVAL (started
 * already), the error of pthread_create, or ENOMEM (no thread context).
 */
extern int zram_bg_start (struct zram_bg *bg);

/* Stop the thread (if started), release each policy and free bg.  NULL
 * is accepted.
 */
extern void zram_bg_destroy (struct zram_bg *bg);

/* Make policy id due now (it still needs credit). */
extern void zram_bg_kick (struct zram_bg *bg, int id);

/* Copy policy id's counters into *out. */
extern void zram_bg_counts (struct zram_bg *bg, int id,
                            struct zram_bg_counts *out);

/* The id of the policy named name, or -1 (bg NULL, or no such policy). */
extern int zram_bg_find (struct zram_bg *bg, const char *name);

/* --- for round functions ------------------------------------------------ */

/* True once the round has used its CPU allowance, or the framework is
 * stopping: finish the step in hand and return.
 */
extern bool zram_bg_round_over (struct zram_bg_round *r);

/* The round's CPU allowance in nanoseconds (INT64_MAX without a limit). */
extern int64_t zram_bg_round_allowance_ns (const struct zram_bg_round *r);

/* Thread CPU time the round has used so far, in nanoseconds. */
extern int64_t zram_bg_round_cpu_ns (const struct zram_bg_round *r);

/* Count this round as urgent (in zram_bg_counts.urgent). */
extern void zram_bg_round_urgent (struct zram_bg_round *r);

/* Count this round as one that gave way to requests (in
 * zram_bg_counts.yielded): it stopped, or did not start, because the
 * device was serving them.
 */
extern void zram_bg_round_yielded (struct zram_bg_round *r);

/* --- the device's framework ---------------------------------------------- */

struct zram;

/* Tell the device which framework runs its policies, so that what reports
 * the device's state (the control socket's "stats", include/zram/zctl.h)
 * can report the policies too; NULL forgets it.  The pointer is only
 * stored: the caller keeps bg alive while anything may still ask for it
 * (stop the control socket before zram_bg_destroy).  Thread-safe.
 */
extern void zram_set_background (struct zram *zram, struct zram_bg *bg);

/* The framework last set for zram, or NULL. */
extern struct zram_bg *zram_background (struct zram *zram);

#endif /* ZRAM_BACKGROUND_H */
