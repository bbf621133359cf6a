/* The automatic recompression policy (include/zram/policy-recompress.h)
 * on the background framework, without nbdkit:
 *   - it is refused without a secondary algorithm and with bad settings;
 *   - it leaves pages younger than its age alone, then recompresses them
 *     by itself (statistics move; every page reads back);
 *   - it keeps to its CPU budget while work is pending (process CPU
 *     against wall time; the work is left unfinished, so the budget bound);
 *   - recomp_rate caps the pages attempted per second;
 *   - it gives way to requests: while a reader keeps the device busy it
 *     attempts (almost) nothing, and when the reader stops it does the
 *     work;
 *   - near mem_limit it recompresses regardless of age (urgent rounds),
 *     and compacts, so the pool falls below the soft threshold; without
 *     the soft threshold it does nothing.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zram/background.h"
#include "zram/policy-recompress.h"
#include "zram/zram.h"
#include "check.h"

#define PAGE ZRAM_PAGE_SIZE

static double
clock_s (clockid_t id)
{
  struct timespec ts;

  clock_gettime (id, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Text-like page p: words from a small vocabulary, chosen at random, so
 * that LZ4 compresses it about 2x and zstd clearly better.
 */
static void
make_page (unsigned char *buf, uint32_t p)
{
  static const char *const words[] = {
    "zram ", "page ", "idle ", "slot ", "pool ", "class ", "span ", "lz4 ",
    "zstd ", "write ", "read ", "trim ", "reset ", "the ", "of ", "and ",
    "compress ", "memory ", "swap ", "kernel ", "nbdkit ", "policy ",
  };
  unsigned long long r = (p + 1) * 0x9e3779b97f4a7c15ULL;
  size_t len = 0;

  while (len < PAGE) {
    const char *w = words[test_rand (&r) % (sizeof words / sizeof *words)];
    size_t n = strlen (w);

    if (n > PAGE - len)
      n = PAGE - len;
    memcpy (buf + len, w, n);
    len += n;
  }
}

static struct zram *
make (uint32_t pages, int recomp_level, bool with_recomp)
{
  struct zram_config c = {
    .disksize = (uint64_t) pages * PAGE, .algo = ZCOMP_LZ4,
    .pool = ZPOOL_ZS,
  };
  struct zram *z;
  unsigned char buf[PAGE];

  if (with_recomp) {
    c.recomp[0].algo = ZCOMP_ZSTD;
    c.recomp[0].level = recomp_level;
    c.nr_recomp = 1;
  }
  z = zram_create (&c);
  CHECK (z != NULL);
  for (uint32_t p = 0; p < pages; p++) {
    make_page (buf, p);
    CHECK (zram_write (z, buf, PAGE, (uint64_t) p * PAGE) == 0);
  }
  return z;
}

static void
verify (struct zram *z, uint32_t pages)
{
  unsigned char got[PAGE], want[PAGE];

  for (uint32_t p = 0; p < pages; p++) {
    make_page (want, p);
    CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
    if (memcmp (got, want, PAGE) != 0) {
      fprintf (stderr, "page %" PRIu32 " corrupted\n", p);
      abort ();
    }
  }
}

static void
log_line (const char *fmt, ...)
{
  va_list ap;

  if (getenv ("TEST_VERBOSE") == NULL)
    return;
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
}

static void
test_refusals (void)
{
  struct zram_recomp_policy_config c, bad;
  struct zram *plain = make (16, 0, false), *z = make (16, 3, true);
  struct zram_bg *bg = zram_bg_create (0);

  CHECK (bg != NULL);
  zram_recomp_policy_defaults (&c);
  CHECK (c.age_s == ZRAM_RECOMP_POLICY_DEFAULT_AGE_S && c.log == NULL);
  /* No secondary algorithm: never runs. */
  CHECK (zram_recomp_policy_add (bg, plain, &c) == -1 && errno == EINVAL);
  bad = c; bad.age_s = 0;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  bad = c; bad.age_s = ZRAM_RECOMP_POLICY_MAX_AGE_S + 1;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  bad = c; bad.budget_pm = 0;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  bad = c; bad.budget_pm = 1001;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  bad = c; bad.soft_pm = 1001;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  bad = c; bad.period_ms = 0;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  bad = c; bad.rate_pages = ZRAM_RECOMP_POLICY_MAX_RATE + 1;
  CHECK (zram_recomp_policy_add (bg, z, &bad) == -1 && errno == EINVAL);
  CHECK (zram_recomp_policy_add (bg, z, &c) == 0);
  CHECK (zram_bg_find (bg, ZRAM_RECOMP_POLICY) == 0);
  zram_bg_destroy (bg);
  zram_destroy (plain);
  zram_destroy (z);
}

