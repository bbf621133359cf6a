/* nbdkit-zram: the compressed RAM block device (the core).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A struct zram is a block device of a fixed size, made of 4 KiB pages held
 * compressed in memory.  It knows nothing of NBD or nbdkit: the plugin glue
 * translates requests into the calls below.
 *
 *   struct zram  (lives as long as the plugin)
 *     meta ──RCU──> struct zram_meta (one "initialisation": slot table, pool,
 *                   compressor, statistics; replaced whole by zram_reset)
 *
 * Data path (zram_read, zram_write, zram_discard, zram_trim, zram_extents):
 * thread-safe,
 * lock-free with respect to the device: each call runs in an RCU read-side
 * section (liburcu-bp; any thread may call: the calling thread's context,
 * include/zram/thread-ctx.h, is made on its first call, and that is where
 * it registers as a reader) and locks only the per-page slots it touches.  Byte ranges may be any
 * offset and length; pages touched partially are read-modify-written under
 * the slot lock, so concurrent writes to different bytes of a page all
 * survive.  A read or write is applied page by page: if it fails, pages
 * before the failing one are written, and the failing page keeps its old
 * content (zram_discard frees first and rewrites after: see there).
 *
 * Never-written space costs nothing to use: reading it, asking its block
 * status, trimming or zeroing it (whole or in part), compacting, resetting
 * and statistics write no memory (no slot lock is taken on a page that
 * reads as zeroes), so a 1 TiB device stays as small as its data.
 *
 * Data-path calls return 0, or -1 with errno:
 *   EINVAL  the range ends beyond the live device size
 *   EIO     the device is not initialised (a reset is in progress), or stored
 *           data failed to decompress
 *   ENOMEM  memory for an object could not be allocated, nor, on a thread's
 *           first call, its context; or the pool would grow too close to
 *           the memory limit of the process's cgroup (mem-guard.h); or,
 *           with a reserve, it stayed empty while its refill could get no
 *           memory for reserve_wait_ms
 *   ENOSPC  the write would grow the pool past the memory limit; the pool
 *           refuses before it grows, so mem_used_total and mem_used_max
 *           never pass the limit because of a refused write
 *
 * With a backing store (zram_config.backing), a page may live in the store
 * instead of the pool after zram_writeback: a read of it reads its block
 * (failing with EIO if the store does; the slot is locked for that read,
 * so other requests on that one page wait for the store); a write, trim,
 * write-zeroes or reset of it gives its block back and trims it on the
 * store (on the thread of that request).
 *
 * Control path (zram_reset, zram_compact, limits): serialised among itself
 * by one mutex which the data path never takes.  It may block.
 *
 * Never call a zram function from inside an RCU read-side section of your
 * own: zram_reset waits for a grace period.
 */
#ifndef ZRAM_ZRAM_H
#define ZRAM_ZRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zram/backing.h"
#include "zram/histogram.h"
#include "zram/zcomp.h"
#include "zram/zpool.h"

#define ZRAM_PAGE_SHIFT 12
#define ZRAM_PAGE_SIZE  (1u << ZRAM_PAGE_SHIFT)

/* Largest device: the slot table (16 bytes a page) must be addressable. */
#define ZRAM_MAX_DISKSIZE (UINT64_C(1) << 60)

/* Secondary (recompression) algorithms, in priority order: priority 1 is
 * recomp[0], up to priority ZRAM_MAX_RECOMP; priority 0 is the primary.
 */
#define ZRAM_MAX_RECOMP 3

/* Dictionaries a state holds at once, indices 1..ZRAM_MAX_DICT (a slot
 * keeps the index in 2 bits: SLOT_DICT, include/zram/slot.h).
 */
#define ZRAM_MAX_DICT 3

struct zram_recomp_algo {
  enum zcomp_algo algo;
  int level;                  /* 0 = the algorithm's default */
};

struct zram_config {
  uint64_t disksize;          /* bytes, a multiple of ZRAM_PAGE_SIZE, > 0 */
  enum zcomp_algo algo;
  int level;                  /* 0 = the algorithm's default */
  struct zram_recomp_algo recomp[ZRAM_MAX_RECOMP];
  unsigned nr_recomp;         /* entries of recomp in use, 0..ZRAM_MAX_RECOMP */
  enum zpool_kind pool;
  uint64_t reserve;           /* bytes of pool kept populated for the data
                                 path (zpool_set_reserve); 0 = none */
  unsigned reserve_wait_ms;   /* longest wait of a write for the reserve */
  struct backing *backing;    /* the store for writeback (backing_open,
                                 include/zram/backing.h), or NULL for none.
                                 zram_create takes it over when it
                                 succeeds (zram_destroy closes it); on
                                 failure the caller still owns it.  A
                                 reset keeps the device's store */
  unsigned group_pages;       /* multi-page groups (zram_group): most pages
                                 compressed together, 2..ZRAM_GROUP_MAX_PAGES;
                                 0 = no groups */
  struct zram_recomp_algo group_algo; /* the groups' compressor (level 0 =
                                 the algorithm's default) */
  const void *dict;           /* a dictionary for the primary algorithm
                                 (include/zram/zcomp-dict.h: zram's
                                 algorithm_params dict=), dict_len bytes
                                 (1..ZCOMP_DICT_MAX), or NULL for none.
                                 zram_create copies it; every reset keeps
                                 it, prepared for the new algorithm */
  size_t dict_len;
};

/* Most pages in one multi-page group object (64 KiB of data). */
#define ZRAM_GROUP_MAX_PAGES 16

