/* nbdkit-zram: a tiny assertion helper for the C tests.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_TEST_CHECK_H
#define ZRAM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* check_failures is used only by the tests that use EXPECT. */
#define UNUSED_VAR __attribute__ ((unused))

/* Unlike assert, never compiled out, and says where and what. */
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf (stderr, "%s:%d: %s: check failed: %s\n",                      \
               __FILE__, __LINE__, __func__, #cond);                         \
      abort ();                                                              \
    }                                                                        \
  } while (0)

/* Like CHECK, but prints a message (printf-style) and carries on, so one
 * run lists every failure; main returns non-zero if check_failures > 0.
 */
static int check_failures UNUSED_VAR;
#define EXPECT(cond, ...)                                                \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf (stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);  \
      fprintf (stderr, __VA_ARGS__);                                     \
      fputc ('\n', stderr);                                              \
      check_failures++;                                                  \
    }                                                                    \
  } while (0)

/* A small reproducible generator (xorshift64*). */
static inline unsigned long long
test_rand (unsigned long long *state)
{
  unsigned long long x = *state;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Monotonic time in seconds, and a sleep in microseconds. */
#include <errno.h>
#include <time.h>

static inline double
test_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void
test_sleep_us (long us)
{
  struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

#endif
