/* nbdkit-zram: what the device's two source files share (not a public API).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * src/zram.c holds creation and the data path; src/zram-control.c the
 * openers and the control path (reset, statistics, limits, compaction).
 */
#ifndef ZRAM_ZRAM_IMPL_H
#define ZRAM_ZRAM_IMPL_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "zram/histogram.h"
#include "zram/mem-guard.h"
#include "zram/slot.h"
#include "zram/thread-ctx.h"
#include "zram/zcomp-dict.h"
#include "zram/zram.h"
#include "rcu.h"

/* Statistics of one initialisation; all updated with relaxed atomics. */
struct meta_stats {
  uint64_t pages_stored;      /* slots holding a page (SAME included) */
  uint64_t compr_data_size;   /* bytes of objects, HUGE counted as a page */
  uint64_t same_pages;        /* SAME slots */
  uint64_t huge_pages;        /* HUGE slots */
  uint64_t huge_pages_since;  /* HUGE stores since init */
  uint64_t mem_used_max;      /* peak pool bytes */
  uint64_t failed_reads;      /* reads failed for any reason */
  uint64_t failed_writes;     /* writes failed for any reason */
  uint64_t invalid_io;        /* requests beyond the device end */
  uint64_t notify_free;       /* pages freed by discard */
  uint64_t idle_pages;        /* slots with SLOT_IDLE */
  uint64_t incompressible_pages; /* slots with SLOT_INCOMPRESSIBLE */
  uint64_t recomp_attempts;   /* pages recompression compressed again */
  uint64_t recomp_successes;  /* of those, stored smaller */
  uint64_t recomp_bytes_saved; /* sum of size before - after */
  uint64_t pages_recomp[ZRAM_MAX_RECOMP]; /* slots at priority 1..3 */
  uint64_t bd_count;          /* WB slots (also in pages_stored) */
  uint64_t bd_reads;          /* pages read from the store */
  uint64_t bd_writes;         /* pages written to the store */
  uint64_t bd_checksum_errors; /* reads of the store whose bytes failed
                                 their checksum (served as EIO) */
  uint64_t group_objects;     /* groups stored (src/group.c) */
  uint64_t group_pages;       /* SLOT_GROUP slots (also in pages_stored) */
  uint64_t group_compr_size;  /* bytes of group frames (also in
                                 compr_data_size) */
  uint64_t groups_dissolved;  /* groups zram_group_dissolve emptied */
};

/* One of a state's dictionaries, index 1..ZRAM_MAX_DICT in a slot's
 * SLOT_DICT bits (0 = none).  The rule that keeps readers safe: while any
 * slot names the index, objects > 0 and the dictionary stays; a reader
 * holds the slot lock when it looks the pointer up (a written-back page's
 * reader copies the pointer under it, then decompresses inside its
 * read-side section).  Only the state's destruction frees a dictionary
 * in use.
 */
struct meta_dict {
  struct zcomp_dict *dict;    /* atomic; NULL: the index is free */
  uint64_t objects;           /* atomic: slots (written back included)
                                 whose object it compressed */
  uint64_t version;           /* the device's dictionary counter when
                                 made (zram_stats.dict_version) */
  /* The same bytes prepared for the group compressor (src/group.c), or
   * NULL (no groups, or it could not be made).  Each group member
   * compressed with it counts in objects too.  Whether groups use it is
   * their own A/B: the first ZRAM_GROUP_DICT_TRIALS groups built while
   * it is the newest are compressed both ways (and each keeps the
   * smaller); then groups use it if those stored ZRAM_GROUP_DICT_GAIN_PM
   * per mille less with it.  Only the group walk (pp_lock) touches the
   * trial fields.
   */
  struct zcomp_dict *group_dict; /* atomic, as dict */
  unsigned group_trials;
  uint64_t group_plain, group_with;
  bool group_use;
};

#define ZRAM_GROUP_DICT_TRIALS 8

/* The group copy is made from a dictionary's last 64 KiB at most: a
 * 64 KiB frame reaches little further back, and zstd's prepared tables
 * grow with the dictionary (a 1 MiB one at level 19 takes 35 MB, 64 KiB
 * 1.7 MB).
 */
