/* nbdkit-zram: creating and removing the control socket file safely
 * (internal to the control server; see include/zram/zctl-server.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * The file is created with its final mode and found again only through a
 * descriptor of its directory, never by following a path that someone
 * could have changed: the directory chain is checked first (see
 * zctl_server_bind for the rule), then everything after bind(2) is an
 * *at() call on that directory with AT_SYMLINK_NOFOLLOW.
 */
#ifndef ZRAM_ZCTL_SOCKET_H
#define ZRAM_ZCTL_SOCKET_H

#include <stddef.h>
#include <sys/types.h>

struct zctl_socket {
  int fd;                       /* listening, non-blocking, close-on-exec */
  int dir_fd;                   /* O_PATH descriptor of its directory */
  char *base;                   /* the file's name in that directory */
  dev_t dev;                    /* identity of the file we created */
  ino_t ino;
};

/* Create, chown to uid:gid (if not the caller's) and listen at path, with
 * mode 0600.  Returns 0, or -1 with errno and a message in err[errlen]
 * (then s holds nothing to release).
 */
extern int zctl_socket_create (struct zctl_socket *s, const char *path,
                               uid_t uid, gid_t gid, char *err, size_t errlen);

/* Close the socket and remove its file if the directory still holds the
 * file we created.  Best effort: errors are ignored.
 */
extern void zctl_socket_remove (struct zctl_socket *s);

#endif /* ZRAM_ZCTL_SOCKET_H */
