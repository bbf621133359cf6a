/* nbdkit-zram benchmarks: a deterministic generator of memory-like images.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "image-gen.h"

/* --- PRNG ------------------------------------------------------------------
 * splitmix64: tiny, fast, and good enough that the "random" pages are
 * incompressible for LZ4 and zstd.  Every stream is seeded by mixing its
 * inputs, so streams for neighbouring pages are unrelated.
 */
static inline uint64_t
rng_next (uint64_t *s)
{
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t
rng_seed (uint64_t a, uint64_t b, uint64_t c)
{
  uint64_t s = a;
  uint64_t x = rng_next (&s) ^ b;
  s = x;
  x = rng_next (&s) ^ c;
  s = x;
  return rng_next (&s);
}

/* Uniform in [0, n). */
static inline uint32_t
rng_below (uint64_t *s, uint32_t n)
{
  return (uint32_t) (((rng_next (s) >> 32) * n) >> 32);
}

/* Uniform in [0, 1). */
static inline double
rng_unit (uint64_t *s)
{
  return (double) (rng_next (s) >> 11) * 0x1.0p-53;
}

/* --- the default mix -------------------------------------------------------
 * Published swap and zram dumps (Android, ChromeOS, desktop) agree on the
 * broad shape: a quarter or so of swapped pages are zero or same-filled,
 * heap data dominates the rest, and a tenth or so does not compress.  The
 * result is an image that LZ4 shrinks about 2.5-3x and zstd about 3.5-4x,
 * close to the "expect about 2:1" to 3:1 the kernel documentation states.
 */
void
imgen_default_mix (struct imgen_mix *mix)
{
  static const struct imgen_mix dflt = {
    .weight = {
      [IMGEN_ZERO] = 0.22, [IMGEN_SAME] = 0.03, [IMGEN_TEXT] = 0.12,
      [IMGEN_CODE] = 0.13, [IMGEN_HEAP] = 0.38, [IMGEN_RANDOM] = 0.12,
    },
    .mean_run = {
      [IMGEN_ZERO] = 24, [IMGEN_SAME] = 2, [IMGEN_TEXT] = 6,
      [IMGEN_CODE] = 12, [IMGEN_HEAP] = 16, [IMGEN_RANDOM] = 8,
    },
  };
  *mix = dflt;
}

const char *
imgen_kind_name (enum imgen_kind kind)
{
  static const char *const names[IMGEN_NKINDS] = {
    "zero", "same", "text", "code", "heap", "random",
  };
  return (unsigned) kind < IMGEN_NKINDS ? names[kind] : "?";
}

/* --- layout ------------------------------------------------------------- */

int
imgen_layout_init (struct imgen_layout *l, uint64_t seed,
                   const struct imgen_mix *mix)
{
  double total = 0;
  int k;

  memset (l, 0, sizeof *l);
  /* A run of kind k is chosen with probability proportional to
   * weight / mean_run, so that the share of PAGES comes out as weight.
   */
  for (k = 0; k < IMGEN_NKINDS; k++) {
    if (mix->weight[k] < 0 || mix->mean_run[k] < 1)
      return -1;
    total += mix->weight[k] / mix->mean_run[k];
    l->cum[k] = total;
    l->mean_run[k] = mix->mean_run[k];
  }
  if (!(total > 0))
    return -1;
  for (k = 0; k < IMGEN_NKINDS; k++)
    l->cum[k] /= total;
  l->rng = rng_seed (seed, UINT64_C(0x6c61796f7574), 0);   /* "layout" */
  l->run = (uint64_t) -1;
  return 0;
}

enum imgen_kind
imgen_layout_next (struct imgen_layout *l, uint64_t *run)
{
  if (l->left == 0) {
    double u = rng_unit (&l->rng);
    double m;
    int k;

    for (k = 0; k < IMGEN_NKINDS - 1; k++)
      if (u < l->cum[k])
        break;
    /* Skip kinds with zero weight that a rounding slip could pick. */
    while (k > 0 && l->cum[k] == l->cum[k - 1])
      k--;
    l->kind = (enum imgen_kind) k;
    /* Geometric run length with the kind's mean. */
    m = l->mean_run[k];
    if (m <= 1)
      l->left = 1;
    else {
      double v = 1.0 - rng_unit (&l->rng);            /* (0, 1] */
      l->left = 1 + (uint64_t) floor (log (v) / log (1.0 - 1.0 / m));
    }
    l->run++;
  }
  l->left--;
  if (run)
    *run = l->run;
  return l->kind;
}

/* --- page content --------------------------------------------------------- */

/* Zero-pad the tail of a page from a random point in [lo, 1) of the page. */
static size_t
fill_limit (uint64_t *s, double lo)
{
  double f = lo + (1.0 - lo) * rng_unit (s);
  size_t n = (size_t) (f * IMGEN_PAGE_SIZE);
  return n > IMGEN_PAGE_SIZE ? IMGEN_PAGE_SIZE : n;
}

static void
fill_same (unsigned char *p, uint64_t *rs)
{
  static const uint64_t patterns[] = {
    UINT64_C(0xffffffffffffffff), UINT64_C(0x0101010101010101),
    UINT64_C(0xdeadbeefdeadbeef), UINT64_C(0x00000000ffffffff),
    UINT64_C(0x2020202020202020), UINT64_C(0xa5a5a5a5a5a5a5a5),
  };
  uint64_t w = patterns[rng_below (rs, sizeof patterns / sizeof patterns[0])];
  size_t i;

  for (i = 0; i < IMGEN_PAGE_SIZE; i += 8)
    memcpy (p + i, &w, 8);
}

static const char *const words[] = {
  "the", "of", "and", "to", "in", "is", "for", "on", "that", "with",
  "error", "warning", "info", "debug", "request", "response", "connection",
  "server", "client", "user", "session", "timeout", "failed", "success",
  "file", "path", "config", "value", "key", "memory", "page", "cache",
  "buffer", "thread", "process", "device", "block", "write", "read", "open",
  "close", "return", "null", "true", "false", "string", "number", "list",
  "object", "array", "index", "count", "size", "length", "data", "name",
  "type", "id", "status", "message", "event", "handler", "queue", "lock",
  "http", "json", "html", "div", "class", "span", "href", "localhost",
  "application", "version", "module", "function", "variable", "default",
  "started", "stopped", "received", "sent", "bytes", "seconds", "total",
  "network", "address", "port", "database", "query", "table", "select",
  "from", "where", "insert", "update", "delete", "account", "password",
  "window", "document", "element", "style", "width", "height", "color",
};
#define NWORDS (sizeof words / sizeof words[0])

/* Zipf-ish choice: small indices (common words) much more often. */
static const char *
pick_word (uint64_t *s)
{
  double u = rng_unit (s);
  return words[(size_t) (u * u * u * NWORDS)];
}

static size_t
put (unsigned char *p, size_t at, size_t lim, const char *str, size_t n)
{
  if (at + n > lim)
    n = lim - at;
  memcpy (p + at, str, n);
  return at + n;
}

/* Text in one of three styles per run: log lines, prose, key=value. */
static void
fill_text (unsigned char *p, uint64_t *rs, uint64_t run_seed)
{
  uint64_t run_rng = run_seed;
  unsigned style = rng_below (&run_rng, 3);
  unsigned base_time = rng_below (&run_rng, 86400);
  size_t lim = rng_below (rs, 4) == 0 ? fill_limit (rs, 0.3) : IMGEN_PAGE_SIZE;
  size_t at = 0;
  char tmp[96];

  while (at < lim) {
    int n, i, nw;

    switch (style) {
    case 0:                             /* log line */
      base_time += rng_below (rs, 3);
      n = snprintf (tmp, sizeof tmp, "2026-11-%02u %02u:%02u:%02u.%03u %s ",
                    10 + base_time / 86400 % 20, base_time / 3600 % 24,
                    base_time / 60 % 60, base_time % 60, rng_below (rs, 1000),
                    rng_below (rs, 8) ? "INFO" : "WARN");
      at = put (p, at, lim, tmp, (size_t) n);
      n = snprintf (tmp, sizeof tmp, "worker[%u]: ", 1000 + rng_below (rs, 16));
      at = put (p, at, lim, tmp, (size_t) n);
      nw = 4 + (int) rng_below (rs, 8);
      for (i = 0; i < nw && at < lim; i++) {
        const char *w = pick_word (rs);
        at = put (p, at, lim, w, strlen (w));
        if (rng_below (rs, 6) == 0) {
          n = snprintf (tmp, sizeof tmp, "=%u", rng_below (rs, 100000));
          at = put (p, at, lim, tmp, (size_t) n);
        }
        at = put (p, at, lim, " ", 1);
      }
      at = put (p, at, lim, "\n", 1);
      break;
    case 1:                             /* prose */
      nw = 6 + (int) rng_below (rs, 14);
      for (i = 0; i < nw && at < lim; i++) {
        const char *w = pick_word (rs);
        at = put (p, at, lim, w, strlen (w));
        at = put (p, at, lim, i == nw - 1 ? ". " : " ", i == nw - 1 ? 2 : 1);
      }
      if (rng_below (rs, 5) == 0)
        at = put (p, at, lim, "\n\n", 2);
      break;
    default:                            /* key = value */
      n = snprintf (tmp, sizeof tmp, "%s_%s = \"%s%u\"\n",
                    pick_word (rs), pick_word (rs), pick_word (rs),
                    rng_below (rs, 4096));
      at = put (p, at, lim, tmp, (size_t) n);
      break;
    }
  }
}

/* Machine code: functions of a prologue, a body of common x86-64
 * instruction shapes with random operands, an epilogue, then padding to a
 * 16-byte boundary with int3 or multi-byte NOPs, as compilers lay it out.
 */
static void
fill_code (unsigned char *p, uint64_t *rs, uint64_t run_seed)
{
  uint64_t run_rng = run_seed;
  int nop_pad = rng_below (&run_rng, 2);
  size_t at = 0;
  unsigned char ins[16];

#define EMIT(...) do {                                                  \
    const unsigned char b_[] = { __VA_ARGS__ };                         \
    at = put (p, at, IMGEN_PAGE_SIZE, (const char *) b_, sizeof b_);    \
  } while (0)

  while (at < IMGEN_PAGE_SIZE) {
    unsigned n = 4 + rng_below (rs, 40), i;

    if (rng_below (rs, 2))
      EMIT (0x55, 0x48, 0x89, 0xe5);                    /* push rbp; mov rbp,rsp */
    else
      EMIT (0x41, 0x57, 0x41, 0x56, 0x53);              /* push r15; push r14; push rbx */
    EMIT (0x48, 0x83, 0xec, (unsigned char) (8 * (1 + rng_below (rs, 12))));

    for (i = 0; i < n && at < IMGEN_PAGE_SIZE; i++) {
      unsigned char d8 = (unsigned char) (0x100 - 8 * (1 + rng_below (rs, 16)));
      uint32_t rel = (uint32_t) ((int32_t) rng_below (rs, 1 << 20) - (1 << 19));
      size_t len = 0;

      switch (rng_below (rs, 14)) {
      case 0: ins[0] = 0x48; ins[1] = 0x8b; ins[2] = 0x45; ins[3] = d8; len = 4; break;
      case 1: ins[0] = 0x48; ins[1] = 0x89; ins[2] = 0x45; ins[3] = d8; len = 4; break;
      case 2: ins[0] = 0x8b; ins[1] = 0x45; ins[2] = d8; len = 3; break;
      case 3: ins[0] = 0x48; ins[1] = 0x89;
              ins[2] = (unsigned char) (0xc0 + rng_below (rs, 64)); len = 3; break;
      case 4: ins[0] = 0xe8; memcpy (ins + 1, &rel, 4); len = 5; break;
      case 5: ins[0] = 0x48; ins[1] = 0x8d; ins[2] = 0x3d;
              memcpy (ins + 3, &rel, 4); len = 7; break;
      case 6: ins[0] = (unsigned char) (0x74 + rng_below (rs, 2));
              ins[1] = (unsigned char) rng_below (rs, 64); len = 2; break;
      case 7: ins[0] = 0x0f; ins[1] = 0x84; memcpy (ins + 2, &rel, 4); len = 6; break;
      case 8: ins[0] = 0x31; ins[1] = 0xc0; len = 2; break;
      case 9: ins[0] = 0x48; ins[1] = 0x85; ins[2] = 0xc0; len = 3; break;
      case 10: ins[0] = 0x83; ins[1] = 0xf8;
               ins[2] = (unsigned char) rng_below (rs, 32); len = 3; break;
      case 11: ins[0] = 0xb8; ins[1] = (unsigned char) rng_below (rs, 256);
               ins[2] = ins[3] = ins[4] = 0; len = 5; break;
      case 12: ins[0] = 0x48; ins[1] = 0xc7; ins[2] = 0x45; ins[3] = d8;
               ins[4] = (unsigned char) rng_below (rs, 16);
               ins[5] = ins[6] = ins[7] = 0; len = 8; break;
      default: ins[0] = 0xff; ins[1] = 0x15; memcpy (ins + 2, &rel, 4); len = 6; break;
      }
      at = put (p, at, IMGEN_PAGE_SIZE, (const char *) ins, len);
    }

    if (rng_below (rs, 2))
      EMIT (0x5d, 0xc3);                                /* pop rbp; ret */
    else
      EMIT (0x48, 0x83, 0xc4, 0x18, 0x5b, 0x41, 0x5e, 0x41, 0x5f, 0xc3);
    while (at < IMGEN_PAGE_SIZE && (at & 15) != 0) {
      if (nop_pad && (at & 15) <= 10)
        EMIT (0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00);
      else
        EMIT (0xcc);
    }
  }
#undef EMIT
}

