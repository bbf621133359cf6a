/* Unit test of the control protocol (zctl_execute) against a real device:
 * every command, every error, and no state change on error.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zram/size.h"
#include "zram/zctl.h"
#include "zram/zram.h"
#include "check.h"

static char reply[ZCTL_REPLY_MAX];

/* Run a command given as a C string (no NUL inside). */
static int
run (struct zram *z, const char *line)
{
  return zctl_execute (z, line, strlen (line), reply, sizeof reply);
}

/* The last line of reply, without its '\n'. */
static const char *
last_line (void)
{
  static char buf[ZCTL_REPLY_MAX];
  size_t len = strlen (reply);
  char *p;

  if (len == 0 || reply[len - 1] != '\n')
    return "(unterminated)";
  memcpy (buf, reply, len - 1);
  buf[len - 1] = '\0';
  p = strrchr (buf, '\n');
  return p ? p + 1 : buf;
}

static int
ends_ok (void)
{
  return strcmp (last_line (), "ok") == 0;
}

/* The reply is exactly one line: "error NAME: ...". */
static int
is_error (const char *name)
{
  size_t n = strlen (name);

  return strncmp (reply, "error ", 6) == 0 &&
         strncmp (reply + 6, name, n) == 0 && reply[6 + n] == ':' &&
         strchr (reply, '\n') == reply + strlen (reply) - 1;
}

/* Value of key in the last reply, or NULL. */
static const char *
value (const char *key)
{
  static char buf[256];
  size_t klen = strlen (key);
  const char *p = reply;

  while (*p) {
    const char *nl = strchr (p, '\n');
    if (strncmp (p, key, klen) == 0 && p[klen] == '=') {
      size_t vlen = nl - (p + klen + 1);
      memcpy (buf, p + klen + 1, vlen);
      buf[vlen] = '\0';
      return buf;
    }
    p = nl + 1;
  }
  return NULL;
}

static void
fill (unsigned char *page, unsigned seed)
{
  unsigned x = seed * 2654435761u + 1;
  size_t i;

  for (i = 0; i < ZRAM_PAGE_SIZE; i++) {
    x = x * 1103515245u + 12345u;
    page[i] = (x >> 16) & 0x3;  /* compressible, not same-filled */
  }
}

static int
page_is (struct zram *z, uint64_t index, unsigned seed)
{
  unsigned char want[ZRAM_PAGE_SIZE], got[ZRAM_PAGE_SIZE];

  if (seed == 0)
    memset (want, 0, sizeof want);
  else
    fill (want, seed);
  if (zram_read (z, got, sizeof got, index * ZRAM_PAGE_SIZE) == -1)
    return 0;
  return memcmp (want, got, sizeof got) == 0;
}

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Close the device's last opener 300 ms from now, as nbdkit does a moment
 * after a client disconnected.
 */
static void *
close_later (void *z)
{
  usleep (300000);
  zram_close (z);
  return NULL;
}

/* Pages 0 and 5 hold patterns 1 and 2. */
static void
fill_pages (struct zram *z)
{
  unsigned char page[ZRAM_PAGE_SIZE];

  fill (page, 1);
  zram_write (z, page, sizeof page, 0);
  fill (page, 2);
  zram_write (z, page, sizeof page, 5 * ZRAM_PAGE_SIZE);
}

