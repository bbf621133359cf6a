/* Reading a group member needs a 128 KiB buffer, allocated on a thread's
 * first member read (src/group.c).  When that allocation fails the read
 * fails with ENOMEM and nothing changes: the page is still there, whole,
 * for the next read; a partial write into it fails the same way and
 * leaves it as it was; a trim needs no buffer.  The failure is injected:
 * this program's aligned_alloc (which the core's calls reach before
 * libc's) fails on the thread that asks it to, and only there.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zram/zram.h"
#include "check.h"

#define PAGE  4096u
#define PAGES 32u

static struct zram *z;
static unsigned char model[PAGES][PAGE];

static __thread bool starved;  /* this thread's allocations fail */

void *
aligned_alloc (size_t align, size_t size)
{
  if (starved) {
    errno = ENOMEM;
    return NULL;
  }
  return memalign (align, size);
}

static void *
starved_reader (void *arg)
{
  unsigned char got[PAGE], bytes[64];
  int r, err, w, werr, t;

  (void) arg;
  /* This thread's context exists (a plain page read), its group buffer
   * not yet.
   */
  CHECK (zram_read (z, got, PAGE, (uint64_t) (PAGES - 1) * PAGE) == 0);
  starved = true;
  r = zram_read (z, got, PAGE, 0);
  err = errno;
  memset (bytes, 'w', sizeof bytes);
  w = zram_write (z, bytes, sizeof bytes, 1 * PAGE + 10);
  werr = errno;
  t = zram_trim (z, PAGE, 2 * PAGE);
  starved = false;

  if (r != -1 || err != ENOMEM) {
    fprintf (stderr, "member read under the limit: %d (%s)\n", r,
             strerror (err));
    abort ();
  }
  CHECK (w == -1 && werr == ENOMEM);
  CHECK (t == 0);
  memset (model[2], 0, PAGE);
  /* With memory again, the same thread reads every member back. */
  for (unsigned p = 0; p < PAGES; p++) {
    CHECK (zram_read (z, got, PAGE, (uint64_t) p * PAGE) == 0);
    CHECK (memcmp (got, model[p], PAGE) == 0);
  }
  return NULL;
}

int
main (void)
{
  struct zram_config c = { .disksize = (uint64_t) PAGES * PAGE,
                           .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS,
                           .group_pages = 16,
                           .group_algo = { ZCOMP_ZSTD, 3 } };
  struct zram_group_req req = { .end_index = PAGES - 1 };
  struct zram_group_result res;
  struct zram_stats s;
  pthread_t th;

  z = zram_create (&c);
  CHECK (z != NULL);
  for (unsigned p = 0; p < PAGES; p++) {
    for (unsigned i = 0; i < PAGE; i++)
      model[p][i] = "grouped pages "[(i + p) % 14];
    CHECK (zram_write (z, model[p], PAGE, (uint64_t) p * PAGE) == 0);
  }
  CHECK (zram_mark_idle (z, 0, NULL) == 0);
  CHECK (zram_group (z, &req, &res) == 0);
  CHECK (res.grouped == PAGES - 1);
  CHECK (pthread_create (&th, NULL, starved_reader, NULL) == 0);
  CHECK (pthread_join (th, NULL) == 0);
  zram_get_stats (z, &s);
  CHECK (s.group_pages == PAGES - 2);
  zram_destroy (z);
  printf ("test-group-enomem: ok\n");
  return 0;
}
