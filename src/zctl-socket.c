/* nbdkit-zram: creating and removing the control socket file safely.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Why each step is safe when the server runs as root:
 *
 *   realpath + openat walk  every directory from / down is owned by a
 *                           trusted uid (root, us, the server's future
 *                           user) and not writable by others unless
 *                           sticky: nobody else can rename or replace
 *                           anything on the path from now on (in a sticky
 *                           directory others may create names, but not
 *                           remove or rename ours).
 *   fchmod(fd, 0600)        before bind: Linux creates the file with the
 *                           socket inode's mode (less the umask), so the
 *                           file never has a wider mode, and nothing is
 *                           chmod'ed by path afterwards (the old
 *                           bind-then-chmod followed a symlink swapped in
 *                           between).  The process-wide umask is left alone.
 *   fchownat, fstatat,      relative to the checked directory descriptor,
 *   unlinkat                with AT_SYMLINK_NOFOLLOW: they act on the
 *                           directory entry itself, never on a link target.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "zram/zctl-server.h"
#include "zctl-socket.h"

static bool
trusted_uid (uid_t u, uid_t owner)
{
  return u == 0 || u == geteuid () || u == owner;
}

/* One directory of the chain; name is its path, for messages. */
static int
check_dir (int fd, const char *name, uid_t owner, char *err, size_t errlen)
{
  struct stat st;

  if (fstat (fd, &st) == -1) {
    snprintf (err, errlen, "%s: fstat: %s", name, strerror (errno));
    return -1;
  }
  if (!trusted_uid (st.st_uid, owner)) {
    snprintf (err, errlen, "%s: directory belongs to uid %u, who could "
              "replace the control socket; put it in a directory of root "
              "or of the server's user", name, (unsigned) st.st_uid);
    errno = EPERM;
    return -1;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
    snprintf (err, errlen, "%s: directory is writable by %s and not "
              "sticky, so others could replace the control socket; use a "
              "private directory (e.g. /run/NAME, mode 0755 or 0700) or "
              "'chmod go-w' it", name,
              st.st_mode & S_IWOTH ? "everyone" : "its group");
    errno = EPERM;
    return -1;
  }
  return 0;
}

/* Open dir with O_PATH after checking it and every directory above it.
 * Returns the descriptor and its resolved path in *real (malloc'ed), or
 * -1 with errno and err.
 */
