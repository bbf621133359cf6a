/* nbdzramctl: printing statistics in other programs' formats (see
 * tools/ctl-format.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "zram/histogram.h"
#include "ctl-format.h"

/* Parse a decimal unsigned number that is the whole of s. */
static int
parse_u64 (const char *s, unsigned long long *out)
{
  char *end;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  *out = strtoull (s, &end, 10);
  return errno || *end ? -1 : 0;
}

/* The number of stats key, or -1 after saying what is wrong. */
static int
stat_u64 (FILE *errfp, const struct ctl_device *dev, const char *key,
          unsigned long long *out)
{
  const char *v = zctl_reply_get (dev->stats, key);
  char name[256], clean[64];

  if (parse_u64 (v, out) == 0)
    return 0;
  zctl_clean (dev->name, name, sizeof name);
  if (v == NULL)
    fprintf (errfp, "%s: the server's stats lack '%s' (an older server?)\n",
             name, key);
  else
    fprintf (errfp, "%s: bad number for '%s': %s\n", name, key,
             zctl_clean (v, clean, sizeof clean));
  return -1;
}

/* --- the kernel's sysfs lines -------------------------------------------- */

int
ctl_print_kstat (FILE *fp, FILE *errfp, enum ctl_kstat which,
                 const struct ctl_device *dev)
{
  static const char *const mm[] = {
    "orig_data_size", "compr_data_size", "mem_used_total", "mem_limit",
    "mem_used_max", "same_pages", "pages_compacted", "huge_pages",
    "huge_pages_since", NULL,
  };
  static const char *const io[] = {
    "failed_reads", "failed_writes", "invalid_io", "notify_free", NULL,
  };
  /* Pages in the backing store, read from it, written to it (zram's
   * units: 4 KiB pages).  A server from before writeback has no such keys:
   * three zeroes, as on a kernel zram device without a store.
   */
  static const char *const bd[] = { "bd_count", "bd_reads", "bd_writes", NULL };
  const char *const *keys = which == KSTAT_MM ? mm : which == KSTAT_IO ? io : bd;
  unsigned long long v[16];
  size_t i, n;

  for (n = 0; keys[n]; n++) {
    if (which == KSTAT_BD && zctl_reply_get (dev->stats, keys[n]) == NULL)
      v[n] = 0;
    else if (stat_u64 (errfp, dev, keys[n], &v[n]) == -1)
      return -1;
  }
  for (i = 0; i < n; i++)
    fprintf (fp, "%s%8llu", i ? " " : "", v[i]);
  fputc ('\n', fp);
  return 0;
}

/* --- Prometheus ----------------------------------------------------------- */

enum metric_type { GAUGE, COUNTER };

