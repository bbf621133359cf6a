/* nbdkit-zram benchmarks: raw codec speed and ideal store size per page.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   bench-codec [-s SIZE] [-S SEED] [-i IMAGE] [-r REPS] [-j JSONFILE]
 *
 *   bench-codec ... [-D DICTSIZE]
 *
 * For every 4 KiB page of the image: memcpy, LZ4 (fast, acceleration 1),
 * LZ4HC (level 9) and zstd (level 3 and 1), compress and decompress, timed
 * over the whole image, repeated REPS times (median, min, max).  No device,
 * no allocator, no locking: this is the physical limit the core's data path
 * is compared with.  Times are process CPU time, not wall time.
 *
 * It also computes the ideal compressed store of the image for each codec,
 * as zram would keep it: same-filled pages take no object, a page whose
 * compressed size reaches IDEAL_HUGE bytes is kept raw (4096), every other
 * page costs exactly its compressed size (no allocator overhead).
 *
 * The "+dict" lines do the same through include/zram/zcomp-dict.h with a
 * dictionary of DICTSIZE bytes (default 64 KiB; 0 leaves them out) that
 * libzstd's trainer made from every 10th page of the image (not
 * same-filled): lz4 uses its last 64 KiB.  The sample is part of the
 * image, as a device's own pages would be.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4hc.h>
#include <zstd.h>

#include "zram/slot.h"
#include "zram/zcomp-dict.h"
#include "bench-util.h"
#include "image-gen.h"

#define PAGE IMGEN_PAGE_SIZE

/* Pages that compress to this or more are stored raw (zsmalloc's huge
 * class at chain size 8, as in Linux zram).
 */
#define IDEAL_HUGE 3632

enum codec { C_MEMCPY, C_LZ4, C_LZ4HC, C_ZSTD1, C_ZSTD3,
             C_LZ4_DICT, C_ZSTD1_DICT, C_ZSTD3_DICT, NCODECS };
static const char *const codec_names[NCODECS] = {
  "memcpy", "lz4", "lz4hc", "zstd-1", "zstd-3",
  "lz4+dict", "zstd-1+dict", "zstd-3+dict",
};
#define FIRST_DICT C_LZ4_DICT

/* The dictionary codecs: algorithm, level, and their prepared dictionary. */
static const struct { enum zcomp_algo algo; int level; } dict_codec[NCODECS] = {
  [C_LZ4_DICT] = { ZCOMP_LZ4, 1 },
  [C_ZSTD1_DICT] = { ZCOMP_ZSTD, 1 },
  [C_ZSTD3_DICT] = { ZCOMP_ZSTD, 3 },
};
static struct zcomp *dict_comp[NCODECS];
static struct zcomp_dict *dicts[NCODECS];
static struct zcomp_scratch *dict_scratch;

struct result {
  double comp_ns[16], decomp_ns[16];    /* per page, one per rep */
  uint64_t raw_bytes;                   /* sum of compressed sizes, all pages */
  uint64_t ideal_bytes;                 /* as zram would store it */
  uint64_t ideal_half2;                 /* the same, second half of the image */
  uint64_t huge_pages;
};

/* The device's own same-filled test, so "ideal" matches what it stores. */
static bool
page_same (const unsigned char *p)
{
  uint64_t word;

  return page_same_filled (p, &word);
}

static ZSTD_CCtx *cctx;
static ZSTD_DCtx *dctx;
static LZ4_streamHC_t *hc_state;

static int
compress_page (enum codec c, const unsigned char *src, unsigned char *dst, int cap)
{
  size_t r;

  switch (c) {
  case C_MEMCPY: memcpy (dst, src, PAGE); return PAGE;
  case C_LZ4: return LZ4_compress_default ((const char *) src, (char *) dst, PAGE, cap);
  case C_LZ4HC:
    return LZ4_compress_HC_extStateHC (hc_state, (const char *) src, (char *) dst,
                                       PAGE, cap, 9);
  case C_ZSTD1: case C_ZSTD3:
    r = ZSTD_compressCCtx (cctx, dst, (size_t) cap, src, PAGE, c == C_ZSTD1 ? 1 : 3);
    return ZSTD_isError (r) ? 0 : (int) r;
  case C_LZ4_DICT: case C_ZSTD1_DICT: case C_ZSTD3_DICT:
    return zcomp_dict_compress (dicts[c], dict_scratch, src, PAGE, dst, (size_t) cap);
  default: abort ();
  }
}

static int
decompress_page (enum codec c, const unsigned char *src, int len, unsigned char *dst)
{
  size_t r;

  switch (c) {
  case C_MEMCPY: memcpy (dst, src, PAGE); return 0;
  case C_LZ4: case C_LZ4HC:
    return LZ4_decompress_safe ((const char *) src, (char *) dst, len, PAGE) == PAGE ? 0 : -1;
  case C_ZSTD1: case C_ZSTD3:
    r = ZSTD_decompressDCtx (dctx, dst, PAGE, src, (size_t) len);
    return !ZSTD_isError (r) && r == PAGE ? 0 : -1;
  case C_LZ4_DICT: case C_ZSTD1_DICT: case C_ZSTD3_DICT:
    return zcomp_dict_decompress (dicts[c], dict_scratch, src, (size_t) len, dst, PAGE);
  default: abort ();
  }
}

