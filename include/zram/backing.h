/* nbdkit-zram: the backing store, where writeback puts pages (zram's
 * backing_dev).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A backing store is an array of BACKING_BLOCK_SIZE blocks, numbered from
 * 0 to backing_nr_blocks () - 1, that can be read, written and trimmed,
 * together with the allocator of those blocks (a bitmap: one bit per
 * block, set while the block holds a page).  The device (src/zram.c,
 * src/writeback.c) names stored pages by block number and never knows
 * which kind of store it talks to; one contract, several implementations,
 * the way include/zram/zpool.h hides its allocators:
 *
 *   file   a regular file or a block device, through pread(2)/pwrite(2);
 *          trim punches a hole (fallocate(2) FALLOC_FL_PUNCH_HOLE), so a
 *          sparse file or a thin device gives the space back
 *          (src/backing-file.c).
 *   nbd    an export of an NBD server named by a URI that libnbd
 *          accepts (nbd://, nbds://, nbd+unix://, nbds+unix://,
 *          nbd+vsock://, nbds+vsock://), through up to BACKING_NBD_CONNS
 *          connections with several requests in flight on each; trim is
 *          NBD_CMD_TRIM when the server offers it (src/backing-nbd.c).
 *          A store on a server that breaks or stops answering fails its
 *          operations with EIO (none waits longer than
 *          BACKING_NBD_TIMEOUT_MS) and reconnects by itself.  Built
 *          without libnbd, backing_open refuses such a name with ENOTSUP.
 *
 * The store knows nothing of pages, slots, compression or NBD clients.
 *
 * Checksums: the store is written once per block between the block's
 * allocation and its free, so the layer keeps, in RAM, a 64-bit checksum
 * (XXH3, libxxhash) of each block as it was last written through it, and
 * every read checks the bytes it got against it: a store that returns
 * other bytes (a corrupted block, a hole that reads as zeroes, the stale
 * contents of an earlier life of the block, another block's data) is
 * caught (EBADMSG) and its bytes are never handed out.  12 bytes of RAM
 * per block (the checksum and the reference count below), 0.3 % of the
 * store's size, and only for the part of the store ever used.
 *
 * References: a block may hold several objects of the device (compressed
 * writeback packs them), and a reader may be fetching it while the page
 * whose object it reads is overwritten.  Each block therefore has a
 * reference count: backing_alloc_block hands the block out with one
 * reference (the caller's), backing_block_get adds some (one per object
 * placed in it, one per reader that pins it), and the backing_block_put
 * that drops the last one gives the block back (it is queued for its
 * trim, backing_trim_pending, and only then made free).
 * So a block is never reused while anyone may still read it.
 *
 * Thread safety: every function may be called from any thread at once,
 * except backing_close and backing_free_all, which need exclusive use (no
 * other call in flight or later).  Reads, writes and trims block (they
 * are system calls on a file or device, or wait for an NBD server's
 * replies); the allocator takes no lock and never blocks.  Two calls on
 * the same block at once are the caller's business: the device writes a
 * block once, before any slot names it, and reads it only while holding
 * a reference.
 *
 * Errors: functions that can fail return -1 (or NULL) and set errno; they
 * never print.  backing_open, where the causes are many and the user must
 * act, also writes a message for the user into a caller's buffer.
 */
#ifndef ZRAM_BACKING_H
#define ZRAM_BACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The unit of the store: one device page. */
#define BACKING_BLOCK_SHIFT 12
#define BACKING_BLOCK_SIZE (1u << BACKING_BLOCK_SHIFT)

/* A message buffer of this size holds any message of backing_open. */
#define BACKING_ERR_MAX 512

/* An NBD store: connections kept to a server that allows several
 * (NBD_FLAG_CAN_MULTI_CONN; else one); the longest an operation takes
 * (waiting for a connection, reconnecting, its replies), after which it
 * fails with EIO and a connection it used is dropped; the longest
 * backing_open waits for each handshake; and how long no connection is
 * attempted after the server was found out of reach (a connect failed, a
 * reply did not come in time).  A connection found closed or reset (the
 * server restarted) is replaced at once, and the requests it failed are
 * sent again within their deadline.
 */
