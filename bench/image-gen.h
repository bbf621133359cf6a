/* nbdkit-zram benchmarks: a deterministic generator of memory-like images.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A swap device or a compressed RAM disk sees pages of anonymous memory, not
 * files: many all-zero pages, some pages filled with one repeated word, text
 * (strings, logs, config), machine code (JIT output, copied libraries),
 * heap pages full of small structures (pointers that share their high bytes,
 * small integers, padding, free space) and pages that do not compress at all
 * (already compressed or encrypted data, media, random keys).  Real memory
 * holds them in runs: a heap arena is many heap pages in a row, a mapped
 * buffer is many random pages in a row.
 *
 * This module builds such an image page by page.  The kind of each run and
 * its length come from a seeded PRNG; the bytes of every page come from a
 * PRNG seeded by (image seed, page index), so the same seed always gives the
 * same image on every machine, and any single page can be regenerated
 * without the rest (imgen_page).  Nothing here allocates memory, starts
 * threads or prints, except imgen_print_mix.  All functions are reentrant.
 */
#ifndef ZRAM_BENCH_IMAGE_GEN_H
#define ZRAM_BENCH_IMAGE_GEN_H

#include <stdint.h>
#include <stdio.h>

#define IMGEN_PAGE_SIZE 4096

/* Default seed of the benchmark image. */
#define IMGEN_DEFAULT_SEED UINT64_C(0x7a72616d)   /* "zram" */

enum imgen_kind {
  IMGEN_ZERO,     /* all-zero page (untouched heap, bss, freed memory) */
  IMGEN_SAME,     /* one non-zero 8-byte word repeated (memset patterns) */
  IMGEN_TEXT,     /* words, numbers and punctuation, often zero-padded */
  IMGEN_CODE,     /* x86-64-like machine code with padding between functions */
  IMGEN_HEAP,     /* arrays of small structures, part of the page free */
  IMGEN_RANDOM,   /* incompressible bytes */
  IMGEN_NKINDS
};

/* What an image is made of.  weight[k] is the share of PAGES of kind k
 * (weights need not sum to 1; they are normalised), mean_run[k] is the mean
 * length of a run of kind k in pages (>= 1; run lengths are geometric).
 */
struct imgen_mix {
  double weight[IMGEN_NKINDS];
  double mean_run[IMGEN_NKINDS];
};

/* Counts of what a generated image holds. */
struct imgen_stats {
  uint64_t pages[IMGEN_NKINDS];   /* pages of each kind */
  uint64_t runs[IMGEN_NKINDS];    /* runs of each kind */
  uint64_t zero_bytes;            /* zero bytes in the whole image */
  uint64_t total_pages;           /* pages in the image */
};

/* The benchmark's default mix (see image-gen.c for the reasoning). */
extern void imgen_default_mix (struct imgen_mix *mix);

/* The name of a kind ("zero", "same", "text", "code", "heap", "random"). */
extern const char *imgen_kind_name (enum imgen_kind kind);

/* The layout of an image: call imgen_layout_init, then imgen_layout_next
 * once per page in order; it returns the kind of that page and its run
 * number (pages of one run share a run number, which seeds properties that
 * stay the same across a run, like a heap page's structure layout).
 */
struct imgen_layout {
  uint64_t rng;
  double cum[IMGEN_NKINDS];       /* cumulative run-choice probabilities */
  double mean_run[IMGEN_NKINDS];
  enum imgen_kind kind;           /* kind of the current run */
  uint64_t left;                  /* pages left in the current run */
  uint64_t run;                   /* number of the current run */
};

/* Returns 0, or -1 if the mix has no positive weight or a mean_run < 1. */
extern int imgen_layout_init (struct imgen_layout *l, uint64_t seed,
                              const struct imgen_mix *mix);
extern enum imgen_kind imgen_layout_next (struct imgen_layout *l, uint64_t *run);

/* Fill one page of the given kind.  The content depends only on the
 * arguments.
 */
extern void imgen_page (unsigned char page[IMGEN_PAGE_SIZE], enum imgen_kind kind,
                        uint64_t seed, uint64_t run, uint64_t page_index);

/* Generate a whole image of size bytes (a multiple of IMGEN_PAGE_SIZE) into
 * buf.  stats may be NULL.  Returns 0, or -1 for a bad size or mix.
 */
extern int imgen_generate (void *buf, uint64_t size, uint64_t seed,
                           const struct imgen_mix *mix, struct imgen_stats *stats);

/* Add one page to stats (for callers that generate page by page). */
extern void imgen_stats_add (struct imgen_stats *stats, enum imgen_kind kind,
                             const unsigned char page[IMGEN_PAGE_SIZE],
                             int new_run);

/* Print the mix of an image as a small table, e.g.
 *   kind      pages    share   runs  mean-run
 *   zero       4096   25.0 %    130      31.5
 */
extern void imgen_print_mix (FILE *fp, const struct imgen_stats *stats);

#endif /* ZRAM_BENCH_IMAGE_GEN_H */
