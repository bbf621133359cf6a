/* nbdkit-zram: the control protocol.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Every command is parsed and validated in full before it touches the
 * device, so that a command which fails in parsing changes nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zram/background.h"
#include "zram/compactor.h"
#include "zram/policy-group.h"
#include "zram/policy-recompress.h"
#include "zram/policy-writeback.h"
#include "zram/size.h"
#include "zram/thread-ctx.h"
#include "zram/zctl.h"
#include "zram/zram.h"

/* A reply under construction.  Lines are appended whole or not at all. */
struct reply {
  char buf[ZCTL_REPLY_MAX];
  size_t len;
};

static void __attribute__ ((format (printf, 2, 3)))
reply_line (struct reply *r, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (r->buf + r->len, sizeof r->buf - r->len, fmt, ap);
  va_end (ap);
  /* Drop a line that does not fit (cannot happen with the fixed set of
   * replies below, which stay far under ZCTL_REPLY_MAX).
   */
  if (n < 0 || (size_t) n + 1 >= sizeof r->buf - r->len) {
    r->buf[r->len] = '\0';
    return;
  }
  r->len += n;
  r->buf[r->len++] = '\n';
  r->buf[r->len] = '\0';
}

static const char *
errno_name (int err)
{
  switch (err) {
  case EINVAL: return "EINVAL";
  case EBUSY: return "EBUSY";
  case EIO: return "EIO";
  case ENOMEM: return "ENOMEM";
  case E2BIG: return "E2BIG";
  case ERANGE: return "ERANGE";
  case EACCES: return "EACCES";
  case EAGAIN: return "EAGAIN";
  case ENOSPC: return "ENOSPC";
  case ENODEV: return "ENODEV";
  case EDQUOT: return "EDQUOT";
  default: return "EIO";
  }
}

/* Terminate the reply with an error line.  Returns -1 for convenience. */
static int __attribute__ ((format (printf, 3, 4)))
reply_error (struct reply *r, int err, const char *fmt, ...)
{
  char msg[ZCTL_LINE_MAX + 128];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  /* Data lines collected before the error are dropped: an error reply is
   * a single line.
   */
  r->len = 0;
  reply_line (r, "error %s: %s", errno_name (err), msg);
  return -1;
}

static int
reply_ok (struct reply *r)
{
  reply_line (r, "ok");
  return 0;
}

/* Copy the reply out, keeping the terminating line if it must truncate. */
static void
reply_copy (const struct reply *r, char *out, size_t cap)
{
  size_t last, keep;

  if (cap == 0)
    return;
  if (r->len < cap) {
    memcpy (out, r->buf, r->len + 1);
    return;
  }
  /* Start of the last line. */
  last = r->len - 1;
  while (last > 0 && r->buf[last - 1] != '\n')
    last--;
  if (r->len - last >= cap) {
    /* Not even the last line fits: cut its text, keep its newline. */
    if (cap < 2) {
      out[0] = '\0';
      return;
    }
    memcpy (out, r->buf + last, cap - 2);
    out[cap - 2] = '\n';
    out[cap - 1] = '\0';
    return;
  }
  /* As many whole leading lines as fit before the last line. */
  keep = cap - 1 - (r->len - last);
  while (keep > 0 && r->buf[keep - 1] != '\n')
    keep--;
  memcpy (out, r->buf, keep);
  memcpy (out + keep, r->buf + last, r->len - last);
  out[keep + r->len - last] = '\0';
}

/* A decimal int with optional leading '-', nothing else.  0 or -1. */
static int
parse_int (const char *str, int *out)
{
  char *end;
  long v;

  if (!((str[0] >= '0' && str[0] <= '9') ||
        (str[0] == '-' && str[1] >= '0' && str[1] <= '9')))
    return -1;
  errno = 0;
  v = strtol (str, &end, 10);
  if (errno != 0 || *end != '\0' || v < -1000000 || v > 1000000)
    return -1;
  *out = (int) v;
  return 0;
}

static int
cmd_help (struct reply *r)
{
  reply_line (r, "command=help");
  reply_line (r, "command=stats");
  reply_line (r, "command=histograms");
  reply_line (r, "command=reset [force] [nowait] [algorithm=NAME] [level=N]");
  reply_line (r, "command=compact");
  reply_line (r, "command=mem_limit SIZE");
  reply_line (r, "command=mem_used_max 0");
  reply_line (r, "command=idle all|SECONDS");
  reply_line (r, "command=recompress type=idle|huge|huge_idle "
              "[threshold=BYTES] [max_pages=N] [algo=NAME[:LEVEL]|priority=N]");
  reply_line (r, "command=writeback type=idle|huge|huge_idle|incompressible "
              "[max_pages=N]");
  reply_line (r, "command=writeback_limit BLOCKS");
  reply_line (r, "command=writeback_limit_enable 0|1");
  reply_line (r, "command=group [max_pages=N] [age=SECONDS]");
  reply_line (r, "command=dissolve [live_min=PERCENT]");
  reply_line (r, "algorithms=%s", ZCOMP_ALGO_NAMES);
  return reply_ok (r);
}

/* The background policies (include/zram/background.h): always every key,
 * 0 for a policy that does not run, so that a client can rely on them.
 */