static const struct metric {
  const char *key;              /* stats key */
  const char *name;
  enum metric_type type;
  const char *help;
  bool optional;                /* servers before it lack the key: leave the
                                   metric out for them rather than fail */
} metrics[] = {
  { "disksize", "nbdzram_disksize_bytes", GAUGE,
    "Size of the device.", false },
  { "orig_data_size", "nbdzram_orig_data_size_bytes", GAUGE,
    "Uncompressed bytes of the pages stored, same-filled pages included "
    "(zram mm_stat orig_data_size).", false },
  { "compr_data_size", "nbdzram_compr_data_size_bytes", GAUGE,
    "Bytes of compressed objects, huge pages counted as 4096 "
    "(zram mm_stat compr_data_size).", false },
  { "mem_used_total", "nbdzram_mem_used_bytes", GAUGE,
    "Memory the pool holds from the OS (zram mm_stat mem_used_total).", false },
  { "mem_limit", "nbdzram_mem_limit_bytes", GAUGE,
    "Memory limit of the pool; 0 means none (zram mem_limit).", false },
  { "mem_used_max", "nbdzram_mem_used_max_bytes", GAUGE,
    "Peak of the pool's memory since initialisation or since it was "
    "restarted (zram mem_used_max).", false },
  { "same_pages", "nbdzram_same_pages", GAUGE,
    "Pages stored as one repeated 8-byte word, without an object "
    "(zram same_pages).", false },
  { "pages_compacted", "nbdzram_pages_compacted_total", COUNTER,
    "Pool pages freed by compaction since initialisation "
    "(zram pages_compacted).", false },
  { "huge_pages", "nbdzram_huge_pages", GAUGE,
    "Pages stored uncompressed (zram huge_pages).", false },
  { "huge_pages_since", "nbdzram_huge_pages_stored_total", COUNTER,
    "Pages stored uncompressed since initialisation "
    "(zram huge_pages_since).", false },
  { "failed_reads", "nbdzram_failed_reads_total", COUNTER,
    "Reads that failed since initialisation (zram failed_reads).", false },
  { "failed_writes", "nbdzram_failed_writes_total", COUNTER,
    "Writes, trims and zeroes that failed since initialisation "
    "(zram failed_writes).", false },
  { "invalid_io", "nbdzram_invalid_io_total", COUNTER,
    "Core requests beyond the device end since initialisation "
    "(zram invalid_io).", false },
  { "notify_free", "nbdzram_notify_free_total", COUNTER,
    "Pages freed by trim or write-zeroes since initialisation "
    "(zram notify_free).", false },
  { "idle_pages", "nbdzram_idle_pages", GAUGE,
    "Pages marked idle and not accessed since (zram idle).", false },
  { "incompressible_pages", "nbdzram_incompressible_pages", GAUGE,
    "Pages that no recompression algorithm shrank, until rewritten "
    "(zram incompressible).", false },
  { "recomp_attempts", "nbdzram_recomp_attempts_total", COUNTER,
    "Pages recompression compressed again since initialisation.", false },
  { "recomp_successes", "nbdzram_recomp_successes_total", COUNTER,
    "Pages recompression stored smaller since initialisation.", false },
  { "recomp_bytes_saved", "nbdzram_recomp_saved_bytes_total", COUNTER,
    "Compressed bytes recompression saved since initialisation (size "
    "before - after).", false },
  { "connections", "nbdzram_connections", GAUGE,
    "Open NBD connections.", false },
  { "initialised", "nbdzram_initialised", GAUGE,
    "1 while the device is initialised, 0 while a reset runs.", false },
  /* The background policies (issue 12). */
  { "compact_policy_rounds", "nbdzram_compact_policy_rounds_total", COUNTER,
    "Background compaction runs.", true },
  { "compact_policy_cpu_ms", "nbdzram_compact_policy_cpu_seconds_total",
    COUNTER, "CPU time of the background compaction policy.", true },
  { "recomp_policy_rounds", "nbdzram_recomp_policy_rounds_total", COUNTER,
    "Rounds of the automatic recompression policy that attempted pages.",
    true },
  { "recomp_policy_pages", "nbdzram_recomp_policy_pages_total", COUNTER,
    "Pages the automatic recompression policy stored smaller.", true },
  { "recomp_policy_cpu_ms", "nbdzram_recomp_policy_cpu_seconds_total",
    COUNTER, "CPU time of the automatic recompression policy (its thread's "
    "CPU clock).", true },
  { "recomp_policy_urgent", "nbdzram_recomp_policy_urgent_rounds_total",
    COUNTER, "Recompression rounds run near mem_limit, regardless of age.",
    true },
  { "recomp_policy_throttled", "nbdzram_recomp_policy_throttled_total",
    COUNTER, "Times a due recompression round waited for its CPU budget.",
    true },
  { "recomp_policy_yielded", "nbdzram_recomp_policy_yielded_total",
    COUNTER, "Recompression rounds skipped or cut short because the device "
    "was serving requests.", true },
  /* Dictionaries (issue 13): servers before them lack the keys. */
  { "dict_version", "nbdzram_dict_version", GAUGE,
    "Version of the dictionary new writes are compressed with (0 = none; "
    "the dict= file is 1).", true },
  { "dict_bytes", "nbdzram_dict_bytes", GAUGE,
    "Size of that dictionary.", true },
  { "dict_pages", "nbdzram_dict_pages", GAUGE,
    "Pages stored now compressed with a dictionary.", true },
  { "dict_mem_bytes", "nbdzram_dict_memory_bytes", GAUGE,
    "Memory the dictionaries hold, prepared state included.", true },
  { "dict_trainings", "nbdzram_dict_trainings_total", COUNTER,
    "Dictionaries trained from the device's pages.", true },
  { "dict_rejected", "nbdzram_dict_rejected_total", COUNTER,
    "Trained dictionaries not used: they did not gain enough on held-out "
    "pages.", true },
  /* Writeback's (issue 14; zram bd_stat): servers before it lack them. */
  { "bd_count", "nbdzram_bd_pages", GAUGE,
    "Pages held in the backing store now (zram bd_count).", true },
  { "bd_reads", "nbdzram_bd_reads_pages_total", COUNTER,
    "Pages read from the backing store since initialisation "
    "(zram bd_reads).", true },
  { "bd_writes", "nbdzram_bd_writes_pages_total", COUNTER,
    "Pages written to the backing store since initialisation "
    "(zram bd_writes).", true },
  { "bd_checksum_errors", "nbdzram_bd_checksum_errors_total", COUNTER,
    "Reads of the backing store whose bytes failed their checksum "
    "(failed with EIO, never served).", true },
  { "backing_blocks", "nbdzram_backing_blocks", GAUGE,
    "4 KiB blocks of the backing store (its capacity; 0 without one).",
    true },
  { "backing_blocks_used", "nbdzram_backing_blocks_used", GAUGE,
    "4 KiB blocks of the backing store in use now.", true },
  { "backing_errors", "nbdzram_backing_errors_total", COUNTER,
    "Reads, writes and trims of the backing store that failed since it "
    "was opened.", true },
  { "backing_reconnects", "nbdzram_backing_reconnects_total", COUNTER,
    "Connections to an NBD backing store made again after they broke.", true },
  /* writeback_limit, writes waiting for room, the writeback policy
   * (issue 14): servers before them lack the keys.
   */
  { "writeback_limit_enable", "nbdzram_writeback_limit_enabled", GAUGE,
    "1 while writeback spends the writeback_limit budget "
    "(zram writeback_limit_enable).", true },
  { "writeback_limit", "nbdzram_writeback_limit_blocks", GAUGE,
    "4 KiB blocks writeback may still write to the backing store while "
    "the limit is enabled (zram writeback_limit).", true },
  { "wb_room_waits", "nbdzram_writeback_room_waits_total", COUNTER,
    "Writes that found the pool at mem_limit and waited for writeback to "
    "make room.", true },
  { "wb_room_failed", "nbdzram_writeback_room_failed_total", COUNTER,
    "Writes that waited for room at mem_limit and failed all the same.",
    true },
  /* Multi-page groups (issue 13): servers before them lack the keys. */
  { "group_objects", "nbdzram_group_objects", GAUGE,
    "Multi-page group objects stored now.", true },
  { "group_pages", "nbdzram_group_pages", GAUGE,
    "Pages stored inside multi-page groups now.", true },
  { "group_compr_size", "nbdzram_group_compr_bytes", GAUGE,
    "Bytes of the groups' compressed frames (part of compr_data_size).",
    true },
  { "groups_dissolved", "nbdzram_groups_dissolved_total", COUNTER,
    "Groups taken apart because most of their pages were rewritten or "
    "trimmed.", true },
  { "group_policy_pages", "nbdzram_group_policy_pages_total", COUNTER,
    "Pages the group policy grouped or took out of dissolved groups.",
    true },
  { "wb_policy_rounds", "nbdzram_writeback_policy_rounds_total", COUNTER,
    "Rounds of the automatic writeback policy that wrote pages back.",
    true },
  { "wb_policy_pages", "nbdzram_writeback_policy_pages_total", COUNTER,
    "Pages the automatic writeback policy wrote back.", true },
  { "wb_policy_cpu_ms", "nbdzram_writeback_policy_cpu_seconds_total",
    COUNTER, "CPU time of the automatic writeback policy (its thread's "
    "CPU clock).", true },
  { "wb_policy_urgent", "nbdzram_writeback_policy_urgent_rounds_total",
    COUNTER, "Writeback rounds run near mem_limit, coldest pages first.",
    true },
  { "wb_policy_yielded", "nbdzram_writeback_policy_yielded_total",
    COUNTER, "Writeback rounds skipped or cut short because the device was "
    "serving requests.", true },
  /* The reserve's (issue 11): servers before it do not send them. */
  { "reserve_bytes", "nbdzram_reserve_bytes", GAUGE,
    "Size of the pool's locked reserve (reserve=); 0 means none.", true },
  { "reserve_free", "nbdzram_reserve_free_bytes", GAUGE,
    "Populated pool memory free for writes now (may exceed the reserve's "
    "size).", true },
  { "reserve_refills", "nbdzram_reserve_refills_total", COUNTER,
    "Refill rounds of the reserve that added memory since initialisation.", true },
  { "reserve_empty", "nbdzram_reserve_empty_total", COUNTER,
    "Writes that found the reserve empty and waited for its refill, since "
    "initialisation.", true },
  { "reserve_failed", "nbdzram_reserve_failed_total", COUNTER,
    "Writes failed (ENOMEM) for want of the reserve since "
    "initialisation.", true },
};
#define NMETRICS (sizeof metrics / sizeof metrics[0])


