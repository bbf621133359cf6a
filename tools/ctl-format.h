/* nbdzramctl: printing a device's statistics in other programs' formats.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Pure formatting: the caller has fetched and parsed each device's "stats"
 * and "histograms" replies (tools/zctl-client.h); nothing here does I/O
 * but writing to the given streams.  Values
 * are the server's text; a missing or malformed number is an error that
 * names the key, so a server that speaks another version is reported, not
 * misprinted.
 */
#ifndef NBDZRAMCTL_CTL_FORMAT_H
#define NBDZRAMCTL_CTL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "zctl-client.h"

/* One device: its name (the /dev/nbdX it is attached to, or its socket
 * path) and its parsed "stats" and "histograms" replies.
 */
struct ctl_device {
  const char *name;
  const struct zctl_reply *stats;
  const struct zctl_reply *hists;  /* may be NULL (an older server) */
};

/* The kernel's one-line sysfs formats (/sys/block/zramN/...):
 *   KSTAT_MM  mm_stat:  orig_data_size compr_data_size mem_used_total
 *                       mem_limit mem_used_max same_pages pages_compacted
 *                       huge_pages huge_pages_since
 *   KSTAT_IO  io_stat:  failed_reads failed_writes invalid_io notify_free
 *   KSTAT_BD  bd_stat:  bd_count bd_reads bd_writes (4 KiB units; all 0
 *                       without a backing store, and from a server that
 *                       predates writeback and lacks the keys)
 * each field "%8llu", separated by one space, ending in '\n'.
 * Returns 0, or -1 after printing to errfp which key was missing or bad.
 */
enum ctl_kstat { KSTAT_MM, KSTAT_IO, KSTAT_BD };
extern int ctl_print_kstat (FILE *fp, FILE *errfp, enum ctl_kstat which,
                            const struct ctl_device *dev);

/* The Prometheus text exposition format (version 0.0.4) of every device:
 * each statistic once per device with a label device="NAME", in base
 * units (bytes, seconds), with HELP and TYPE lines; the histograms as
 * Prometheus histograms (cumulative "le" buckets, _sum, _count).  Metric
 * names start with "nbdzram_"; no device prints nothing.  Returns 0, or -1
 * after printing to errfp what was wrong (nothing is printed to fp then).
 */
extern int ctl_print_metrics (FILE *fp, FILE *errfp,
                              const struct ctl_device *devs, size_t ndevs);

#endif /* NBDZRAMCTL_CTL_FORMAT_H */
