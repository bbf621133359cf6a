/* nbdkit-zram benchmarks: the image generator keeps its promises.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * - the same seed gives the same image, another seed another image;
 * - imgen_page regenerates any single page of an image on its own;
 * - the share of pages of each kind is close to the mix's weights;
 * - each kind compresses the way it claims to: zero and same pages are one
 *   repeated word, random pages do not compress, text, code and heap pages
 *   do, heap best.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "image-gen.h"

#define SIZE (16u << 20)
#define NPAGES (SIZE / IMGEN_PAGE_SIZE)

static int failures;

#define CHECK(cond, ...) do {                                   \
    if (!(cond)) {                                              \
      fprintf (stderr, "test-image-gen: FAIL: " __VA_ARGS__);   \
      fputc ('\n', stderr);                                     \
      failures++;                                               \
    }                                                           \
  } while (0)

static int
page_is_same (const unsigned char *p)
{
  size_t i;

  for (i = 8; i < IMGEN_PAGE_SIZE; i++)
    if (p[i] != p[i % 8])
      return 0;
  return 1;
}

int
main (void)
{
  unsigned char *a = malloc (SIZE), *b = malloc (SIZE), page[IMGEN_PAGE_SIZE];
  char out[LZ4_COMPRESSBOUND (IMGEN_PAGE_SIZE)];
  struct imgen_mix mix;
  struct imgen_stats st, st2;
  struct imgen_layout l;
  double total_w = 0, csum[IMGEN_NKINDS] = { 0 };
  uint64_t i, run, cnt[IMGEN_NKINDS] = { 0 };
  int k;

  if (a == NULL || b == NULL) {
    perror ("malloc");
    return 1;
  }
  imgen_default_mix (&mix);

  CHECK (imgen_generate (a, SIZE, 42, &mix, &st) == 0, "generate");
  CHECK (imgen_generate (b, SIZE, 42, &mix, &st2) == 0, "generate again");
  CHECK (memcmp (a, b, SIZE) == 0, "same seed, different image");
  CHECK (memcmp (&st, &st2, sizeof st) == 0, "same seed, different stats");
  CHECK (imgen_generate (b, SIZE, 43, &mix, NULL) == 0, "generate seed 43");
  CHECK (memcmp (a, b, SIZE) != 0, "seeds 42 and 43 give the same image");
  CHECK (imgen_generate (b, SIZE - 1, 42, &mix, NULL) == -1, "unaligned size accepted");
  CHECK (st.total_pages == NPAGES, "total_pages %" PRIu64, st.total_pages);

  /* Every page regenerates alone, and the layout agrees with the stats. */
  CHECK (imgen_layout_init (&l, 42, &mix) == 0, "layout_init");
  for (i = 0; i < NPAGES; i++) {
    enum imgen_kind kind = imgen_layout_next (&l, &run);
    int clen;

    imgen_page (page, kind, 42, run, i);
    CHECK (memcmp (page, a + i * IMGEN_PAGE_SIZE, IMGEN_PAGE_SIZE) == 0,
           "page %" PRIu64 " (%s) does not regenerate", i, imgen_kind_name (kind));
    cnt[kind]++;
    clen = LZ4_compress_default ((const char *) page, out, IMGEN_PAGE_SIZE, sizeof out);
    csum[kind] += clen;
    if (kind == IMGEN_ZERO || kind == IMGEN_SAME)
      CHECK (page_is_same (page), "%s page %" PRIu64 " is not one repeated word",
             imgen_kind_name (kind), i);
    else
      CHECK (!page_is_same (page), "%s page %" PRIu64 " is same-filled",
             imgen_kind_name (kind), i);
    if (failures > 10)
      return 1;
  }

  for (k = 0; k < IMGEN_NKINDS; k++)
    total_w += mix.weight[k];
  for (k = 0; k < IMGEN_NKINDS; k++) {
    double share = (double) st.pages[k] / NPAGES, want = mix.weight[k] / total_w;

    CHECK (cnt[k] == st.pages[k], "%s: layout %" PRIu64 " pages, stats %" PRIu64,
           imgen_kind_name (k), cnt[k], st.pages[k]);
    /* Runs are long, so the share wanders; 16 MiB holds ~250 runs. */
    CHECK (share > want * 0.6 && share < want * 1.4,
           "%s: %.3f of pages, mix says %.3f", imgen_kind_name (k), share, want);
    if (cnt[k])
      csum[k] /= (double) cnt[k];
    printf ("%-7s %6" PRIu64 " pages (%.3f, mix %.3f), LZ4 mean %.0f bytes\n",
            imgen_kind_name (k), st.pages[k], share, want, csum[k]);
  }
  CHECK (csum[IMGEN_RANDOM] > IMGEN_PAGE_SIZE, "random pages compress (%.0f)", csum[IMGEN_RANDOM]);
  CHECK (csum[IMGEN_TEXT] < 0.7 * IMGEN_PAGE_SIZE, "text compresses badly (%.0f)", csum[IMGEN_TEXT]);
  CHECK (csum[IMGEN_CODE] < 0.8 * IMGEN_PAGE_SIZE, "code compresses badly (%.0f)", csum[IMGEN_CODE]);
  CHECK (csum[IMGEN_CODE] > 0.2 * IMGEN_PAGE_SIZE, "code compresses too well (%.0f)", csum[IMGEN_CODE]);
  CHECK (csum[IMGEN_HEAP] < csum[IMGEN_TEXT], "heap (%.0f) worse than text (%.0f)",
         csum[IMGEN_HEAP], csum[IMGEN_TEXT]);

  free (b);
  free (a);
  if (failures)
    fprintf (stderr, "test-image-gen: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