#define REQUEST_DURATION_HELP \
  "Time the device took to serve a request (op: read, write, or discard " \
  "for trim and write-zeroes)."

/* Histograms: the "histograms" reply key, the metric, its label, the unit
 * of the server's numbers in the metric's base unit, how many finite
 * buckets to show, and the help text.
 */
static const struct hist_metric {
  const char *key;
  const char *name;
  const char *label;            /* extra label, or NULL */
  double unit;                  /* seconds per microsecond, or 1 */
  unsigned finite;              /* buckets with an upper bound */
  const char *help;
} hists[] = {
  { "read_latency_us", "nbdzram_request_duration_seconds", "op=\"read\"",
    1e-6, ZRAM_HIST_BUCKETS - 1, REQUEST_DURATION_HELP },
  { "write_latency_us", "nbdzram_request_duration_seconds", "op=\"write\"",
    1e-6, ZRAM_HIST_BUCKETS - 1, REQUEST_DURATION_HELP },
  { "discard_latency_us", "nbdzram_request_duration_seconds",
    "op=\"discard\"", 1e-6, ZRAM_HIST_BUCKETS - 1, REQUEST_DURATION_HELP },
  { "compressed_size_bytes", "nbdzram_stored_page_size_bytes", NULL, 1,
    13, "Pool bytes each stored page took: 0 for a same-filled page, "
    "4096 for one stored uncompressed." },
};
#define NHISTS (sizeof hists / sizeof hists[0])

