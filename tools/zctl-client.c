/* nbdzramctl: reading and printing replies of the control protocol.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Where a column's value comes from. */
enum col_source {
  SRC_STATS,                    /* the stats key */
  SRC_NAME,                     /* the row's name */
  SRC_MOUNTPOINT,               /* the row's use */
  SRC_SOCKET,                   /* the row's socket path */
  SRC_RATIO,                    /* orig_data_size / mem_used_total */
};

struct column {
  const char *name;             /* heading; JSON key is its lowercase */
  enum col_type type;
  enum col_source source;
  const char *key;              /* stats key for SRC_STATS */
  bool optional;                /* an older server may lack it: blank */
  const char *help;
};

/* zramctl's columns with its meanings, then ours (enum zctl_column). */
static const struct column columns[ZCOL_NR] = {
  [ZCOL_NAME] = { "NAME", COL_STRING, SRC_NAME, NULL, false,
    "the /dev/nbdX the export is attached to, else its socket" },
  [ZCOL_DISKSIZE] = { "DISKSIZE", COL_SIZE, SRC_STATS, "disksize", false,
    "size of the device" },
  [ZCOL_DATA] = { "DATA", COL_SIZE, SRC_STATS, "orig_data_size", false,
    "uncompressed size of the data stored" },
  [ZCOL_COMPR] = { "COMPR", COL_SIZE, SRC_STATS, "compr_data_size", false,
    "compressed size of the data stored" },
  [ZCOL_ALGORITHM] = { "ALGORITHM", COL_STRING, SRC_STATS, "algorithm", false,
    "the compression algorithm" },
  [ZCOL_STREAMS] = { "STREAMS", COL_COUNT, SRC_STATS, "streams", true,
    "compression streams: threads with a codec state" },
  [ZCOL_ZERO_PAGES] = { "ZERO-PAGES", COL_COUNT, SRC_STATS, "same_pages", false,
    "same-filled pages, stored without memory" },
  [ZCOL_TOTAL] = { "TOTAL", COL_SIZE, SRC_STATS, "mem_used_total", false,
    "memory used, metadata excluded" },
  [ZCOL_MEM_LIMIT] = { "MEM-LIMIT", COL_SIZE, SRC_STATS, "mem_limit", false,
    "memory limit; 0 = none" },
  [ZCOL_MEM_USED] = { "MEM-USED", COL_SIZE, SRC_STATS, "mem_used_max", false,
    "peak memory usage" },
  [ZCOL_MIGRATED] = { "MIGRATED", COL_COUNT, SRC_STATS, "pages_compacted", false,
    "pages freed by compaction" },
  [ZCOL_COMP_RATIO] = { "COMP-RATIO", COL_RATIO, SRC_RATIO, NULL, false,
    "DATA / TOTAL" },
  [ZCOL_MOUNTPOINT] = { "MOUNTPOINT", COL_STRING, SRC_MOUNTPOINT, NULL, true,
    "where the device is mounted, or [SWAP]" },
  [ZCOL_HUGE_PAGES] = { "HUGE-PAGES", COL_COUNT, SRC_STATS, "huge_pages", false,
    "pages stored uncompressed" },
  [ZCOL_POOL] = { "POOL", COL_STRING, SRC_STATS, "pool", false,
    "allocator of the compressed pages" },
  [ZCOL_LEVEL] = { "LEVEL", COL_COUNT, SRC_STATS, "level", false,
    "compression level (0: the algorithm's own)" },
  [ZCOL_CONNECTIONS] = { "CONNECTIONS", COL_COUNT, SRC_STATS, "connections",
    false, "open NBD connections" },
  [ZCOL_SOCKET] = { "SOCKET", COL_STRING, SRC_SOCKET, NULL, false,
    "the control socket" },
};

/* zramctl's default columns. */
static const int default_columns[] = {
  ZCOL_NAME, ZCOL_ALGORITHM, ZCOL_DISKSIZE, ZCOL_DATA, ZCOL_COMPR,
  ZCOL_TOTAL, ZCOL_STREAMS, ZCOL_MOUNTPOINT,
};