/* With a reserve, zram_start also populates the slot table (16 bytes per
 * 4 KiB page of the device) so that a write to a page never written
 * before does not fault in table memory either; but not a table larger
 * than this (a 16 GiB device), which would hold too much memory for what
 * it saves: then the first write into each 1 MiB of the device may fault.
 */
#define ZRAM_TABLE_POPULATE_MAX (UINT64_C (64) << 20)

/* The reserve a device used as swap gets unless told otherwise: a
 * sixteenth of its size, at least 4 MiB (but no more than the device:
 * zram_reserve_max) and at most 64 MiB.  Why those
 * figures: README.md, "Use as swap".
 */
#define ZRAM_RESERVE_DEFAULT_DIV 16
#define ZRAM_RESERVE_DEFAULT_MIN (UINT64_C (4) << 20)
#define ZRAM_RESERVE_DEFAULT_MAX (UINT64_C (64) << 20)
#define ZRAM_RESERVE_DEFAULT_WAIT_MS 20

/* The largest useful reserve of a device: its size (the pool never holds
 * more than a full device's pages, so stock beyond that is never drawn
 * on), or ZPOOL_RESERVE_MIN for a smaller device.
 */
static inline uint64_t
zram_reserve_max (uint64_t disksize)
{
  return disksize > ZPOOL_RESERVE_MIN ? disksize : ZPOOL_RESERVE_MIN;
}

/* The default, capped at zram_reserve_max: a device smaller than 4 MiB
 * gets a reserve of its size.
 */
static inline uint64_t
zram_reserve_default (uint64_t disksize)
{
  uint64_t r = disksize / ZRAM_RESERVE_DEFAULT_DIV;

  r = r < ZRAM_RESERVE_DEFAULT_MIN ? ZRAM_RESERVE_DEFAULT_MIN
    : r > ZRAM_RESERVE_DEFAULT_MAX ? ZRAM_RESERVE_DEFAULT_MAX : r;
  return r < zram_reserve_max (disksize) ? r : zram_reserve_max (disksize);
}

/* Statistics, with Linux zram's names and meanings (mm_stat, io_stat). */
struct zram_stats {
  uint64_t disksize;          /* device size in bytes */
  uint64_t orig_data_size;    /* bytes of pages stored, same-filled included */
  uint64_t compr_data_size;   /* bytes of compressed objects (huge = 4096) */
  uint64_t mem_used_total;    /* bytes the pool took from the OS */
  uint64_t mem_limit;         /* bytes; 0 = no limit */
  uint64_t mem_used_max;      /* peak of mem_used_total */
  uint64_t same_pages;        /* pages stored as one repeated 8-byte word */
  uint64_t pages_compacted;   /* pool pages freed by compaction */
  uint64_t huge_pages;        /* pages stored uncompressed now */
  uint64_t huge_pages_since;  /* pages stored uncompressed since init */
  uint64_t failed_reads;      /* reads that failed (EIO, decompression) */
  uint64_t failed_writes;     /* writes that failed (ENOMEM, ENOSPC, EIO) */
  uint64_t invalid_io;        /* calls beyond the live size (EINVAL); an
                                 NBD server usually refuses such requests
                                 itself, before they reach the device */
  uint64_t notify_free;       /* pages freed by discard / write-zeroes */
  uint64_t openers;           /* open connections (zram_open - zram_close) */
  enum zcomp_algo algo;       /* algorithm in use */
  int level;                  /* its effective level */
  enum zpool_kind pool;       /* allocator in use */
  bool initialised;           /* false only while a reset is in progress */
  /* The pool's reserve (zpool_stats); all 0 without one. */
  uint64_t reserve_bytes;     /* its size */
  uint64_t reserve_free;      /* populated pool memory free for writes now */
  uint64_t reserve_refills;   /* refill rounds that added memory */
  uint64_t reserve_empty;     /* writes that found it short and waited */
  uint64_t reserve_failed;    /* writes failed (ENOMEM) for want of it */
  /* Idle tracking and recompression (include/zram/zram.h, below). */
  uint64_t idle_pages;        /* pages marked idle now */
  uint64_t incompressible_pages; /* pages no recompression algorithm shrank
                                 (until rewritten) */
  uint64_t recomp_attempts;   /* pages recompression compressed again */
  uint64_t recomp_successes;  /* of those, pages stored smaller */
  uint64_t recomp_bytes_saved; /* sum of compressed size before - after
                                 over the successes, bytes */
  uint64_t pages_recomp[ZRAM_MAX_RECOMP]; /* pages stored now with the
                                 algorithm of priority 1..3 */
  /* Dictionaries (zram_config.dict; include/zram/zcomp-dict.h). */
  uint64_t dict_version;      /* version of the dictionary new writes are
                                 compressed with; 0 = none (the user's
                                 dictionary is version 1) */
  uint64_t dict_bytes;        /* its size, bytes */
  uint64_t dict_pages;        /* pages stored now compressed with a
                                 dictionary (any version, written back
                                 included) */
  uint64_t dict_mem_bytes;    /* memory all the state's dictionaries
                                 hold, prepared state included (and
                                 their copies for the groups' compressor) */
  uint64_t dict_trainings;    /* dictionaries trained (zram_dict_train),
                                 for the device's life */
  uint64_t dict_rejected;     /* of those, not published: they did not
                                 gain enough on the held-out pages */
  /* Writeback (bd_stat), in 4 KiB pages; all 0 without a store. */
  uint64_t bd_count;          /* pages held in the backing store now */
  uint64_t bd_reads;          /* pages read from the store */
  uint64_t bd_writes;         /* pages written to the store (including
                                 writes whose page changed meanwhile and
                                 was not installed) */
  uint64_t bd_checksum_errors; /* reads of the store whose bytes did not
                                 match what was written (failed with
                                 EIO, never served) */
  uint64_t bd_blocks;         /* blocks of the store (its capacity) */
  uint64_t bd_blocks_used;    /* blocks of the store in use now */
  uint64_t bd_errors;         /* reads, writes and trims of the store that
                                 failed (an NBD server down, a bad disk) */
  uint64_t bd_reconnects;     /* connections to the store made again after
                                 they broke (an NBD server that came back) */
  /* The writeback limit (zram_set_writeback_limit) and writes at
   * mem_limit that waited for room (zram_set_room_wait); for the
   * device's life, not cleared by a reset.
   */
  bool wb_limit_enable;       /* the budget below applies */
  uint64_t wb_limit;          /* 4 KiB blocks writeback may still write */
  uint64_t room_waits;        /* writes that found the pool at mem_limit
                                 and waited for writeback to make room */
  uint64_t room_failed;       /* of those, writes that still failed
                                 (ENOSPC) when the wait ran out */
  /* Multi-page groups (zram_group); all 0 without them. */
  uint64_t group_objects;     /* groups stored now */
  uint64_t group_pages;       /* pages stored in them now (also in
                                 orig_data_size) */
  uint64_t group_compr_size;  /* bytes of their frames (also in
                                 compr_data_size) */
  uint64_t groups_dissolved;  /* groups taken apart by zram_group_dissolve
                                 since init */
  unsigned group_max_pages;   /* zram_config.group_pages */
  struct zram_recomp_algo group_algo; /* and the effective level */
  unsigned nr_recomp;         /* recompression algorithms configured */
  struct zram_recomp_algo recomp[ZRAM_MAX_RECOMP]; /* and their effective
                                 levels */
};

