/* Unit test: pages round-trip through a dictionary with every algorithm
 * and compress smaller with it when they share its content; corrupt input
 * fails cleanly without writing outside the output; bad dictionaries and
 * too few training samples are refused; a trained dictionary passes the
 * A/B measure on data like its samples.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "zram/zcomp-dict.h"
#include "check.h"

#define PAGE 4096
#define TOKENS 512
#define TOKEN 32

/* A vocabulary of random tokens: a page made of them compresses poorly
 * alone (each token appears once or twice in it) and very well against a
 * dictionary that holds the vocabulary.
 */
static unsigned char vocab[TOKENS * TOKEN];

static void
make_vocab (void)
{
  unsigned long long seed = 99;

  for (size_t i = 0; i < sizeof vocab; ++i)
    vocab[i] = test_rand (&seed) >> 56;
}

static void
fill_tokens (unsigned char *p, unsigned long long seed)
{
  for (size_t i = 0; i < PAGE; i += TOKEN)
    memcpy (p + i, vocab + (test_rand (&seed) % TOKENS) * TOKEN, TOKEN);
}

static void
fill_random (unsigned char *p, unsigned long long seed)
{
  for (size_t i = 0; i < PAGE; ++i)
    p[i] = test_rand (&seed) >> 56;
}

/* Compress page with d, check it comes back, that damaged input fails or
 * at least stays inside dst, and return the compressed size (0: no fit).
 */
static int
round_trip (const struct zcomp_dict *d, struct zcomp_scratch *s,
            const unsigned char *page)
{
  unsigned char out[PAGE * 2], back[PAGE + 64];
  int n = zcomp_dict_compress (d, s, page, PAGE, out, 3072);

  CHECK (n >= 0);
  if (n == 0)
    return 0;
  CHECK (n < 3072);
  memset (back, 0x5a, sizeof back);
  CHECK (zcomp_dict_decompress (d, s, out, n, back, PAGE) == 0);
  CHECK (memcmp (back, page, PAGE) == 0);
  /* Truncated input fails; damaged input may do anything but write
   * beyond dst_len.
   */
  errno = 0;
  CHECK (zcomp_dict_decompress (d, s, out, n - 1, back, PAGE) == -1 &&
         errno == EIO);
  for (int k = 0; k < 8; ++k) {
    unsigned char bad[PAGE * 2];
    memcpy (bad, out, n);
    bad[(k * 7919) % n] ^= 0x80 >> k;
    memset (back + PAGE, 0xa5, 64);
    if (zcomp_dict_decompress (d, s, bad, n, back, PAGE) == -1)
      CHECK (errno == EIO);
    for (int j = 0; j < 64; ++j)
      CHECK (back[PAGE + j] == 0xa5);
  }
  return n;
}

struct thread_arg {
  const struct zcomp_dict *d;
  unsigned long long seed;
};

static void *
thread_round_trips (void *arg)
{
  struct thread_arg *a = arg;
  struct zcomp_scratch *s = zcomp_scratch_create ();
  unsigned char page[PAGE];

  CHECK (s != NULL);
  for (int i = 0; i < 100; ++i) {
    fill_tokens (page, a->seed + i);
    CHECK (round_trip (a->d, s, page) > 0);
  }
  zcomp_scratch_destroy (s);
  return NULL;
}