size_t
zctl_columns_default (int *cols)
{
  size_t i, n = sizeof default_columns / sizeof default_columns[0];

  for (i = 0; i < n; i++)
    cols[i] = default_columns[i];
  return n;
}

size_t
zctl_columns_all (int *cols)
{
  int i;

  for (i = 0; i < ZCOL_NR; i++)
    cols[i] = i;
  return ZCOL_NR;
}

int
zctl_columns_parse (const char *list, int *cols, size_t *n, char *err,
                    size_t errlen)
{
  const char *p = list;
  size_t count = 0;

  if (*p == '+') {              /* util-linux: add to the defaults */
    count = zctl_columns_default (cols);
    p++;
  }
  for (;;) {
    size_t len = strcspn (p, ",");
    char clean[64];
    int c;

    for (c = 0; c < ZCOL_NR; c++)
      if (strlen (columns[c].name) == len &&
          strncasecmp (columns[c].name, p, len) == 0)
        break;
    if (c == ZCOL_NR) {
      char word[64];

      snprintf (word, sizeof word, "%.*s", (int) (len < 60 ? len : 60), p);
      snprintf (err, errlen, "unknown column '%s' (--help lists them)",
                zctl_clean (word, clean, sizeof clean));
      return -1;
    }
    if (count == ZCTL_MAX_COLUMNS) {
      snprintf (err, errlen, "more than %d columns", ZCTL_MAX_COLUMNS);
      return -1;
    }
    cols[count++] = c;
    p += len;
    if (*p == '\0')
      break;
    p++;                        /* the comma */
  }
  *n = count;
  return 0;
}

void
zctl_columns_help (FILE *fp)
{
  int c;

  for (c = 0; c < ZCOL_NR; c++)
    fprintf (fp, " %12s  %s\n", columns[c].name, columns[c].help);
}

/* The cell of column c for row w: its text for a terminal (cleaned), its
 * raw text for JSON (NULL: null), whether JSON takes it as a number.
 * Returns 0, or -1 with a message in err.
 */
static int
cell_of (const struct zctl_row *w, int c, bool bytes, char *cell, size_t cap,
         const char **raw, bool *number, char *err, size_t errlen)
{
  const struct column *col = &columns[c];
  unsigned long long v, orig, total;
  const char *s = NULL;

  *raw = NULL;
  *number = false;
  cell[0] = '\0';
  switch (col->source) {
  case SRC_NAME: s = w->name; break;
  case SRC_SOCKET: s = w->socket; break;
  case SRC_MOUNTPOINT: s = w->mountpoint; break;
  case SRC_RATIO:
    if (get_u64 (w->stats, "mem_used_total", &total, err, errlen) == -1 ||
        get_u64 (w->stats, "orig_data_size", &orig, err, errlen) == -1)
      return -1;
    if (total > 0) {
      snprintf (cell, cap, "%.4f", (double) orig / (double) total);
      *raw = cell;
      *number = true;
    }
    else
      snprintf (cell, cap, "-");  /* nothing stored yet; null in JSON */
    return 0;
  case SRC_STATS:
    if (col->optional && zctl_reply_get (w->stats, col->key) == NULL)
      return 0;                 /* an older server: blank, as zramctl */
    if (col->type == COL_STRING) {
      s = zctl_reply_get (w->stats, col->key);
      if (s == NULL) {
        snprintf (err, errlen, "the server's stats lack '%s'", col->key);
        return -1;
      }
      break;
    }
    if (get_u64 (w->stats, col->key, &v, err, errlen) == -1)
      return -1;
    if (col->type == COL_SIZE && !bytes)
      human_size (v, cell, cap);
    else {
      snprintf (cell, cap, "%llu", v);
      *number = true;
    }
    *raw = cell;
    return 0;
  }
  if (s) {
    zctl_clean (s, cell, cap);
    *raw = s;
  }
  return 0;
}