struct zram;

/* Create and initialise a device.  The slot table is reserved, not touched,
 * so a large device costs nothing until written.  Returns NULL with errno
 * EINVAL (bad config: size 0, not page-aligned, too large, bad level, a
 * reserve below ZPOOL_RESERVE_MIN or a wait above
 * ZPOOL_RESERVE_MAX_WAIT_MS), ENOTSUP (a reserve with a pool kind that
 * has none) or ENOMEM (the slot table or pool cannot be allocated).
 * Starts no thread.
 */
extern struct zram *zram_create (const struct zram_config *config);

/* Start the device's background work: with a reserve, fill it, populate
 * the slot table (up to ZRAM_TABLE_POPULATE_MAX) and start the reserve's
 * refill thread; each later reset does the same for its new state.
 * Until then, a device with a reserve fails writes for want of it.  Call
 * once, where the process will not fork any more (nbdkit: .after_fork);
 * zram_destroy stops it.  Without a reserve it does nothing.  Returns 0,
 * or -1 with errno ENOMEM (memory or a thread could not be had, the
 * reserve could be filled only in part, or it would take more than
 * ZRAM_START_AVAIL_DIV-th of the memory available) or EINVAL (called
 * twice).
 */
extern int zram_start (struct zram *zram);

/* zram_start refuses (ENOMEM) to populate a reserve and slot table of
 * more than this fraction of the memory available (MemAvailable) at the
 * time: populated and locked, more would push the machine into the OOM
 * killer rather than fail.  A reset's new state is held to it too.
 */
#define ZRAM_START_AVAIL_DIV 2

/* Try what zram_start will need, and give it back: with a reserve, check
 * the memory available (ZRAM_START_AVAIL_DIV), then fill a reserve of the
 * same size in a pool of the same kind under the same growth gate (so the
 * address space and the cgroup's room are tried for real), stop its
 * thread and release it all.  For a caller that will call zram_start
 * where errors are hard to report (nbdkit: .get_ready, before the fork
 * to .after_fork); a start can still fail if memory goes in between.
 * Starts and joins one thread.  Without a reserve it does nothing.
 * Returns 0, or -1 with errno ENOMEM (the reserve cannot be had now) or
 * EINVAL (zram_start was called already).
 */
extern int zram_try_start (struct zram *zram);

/* Free the device and everything in it.  No other call may be in flight. */
extern void zram_destroy (struct zram *zram);

/* Size the device was created with, in bytes. */
extern uint64_t zram_disksize (const struct zram *zram);

/* --- data path ---------------------------------------------------------- */

/* Read count bytes at offset into buf.  Unwritten bytes read as zero. */
extern int zram_read (struct zram *zram, void *buf, uint32_t count, uint64_t offset);

/* Write count bytes from buf at offset. */
extern int zram_write (struct zram *zram, const void *buf, uint32_t count,
                       uint64_t offset);

/* Make [offset, offset+count) read as zeroes (NBD write-zeroes).  First
 * every whole page in the range is freed (its memory released; this needs
 * no memory and cannot fail), then the partial pages at the two ends are
 * zero-filled in place.  Rewriting an end is a read-modify-write that may
 * need a new object: at the memory limit (ENOSPC) or out of memory (ENOMEM)
 * it fails, and then zram_discard returns -1 with that errno, having freed
 * every whole page; the end that failed keeps its old content, the other
 * end is zeroed if it could be.  An end that already reads as zeroes is
 * left alone and cannot fail.  Cheap: it never compresses more than the two
 * end pages.
 */
extern int zram_discard (struct zram *zram, uint32_t count, uint64_t offset);

/* Advisory discard (NBD trim; what kernel zram does with a discard): free
 * every whole page in [offset, offset+count); partial pages at the ends
 * are left as they are.  Needs no memory, not even the calling thread's
 * first context (include/zram/thread-ctx.h: without one it runs under the
 * control mutex, so it may wait behind a reset or compaction), so it works
 * at the memory limit and out of memory, and fails only with EINVAL or
 * EIO.  Afterwards the whole pages read as zeroes; the content of the
 * partial ends is whatever it was.  zram_discard frees whole pages the
 * same way; only its partial ends may fail with ENOMEM there.
 */
