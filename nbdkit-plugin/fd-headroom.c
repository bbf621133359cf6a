/* nbdkit-zram: keep file descriptors for the control socket.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#include "fd-headroom.h"

static unsigned
fd_headroom_for (unsigned long lim)
{
  unsigned long h = lim / 4;

  return h < FD_HEADROOM_MIN ? FD_HEADROOM_MIN
    : h > FD_HEADROOM_MAX ? FD_HEADROOM_MAX : (unsigned) h;
}

int
fd_headroom_check (void)
{
  struct rlimit rl;
  unsigned long lim;
  unsigned headroom;
  int fd;

  if (getrlimit (RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
    return 0;
  lim = rl.rlim_cur;
  headroom = fd_headroom_for (lim);
  /* Descriptors are handed out lowest first, so every one below the
   * lowest free one is in use: when that is near the limit, few are left.
   */
  fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    close (fd);
  else if (errno != EMFILE && errno != ENFILE)
    return 0;                   /* no /dev/null (a bare chroot): cannot tell */
  if (fd >= 0 && (unsigned long) fd + headroom < lim)
    return 0;
  nbdkit_error ("refusing a connection: at most %lu of the %lu file "
                "descriptors that 'ulimit -n' allows are free, and %u are "
                "kept for the control socket; raise 'ulimit -n' "
                "(LimitNOFILE= under systemd) or close connections",
                fd < 0 ? 0UL : lim - (unsigned long) fd, lim, headroom);
  errno = EMFILE;
  return -1;
}