/* Heap: a run is one arena of structures of one layout, each preceded by a
 * malloc-style chunk header.  Fields are pointers into the arena (sharing
 * their high bytes, 16-byte aligned), small integers, flags, doubles, short
 * inline strings and zero padding.  Some chunks are free (only a link), and
 * the top of the page is often untouched (zero).
 */
enum field { F_PTR, F_INT, F_ZERO, F_FLAGS, F_DOUBLE, F_CHARS };

static void
fill_heap (unsigned char *p, uint64_t *rs, uint64_t run_seed)
{
  uint64_t run_rng = run_seed;
  unsigned nfields = 2 + rng_below (&run_rng, 14);      /* 16..120 bytes */
  enum field layout[16];
  uint64_t arena = UINT64_C(0x0000550000000000)
    + ((rng_next (&run_rng) & UINT64_C(0xffffff)) << 20);
  uint64_t chunk = (uint64_t) (nfields + 1) * 8;
  size_t lim = rng_below (rs, 3) == 0 ? fill_limit (rs, 0.25) : IMGEN_PAGE_SIZE;
  size_t at = 0;
  unsigned i;

  if (rng_below (&run_rng, 3) == 0)
    arena = UINT64_C(0x00007f0000000000)
      + ((rng_next (&run_rng) & UINT64_C(0xffffff)) << 20);
  for (i = 0; i < nfields; i++) {
    static const enum field pool[] = {
      F_PTR, F_PTR, F_PTR, F_INT, F_INT, F_ZERO, F_FLAGS, F_DOUBLE, F_CHARS,
    };
    layout[i] = pool[rng_below (&run_rng, sizeof pool / sizeof pool[0])];
  }

  memset (p, 0, IMGEN_PAGE_SIZE);
  while (at + 8 <= lim) {
    uint64_t w = (chunk + 8) | 1;                       /* chunk header */
    bool is_free = rng_below (rs, 8) == 0;

    memcpy (p + at, &w, 8);
    at += 8;
    for (i = 0; i < nfields && at + 8 <= lim; i++, at += 8) {
      if (is_free) {
        if (i < 2) {
          w = arena + ((uint64_t) rng_below (rs, 1 << 20) << 4);
          memcpy (p + at, &w, 8);
        }
        continue;
      }
      switch (layout[i]) {
      case F_PTR:
        w = rng_below (rs, 6) == 0 ? 0
          : arena + ((uint64_t) rng_below (rs, 1 << 20) << 4);
        break;
      case F_INT:
        w = rng_below (rs, 2) ? rng_below (rs, 100) : rng_below (rs, 70000);
        break;
      case F_ZERO:
        w = 0;
        break;
      case F_FLAGS:
        w = (uint64_t) 1 << rng_below (rs, 8) | (rng_below (rs, 4) == 0 ? 0x100 : 0);
        break;
      case F_DOUBLE: {
        double d = (double) rng_below (rs, 10000) / 4.0;
        memcpy (&w, &d, 8);
        break;
      }
      default: {                                        /* short string */
        const char *s = pick_word (rs);
        size_t n = strlen (s);
        w = 0;
        memcpy (&w, s, n < 7 ? n : 7);
        break;
      }
      }
      memcpy (p + at, &w, 8);
    }
  }
}