extern int zram_trim (struct zram *zram, uint32_t count, uint64_t offset);

/* Page states reported by zram_extents. */
enum zram_extent_type {
  ZRAM_EXTENT_DATA,           /* page holds data (maybe nonzero) */
  ZRAM_EXTENT_ZERO,           /* never written, discarded, or all zeroes */
};

/* Describe [offset, offset+count) as runs of one type, calling fn once per
 * run, in ascending, contiguous order.  The first run starts exactly at
 * offset and the last ends exactly at offset+count (which range checking
 * keeps within the device), whatever the page alignment; so every run is
 * at most count bytes long and fits the 32-bit lengths of NBD, and no run
 * reaches outside the request.  Adjacent runs differ in type.  count 0
 * describes nothing: fn is not called and 0 is returned (for any offset up
 * to the device size).  Runs are advisory: a page written concurrently may
 * be reported in its old or new state.  Zero runs over never-written space
 * are found from the table's summary without touching the table.
 * fn returns 0 to go on, -1 to stop (zram_extents then returns -1 leaving
 * errno as fn set it).  Otherwise returns 0, or -1 with errno EINVAL
 * (range beyond the device) or EIO (not initialised).
 */
typedef int (*zram_extent_fn) (void *opaque, uint64_t offset, uint64_t length,
                               enum zram_extent_type type);
extern int zram_extents (struct zram *zram, uint32_t count, uint64_t offset,
                         zram_extent_fn fn, void *opaque);

/* --- connections (the kernel's "openers") -------------------------------- */

/* Count an opener.  Returns 0, or -1 with errno EBUSY while a reset without
 * force holds the device claimed (like zram_open in the kernel).
 */
extern int zram_open (struct zram *zram);
extern void zram_close (struct zram *zram);

/* Who has the device open, for tools that want to name it (the kernel
 * device an NBD client attached it as): the caller notes each opener's
 * process id (> 0) after a successful zram_open and forgets it before
 * zram_close.  At most ZRAM_MAX_CLIENT_PIDS are remembered; more are
 * ignored (zram_client_pid_add then returns -1 with errno ENOSPC; nothing
 * else depends on it).  zram_client_pids copies up to cap of them into
 * pids and returns how many it copied.  Thread-safe; takes a mutex of its
 * own, never the data path's.
 */
#define ZRAM_MAX_CLIENT_PIDS 64
extern int zram_client_pid_add (struct zram *zram, int pid);
extern void zram_client_pid_remove (struct zram *zram, int pid);
extern size_t zram_client_pids (struct zram *zram, int *pids, size_t cap);

/* --- control path -------------------------------------------------------- */

/* Throw away all data and start again with an empty device of the same size.
 * If new_config is not NULL, its algo, level and pool are used for the new
 * initialisation (its disksize must equal zram_disksize, else EINVAL); the
 * reserve, the recompression algorithms and the backing store stay as the
 * device was created (ENOTSUP if the new pool kind cannot keep a reserve).
 * Pages written back are given back to the store, trimmed.
 * Without force, refused with EBUSY while openers > 0; the check and the
 * claim that keeps new openers out are one atomic step.  With force,
 * requests in flight finish against the old data; requests arriving during
 * the reset fail with EIO; requests after it see zeroes.
 * The new state is built before the old one is unpublished, so a failure
 * (EINVAL for a bad level, ENOMEM) leaves the device and its data as they
 * were.  Returns 0, or -1 with errno EBUSY, EINVAL or ENOMEM.  Blocks for an
 * RCU grace period.
 */
extern int zram_reset (struct zram *zram, bool force,
                       const struct zram_config *new_config);

/* Wait up to timeout_ms milliseconds for the openers to drop to zero (a
 * client that has just disconnected may be closed by its server a moment
 * later).  Claims nothing: an opener may arrive right after.  Returns 0 once
 * none is open, or -1 with errno EBUSY at the timeout.  Sleeps in steps of
 * at most 5 ms; takes no lock.
 */
extern int zram_wait_idle (struct zram *zram, unsigned timeout_ms);

/* Fill *stats.  Safe at any time, on any thread; on a thread that cannot
 * have a context (no memory) it reads under the control mutex instead, and
 * may then wait for a reset or compaction in progress.
 */
extern void zram_get_stats (struct zram *zram, struct zram_stats *stats);

/* Set the pool memory limit in bytes (0 = none): a hard cap on
 * mem_used_total.  Writes that would grow the pool beyond it fail with
 * ENOSPC before the pool grows; writes that fit in memory the pool already
 * holds still succeed.  Stored data is untouched: a limit below the
 * current use lets the pool only shrink (by discard, trim, overwrites and
 * compaction) until it is under the limit.  Freeing never needs memory, so
 * zram_trim, and the whole pages of zram_discard, work at the limit.
 */
extern void zram_set_mem_limit (struct zram *zram, uint64_t bytes);

/* Histograms kept since zram_create (a reset does not clear them):
 *   ZRAM_HIST_READ_US     wall time of each zram_read, microseconds
 *   ZRAM_HIST_WRITE_US    the same for zram_write
 *   ZRAM_HIST_DISCARD_US  the same for zram_discard (trim, write-zeroes)
 *   ZRAM_HIST_COMPR_SIZE  bytes of pool each stored page took: 0 for a
 *                         same-filled page, 4096 for a huge one
 * Failed requests are timed too; requests refused before they start
 * (device not initialised) are not.
 */
