/* nbdkit-zram: the log2 histograms and the device's metrics.
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * Bucket bounds are exact at every power of two; adds from many threads
 * all count (run under TSan too); the device's histograms count exactly
 * the requests and stored pages of a known workload.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "zram/histogram.h"
#include "zram/zctl.h"
#include "zram/zram.h"
#include "check.h"

#define THREADS 4
#define ADDS_PER_THREAD 200000

static void
test_buckets (void)
{
  unsigned i;

  EXPECT (zram_hist_bucket (0) == 0, "0");
  EXPECT (zram_hist_bucket (1) == 0, "1");
  EXPECT (zram_hist_bucket (2) == 1, "2");
  for (i = 1; i < ZRAM_HIST_BUCKETS - 1; i++) {
    uint64_t bound = UINT64_C(1) << i;

    /* bound is the last value of bucket i, bound + 1 the first of i+1. */
    EXPECT (zram_hist_bucket (bound) == i, "2^%u -> %u", i,
            zram_hist_bucket (bound));
    EXPECT (zram_hist_bucket (bound + 1) ==
            (i + 1 < ZRAM_HIST_BUCKETS ? i + 1 : ZRAM_HIST_BUCKETS - 1),
            "2^%u+1 -> %u", i, zram_hist_bucket (bound + 1));
  }
  EXPECT (zram_hist_bucket (UINT64_MAX) == ZRAM_HIST_BUCKETS - 1, "max");
}

static struct zram_hist shared_hist;

static void *
adder (void *arg)
{
  uint64_t v = (uintptr_t) arg;
  int i;

  for (i = 0; i < ADDS_PER_THREAD; i++)
    zram_hist_add (&shared_hist, v + (i & 7));
  return NULL;
}

static void
test_threads (void)
{
  pthread_t t[THREADS];
  struct zram_hist_snapshot snap;
  uint64_t want_sum = 0;
  int i;

  for (i = 0; i < THREADS; i++)
    CHECK (pthread_create (&t[i], NULL, adder, (void *) (uintptr_t) (100 * i)) == 0);
  for (i = 0; i < THREADS; i++) {
    CHECK (pthread_join (t[i], NULL) == 0);
    /* Each thread adds v..v+7 equally often: 8 values summing to 8v+28. */
    want_sum += (uint64_t) ADDS_PER_THREAD / 8 * (8 * 100 * i + 28);
  }
  zram_hist_read (&shared_hist, &snap);
  EXPECT (snap.total == (uint64_t) THREADS * ADDS_PER_THREAD,
          "total %llu", (unsigned long long) snap.total);
  EXPECT (snap.sum == want_sum, "sum %llu, want %llu",
          (unsigned long long) snap.sum, (unsigned long long) want_sum);
  /* Thread 0 adds 0..7: 1 in bucket 0 (0, 1), 2 in bucket 1... */
  EXPECT (snap.count[0] == ADDS_PER_THREAD / 8 * 2, "bucket 0 %llu",
          (unsigned long long) snap.count[0]);
}

