/* nbdzramctl's reply reader and printers (tools/zctl-client.c) against
 * hostile and broken servers: NUL bytes, terminal escapes, an NBD
 * greeting, oversized and unterminated replies, numbers JSON must not
 * take raw; then a seeded random run over a corpus of mutated replies,
 * checking the properties of zctl-client-check.h (the fuzzer,
 * fuzz-zctl-client.c, checks the same ones).
 * Environment: ZCC_ITERATIONS (default 100000), ZCC_SEED.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zctl-client-check.h"
#include "check.h"

static const char stats[] =
  "disksize=67108864\norig_data_size=4194304\ncompr_data_size=100000\n"
  "mem_used_total=131072\nmem_limit=0\nmem_used_max=131072\nsame_pages=3\n"
  "pages_compacted=0\nhuge_pages=0\nhuge_pages_since=0\nfailed_reads=0\n"
  "failed_writes=0\ninvalid_io=0\nnotify_free=0\nalgorithm=lz4\nlevel=0\n"
  "pool=zs\nconnections=1\ninitialised=1\nok\n";

static struct zctl_reply r;

static enum zctl_reply_status
parse (const char *s, size_t len)
{
  return zctl_reply_parse (&r, s, len);
}

#define PARSE(lit) parse (lit, sizeof lit - 1)

/* Print the table or key=value lines of r into a string (static). */
static const char *
render (int table, int json)
{
  static char *out;
  size_t len;
  char err[256];
  FILE *fp;

  free (out);
  out = NULL;
  fp = open_memstream (&out, &len);
  if (table) {
    /* The columns of every kind (text, sizes, counts, the ratio); the
     * fuzz check (zctl-client-check.h) prints every column.
     */
    int cols[ZCTL_MAX_COLUMNS];
    struct zctl_table t = { .cols = cols, .headings = true, .json = json };
    struct zctl_row row = { &r, "/run/z.ctl", NULL, "/run/z.ctl" };

    CHECK (zctl_columns_parse ("NAME,ALGORITHM,DISKSIZE,DATA,COMPR,TOTAL,"
                               "ZERO-PAGES,MEM-LIMIT,MEM-USED,MIGRATED,"
                               "COMP-RATIO", cols, &t.ncols, err,
                               sizeof err) == 0);
    if (zctl_print_table (fp, &t, &row, 1, err, sizeof err) == -1)
      fprintf (fp, "ERR:%s", err);
  }
  else
    zctl_print_kv (fp, &r, json);
  fclose (fp);
  return out;
}