enum zram_hist_id {
  ZRAM_HIST_READ_US,
  ZRAM_HIST_WRITE_US,
  ZRAM_HIST_DISCARD_US,
  ZRAM_HIST_COMPR_SIZE,
  ZRAM_HIST_NR
};

/* Sum histogram id into *out.  Safe at any time, from any thread. */
extern void zram_get_histogram (struct zram *zram, enum zram_hist_id id,
                                struct zram_hist_snapshot *out);

/* Reset mem_used_max to the current mem_used_total. */
extern void zram_reset_mem_used_max (struct zram *zram);

/* Compact the pool.  Returns pool pages released, or -1 with errno EIO if
 * the device is not initialised.
 */
extern int64_t zram_compact (struct zram *zram);

/* Parse a list of recompression algorithms, "NAME[:LEVEL][,NAME[:LEVEL]...]"
 * in priority order (e.g. "zstd:3,zstd:19"; a missing level is the
 * algorithm's default), into config->recomp and config->nr_recomp.
 * Returns 0, or -1 with errno EINVAL and a message for the user in err
 * (err_cap bytes): an unknown name, a level that is not a number or out
 * of range, an empty item, or more than ZRAM_MAX_RECOMP.  config is
 * unchanged on failure.
 */
extern int zram_parse_recomp_spec (const char *spec, struct zram_config *config,
                                   char *err, size_t err_cap);

/* --- idle tracking and recompression (Linux zram's semantics) ------------
 *
 * Every stored page remembers when it was last read or written (seconds
 * since the device state was created; a reset starts a new clock) and
 * carries flags: IDLE (set by zram_mark_idle, cleared by any read or
 * write), INCOMPRESSIBLE (no recompression algorithm shrank it; cleared
 * when the page is rewritten) and its priority (which algorithm compressed
 * it).  A page's content never changes by recompression; only its storage.
 *
 * Both functions below walk the slot table in the caller's thread, in
 * batches, each in a short read-side section, so a reset can happen
 * between batches: they then stop and return what they did (the new state
 * has no pages).  They never hold a slot lock while compressing, so
 * requests on the same pages wait at most for a decompression.  They are
 * thread-safe among themselves and with every other call: two of them on
 * the same page do not both work on it.
 */

/* Mark idle every stored page that is not same-filled and whose last
 * access is at least min_age_s seconds ago; min_age_s 0 marks every such
 * page ("idle all").  Never-written parts of the device are skipped
 * without touching the table.  *marked (if not NULL) gets the number of
 * pages this call marked that were not idle before.  Returns 0, or -1
 * with errno EIO (not initialised), ENOMEM (no thread context) or
 * ECANCELED (zram_stop_walks; *marked says what was done).
 */
extern int zram_mark_idle (struct zram *zram, uint32_t min_age_s,
                           uint64_t *marked);

/* What to recompress (zram's recompress type=...). */
enum zram_recomp_type {
  ZRAM_RECOMP_IDLE = 1,       /* pages marked idle */
  ZRAM_RECOMP_HUGE = 2,       /* pages stored uncompressed */
  ZRAM_RECOMP_HUGE_IDLE = 3,  /* pages both huge and idle */
};

struct zram_recomp_req {
  enum zram_recomp_type type;
  uint32_t threshold;         /* bytes: only objects of at least this
                                 compressed size; 0 = any */
  uint64_t max_pages;         /* most pages to attempt; 0 = no limit */
  unsigned prio_min, prio_max; /* priorities to try, 1 <= min <= max <=
                                 nr_recomp; both 0 = all.  One algorithm
                                 (zram's algo= or priority=): min = max */
  uint32_t min_age_s;         /* > 0: pages not accessed for this many
                                 seconds count as idle too (marked or not) */
  uint64_t start_index, end_index; /* slots [start, end) to scan; end 0 =
                                 the device end; lets a caller work in
                                 batches, continuing at next_index */
  bool nowait;                /* fail with EBUSY at once, rather than wait,
                                 while another recompression or a
                                 writeback runs (see "writeback" below:
                                 they run one at a time); for a background
                                 thread that has other work */
};

struct zram_recomp_result {
  uint64_t scanned;           /* stored pages looked at */
  uint64_t attempted;         /* pages decompressed and compressed again */
  uint64_t recompressed;      /* pages stored smaller (a smaller size class) */
  uint64_t incompressible;    /* pages newly marked incompressible */
  uint64_t raced;             /* results dropped because the page changed
                                 (write, trim, reset) while compressing */
  uint64_t bytes_saved;       /* compressed size before - after, summed */
  uint64_t nospace;           /* pages left as they were because their new
                                 object would have passed the memory limit */
  uint64_t next_index;        /* first slot not scanned: end_index (or the
                                 device end) when done, earlier when
                                 max_pages stopped the scan */
};

