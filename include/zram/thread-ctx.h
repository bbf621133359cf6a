/* nbdkit-zram: the per-thread context of the device's callers.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Every thread that calls into the device needs a little memory of its
 * own: two scratch pages (compressor output, read-modify-write of partial
 * pages), the codec's scratch state, and a registration as an RCU reader
 * with liburcu-bp.  Left to the C runtime, all of it would be allocated
 * lazily at a moment where failure kills the whole server:
 *
 *   - `__thread` variables of a dlopened module (the plugin, liburcu-bp) get
 *     their memory on the thread's first access, and glibc aborts the
 *     process when that malloc fails ("cannot allocate memory for
 *     thread-local data: ABORT");
 *   - liburcu-bp registers a thread on its first read lock, and calls
 *     abort() when it cannot grow its reader registry.
 *
 * So the device keeps no thread-local storage.  Each thread gets one
 * context, allocated explicitly and found through a pthread key; the key's
 * destructor frees it when the thread exits.  zram_thread_ctx_get makes
 * the context on a thread's first call, and makes the RCU registration
 * there too, after checking that the memory it needs is available (see
 * src/thread-ctx.c for how, and for what risk remains).  When memory is
 * short it fails with ENOMEM: the one request that needed it fails, the
 * server goes on, and the next call tries again.
 *
 * The core's entry points (include/zram/zram.h) call zram_thread_ctx_get
 * themselves; request threads need not.  Threads that serve the device for
 * long (the control socket, the compactor) call it when they start, so
 * that they can refuse to start, with an error their starter reports,
 * instead of failing later.
 *
 * Thread safety: zram_thread_ctx_get is thread-safe; a context belongs to
 * its thread and must not be handed to another.
 */
#ifndef ZRAM_THREAD_CTX_H
#define ZRAM_THREAD_CTX_H

struct zcomp_scratch;

struct zram_thread_ctx {
  unsigned char *page;          /* ZRAM_THREAD_CTX_PAGE bytes: read-modify-write */
  unsigned char *cbuf;          /* ZRAM_THREAD_CTX_PAGE bytes: compressor output */
  struct zcomp_scratch *codec;  /* this thread's codec state */
  unsigned char *group;         /* ZRAM_THREAD_CTX_GROUP bytes, or NULL
                                   until this thread first reads a member
                                   of a multi-page group (src/group.c):
                                   most threads never do, and 128 KiB on
                                   each would cost more than the groups
                                   save; zram_thread_ctx_group */
  uint64_t group_cached;        /* id of the group whose pages the second
                                   half of group holds decompressed, 0 =
                                   none: a sequential read of a group's
                                   members decompresses it once */
};

/* The group buffer: a group's gathered frame and its decompressed pages,
 * 64 KiB each.
 */
#define ZRAM_THREAD_CTX_GROUP (2 * 65536)

/* ctx's group buffer, allocated on first use.  NULL with errno ENOMEM
 * (the next call tries again).
 */
extern unsigned char *zram_thread_ctx_group (struct zram_thread_ctx *ctx);

/* Size of each scratch buffer: one device page. */
#define ZRAM_THREAD_CTX_PAGE 4096

/* The calling thread's context, made (and the thread registered as an RCU
 * reader) on its first call.  Returns NULL with errno ENOMEM if the memory
 * for either is not available; nothing is left half made, and a later call
 * tries again.  After the first success it never fails and allocates
 * nothing: one pthread_getspecific.
 */
extern struct zram_thread_ctx *zram_thread_ctx_get (void);

/* Make liburcu-bp's reader registry hold n readers at once, by
 * registering n short-lived helper threads together, so that the first
 * call of zram_thread_ctx_get on each of up to n threads alive at once
 * maps no memory for the registry (and does not need the address space a
 * reserve or a full pool may hold).  Call it once threads are allowed
 * (the plugin: .after_fork).  Returns 0, or -1 with errno (EAGAIN: no
 * thread; ENOMEM); on failure registration still works, with its probe.
 */
extern int zram_thread_ctx_presize (unsigned n);

/* The number of contexts alive (made and not yet freed by their thread's
 * exit), for tests.
 */
extern unsigned zram_thread_ctx_live (void);

#endif /* ZRAM_THREAD_CTX_H */
