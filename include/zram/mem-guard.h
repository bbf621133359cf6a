/* nbdkit-zram: keep the pool below the memory limit of the process's cgroup.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * In a memory cgroup (a systemd unit with MemoryMax=, a container), an
 * allocation does not fail at the limit: malloc and mmap succeed, and the
 * page fault that touches the memory, at the limit, reclaims and then
 * wakes the OOM killer, which kills the server, and all data is lost.  So
 * nothing can catch the failure; it must be avoided.  A mem guard gives
 * the device an automatic ceiling: a pool growth gate (zpool_set_grow_gate)
 * that refuses growth, with ENOMEM, once the cgroup's usage is within a
 * margin of its limit.  Writes then fail cleanly; freeing data (trim)
 * makes room again.
 *
 * Where the limit comes from: /proc/self/cgroup names the process's
 * cgroup; the guard reads, for it and each ancestor, the limit and usage
 * (cgroup v2: memory.max, memory.current under the unified hierarchy,
 * at the cgroup root or its "unified" subdirectory; v1: memory.
 * limit_in_bytes, memory.usage_in_bytes under "memory").  The room is the
 * least limit - usage among them.  It reads them each time it is asked,
 * which the pool does once per ZPOOL_GROW_STEP of growth, so a limit
 * changed at run time, or a move to another cgroup, is followed.  Without
 * a cgroup limit (or files it cannot read) it allows everything.
 *
 * Usage counts everything charged to the cgroup, page cache included, so
 * the guard errs on the side of refusing early.  It cannot see memory that
 * other processes of the cgroup are about to take.
 *
 * Thread safety: all functions but destroy may be called concurrently.
 * They allocate nothing after create (files are read into stack buffers).
 */
#ifndef ZRAM_MEM_GUARD_H
#define ZRAM_MEM_GUARD_H

#include <stdint.h>

/* Room left below the limit that growth must not take: the larger of
 * ZRAM_MEM_GUARD_MARGIN_MIN and the limit / ZRAM_MEM_GUARD_MARGIN_DIV.  It
 * is for everything else the server allocates (request buffers, per-thread
 * contexts, stacks touched) and for the pool's last step.
 */
#define ZRAM_MEM_GUARD_MARGIN_MIN (UINT64_C (32) << 20)
#define ZRAM_MEM_GUARD_MARGIN_DIV 16

/* Longest path the guard builds. */
#define ZRAM_MEM_GUARD_PATH_MAX 4096

struct zram_mem_guard;

/* Create a guard.  proc_cgroup (default "/proc/self/cgroup") and
 * cgroup_root (default "/sys/fs/cgroup") may be NULL; tests pass a fake
 * tree.  Reads nothing yet.  Returns NULL with errno ENOMEM, or EINVAL if a
 * path is longer than ZRAM_MEM_GUARD_PATH_MAX / 2.
 */
extern struct zram_mem_guard *zram_mem_guard_create (const char *proc_cgroup,
                                                     const char *cgroup_root);
extern void zram_mem_guard_destroy (struct zram_mem_guard *guard);

/* Read the limits now.  Sets *room to the least limit - usage (0 if usage
 * is over a limit) and *limit to the limit that gives it, and returns 1;
 * or returns 0, leaving both alone, if no limit applies.
 */
extern int zram_mem_guard_room (const struct zram_mem_guard *guard,
                                uint64_t *room, uint64_t *limit);

/* A zpool_grow_fn (opaque is the guard): 0 if growing by ZPOOL_GROW_STEP
 * leaves at least the margin free below every limit, else -1 with errno
 * ENOMEM.  total_bytes is unused (the cgroup's usage already counts it).
 */
extern int zram_mem_guard_gate (void *guard, uint64_t total_bytes);

#endif /* ZRAM_MEM_GUARD_H */