/* Recompress the pages of [start_index, end_index) that type selects and
 * that are not same-filled, not incompressible, whose compressed size is
 * at least threshold, and whose priority is below prio_max.  Each page is
 * decompressed with the algorithm that compressed it and compressed with
 * the algorithms of priority max(prio_min, its priority + 1) .. prio_max in
 * order; the first result that lands in a smaller size class of the pool
 * (zpool_class_size) replaces the object, the page keeping its access time
 * and IDLE flag.  If none does and the last configured algorithm was
 * tried, the page is marked INCOMPRESSIBLE and later calls skip it until
 * it is rewritten.  A write, trim or reset of the page while it is being
 * compressed wins; the work is dropped (counted in raced).
 *
 * The new object is allocated before the old is freed, within the memory
 * limit.  *res (required) is filled even on failure with what was done.
 * Uses the calling thread's context (include/zram/thread-ctx.h).  Returns
 * 0, or -1 with errno EINVAL (bad type, priorities out of range, no
 * recompression algorithm configured, start beyond end or the device),
 * EIO (not initialised; or stored data failed to decompress) or ENOMEM
 * (no memory for the thread context, codec state or a new object).  A
 * page whose new object would pass the memory limit is left as it was
 * (counted in nospace) and the walk goes on: other classes may have room,
 * and every success frees memory.  A reset during the call ends it with 0.
 * zram_stop_walks ends it before the next page with -1 and errno
 * ECANCELED, *res saying what was done (every page stays valid).  With
 * nowait, -1 and EBUSY if another post-processing walk is running.
 */
extern int zram_recompress (struct zram *zram,
                            const struct zram_recomp_req *req,
                            struct zram_recomp_result *res);

/* --- multi-page groups -------------------------------------------------
 *
 * A 4 KiB page is a short input for a codec; cold pages compress better
 * together.  zram_group packs idle pages, up to the device's group_pages
 * at a time (zram_config), into one object compressed as one frame with
 * the device's group algorithm: a group.  Each member keeps its own slot,
 * which names the group and the member's place in it.  Reading a member
 * decompresses its group (slower than a single page: the price of cold
 * data).  Writing, trimming or zeroing a member takes it out of the
 * group, whose frame stays until every member has left, or until
 * zram_group_dissolve stores the remaining members one by one again.
 * Recompression and writeback leave members alone.
 */

struct zram_group_req {
  uint32_t min_age_s;         /* > 0: pages not accessed for this many
                                 seconds count as idle too (marked or not);
                                 0: only pages marked idle */
  uint64_t max_pages;         /* most pages to take into groups; 0 = no limit */
  uint64_t start_index, end_index; /* slots [start, end) to scan; end 0 =
                                 the device end */
  bool nowait;                /* EBUSY at once, rather than wait, while
                                 another post-processing walk runs */
};

struct zram_group_result {
  uint64_t scanned;           /* stored pages looked at */
  uint64_t grouped;           /* pages now stored in a new group */
  uint64_t groups;            /* new groups stored */
  uint64_t rejected;          /* pages whose group did not beat their
                                 separate objects (left as they were) */
  uint64_t raced;             /* pages written, trimmed or reset while
                                 their group was compressed (left out) */
  uint64_t bytes_saved;       /* separate object bytes - frame bytes */
  uint64_t nospace;           /* pages left alone because the frame would
                                 have passed the memory limit */
  uint64_t next_index;        /* first slot not scanned */
};

/* Group the pages of [start_index, end_index) that are idle (marked, or
 * as min_age_s says), stored compressed in the pool and not huge: runs of
 * such pages, taken in index order (neighbours first), up to group_pages
 * at a time, are each compressed as one frame; a frame smaller than the
 * sum of its pages' objects replaces them, the pages keeping their access
 * time and IDLE flag.  A page written, trimmed or reset meanwhile wins and
 * is left out.  The frame is allocated before the old objects are freed,
 * within the memory limit.  *res (required) is filled even on failure.
 * Returns 0, or -1 with errno EINVAL (no groups configured, bad range),
 * EIO (not initialised, or stored data failed to decompress: that page is
 * left as it was), ENOMEM, ECANCELED (zram_stop_walks) or EBUSY (nowait).
 * A reset during the call ends it with 0.
 */
extern int zram_group (struct zram *zram, const struct zram_group_req *req,
                       struct zram_group_result *res);

struct zram_dissolve_result {
  uint64_t groups;            /* groups looked at whose live share was low */
  uint64_t dissolved;         /* of those, groups with no member left */
  uint64_t pages;             /* members stored as single pages again */
  uint64_t failed;            /* members left in their group (the memory
                                 limit, no memory, or a race) */
};

/* Take apart up to max_groups groups (0 = all) whose members still stored
 * are fewer than live_min_pct percent of the pages they were built with
 * (1..100; 100 = every group that lost a member): each remaining member
 * is compressed alone with the primary algorithm and stored in its slot,
 * keeping its access time and IDLE flag; the last one out frees the
 * frame.  So dead members never pin much memory.  Runs in one read-side
 * section (a reset waits for it).  Returns 0, or -1 with errno EINVAL
 * (bad percentage), EIO, ENOMEM, EBUSY (nowait) or ECANCELED.
 */
extern int zram_group_dissolve (struct zram *zram, unsigned live_min_pct,
                                uint64_t max_groups, bool nowait,
                                struct zram_dissolve_result *res);

/* --- writeback (Linux zram's semantics) ----------------------------------
 *
 * A device created with a backing store can move pages out of the pool
 * into the store: each page's object is written there as the pool holds
 * it (compressed, with its algorithm's priority: zram's
 * writeback_compressed), packed with others into 4 KiB blocks (a raw
 * huge page takes a block alone), and its slot keeps only the object's
 * place in the store (state WB, include/zram/slot.h), so the pool memory
 * of its object is freed.  A block is freed when its last object dies
 * (write, trim, reset of the pages) and no read holds it.  bd_count,
 * bd_reads and bd_writes (zram_stats) count the pages in the store and
 * the pages read and written, as zram's bd_stat does; bd_blocks_used the
 * blocks they take.
 *
 * Reads of a written-back page hold no lock across the store's I/O: the
 * block is pinned under the slot lock and read without it; a read racing
 * a write of the page may return the page as it was before the write.
 * Every block read is checked against a checksum of what was written
 * (include/zram/backing.h): a store that returns other bytes gives EIO,
 * counted in bd_checksum_errors, never those bytes.
 *
 * Post-processing (zram_recompress, zram_writeback) is serialised per
 * device: one runs at a time, the other call waits (as zram's sysfs
 * writes do under its dev_lock), so at most one owner of a slot's PP
 * mark exists.
 */

