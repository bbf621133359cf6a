/* nbdkit-zram tests: a device with a backing store on a file in a
 * temporary directory, and pages whose content is known.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_TEST_WB_STORE_UTIL_H
#define ZRAM_TEST_WB_STORE_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zram/zram.h"
#include "check.h"

/* A fresh temporary directory named after the test, in dir (cap bytes). */
static inline void
wbt_tmpdir (char *dir, size_t cap, const char *name)
{
  const char *tmp = getenv ("TMPDIR");

  snprintf (dir, cap, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
  CHECK (mkdtemp (dir) != NULL);
}

/* A store of bytes bytes on the file dir/store (made empty). */
static inline struct backing *
wbt_store (const char *dir, uint64_t bytes)
{
  char path[512], err[BACKING_ERR_MAX];
  struct backing *b;
  int fd;

  snprintf (path, sizeof path, "%s/store", dir);
  fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0);
  close (fd);
  b = backing_open (path, bytes, err, sizeof err);
  if (b == NULL) {
    fprintf (stderr, "%s\n", err);
    abort ();
  }
  return b;
}

/* A zs device of pages pages with a store as large on the file dir/store
 * (made empty), and mem_limit bytes of limit (0 = none).
 */
static inline struct zram *
wbt_device (const char *dir, uint64_t pages, uint64_t mem_limit)
{
  struct zram_config c = { .disksize = pages * ZRAM_PAGE_SIZE,
                           .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS };
  struct zram *z;

  c.backing = wbt_store (dir, c.disksize);
  z = zram_create (&c);
  CHECK (z != NULL);
  zram_set_mem_limit (z, mem_limit);
  return z;
}

/* Remove what wbt_device made, after zram_destroy. */
static inline void
wbt_cleanup (const char *dir)
{
  char path[512];

  snprintf (path, sizeof path, "%s/store", dir);
  unlink (path);
  rmdir (dir);
}

/* Page p of generation g: text with some noise, compressing about 3:1
 * with lz4; every 8th page of generation 0 is same-filled.
 */
static inline void
wbt_page (unsigned char *buf, uint64_t p, uint32_t g)
{
  unsigned long long r = (p << 20 | g) * 0x9e3779b97f4a7c15ULL + 7;

  if (g == 0 && p % 8 == 3) {
    memset (buf, (int) p, ZRAM_PAGE_SIZE);
    return;
  }
  for (unsigned i = 0; i < ZRAM_PAGE_SIZE; i += 8) {
    unsigned long long v = test_rand (&r);

    if (v % 4 == 0)
      memcpy (buf + i, &v, 8);
    else
      memcpy (buf + i, "page of text, ", 8);
  }
}

#endif
