/* nbdzramctl: reading and printing replies of the control protocol
 * (include/zram/zctl.h), apart from the socket so that tests and a fuzzer
 * can feed it any bytes.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Nothing here trusts the bytes it is given: whoever listens at the socket
 * path wrote them.  A reply is accepted only if it is well formed (no NUL
 * byte, one terminating line at its end, at most ZCTL_REPLY_MAX bytes), and
 * everything printed from it is made safe for a terminal (bytes outside
 * printable ASCII are shown as \xNN) and for JSON.  No function exits or
 * aborts; all are thread-compatible (no global state).
 */
#ifndef ZRAM_ZCTL_CLIENT_H
#define ZRAM_ZCTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "zram/zctl.h"

/* Most key=value lines of a reply that are kept (more are ignored).  A
 * reply is at most ZCTL_REPLY_MAX bytes; "stats" has about 70 lines, and
 * every new statistic adds one: room for growth, or the last keys (the
 * policies') would silently go missing.
 */
#define ZCTL_CLIENT_MAX_KEYS 160

enum zctl_reply_status {
  ZCTL_REPLY_INCOMPLETE,        /* no terminating line yet: read more */
  ZCTL_REPLY_OK,                /* complete, ends in "ok" */
  ZCTL_REPLY_ERROR,             /* complete, ends in "error ..." */
  ZCTL_REPLY_BAD,               /* can never become a valid reply */
  ZCTL_REPLY_NBD,               /* an NBD server's greeting ("NBDMAGIC") */
};

struct zctl_kv {
  const char *key, *value;      /* raw server bytes: clean before printing */
};

struct zctl_reply {
  char buf[ZCTL_REPLY_MAX + 1]; /* the reply, split into strings in place */
  struct zctl_kv kv[ZCTL_CLIENT_MAX_KEYS];
  size_t nkv;
  const char *error;            /* after "error ": "ENAME: message" */
  char why[96];                 /* for ZCTL_REPLY_BAD: what is wrong */
};

/* Examine the len bytes received so far for one command (data need not be
 * NUL-terminated; any bytes).  Fills *r for every status but INCOMPLETE.
 */
extern enum zctl_reply_status zctl_reply_parse (struct zctl_reply *r,
                                                const char *data, size_t len);

/* Copy s to out[cap] (cap >= 1), every byte outside 0x20..0x7e written as
 * "\xNN"; cut short if it does not fit.  Returns out.
 */
extern char *zctl_clean (const char *s, char *out, size_t cap);

/* The value of key in r, or NULL. */
extern const char *zctl_reply_get (const struct zctl_reply *r, const char *key);

/* --- the zramctl-style table ---------------------------------------------- */

/* Columns: zramctl's names and meanings, then ours. */
enum zctl_column {
  ZCOL_NAME, ZCOL_DISKSIZE, ZCOL_DATA, ZCOL_COMPR, ZCOL_ALGORITHM,
  ZCOL_STREAMS, ZCOL_ZERO_PAGES, ZCOL_TOTAL, ZCOL_MEM_LIMIT, ZCOL_MEM_USED,
  ZCOL_MIGRATED, ZCOL_COMP_RATIO, ZCOL_MOUNTPOINT,
  ZCOL_HUGE_PAGES, ZCOL_POOL, ZCOL_LEVEL, ZCOL_CONNECTIONS, ZCOL_SOCKET,
  ZCOL_NR
};

/* Most columns a table may have (a list may name one twice). */
#define ZCTL_MAX_COLUMNS 64

/* zramctl's default columns (NAME ALGORITHM DISKSIZE DATA COMPR TOTAL
 * STREAMS MOUNTPOINT), or every column, into cols[ZCTL_MAX_COLUMNS];
 * returns how many.
 */
extern size_t zctl_columns_default (int *cols);
extern size_t zctl_columns_all (int *cols);

/* Parse an --output list: column names separated by commas, in any case;
 * a leading '+' adds them to the defaults.  Returns 0 with cols[*n], or -1
 * with a message in err (an unknown name, shown cleaned).
 */
extern int zctl_columns_parse (const char *list, int *cols, size_t *n,
                               char *err, size_t errlen);

/* Each column's name and meaning, one a line, for --help. */
extern void zctl_columns_help (FILE *fp);

/* One device of the table. */
struct zctl_row {
  const struct zctl_reply *stats;  /* its "stats" reply */
  const char *name;             /* NAME: /dev/nbdX or the socket path */
  const char *mountpoint;       /* MOUNTPOINT, or NULL */
  const char *socket;           /* SOCKET */
};

struct zctl_table {
  const int *cols;              /* enum zctl_column values */
  size_t ncols;
  bool bytes;                   /* sizes in bytes, not 4K, 1.5M... */
  bool headings;                /* a heading line (not with JSON) */
  bool raw;                     /* util-linux --raw: no alignment */
  bool json;                    /* {"devices": [{"name": ...}, ...]} */
};

/* Print rows as a table.  Returns 0, or -1 with a message in err[errlen]
 * (a key missing, a bad number) having printed nothing.  Every byte from a
 * server or a path is cleaned (zctl_clean) for the terminal and escaped
 * for JSON; a value an older server lacks (STREAMS) and an unknown
 * MOUNTPOINT are blank (null in JSON).
 */
extern int zctl_print_table (FILE *fp, const struct zctl_table *t,
                             const struct zctl_row *rows, size_t nrows,
                             char *err, size_t errlen);

/* Every key=value line of r, cleaned, as text or as a JSON object. */
extern void zctl_print_kv (FILE *fp, const struct zctl_reply *r, bool json);

#endif /* ZRAM_ZCTL_CLIENT_H */