static void
test_device (void)
{
  struct zram_config c = { .disksize = 64 * ZRAM_PAGE_SIZE, .algo = ZCOMP_LZ4,
                           .pool = ZPOOL_ZS };
  struct zram *z = zram_create (&c);
  unsigned char page[ZRAM_PAGE_SIZE], big[4 * ZRAM_PAGE_SIZE];
  struct zram_hist_snapshot snap;
  unsigned long long seed = 42;
  size_t i;

  CHECK (z != NULL);
  /* 4 pages: one same-filled (0 bytes), one compressible, two random
   * (huge: 4096 bytes each).
   */
  memset (big, 0x11, ZRAM_PAGE_SIZE);
  for (i = 0; i < ZRAM_PAGE_SIZE; i++)
    big[ZRAM_PAGE_SIZE + i] = "compressible text "[i % 18];
  for (i = 2 * ZRAM_PAGE_SIZE; i < sizeof big; i++)
    big[i] = test_rand (&seed) >> 56;
  CHECK (zram_write (z, big, sizeof big, 0) == 0);
  for (i = 0; i < 3; i++)
    CHECK (zram_read (z, page, sizeof page, i * ZRAM_PAGE_SIZE) == 0);
  CHECK (zram_discard (z, ZRAM_PAGE_SIZE, 0) == 0);
  /* A request past the end fails, and is timed all the same. */
  CHECK (zram_read (z, page, sizeof page, c.disksize) == -1 && errno == EINVAL);

  zram_get_histogram (z, ZRAM_HIST_COMPR_SIZE, &snap);
  EXPECT (snap.total == 4, "compressed-size samples %llu",
          (unsigned long long) snap.total);
  EXPECT (snap.count[0] == 1, "same-filled page in bucket 0");
  EXPECT (snap.count[12] == 2, "huge pages in the 4096 bucket: %llu",
          (unsigned long long) snap.count[12]);
  EXPECT (snap.sum > 2 * ZRAM_PAGE_SIZE && snap.sum < 3 * ZRAM_PAGE_SIZE,
          "sum %llu", (unsigned long long) snap.sum);
  zram_get_histogram (z, ZRAM_HIST_WRITE_US, &snap);
  EXPECT (snap.total == 1, "writes %llu", (unsigned long long) snap.total);
  zram_get_histogram (z, ZRAM_HIST_READ_US, &snap);
  EXPECT (snap.total == 4, "reads %llu", (unsigned long long) snap.total);
  zram_get_histogram (z, ZRAM_HIST_DISCARD_US, &snap);
  EXPECT (snap.total == 1, "discards %llu", (unsigned long long) snap.total);

  /* The control protocol's "histograms": NAME=SUM C0 ... Ck, no trailing
   * empty bucket.  compressed_size_bytes: 1 in bucket 0, the compressed
   * page somewhere below 4096, 2 in bucket 12 (4096).
   */
  {
    char reply[ZCTL_REPLY_MAX];
    const char *line;
    unsigned long long sum, n, total = 0;
    int off, buckets = 0;

    zram_get_histogram (z, ZRAM_HIST_COMPR_SIZE, &snap);
    CHECK (zctl_execute (z, "histograms", 10, reply, sizeof reply) == 0);
    EXPECT (strstr (reply, "\nok\n") != NULL, "%s", reply);
    EXPECT (strstr (reply, "read_latency_us=") == reply, "%s", reply);
    EXPECT (strstr (reply, "\nwrite_latency_us=") != NULL, "%s", reply);
    EXPECT (strstr (reply, "\ndiscard_latency_us=") != NULL, "%s", reply);
    line = strstr (reply, "\ncompressed_size_bytes=");
    CHECK (line != NULL);
    line += strlen ("\ncompressed_size_bytes=");
    CHECK (sscanf (line, "%llu%n", &sum, &off) == 1);
    EXPECT (sum == snap.sum, "sum %llu, want %llu", sum,
            (unsigned long long) snap.sum);
    line += off;
    while (*line == ' ' && sscanf (line, " %llu%n", &n, &off) == 1) {
      total += n;
      buckets++;
      line += off;
    }
    EXPECT (*line == '\n', "junk after the buckets: %s", line);
    EXPECT (total == 4 && buckets == 13, "%llu samples in %d buckets",
            total, buckets);
    CHECK (zctl_execute (z, "histograms now", 14, reply, sizeof reply) == -1);
  }

  /* A reset keeps the histograms (monotonic counters). */
  CHECK (zram_reset (z, true, NULL) == 0);
  zram_get_histogram (z, ZRAM_HIST_READ_US, &snap);
  EXPECT (snap.total == 4, "reads after reset %llu",
          (unsigned long long) snap.total);
  zram_destroy (z);
}

int
main (void)
{
  test_buckets ();
  test_threads ();
  test_device ();
  if (check_failures)
    return 1;
  printf ("test-histogram: ok\n");
  return 0;
}
