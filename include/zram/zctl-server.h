/* nbdkit-zram: the control socket server.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A unix stream socket on which local clients (nbdzramctl, socat, tests)
 * speak the line protocol of zctl.h to one struct zram.  Its life follows
 * nbdkit's plugin life cycle:
 *
 *   .get_ready   zctl_server_bind     create the socket file (errors are
 *                                     still visible to the user here)
 *   [-u/-g, fork]                     the bound socket survives both
 *   .after_fork  zctl_server_start    start the serving threads
 *   .cleanup     zctl_server_stop     stop and join them, close, unlink
 *
 * One thread serves every client with poll(2): each client has its own
 * input and output buffers and non-blocking I/O, so a client that sends
 * half a line, or never reads its replies, delays nobody.  Commands that
 * may block run in worker threads, one per kind (zctl_lane: "reset" and
 * "compact" in one, "idle", "recompress" and "writeback" in another), one
 * command at a time each, so that "stats" is answered while a reset runs and a reset
 * or compaction does not wait for a recompression of the whole device; a
 * client's commands are still answered in order.  A client that makes no
 * progress for ZCTL_CLIENT_TIMEOUT seconds (a command of its own running
 * does not count) is disconnected.  At most ZCTL_MAX_CLIENTS are served at
 * once.
 *
 * Refusals ("error EAGAIN" for one client too many, "error EACCES" for a
 * stranger) are sent, the sending side is shut down, and what the client
 * sends is read and dropped for up to ZCTL_REFUSE_LINGER_MS before the
 * socket is closed: a client that writes its command before it reads sees
 * the refusal, never EPIPE or ECONNRESET.
 *
 * Out of file descriptors, a spare descriptor kept for the purpose is given
 * up to accept one client; beyond that the server stops accepting for a
 * growing delay (up to ZCTL_ACCEPT_BACKOFF_MAX_MS) instead of spinning on
 * EMFILE.
 *
 * Access: the socket file is created with mode 0600 (set on the socket
 * before bind(2), so the file never exists with a wider mode) and belongs
 * to the owner given to zctl_server_bind.  Each client's credentials
 * (SO_PEERCRED) are checked: only root and the server's effective uid (as
 * of zctl_server_start) are served; others get "error EACCES".
 *
 * The socket's directory must be one that nobody but root, the caller and
 * the owner can change: no path operation after bind(2) follows a link,
 * but a directory that others can write would let them swap the socket
 * file for something else between two steps.  See zctl_server_bind.
 *
 * None of these functions is thread-safe against the others on the same
 * server; call them in the order above from one thread.
 */
#ifndef ZRAM_ZCTL_SERVER_H
#define ZRAM_ZCTL_SERVER_H

#include <stddef.h>
#include <sys/types.h>

/* Most clients served at once. */
#define ZCTL_MAX_CLIENTS 16

/* Seconds a client may stay connected without the server reading or
 * writing anything on it.
 */
#define ZCTL_CLIENT_TIMEOUT 60

/* How long a refused client's input is drained before its socket is
 * closed, in milliseconds; at most ZCTL_MAX_CLIENTS refused clients are
 * drained at once (more are closed at once after their refusal).
 */
#define ZCTL_REFUSE_LINGER_MS 2000

/* Longest pause in accepting after accept(2) failed for lack of file
 * descriptors or memory, in milliseconds.  The pause starts at 10 ms and
 * doubles while the failures go on.
 */
#define ZCTL_ACCEPT_BACKOFF_MAX_MS 1000

struct zram;
struct zctl_server;

/* Who the socket file is for: its owner and group, and the uid the server
 * expects to run as.  A server that starts as root and then switches user
 * (nbdkit -u/-g) passes the user it will become, so that this user can
 * connect and the socket's directory may belong to it.
 */
struct zctl_owner {
  uid_t uid;
  gid_t gid;
};

/* Create the socket at path (mode 0600, close-on-exec) and listen on it for
 * zram.  owner NULL means the caller's effective uid and gid.
 *
 * The directory of path, and every directory above it, must belong to root,
 * the caller's effective uid or owner->uid, and must not be writable by
 * group or others unless it is sticky (like /tmp); otherwise EPERM.
 * A leftover socket file from a dead server is replaced if it belongs to
 * one of those users; a socket on which a server still accepts connections
 * is refused (EADDRINUSE), and so is any path that exists but is not a
 * socket (EEXIST).  Starts no thread; umask is neither used nor changed.
 * Returns the server, or NULL with a message (no trailing newline) in
 * err[errlen] and errno set.
 */
extern struct zctl_server *zctl_server_bind (const char *path, struct zram *zram,
                                             const struct zctl_owner *owner,
                                             char *err, size_t errlen);

/* Start serving (three threads: the poll loop, and the two workers for
 * the commands that may block; all signals blocked in them).  Each
 * thread makes its context (include/zram/thread-ctx.h) before this
 * returns, so that none ever needs to allocate one while answering.
 * Returns 0, or -1 with errno: that of pthread_create, or ENOMEM if a
 * thread could not make its context (all have then exited).  Call at
 * most once.
 */
extern int zctl_server_start (struct zctl_server *srv);

/* Stop serving: stop and join the threads if started, disconnect clients,
 * close the socket and remove its file (only if it is still the file this
 * server created; through a descriptor of its directory, so a renamed path
 * does not matter, but the server's user must still be allowed to remove
 * files there), free srv.  A command in progress completes first, except
 * idle marking and recompression, which stop at their next page
 * (zram_stop_walks); a slow command still waiting for its turn is not
 * started.  NULL is accepted.
 */
extern void zctl_server_stop (struct zctl_server *srv);

#endif /* ZRAM_ZCTL_SERVER_H */