#define ZRAM_GROUP_DICT_MAX (64 * 1024)
#define ZRAM_GROUP_DICT_GAIN_PM 20

/* One initialisation of the device: replaced whole by a reset. */
struct zram_meta {
  uint64_t disksize;
  uint64_t nr_pages;
  struct slot_table table;    /* nr_pages slots and their touched map */
  struct zpool *pool;
  enum zpool_kind pool_kind;
  struct zcomp *comp;         /* the primary algorithm: priority 0 */
  struct zcomp *recomp[ZRAM_MAX_RECOMP]; /* priority 1..nr_recomp */
  unsigned nr_recomp;
  uint64_t epoch_s;           /* CLOCK_MONOTONIC_COARSE seconds at creation:
                                 access times count from here */
  uint64_t gen;               /* z->gen when made: tells a long walk that
                                 a reset replaced the state between its
                                 read-side sections */
  size_t huge_class_size;     /* objects this large or larger are stored raw */
  bool reserve;               /* the pool keeps a reserve */
  uint64_t reserve_bytes;     /* its size (config.reserve) */
  struct backing *backing;    /* the device's store, or NULL; shared by
                                 the states in turn: only the published
                                 one writes back, and a state gives all
                                 its blocks back when destroyed */
  bool used_store;            /* atomic: a writeback walk ran in this state
                                 (its destruction gives the store's
                                 blocks back) */
  struct zcomp *group_comp;   /* the groups' compressor, or NULL: none */
  unsigned group_pages;       /* most pages a group takes */
  pthread_mutex_t group_lock; /* guards the list of groups */
  struct zram_group *groups;  /* every group of the state (src/group.h) */
  struct meta_dict dicts[ZRAM_MAX_DICT + 1]; /* [0] unused (no dictionary) */
  unsigned cur_dict;          /* atomic: the index new compressions with
                                 the primary algorithm use; 0 = none */
  struct meta_stats stats;
};

/* The writeback limit (zram_set_writeback_limit; src/writeback-limit.c):
 * atomics, for the device's life.
 */
struct wb_limit {
  uint64_t blocks;            /* budget left, 4 KiB blocks of the store */
  bool enabled;
};

/* Take one unit of budget before a block is written to the store: 0
 * (taken, or the limit is disabled), or -1 with errno EDQUOT (enabled,
 * used up).
 */
extern int wb_limit_take (struct wb_limit *l);

/* Give back a unit taken for a block that was not written. */
extern void wb_limit_refund (struct wb_limit *l);

/* Openers word: the number of open connections, plus a claim bit that a
 * reset without force sets in the same atomic step as it checks for zero.
 */
#define OPENERS_CLAIM (UINT64_C(1) << 63)

struct zram {
  struct zram_meta *meta;     /* RCU-published; NULL while resetting */
  pthread_mutex_t ctl_lock;   /* serialises the control path only */
  struct zram_mem_guard *guard; /* the cgroup ceiling, gate of every pool */
  uint64_t disksize;          /* fixed for the device's life */
  uint64_t mem_limit;         /* atomic; 0 = none */
  uint64_t openers;           /* atomic; see OPENERS_CLAIM */
  uint64_t offline_reads;     /* atomic: reads failed while unpublished */
  uint64_t offline_writes;    /* atomic: writes failed while unpublished */
  uint64_t nomem_reads;       /* atomic: reads refused for want of memory
                                 for the thread's context */
  uint64_t nomem_writes;      /* atomic: writes (and discards) likewise */
  uint64_t reserve;           /* the pool reserve of every state, bytes */
  struct zram_recomp_algo recomp[ZRAM_MAX_RECOMP]; /* of every state */
  unsigned nr_recomp;
  uint64_t gen;               /* ctl_lock: states made so far */
  unsigned reserve_wait_ms;
  bool started;               /* ctl_lock: zram_start was called */
  int rcu_sync;               /* address for ThreadSanitizer's benefit */
  /* Metrics for the process's life (a reset does not clear them, so
   * they stay monotonic counters): see zram_get_histogram.
   */
  struct zram_hist hist[ZRAM_HIST_NR];
  pthread_mutex_t clients_lock;  /* guards client_pids */
  int client_pids[ZRAM_MAX_CLIENT_PIDS];  /* 0 = free */
  struct zram_bg *bg;         /* atomic: zram_set_background */
  struct backing *backing;    /* the store for writeback, or NULL */
  unsigned char *dict;        /* the user's dictionary (config.dict), kept
                                 for every reset, or NULL */
  size_t dict_len;
  pthread_mutex_t dict_lock;  /* one zram_dict_train at a time: the only
                                 code that frees a live state's
                                 dictionaries */
  uint64_t dict_versions;     /* dict_lock: dictionaries made so far (the
                                 user's is 1) */
  uint64_t dict_trainings;    /* atomic: zram_stats.dict_trainings */
  uint64_t dict_rejected;     /* atomic */
  pthread_mutex_t pp_lock;    /* one post-processing walk at a time
                                 (recompression, writeback): a slot's PP
                                 mark has one owner */
  unsigned walks_stopped;     /* atomic: zram_stop_walks calls not yet
                                 undone; walks end while > 0 */
  struct wb_limit wb_limit;   /* zram_set_writeback_limit */
  unsigned room_wait_ms;      /* atomic: zram_set_room_wait */
  uint64_t room_waits;        /* atomic: writes that waited for room */
  uint64_t room_failed;       /* atomic: and failed all the same */
  unsigned group_pages;       /* zram_config.group_pages, for resets */
  struct zram_recomp_algo group_algo;
};

