/* nbdkit-zram benchmarks: write a memory-like image to a file or stdout.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   zram-image-gen [-s SIZE] [-S SEED] [-o FILE] [-j MIXFILE] [-q]
 *
 * Writes SIZE bytes (default 64M) of the image for SEED to FILE (default
 * stdout) and prints its mix to stderr; -j also writes the mix as JSON.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-util.h"
#include "image-gen.h"

static void
usage (FILE *fp)
{
  fprintf (fp,
           "usage: zram-image-gen [-s SIZE] [-S SEED] [-o FILE] [-j MIXFILE] [-q]\n"
           "  -s SIZE     image size, a multiple of 4096 (default 64M)\n"
           "  -S SEED     generator seed (default %" PRIu64 ")\n"
           "  -o FILE     write the image here (default stdout)\n"
           "  -j MIXFILE  also write the mix as JSON to MIXFILE\n"
           "  -q          do not print the mix\n",
           IMGEN_DEFAULT_SEED);
}

static int
write_mix_json (const char *path, const struct imgen_stats *st, uint64_t seed)
{
  FILE *fp = fopen (path, "w");
  int k;

  if (fp == NULL) {
    perror (path);
    return -1;
  }
  fprintf (fp, "{\"seed\": %" PRIu64 ", \"pages\": %" PRIu64
           ", \"zero_bytes\": %" PRIu64 ", \"kinds\": {",
           seed, st->total_pages, st->zero_bytes);
  for (k = 0; k < IMGEN_NKINDS; k++)
    fprintf (fp, "%s\"%s\": {\"pages\": %" PRIu64 ", \"runs\": %" PRIu64 "}",
             k ? ", " : "", imgen_kind_name ((enum imgen_kind) k),
             st->pages[k], st->runs[k]);
  fprintf (fp, "}}\n");
  if (fclose (fp) == EOF) {
    perror (path);
    return -1;
  }
  return 0;
}

int
main (int argc, char *argv[])
{
  int64_t size = 64 << 20;
  uint64_t seed = IMGEN_DEFAULT_SEED;
  const char *out = NULL, *mixfile = NULL;
  int quiet = 0, c;
  FILE *fp = stdout;
  struct imgen_mix mix;
  struct imgen_layout l;
  struct imgen_stats st;
  static unsigned char buf[256 * IMGEN_PAGE_SIZE];
  uint64_t i, npages, run, last_run = (uint64_t) -1;
  size_t fill = 0;

  while ((c = getopt (argc, argv, "s:S:o:j:qh")) != -1) {
    switch (c) {
    case 's':
      size = bench_parse_size (optarg);
      if (size <= 0 || size % IMGEN_PAGE_SIZE != 0) {
        fprintf (stderr, "zram-image-gen: bad size %s (a multiple of 4096)\n", optarg);
        return 2;
      }
      break;
    case 'S': seed = strtoull (optarg, NULL, 0); break;
    case 'o': out = optarg; break;
    case 'j': mixfile = optarg; break;
    case 'q': quiet = 1; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc) {
    usage (stderr);
    return 2;
  }
  if (out && strcmp (out, "-") != 0) {
    fp = fopen (out, "w");
    if (fp == NULL) {
      perror (out);
      return 1;
    }
  }
  else if (isatty (STDOUT_FILENO)) {
    fprintf (stderr, "zram-image-gen: refusing to write binary data to a terminal (use -o)\n");
    return 2;
  }

  imgen_default_mix (&mix);
  if (imgen_layout_init (&l, seed, &mix) == -1)
    abort ();                   /* the default mix is valid */
  memset (&st, 0, sizeof st);
  npages = (uint64_t) size / IMGEN_PAGE_SIZE;
  for (i = 0; i < npages; i++) {
    enum imgen_kind k = imgen_layout_next (&l, &run);
    unsigned char *page = buf + fill;

    imgen_page (page, k, seed, run, i);
    imgen_stats_add (&st, k, page, run != last_run);
    last_run = run;
    fill += IMGEN_PAGE_SIZE;
    if (fill == sizeof buf || i == npages - 1) {
      if (fwrite (buf, 1, fill, fp) != fill) {
        perror (out ? out : "stdout");
        return 1;
      }
      fill = 0;
    }
  }
  if (fclose (fp) == EOF) {
    perror (out ? out : "stdout");
    return 1;
  }
  if (!quiet)
    imgen_print_mix (stderr, &st);
  if (mixfile && write_mix_json (mixfile, &st, seed) == -1)
    return 1;
  return 0;
}