/* Pages younger than the age are left alone; then they are recompressed
 * with no command, and read back.
 */
static void
test_by_itself (void)
{
  const uint32_t pages = 1024;
  struct zram *z = make (pages, 3, true);
  struct zram_recomp_policy_config c;
  struct zram_bg *bg = zram_bg_create (0);
  struct zram_bg_counts n;
  struct zram_stats before, after;
  double t0;
  int id;

  zram_get_stats (z, &before);
  zram_recomp_policy_defaults (&c);
  c.age_s = 3;
  c.budget_pm = 500;
  c.period_ms = 100;
  c.log = log_line;
  id = zram_recomp_policy_add (bg, z, &c);
  CHECK (id == 0);
  t0 = clock_s (CLOCK_MONOTONIC);
  CHECK (zram_bg_start (bg) == 0);
  zram_set_background (z, bg);
  CHECK (zram_background (z) == bg);
  usleep (1500000);
  zram_bg_counts (bg, id, &n);
  zram_get_stats (z, &after);
  printf ("after 1.5 s (age 3 s): %" PRIu64 " rounds, %" PRIu64 " pages, "
          "%" PRIu64 " attempts\n", n.rounds, n.work, after.recomp_attempts);
  CHECK (after.recomp_attempts == 0 && n.work == 0);
  while (clock_s (CLOCK_MONOTONIC) - t0 < 30) {
    zram_get_stats (z, &after);
    zram_bg_counts (bg, id, &n);
    /* Counts move at the end of a round. */
    if (after.recomp_attempts >= pages && n.work == after.recomp_successes)
      break;
    usleep (50000);
  }
  zram_get_stats (z, &after);
  printf ("after %.1f s: %" PRIu64 " rounds, %" PRIu64 " pages stored "
          "smaller of %" PRIu64 " attempted, %.1f ms CPU; compr_data_size %"
          PRIu64 " -> %" PRIu64 ", pool %" PRIu64 " -> %" PRIu64 "\n",
          clock_s (CLOCK_MONOTONIC) - t0, n.rounds, n.work,
          after.recomp_attempts, n.cpu_ns / 1e6, before.compr_data_size,
          after.compr_data_size, before.mem_used_total, after.mem_used_total);
  CHECK (after.recomp_attempts == pages);
  CHECK (n.work == after.recomp_successes);
  CHECK (after.pages_recomp[0] == after.recomp_successes);
  CHECK (n.work > pages / 2);
  CHECK (after.compr_data_size < before.compr_data_size);
  CHECK (after.compr_data_size + after.recomp_bytes_saved
         == before.compr_data_size);
  CHECK (after.mem_used_total < before.mem_used_total * 3 / 4);
  zram_set_background (z, NULL);
  zram_bg_destroy (bg);
  /* The policy compacted after its cycle (there is no compaction policy
   * here): a compaction now finds next to nothing to release.
   */
  {
    int64_t left = zram_compact (z);

    printf ("compaction after the policy released %" PRId64 " pages\n", left);
    CHECK (left >= 0 && (uint64_t) left * PAGE <= after.mem_used_total / 50);
  }
  verify (z, pages);
  zram_destroy (z);
}

/* CPU seconds (user + system) the kernel has charged to this process's
 * thread named name (/proc/self/task/TID/stat, in clock ticks), or -1 if
 * there is none.  Independent of the framework's own accounting.
 */