#define STAT_ADD(field, n) __atomic_add_fetch (&(field), (n), __ATOMIC_RELAXED)
#define STAT_SUB(field, n) __atomic_sub_fetch (&(field), (n), __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n (&(field), __ATOMIC_RELAXED)

/* Whether idle marking and recompression must end now (zram_stop_walks).
 * A relaxed load: a walk that sees the stop one page late loses nothing.
 */
static inline bool
walks_stopped (struct zram *z)
{
  return __atomic_load_n (&z->walks_stopped, __ATOMIC_RELAXED) != 0;
}

/* A page state prepared outside the slot lock, or taken out of a slot. */
struct page_state {
  uint64_t handle;            /* object handle, or fill word with SLOT_SAME */
  size_t size;
  uint64_t flags;             /* info bits of SLOT_STATE_MASK: SLOT_SAME,
                                 SLOT_HUGE, SLOT_IDLE, ..., the priority */
};

/* Seconds since m was created, for access times.  CLOCK_MONOTONIC_COARSE
 * is read from the vDSO without a system call (a few ns); its tick
 * (1-4 ms) is far below the second we keep.
 */
static inline uint32_t
meta_now (const struct zram_meta *m)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t) ((uint64_t) ts.tv_sec - m->epoch_s);
}

/* The compressor of priority prio (0 = primary). */
static inline const struct zcomp *
meta_comp (const struct zram_meta *m, unsigned prio)
{
  return prio == 0 ? m->comp : m->recomp[prio - 1];
}

/* The dictionary of index dict (1..ZRAM_MAX_DICT), or NULL for 0.  The
 * caller holds the lock of a slot that names it (so it is alive).
 */
static inline const struct zcomp_dict *
meta_dict (const struct zram_meta *m, unsigned dict)
{
  /* Pairs with the release store that installs a dictionary before its
   * index is published (zram_meta_dict_publish).
   */
  return dict ? __atomic_load_n (&m->dicts[dict].dict, __ATOMIC_ACQUIRE)
              : NULL;
}

/* Decompress an object of len bytes (not stored raw) into dst, a page,
 * with the algorithm of priority prio or, if d is not NULL, with that
 * dictionary of the primary algorithm.  0, or -1 with errno EIO or ENOMEM.
 */
static inline int
meta_decompress (const struct zram_meta *m, struct zram_thread_ctx *ctx,
                 unsigned prio, const struct zcomp_dict *d,
                 const void *src, size_t len, unsigned char *dst)
{
  if (d != NULL)
    return zcomp_dict_decompress (d, ctx->codec, src, len, dst, ZRAM_PAGE_SIZE);
  return zcomp_decompress (meta_comp (m, prio), ctx->codec, src, len, dst,
                           ZRAM_PAGE_SIZE);
}

/* An object compressed with dictionary index dict (> 0) left its slot
 * (freed, or recompressed without it).
 */
