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

/* Most key=value lines of a reply that are kept (more are ignored). */
#define ZCTL_CLIENT_MAX_KEYS 64

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

/* The zramctl-style table of a "stats" reply (name is the NAME column),
 * as text (bytes: sizes in bytes; headings: the heading line) or JSON.
 * Returns 0, or -1 with a message in err[errlen] (a key missing, a bad
 * number), having printed nothing.
 */
extern int zctl_print_table (FILE *fp, const struct zctl_reply *r,
                             const char *name, bool bytes, bool headings,
                             bool json, char *err, size_t errlen);

/* Every key=value line of r, cleaned, as text or as a JSON object. */
extern void zctl_print_kv (FILE *fp, const struct zctl_reply *r, bool json);

#endif /* ZRAM_ZCTL_CLIENT_H */
