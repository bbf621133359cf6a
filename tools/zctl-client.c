/* nbdzramctl: reading and printing replies of the control protocol.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zctl-client.h"

enum zctl_reply_status
zctl_reply_parse (struct zctl_reply *r, const char *data, size_t len)
{
  static const char magic[] = "NBDMAGIC";
  const char *nul, *nl;
  size_t start, end = 0;
  char *p, *next;

  r->nkv = 0;
  r->error = NULL;
  r->why[0] = '\0';
  r->buf[0] = '\0';
  if (len == 0)
    return ZCTL_REPLY_INCOMPLETE;

  /* An NBD server speaks first; its greeting starts with NBDMAGIC. */
  if (memcmp (data, magic, len < 8 ? len : 8) == 0) {
    if (len < 8)
      return ZCTL_REPLY_INCOMPLETE;
    snprintf (r->why, sizeof r->why, "an NBD server (it greeted with "
              "NBDMAGIC), not a control socket");
    return ZCTL_REPLY_NBD;
  }
  nul = memchr (data, '\0', len);
  if (nul) {
    snprintf (r->why, sizeof r->why, "a NUL byte at offset %zu",
              (size_t) (nul - data));
    return ZCTL_REPLY_BAD;
  }

  /* The end of the terminating line, if it has come. */
  for (start = 0; start < len; start = nl - data + 1) {
    nl = memchr (data + start, '\n', len - start);
    if (nl == NULL)
      break;
    if ((nl - (data + start) == 2 && memcmp (data + start, "ok", 2) == 0) ||
        (len - start >= 6 && memcmp (data + start, "error ", 6) == 0)) {
      end = nl - data + 1;
      break;
    }
  }
  if (end == 0) {
    if (len >= ZCTL_REPLY_MAX) {
      snprintf (r->why, sizeof r->why, "no end of reply within %d bytes",
                ZCTL_REPLY_MAX);
      return ZCTL_REPLY_BAD;
    }
    return ZCTL_REPLY_INCOMPLETE;
  }
  if (end != len) {
    snprintf (r->why, sizeof r->why, "%zu bytes after the end of the reply",
              len - end);
    return ZCTL_REPLY_BAD;
  }
  if (len >= ZCTL_REPLY_MAX) {
    snprintf (r->why, sizeof r->why, "a reply longer than %d bytes",
              ZCTL_REPLY_MAX - 1);
    return ZCTL_REPLY_BAD;
  }

  /* Split it in place: every line ends in '\n', none holds a NUL. */
  memcpy (r->buf, data, len);
  r->buf[len] = '\0';
  for (p = r->buf; *p; p = next) {
    char *eq;

    next = strchr (p, '\n');
    *next++ = '\0';
    if (strcmp (p, "ok") == 0)
      return ZCTL_REPLY_OK;
    if (strncmp (p, "error ", 6) == 0) {
      r->error = p + 6;
      return ZCTL_REPLY_ERROR;
    }
    /* Lines without '=' (help text) carry nothing for us. */
    eq = strchr (p, '=');
    if (eq && r->nkv < ZCTL_CLIENT_MAX_KEYS) {
      *eq = '\0';
      r->kv[r->nkv].key = p;
      r->kv[r->nkv++].value = eq + 1;
    }
  }
  snprintf (r->why, sizeof r->why, "no terminating line");  /* unreachable */
  return ZCTL_REPLY_BAD;
}

char *
zctl_clean (const char *s, char *out, size_t cap)
{
  size_t n = 0;

  for (; *s; s++) {
    unsigned char c = *s;

    if (c >= 0x20 && c <= 0x7e) {
      if (n + 1 >= cap)
        break;
      out[n++] = c;
    }
    else {
      if (n + 4 >= cap)
        break;
      snprintf (out + n, 5, "\\x%02x", c);
      n += 4;
    }
  }
  out[n] = '\0';
  return out;
}

