/* nbdkit-zram: the control protocol (one command line in, one reply out).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The control protocol is line based, plain ASCII.  A client sends one
 * command per line, terminated by '\n' (a '\r' before it is ignored).  The
 * reply is zero or more data lines of the form "key=value" (or, for
 * "help", free text that never starts with "ok" or "error"), then exactly
 * one terminating line:
 *
 *   ok
 *   error ENAME: human-readable message
 *
 * so a client reads lines until one is "ok" or begins with "error ".
 * ENAME is the symbolic errno (EINVAL, EBUSY, EIO, ENOMEM, E2BIG, ERANGE,
 * EACCES, EAGAIN, ENOSPC, ENODEV, EDQUOT).  Commands:
 *
 *   help                                  list the commands
 *   stats                                 key=value lines, see below
 *   histograms                            one line per histogram:
 *                                         NAME=SUM C0 C1 ... Ck, the sum
 *                                         of the samples and the count of
 *                                         each log2 bucket (bucket i: up
 *                                         to 2^i; trailing zeroes left
 *                                         out); NAME is read_latency_us,
 *                                         write_latency_us,
 *                                         discard_latency_us (request
 *                                         wall time in microseconds) and
 *                                         compressed_size_bytes (pool
 *                                         bytes per stored page)
 *   reset [force] [nowait] [algorithm=NAME] [level=N]
 *                                         zram_reset; without "force" it
 *                                         first waits up to
 *                                         ZCTL_RESET_WAIT_MS for open
 *                                         connections to close, then fails
 *                                         with EBUSY if any is left
 *                                         ("nowait": fail at once)
 *   compact                               zram_compact; replies
 *                                         pages_compacted=N
 *   mem_limit SIZE                        SIZE as in include/zram/size.h
 *                                         (e.g. 512M); 0 = none
 *   mem_used_max 0                        restart the peak at the current use
 *   idle all|SECONDS                      zram_mark_idle: mark idle every
 *                                         stored page (all), or those not
 *                                         read or written for SECONDS
 *                                         (>= 1); replies marked=N
 *   recompress type=idle|huge|huge_idle [threshold=BYTES] [max_pages=N]
 *              [algo=NAME[:LEVEL]|priority=N] zram_recompress over the whole
 *                                         device; algo= or priority= picks
 *                                         one recompression algorithm
 *                                         (NAME alone must match only one;
 *                                         else NAME:LEVEL) (default: each
 *                                         in turn); EIO during a reset;
 *                                         replies
 *                                         scanned= attempted= recompressed=
 *                                         incompressible= raced=
 *                                         bytes_saved= nospace= (pages left
 *                                         as they were at the memory
 *                                         limit).  If it fails midway
 *                                         (ENOMEM; ECANCELED when the
 *                                         server stops) the pages done
 *                                         stay recompressed (their content
 *                                         is unchanged either way)
 *   writeback type=idle|huge|huge_idle|incompressible [max_pages=N]
 *                                         zram_writeback over the whole
 *                                         device (the bare type, zram's
 *                                         legacy form, is accepted too);
 *                                         replies scanned= written=
 *                                         raced=.  ENODEV without a
 *                                         backing store; ENOSPC when it
 *                                         is full.  If it fails midway
 *                                         the pages done stay written
 *                                         back (their content is the same);
 *                                         EDQUOT when writeback_limit is
 *                                         enabled and used up
 *   writeback_limit BLOCKS                 zram's writeback_limit: the
 *                                         budget of 4 KiB blocks of the store left
 *                                         (0..ZRAM_WB_LIMIT_MAX)
 *   writeback_limit_enable 0|1            zram's writeback_limit_enable
 *
 * "stats" replies with these keys, in this order (zram's names and units;
 * see struct zram_stats): disksize orig_data_size compr_data_size
 * mem_used_total mem_limit mem_used_max same_pages pages_compacted
 * huge_pages huge_pages_since failed_reads failed_writes invalid_io
 * notify_free algorithm level pool connections initialised client_pids
 * (a comma-separated list of the process ids of the NBD clients that
 * have the device open, where the server knows them; may be empty)
 * streams (threads with a codec state of their own: zramctl's STREAMS)
 * reserve_bytes reserve_free reserve_refills reserve_empty reserve_failed
 * (the pool's reserve, see struct zram_stats) idle_pages
 * incompressible_pages recomp_attempts recomp_successes recomp_bytes_saved
 * pages_recomp1 pages_recomp2 pages_recomp3 recomp_algorithm (the
 * recompression algorithms in priority order, "NAME:LEVEL,..."; empty
 * without) bd_count bd_reads bd_writes (zram's bd_stat: pages in the
 * backing store now, read from it, written to it) bd_checksum_errors
 * (reads of the store that failed their checksum) backing_blocks (the
 * store's size in 4 KiB blocks) backing_blocks_used (blocks in use now)
 * backing_errors backing_reconnects (its failed reads, writes and trims,
 * and connections to an NBD store made again; all 0 without a store)
 * writeback_limit_enable writeback_limit (zram's, see
 * zram_set_writeback_limit; in 4 KiB blocks written to the store)
 * wb_room_waits wb_room_failed (writes
 * that found the pool at mem_limit and waited for writeback to make room,
 * and of those the ones that failed all the same)
 * compact_policy_rounds compact_policy_cpu_ms recomp_policy (1
 * if the automatic recompression policy runs, else 0)
 * recomp_policy_rounds recomp_policy_pages recomp_policy_cpu_ms
 * recomp_policy_throttled recomp_policy_urgent recomp_policy_yielded
 * wb_policy (1 if the automatic writeback policy runs) wb_policy_rounds
 * wb_policy_pages wb_policy_cpu_ms wb_policy_urgent (rounds near
 * mem_limit) wb_policy_yielded
 * (the background policies, include/zram/background.h,
 * policy-recompress.h and policy-writeback.h; all 0 for a policy
 * that does not run).  Clients must
 * ignore keys they do not know: more may be added.
 *
 * A command that fails changes nothing.  Errors that nbdzramctl can pass
 * on to its users, who spell commands differently ("reset --force",
 * "mem-limit"), name no command to type: the client adds hints in its own
 * spelling.  Only replies to lines nbdzramctl never sends (an unknown or
 * empty command) point to the protocol's "help".
 *
 * This module is a pure function of (device, line): it does no I/O, so the
 * socket server and the fuzzer share it.  It is thread-safe insofar as the
 * zram calls it makes are.  "reset", "compact", "idle", "recompress"
 * and "writeback" may block (a grace period, the wait for connections to
 * close, the control mutex, a walk of the whole device; see
 * zctl_may_block); the other commands never do.
 */