/* A histogram line: "SUM C0 C1 ... Ck" (k < ZRAM_HIST_BUCKETS). */
struct hist_values {
  unsigned long long sum;
  unsigned long long count[ZRAM_HIST_BUCKETS];
};

static int
parse_hist (const char *s, struct hist_values *h)
{
  unsigned b = 0;
  char *end;

  memset (h, 0, sizeof *h);
  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  h->sum = strtoull (s, &end, 10);
  while (errno == 0 && *end == ' ' && end[1] >= '0' && end[1] <= '9' &&
         b < ZRAM_HIST_BUCKETS)
    h->count[b++] = strtoull (end + 1, &end, 10);
  return errno || *end ? -1 : 0;
}

/* A label value with \, " and newline escaped as the format wants, and
 * any other byte outside printable ASCII (a server's bytes, a path's) as
 * the four characters \xHH, so the exposition stays valid UTF-8 and
 * harmless to a terminal.
 */
static void
print_label_value (FILE *fp, const char *s)
{
  for (; *s; s++) {
    unsigned char c = *s;

    if (c == '\\' || c == '"')
      fprintf (fp, "\\%c", c);
    else if (c == '\n')
      fputs ("\\n", fp);
    else if (c < 0x20 || c >= 0x7f)
      fprintf (fp, "\\\\x%02x", c);
    else
      fputc (c, fp);
  }
}

