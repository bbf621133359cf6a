/* nbdkit-zram: the RCU flavour and the publication of device state.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * We use liburcu's "bp" flavour: nbdkit creates and recycles the threads
 * that call us, and bp registers a thread on its first read lock without
 * any help.  We call the library's read lock rather than inlining it
 * with _LGPL_SOURCE: the inline version trips UBSan's alignment check
 * inside liburcu's own header (its reader records are declared 128-byte
 * aligned but not allocated so), and the call costs only a few
 * nanoseconds against microseconds per request.
 *
 * The published pointer is stored with release and loaded with acquire
 * semantics through GCC atomics rather than rcu_assign_pointer /
 * rcu_dereference: the ordering is the same (stronger on weakly ordered
 * CPUs than dereference needs), and ThreadSanitizer understands it.
 *
 * ThreadSanitizer cannot see the grace period, which is computed inside the
 * uninstrumented liburcu.  rcu_reader_done / rcu_grace_period_done tell it
 * the truth: everything a reader did before leaving its read-side section
 * happens before whatever the updater does after synchronize_rcu returns.
 */
#ifndef ZRAM_RCU_H
#define ZRAM_RCU_H

#include <urcu/urcu-bp.h>

#if defined(__SANITIZE_THREAD__)
#define ZRAM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZRAM_TSAN 1
#endif
#endif

#ifdef ZRAM_TSAN
extern void __tsan_acquire (void *addr);
extern void __tsan_release (void *addr);
#define rcu_reader_done(sync) __tsan_release (sync)
#define rcu_grace_period_done(sync) __tsan_acquire (sync)
#else
#define rcu_reader_done(sync) ((void) (sync))
#define rcu_grace_period_done(sync) ((void) (sync))
#endif

#endif /* ZRAM_RCU_H */