/* Commands that must fail, with the errno name they must report. */
static const struct {
  const char *line;
  const char *err;
} bad[] = {
  { "", "EINVAL" },
  { "   ", "EINVAL" },
  { "frobnicate", "EINVAL" },
  { "STATS", "EINVAL" },
  { "stats now", "EINVAL" },
  { "help me", "EINVAL" },
  { "compact all", "EINVAL" },
  { "reset please", "EINVAL" },
  { "reset force force", "EINVAL" },
  { "reset algorithm=lz5", "EINVAL" },
  { "reset algorithm=", "EINVAL" },
  { "reset algorithm=zstd algorithm=lz4", "EINVAL" },
  { "reset algorithm=zstd level=1000", "EINVAL" },
  { "reset algorithm=zstd level=3x", "EINVAL" },
  { "reset algorithm=zstd level=", "EINVAL" },
  { "reset algorithm=zstd level=+3", "EINVAL" },
  { "reset algorithm=lz4 level=65538", "EINVAL" },
  { "reset algorithm=lz4 level=-1", "EINVAL" },
  { "idle", "EINVAL" },
  { "idle 0", "EINVAL" },
  { "idle -5", "EINVAL" },
  { "idle 1x", "EINVAL" },
  { "idle all now", "EINVAL" },
  { "idle 4294967296", "EINVAL" },
  { "recompress", "EINVAL" },
  { "recompress type=cold", "EINVAL" },
  { "recompress type=idle type=huge", "EINVAL" },
  { "recompress threshold=100", "EINVAL" },
  /* This device has no recompression algorithm. */
  { "recompress type=idle", "EINVAL" },
  { "writeback", "EINVAL" },
  { "writeback type=cold", "EINVAL" },
  { "writeback cold", "EINVAL" },
  { "writeback type=idle type=huge", "EINVAL" },
  { "writeback idle huge", "EINVAL" },
  { "writeback max_pages=5", "EINVAL" },
  { "writeback type=idle max_pages=x", "EINVAL" },
  { "writeback type=idle max_pages=1 max_pages=2", "EINVAL" },
  /* This device has no backing store. */
  { "writeback type=idle", "ENODEV" },
  { "writeback huge", "ENODEV" },
  { "reset force level=99999999999999999999", "EINVAL" },
  { "mem_limit", "EINVAL" },
  { "mem_limit 1M 2M", "EINVAL" },
  { "mem_limit -1", "EINVAL" },
  { "mem_limit 1.5G", "EINVAL" },
  { "mem_limit 12Q", "EINVAL" },
  { "mem_limit 0x10", "EINVAL" },
  { "mem_limit K", "EINVAL" },
  { "mem_limit 99999999999999999999", "ERANGE" },
  { "mem_limit 17179869184T", "ERANGE" },
  { "mem_used_max", "EINVAL" },
  { "mem_used_max 5", "EINVAL" },
  { "mem_used_max 00", "EINVAL" },
  { "a b c d e f g h i", "E2BIG" },
  { "reset\x01", "EINVAL" },
  { "stats\x7f", "EINVAL" },
  { "st\xc3\xa4ts", "EINVAL" },
  { "reset\rforce", "EINVAL" },
  { "reset\nforce", "EINVAL" },
};

/* All statistics a failed command must leave alone. */
static void
snapshot (struct zram *z, struct zram_stats *s)
{
  zram_get_stats (z, s);
}

static int
same_stats (const struct zram_stats *a, const struct zram_stats *b)
{
  return a->disksize == b->disksize &&
         a->orig_data_size == b->orig_data_size &&
         a->compr_data_size == b->compr_data_size &&
         a->mem_limit == b->mem_limit && a->mem_used_max == b->mem_used_max &&
         a->same_pages == b->same_pages && a->openers == b->openers &&
         a->failed_writes == b->failed_writes && a->algo == b->algo &&
         a->level == b->level && a->pool == b->pool &&
         a->initialised == b->initialised &&
         a->idle_pages == b->idle_pages &&
         a->recomp_attempts == b->recomp_attempts &&
         a->incompressible_pages == b->incompressible_pages;
}

/* idle and recompress on a device with two recompression algorithms:
 * they work, report what they did, and refuse bad arguments changing
 * nothing.
 */