/* Train one dictionary of dict_size bytes from every 10th page that is not
 * same-filled and prepare it for each dictionary codec.  0, or -1 (said).
 */
static int
make_dicts (const unsigned char *img, uint64_t npages, size_t dict_size)
{
  unsigned char *samples = malloc (npages / 10 * PAGE + PAGE), *dict = malloc (dict_size);
  size_t *sizes = calloc (npages / 10 + 1, sizeof *sizes);
  unsigned n = 0;
  long len;
  int c;

  dict_scratch = zcomp_scratch_create ();
  if (!samples || !dict || !sizes || !dict_scratch) {
    perror ("malloc");
    return -1;
  }
  for (uint64_t i = 0; i < npages; i += 10) {
    if (page_same (img + i * PAGE))
      continue;
    memcpy (samples + (size_t) n * PAGE, img + i * PAGE, PAGE);
    sizes[n++] = PAGE;
  }
  len = zcomp_dict_train (dict, dict_size, samples, sizes, n);
  if (len < 0) {
    perror ("bench-codec: cannot train a dictionary from every 10th page");
    return -1;
  }
  for (c = FIRST_DICT; c < NCODECS; c++) {
    dict_comp[c] = zcomp_create (dict_codec[c].algo, dict_codec[c].level);
    dicts[c] = dict_comp[c] ? zcomp_dict_create (dict_comp[c], dict, (size_t) len) : NULL;
    if (dicts[c] == NULL) {
      perror ("bench-codec: cannot prepare the dictionary");
      return -1;
    }
  }
  printf ("dictionary: %ld bytes trained from %u pages\n", len, n);
  free (sizes);
  free (dict);
  free (samples);
  return 0;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (const double *v, int n, double *min, double *max)
{
  double s[16];

  memcpy (s, v, sizeof (double) * (size_t) n);
  qsort (s, (size_t) n, sizeof (double), cmp_double);
  *min = s[0];
  *max = s[n - 1];
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

int
main (int argc, char *argv[])
{
  int64_t size = 64 << 20;
  uint64_t seed = IMGEN_DEFAULT_SEED, npages, i, same = 0;
  const char *image = NULL, *json = NULL;
  int reps = 3, c, rep, ncodecs = NCODECS;
  int64_t dict_size = 64 * 1024;
  unsigned char *img, *out, *back;
  int *lens;
  struct result res[NCODECS];
  FILE *jf = NULL;

  while ((c = getopt (argc, argv, "s:S:i:r:j:D:h")) != -1) {
    switch (c) {
    case 's': size = bench_parse_size (optarg); break;
    case 'S': seed = strtoull (optarg, NULL, 0); break;
    case 'i': image = optarg; break;
    case 'r': reps = atoi (optarg); break;
    case 'j': json = optarg; break;
    case 'D': dict_size = bench_parse_size (optarg); break;
    default:
      fprintf (stderr, "usage: bench-codec [-s SIZE] [-S SEED] [-i IMAGE] [-r REPS] [-j JSON] [-D DICTSIZE]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (reps < 1 || reps > 16 || size <= 0 || size % PAGE != 0 ||
      dict_size < 0 || dict_size > ZCOMP_DICT_MAX) {
    fprintf (stderr, "bench-codec: bad -r (1..16), -s (multiple of 4096) or -D (0..1M)\n");
    return 2;
  }
  {
    uint64_t sz = (uint64_t) size;
    img = bench_load_image (image, &sz, seed, 1);
    if (img == NULL)
      return 1;
    size = (int64_t) sz;
  }
  npages = (uint64_t) size / PAGE;
  /* Each page gets its own output slot so decompression reads cold-ish data
   * as the device would.
   */
  out = malloc (npages * (uint64_t) LZ4_compressBound (PAGE));
  back = malloc (PAGE);
  lens = calloc (npages, sizeof *lens);
  cctx = ZSTD_createCCtx ();
  dctx = ZSTD_createDCtx ();
  hc_state = malloc ((size_t) LZ4_sizeofStateHC ());
  if (!out || !back || !lens || !cctx || !dctx || !hc_state) {
    perror ("malloc");
    return 1;
  }
  for (i = 0; i < npages; i++)
    same += page_same (img + i * PAGE);

  if (dict_size == 0)
    ncodecs = FIRST_DICT;
  else if (make_dicts (img, npages, (size_t) dict_size) == -1)
    return 1;

  memset (res, 0, sizeof res);
  for (rep = 0; rep < reps; rep++) {
    for (c = 0; c < ncodecs; c++) {
      const int cap = LZ4_compressBound (PAGE);
      double t0, t1, t2;

      t0 = bench_cpu_now ();
      for (i = 0; i < npages; i++) {
        lens[i] = compress_page ((enum codec) c, img + i * PAGE, out + i * (uint64_t) cap, cap);
        if (lens[i] <= 0) {
          fprintf (stderr, "bench-codec: %s failed on page %" PRIu64 "\n", codec_names[c], i);
          return 1;
        }
      }
      t1 = bench_cpu_now ();
      for (i = 0; i < npages; i++)
        if (decompress_page ((enum codec) c, out + i * (uint64_t) cap, lens[i], back) == -1) {
          fprintf (stderr, "bench-codec: %s cannot decompress page %" PRIu64 "\n",
                   codec_names[c], i);
          return 1;
        }
      t2 = bench_cpu_now ();
      /* Round trip check of the last page, so the loop is not dead code. */
      if (memcmp (back, img + (npages - 1) * PAGE, PAGE) != 0) {
        fprintf (stderr, "bench-codec: %s round trip mismatch\n", codec_names[c]);
        return 1;
      }
      res[c].comp_ns[rep] = (t1 - t0) * 1e9 / (double) npages;
      res[c].decomp_ns[rep] = (t2 - t1) * 1e9 / (double) npages;
      if (rep == 0) {
        for (i = 0; i < npages; i++) {
          uint64_t cost;

          res[c].raw_bytes += (uint64_t) lens[i];
          if (c == C_MEMCPY)
            cost = PAGE;
          else if (page_same (img + i * PAGE))
            cost = 0;
          else if (lens[i] >= IDEAL_HUGE) {
            cost = PAGE;
            res[c].huge_pages++;
          }
          else
            cost = (uint64_t) lens[i];
          res[c].ideal_bytes += cost;
          if (i >= npages / 2)
            res[c].ideal_half2 += cost;
        }
      }
    }
  }

  printf ("\nimage: %" PRIu64 " pages (%" PRIu64 " MiB), %" PRIu64 " same-filled; %d reps\n",
          npages, (uint64_t) size >> 20, same, reps);
  printf ("%-11s %12s %12s %12s %12s %8s %12s %7s\n", "codec", "comp ns/pg",
          "comp MB/s", "decomp ns/pg", "decomp MB/s", "ratio", "ideal bytes", "huge");
  if (json) {
    jf = fopen (json, "w");
    if (jf == NULL) {
      perror (json);
      return 1;
    }
    fprintf (jf, "{\"pages\": %" PRIu64 ", \"same_pages\": %" PRIu64
             ", \"reps\": %d, \"huge_threshold\": %d, \"codecs\": {",
             npages, same, reps, IDEAL_HUGE);
  }
  for (c = 0; c < ncodecs; c++) {
    double cmin, cmax, dmin, dmax;
    double cmed = median (res[c].comp_ns, reps, &cmin, &cmax);
    double dmed = median (res[c].decomp_ns, reps, &dmin, &dmax);
    double ratio = (double) size / (double) res[c].ideal_bytes;

    printf ("%-11s %12.0f %12.0f %12.0f %12.0f %8.3f %12" PRIu64 " %7" PRIu64 "\n",
            codec_names[c], cmed, PAGE * 1e3 / cmed, dmed, PAGE * 1e3 / dmed,
            ratio, res[c].ideal_bytes, res[c].huge_pages);
    if (jf)
      fprintf (jf, "%s\"%s\": {\"comp_ns_per_page\": [%.1f, %.1f, %.1f], "
               "\"decomp_ns_per_page\": [%.1f, %.1f, %.1f], "
               "\"raw_bytes\": %" PRIu64 ", \"ideal_bytes\": %" PRIu64
               ", \"ideal_bytes_second_half\": %" PRIu64
               ", \"huge_pages\": %" PRIu64 ", \"ideal_ratio\": %.4f}",
               c ? ", " : "", codec_names[c], cmed, cmin, cmax, dmed, dmin, dmax,
               res[c].raw_bytes, res[c].ideal_bytes, res[c].ideal_half2,
               res[c].huge_pages, ratio);
  }
  printf ("(median of %d; ns/pg over every page of the image, same-filled included;\n"
          " ideal bytes: same-filled pages free, pages >= %d B stored raw)\n", reps, IDEAL_HUGE);
  if (jf) {
    fprintf (jf, "}}\n");
    if (fclose (jf) == EOF) {
      perror (json);
      return 1;
    }
  }
  for (c = FIRST_DICT; c < NCODECS; c++) {
    zcomp_dict_destroy (dicts[c]);
    zcomp_destroy (dict_comp[c]);
  }
  zcomp_scratch_destroy (dict_scratch);
  free (hc_state);
  ZSTD_freeDCtx (dctx);
  ZSTD_freeCCtx (cctx);
  free (lens);
  free (back);
  free (out);
  free (img);
  return 0;
}
