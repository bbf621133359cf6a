/* nbdkit-zram benchmarks: small helpers shared by the benchmark programs.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "image-gen.h"

int64_t
bench_parse_size (const char *str)
{
  char *end;
  unsigned long long v;
  int shift = 0;

  errno = 0;
  v = strtoull (str, &end, 10);
  if (errno != 0 || end == str)
    return -1;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  default: break;
  }
  if (*end == 'i' && shift)     /* accept KiB/MiB/GiB spelled out */
    end++;
  if ((*end == 'b' || *end == 'B') && shift)
    end++;
  if (*end != '\0' || v > (unsigned long long) (INT64_MAX >> shift))
    return -1;
  return (int64_t) (v << shift);
}

double
bench_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

double
bench_cpu_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

void *
bench_read_file (const char *path, uint64_t *size)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  void *buf = NULL;
  size_t done = 0;

  if (fd == -1 || fstat (fd, &st) == -1) {
    fprintf (stderr, "%s: %m\n", path);
    goto out;
  }
  if (posix_memalign (&buf, 4096, st.st_size ? (size_t) st.st_size : 1) != 0) {
    fprintf (stderr, "%s: cannot allocate %lld bytes\n", path, (long long) st.st_size);
    buf = NULL;
    goto out;
  }
  while (done < (size_t) st.st_size) {
    ssize_t r = read (fd, (char *) buf + done, (size_t) st.st_size - done);
    if (r <= 0) {
      fprintf (stderr, "%s: read: %s\n", path, r == 0 ? "short file" : strerror (errno));
      free (buf);
      buf = NULL;
      goto out;
    }
    done += (size_t) r;
  }
  *size = (uint64_t) st.st_size;
 out:
  if (fd >= 0)
    close (fd);
  return buf;
}

void *
bench_load_image (const char *path, uint64_t *size, uint64_t seed,
                  int print_mix)
{
  struct imgen_mix mix;
  struct imgen_stats st;
  void *img;

  if (path) {
    img = bench_read_file (path, size);
    if (img)
      *size = *size / IMGEN_PAGE_SIZE * IMGEN_PAGE_SIZE;
    return img;
  }
  img = malloc (*size);
  if (img == NULL) {
    perror ("malloc");
    return NULL;
  }
  imgen_default_mix (&mix);
  imgen_generate (img, *size, seed, &mix, &st);
  if (print_mix)
    imgen_print_mix (stdout, &st);
  return img;
}