static inline void
meta_dict_put (struct zram_meta *m, unsigned dict)
{
  __atomic_sub_fetch (&m->dicts[dict].objects, 1, __ATOMIC_RELEASE);
}

/* Prepare the user's dictionary of len bytes for m's primary algorithm as
 * index 1 and publish it for new compressions (src/zram-dict.c).  0, or
 * -1 with errno EINVAL (the algorithm refuses it) or ENOMEM.
 */
/* d prepared for m's group compressor, or NULL (no groups, or no memory:
 * groups then do without).
 */
extern struct zcomp_dict *zram_meta_group_dict (const struct zram_meta *m,
                                                const struct zcomp_dict *d);

extern int zram_meta_dict_init (struct zram_meta *m, const void *bytes,
                                size_t len, uint64_t version);

/* Fill the dict_* fields of *s from m (inside a read-side section, or
 * under ctl_lock).
 */
extern void zram_meta_dict_stats (struct zram_meta *m, struct zram_stats *s);

/* Free every dictionary of m (at its destruction). */
extern void zram_meta_dict_destroy (struct zram_meta *m);

/* Read the locked slot's page into dst (ZRAM_PAGE_SIZE bytes), decompressing
 * with the algorithm of the slot's priority.  The slot must not be WB
 * (those are read without the lock: zram_wb_pin_locked).  0, or -1 with
 * errno EIO or ENOMEM.
 */
extern int zram_read_locked (struct zram_meta *m, struct zram_thread_ctx *ctx,
                             struct zram_slot *slot, unsigned char *dst);

/* Where a written-back object is, copied out of its slot under the slot
 * lock, with its block pinned (a reference), so that it can be read with
 * no lock held (src/writeback-read.c).
 */
struct wb_loc {
  uint64_t handle;            /* the slot's handle word when copied */
  uint64_t block;
  unsigned off;               /* byte offset of the object in the block */
  size_t size;                /* its size; ZRAM_PAGE_SIZE: stored raw */
  unsigned prio;              /* the algorithm that compressed it */
  const struct zcomp_dict *dict; /* and its dictionary, or NULL: looked up
                                 under the slot lock, used inside the
                                 reader's read-side section */
};

/* Copy the locked WB slot's location into *loc and pin its block. */
extern void zram_wb_pin_locked (struct zram_meta *m,
                                const struct zram_slot *slot,
                                struct wb_loc *loc);

/* Read the pinned object's block from the store, check its checksum and
 * decompress the object into dst (ZRAM_PAGE_SIZE bytes); ctx->cbuf is
 * used for the block.  Holds no lock and may block for the store.  Leaves
 * the pin.  Returns 0, or -1 with errno EIO (the store failed, or returned
 * bytes that fail the checksum: counted in bd_checksum_errors; dst is
 * then not filled with them) or ENOMEM.
 */
extern int zram_wb_fetch (struct zram_meta *m, struct zram_thread_ctx *ctx,
                          const struct wb_loc *loc, unsigned char *dst);

/* Drop the pin of zram_wb_pin_locked (freeing the block if its last
 * object died meanwhile: may block for the trim).
 */
extern void zram_wb_unpin (struct zram_meta *m, const struct wb_loc *loc);

/* Release a state taken out of a slot, after the slot is unlocked: free
 * its object (or give its store block back, trimmed) and uncount it.
 * Returns true if the state held a page.
 */
extern bool zram_release_state (struct zram_meta *m,
                                const struct page_state *old);

/* A write's allocation failed with ENOSPC at mem_limit (src/writeback-room.c):
 * with a store, a writeback policy and a room wait set, kick the policy
 * and retry the allocation of size bytes until it succeeds or the wait
 * is over.  Returns the handle, or 0 with errno ENOSPC (or ENOMEM).
 * Called inside the caller's read-side section, holding no slot lock.
 */
extern zpool_handle zram_wait_room (struct zram *z, struct zram_meta *m,
                                    size_t size);

/* Raise m's mem_used_max to total if it is higher (after an allocation). */
extern void zram_update_mem_used_max (struct zram_meta *m, uint64_t total);

