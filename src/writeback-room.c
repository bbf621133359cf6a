/* nbdkit-zram: writes at mem_limit wait for writeback to make room
 * (zram_set_room_wait, include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Without this, a device with a backing store still fails writes the
 * moment its pool reaches mem_limit, however much room the store has:
 * the policy that moves cold pages out runs on its own clock.  Here a
 * write that finds no room kicks that policy and tries again until the
 * policy has freed objects (or emptied spans) for it, or the wait is
 * over.  Only writes that have already failed come here: below the
 * limit a write costs nothing more.
 *
 * The wait polls: a retry is one allocation attempt, and a condition
 * variable signalled on every free would put a cost on the path of
 * every free, which this file exists not to do.
 */
#include <errno.h>
#include <time.h>

#include "zram/background.h"
#include "zram/policy-writeback.h"
#include "zram-impl.h"

/* Between two retries of the allocation, and between two kicks. */
#define ROOM_RETRY_NS 1000000   /* 1 ms */
#define ROOM_KICK_EVERY 10      /* retries */

int
zram_set_room_wait (struct zram *z, unsigned ms)
{
  if (ms > ZRAM_ROOM_WAIT_MAX_MS) {
    errno = EINVAL;
    return -1;
  }
  __atomic_store_n (&z->room_wait_ms, ms, __ATOMIC_RELAXED);
  return 0;
}

zpool_handle
zram_wait_room (struct zram *z, struct zram_meta *m, size_t size)
{
  const struct timespec step = { 0, ROOM_RETRY_NS };
  unsigned ms = __atomic_load_n (&z->room_wait_ms, __ATOMIC_RELAXED);
  struct zram_bg *bg = zram_background (z);
  int id = zram_bg_find (bg, ZRAM_WB_POLICY);
  uint64_t tries, max_tries = (uint64_t) ms * 1000000 / ROOM_RETRY_NS;
  zpool_handle h;

  /* No wait when writeback cannot help: no store or policy, or a
   * writeback_limit that is used up.
   */
  if (m->backing == NULL || ms == 0 || id < 0 ||
      (__atomic_load_n (&z->wb_limit.enabled, __ATOMIC_RELAXED) &&
       __atomic_load_n (&z->wb_limit.blocks, __ATOMIC_RELAXED) == 0)) {
    errno = ENOSPC;
    return 0;
  }
  STAT_ADD (z->room_waits, 1);
  for (tries = 0; tries < max_tries; tries++) {
    if (tries % ROOM_KICK_EVERY == 0)
      zram_bg_kick (bg, id);
    nanosleep (&step, NULL);
    h = zpool_alloc_limited (m->pool, size,
                             __atomic_load_n (&z->mem_limit, __ATOMIC_RELAXED));
    if (h != 0)
      return h;
    if (errno != ENOSPC)
      return 0;               /* ENOMEM: no point waiting for writeback */
  }
  STAT_ADD (z->room_failed, 1);
  errno = ENOSPC;
  return 0;
}