#define BACKING_NBD_CONNS 4
#define BACKING_NBD_TIMEOUT_MS 5000
#define BACKING_NBD_CONNECT_TIMEOUT_MS 5000
#define BACKING_NBD_RETRY_MS 1000

struct backing;

/* Open the store that spec names: a path to a regular file or a block
 * device (opened read-write; the file must exist), or an NBD URI (a
 * writable export; every connection is made before this returns, and the
 * export cannot be locked: nothing keeps another client from writing to
 * it).  Its size, rounded down
 * to whole blocks, is the store's; an empty regular file is first grown
 * (sparse, costing no space) to max_bytes.  max_bytes > 0 also caps the
 * blocks used: a device of N pages never needs more than N blocks, so a
 * larger store is used only in part (and the bitmap stays small).
 * The store is taken for exclusive use (a lock on a file, O_EXCL on a
 * block device), so two servers cannot write back into one store.
 *
 * Returns the store, or NULL with errno and a message for the user in err
 * (err_cap bytes; BACKING_ERR_MAX is enough) naming spec and what to do:
 *   ENOENT, EACCES, EROFS, ...  the path cannot be opened read-write
 *   EBUSY    another process uses the store (its lock, or a block device
 *            that is mounted or held)
 *   EINVAL   not a regular file or block device (a directory, a character
 *            device, ...), an empty spec, a store smaller than one block
 *            (an empty file with max_bytes 0), a malformed URI or one of
 *            a scheme that is not NBD's
 *   EROFS    an NBD export that is read-only
 *   ECONNREFUSED, ENOENT, ETIMEDOUT, ...  the NBD server cannot be reached
 *            or does not finish the handshake in
 *            BACKING_NBD_CONNECT_TIMEOUT_MS
 *   ENOTSUP  an NBD URI, but built without libnbd
 *   ENOMEM   no memory for the bitmap
 */
extern struct backing *backing_open (const char *spec, uint64_t max_bytes,
                                     char *err, size_t err_cap);

/* Close the store, releasing its lock.  Blocks still allocated are not
 * trimmed (call backing_free_all first for that).  NULL is accepted.
 */
extern void backing_close (struct backing *b);

/* Number of blocks of the store (> 0). */
extern uint64_t backing_nr_blocks (const struct backing *b);

/* The spec the store was opened with. */
extern const char *backing_name (const struct backing *b);

/* The kind of store ("file", "block device", "nbd"), for messages and
 * stats.
 */
extern const char *backing_kind (const struct backing *b);

/* Reads, writes (each io of a batch) and trims that the store failed
 * since it was opened (a read whose bytes fail their checksum is not
 * one of them: the device counts those as bd_checksum_errors).
 */
extern uint64_t backing_errors (const struct backing *b);

/* Connections to the store made again after they broke (an NBD server
 * that came back: one per connection, BACKING_NBD_CONNS at most per
 * outage); 0 for a file.
 */
extern uint64_t backing_reconnects (const struct backing *b);

/* --- data --------------------------------------------------------------- */

/* Read block (< nr_blocks) into buf (BACKING_BLOCK_SIZE bytes) and check
 * it against the checksum of what was last written to it.  Returns 0, or
 * -1 with errno EINVAL (block out of range), EBADMSG (the store returned
 * other bytes than were written; buf is then filled with zeroes, never
 * with those bytes), or the store's error (EIO for a short read or a
 * failing device).  A block never written through this store fails the
 * check too, but for a chance of 2^-64 (its recorded checksum is 0).
 */
extern int backing_read (struct backing *b, uint64_t block, void *buf);

/* Write buf (BACKING_BLOCK_SIZE bytes) to block and remember its checksum
 * for later reads (it is recorded before the write, so a read racing the
 * write fails the check rather than passing stale bytes; the device never
 * reads a block before its write returned).  Returns 0, or -1 with
 * errno EINVAL (out of range), ENOSPC (a sparse file whose file system is
 * full), EIO or the store's error.  Durability: the data is handed to the
 * kernel (no fsync); a page written back lives no longer than the device
 * it came from, which is gone after a crash anyway.
 */
extern int backing_write (struct backing *b, uint64_t block, const void *buf);

