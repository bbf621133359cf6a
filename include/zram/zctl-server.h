/* nbdkit-zram: the control socket server.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A unix stream socket on which local clients (nbdzramctl, socat, tests)
 * speak the line protocol of zctl.h to one struct zram.  Its life follows
 * nbdkit's plugin life cycle:
 *
 *   .get_ready   zctl_server_bind     create the socket file (errors are
 *                                     still visible to the user here)
 *   [fork]                            the bound socket survives the fork
 *   .after_fork  zctl_server_start    start the one serving thread
 *   .cleanup     zctl_server_stop     stop and join it, close, unlink
 *
 * One thread serves every client with poll(2): each client has its own
 * input and output buffers and non-blocking I/O, so a client that sends
 * half a line, or never reads its replies, delays nobody.  A client that
 * makes no progress for ZCTL_CLIENT_TIMEOUT seconds is disconnected; at
 * most ZCTL_MAX_CLIENTS are served at once, further ones get an "error
 * EAGAIN" line and are closed.  The server never touches the data path:
 * commands run zctl_execute, whose "reset" waits for an RCU grace period
 * (only the control thread waits).
 *
 * Access: the socket file has mode 0600, and each client's credentials
 * (SO_PEERCRED) are checked: only root and the server's effective uid are
 * served; others get "error EACCES" and are closed.
 *
 * None of these functions is thread-safe against the others on the same
 * server; call them in the order above from one thread.
 */
#ifndef ZRAM_ZCTL_SERVER_H
#define ZRAM_ZCTL_SERVER_H

#include <stddef.h>

/* Most clients served at once. */
#define ZCTL_MAX_CLIENTS 16

/* Seconds a client may stay connected without the server reading or
 * writing anything on it.
 */
#define ZCTL_CLIENT_TIMEOUT 60

struct zram;
struct zctl_server;

/* Create the socket at path (mode 0600, close-on-exec) and listen on it for
 * zram.  A leftover socket file from a dead server is replaced; a socket on
 * which a server still accepts connections is refused, and so is any path
 * that exists but is not a socket.  Starts no thread.  Returns the server,
 * or NULL with a message (no trailing newline) in err[errlen] and errno set.
 */
extern struct zctl_server *zctl_server_bind (const char *path, struct zram *zram,
                                             char *err, size_t errlen);

/* Start serving (one thread, all signals blocked in it).  The thread makes
 * its context (include/zram/thread-ctx.h) before this returns, so that it
 * never needs to allocate one while answering.  Returns 0, or -1 with
 * errno: that of pthread_create, or ENOMEM if the thread could not make its
 * context (it has then exited).  Call at most once.
 */
extern int zctl_server_start (struct zctl_server *srv);

/* Stop serving: stop and join the thread if started, disconnect clients,
 * close the socket and remove its file (only if it is still the file this
 * server created), free srv.  A command in progress completes first.
 * NULL is accepted.
 */
extern void zctl_server_stop (struct zctl_server *srv);

#endif /* ZRAM_ZCTL_SERVER_H */
