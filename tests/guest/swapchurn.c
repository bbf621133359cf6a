/* nbdkit-zram: swapchurn, a workload that leaves freed pages in swap.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Usage: swapchurn MIB ROUNDS FREE_PERCENT [PIECE_KIB]
 *
 * Fills MIB mebibytes of anonymous memory, then for ROUNDS rounds frees
 * FREE_PERCENT % of it in PIECE_KIB pieces (default 64) picked at random
 * (madvise MADV_DONTNEED: the kernel drops the pages and frees their swap
 * slots), writes those pieces again with new content, and checks every
 * page of the area, which brings swapped pages in and pushes others out.
 * Run in a memory cgroup smaller than MIB, each round swaps a lot, frees
 * part of what is in swap and swaps again: what a long-running program's
 * heap does to a swap device.
 *
 * After the fill and after each round it prints "swapchurn: round N" and
 * stops itself (SIGSTOP), so that the caller can measure the swap device
 * with the program's memory as it is; SIGCONT goes on.  The exit status
 * is 1 if a page came back different from what was written, 2 on bad
 * arguments or no memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096u

/* xorshift64*: a fixed, cheap pseudo-random stream. */
static uint64_t
next_rand (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

/* A page that compresses to about half, different for every (page,
 * generation), never same-filled, so that every page is stored and
 * counted by the device. */
static void
fill_page (unsigned char *p, uint64_t idx, uint32_t gen)
{
  uint64_t s = (idx * UINT64_C(0x9E3779B97F4A7C15)) ^ ((uint64_t) gen << 40) ^ 1;
  size_t i, n;

  n = (size_t) snprintf ((char *) p, PAGE,
                         "swapchurn page %" PRIu64 " generation %" PRIu32 "; ",
                         idx, gen);
  while (2 * n <= PAGE / 2) {
    memcpy (p + n, p, n);
    n *= 2;
  }
  for (i = n; i + 8 <= PAGE; i += 8) {
    uint64_t r = next_rand (&s);
    memcpy (p + i, &r, 8);
  }
  memset (p + PAGE - 8, 0, 8);
}

static void
pause_for_caller (int round)
{
  printf ("swapchurn: round %d\n", round);
  fflush (stdout);
  raise (SIGSTOP);
}

int
main (int argc, char *argv[])
{
  unsigned char *area, expect[PAGE];
  uint64_t mib, pages, piece_pages, pieces, nfree, i, j, bad = 0;
  uint64_t seed = 0x5eed;
  uint32_t *gen;
  int rounds, pct, r;

  if (argc < 4 || argc > 5) {
    fprintf (stderr, "usage: swapchurn MIB ROUNDS FREE_PERCENT [PIECE_KIB]\n");
    return 2;
  }
  mib = strtoull (argv[1], NULL, 10);
  rounds = atoi (argv[2]);
  pct = atoi (argv[3]);
  piece_pages = (argc == 5 ? strtoull (argv[4], NULL, 10) : 64) * 1024 / PAGE;
  if (mib == 0 || rounds < 0 || pct < 0 || pct > 100 || piece_pages == 0 ||
      mib * 1024 * 1024 / PAGE < piece_pages) {
    fprintf (stderr, "swapchurn: bad arguments\n");
    return 2;
  }
  pages = mib * 1024 * 1024 / PAGE;
  pieces = pages / piece_pages;
  pages = pieces * piece_pages;
  nfree = pieces * (uint64_t) pct / 100;
  area = mmap (NULL, pages * PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  gen = calloc (pages, sizeof *gen);
  if (area == MAP_FAILED || gen == NULL) {
    fprintf (stderr, "swapchurn: %" PRIu64 " MiB: %s\n", mib, strerror (errno));
    return 2;
  }
  for (i = 0; i < pages; i++)
    fill_page (area + i * PAGE, i, 0);
  pause_for_caller (0);

  for (r = 1; r <= rounds; r++) {
    /* Free nfree distinct pieces: a partial Fisher-Yates over the piece
     * numbers, redone each round. */
    uint64_t *order = malloc (pieces * sizeof *order);
    if (order == NULL) {
      fprintf (stderr, "swapchurn: no memory\n");
      return 2;
    }
    for (i = 0; i < pieces; i++)
      order[i] = i;
    for (i = 0; i < nfree; i++) {
      uint64_t k = i + next_rand (&seed) % (pieces - i), t = order[i];
      order[i] = order[k];
      order[k] = t;
      if (madvise (area + order[i] * piece_pages * PAGE, piece_pages * PAGE,
                   MADV_DONTNEED) == -1) {
        fprintf (stderr, "swapchurn: madvise: %s\n", strerror (errno));
        return 2;
      }
    }
    for (i = 0; i < nfree; i++)
      for (j = order[i] * piece_pages; j < (order[i] + 1) * piece_pages; j++) {
        gen[j] = (uint32_t) r;
        fill_page (area + j * PAGE, j, gen[j]);
      }
    free (order);
    for (i = 0; i < pages; i++) {
      fill_page (expect, i, gen[i]);
      if (memcmp (area + i * PAGE, expect, PAGE) != 0) {
        if (bad < 10)
          fprintf (stderr, "swapchurn: page %" PRIu64 " differs (round %d)\n", i, r);
        bad++;
      }
    }
    pause_for_caller (r);
  }
  printf ("swapchurn: %" PRIu64 " MiB, %d rounds of %d %%, %" PRIu64 " bad pages\n",
          mib, rounds, pct, bad);
  return bad ? 1 : 0;
}
