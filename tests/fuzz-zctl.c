/* libFuzzer target for the control protocol (zctl_execute).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The input is split at '\n' into command lines, run in order against one
 * device that lives for the whole fuzzing run (as it would in a server).
 * Besides the sanitizers, it checks the reply contract of zctl.h:
 *   - the reply is NUL-terminated within the buffer, ends in '\n', and its
 *     last line, and only that one, is "ok" or "error ENAME: ...";
 *   - the return value agrees with that last line;
 *   - a command that fails leaves the device's settings unchanged.
 * Built and run by tests/test-zctl-fuzz.sh with clang -fsanitize=fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zram/zctl.h"
#include "zram/zram.h"

static struct zram *zram;

static void
die (const char *what, const char *reply)
{
  fprintf (stderr, "fuzz-zctl: %s\nreply: '%s'\n", what, reply);
  abort ();
}

static void
check_reply (int ret, const char *reply, size_t cap)
{
  size_t len = strnlen (reply, cap);
  const char *line, *last = NULL;

  if (len == cap)
    die ("reply not NUL-terminated", "");
  if (len == 0 || reply[len - 1] != '\n')
    die ("reply does not end in a newline", reply);
  for (line = reply; line < reply + len; line = strchr (line, '\n') + 1) {
    int term = strncmp (line, "ok\n", 3) == 0 || strncmp (line, "error ", 6) == 0;
    if (term && last != NULL)
      die ("two terminating lines", reply);
    if (term)
      last = line;
    else if (last != NULL)
      die ("data after the terminating line", reply);
  }
  if (last == NULL)
    die ("no terminating line", reply);
  if ((ret == 0) != (strncmp (last, "ok\n", 3) == 0))
    die ("return value disagrees with the reply", reply);
  if (ret == -1 && strncmp (last, "error E", 7) != 0)
    die ("error line without an errno name", reply);
}

static int
same_settings (const struct zram_stats *a, const struct zram_stats *b)
{
  return a->algo == b->algo && a->level == b->level &&
         a->mem_limit == b->mem_limit && a->initialised == b->initialised &&
         a->orig_data_size == b->orig_data_size;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The slot table is mmap'ed, which LeakSanitizer does not scan: free the
 * device before its leak check runs, or every stored object looks leaked.
 */
static void
destroy_device (void)
{
  zram_destroy (zram);
  zram = NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const unsigned char page[ZRAM_PAGE_SIZE] = { 1, 2, 3 };
  char reply[ZCTL_REPLY_MAX];
  const uint8_t *p = data, *end = data + size;
  int lines = 0;

  if (zram == NULL) {
    struct zram_config config = {
      .disksize = 1 << 20, .algo = ZCOMP_LZ4, .pool = ZPOOL_MALLOC,
    };
    zram = zram_create (&config);
    if (zram == NULL)
      abort ();
    atexit (destroy_device);
  }
  /* One stored page, so that a wrongful reset shows in orig_data_size. */
  zram_write (zram, page, sizeof page, 0);

  while (p <= end && lines++ < 16) {
    const uint8_t *nl = memchr (p, '\n', end - p);
    size_t len = (nl ? nl : end) - p;
    struct zram_stats before, after;
    size_t cap;
    int ret;

    /* Vary the reply buffer too: small ones exercise truncation. */
    cap = len > 0 && p[0] == 's' ? 24 + len % 64 : sizeof reply;
    zram_get_stats (zram, &before);
    ret = zctl_execute (zram, (const char *) p, len, reply, cap);
    check_reply (ret, reply, cap);
    zram_get_stats (zram, &after);
    if (ret == -1 && !same_settings (&before, &after))
      die ("a failed command changed the device", reply);
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  /* Keep later inputs independent of this one's limit. */
  zram_set_mem_limit (zram, 0);
  return 0;
}