static double
thread_cpu_s (const char *name)
{
  DIR *d = opendir ("/proc/self/task");
  struct dirent *e;
  double r = -1;

  CHECK (d != NULL);
  while (r < 0 && (e = readdir (d)) != NULL) {
    char path[300], buf[512], *p;
    unsigned long utime, stime;
    FILE *fp;

    if (e->d_name[0] == '.')
      continue;
    snprintf (path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    if ((fp = fopen (path, "r")) == NULL)
      continue;
    p = fgets (buf, sizeof buf, fp);
    fclose (fp);
    if (p == NULL || strncmp (buf, name, strlen (name)) != 0 ||
        (buf[strlen (name)] != '\n' && buf[strlen (name)] != '\0'))
      continue;
    snprintf (path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    if ((fp = fopen (path, "r")) == NULL)
      continue;
    p = fgets (buf, sizeof buf, fp);
    fclose (fp);
    /* Fields 14 and 15, counted after the ")" that ends the name. */
    if (p && (p = strrchr (buf, ')')) != NULL &&
        sscanf (p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                &utime, &stime) == 2)
      r = (double) (utime + stime) / sysconf (_SC_CLK_TCK);
  }
  closedir (d);
  return r;
}

/* With far more work pending than the budget allows, the policy uses no
 * more than its budget: the CPU the kernel charged to the background
 * thread over wall.  Not the whole process's: the sanitizers' runtimes
 * have threads of their own (ThreadSanitizer's background thread), whose
 * CPU, under a loaded machine, pushed a correct policy over the limit.
 */
static void
test_budget (void)
{
  const uint32_t pages = 8192;
  const unsigned budget_pm = 50, period_ms = 200;
  const double wall = 4.0;
  struct zram *z = make (pages, 19, true);
  struct zram_recomp_policy_config c;
  struct zram_bg *bg = zram_bg_create (0);
  struct zram_bg_counts n;
  struct zram_stats st;
  double pcpu0, pcpu, t0, cpu, elapsed, limit, burst;
  int id;

  zram_recomp_policy_defaults (&c);
  c.age_s = 1;
  c.budget_pm = budget_pm;
  c.period_ms = period_ms;
  c.log = log_line;
  id = zram_recomp_policy_add (bg, z, &c);
  CHECK (id == 0);
  sleep (2);                    /* every page is old enough from the start */
  pcpu0 = clock_s (CLOCK_PROCESS_CPUTIME_ID);
  t0 = clock_s (CLOCK_MONOTONIC);
  CHECK (zram_bg_start (bg) == 0);
  usleep ((useconds_t) (wall * 1e6));
  zram_bg_counts (bg, id, &n);
  cpu = thread_cpu_s (ZRAM_BG_THREAD_NAME);
  pcpu = clock_s (CLOCK_PROCESS_CPUTIME_ID) - pcpu0;
  elapsed = clock_s (CLOCK_MONOTONIC) - t0;
  CHECK (cpu >= 0);             /* the thread is there until destroyed */
  zram_bg_destroy (bg);
  zram_get_stats (z, &st);

  burst = period_ms / 1000.0 * budget_pm / 1000;
  if (burst < ZRAM_BG_MIN_BURST_NS / 1e9)
    burst = ZRAM_BG_MIN_BURST_NS / 1e9;
  /* One batch of overrun: ZRAM_RECOMP_POLICY_BATCH zstd-19 compressions,
   * each well under 2 ms.
   */
  limit = (elapsed * budget_pm / 1000 + burst +
           ZRAM_RECOMP_POLICY_BATCH * 0.002) * 1.15 + 0.005;
  printf ("budget %.1f %%: %.3f s CPU in %.3f s (%.1f %%), limit %.3f s "
          "(its own count %.3f s, the whole process %.3f s); "
          "%" PRIu64 " of %" PRIu32 " pages attempted, %" PRIu64
          " rounds, throttled %" PRIu64 "\n", budget_pm / 10.0, cpu, elapsed,
          100 * cpu / elapsed, limit, n.cpu_ns / 1e9, pcpu,
          st.recomp_attempts, pages, n.rounds, n.throttled);
  EXPECT (cpu <= limit, "%.3f s of CPU over a limit of %.3f s", cpu, limit);
  EXPECT (cpu >= 0.4 * elapsed * budget_pm / 1000,
          "%.3f s of CPU, less than 40 %% of the budget", cpu);
  EXPECT (st.recomp_attempts > 0 && st.recomp_attempts < pages,
          "%" PRIu64 " pages attempted: the budget did not bound the work",
          st.recomp_attempts);
  zram_destroy (z);
}

/* recomp_rate caps the pages attempted per second, whatever the budget. */
static void
test_rate (void)
{
  const uint32_t pages = 2048;
  const uint64_t rate = 200;
  struct zram *z = make (pages, 3, true);
  struct zram_recomp_policy_config c;
  struct zram_bg *bg = zram_bg_create (0);
  struct zram_stats st;
  double t0, elapsed;

  zram_recomp_policy_defaults (&c);
  c.age_s = 1;
  c.budget_pm = ZRAM_BG_UNLIMITED;
  c.period_ms = 100;
  c.rate_pages = rate;
  c.log = log_line;
  CHECK (zram_recomp_policy_add (bg, z, &c) == 0);
  sleep (2);
  t0 = clock_s (CLOCK_MONOTONIC);
  CHECK (zram_bg_start (bg) == 0);
  usleep (2000000);
  zram_get_stats (z, &st);
  elapsed = clock_s (CLOCK_MONOTONIC) - t0;
  zram_bg_destroy (bg);
  printf ("rate %" PRIu64 " pages/s: %" PRIu64 " attempted in %.2f s\n",
          rate, st.recomp_attempts, elapsed);
  /* The first round comes a period after the start; each round may take
   * one page more than its share.
   */
  EXPECT (st.recomp_attempts <= rate * elapsed * 1.1 + elapsed * 10 + 10,
          "%" PRIu64 " pages attempted at %" PRIu64 " a second",
          st.recomp_attempts, rate);
  EXPECT (st.recomp_attempts >= rate * (elapsed - 0.3) * 0.7,
          "only %" PRIu64 " pages attempted", st.recomp_attempts);
  verify (z, pages);
  zram_destroy (z);
}

/* A reader that keeps the device busy (about 1000 reads a second, far
 * above ZRAM_RECOMP_POLICY_BUSY_RATE) until told to stop.
 */
struct reader {
  struct zram *z;
  uint32_t pages;
  atomic_bool stop;
  uint64_t reads;
};

static void *
reader_thread (void *arg)
{
  struct reader *rd = arg;
  unsigned char buf[PAGE];

  for (uint32_t p = 0; !atomic_load (&rd->stop); p = (p + 1) % rd->pages) {
    CHECK (zram_read (rd->z, buf, PAGE, (uint64_t) p * PAGE) == 0);
    rd->reads++;
    usleep (1000);
  }
  return NULL;
}

/* With idle pages and CPU to spare (half a core), the policy still leaves
 * the device alone while requests are being served, then does the work.
 */
static void
test_yields (void)
{
  const uint32_t pages = 2048;
  struct zram *z = make (pages, 3, true);
  struct zram_recomp_policy_config c;
  struct zram_bg *bg = zram_bg_create (0);
  struct reader rd = { .z = z, .pages = pages };
  struct zram_bg_counts n;
  struct zram_stats st;
  pthread_t t;
  uint64_t busy_attempts;
  double t0;
  int id;

  zram_recomp_policy_defaults (&c);
  c.age_s = 1;
  c.budget_pm = 500;
  c.period_ms = 100;
  c.log = log_line;
  id = zram_recomp_policy_add (bg, z, &c);
  CHECK (id == 0);
  CHECK (pthread_create (&t, NULL, reader_thread, &rd) == 0);
  sleep (2);                    /* every page older than the age */
  CHECK (zram_bg_start (bg) == 0);
  sleep (2);
  zram_get_stats (z, &st);
  zram_bg_counts (bg, id, &n);
  busy_attempts = st.recomp_attempts;
  atomic_store (&rd.stop, true);
  CHECK (pthread_join (t, NULL) == 0);
  printf ("busy: %" PRIu64 " reads, %" PRIu64 " rounds yielded, %" PRIu64
          " pages attempted\n", rd.reads, n.yielded, busy_attempts);
  /* A round that started before the requests would stop after one
   * batch; none should start, since they come first.
   */
  EXPECT (busy_attempts <= ZRAM_RECOMP_POLICY_BATCH,
          "%" PRIu64 " pages attempted while the device was busy",
          busy_attempts);
  EXPECT (n.yielded >= 5, "only %" PRIu64 " rounds yielded", n.yielded);
  t0 = clock_s (CLOCK_MONOTONIC);
  do {
    usleep (100000);
    zram_get_stats (z, &st);
  } while (st.recomp_attempts < pages && clock_s (CLOCK_MONOTONIC) - t0 < 30);
  zram_bg_destroy (bg);
  printf ("quiet: %" PRIu64 " pages attempted %.1f s after the reader "
          "stopped\n", st.recomp_attempts, clock_s (CLOCK_MONOTONIC) - t0);
  EXPECT (st.recomp_attempts >= pages, "only %" PRIu64 " pages attempted "
          "once the device was quiet", st.recomp_attempts);
  verify (z, pages);
  zram_destroy (z);
}

/* Near mem_limit: the age (an hour) no longer matters. */
static void
test_soft_limit (unsigned soft_pm)
{
  const uint32_t pages = 2048;
  struct zram *z = make (pages, 3, true);
  struct zram_recomp_policy_config c;
  struct zram_bg *bg = zram_bg_create (0);
  struct zram_bg_counts n;
  struct zram_stats st;
  uint64_t limit, soft;
  double t0;
  int id;

  zram_get_stats (z, &st);
  limit = st.mem_used_total * 100 / 95;       /* pool at 95 % of the limit */
  soft = limit / 1000 * 900;
  zram_set_mem_limit (z, limit);
  zram_recomp_policy_defaults (&c);
  c.age_s = 3600;
  c.budget_pm = 500;
  c.period_ms = 100;
  c.soft_pm = soft_pm;
  c.log = log_line;
  id = zram_recomp_policy_add (bg, z, &c);
  CHECK (id == 0);
  sleep (1);                    /* pages must be a second old (urgent age) */
  t0 = clock_s (CLOCK_MONOTONIC);
  CHECK (zram_bg_start (bg) == 0);
  while (clock_s (CLOCK_MONOTONIC) - t0 < (soft_pm ? 30 : 2)) {
    zram_get_stats (z, &st);
    zram_bg_counts (bg, id, &n);
    /* The counts are updated at the end of the round. */
    if (soft_pm && st.mem_used_total < soft && n.urgent >= 1)
      break;
    usleep (50000);
  }
  zram_bg_counts (bg, id, &n);
  zram_get_stats (z, &st);
  printf ("soft limit %u pm: pool %" PRIu64 " of limit %" PRIu64 " (soft %"
          PRIu64 ") after %.1f s; %" PRIu64 " urgent rounds, %" PRIu64
          " pages recompressed\n", soft_pm, st.mem_used_total, limit, soft,
          clock_s (CLOCK_MONOTONIC) - t0, n.urgent, n.work);
  if (soft_pm) {
    CHECK (n.urgent >= 1 && n.work > 0);
    CHECK (st.mem_used_total < soft);
  }
  else
    CHECK (n.urgent == 0 && n.work == 0 && st.recomp_attempts == 0);
  zram_bg_destroy (bg);
  verify (z, pages);
  zram_destroy (z);
}

int
main (void)
{
  test_refusals ();
  test_by_itself ();
  test_budget ();
  test_rate ();
  test_yields ();
  test_soft_limit (0);
  test_soft_limit (900);
  if (check_failures)
    return 1;
  printf ("test-policy-recompress: ok\n");
  return 0;
}