static void
reply_policy_stats (struct zram *zram, struct reply *r)
{
  struct zram_bg *bg = zram_background (zram);
  struct zram_bg_counts c;

  zram_bg_counts (bg, zram_bg_find (bg, ZRAM_COMPACTOR_POLICY), &c);
  reply_line (r, "compact_policy_rounds=%" PRIu64, c.rounds);
  reply_line (r, "compact_policy_cpu_ms=%" PRIu64, c.cpu_ns / 1000000);
  zram_bg_counts (bg, zram_bg_find (bg, ZRAM_RECOMP_POLICY), &c);
  reply_line (r, "recomp_policy=%d",
              zram_bg_find (bg, ZRAM_RECOMP_POLICY) >= 0 ? 1 : 0);
  reply_line (r, "recomp_policy_rounds=%" PRIu64, c.rounds);
  reply_line (r, "recomp_policy_pages=%" PRIu64, c.work);
  reply_line (r, "recomp_policy_cpu_ms=%" PRIu64, c.cpu_ns / 1000000);
  reply_line (r, "recomp_policy_throttled=%" PRIu64, c.throttled);
  reply_line (r, "recomp_policy_urgent=%" PRIu64, c.urgent);
  reply_line (r, "recomp_policy_yielded=%" PRIu64, c.yielded);
  zram_bg_counts (bg, zram_bg_find (bg, ZRAM_WB_POLICY), &c);
  reply_line (r, "wb_policy=%d", zram_bg_find (bg, ZRAM_WB_POLICY) >= 0);
  reply_line (r, "wb_policy_rounds=%" PRIu64, c.rounds);
  reply_line (r, "wb_policy_pages=%" PRIu64, c.work);
  reply_line (r, "wb_policy_cpu_ms=%" PRIu64, c.cpu_ns / 1000000);
  reply_line (r, "wb_policy_urgent=%" PRIu64, c.urgent);
  reply_line (r, "wb_policy_yielded=%" PRIu64, c.yielded);
  zram_bg_counts (bg, zram_bg_find (bg, ZRAM_GROUP_POLICY), &c);
  reply_line (r, "group_policy=%d", zram_bg_find (bg, ZRAM_GROUP_POLICY) >= 0);
  reply_line (r, "group_policy_rounds=%" PRIu64, c.rounds);
  reply_line (r, "group_policy_pages=%" PRIu64, c.work);
  reply_line (r, "group_policy_cpu_ms=%" PRIu64, c.cpu_ns / 1000000);
  reply_line (r, "group_policy_yielded=%" PRIu64, c.yielded);
}