/* Store blocks one writeback call fills before it writes them, with one
 * backing_write_batch (an NBD store keeps them all in flight).
 */
#define ZRAM_WB_BATCH_BLOCKS 16

/* Most objects packed into one store block.  Bounds the walk's memory;
 * objects are rarely below 64 bytes, where this limit starts to waste.
 */
#define ZRAM_WB_BLOCK_OBJECTS 64

/* What to write back (zram's writeback type=...). */
enum zram_wb_type {
  ZRAM_WB_IDLE = 1,           /* pages marked idle */
  ZRAM_WB_HUGE = 2,           /* pages stored uncompressed */
  ZRAM_WB_HUGE_IDLE = 3,      /* pages both huge and idle */
  ZRAM_WB_INCOMPRESSIBLE = 4, /* pages recompression marked
                                 incompressible */
  ZRAM_WB_COLD = 5,           /* pages not read or written for min_age_s
                                 seconds or more (0: every page), marked
                                 idle or not: for the automatic policy
                                 (include/zram/policy-writeback.h), which
                                 goes coldest first; not one of zram's
                                 types */
};

struct zram_wb_req {
  enum zram_wb_type type;
  uint64_t max_pages;         /* most pages to write to the store; 0 = no
                                 limit */
  uint64_t start_index, end_index; /* slots [start, end) to scan; end 0 =
                                 the device end; lets a caller work in
                                 batches, continuing at next_index */
  uint32_t min_age_s;         /* ZRAM_WB_COLD only: the age in seconds */
  bool nowait;                /* fail with EBUSY at once, rather than
                                 wait, while another post-processing walk
                                 runs (as zram_recomp_req.nowait) */
};

struct zram_wb_result {
  uint64_t scanned;           /* stored pages looked at */
  uint64_t written;           /* pages moved to the store */
  uint64_t raced;             /* pages written to the store but changed
                                 (write, trim, reset) meanwhile: the
                                 change won, the page dropped out of its
                                 block */
  uint64_t next_index;        /* first slot not scanned: end_index (or the
                                 device end) when done, earlier when
                                 max_pages, a full store or an error
                                 stopped the scan (then the first page
                                 left in RAM for want of a store block) */
};

/* Write back the pages of [start_index, end_index) that type selects and
 * that are not same-filled or written back already.  Per page: under the
 * slot lock the page is marked (PP) and its object copied into a block
 * buffer; once ZRAM_WB_BATCH_BLOCKS buffers are full (or the scan ends),
 * blocks are taken and written with one backing_write_batch, no lock
 * held; then, for each page of a written block, under the lock again, if
 * the mark is still there, the slot becomes WB and its pool object is
 * freed (the page keeps its access time and priority; IDLE and
 * INCOMPRESSIBLE go with the pool object).  A write, trim or reset in
 * between wins (counted in raced): the page drops out of its block, and
 * a block left empty is given back.  Requests on the page wait only for
 * a copy of its object, never for the store.
 *
 * *res (required) is filled even on failure with what was done.  Uses
 * the calling thread's context.  Returns 0, or -1 with errno ENODEV (the
 * device has no backing store), EINVAL (bad type, start beyond end or
 * the device), ENOSPC (the store is full, or the file system holding
 * its file is: pages written so far stay written), EIO (not initialised, or the store failed a write: the pages
 * of that block stay in the pool), ENOMEM (no thread context or batch
 * buffers), ECANCELED (zram_stop_walks: at once, or at the next page),
 * EDQUOT (the writeback limit is enabled and used up: pages written so
 * far stay written) or EBUSY (nowait, and another post-processing walk
 * runs).  A reset during the call ends it with 0.
 */
extern int zram_writeback (struct zram *zram, const struct zram_wb_req *req,
                           struct zram_wb_result *res);

/* Trim the store blocks that writes, trims and zeroes of written-back
 * pages gave back (they are queued, so that no request waits for the
 * store: include/zram/backing.h, backing_trim_pending), and make them
 * free.  For background work (include/zram/policy-trim.h); writeback
 * walks do it too.  Returns the number of blocks trimmed (>= 0), or -1
 * with errno ENODEV (no store), EIO (a reset is under way) or ENOMEM.
 * May block for the store.
 */
extern int64_t zram_trim_store (struct zram *zram);

/* The writeback limit (zram's writeback_limit and writeback_limit_enable):
 * a budget of 4 KiB units of writes to the store, which is what the limit
 * is for (to spare the store's wear).  While enabled, every block
 * zram_writeback writes to the store takes one unit of it (a block packs
 * the compressed objects of one or more pages, so a unit may move
 * several pages; a block whose write fails gives its unit back; one
 * written but whose pages all raced keeps it spent, as the store did the
 * write), and writeback stops with EDQUOT when the budget is 0.  While disabled, writeback is unlimited and the budget is
 * left as it is.  Both start at 0 (disabled, no budget) and last for
 * the device's life (a reset keeps them).  zram_set_writeback_limit sets
 * the remaining budget, at most ZRAM_WB_LIMIT_MAX blocks (else EINVAL,
 * nothing changed); it may be called during a writeback, which sees the
 * new budget at its next block.  Thread-safe, never block; the getters
 * read both values (zram_get_stats has them too).
 */