/* One write of a batch (backing_write_batch). */
struct backing_io {
  uint64_t block;             /* < nr_blocks */
  const void *buf;            /* BACKING_BLOCK_SIZE bytes */
  int err;                    /* out: 0, or this write's errno as for
                                 backing_write */
};

/* Write n blocks, each as backing_write would, letting the store keep
 * several in flight at once: an NBD store sends them all before it waits
 * for the replies; a file writes them in turn.  The writes may complete
 * in any order, so no two ios may name the same block.  Checksums are
 * recorded as by backing_write.  Returns the number of ios that failed
 * (0: all written); each io's err says which.
 */
extern size_t backing_write_batch (struct backing *b, struct backing_io *io,
                                   size_t n);

/* Advise the store that count blocks from block on hold nothing: a sparse
 * file or thin device gives their space back.  Advisory: a store that
 * cannot trim (the file system does not punch holes) is not asked again,
 * and that is not an error.  Returns 0, or -1 with errno EINVAL (out of
 * range) or an unexpected error of the store.
 */
extern int backing_trim (struct backing *b, uint64_t block, uint64_t count);

/* True while trims reach the store (false once it said it cannot). */
extern bool backing_can_trim (const struct backing *b);

/* --- allocator ---------------------------------------------------------- */

/* Take a free block, with one reference (the caller's): sets *block and
 * returns 0, or -1 with errno ENOSPC when every block is taken.
 * Lock-free; concurrent callers get distinct blocks.  When no block is
 * free but some wait for their trim, it trims them first (store I/O).
 */
extern int backing_alloc_block (struct backing *b, uint64_t *block);

/* Add n references to block.  The caller must hold a reference to it, or
 * reach it through something that does and cannot drop it meanwhile (a
 * slot whose written-back object lies in the block, under the slot lock):
 * a block whose count reached 0 is being freed and cannot be revived.
 * Lock-free, never blocks.
 */
extern void backing_block_get (struct backing *b, uint64_t block, uint32_t n);

/* Drop one reference to block.  The last one gives the block back: it
 * counts as free at once (backing_used_blocks), but it is queued, not
 * trimmed: its trim is store I/O, which the caller (a request overwriting
 * a written-back page) must not wait for.  backing_trim_pending trims the
 * queue and only then makes the blocks free for backing_alloc_block, so a
 * block handed out again is never trimmed after its new owner wrote it.
 * Lock-free, never blocks, never fails.
 */
extern void backing_block_put (struct backing *b, uint64_t block);

/* Give back a block whose only reference is the caller's (taken by
 * backing_alloc_block, never shared): backing_block_put.
 */
extern void backing_free_block (struct backing *b, uint64_t block);

/* Blocks in use now (allocated and not given back; queued ones are not
 * counted).
 */
extern uint64_t backing_used_blocks (const struct backing *b);

/* At most this many blocks are trimmed by one backing_trim_pending. */
#define BACKING_TRIM_MAX 1024

/* Trim the blocks given back since the last call, in runs of adjacent
 * blocks, and make them free: at most BACKING_TRIM_MAX of them (a bounded
 * time), the rest staying queued for the next call.  Returns how many
 * left the queue (0: it was empty, or another caller has it); those whose
 * trim failed are not freed (backing_stranded_blocks).  May block
 * for the store (each run is one trim request); call it from background
 * work, never from a request.  backing_alloc_block calls it when no block
 * is free.  Thread-safe: concurrent callers take disjoint parts of the
 * queue.  A block whose trim fails is kept
 * (backing_stranded_blocks).
 */
extern uint64_t backing_trim_pending (struct backing *b);

/* Blocks given back whose trim failed.  A failed trim may still be
 * carried out later (an NBD server past its deadline), and would erase
 * whatever a new owner wrote there; so these blocks are not handed out
 * again, and count as used, until backing_free_all.  Space, never data.
 */
extern uint64_t backing_stranded_blocks (const struct backing *b);

/* Blocks given back and waiting for backing_trim_pending. */
extern uint64_t backing_pending_blocks (const struct backing *b);

/* Give back every allocated block, whatever its references (the queued
 * ones too), trimming them on the store in runs.  Exclusive use (the device's reset and
 * teardown, when no page can refer to the store any more and no reader
 * holds a reference).
 */
extern void backing_free_all (struct backing *b);

#endif /* ZRAM_BACKING_H */