static int
cmd_stats (struct zram *zram, struct reply *r)
{
  struct zram_stats s;

  zram_get_stats (zram, &s);
  reply_line (r, "disksize=%" PRIu64, s.disksize);
  reply_line (r, "orig_data_size=%" PRIu64, s.orig_data_size);
  reply_line (r, "compr_data_size=%" PRIu64, s.compr_data_size);
  reply_line (r, "mem_used_total=%" PRIu64, s.mem_used_total);
  reply_line (r, "mem_limit=%" PRIu64, s.mem_limit);
  reply_line (r, "mem_used_max=%" PRIu64, s.mem_used_max);
  reply_line (r, "same_pages=%" PRIu64, s.same_pages);
  reply_line (r, "pages_compacted=%" PRIu64, s.pages_compacted);
  reply_line (r, "huge_pages=%" PRIu64, s.huge_pages);
  reply_line (r, "huge_pages_since=%" PRIu64, s.huge_pages_since);
  reply_line (r, "failed_reads=%" PRIu64, s.failed_reads);
  reply_line (r, "failed_writes=%" PRIu64, s.failed_writes);
  reply_line (r, "invalid_io=%" PRIu64, s.invalid_io);
  reply_line (r, "notify_free=%" PRIu64, s.notify_free);
  reply_line (r, "algorithm=%s", zcomp_algo_name (s.algo));
  reply_line (r, "level=%d", s.level);
  reply_line (r, "pool=%s", zpool_kind_name (s.pool));
  reply_line (r, "connections=%" PRIu64, s.openers);
  reply_line (r, "initialised=%d", s.initialised ? 1 : 0);
  {
    int pids[ZRAM_MAX_CLIENT_PIDS];
    size_t i, n = zram_client_pids (zram, pids, ZRAM_MAX_CLIENT_PIDS);
    char list[ZRAM_MAX_CLIENT_PIDS * 12] = "";
    size_t len = 0;

    for (i = 0; i < n; i++)
      len += snprintf (list + len, sizeof list - len, "%s%d", i ? "," : "", pids[i]);
    reply_line (r, "client_pids=%s", list);
  }
  /* zramctl's STREAMS: each thread that serves the device has its own
   * codec state (include/zram/thread-ctx.h).
   */
  reply_line (r, "streams=%u", zram_thread_ctx_live ());
  reply_line (r, "reserve_bytes=%" PRIu64, s.reserve_bytes);
  reply_line (r, "reserve_free=%" PRIu64, s.reserve_free);
  reply_line (r, "reserve_refills=%" PRIu64, s.reserve_refills);
  reply_line (r, "reserve_empty=%" PRIu64, s.reserve_empty);
  reply_line (r, "reserve_failed=%" PRIu64, s.reserve_failed);
  reply_line (r, "idle_pages=%" PRIu64, s.idle_pages);
  reply_line (r, "incompressible_pages=%" PRIu64, s.incompressible_pages);
  reply_line (r, "recomp_attempts=%" PRIu64, s.recomp_attempts);
  reply_line (r, "recomp_successes=%" PRIu64, s.recomp_successes);
  reply_line (r, "recomp_bytes_saved=%" PRIu64, s.recomp_bytes_saved);
  for (unsigned i = 0; i < ZRAM_MAX_RECOMP; i++)
    reply_line (r, "pages_recomp%u=%" PRIu64, i + 1, s.pages_recomp[i]);
  {
    char list[ZRAM_MAX_RECOMP * 24] = "";
    size_t len = 0;

    for (unsigned i = 0; i < s.nr_recomp; i++)
      len += snprintf (list + len, sizeof list - len, "%s%s:%d", i ? "," : "",
                       zcomp_algo_name (s.recomp[i].algo), s.recomp[i].level);
    reply_line (r, "recomp_algorithm=%s", list);
  }
  reply_line (r, "dict_version=%" PRIu64, s.dict_version);
  reply_line (r, "dict_bytes=%" PRIu64, s.dict_bytes);
  reply_line (r, "dict_pages=%" PRIu64, s.dict_pages);
  reply_line (r, "dict_mem_bytes=%" PRIu64, s.dict_mem_bytes);
  reply_line (r, "dict_trainings=%" PRIu64, s.dict_trainings);
  reply_line (r, "dict_rejected=%" PRIu64, s.dict_rejected);
  reply_line (r, "bd_count=%" PRIu64, s.bd_count);
  reply_line (r, "bd_reads=%" PRIu64, s.bd_reads);
  reply_line (r, "bd_writes=%" PRIu64, s.bd_writes);
  reply_line (r, "bd_checksum_errors=%" PRIu64, s.bd_checksum_errors);
  reply_line (r, "backing_blocks=%" PRIu64, s.bd_blocks);
  reply_line (r, "backing_blocks_used=%" PRIu64, s.bd_blocks_used);
  reply_line (r, "backing_errors=%" PRIu64, s.bd_errors);
  reply_line (r, "backing_reconnects=%" PRIu64, s.bd_reconnects);
  reply_line (r, "writeback_limit_enable=%d", s.wb_limit_enable ? 1 : 0);
  reply_line (r, "writeback_limit=%" PRIu64, s.wb_limit);
  reply_line (r, "wb_room_waits=%" PRIu64, s.room_waits);
  reply_line (r, "wb_room_failed=%" PRIu64, s.room_failed);
  reply_line (r, "group_pages_max=%u", s.group_max_pages);
  reply_line (r, "group_algorithm=%s:%d", s.group_max_pages
              ? zcomp_algo_name (s.group_algo.algo) : "none",
              s.group_max_pages ? s.group_algo.level : 0);
  reply_line (r, "group_objects=%" PRIu64, s.group_objects);
  reply_line (r, "group_pages=%" PRIu64, s.group_pages);
  reply_line (r, "group_compr_size=%" PRIu64, s.group_compr_size);
  reply_line (r, "groups_dissolved=%" PRIu64, s.groups_dissolved);
  reply_policy_stats (zram, r);
  return reply_ok (r);
}

/* One line per histogram: "NAME=SUM C0 C1 ... Ck", the sum of the samples
 * and the per-bucket counts (see include/zram/histogram.h), trailing
 * empty buckets left out.
 */
static int
cmd_histograms (struct zram *zram, struct reply *r)
{
  static const char *const names[ZRAM_HIST_NR] = {
    [ZRAM_HIST_READ_US] = "read_latency_us",
    [ZRAM_HIST_WRITE_US] = "write_latency_us",
    [ZRAM_HIST_DISCARD_US] = "discard_latency_us",
    [ZRAM_HIST_COMPR_SIZE] = "compressed_size_bytes",
  };
  char line[ZCTL_REPLY_MAX / ZRAM_HIST_NR];
  struct zram_hist_snapshot snap;
  int id, b, last;
  size_t len;

  for (id = 0; id < ZRAM_HIST_NR; id++) {
    zram_get_histogram (zram, id, &snap);
    for (last = ZRAM_HIST_BUCKETS - 1; last > 0 && snap.count[last] == 0; last--)
      ;
    len = snprintf (line, sizeof line, "%" PRIu64, snap.sum);
    for (b = 0; b <= last && len < sizeof line; b++)
      len += snprintf (line + len, sizeof line - len, " %" PRIu64, snap.count[b]);
    reply_line (r, "%s=%s", names[id], line);
  }
  return reply_ok (r);
}