static uint64_t
rnd (uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

int
main (void)
{
  static const char *const seeds[] = {
    stats, "ok\n", "pages_freed=12\nok\n",
    "error EBUSY: reset refused: 1 connection still open\n",
    "error EACCES: permission denied\n", "command=help\nalgorithms=lz4\nok\n",
    "NBDMAGIC\0\0\x42\x02\x81\x86\x12\x53IHAVEOPT\0\x03",
  };
  size_t seed_len[sizeof seeds / sizeof seeds[0]];
  char buf[3 * ZCTL_REPLY_MAX], big[ZCTL_REPLY_MAX + 8];
  uint64_t seed = (uint64_t) time (NULL) | 1, s;
  unsigned long iterations = 100000, i;
  const char *e, *bad, *out;

  for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
    seed_len[i] = strlen (seeds[i]);
  seed_len[6] = 26;             /* the NBD greeting holds NULs */
  if ((e = getenv ("ZCC_ITERATIONS")))
    iterations = strtoul (e, NULL, 10);
  if ((e = getenv ("ZCC_SEED")))
    seed = strtoull (e, NULL, 0) | 1;

  /* Well-formed replies. */
  EXPECT (PARSE ("ok\n") == ZCTL_REPLY_OK && r.nkv == 0, "ok");
  EXPECT (parse (stats, sizeof stats - 1) == ZCTL_REPLY_OK && r.nkv == 19 &&
          strcmp (zctl_reply_get (&r, "algorithm"), "lz4") == 0, "stats");
  out = render (1, 0);
  EXPECT (strstr (out, "\n/run/z.ctl lz4") && strstr (out, " 32.0000\n"), "%s", out);
  EXPECT (PARSE ("error EBUSY: busy\n") == ZCTL_REPLY_ERROR &&
          strcmp (r.error, "EBUSY: busy") == 0, "error");
  /* Incomplete: read more. */
  EXPECT (PARSE ("disksize=1\n") == ZCTL_REPLY_INCOMPLETE, "no end yet");
  EXPECT (PARSE ("o") == ZCTL_REPLY_INCOMPLETE, "half ok");
  EXPECT (PARSE ("NBDM") == ZCTL_REPLY_INCOMPLETE, "half a greeting");
  EXPECT (parse ("", 0) == ZCTL_REPLY_INCOMPLETE, "nothing");

  /* Case 08: "error \0\n" crashed nbdzramctl. */
  EXPECT (parse ("error \0\n", 8) == ZCTL_REPLY_BAD && strstr (r.why, "NUL"),
          "NUL: %s", r.why);
  EXPECT (parse ("disksize=1\0\nok\n", 15) == ZCTL_REPLY_BAD, "NUL in a value");
  EXPECT (PARSE ("ok\nok\n") == ZCTL_REPLY_BAD, "two replies");
  EXPECT (PARSE ("ok\nx") == ZCTL_REPLY_BAD, "bytes after the end");
  EXPECT (parse (seeds[6], seed_len[6]) == ZCTL_REPLY_NBD &&
          strstr (r.why, "NBD"), "NBD greeting: %s", r.why);
  memset (big, 'a', sizeof big);
  EXPECT (parse (big, ZCTL_REPLY_MAX) == ZCTL_REPLY_BAD, "endless line");
  memcpy (big + ZCTL_REPLY_MAX - 2, "=\n", 2);
  memcpy (big + ZCTL_REPLY_MAX, "ok\n", 3);
  EXPECT (parse (big, ZCTL_REPLY_MAX + 3) == ZCTL_REPLY_BAD, "oversized reply");

  /* Terminal escapes from the server are shown, not obeyed. */
  snprintf (buf, sizeof buf, "%.*salgorithm=\x1b]0;owned\x07\x1b[2J\x9b"
            "31m\nok\n", (int) (strstr (stats, "algorithm=") - stats), stats);
  EXPECT (parse (buf, strlen (buf)) == ZCTL_REPLY_OK, "escape reply");
  out = render (1, 0);
  EXPECT (!strchr (out, '\x1b') && !strchr (out, '\x07') &&
          strstr (out, "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m"), "table: %s", out);
  out = render (0, 0);
  EXPECT (!strchr (out, '\x1b') && strstr (out, "algorithm=\\x1b"), "kv: %s", out);
  out = render (1, 1);
  EXPECT (!strchr (out, '\x1b') && strstr (out, "\"\\u001b]0;owned\\u0007"),
          "json: %s", out);
  out = render (0, 1);
  EXPECT (strstr (out, "\\u009b31m") != NULL, "json high byte: %s", out);
  EXPECT (PARSE ("error E\x1b[2J: x\n") == ZCTL_REPLY_ERROR, "escape in error");
  {
    char msg[128];
    EXPECT (strcmp (zctl_clean (r.error, msg, sizeof msg), "E\\x1b[2J: x") == 0,
            "%s", msg);
    EXPECT (strlen (zctl_clean ("\x01\x02\x03", msg, 6)) <= 5, "clean cap");
  }
  /* JSON numbers: never with a leading zero or a sign; a missing or bad
   * number in the table is an error with nothing printed.
   */
  EXPECT (PARSE ("level=007\nmem_limit=0\nx=-1\nok\n") == ZCTL_REPLY_OK, "nums");
  out = render (0, 1);
  EXPECT (strstr (out, "\"level\": \"007\"") && strstr (out, "\"mem_limit\": 0") &&
          strstr (out, "\"x\": \"-1\""), "%s", out);
  out = render (1, 0);
  EXPECT (strncmp (out, "ERR:the server's stats lack", 27) == 0, "%s", out);
  snprintf (buf, sizeof buf, "%s", stats);
  memcpy (strstr (buf, "disksize=") + 9, "1x", 2);
  EXPECT (parse (buf, strlen (buf)) == ZCTL_REPLY_OK, "bad number reply");
  out = render (1, 0);
  EXPECT (strncmp (out, "ERR:bad number for 'disksize'", 29) == 0, "%s", out);

  /* Every seed, every prefix. */
  for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    size_t k;
    for (k = 0; k <= seed_len[i]; k++) {
      bad = zctl_client_check ((const uint8_t *) seeds[i], k);
      EXPECT (bad == NULL, "seed %lu prefix %zu: %s", i, k, bad);
    }
  }

  /* Seeded mutations of the seeds, and random bytes. */
  printf ("seed 0x%" PRIx64 ", %lu iterations\n", seed, iterations);
  s = seed;
  for (i = 0; i < iterations && check_failures < 10; i++) {
    size_t which = rnd (&s) % (sizeof seeds / sizeof seeds[0] + 1), len, m, k;

    if (which == sizeof seeds / sizeof seeds[0]) {
      len = rnd (&s) % (ZCTL_REPLY_MAX + 16);
      for (k = 0; k < len; k++)
        buf[k] = (char) rnd (&s);
    }
    else {
      len = seed_len[which];
      memcpy (buf, seeds[which], len);
    }
    for (m = rnd (&s) % 6; m > 0; m--) {
      uint64_t x = rnd (&s);
      size_t at = len ? x % len : 0;

      switch ((x >> 32) % 5) {
      case 0:                   /* flip a byte */
        if (len)
          buf[at] = (char) (x >> 40);
        break;
      case 1:                   /* a control byte or a NUL */
        if (len)
          buf[at] = "\0\x1b\x07\n\r\x9b\x7f="[(x >> 40) % 8];
        break;
      case 2:                   /* cut */
        len = at;
        break;
      case 3:                   /* repeat a piece */
        k = (x >> 40) % 64;
        if (len + k < sizeof buf && at + k <= len) {
          memmove (buf + at + k, buf + at, len - at);
          len += k;
        }
        break;
      case 4:                   /* append a terminator */
        if (len + 3 < sizeof buf) {
          memcpy (buf + len, "ok\n", 3);
          len += 3;
        }
        break;
      }
    }
    bad = zctl_client_check ((const uint8_t *) buf, len);
    EXPECT (bad == NULL, "iteration %lu (seed 0x%" PRIx64 "): %s", i, seed, bad);
  }

  render (0, 0);
  if (check_failures) {
    fprintf (stderr, "%d failure(s)\n", check_failures);
    return 1;
  }
  printf ("test-zctl-client: all passed\n");
  return 0;
}
