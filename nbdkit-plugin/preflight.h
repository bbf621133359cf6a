/* nbdkit-zram: checks made before nbdkit forks.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A daemonised nbdkit forks after .get_ready; the parent exits 0 at once,
 * so an error in .after_fork kills a server whose start already
 * "succeeded", and reaches only syslog.  What .after_fork will do (lock
 * memory, start threads) is therefore tried here first, in .get_ready,
 * where a failure makes the start command fail with a message, and then
 * undone: memory locks and threads do not survive fork anyway.
 *
 * Every function reports its own failures with nbdkit_error and returns -1;
 * warnings are printed the same way but return 0.  Call them from the main
 * thread in .config_complete / .get_ready only.
 */
#ifndef ZRAM_PLUGIN_PREFLIGHT_H
#define ZRAM_PLUGIN_PREFLIGHT_H

#include <stdint.h>

/* Worker threads nbdkit starts for one connection by default (its -t),
 * plus the connection's own thread: stacks that must fit under a memory
 * lock for a client to be served.
 */
#define PREFLIGHT_THREADS_PER_CONNECTION (16 + 1)

/* Fail if nbdkit was started with --swap.  nbdkit then calls
 * mlockall (MCL_CURRENT | MCL_FUTURE) after .get_ready, which faults in
 * every page of the slot table at once (16 bytes per device page: 4 GiB
 * for a 1 TiB device), and a daemonised nbdkit loses the lock again when
 * it forks.  disksize (bytes) is only used in the message.
 */
extern int preflight_refuse_nbdkit_swap (uint64_t disksize);

/* Try now what .after_fork will do: start a thread, and with lock_memory
 * lock all memory (MCL_ONFAULT, so the slot table stays unpopulated) while
 * doing it; then undo the lock.  Fails when mlockall fails (RLIMIT_MEMLOCK
 * too small for what is already mapped) or the thread cannot start (its
 * stack does not fit the lock limit, or RLIMIT_NPROC).  With lock_memory,
 * also warns when the limit leaves no room for one connection's threads or
 * for a full device of disksize bytes.
 */
extern int preflight_try_start (int lock_memory, uint64_t disksize);

#endif /* ZRAM_PLUGIN_PREFLIGHT_H */