static int
cmd_reset (struct zram *zram, struct reply *r, char **words, size_t n)
{
  bool force = false, nowait = false, have_algo = false, have_level = false;
  enum zcomp_algo algo = ZCOMP_DEFAULT_ALGO;
  int level = 0, lmin, lmax, ldflt;
  struct zram_stats s;
  struct zram_config config;
  size_t i;

  for (i = 1; i < n; i++) {
    if (strcmp (words[i], "force") == 0 && !force)
      force = true;
    else if (strcmp (words[i], "nowait") == 0 && !nowait)
      nowait = true;
    else if (strncmp (words[i], "algorithm=", 10) == 0 && !have_algo) {
      if (zcomp_parse_algo (words[i] + 10, &algo) == -1)
        return reply_error (r, EINVAL, "unknown algorithm '%s' (known: %s)",
                            words[i] + 10, ZCOMP_ALGO_NAMES);
      have_algo = true;
    }
    else if (strncmp (words[i], "level=", 6) == 0 && !have_level) {
      if (parse_int (words[i] + 6, &level) == -1)
        return reply_error (r, EINVAL, "bad level '%s'", words[i] + 6);
      have_level = true;
    }
    else
      return reply_error (r, EINVAL,
                          "reset: unexpected or repeated argument '%s' "
                          "(usage: reset [force] [nowait] [algorithm=NAME] "
                          "[level=N])",
                          words[i]);
  }

  zram_get_stats (zram, &s);
  if (have_level && !have_algo)
    algo = s.algo;                      /* a new level for the same codec */
  if (have_level && level != 0) {
    zcomp_level_range (algo, &lmin, &lmax, &ldflt);
    if (level < lmin || level > lmax)
      return reply_error (r, EINVAL, "level %d out of range for %s (%d..%d)",
                          level, zcomp_algo_name (algo), lmin, lmax);
  }

  /* A client that has just disconnected is closed by its server a moment
   * later (nbdkit runs .close after the client has seen the disconnect),
   * so "disconnect, then reset" would fail now and then without this wait.
   */
  if (!force && !nowait)
    zram_wait_idle (zram, ZCTL_RESET_WAIT_MS);

  config.disksize = zram_disksize (zram);
  config.algo = algo;
  config.level = level;
  config.pool = s.pool;
  if (zram_reset (zram, force, have_algo || have_level ? &config : NULL) == -1) {
    int err = errno;

    zram_get_stats (zram, &s);
    switch (err) {
    case EBUSY:
      /* No command spelling here: nbdzramctl adds its own hint. */
      return reply_error (r, EBUSY,
                          "reset refused: %" PRIu64 " connection%s still "
                          "open%s; a forced reset would discard the data "
                          "under %s", s.openers, s.openers == 1 ? "" : "s",
                          nowait ? "" : " after waiting for "
                          "disconnects", s.openers == 1 ? "it" : "them");
    case ENOMEM:
      if (s.reserve_bytes)
        return reply_error (r, ENOMEM, "reset failed: out of memory: the "
                            "new state's reserve of %" PRIu64 " bytes is "
                            "filled before the old one is freed, and that "
                            "memory could not be had; the device is "
                            "unchanged", s.reserve_bytes);
      return reply_error (r, ENOMEM, "reset failed: out of memory; the "
                          "device is unchanged");
    default:
      return reply_error (r, err, "reset failed: %s", strerror (err));
    }
  }
  return reply_ok (r);
}

static int
cmd_compact (struct zram *zram, struct reply *r)
{
  int64_t freed = zram_compact (zram);

  if (freed == -1)
    return reply_error (r, EIO, "compact: device not initialised "
                        "(a reset is in progress or failed)");
  reply_line (r, "pages_freed=%" PRIi64, freed);
  return reply_ok (r);
}

static int
cmd_mem_limit (struct zram *zram, struct reply *r, char **words, size_t n)
{
  uint64_t bytes;

  if (n != 2)
    return reply_error (r, EINVAL, "usage: mem_limit SIZE (e.g. 512M; 0 = none)");
  if (zram_parse_size (words[1], &bytes) == -1)
    return reply_error (r, errno, "mem_limit: '%.64s' is not a size: use "
                        ZRAM_SIZE_SYNTAX, words[1]);
  zram_set_mem_limit (zram, bytes);
  return reply_ok (r);
}

static int
cmd_mem_used_max (struct zram *zram, struct reply *r, char **words, size_t n)
{
  if (n != 2 || strcmp (words[1], "0") != 0)
    return reply_error (r, EINVAL, "usage: mem_used_max 0 (only 0 is accepted)");
  zram_reset_mem_used_max (zram);
  return reply_ok (r);
}