const char *
zctl_reply_get (const struct zctl_reply *r, const char *key)
{
  size_t i;

  for (i = 0; i < r->nkv; i++)
    if (strcmp (r->kv[i].key, key) == 0)
      return r->kv[i].value;
  return NULL;
}

static int
get_u64 (const struct zctl_reply *r, const char *key, unsigned long long *out,
         char *err, size_t errlen)
{
  const char *v = zctl_reply_get (r, key);
  char clean[64];
  char *end;

  if (v == NULL) {
    snprintf (err, errlen, "the server's stats lack '%s'", key);
    return -1;
  }
  errno = 0;
  *out = strtoull (v, &end, 10);
  if (errno || end == v || *end || v[0] < '0' || v[0] > '9') {
    snprintf (err, errlen, "bad number for '%s': %s", key,
              zctl_clean (v, clean, sizeof clean));
    return -1;
  }
  return 0;
}

/* zramctl's style: 1023B, 4K, 1.5M, 2G. */
static void
human_size (unsigned long long bytes, char *out, size_t cap)
{
  static const char units[] = "KMGTPE";
  double v = bytes;
  int u = -1;

  if (bytes < 1024) {
    snprintf (out, cap, "%lluB", bytes);
    return;
  }
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  if (v >= 1023.95 && u < 5) {  /* would print as 1024.0 */
    v /= 1024;
    u++;
  }
  if (bytes % (1ULL << (10 * (u + 1))) == 0)
    snprintf (out, cap, "%.0f%c", v, units[u]);
  else
    snprintf (out, cap, "%.1f%c", v, units[u]);
}

/* A JSON string of plain ASCII whatever s holds: control characters and
 * bytes >= 0x7f are escaped (the latter as the Latin-1 code point).
 */