int
zctl_print_table (FILE *fp, const struct zctl_table *t,
                  const struct zctl_row *rows, size_t nrows, char *err,
                  size_t errlen)
{
  enum { CELL = 256 };
  char *cells = NULL;
  const char **raws = NULL;
  bool *numbers = NULL;
  int *width = NULL;
  size_t r, i, ncells = nrows * t->ncols;
  int ret = -1;

  /* Every cell first: a bad row prints nothing at all. */
  cells = calloc (ncells ? ncells : 1, CELL);
  raws = calloc (ncells ? ncells : 1, sizeof *raws);
  numbers = calloc (ncells ? ncells : 1, sizeof *numbers);
  width = calloc (t->ncols ? t->ncols : 1, sizeof *width);
  if (cells == NULL || raws == NULL || numbers == NULL || width == NULL) {
    snprintf (err, errlen, "out of memory");
    goto out;
  }
  for (r = 0; r < nrows; r++)
    for (i = 0; i < t->ncols; i++) {
      size_t k = r * t->ncols + i;

      if (cell_of (&rows[r], t->cols[i], t->bytes, cells + k * CELL, CELL,
                   &raws[k], &numbers[k], err, errlen) == -1)
        goto out;
    }

  if (t->json) {
    fprintf (fp, "{\n   \"devices\": [");
    for (r = 0; r < nrows; r++) {
      fprintf (fp, "%s\n      {", r ? "," : "");
      for (i = 0; i < t->ncols; i++) {
        size_t k = r * t->ncols + i;
        const char *n;

        fprintf (fp, "%s\n         \"", i ? "," : "");
        for (n = columns[t->cols[i]].name; *n; n++)
          putc (*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n, fp);
        fprintf (fp, "\": ");
        if (raws[k] == NULL)
          fprintf (fp, "null");
        else if (numbers[k])
          fprintf (fp, "%s", raws[k]);
        else
          json_string (fp, raws[k]);
      }
      fprintf (fp, "\n      }");
    }
    fprintf (fp, "\n   ]\n}\n");
    ret = 0;
    goto out;
  }

  if (t->raw) {
    /* util-linux's --raw: one space between cells, none padded; blanks
     * inside a cell shown as \x20 so that fields split on spaces.
     */
    if (t->headings) {
      for (i = 0; i < t->ncols; i++)
        fprintf (fp, "%s%s", i ? " " : "", columns[t->cols[i]].name);
      putc ('\n', fp);
    }
    for (r = 0; r < nrows; r++) {
      for (i = 0; i < t->ncols; i++) {
        const char *c = cells + (r * t->ncols + i) * CELL;

        if (i)
          putc (' ', fp);
        for (; *c; c++) {
          if (*c == ' ')
            fputs ("\\x20", fp);
          else
            putc (*c, fp);
        }
      }
      putc ('\n', fp);
    }
    ret = 0;
    goto out;
  }

  /* Aligned: each column as wide as its widest cell (and its heading when
   * headings are shown); -n keeps the alignment between rows.  Text is
   * left-aligned, numbers right-aligned; the last column is not padded.
   */
  for (i = 0; i < t->ncols; i++) {
    width[i] = t->headings ? (int) strlen (columns[t->cols[i]].name) : 0;
    for (r = 0; r < nrows; r++) {
      int w = (int) strlen (cells + (r * t->ncols + i) * CELL);

      if (w > width[i])
        width[i] = w;
    }
  }
  for (r = 0; r < nrows + (t->headings ? 1 : 0); r++) {
    for (i = 0; i < t->ncols; i++) {
      const struct column *col = &columns[t->cols[i]];
      const char *text = t->headings && r == 0 ? col->name
        : cells + ((r - (t->headings ? 1 : 0)) * t->ncols + i) * CELL;
      bool last = i + 1 == t->ncols;

      if (col->type == COL_STRING)
        fprintf (fp, "%s%-*s", i ? " " : "", last ? 0 : width[i], text);
      else
        fprintf (fp, "%s%*s", i ? " " : "", width[i], text);
    }
    putc ('\n', fp);
  }
  ret = 0;

 out:
  free (cells);
  free (raws);
  free (numbers);
  free (width);
  return ret;
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