static void
test_algo (enum zcomp_algo algo, struct zcomp_scratch *s)
{
  struct zcomp *c = zcomp_create (algo, 0);
  struct zcomp_dict *d, *big;
  unsigned char page[PAGE], out[PAGE * 2];
  static unsigned char big_bytes[200 * 1024];
  unsigned long plain = 0, with = 0;
  struct thread_arg ta[3];
  pthread_t t[3];

  CHECK (c != NULL);
  CHECK (zcomp_dict_create (c, vocab, 0) == NULL && errno == EINVAL);
  CHECK (zcomp_dict_create (c, vocab, ZCOMP_DICT_MAX + 1) == NULL &&
         errno == EINVAL);
  d = zcomp_dict_create (c, vocab, sizeof vocab);
  CHECK (d != NULL);
  CHECK (zcomp_dict_size (d) == sizeof vocab);
  CHECK (zcomp_dict_mem_bytes (d) > sizeof vocab);

  for (int i = 0; i < 50; ++i) {
    int n, p;

    fill_tokens (page, i + 1);
    n = round_trip (d, s, page);
    CHECK (n > 0);
    p = zcomp_compress (c, s, page, PAGE, out, 3072);
    CHECK (p >= 0);
    with += n;
    plain += p ? (unsigned long) p : PAGE;
  }
  /* The dictionary holds the whole vocabulary: at least halves the size. */
  CHECK (with * 2 < plain);

  /* Zeroes round-trip; random data does not fit. */
  memset (page, 0, PAGE);
  CHECK (round_trip (d, s, page) > 0);
  fill_random (page, 5);
  CHECK (round_trip (d, s, page) == 0);

  /* Oversized arguments. */
  CHECK (zcomp_dict_compress (d, s, page, ZCOMP_MAX_INPUT + 1, out, 3072) == -1 &&
         errno == EINVAL);

  /* A dictionary over LZ4's window: the end of it is what counts. */
  fill_random (big_bytes, 3);
  memcpy (big_bytes + sizeof big_bytes - sizeof vocab, vocab, sizeof vocab);
  big = zcomp_dict_create (c, big_bytes, sizeof big_bytes);
  CHECK (big != NULL);
  CHECK (zcomp_dict_size (big) == sizeof big_bytes);
  fill_tokens (page, 77);
  CHECK (round_trip (big, s, page) > 0);
  {
    int n = round_trip (big, s, page), p = zcomp_compress (c, s, page, PAGE, out, 3072);
    CHECK (n > 0 && n * 2 < (p ? p : PAGE));
  }
  zcomp_dict_destroy (big);

  /* Threads share a dictionary, each with its own scratch. */
  for (int j = 0; j < 3; ++j) {
    ta[j].d = d;
    ta[j].seed = 1000 * (j + 1);
    CHECK (pthread_create (&t[j], NULL, thread_round_trips, &ta[j]) == 0);
  }
  for (int j = 0; j < 3; ++j)
    pthread_join (t[j], NULL);

  zcomp_dict_destroy (d);
  zcomp_dict_destroy (NULL);
  zcomp_destroy (c);
}

/* Training: refused on too few samples; on enough token pages, the
 * dictionary wins the A/B measure.
 */
static void
test_train (struct zcomp_scratch *s)
{
  enum { N = 200 };
  static unsigned char samples[N * PAGE], dict[64 * 1024];
  static size_t sizes[N];
  struct zcomp *c = zcomp_create (ZCOMP_ZSTD, 3);
  struct zcomp_dict *d;
  uint64_t plain, with;
  long n;

  CHECK (c != NULL);
  for (int i = 0; i < N; ++i) {
    fill_tokens (samples + (size_t) i * PAGE, 500 + i);
    sizes[i] = PAGE;
  }
  CHECK (zcomp_dict_train (dict, sizeof dict, samples, sizes,
                           ZCOMP_DICT_MIN_SAMPLES - 1) == -1 && errno == EINVAL);
  CHECK (zcomp_dict_train (dict, 0, samples, sizes, N) == -1 && errno == EINVAL);
  CHECK (zcomp_dict_train (dict, ZCOMP_DICT_MAX + 1, samples, sizes, N) == -1 &&
         errno == EINVAL);

  n = zcomp_dict_train (dict, sizeof dict, samples, sizes, N / 2);
  CHECK (n > 0 && (size_t) n <= sizeof dict);
  d = zcomp_dict_create (c, dict, n);
  CHECK (d != NULL);
  /* Held out: the second half of the samples. */
  CHECK (zcomp_dict_ab (c, d, s, samples + (size_t) (N / 2) * PAGE, N / 2,
                        3072, &plain, &with) == 0);
  CHECK (with < plain);
  CHECK (zcomp_dict_ab (c, d, s, samples, 1, 1, &plain, &with) == -1 &&
         errno == EINVAL);

  /* A buffer with zstd's dictionary magic that is no dictionary. */
  {
    unsigned char fake[256] = { 0x37, 0xa4, 0x30, 0xec };
    CHECK (zcomp_dict_create (c, fake, sizeof fake) == NULL && errno == EINVAL);
  }
  zcomp_dict_destroy (d);
  zcomp_destroy (c);
}

int
main (void)
{
  struct zcomp_scratch *s = zcomp_scratch_create ();

  CHECK (s != NULL);
  make_vocab ();
  test_algo (ZCOMP_LZ4, s);
  test_algo (ZCOMP_LZ4HC, s);
  test_algo (ZCOMP_ZSTD, s);
  test_train (s);
  zcomp_scratch_destroy (s);
  printf ("test-zcomp-dict: ok\n");
  return 0;
}