static void
fill_random (unsigned char *p, uint64_t *rs)
{
  size_t i;

  for (i = 0; i < IMGEN_PAGE_SIZE; i += 8) {
    uint64_t w = rng_next (rs);
    memcpy (p + i, &w, 8);
  }
}

void
imgen_page (unsigned char page[IMGEN_PAGE_SIZE], enum imgen_kind kind,
            uint64_t seed, uint64_t run, uint64_t page_index)
{
  uint64_t rs = rng_seed (seed, page_index, 0x70616765);         /* "page" */
  uint64_t run_seed = rng_seed (seed, run, 0x72756e);            /* "run" */

  switch (kind) {
  case IMGEN_SAME: fill_same (page, &run_seed); return;
  case IMGEN_TEXT: memset (page, 0, IMGEN_PAGE_SIZE);
                   fill_text (page, &rs, run_seed); return;
  case IMGEN_CODE: fill_code (page, &rs, run_seed); return;
  case IMGEN_HEAP: fill_heap (page, &rs, run_seed); return;
  case IMGEN_RANDOM: fill_random (page, &rs); return;
  case IMGEN_ZERO:
  default: memset (page, 0, IMGEN_PAGE_SIZE); return;
  }
}

void
imgen_stats_add (struct imgen_stats *stats, enum imgen_kind kind,
                 const unsigned char page[IMGEN_PAGE_SIZE], int new_run)
{
  size_t i, z = 0;

  if (kind == IMGEN_ZERO)
    z = IMGEN_PAGE_SIZE;
  else
    for (i = 0; i < IMGEN_PAGE_SIZE; i++)
      z += page[i] == 0;
  stats->pages[kind]++;
  stats->runs[kind] += new_run != 0;
  stats->zero_bytes += z;
  stats->total_pages++;
}