/* A decimal number without sign, nothing else, at most max.  0 or -1. */
static int
parse_u64 (const char *str, uint64_t max, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (!(str[0] >= '0' && str[0] <= '9'))
    return -1;
  errno = 0;
  v = strtoull (str, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return -1;
  *out = v;
  return 0;
}

/* The device's recompression algorithms as "zstd:3,zstd:19" (or "none"). */
static const char *
recomp_list (const struct zram_stats *s, char *buf, size_t cap)
{
  size_t len = 0;

  snprintf (buf, cap, "none");
  for (unsigned i = 0; i < s->nr_recomp; i++)
    len += snprintf (buf + len, cap - len, "%s%s:%d", i ? "," : "",
                     zcomp_algo_name (s->recomp[i].algo), s->recomp[i].level);
  return buf;
}

static int
cmd_idle (struct zram *zram, struct reply *r, char **words, size_t n)
{
  uint64_t age = 0, marked;

  if (n != 2 || (strcmp (words[1], "all") != 0 &&
                 parse_u64 (words[1], UINT32_MAX, &age) == -1))
    return reply_error (r, EINVAL, "usage: idle all|SECONDS (SECONDS: pages "
                        "not accessed for that long, 1 to %" PRIu32 ")",
                        UINT32_MAX);
  if (strcmp (words[1], "all") != 0 && age == 0)
    return reply_error (r, EINVAL, "idle: 0 seconds would mark every page: "
                        "say 'all' if that is meant");
  if (zram_mark_idle (zram, (uint32_t) age, &marked) == -1)
    return reply_error (r, errno, "idle: %s", errno == EIO
                        ? "device not initialised (a reset is in progress)"
                        : errno == ECANCELED
                        ? "stopped part way: the server is shutting down"
                        : strerror (errno));
  reply_line (r, "marked=%" PRIu64, marked);
  return reply_ok (r);
}

#define RECOMPRESS_USAGE "usage: recompress type=idle|huge|huge_idle " \
  "[threshold=BYTES] [max_pages=N] [algo=NAME[:LEVEL]|priority=N]"

static int
cmd_recompress (struct zram *zram, struct reply *r, char **words, size_t n)
{
  struct zram_recomp_req req = { .type = 0 };
  struct zram_recomp_result res;
  struct zram_stats s;
  const char *algo = NULL;
  bool have_threshold = false, have_max = false;
  uint64_t v, prio = 0;
  char list[ZRAM_MAX_RECOMP * 24];
  size_t i;

  for (i = 1; i < n; i++) {
    const char *w = words[i];

    if (strncmp (w, "type=", 5) == 0 && req.type == 0) {
      if (strcmp (w + 5, "idle") == 0)
        req.type = ZRAM_RECOMP_IDLE;
      else if (strcmp (w + 5, "huge") == 0)
        req.type = ZRAM_RECOMP_HUGE;
      else if (strcmp (w + 5, "huge_idle") == 0)
        req.type = ZRAM_RECOMP_HUGE_IDLE;
      else
        return reply_error (r, EINVAL, "recompress: unknown type '%.32s' "
                            "(known: idle, huge, huge_idle)", w + 5);
    }
    else if (strncmp (w, "threshold=", 10) == 0 && !have_threshold) {
      if (parse_u64 (w + 10, ZRAM_PAGE_SIZE, &v) == -1)
        return reply_error (r, EINVAL, "recompress: threshold '%.32s' is not "
                            "a number of bytes from 0 to %u", w + 10,
                            ZRAM_PAGE_SIZE);
      req.threshold = v;
      have_threshold = true;
    }
    else if (strncmp (w, "max_pages=", 10) == 0 && !have_max) {
      if (parse_u64 (w + 10, UINT64_MAX, &v) == -1)
        return reply_error (r, EINVAL, "recompress: max_pages '%.32s' is not "
                            "a number (0 = no limit)", w + 10);
      req.max_pages = v;
      have_max = true;
    }
    else if (strncmp (w, "algo=", 5) == 0 && algo == NULL && prio == 0)
      algo = w + 5;
    else if (strncmp (w, "priority=", 9) == 0 && algo == NULL && prio == 0) {
      if (parse_u64 (w + 9, ZRAM_MAX_RECOMP, &prio) == -1 || prio == 0)
        return reply_error (r, EINVAL, "recompress: priority '%.32s' is not "
                            "1 to %d", w + 9, ZRAM_MAX_RECOMP);
    }
    else if (strncmp (w, "algo=", 5) == 0 || strncmp (w, "priority=", 9) == 0)
      return reply_error (r, EINVAL, "recompress: unexpected or repeated "
                          "argument '%.64s' (algo= and priority= exclude each "
                          "other; " RECOMPRESS_USAGE ")", w);
    else
      return reply_error (r, EINVAL, "recompress: unexpected or repeated "
                          "argument '%.64s' (" RECOMPRESS_USAGE ")", w);
  }
  if (req.type == 0)
    return reply_error (r, EINVAL, "recompress: type= is required ("
                        RECOMPRESS_USAGE ")");

  zram_get_stats (zram, &s);
  /* Unpublished by a reset, the device reports no algorithms at all. */
  if (!s.initialised)
    return reply_error (r, EIO, "recompress: device not initialised (a "
                        "reset is in progress)");
  if (s.nr_recomp == 0)
    return reply_error (r, EINVAL, "recompress: the device has no "
                        "recompression algorithm (start it with "
                        "recomp_algorithm=NAME[:LEVEL],...)");
  if (algo) {
    /* NAME or NAME:LEVEL: with zstd:3,zstd:19 a bare "zstd" would name
     * two priorities, and taking the first would quietly use the weaker.
     */
    const char *colon = strchr (algo, ':');
    char name[16];
    enum zcomp_algo a;
    uint64_t level = 0;
    unsigned matches = 0;

    snprintf (name, sizeof name, "%.*s",
              (int) (colon ? (size_t) (colon - algo) : strlen (algo)), algo);
    if ((colon ? (size_t) (colon - algo) : strlen (algo)) >= sizeof name ||
        zcomp_parse_algo (name, &a) == -1)
      return reply_error (r, EINVAL, "recompress: unknown algorithm '%.32s' "
                          "(known: %s; algo=NAME or algo=NAME:LEVEL)", algo,
                          ZCOMP_ALGO_NAMES);
    if (colon && parse_u64 (colon + 1, INT32_MAX, &level) == -1)
      return reply_error (r, EINVAL, "recompress: level '%.32s' in algo= is "
                          "not a level (algo=NAME:LEVEL, e.g. algo=zstd:19)",
                          colon + 1);
    for (i = 0; i < s.nr_recomp; i++)
      if (s.recomp[i].algo == a &&
          (!colon || (uint64_t) s.recomp[i].level == level)) {
        if (matches++ == 0)
          prio = i + 1;
      }
    if (matches == 0)
      return reply_error (r, EINVAL, "recompress: %.32s is not one of the "
                          "device's recompression algorithms (%s)",
                          colon ? algo : zcomp_algo_name (a),
                          recomp_list (&s, list, sizeof list));
    if (matches > 1)
      return reply_error (r, EINVAL, "recompress: %s is %u of the device's "
                          "recompression algorithms (%s): name one with "
                          "its level (algo=%s:LEVEL) or by priority=N",
                          zcomp_algo_name (a), matches,
                          recomp_list (&s, list, sizeof list),
                          zcomp_algo_name (a));
  }
  else if (prio > s.nr_recomp)
    return reply_error (r, EINVAL, "recompress: priority %" PRIu64 " is not "
                        "configured: the device has %u recompression "
                        "algorithm%s (%s)", prio, s.nr_recomp,
                        s.nr_recomp == 1 ? "" : "s",
                        recomp_list (&s, list, sizeof list));
  req.prio_min = req.prio_max = prio;

  if (zram_recompress (zram, &req, &res) == -1) {
    int err = errno;

    return reply_error (r, err, "recompress: %s after %" PRIu64 " pages "
                        "recompressed", err == EIO && res.scanned == 0
                        ? "device not initialised (a reset is in progress)"
                        : err == ECANCELED
                        ? "stopped part way: the server is shutting down"
                        : strerror (err), res.recompressed);
  }
  reply_line (r, "scanned=%" PRIu64, res.scanned);
  reply_line (r, "attempted=%" PRIu64, res.attempted);
  reply_line (r, "recompressed=%" PRIu64, res.recompressed);
  reply_line (r, "incompressible=%" PRIu64, res.incompressible);
  reply_line (r, "raced=%" PRIu64, res.raced);
  reply_line (r, "bytes_saved=%" PRIu64, res.bytes_saved);
  reply_line (r, "nospace=%" PRIu64, res.nospace);
  return reply_ok (r);
}

/* Refuse a group or dissolve on a device without groups, or mid-reset. */
static int
group_device_check (struct zram *zram, struct reply *r, const char *cmd)
{
  struct zram_stats s;

  zram_get_stats (zram, &s);
  if (!s.initialised)
    return reply_error (r, EIO, "%s: device not initialised (a reset is in "
                        "progress)", cmd);
  if (s.group_max_pages == 0)
    return reply_error (r, EINVAL, "%s: the device has no multi-page groups "
                        "(start it with group_pages=N, e.g. group_pages=16)",
                        cmd);
  return 0;
}

/* The error of a group or dissolve walk that stopped after done pages. */
static int
group_walk_error (struct reply *r, int err, const char *cmd, uint64_t done)
{
  return reply_error (r, err, "%s: %s after %" PRIu64 " pages", cmd,
                      err == ECANCELED
                      ? "stopped part way: the server is shutting down"
                      : strerror (err), done);
}

#define GROUP_USAGE "usage: group [max_pages=N] [age=SECONDS]"

/* Pack idle pages into multi-page groups now (what the group policy does
 * by itself): pages marked idle, or with age=, not accessed for that long.
 */
static int
cmd_group (struct zram *zram, struct reply *r, char **words, size_t n)
{
  struct zram_group_req req = { .min_age_s = 0 };
  struct zram_group_result res;
  bool have_max = false, have_age = false;
  uint64_t v;

  for (size_t i = 1; i < n; i++) {
    const char *w = words[i];

    if (strncmp (w, "max_pages=", 10) == 0 && !have_max) {
      if (parse_u64 (w + 10, UINT64_MAX, &v) == -1)
        return reply_error (r, EINVAL, "group: max_pages '%.32s' is not a "
                            "number (0 = no limit)", w + 10);
      req.max_pages = v;
      have_max = true;
    }
    else if (strncmp (w, "age=", 4) == 0 && !have_age) {
      if (parse_u64 (w + 4, UINT32_MAX, &v) == -1 || v == 0)
        return reply_error (r, EINVAL, "group: age '%.32s' is not a number "
                            "of seconds from 1 to %" PRIu32, w + 4, UINT32_MAX);
      req.min_age_s = v;
      have_age = true;
    }
    else
      return reply_error (r, EINVAL, "group: unexpected or repeated argument "
                          "'%.64s' (" GROUP_USAGE ")", w);
  }
  if (group_device_check (zram, r, "group") == -1)
    return -1;
  if (zram_group (zram, &req, &res) == -1)
    return group_walk_error (r, errno, "group", res.grouped);
  reply_line (r, "scanned=%" PRIu64, res.scanned);
  reply_line (r, "grouped=%" PRIu64, res.grouped);
  reply_line (r, "groups=%" PRIu64, res.groups);
  reply_line (r, "rejected=%" PRIu64, res.rejected);
  reply_line (r, "raced=%" PRIu64, res.raced);
  reply_line (r, "bytes_saved=%" PRIu64, res.bytes_saved);
  reply_line (r, "nospace=%" PRIu64, res.nospace);
  return reply_ok (r);
}

#define DISSOLVE_USAGE "usage: dissolve [live_min=PERCENT]"

/* Take apart the groups that kept fewer than live_min percent of their
 * pages (default 100: every group that lost one).
 */
static int
cmd_dissolve (struct zram *zram, struct reply *r, char **words, size_t n)
{
  struct zram_dissolve_result res;
  uint64_t live_min = 100;

  /* Blame the word at fault: a good live_min= before a stray word is not. */
  if (n > 2)
    return reply_error (r, EINVAL, "dissolve: unexpected argument '%.64s' ("
                        DISSOLVE_USAGE ")", words[2]);
  if (n == 2 && (strncmp (words[1], "live_min=", 9) != 0 ||
                 parse_u64 (words[1] + 9, 100, &live_min) == -1 ||
                 live_min == 0))
    return reply_error (r, EINVAL, "dissolve: '%.64s' is not live_min=PERCENT "
                        "from 1 to 100 (" DISSOLVE_USAGE ")", words[1]);
  if (group_device_check (zram, r, "dissolve") == -1)
    return -1;
  if (zram_group_dissolve (zram, (unsigned) live_min, 0, false, &res) == -1)
    return group_walk_error (r, errno, "dissolve", res.pages);
  reply_line (r, "groups=%" PRIu64, res.groups);
  reply_line (r, "dissolved=%" PRIu64, res.dissolved);
  reply_line (r, "pages=%" PRIu64, res.pages);
  reply_line (r, "failed=%" PRIu64, res.failed);
  return reply_ok (r);
}

#define WRITEBACK_USAGE "usage: writeback " \
  "type=idle|huge|huge_idle|incompressible [max_pages=N]"

/* zram's writeback file: "type=NAME", or the legacy bare "NAME". */
static int
cmd_writeback (struct zram *zram, struct reply *r, char **words, size_t n)
{
  static const struct { const char *name; enum zram_wb_type type; } types[] = {
    { "idle", ZRAM_WB_IDLE }, { "huge", ZRAM_WB_HUGE },
    { "huge_idle", ZRAM_WB_HUGE_IDLE },
    { "incompressible", ZRAM_WB_INCOMPRESSIBLE },
  };
  struct zram_wb_req req = { .type = 0 };
  struct zram_wb_result res;
  bool have_max = false;
  uint64_t v;
  size_t i, k;

  for (i = 1; i < n; i++) {
    const char *w = words[i];

    if (strncmp (w, "max_pages=", 10) == 0 && !have_max) {
      if (parse_u64 (w + 10, UINT64_MAX, &v) == -1)
        return reply_error (r, EINVAL, "writeback: max_pages '%.32s' is not "
                            "a number (0 = no limit)", w + 10);
      req.max_pages = v;
      have_max = true;
      continue;
    }
    if (req.type == 0) {
      const char *name = strncmp (w, "type=", 5) == 0 ? w + 5 : w;

      for (k = 0; k < sizeof types / sizeof types[0]; k++)
        if (strcmp (name, types[k].name) == 0)
          break;
      if (k < sizeof types / sizeof types[0]) {
        req.type = types[k].type;
        continue;
      }
      if (name != w)
        return reply_error (r, EINVAL, "writeback: unknown type '%.32s' "
                            "(known: idle, huge, huge_idle, incompressible)",
                            name);
    }
    return reply_error (r, EINVAL, "writeback: unexpected or repeated "
                        "argument '%.64s' (" WRITEBACK_USAGE ")", w);
  }
  if (req.type == 0)
    return reply_error (r, EINVAL, "writeback: type= is required ("
                        WRITEBACK_USAGE ")");

  if (zram_writeback (zram, &req, &res) == -1) {
    int err = errno;

    if (err == ENODEV)
      return reply_error (r, err, "writeback: the device has no backing "
                          "store (start the server with backing=PATH or an NBD "
                          "URI)");
    if (err == EDQUOT)
      return reply_error (r, err, "writeback: the writeback limit is used "
                          "up after %" PRIu64 " pages written back (they "
                          "stay there; raise writeback_limit, or disable "
                          "it, to write back more)", res.written);
    if (err == ENOSPC)
      return reply_error (r, err, "writeback: the backing store is full "
                          "(every block taken, or its file system full) "
                          "after %" PRIu64 " pages written back (they stay "
                          "there; trim or rewrite pages to free blocks, or "
                          "free space on the store's file system)",
                          res.written);
    return reply_error (r, err, "writeback: %s after %" PRIu64 " pages "
                        "written back", err == EIO && res.scanned == 0
                        ? "device not initialised (a reset is in progress)"
                        : err == EIO ? "the backing store failed a write"
                        : err == ECANCELED
                        ? "stopped part way: the server is shutting down"
                        : strerror (err), res.written);
  }
  reply_line (r, "scanned=%" PRIu64, res.scanned);
  reply_line (r, "written=%" PRIu64, res.written);
  reply_line (r, "raced=%" PRIu64, res.raced);
  return reply_ok (r);
}

static int
cmd_writeback_limit (struct zram *zram, struct reply *r, char **words,
                     size_t n)
{
  uint64_t blocks;

  if (n != 2 || parse_u64 (words[1], ZRAM_WB_LIMIT_MAX, &blocks) == -1)
    return reply_error (r, EINVAL, "writeback_limit: %s%.32s%s is not a "
                        "number of 4 KiB blocks from 0 to %" PRIu64
                        " (usage: writeback_limit BLOCKS)",
                        n == 2 ? "'" : "", n == 2 ? words[1] : "BLOCKS",
                        n == 2 ? "'" : "", ZRAM_WB_LIMIT_MAX);
  if (zram_set_writeback_limit (zram, blocks) == -1)
    return reply_error (r, errno, "writeback_limit: %s", strerror (errno));
  return reply_ok (r);
}

static int
cmd_writeback_limit_enable (struct zram *zram, struct reply *r, char **words,
                            size_t n)
{
  if (n != 2 || (strcmp (words[1], "0") != 0 && strcmp (words[1], "1") != 0))
    return reply_error (r, EINVAL, "usage: writeback_limit_enable 0|1 (1: "
                        "writeback spends the writeback_limit budget and "
                        "stops at 0; 0: unlimited)");
  zram_set_writeback_limit_enable (zram, words[1][0] == '1');
  return reply_ok (r);
}

enum zctl_lane
zctl_lane (const char *line, size_t len)
{
  static const struct { const char *word; enum zctl_lane lane; } slow[] = {
    { "reset", ZCTL_LANE_SLOW }, { "compact", ZCTL_LANE_SLOW },
    { "idle", ZCTL_LANE_WALK }, { "recompress", ZCTL_LANE_WALK },
    { "writeback", ZCTL_LANE_WALK }, { "group", ZCTL_LANE_WALK },
    { "dissolve", ZCTL_LANE_WALK },
  };
  size_t i, n, k;

  for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
    ;
  for (k = 0; k < sizeof slow / sizeof slow[0]; k++) {
    n = strlen (slow[k].word);
    if (len - i >= n && memcmp (line + i, slow[k].word, n) == 0 &&
        (len - i == n || line[i + n] == ' ' || line[i + n] == '\t' ||
         line[i + n] == '\r'))
      return slow[k].lane;
  }
  return ZCTL_LANE_QUICK;
}

bool
zctl_may_block (const char *line, size_t len)
{
  return zctl_lane (line, len) != ZCTL_LANE_QUICK;
}

int
zctl_execute (struct zram *zram, const char *line, size_t len,
              char *reply, size_t reply_cap)
{
  struct reply r = { .len = 0 };
  char copy[ZCTL_LINE_MAX + 1];
  char *words[ZCTL_MAX_WORDS];
  size_t i, n = 0;
  char *p;
  int ret;

  r.buf[0] = '\0';
  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (len > ZCTL_LINE_MAX) {
    ret = reply_error (&r, E2BIG, "command line longer than %d bytes",
                       ZCTL_LINE_MAX);
    goto out;
  }
  for (i = 0; i < len; i++) {
    unsigned char c = line[i];
    if (c != '\t' && (c < 0x20 || c > 0x7e)) {
      ret = reply_error (&r, EINVAL, "command line contains a byte 0x%02x "
                         "at offset %zu (printable ASCII only)", c, i);
      goto out;
    }
  }
  memcpy (copy, line, len);
  copy[len] = '\0';

  /* Split into words at spaces and tabs. */
  p = copy;
  for (;;) {
    while (*p == ' ' || *p == '\t')
      *p++ = '\0';
    if (*p == '\0')
      break;
    if (n == ZCTL_MAX_WORDS) {
      ret = reply_error (&r, E2BIG, "more than %d words", ZCTL_MAX_WORDS);
      goto out;
    }
    words[n++] = p;
    while (*p != '\0' && *p != ' ' && *p != '\t')
      p++;
  }
  if (n == 0) {
    ret = reply_error (&r, EINVAL, "empty command (try 'help')");
    goto out;
  }

  if (strcmp (words[0], "help") == 0 && n == 1)
    ret = cmd_help (&r);
  else if (strcmp (words[0], "stats") == 0 && n == 1)
    ret = cmd_stats (zram, &r);
  else if (strcmp (words[0], "histograms") == 0 && n == 1)
    ret = cmd_histograms (zram, &r);
  else if (strcmp (words[0], "reset") == 0)
    ret = cmd_reset (zram, &r, words, n);
  else if (strcmp (words[0], "compact") == 0 && n == 1)
    ret = cmd_compact (zram, &r);
  else if (strcmp (words[0], "mem_limit") == 0)
    ret = cmd_mem_limit (zram, &r, words, n);
  else if (strcmp (words[0], "mem_used_max") == 0)
    ret = cmd_mem_used_max (zram, &r, words, n);
  else if (strcmp (words[0], "idle") == 0)
    ret = cmd_idle (zram, &r, words, n);
  else if (strcmp (words[0], "recompress") == 0)
    ret = cmd_recompress (zram, &r, words, n);
  else if (strcmp (words[0], "writeback") == 0)
    ret = cmd_writeback (zram, &r, words, n);
  else if (strcmp (words[0], "group") == 0)
    ret = cmd_group (zram, &r, words, n);
  else if (strcmp (words[0], "dissolve") == 0)
    ret = cmd_dissolve (zram, &r, words, n);
  else if (strcmp (words[0], "writeback_limit") == 0)
    ret = cmd_writeback_limit (zram, &r, words, n);
  else if (strcmp (words[0], "writeback_limit_enable") == 0)
    ret = cmd_writeback_limit_enable (zram, &r, words, n);
  else if (strcmp (words[0], "help") == 0 || strcmp (words[0], "stats") == 0 ||
           strcmp (words[0], "histograms") == 0 ||
           strcmp (words[0], "compact") == 0)
    ret = reply_error (&r, EINVAL, "'%s' takes no arguments", words[0]);
  else
    ret = reply_error (&r, EINVAL, "unknown command '%.64s' (try 'help')",
                       words[0]);

 out:
  reply_copy (&r, reply, reply_cap);
  return ret;
}