#define ZRAM_WB_LIMIT_MAX (UINT64_C (1) << 52) /* 16 EiB of blocks */
extern int zram_set_writeback_limit (struct zram *zram, uint64_t blocks);
extern void zram_set_writeback_limit_enable (struct zram *zram, bool enable);
extern void zram_get_writeback_limit (struct zram *zram, bool *enabled,
                                      uint64_t *blocks);

/* No cliff at the memory limit: with a backing store and ms > 0, a write
 * whose new object would pass mem_limit does not fail at once.  It kicks
 * the device's writeback policy (the background framework's policy
 * named ZRAM_WB_POLICY, through zram_background: include/zram/
 * policy-writeback.h) and tries again every millisecond, up to ms
 * milliseconds in all, before it fails with ENOSPC.  Counted in
 * room_waits and room_failed.  Without a store, a policy or with ms 0
 * (the default), or with writeback_limit enabled and used up, writes at
 * the limit fail at once, as before; writes
 * below the limit never pay for any of this.  At most
 * ZRAM_ROOM_WAIT_MAX_MS.  Returns 0, or -1 with errno EINVAL (too long).
 */
#define ZRAM_ROOM_WAIT_MAX_MS 60000
extern int zram_set_room_wait (struct zram *zram, unsigned ms);

/* Stop the walks: zram_mark_idle, zram_recompress and zram_writeback
 * calls in progress end at their next page (a page being recompressed or
 * written back is finished or dropped first, so the wait is at most one
 * page's compression or one batch of ZRAM_WB_BATCH_BLOCKS store writes),
 * and
 * calls made before the matching zram_resume_walks fail at once, both
 * with -1 and errno ECANCELED.  For a shutdown that must not wait for a
 * recompression of the whole device (minutes with zstd at a high level).
 * Data requests are not affected.  Calls nest: walks run again once every
 * zram_stop_walks has had its zram_resume_walks.  Thread-safe, never
 * blocks.
 */
extern void zram_stop_walks (struct zram *zram);
extern void zram_resume_walks (struct zram *zram);

/* --- trained dictionaries ------------------------------------------------
 *
 * zram_dict_train samples the device's stored pages, trains a dictionary
 * for the primary algorithm on them with libzstd's trainer, and measures
 * it on pages held out of the training (an A/B: the held-out pages
 * compressed as new writes are now, and with the new dictionary).  Only
 * if the held-out pages store at least gain_pm per mille fewer bytes is
 * it published: writes from then on use it.  Pages already stored keep
 * the dictionary they were compressed with; a dictionary is freed once no
 * page uses it any more (a later call finds it so).  A state holds at
 * most ZRAM_MAX_DICT dictionaries: with all of them in use by pages,
 * training waits (ZRAM_DICT_FULL) until one is freed.  A reset starts the
 * new state with the user's dictionary only (zram_config.dict).
 */
#define ZRAM_DICT_TRAIN_DEFAULT_BYTES   (64 * 1024)
#define ZRAM_DICT_TRAIN_DEFAULT_SAMPLES 1024
#define ZRAM_DICT_TRAIN_MAX_SAMPLES     8192
#define ZRAM_DICT_TRAIN_DEFAULT_GAIN_PM 20      /* 2 % */

struct zram_dict_train_req {
  size_t dict_bytes;          /* size of the dictionary to train, bytes:
                                 1024..ZCOMP_DICT_MAX; 0 = the default */
  unsigned samples;           /* pages to train on: ZCOMP_DICT_MIN_SAMPLES
                                 .. ZRAM_DICT_TRAIN_MAX_SAMPLES; 0 = the
                                 default.  A quarter as many more are held
                                 out for the A/B */
  unsigned gain_pm;           /* least gain to publish, per mille of the
                                 held-out pages' stored bytes (0: any gain) */
  bool nowait;                /* EBUSY at once while another training runs */
};

enum zram_dict_train_outcome {
  ZRAM_DICT_PUBLISHED = 1,    /* new writes use the new dictionary */
  ZRAM_DICT_REJECTED,         /* it did not gain enough: nothing changed */
  ZRAM_DICT_TOO_FEW,          /* too few compressed pages stored to train
                                 on (or the trainer found nothing in them) */
  ZRAM_DICT_FULL,             /* every index is used by stored pages */
  ZRAM_DICT_RACED,            /* a reset came in between: dropped */
};

struct zram_dict_train_result {
  enum zram_dict_train_outcome outcome;
  unsigned sampled;           /* pages trained on */
  unsigned held_out;          /* pages of the A/B */
  uint64_t bytes_now;         /* the held-out pages compressed as writes
                                 are now (raw pages count 4096) */
  uint64_t bytes_dict;        /* the same with the new dictionary */
  size_t dict_size;           /* bytes of the trained dictionary */
  uint64_t version;           /* PUBLISHED: its version (dict_version) */
  unsigned freed;             /* dictionaries no page used, freed */
};

/* Train, measure and maybe publish a dictionary as above.  Takes a
 * transient buffer of (samples * 5 / 4) pages; takes slot locks only to
 * read one page at a time, and holds no lock while training (about a
 * second per 1000 pages) or measuring.  Serialised with other trainings
 * (nowait: EBUSY rather than wait).  Returns 0 with *res filled (the
 * outcome says what happened), or -1 with errno EINVAL (a setting out of
 * range), EIO (not initialised, or a stored page failed to decompress),
 * ENOMEM, ECANCELED (zram_stop_walks) or EBUSY.  Blocks for RCU grace
 * periods: never call it inside a read-side section.
 */
extern int zram_dict_train (struct zram *zram,
                            const struct zram_dict_train_req *req,
                            struct zram_dict_train_result *res);

#endif /* ZRAM_ZRAM_H */