static int
open_dir_chain (const char *dir, uid_t owner, char **real,
                char *err, size_t errlen)
{
  char *copy, *comp, *save = NULL;
  char shown[PATH_MAX];
  int fd, nfd;

  *real = realpath (dir, NULL);
  if (*real == NULL) {
    snprintf (err, errlen, "%s: directory of the control socket: %s",
              dir, strerror (errno));
    return -1;
  }
  fd = open ("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1 || check_dir (fd, "/", owner, err, errlen) == -1)
    goto fail;
  copy = strdup (*real);
  if (copy == NULL)
    goto fail;
  shown[0] = '\0';
  for (comp = strtok_r (copy, "/", &save); comp;
       comp = strtok_r (NULL, "/", &save)) {
    size_t n = strlen (shown);

    snprintf (shown + n, sizeof shown - n, "/%s", comp);
    /* O_NOFOLLOW: realpath left no links, so one here was swapped in. */
    nfd = openat (fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (nfd == -1) {
      snprintf (err, errlen, "%s: %s", shown, strerror (errno));
      free (copy);
      goto fail;
    }
    close (fd);
    fd = nfd;
    if (check_dir (fd, shown, owner, err, errlen) == -1) {
      free (copy);
      goto fail;
    }
  }
  free (copy);
  return fd;

 fail:
  {
    int saved = errno;

    if (fd >= 0)
      close (fd);
    free (*real);
    *real = NULL;
    errno = saved;
  }
  return -1;
}

static bool
dir_is_sticky (int dir_fd)
{
  struct stat st;

  return fstat (dir_fd, &st) == -1 || (st.st_mode & S_ISVTX);
}

/* Is a server accepting connections on addr?  1 yes, 0 no, -1 unknown
 * (errno set).
 */
static int
socket_is_live (const struct sockaddr_un *addr)
{
  int fd, r;

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd == -1)
    return -1;
  r = connect (fd, (const struct sockaddr *) addr, sizeof *addr);
  if (r == 0 || errno == EAGAIN)    /* EAGAIN: live, its backlog is full */
    r = 1;
  else if (errno == ECONNREFUSED || errno == ENOENT)
    r = 0;
  else
    r = -1;
  close (fd);
  return r;
}

int
zctl_socket_create (struct zctl_socket *s, const char *path,
                    uid_t uid, gid_t gid, char *err, size_t errlen)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  const char *slash = strrchr (path, '/');
  char *dir, *real = NULL;
  struct stat st;
  int saved, n;

  s->fd = s->dir_fd = -1;
  s->base = NULL;

  s->base = strdup (slash ? slash + 1 : path);
  if (slash == NULL)
    dir = strdup (".");
  else if (slash == path)
    dir = strdup ("/");
  else
    dir = strndup (path, slash - path);
  if (s->base == NULL || dir == NULL) {
    snprintf (err, errlen, "%s: %s", path, strerror (errno));
    free (dir);
    goto fail;
  }
  if (s->base[0] == '\0' || strcmp (s->base, ".") == 0 ||
      strcmp (s->base, "..") == 0) {
    snprintf (err, errlen, "%s: names a directory, not a socket file", path);
    free (dir);
    errno = EINVAL;
    goto fail;
  }
  s->dir_fd = open_dir_chain (dir, uid, &real, err, errlen);
  free (dir);
  if (s->dir_fd == -1)
    goto fail;

  /* Bind by the resolved path: every directory on it was just checked. */
  n = snprintf (addr.sun_path, sizeof addr.sun_path, "%s/%s",
                strcmp (real, "/") == 0 ? "" : real, s->base);
  if (n < 0 || (size_t) n >= sizeof addr.sun_path) {
    snprintf (err, errlen, "%s: control socket path (resolved: %s/%s) "
              "longer than %zu bytes", path, real, s->base,
              sizeof addr.sun_path - 1);
    errno = ENAMETOOLONG;
    goto fail;
  }

  s->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->fd == -1) {
    snprintf (err, errlen, "socket: %s", strerror (errno));
    goto fail;
  }
  if (fchmod (s->fd, 0600) == -1) {
    snprintf (err, errlen, "fchmod of the new socket: %s", strerror (errno));
    goto fail;
  }
  if (bind (s->fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    if (errno != EADDRINUSE) {
      snprintf (err, errlen, "%s: cannot create control socket: %s",
                path, strerror (errno));
      goto fail;
    }
    /* Something is there.  Replace it only if it is a socket nobody
     * answers on (the leftover of a server that died without cleanup) and
     * it belongs to a trusted user.
     */
    if (fstatat (s->dir_fd, s->base, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
        !S_ISSOCK (st.st_mode)) {
      snprintf (err, errlen, "%s: exists and is not a socket; "
                "refusing to replace it", path);
      errno = EEXIST;
      goto fail;
    }
    /* In a sticky directory others may create names: a socket of theirs
     * is theirs to remove.  Elsewhere only trusted users could have put it
     * there (a server run with nbdkit -u leaves one of its user's).
     */
    if (!trusted_uid (st.st_uid, uid) && dir_is_sticky (s->dir_fd)) {
      snprintf (err, errlen, "%s: an existing socket belongs to uid %u; "
                "refusing to replace it (remove it if it is stale)",
                path, (unsigned) st.st_uid);
      errno = EPERM;
      goto fail;
    }
    switch (socket_is_live (&addr)) {
    case 1:
      snprintf (err, errlen, "%s: a running server already listens on "
                "this control socket", path);
      errno = EADDRINUSE;
      goto fail;
    case -1:
      snprintf (err, errlen, "%s: cannot tell whether the control socket "
                "is in use: %s", path, strerror (errno));
      goto fail;
    }
    if (unlinkat (s->dir_fd, s->base, 0) == -1 && errno != ENOENT) {
      snprintf (err, errlen, "%s: cannot remove stale control socket: %s",
                path, strerror (errno));
      goto fail;
    }
    if (bind (s->fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
      snprintf (err, errlen, "%s: cannot create control socket: %s",
                path, strerror (errno));
      goto fail;
    }
  }

  /* From here on the file is ours: remove it on failure. */
  if ((uid != geteuid () || gid != getegid ()) &&
      fchownat (s->dir_fd, s->base, uid, gid, AT_SYMLINK_NOFOLLOW) == -1) {
    snprintf (err, errlen, "%s: cannot give the control socket to "
              "uid %u gid %u: %s", path, (unsigned) uid, (unsigned) gid,
              strerror (errno));
    goto fail_unlink;
  }
  if (fstatat (s->dir_fd, s->base, &st, AT_SYMLINK_NOFOLLOW) == -1) {
    snprintf (err, errlen, "%s: fstatat: %s", path, strerror (errno));
    goto fail_unlink;
  }
  /* A umask that takes the owner's bits leaves a socket nobody can use:
   * widen it to 0600 (never more), still without following links.
   */
  if ((st.st_mode & 0777) != 0600 &&
      (fchmodat (s->dir_fd, s->base, 0600, AT_SYMLINK_NOFOLLOW) == -1 ||
       fstatat (s->dir_fd, s->base, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
       (st.st_mode & 0777) != 0600)) {
    snprintf (err, errlen, "%s: the control socket's mode is %o, not 0600",
              path, (unsigned) (st.st_mode & 0777));
    errno = EPERM;
    goto fail_unlink;
  }
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  if (listen (s->fd, ZCTL_MAX_CLIENTS) == -1) {
    snprintf (err, errlen, "%s: listen: %s", path, strerror (errno));
    goto fail_unlink;
  }
  free (real);
  return 0;

 fail_unlink:
  saved = errno;
  unlinkat (s->dir_fd, s->base, 0);
  errno = saved;
 fail:
  saved = errno;
  if (s->fd >= 0)
    close (s->fd);
  if (s->dir_fd >= 0)
    close (s->dir_fd);
  free (s->base);
  free (real);
  s->fd = s->dir_fd = -1;
  s->base = NULL;
  errno = saved;
  return -1;
}

void
zctl_socket_remove (struct zctl_socket *s)
{
  struct stat st;

  if (s->fd >= 0)
    close (s->fd);
  /* Remove the file only if it is still ours, not a successor's. */
  if (s->dir_fd >= 0 &&
      fstatat (s->dir_fd, s->base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_dev == s->dev && st.st_ino == s->ino)
    unlinkat (s->dir_fd, s->base, 0);
  if (s->dir_fd >= 0)
    close (s->dir_fd);
  free (s->base);
  s->fd = s->dir_fd = -1;
  s->base = NULL;
}
