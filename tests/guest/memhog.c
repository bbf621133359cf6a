/* nbdkit-zram: memhog, a memory hog that proves swap round-trips data.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Usage: memhog MIB [PASSES]
 *
 * Allocates MIB mebibytes of anonymous memory and fills every 4 KiB page
 * with content derived from its index: a page-sized mix of a short
 * compressible text, an incompressible pseudo-random run and zeroes, with
 * every eighth page all zero and every eighth (offset by four) repeating
 * one word, so a compressed swap device sees the same kinds of pages a real
 * workload gives it.  Then it walks the whole area PASSES times (default 2),
 * checking each page against what was written.  Run inside a memory cgroup
 * smaller than MIB, the pages must go out to swap and come back; any page
 * that returns different is reported and the exit status is 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096u

/* xorshift64*: a fixed, cheap pseudo-random stream per page. */
static uint64_t
next_rand (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

static void
fill_page (unsigned char *p, uint64_t idx)
{
  uint64_t s = idx * UINT64_C(0x9E3779B97F4A7C15) + 1;
  size_t i, n;

  switch (idx % 8) {
  case 0:                       /* all zero */
    memset (p, 0, PAGE);
    return;
  case 4:                       /* one repeated word (zram "same" page) */
    for (i = 0; i < PAGE; i += 8)
      memcpy (p + i, &s, 8);
    return;
  default:                      /* text, random run, zero tail */
    n = (size_t) snprintf ((char *) p, PAGE,
                           "memhog page %" PRIu64 " of nbdkit-zram swap test; ",
                           idx);
    while (2 * n <= PAGE / 2) {  /* double the text; never overlaps */
      memcpy (p + n, p, n);
      n *= 2;
    }
    for (i = n; i < n + 1024; i += 8) {
      uint64_t r = next_rand (&s);
      memcpy (p + i, &r, 8);
    }
    memset (p + n + 1024, 0, PAGE - n - 1024);
  }
}

int
main (int argc, char *argv[])
{
  unsigned char *area, expect[PAGE];
  uint64_t mib, pages, i, bad = 0;
  int passes = 2, pass;

  if (argc < 2 || argc > 3) {
    fprintf (stderr, "usage: memhog MIB [PASSES]\n");
    return 2;
  }
  mib = strtoull (argv[1], NULL, 10);
  if (argc == 3)
    passes = atoi (argv[2]);
  if (mib == 0 || passes < 0) {
    fprintf (stderr, "memhog: bad arguments\n");
    return 2;
  }
  pages = mib * 1024 * 1024 / PAGE;
  area = mmap (NULL, pages * PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    fprintf (stderr, "memhog: mmap %" PRIu64 " MiB: %s\n", mib, strerror (errno));
    return 2;
  }
  for (i = 0; i < pages; i++)
    fill_page (area + i * PAGE, i);
  for (pass = 0; pass < passes; pass++) {
    for (i = 0; i < pages; i++) {
      fill_page (expect, i);
      if (memcmp (area + i * PAGE, expect, PAGE) != 0) {
        if (bad < 10)
          fprintf (stderr, "memhog: page %" PRIu64 " differs (pass %d)\n",
                   i, pass);
        bad++;
      }
    }
  }
  printf ("memhog: %" PRIu64 " MiB, %d passes, %" PRIu64 " bad pages\n",
          mib, passes, bad);
  return bad ? 1 : 0;
}