static void
print_labels (FILE *fp, const struct ctl_device *dev, const char *extra,
              const char *le)
{
  fputs ("{device=\"", fp);
  print_label_value (fp, dev->name);
  fputc ('"', fp);
  if (extra)
    fprintf (fp, ",%s", extra);
  if (le)
    fprintf (fp, ",le=\"%s\"", le);
  fputc ('}', fp);
}

/* The upper bound of bucket b (2^b units) in base units, exactly: an
 * integer, or for microseconds a decimal with trailing zeroes cut.
 */
static void
bucket_bound (char *out, size_t cap, unsigned b, double unit)
{
  unsigned long long v = 1ULL << b;

  if (unit == 1)
    snprintf (out, cap, "%llu", v);
  else {
    size_t n = snprintf (out, cap, "%llu.%06llu", v / 1000000, v % 1000000);

    while (n > 0 && out[n - 1] == '0')
      out[--n] = '\0';
    if (n > 0 && out[n - 1] == '.')
      out[--n] = '\0';
  }
}

static int
print_hist_family (FILE *fp, FILE *errfp, const struct ctl_device *devs,
                   size_t ndevs, size_t first, size_t last)
{
  const struct hist_metric *m = &hists[last];
  size_t d, i;
  unsigned b;

  fprintf (fp, "# HELP %s %s\n# TYPE %s histogram\n", m->name, m->help,
           m->name);
  for (d = 0; d < ndevs; d++) {
    if (devs[d].hists == NULL)
      continue;                 /* a server without histograms */
    for (i = first; i <= last; i++) {
      const char *v = zctl_reply_get (devs[d].hists, hists[i].key);
      struct hist_values h;
      unsigned long long cum = 0;
      char le[32], name[256];

      if (parse_hist (v, &h) == -1) {
        fprintf (errfp, "%s: bad or missing histogram '%s'\n",
                 zctl_clean (devs[d].name, name, sizeof name), hists[i].key);
        return -1;
      }
      for (b = 0; b < hists[i].finite; b++) {
        cum += h.count[b];
        bucket_bound (le, sizeof le, b, hists[i].unit);
        fprintf (fp, "%s_bucket", m->name);
        print_labels (fp, &devs[d], hists[i].label, le);
        fprintf (fp, " %llu\n", cum);
      }
      for (; b < ZRAM_HIST_BUCKETS; b++)
        cum += h.count[b];
      fprintf (fp, "%s_bucket", m->name);
      print_labels (fp, &devs[d], hists[i].label, "+Inf");
      fprintf (fp, " %llu\n", cum);
      fprintf (fp, "%s_sum", m->name);
      print_labels (fp, &devs[d], hists[i].label, NULL);
      if (hists[i].unit == 1)
        fprintf (fp, " %llu\n", h.sum);
      else
        fprintf (fp, " %llu.%06llu\n", h.sum / 1000000, h.sum % 1000000);
      fprintf (fp, "%s_count", m->name);
      print_labels (fp, &devs[d], hists[i].label, NULL);
      fprintf (fp, " %llu\n", cum);
    }
  }
  return 0;
}

/* Stats keys ending in _ms count milliseconds; Prometheus wants the base
 * unit, so their metrics are in seconds.
 */
static bool
key_in_ms (const char *key)
{
  size_t n = strlen (key);

  return n > 3 && strcmp (key + n - 3, "_ms") == 0;
}

/* One metric of the stats: HELP, TYPE and a sample per device.  With
 * m->optional, devices whose stats lack the key get no sample, and no device
 * having it prints nothing.  Returns 0, or -1 after saying what is wrong.
 */