static void
test_recompress_commands (void)
{
  static const char *const refused[] = {
    "recompress type=idle algo=lz4",        /* not configured */
    "recompress type=idle algo=gzip",
    "recompress type=idle priority=3",      /* only 2 */
    "recompress type=idle priority=0",
    "recompress type=idle priority=x",
    "recompress type=idle algo=zstd priority=1",
    "recompress type=idle priority=1 priority=1",
    "recompress type=idle threshold=4097",
    "recompress type=idle threshold=-1",
    "recompress type=idle max_pages=1k",
    "recompress type=idle max_pages=1 max_pages=2",
    "recompress type=idle bogus",
  };
  struct zram_config config = {
    .disksize = 1 << 20, .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
    .recomp = { { ZCOMP_LZ4HC, 9 }, { ZCOMP_ZSTD, 19 } }, .nr_recomp = 2,
  };
  struct zram_stats before, after;
  unsigned char page[ZRAM_PAGE_SIZE];
  struct zram *z = zram_create (&config);
  size_t i;

  CHECK (z != NULL);
  for (i = 0; i < 32; i++) {
    for (size_t j = 0; j < sizeof page; j++)
      page[j] = "recompress me, please "[(j * (i + 1) + j / 97) % 22];
    CHECK (zram_write (z, page, sizeof page, i * ZRAM_PAGE_SIZE) == 0);
  }
  EXPECT (run (z, "stats") == 0 &&
          strcmp (value ("recomp_algorithm"), "lz4hc:9,zstd:19") == 0,
          "%s", reply);
  EXPECT (strcmp (value ("idle_pages"), "0") == 0, "%s", reply);
  EXPECT (run (z, "idle all") == 0 && strcmp (value ("marked"), "32") == 0,
          "%s", reply);
  EXPECT (run (z, "idle 3600") == 0 && strcmp (value ("marked"), "0") == 0,
          "%s", reply);
  snapshot (z, &before);
  EXPECT (before.idle_pages == 32, "%" PRIu64, before.idle_pages);
  for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    EXPECT (run (z, refused[i]) == -1 && is_error ("EINVAL"), "'%s' -> %s",
            refused[i], reply);
    snapshot (z, &after);
    EXPECT (same_stats (&before, &after), "'%s' changed the stats", refused[i]);
  }
  EXPECT (strstr (reply, "unexpected or repeated argument 'bogus'"), "%s", reply);
  EXPECT (run (z, "recompress type=idle algo=lz4") == -1 &&
          strstr (reply, "lz4hc:9,zstd:19"), "%s", reply);

  EXPECT (run (z, "recompress type=huge") == 0 &&
          strcmp (value ("attempted"), "0") == 0, "%s", reply);
  EXPECT (run (z, "recompress type=idle max_pages=5 algo=zstd") == 0 &&
          strcmp (value ("attempted"), "5") == 0, "%s", reply);
  EXPECT (run (z, "recompress type=idle threshold=100") == 0 && ends_ok (),
          "%s", reply);
  snapshot (z, &after);
  EXPECT (after.recomp_successes > 0 &&
          after.recomp_bytes_saved == before.compr_data_size - after.compr_data_size,
          "%" PRIu64 " saved", after.recomp_bytes_saved);
  EXPECT (run (z, "stats") == 0 && value ("pages_recomp2") != NULL &&
          strtoull (value ("pages_recomp2"), NULL, 10) == after.pages_recomp[1],
          "%s", reply);
  zram_destroy (z);
}

/* writeback on a device with a backing store: it works, both spellings,
 * reports what it did, and bd_stat's keys follow.
 */
static void
test_writeback_commands (void)
{
  struct zram_config config = {
    .disksize = 1 << 20, .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
  };
  char path[] = "/tmp/test-zctl-store.XXXXXX", err[BACKING_ERR_MAX];
  unsigned char page[ZRAM_PAGE_SIZE];
  struct zram *z;
  size_t i;
  int fd = mkstemp (path);

  CHECK (fd >= 0);
  close (fd);
  config.backing = backing_open (path, config.disksize, err, sizeof err);
  CHECK (config.backing != NULL);
  unlink (path);
  z = zram_create (&config);
  CHECK (z != NULL);
  for (i = 0; i < 32; i++) {
    fill (page, (unsigned) i + 1);
    CHECK (zram_write (z, page, sizeof page, i * ZRAM_PAGE_SIZE) == 0);
  }
  EXPECT (run (z, "stats") == 0 && strcmp (value ("bd_count"), "0") == 0 &&
          strcmp (value ("backing_blocks"), "256") == 0, "%s", reply);
  EXPECT (run (z, "writeback type=idle") == 0 &&
          strcmp (value ("written"), "0") == 0, "%s", reply);
  EXPECT (run (z, "idle all") == 0 && strcmp (value ("marked"), "32") == 0,
          "%s", reply);
  EXPECT (run (z, "writeback type=idle max_pages=5") == 0 &&
          strcmp (value ("written"), "5") == 0 &&
          strcmp (value ("raced"), "0") == 0, "%s", reply);
  EXPECT (run (z, "writeback idle") == 0 &&
          strcmp (value ("written"), "27") == 0, "%s", reply);
  for (i = 0; i < 32; i++)
    EXPECT (page_is (z, i, (unsigned) i + 1), "page %zu", i);
  EXPECT (run (z, "stats") == 0 && strcmp (value ("bd_count"), "32") == 0 &&
          strcmp (value ("bd_writes"), "32") == 0 &&
          strcmp (value ("bd_reads"), "32") == 0 &&
          strcmp (value ("compr_data_size"), "0") == 0, "%s", reply);
  EXPECT (run (z, "reset force") == 0 && run (z, "stats") == 0 &&
          strcmp (value ("bd_count"), "0") == 0, "%s", reply);
  zram_destroy (z);
}

