/* nbdkit-zram: keep file descriptors for the control socket.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A flood of NBD connections (each costs nbdkit a socket and a pipe, three
 * descriptors) can take every descriptor under 'ulimit -n'.  Then the
 * control socket cannot accept the administrator who asks why: its spare
 * descriptor (src/zctl-server.c) is no help, because nbdkit's accept loop
 * retries at once while connections are pending and takes any descriptor
 * the moment it is freed.  So the plugin refuses new NBD connections
 * while fewer than a headroom of descriptors is left; nbdkit then closes
 * the refused ones, the pending queue drains, and the control socket
 * keeps its descriptors.
 */
#ifndef ZRAM_PLUGIN_FD_HEADROOM_H
#define ZRAM_PLUGIN_FD_HEADROOM_H

/* Descriptors kept free: a quarter of the limit, between 8 and 32. */
#define FD_HEADROOM_MIN 8
#define FD_HEADROOM_MAX 32

/* For .preconnect: 0 if the process has its headroom of descriptors
 * free, or -1 after logging with nbdkit_error how many are left and what
 * to raise (errno EMFILE).  Costs one open and close of /dev/null: the
 * lowest free descriptor number tells how many are in use below it.
 */
extern int fd_headroom_check (void);

#endif /* ZRAM_PLUGIN_FD_HEADROOM_H */
