/* Unit test: every algorithm round-trips; incompressible data reports 0;
 * corrupt input fails cleanly; levels are validated.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "zram/zcomp.h"
#include "check.h"

#define PAGE 4096

static void
fill_text (unsigned char *p, unsigned long long seed)
{
  static const char *words[] = { "zram ", "page ", "slot ", "the ", "compressed ",
                                 "memory ", "swap ", "block\n" };
  size_t i = 0;

  while (i < PAGE) {
    const char *w = words[test_rand (&seed) % 8];
    size_t n = strlen (w);
    if (n > PAGE - i) n = PAGE - i;
    memcpy (p + i, w, n);
    i += n;
  }
}

static void
fill_random (unsigned char *p, unsigned long long seed)
{
  for (size_t i = 0; i < PAGE; ++i)
    p[i] = test_rand (&seed) >> 56;
}

static void
round_trip (const struct zcomp *c, struct zcomp_scratch *s,
            const unsigned char *page, int expect_fit)
{
  unsigned char out[PAGE * 2], back[PAGE];
  int n = zcomp_compress (c, s, page, PAGE, out, 3072);

  CHECK (n >= 0);
  if (expect_fit == 2) {      /* either: a very fast lz4 level */
    if (n == 0)
      return;
    expect_fit = 1;
  }
  if (!expect_fit) {
    CHECK (n == 0);           /* random data does not fit under 3/4 page */
    return;
  }
  CHECK (n > 0 && n < 3072);
  memset (back, 0x5a, sizeof back);
  CHECK (zcomp_decompress (c, s, out, n, back, PAGE) == 0);
  CHECK (memcmp (back, page, PAGE) == 0);
  /* Truncated or damaged input must fail, not overrun. */
  errno = 0;
  CHECK (zcomp_decompress (c, s, out, n - 1, back, PAGE) == -1 && errno == EIO);
  out[0] ^= 0xff; out[n / 2] ^= 0xff;
  (void) zcomp_decompress (c, s, out, n, back, PAGE);   /* any result, no crash */
}

static void *
thread_round_trips (void *arg)
{
  const struct zcomp *c = arg;
  struct zcomp_scratch *s = zcomp_scratch_create ();
  unsigned char page[PAGE];

  CHECK (s != NULL);
  for (int i = 0; i < 200; ++i) {
    fill_text (page, i + 1);
    round_trip (c, s, page, 1);
  }
  zcomp_scratch_destroy (s);
  return NULL;
}

/* The levels sampled: four spread over the range; for lz4, whose level
 * is an acceleration up to 65537, 1, 4, 16, 64 and the top.
 */
static int
next_level (enum zcomp_algo algo, int level, int min, int max)
{
  if (algo != ZCOMP_LZ4)
    return level + (max - min) / 3 + 1;
  if (level < 64)
    return level * 4;
  return level < max ? max : max + 1;
}

int
main (void)
{
  static const enum zcomp_algo algos[] = { ZCOMP_LZ4, ZCOMP_LZ4HC, ZCOMP_ZSTD };
  struct zcomp_scratch *scratch = zcomp_scratch_create ();
  unsigned char page[PAGE];
  enum zcomp_algo a;
  int min, max, dflt;

  CHECK (zcomp_parse_algo ("lz4", &a) == 0 && a == ZCOMP_LZ4);
  CHECK (zcomp_parse_algo ("zstd", &a) == 0 && a == ZCOMP_ZSTD);
  CHECK (zcomp_parse_algo ("lz4hc", &a) == 0 && a == ZCOMP_LZ4HC);
  CHECK (zcomp_parse_algo ("LZ4", &a) == -1 && errno == EINVAL);
  CHECK (zcomp_parse_algo ("", &a) == -1);
  /* lz4's level is its acceleration, 1 (default) .. 65537. */
  CHECK (zcomp_create (ZCOMP_LZ4, 65538) == NULL && errno == EINVAL);
  CHECK (zcomp_create (ZCOMP_LZ4, -1) == NULL && errno == EINVAL);
  CHECK (zcomp_create (ZCOMP_ZSTD, 23) == NULL && errno == EINVAL);
  CHECK (zcomp_create (ZCOMP_LZ4HC, -1) == NULL && errno == EINVAL);
  CHECK (zcomp_create ((enum zcomp_algo) 99, 0) == NULL && errno == EINVAL);
  CHECK (scratch != NULL);

  for (size_t i = 0; i < sizeof algos / sizeof algos[0]; ++i) {
    zcomp_level_range (algos[i], &min, &max, &dflt);
    for (int level = min; level <= max;
         level = next_level (algos[i], level, min, max)) {
      struct zcomp *c = zcomp_create (algos[i], level);
      int fit = algos[i] == ZCOMP_LZ4 && level > 16 ? 2 : 1;
      pthread_t t[3];

      CHECK (c != NULL);
      CHECK (zcomp_get_algo (c) == algos[i]);
      CHECK (zcomp_get_level (c) == (level ? level : dflt));
      fill_text (page, 42);
      round_trip (c, scratch, page, fit);
      memset (page, 0, PAGE);
      round_trip (c, scratch, page, 1);
      fill_random (page, 7);
      round_trip (c, scratch, page, 0);
      /* One scratch per thread: several threads share one zcomp. */
      for (int j = 0; j < 3 && fit == 1; ++j)
        CHECK (pthread_create (&t[j], NULL, thread_round_trips, c) == 0);
      for (int j = 0; j < 3 && fit == 1; ++j)
        pthread_join (t[j], NULL);
      zcomp_destroy (c);
    }
  }
  /* One scratch has served every algorithm and level. */
  zcomp_scratch_destroy (scratch);
  zcomp_scratch_destroy (NULL);
  printf ("test-zcomp: ok\n");
  return 0;
}
