/* The properties of nbdzramctl's reply reader and printers
 * (tools/zctl-client.h) for any bytes a server may send, shared by the
 * unit test (test-zctl-client.c) and the fuzzer (fuzz-zctl-client.c).
 * Header only.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   - parsing never reads or writes out of bounds (the sanitizers check);
 *   - a reply with a NUL byte, or bytes after its terminating line, is
 *     never accepted; an accepted reply's last line is its terminator;
 *   - parsing a prefix of the bytes never accepts a different reply;
 *   - whatever is printed (table, key=value, JSON; text and bytes modes)
 *     holds only printable ASCII and newlines: no terminal control byte.
 */
#ifndef ZRAM_ZCTL_CLIENT_CHECK_H
#define ZRAM_ZCTL_CLIENT_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zctl-client.h"

/* NULL if out holds only printable ASCII and '\n', else a message. */
static inline const char *
zcc_printable (const char *out, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++) {
    unsigned char c = out[i];
    if (c != '\n' && (c < 0x20 || c > 0x7e))
      return "printed a control or non-ASCII byte";
  }
  return NULL;
}

static inline const char *
zcc_print_all (const struct zctl_reply *r)
{
  static const int modes[][3] = {
    { 0, 1, 0 }, { 1, 0, 0 }, { 0, 1, 1 }, { 1, 1, 1 },
  };
  const char *bad = NULL;
  char err[256];
  size_t i;

  for (i = 0; i < sizeof modes / sizeof modes[0] && !bad; i++) {
    int cols[ZCTL_MAX_COLUMNS];
    struct zctl_table t = { .cols = cols, .bytes = modes[i][0],
                            .headings = modes[i][1], .json = modes[i][2],
                            .raw = i == 1 };
    struct zctl_row row = { r, "/dev/nbd0", "[SWAP]", "/run/zram0.ctl" };
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream (&out, &len);

    if (fp == NULL)
      abort ();
    t.ncols = zctl_columns_all (cols);
    if (zctl_print_table (fp, &t, &row, 1, err, sizeof err) == -1 &&
        zcc_printable (err, strlen (err)))
      bad = "an error message holds a control byte";
    zctl_print_kv (fp, r, modes[i][2]);
    fclose (fp);
    if (!bad)
      bad = zcc_printable (out, len);
    free (out);
  }
  return bad;
}

/* Check every property for data[len]; NULL if all hold. */
static inline const char *
zctl_client_check (const uint8_t *data, size_t len)
{
  struct zctl_reply *r = malloc (sizeof *r), *pre = malloc (sizeof *pre);
  enum zctl_reply_status st, pst;
  const char *bad = NULL;
  size_t k;

  if (r == NULL || pre == NULL)
    abort ();
  st = zctl_reply_parse (r, (const char *) data, len);
  if (st == ZCTL_REPLY_OK || st == ZCTL_REPLY_ERROR) {
    if (memchr (data, '\0', len))
      bad = "accepted a reply with a NUL byte";
    else if (len == 0 || data[len - 1] != '\n')
      bad = "accepted a reply that does not end in a newline";
    else if (len >= ZCTL_REPLY_MAX)
      bad = "accepted a reply longer than ZCTL_REPLY_MAX";
    else if ((st == ZCTL_REPLY_ERROR) != (r->error != NULL))
      bad = "status and error disagree";
    /* A prefix that ends at a newline is either incomplete or the same
     * reply: the first terminating line ends a reply.
     */
    for (k = 1; k < len && !bad; k++) {
      if (data[k - 1] != '\n')
        continue;
      pst = zctl_reply_parse (pre, (const char *) data, k);
      if (pst != ZCTL_REPLY_INCOMPLETE && pst != ZCTL_REPLY_NBD)
        bad = "a prefix was a complete reply too";
    }
    if (!bad)
      bad = zcc_print_all (r);
    if (!bad && r->error) {
      char msg[4 * ZCTL_REPLY_MAX];
      zctl_clean (r->error, msg, sizeof msg);
      bad = zcc_printable (msg, strlen (msg));
    }
  }
  else if (st == ZCTL_REPLY_BAD || st == ZCTL_REPLY_NBD) {
    if (zcc_printable (r->why, strlen (r->why)))
      bad = "the reason holds a control byte";
  }
  else if (len >= ZCTL_REPLY_MAX)
    bad = "an incomplete reply longer than ZCTL_REPLY_MAX";
  free (r);
  free (pre);
  return bad;
}

#endif /* ZRAM_ZCTL_CLIENT_CHECK_H */