int
imgen_generate (void *buf, uint64_t size, uint64_t seed,
                const struct imgen_mix *mix, struct imgen_stats *stats)
{
  struct imgen_layout l;
  uint64_t i, run, last_run = (uint64_t) -1;
  unsigned char *p = buf;

  if (size % IMGEN_PAGE_SIZE != 0 || imgen_layout_init (&l, seed, mix) == -1)
    return -1;
  if (stats)
    memset (stats, 0, sizeof *stats);
  for (i = 0; i < size / IMGEN_PAGE_SIZE; i++) {
    enum imgen_kind k = imgen_layout_next (&l, &run);
    unsigned char *page = p + i * IMGEN_PAGE_SIZE;

    imgen_page (page, k, seed, run, i);
    if (stats)
      imgen_stats_add (stats, k, page, run != last_run);
    last_run = run;
  }
  return 0;
}

void
imgen_print_mix (FILE *fp, const struct imgen_stats *stats)
{
  uint64_t total = stats->total_pages ? stats->total_pages : 1;
  int k;

  fprintf (fp, "%-8s %10s %8s %8s %9s\n",
           "kind", "pages", "share", "runs", "mean-run");
  for (k = 0; k < IMGEN_NKINDS; k++)
    fprintf (fp, "%-8s %10" PRIu64 " %6.1f %% %8" PRIu64 " %9.1f\n",
             imgen_kind_name ((enum imgen_kind) k), stats->pages[k],
             100.0 * (double) stats->pages[k] / (double) total,
             stats->runs[k],
             stats->runs[k] ? (double) stats->pages[k] / (double) stats->runs[k] : 0.0);
  fprintf (fp, "%-8s %10" PRIu64 "  (%" PRIu64 " MiB, %.1f %% zero bytes)\n",
           "total", stats->total_pages,
           stats->total_pages * IMGEN_PAGE_SIZE >> 20,
           100.0 * (double) stats->zero_bytes / (double) (total * IMGEN_PAGE_SIZE));
}