/* Walks of the whole table (idle marking, recompression) leave and
 * re-enter the read-side section after this many slots, so that a reset
 * waits for at most one batch.  Recompression also after
 * ZRAM_WALK_BATCH_ATTEMPTS compressions (zstd at level 19 takes ~0.3 ms a
 * page).
 */
#define ZRAM_WALK_BATCH_SLOTS 4096
#define ZRAM_WALK_BATCH_ATTEMPTS 32

/* Turn a page of data into a page state without waiting for room: a SAME
 * word, or a new object in the pool (compressed with the primary
 * algorithm, or raw).  No slot lock needed.  0, or -1 with errno ENOMEM
 * or ENOSPC (the memory limit).
 */
extern int zram_prepare_page (struct zram *z, struct zram_meta *m,
                              struct zram_thread_ctx *ctx,
                              const unsigned char *src, struct page_state *st);

/* Put st into the locked slot, stamped with access time t; the old state
 * goes to *old (release it after unlocking: zram_release_state).
 */
extern void zram_install_locked (struct zram_meta *m, struct zram_slot *slot,
                                 const struct page_state *st,
                                 struct page_state *old, uint32_t t);

/* Uncount a state's flags taken out of a slot (idle, incompressible,
 * priority, dictionary): the statistics that follow the flags, not the object.
 */
extern void zram_uncount_flags (struct zram_meta *m, uint64_t flags);

/* Build one initialisation from a valid config: compressor, reserved slot
 * table, empty pool, whose growth guard gates (if not NULL).  NULL with
 * errno EINVAL or ENOMEM.
 */
extern struct zram_meta *zram_meta_create (const struct zram_config *config,
                                           struct zram_mem_guard *guard);

/* Start a state's background work (zram_start): with a reserve, populate
 * its slot table and start its pool's reserve.  -1 with errno ENOMEM.
 */
extern int zram_meta_start (struct zram_meta *m);

/* Free every object, then the pool, table and compressor.  No reader may
 * still use m (after a grace period, or with no readers at all).
 */
extern void zram_meta_destroy (struct zram_meta *m);

/* Enter a read-side section and return the live state, or leave it again
 * and return NULL (errno EIO) while a reset has the device unpublished.
 * ctx is the calling thread's context, as proof that the thread has one:
 * making it registered the thread as an RCU reader, where failure is an
 * error, so the read lock cannot try to register it (and abort) here.
 */
static inline struct zram_meta *
meta_get (struct zram *z, const struct zram_thread_ctx *ctx)
{
  struct zram_meta *m;

  assert (ctx != NULL);
  urcu_bp_read_lock ();
  /* Pairs with the release store in zram_reset: a non-NULL pointer comes
   * with the fully initialised state it points to.
   */
  m = __atomic_load_n (&z->meta, __ATOMIC_ACQUIRE);
  if (m == NULL) {
    urcu_bp_read_unlock ();
    errno = EIO;
  }
  return m;
}

/* The live state without a read-side section, for a thread that has no
 * memory for its context (and so no RCU registration): under ctl_lock,
 * which keeps reset (the only thing that frees the state) away.  It waits
 * behind a reset or compaction in progress.  NULL (errno EIO) while a
 * reset has the device unpublished.  Release by unlocking ctl_lock.
 */
static inline struct zram_meta *
meta_get_locked (struct zram *z)
{
  struct zram_meta *m;

  pthread_mutex_lock (&z->ctl_lock);
  m = z->meta;                /* only the control path changes it */
  if (m == NULL) {
    pthread_mutex_unlock (&z->ctl_lock);
    errno = EIO;
  }
  return m;
}

static inline void
meta_put (struct zram *z)
{
  rcu_reader_done (&z->rcu_sync);
  urcu_bp_read_unlock ();
}

/* Leave the read-side section of m and enter a new one; true if the live
 * state is still the one with generation gen (*m updated), false if a
 * reset replaced it or is in progress (then no section is held).
 */
static inline bool
meta_renew (struct zram *z, struct zram_thread_ctx *ctx, struct zram_meta **m,
            uint64_t gen)
{
  meta_put (z);
  *m = meta_get (z, ctx);
  if (*m == NULL)
    return false;
  if ((*m)->gen != gen) {
    meta_put (z);
    *m = NULL;
    return false;
  }
  return true;
}

#endif /* ZRAM_ZRAM_IMPL_H */