static void
json_string (FILE *fp, const char *s)
{
  putc ('"', fp);
  for (; *s; s++) {
    unsigned char c = *s;

    if (c == '"' || c == '\\')
      fprintf (fp, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      fprintf (fp, "\\u%04x", c);
    else
      putc (c, fp);
  }
  putc ('"', fp);
}

/* A JSON number: 0, or digits without a leading zero (at most 20). */
static bool
json_number (const char *v)
{
  size_t n = strspn (v, "0123456789");

  return n > 0 && n <= 20 && v[n] == '\0' && (v[0] != '0' || n == 1);
}

enum col_type { COL_STRING, COL_SIZE, COL_COUNT, COL_RATIO };

struct column {
  const char *name;             /* heading; JSON key is its lowercase */
  enum col_type type;
  const char *key;              /* stats key, or NULL (name, ratio) */
};

static const struct column columns[] = {
  { "NAME",       COL_STRING, NULL },
  { "ALGORITHM",  COL_STRING, "algorithm" },
  { "DISKSIZE",   COL_SIZE,   "disksize" },
  { "DATA",       COL_SIZE,   "orig_data_size" },
  { "COMPR",      COL_SIZE,   "compr_data_size" },
  { "TOTAL",      COL_SIZE,   "mem_used_total" },
  { "ZERO-PAGES", COL_COUNT,  "same_pages" },
  { "MEM-LIMIT",  COL_SIZE,   "mem_limit" },
  { "MEM-USED",   COL_SIZE,   "mem_used_max" },
  { "MIGRATED",   COL_COUNT,  "pages_compacted" },
  { "COMP-RATIO", COL_RATIO,  NULL },
};
#define NCOLS (sizeof columns / sizeof columns[0])

int
zctl_print_table (FILE *fp, const struct zctl_reply *r, const char *name,
                  bool bytes, bool headings, bool json, char *err,
                  size_t errlen)
{
  /* Raw strings for JSON, cleaned ones for the terminal. */
  const char *raw[NCOLS];
  char cell[NCOLS][96];
  unsigned long long orig = 0, total = 0;
  int width[NCOLS];
  bool have_ratio;
  size_t i;

  if (get_u64 (r, "mem_used_total", &total, err, errlen) == -1 ||
      get_u64 (r, "orig_data_size", &orig, err, errlen) == -1)
    return -1;
  have_ratio = total > 0;

  for (i = 0; i < NCOLS; i++) {
    const struct column *c = &columns[i];
    unsigned long long v;

    raw[i] = NULL;
    switch (c->type) {
    case COL_STRING:
      raw[i] = c->key ? zctl_reply_get (r, c->key) : name;
      if (raw[i] == NULL) {
        snprintf (err, errlen, "the server's stats lack '%s'", c->key);
        return -1;
      }
      zctl_clean (raw[i], cell[i], sizeof cell[i]);
      break;
    case COL_SIZE:
      if (get_u64 (r, c->key, &v, err, errlen) == -1)
        return -1;
      if (bytes)
        snprintf (cell[i], sizeof cell[i], "%llu", v);
      else
        human_size (v, cell[i], sizeof cell[i]);
      break;
    case COL_COUNT:
      if (get_u64 (r, c->key, &v, err, errlen) == -1)
        return -1;
      snprintf (cell[i], sizeof cell[i], "%llu", v);
      break;
    case COL_RATIO:
      if (have_ratio)
        snprintf (cell[i], sizeof cell[i], "%.4f",
                  (double) orig / (double) total);
      else
        snprintf (cell[i], sizeof cell[i], "-");
      break;
    }
  }

  if (json) {
    fprintf (fp, "{\n   \"devices\": [\n      {");
    for (i = 0; i < NCOLS; i++) {
      const char *n;

      fprintf (fp, "%s\n         \"", i ? "," : "");
      for (n = columns[i].name; *n; n++)
        putc (*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n, fp);
      fprintf (fp, "\": ");
      if (columns[i].type == COL_STRING)
        json_string (fp, raw[i]);
      else if (columns[i].type == COL_SIZE && !bytes)
        json_string (fp, cell[i]);
      else if (columns[i].type == COL_RATIO && !have_ratio)
        fprintf (fp, "null");
      else
        fprintf (fp, "%s", cell[i]);
    }
    fprintf (fp, "\n      }\n   ]\n}\n");
    return 0;
  }

  /* Each column as wide as the wider of its heading and its value;
   * without headings, as wide as the value (one row: nothing to align).
   */
  for (i = 0; i < NCOLS; i++) {
    int w = (int) strlen (cell[i]);

    if (headings && w < (int) strlen (columns[i].name))
      w = (int) strlen (columns[i].name);
    width[i] = w;
  }
  if (headings) {
    for (i = 0; i < NCOLS; i++)
      fprintf (fp, columns[i].type == COL_STRING ? "%s%-*s" : "%s%*s",
               i ? " " : "", width[i], columns[i].name);
    putc ('\n', fp);
  }
  for (i = 0; i < NCOLS; i++)
    fprintf (fp, columns[i].type == COL_STRING ? "%s%-*s" : "%s%*s",
             i ? " " : "", width[i], cell[i]);
  putc ('\n', fp);
  return 0;
}

void
zctl_print_kv (FILE *fp, const struct zctl_reply *r, bool json)
{
  char key[4 * 64], value[4 * 256];
  size_t i;

  if (!json) {
    for (i = 0; i < r->nkv; i++)
      fprintf (fp, "%s=%s\n", zctl_clean (r->kv[i].key, key, sizeof key),
               zctl_clean (r->kv[i].value, value, sizeof value));
    return;
  }
  fprintf (fp, "{");
  for (i = 0; i < r->nkv; i++) {
    fprintf (fp, "%s\n   ", i ? "," : "");
    json_string (fp, r->kv[i].key);
    fprintf (fp, ": ");
    if (json_number (r->kv[i].value))
      fprintf (fp, "%s", r->kv[i].value);
    else
      json_string (fp, r->kv[i].value);
  }
  fprintf (fp, "\n}\n");
}