/* group and dissolve: each refusal names what was wrong. */
static void
test_group_commands (void)
{
  struct zram_config config = {
    .disksize = 1 << 20, .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
    .group_pages = 16, .group_algo = { ZCOMP_ZSTD, 3 },
  };
  struct zram *z = zram_create (&config);

  CHECK (z != NULL);
  /* A second argument is not the first one's fault. */
  EXPECT (run (z, "dissolve live_min=50 extra") == -1 && is_error ("EINVAL") &&
          strstr (reply, "'extra'") && !strstr (reply, "'live_min=50' is not"),
          "%s", reply);
  EXPECT (run (z, "dissolve live_min=0") == -1 && is_error ("EINVAL") &&
          strstr (reply, "'live_min=0' is not live_min=PERCENT"), "%s", reply);
  EXPECT (run (z, "dissolve live_min=50") == 0 && ends_ok (), "%s", reply);
  EXPECT (run (z, "group age=5 age=6") == -1 && is_error ("EINVAL") &&
          strstr (reply, "'age=6'"), "%s", reply);
  zram_destroy (z);
}

int
main (void)
{
  struct zram_config config = {
    .disksize = 4 << 20, .algo = ZCOMP_LZ4, .level = 0, .pool = ZPOOL_MALLOC,
  };
  struct zram_stats before, after;
  unsigned char page[ZRAM_PAGE_SIZE];
  char line[4 * ZCTL_LINE_MAX];
  uint64_t sz;
  struct zram *z;
  double t0, t1;
  size_t i;

  z = zram_create (&config);
  if (z == NULL) {
    perror ("zram_create");
    return 1;
  }

  /* help */
  EXPECT (run (z, "help") == 0 && ends_ok (), "%s", reply);
  EXPECT (strstr (reply, "command=reset [force]") != NULL, "%s", reply);
  EXPECT (strncmp (reply, "ok", 2) != 0 && strncmp (reply, "error", 5) != 0,
         "help text starts like a terminating line");

  /* Which commands may block (the server runs them off its poll loop). */
  EXPECT (zctl_may_block ("reset", 5) && zctl_may_block (" reset force", 12) &&
          zctl_may_block ("compact", 7) && zctl_may_block ("reset\r", 6) &&
          zctl_may_block ("reset\tbogus", 11) && zctl_may_block ("idle all", 8) &&
          zctl_may_block ("recompress type=idle", 20) &&
          zctl_may_block ("writeback type=idle", 19), "slow commands");
  EXPECT (!zctl_may_block ("stats", 5) && !zctl_may_block ("resetx", 6) &&
          !zctl_may_block ("rese", 4) && !zctl_may_block ("", 0) &&
          !zctl_may_block ("help", 4) && !zctl_may_block ("mem_limit 0", 11) &&
          !zctl_may_block ("compac", 6), "quick commands");
  EXPECT (zctl_lane ("reset force", 11) == ZCTL_LANE_SLOW &&
          zctl_lane ("compact", 7) == ZCTL_LANE_SLOW &&
          zctl_lane (" idle 60", 8) == ZCTL_LANE_WALK &&
          zctl_lane ("recompress type=huge\r", 21) == ZCTL_LANE_WALK &&
          zctl_lane ("stats", 5) == ZCTL_LANE_QUICK &&
          zctl_lane ("idler", 5) == ZCTL_LANE_QUICK,
          "walks have a lane of their own, apart from reset and compact");

  /* stats, on an empty device */
  EXPECT (run (z, "stats") == 0 && ends_ok (), "%s", reply);
  {
    static const char *keys[] = {
      "disksize", "orig_data_size", "compr_data_size", "mem_used_total",
      "mem_limit", "mem_used_max", "same_pages", "pages_compacted",
      "huge_pages", "huge_pages_since", "failed_reads", "failed_writes",
      "invalid_io", "notify_free", "algorithm", "level", "pool",
      "connections", "initialised",
    };
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
      EXPECT (value (keys[i]) != NULL, "stats lacks %s", keys[i]);
  }
  EXPECT (strcmp (value ("disksize"), "4194304") == 0, "%s", value ("disksize"));
  EXPECT (strcmp (value ("algorithm"), "lz4") == 0, "%s", value ("algorithm"));
  EXPECT (strcmp (value ("pool"), "malloc") == 0, "%s", value ("pool"));
  EXPECT (strcmp (value ("orig_data_size"), "0") == 0, "%s", reply);
  EXPECT (strcmp (value ("initialised"), "1") == 0, "%s", reply);

  /* A trailing '\r' is tolerated (telnet-style clients). */
  EXPECT (zctl_execute (z, "stats\r", 6, reply, sizeof reply) == 0 && ends_ok (),
         "%s", reply);
  /* Words separated by several blanks and tabs. */
  EXPECT (run (z, " \t mem_limit \t 0 ") == 0 && ends_ok (), "%s", reply);

  /* Store two pages, then show that every bad command leaves them and
   * every statistic alone.
   */
  fill (page, 1);
  EXPECT (zram_write (z, page, sizeof page, 0) == 0, "write: %m");
  fill (page, 2);
  EXPECT (zram_write (z, page, sizeof page, 5 * ZRAM_PAGE_SIZE) == 0, "write: %m");
  EXPECT (zram_open (z) == 0, "open");
  EXPECT (run (z, "mem_limit 1G") == 0, "%s", reply);
  snapshot (z, &before);
  EXPECT (before.orig_data_size == 2 * ZRAM_PAGE_SIZE, "%" PRIu64,
         before.orig_data_size);

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    EXPECT (run (z, bad[i].line) == -1 && is_error (bad[i].err),
           "'%s' -> %s", bad[i].line, reply);
    snapshot (z, &after);
    EXPECT (same_stats (&before, &after), "'%s' changed the stats", bad[i].line);
  }
  /* Embedded NUL: the line is the full length, not up to the NUL. */
  EXPECT (zctl_execute (z, "reset\0force", 11, reply, sizeof reply) == -1 &&
         is_error ("EINVAL"), "%s", reply);
  /* Too long, even if the first words are a valid command. */
  memset (line, ' ', sizeof line);
  memcpy (line, "reset force", 11);
  EXPECT (zctl_execute (z, line, ZCTL_LINE_MAX + 1, reply, sizeof reply) == -1 &&
         is_error ("E2BIG"), "%s", reply);
  EXPECT (zctl_execute (z, line, sizeof line, reply, sizeof reply) == -1 &&
         is_error ("E2BIG"), "%s", reply);
  /* Exactly the limit is fine. */
  memset (line, ' ', sizeof line);
  memcpy (line, "stats", 5);
  EXPECT (zctl_execute (z, line, ZCTL_LINE_MAX, reply, sizeof reply) == 0 &&
         ends_ok (), "%s", reply);
  /* Binary garbage of every byte value. */
  for (i = 0; i < 256; i++) {
    line[0] = 's'; line[1] = (char) i; line[2] = 'x';
    zctl_execute (z, line, 3, reply, sizeof reply);
    EXPECT (strncmp (reply, "error ", 6) == 0, "byte %zu: %s", i, reply);
  }
  snapshot (z, &after);
  EXPECT (same_stats (&before, &after), "garbage changed the stats");
  EXPECT (page_is (z, 0, 1) && page_is (z, 5, 2), "data changed by bad commands");

  /* reset without force while a connection is open: EBUSY, data intact. */
  /* It waits about ZCTL_RESET_WAIT_MS for them first; "nowait" does not.
   * The hint names no command spelling (nbdzramctl has its own).
   */
  EXPECT (zram_open (z) == 0, "open");
  t0 = now ();
  EXPECT (run (z, "reset") == -1 && is_error ("EBUSY"), "%s", reply);
  t1 = now () - t0;
  EXPECT (t1 >= ZCTL_RESET_WAIT_MS / 1000.0 - 0.05 &&
          t1 < ZCTL_RESET_WAIT_MS / 1000.0 + 1.5, "waited %.3f s", t1);
  EXPECT (strstr (reply, "2 connections still open after waiting") != NULL,
         "%s", reply);
  EXPECT (strstr (reply, "'reset") == NULL && strstr (reply, "--force") == NULL,
          "hint spells a command: %s", reply);
  EXPECT (page_is (z, 0, 1), "reset EBUSY lost data");
  zram_close (z);
  t0 = now ();
  EXPECT (run (z, "reset nowait algorithm=zstd") == -1 && is_error ("EBUSY"),
          "%s", reply);
  EXPECT (now () - t0 < 0.5, "nowait waited %.3f s", now () - t0);
  EXPECT (strstr (reply, "1 connection still open;") != NULL, "%s", reply);
  snapshot (z, &after);
  EXPECT (after.algo == ZCOMP_LZ4, "refused reset changed the algorithm");
  EXPECT (run (z, "reset nowait nowait") == -1 && is_error ("EINVAL"), "%s", reply);

  /* The connection closes during the wait (nbdkit's .close comes a moment
   * after the client saw its disconnect): the reset goes through.
   */
  {
    pthread_t th;

    EXPECT (pthread_create (&th, NULL, close_later, z) == 0, "pthread_create");
    EXPECT (run (z, "reset") == 0 && ends_ok (), "%s", reply);
    pthread_join (th, NULL);
    EXPECT (page_is (z, 0, 0), "reset after the wait kept data");
    fill_pages (z);
    EXPECT (zram_open (z) == 0, "reopen");
  }

  /* reset force with the connection still open: data gone. */
  EXPECT (run (z, "reset force") == 0 && ends_ok (), "%s", reply);
  EXPECT (page_is (z, 0, 0) && page_is (z, 5, 0), "reset force kept data");
  snapshot (z, &after);
  EXPECT (after.orig_data_size == 0 && after.openers == 1, "%" PRIu64 " %" PRIu64,
         after.orig_data_size, after.openers);
  EXPECT (after.mem_limit == 1 << 30, "mem_limit lost by reset");

  /* reset without force once closed; with a new algorithm and level. */
  zram_close (z);
  EXPECT (run (z, "reset algorithm=zstd level=3") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("algorithm"), "zstd") == 0 &&
         strcmp (value ("level"), "3") == 0, "%s", reply);
  EXPECT (run (z, "reset level=5") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("algorithm"), "zstd") == 0 &&
         strcmp (value ("level"), "5") == 0, "%s", reply);
  EXPECT (run (z, "reset force algorithm=lz4hc") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("algorithm"), "lz4hc") == 0, "%s", reply);
  EXPECT (run (z, "reset") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("algorithm"), "lz4hc") == 0, "plain reset kept %s",
         value ("algorithm"));
  EXPECT (strcmp (value ("pool"), "malloc") == 0, "pool changed: %s", reply);

  /* mem_limit: suffixes, and writes past it fail with ENOSPC. */
  EXPECT (run (z, "mem_limit 64K") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("mem_limit"), "65536") == 0, "%s", reply);
  EXPECT (run (z, "mem_limit 2GiB") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("mem_limit"), "2147483648") == 0, "%s", reply);
  EXPECT (run (z, "mem_limit 16384") == 0, "%s", reply);
  {
    uint64_t fw;
    int err = 0;
    unsigned j;

    zram_get_stats (z, &before);
    fw = before.failed_writes;
    /* Incompressible pages until the limit bites (bounded). */
    for (j = 0; j < 64; j++) {
      size_t k;
      unsigned x = j * 7919 + 1;
      for (k = 0; k < sizeof page; k++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        page[k] = x;
      }
      if (zram_write (z, page, sizeof page, j * (uint64_t) ZRAM_PAGE_SIZE) == -1) {
        err = errno;
        break;
      }
    }
    EXPECT (err == ENOSPC, "no ENOSPC after %u pages (errno %d)", j, err);
    zram_get_stats (z, &after);
    EXPECT (after.failed_writes == fw + 1, "failed_writes %" PRIu64 " -> %" PRIu64,
           fw, after.failed_writes);
    EXPECT (after.mem_used_total <= 16384 + ZRAM_PAGE_SIZE, "%" PRIu64,
           after.mem_used_total);
  }
  EXPECT (run (z, "mem_limit 0") == 0, "%s", reply);
  run (z, "stats");
  EXPECT (strcmp (value ("mem_limit"), "0") == 0, "%s", reply);

  /* mem_used_max 0 restarts the peak at the current use. */
  EXPECT (run (z, "reset") == 0, "%s", reply);
  fill (page, 3);
  for (i = 0; i < 64; i++)
    zram_write (z, page, sizeof page, i * ZRAM_PAGE_SIZE);
  EXPECT (zram_discard (z, 64 * ZRAM_PAGE_SIZE, 0) == 0, "discard");
  zram_get_stats (z, &before);
  EXPECT (run (z, "mem_used_max 0") == 0 && ends_ok (), "%s", reply);
  zram_get_stats (z, &after);
  EXPECT (after.mem_used_max == after.mem_used_total &&
         after.mem_used_max <= before.mem_used_max, "%" PRIu64 " %" PRIu64,
         before.mem_used_max, after.mem_used_max);

  /* compact */
  EXPECT (run (z, "compact") == 0 && ends_ok (), "%s", reply);
  EXPECT (value ("pages_freed") != NULL, "%s", reply);

  /* A small reply buffer keeps whole lines and the terminating line. */
  {
    char small[48];
    size_t len;

    EXPECT (zctl_execute (z, "stats", 5, small, sizeof small) == 0, "small");
    len = strlen (small);
    EXPECT (len < sizeof small && len >= 3 &&
           strcmp (small + len - 3, "ok\n") == 0, "'%s'", small);
    EXPECT (strncmp (small, "disksize=", 9) == 0, "'%s'", small);
    EXPECT (zctl_execute (z, "bogus", 5, small, 10) == -1 &&
           strcmp (small, "error EI\n") == 0, "'%s'", small);
  }

  /* zram_parse_size (include/zram/size.h) */
  EXPECT (zram_parse_size ("0", &sz) == 0 && sz == 0, "0");
  EXPECT (zram_parse_size ("4096", &sz) == 0 && sz == 4096, "4096");
  EXPECT (zram_parse_size ("1k", &sz) == 0 && sz == 1024, "1k");
  EXPECT (zram_parse_size ("3M", &sz) == 0 && sz == 3 << 20, "3M");
  EXPECT (zram_parse_size ("1GB", &sz) == 0 && sz == 1 << 30, "1GB");
  EXPECT (zram_parse_size ("2TiB", &sz) == 0 && sz == 2ULL << 40, "2TiB");
  EXPECT (zram_parse_size ("16777215T", &sz) == 0 && sz == 16777215ULL << 40, "max T");
  EXPECT (zram_parse_size ("16777216T", &sz) == -1 && errno == ERANGE, "T overflow");
  EXPECT (zram_parse_size ("18446744073709551615", &sz) == 0 && sz == ~0ULL, "max");
  EXPECT (zram_parse_size ("18446744073709551616", &sz) == -1 && errno == ERANGE, "ovf");
  EXPECT (zram_parse_size ("", &sz) == -1 && errno == EINVAL, "empty");
  EXPECT (zram_parse_size ("1iB", &sz) == -1 && errno == EINVAL, "1iB");
  EXPECT (zram_parse_size ("1KK", &sz) == -1 && errno == EINVAL, "1KK");
  EXPECT (zram_parse_size (" 1", &sz) == -1 && errno == EINVAL, "space");
  EXPECT (zram_parse_size ("4GiB", &sz) == 0 && sz == 4ULL << 30, "4GiB");
  EXPECT (zram_parse_size ("4g", &sz) == 0 && sz == 4ULL << 30, "4g");
  EXPECT (zram_parse_size ("2P", &sz) == 0 && sz == 2ULL << 50, "2P");
  EXPECT (zram_parse_size ("15E", &sz) == 0 && sz == 15ULL << 60, "15E");
  EXPECT (zram_parse_size ("16E", &sz) == -1 && errno == ERANGE, "16E");
  EXPECT (zram_parse_size ("4Gi", &sz) == -1 && errno == EINVAL, "4Gi");
  EXPECT (zram_parse_size ("1.5G", &sz) == -1 && errno == EINVAL, "1.5G");
  EXPECT (zram_parse_size ("0x10", &sz) == -1 && errno == EINVAL, "0x10");
  EXPECT (zram_parse_size ("4 G", &sz) == -1 && errno == EINVAL, "4 G");
  EXPECT (zram_parse_size ("4X", &sz) == -1 && errno == EINVAL, "4X");

  zram_destroy (z);
  test_recompress_commands ();
  test_writeback_commands ();
  test_group_commands ();
  if (check_failures) {
    fprintf (stderr, "%d failure(s)\n", check_failures);
    return 1;
  }
  printf ("test-zctl: all passed\n");
  return 0;
}
