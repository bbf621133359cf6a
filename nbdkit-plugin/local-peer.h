/* nbdkit-zram: which clients the plugin serves by default.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The device is a writable disk without authentication that may hold swap
 * pages, yet "nbdkit zram 4G" listens on TCP port 10809 on every
 * interface.  So only clients on this machine are served unless the user
 * opts in (allow-remote=true): a unix socket, vsock (the host and its
 * guests), or a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104).
 */
#ifndef ZRAM_PLUGIN_LOCAL_PEER_H
#define ZRAM_PLUGIN_LOCAL_PEER_H

#include <stdbool.h>

/* For .preconnect: returns 0 if the client of the calling connection
 * thread may be served, or -1 after logging with nbdkit_error who was
 * refused and which parameter would allow it.  With allow_remote every
 * client passes.  A connection without a socket (nbdkit -s on a pipe)
 * comes from whoever started nbdkit, and passes.
 */
extern int local_peer_check (bool allow_remote);

#endif /* ZRAM_PLUGIN_LOCAL_PEER_H */