static int
render_metric (FILE *fp, FILE *errfp, const struct ctl_device *devs,
               size_t ndevs, const struct metric *m)
{
  unsigned long long v;
  size_t d;

  if (m->optional) {
    for (d = 0; d < ndevs; d++)
      if (zctl_reply_get (devs[d].stats, m->key) != NULL)
        break;
    if (d == ndevs)
      return 0;
  }
  fprintf (fp, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
           m->type == COUNTER ? "counter" : "gauge");
  for (d = 0; d < ndevs; d++) {
    if (m->optional && zctl_reply_get (devs[d].stats, m->key) == NULL)
      continue;
    if (stat_u64 (errfp, &devs[d], m->key, &v) == -1)
      return -1;
    fputs (m->name, fp);
    print_labels (fp, &devs[d], NULL, NULL);
    if (key_in_ms (m->key))
      fprintf (fp, " %llu.%03llu\n", v / 1000, v % 1000);
    else
      fprintf (fp, " %llu\n", v);
  }
  return 0;
}

static int
render_metrics (FILE *fp, FILE *errfp, const struct ctl_device *devs,
                size_t ndevs)
{
  unsigned long long v;
  size_t i, d, first;

  if (ndevs == 0)
    return 0;                   /* no device: nothing to describe */
  for (i = 0; i < NMETRICS; i++)
    if (render_metric (fp, errfp, devs, ndevs, &metrics[i]) == -1)
      return -1;

  /* Pages per recompression priority: one metric, a label each. */
  fputs ("# HELP nbdzram_recomp_pages Pages stored now with the "
         "recompression algorithm of this priority (1 to 3).\n"
         "# TYPE nbdzram_recomp_pages gauge\n", fp);
  for (d = 0; d < ndevs; d++)
    for (i = 1; i <= 3; i++) {
      char key[32], label[32];

      snprintf (key, sizeof key, "pages_recomp%zu", i);
      snprintf (label, sizeof label, "priority=\"%zu\"", i);
      if (stat_u64 (errfp, &devs[d], key, &v) == -1)
        return -1;
      fputs ("nbdzram_recomp_pages", fp);
      print_labels (fp, &devs[d], label, NULL);
      fprintf (fp, " %llu\n", v);
    }

  /* The configuration as an info metric: labels, value 1. */
  fputs ("# HELP nbdzram_info The device's compression algorithm, level "
         "and allocator.\n# TYPE nbdzram_info gauge\n", fp);
  for (d = 0; d < ndevs; d++) {
    static const char *const keys[] = { "algorithm", "level", "pool" };

    fputs ("nbdzram_info{device=\"", fp);
    print_label_value (fp, devs[d].name);
    fputc ('"', fp);
    for (i = 0; i < 3; i++) {
      const char *val = zctl_reply_get (devs[d].stats, keys[i]);
      char name[256];

      if (val == NULL) {
        fprintf (errfp, "%s: the server's stats lack '%s'\n",
                 zctl_clean (devs[d].name, name, sizeof name), keys[i]);
        return -1;
      }
      fprintf (fp, ",%s=\"", keys[i]);
      print_label_value (fp, val);
      fputc ('"', fp);
    }
    fputs ("} 1\n", fp);
  }

  /* Histograms sharing a metric name are one family: print them together. */
  for (first = 0; first < NHISTS; first = i + 1) {
    for (i = first; i + 1 < NHISTS && strcmp (hists[i + 1].name, hists[first].name) == 0; i++)
      ;
    if (print_hist_family (fp, errfp, devs, ndevs, first, i) == -1)
      return -1;
  }
  return 0;
}

int
ctl_print_metrics (FILE *fp, FILE *errfp, const struct ctl_device *devs,
                   size_t ndevs)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream (&buf, &len);
  int r;

  if (mem == NULL) {
    fprintf (errfp, "open_memstream: %s\n", strerror (errno));
    return -1;
  }
  /* Render whole before printing: a half-written exposition would be
   * scraped as if it were complete.
   */
  r = render_metrics (mem, errfp, devs, ndevs);
  if (fclose (mem) != 0)
    r = -1;
  if (r == 0)
    fwrite (buf, 1, len, fp);
  free (buf);
  return r;
}