#ifndef ZRAM_ZCTL_H
#define ZRAM_ZCTL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest command line accepted, in bytes, without its '\n'. */
#define ZCTL_LINE_MAX 256

/* A reply buffer of this many bytes always holds the whole reply. */
#define ZCTL_REPLY_MAX 8192

/* Most whitespace-separated words a command line may have. */
#define ZCTL_MAX_WORDS 8

/* How long "reset" without "force" waits for open connections to close
 * (a client that has just disconnected is closed by nbdkit a moment later).
 */
#define ZCTL_RESET_WAIT_MS 2000

struct zram;

/* Execute one command line.  line points to len bytes without the '\n'
 * (any bytes: a NUL, a control character, a byte >= 0x80, or len >
 * ZCTL_LINE_MAX make the command fail with EINVAL or E2BIG).  The whole
 * reply, every line ending in '\n', is written to reply as a NUL-terminated
 * string.  If reply_cap is smaller than the reply, whole data lines are
 * dropped from the end first, so that the terminating line is still the
 * last one; if even that line does not fit, its text is cut but it keeps
 * its '\n' (reply_cap >= 2).
 *
 * Returns 0 if the reply ends in "ok", -1 if it ends in "error ...".
 */
extern int zctl_execute (struct zram *zram, const char *line, size_t len,
                         char *reply, size_t reply_cap);

/* Whether the command on this line (same bytes as for zctl_execute) may
 * block for long: true for "reset", "compact", "idle", "recompress" and
 * "writeback", whatever their arguments; false for everything else,
 * malformed lines included.  A server can answer the other commands while
 * one of these runs.
 */
extern bool zctl_may_block (const char *line, size_t len);

/* Which of a server's threads should run the command on this line, so
 * that no command waits behind one of another kind: a recompression of a
 * large device takes minutes, and a reset or compaction must not wait
 * for it (the core allows them to run together).
 */
enum zctl_lane {
  ZCTL_LANE_QUICK = 0,        /* answered at once: stats, help, errors... */
  ZCTL_LANE_SLOW,             /* reset, compact: may wait for a grace
                                 period, connections or the control mutex */
  ZCTL_LANE_WALK,             /* idle, recompress, writeback: walk the
                                 whole device */
};
#define ZCTL_NR_LANES 3

/* The lane of the command on this line (same bytes as zctl_execute);
 * zctl_may_block is zctl_lane != ZCTL_LANE_QUICK.
 */
extern enum zctl_lane zctl_lane (const char *line, size_t len);


#endif /* ZRAM_ZCTL_H */
