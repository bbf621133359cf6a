/* nbdzramctl: which /dev/nbdX an export is attached to, and its use.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * zramctl names a device /dev/zramN and shows where it is mounted.  Our
 * device is an NBD export; the kernel's nbd driver lists, for each
 * /dev/nbdX, the pid of the nbd-client serving it in /sys/block/nbdX/pid,
 * and the server reports the pids of its unix-socket clients (stats key
 * client_pids), so a match names the device.  Its use comes from
 * /proc/self/mountinfo (by major:minor) and /proc/swaps.
 *
 * Every path is read below root ("" for the real system; tests pass a
 * fake tree).  Nothing here fails loudly: not found is an answer.
 */
#ifndef NBDZRAMCTL_NBD_NAMES_H
#define NBDZRAMCTL_NBD_NAMES_H

#include <stddef.h>

/* Write "/dev/nbdX" to out and return 0 if some nbd device's client pid
 * is in the comma-separated list pids; else return -1.
 */
extern int nbd_device_of_pids (const char *root, const char *pids,
                               char *out, size_t cap);

/* Write where dev ("/dev/nbdX") is in use to out: "[SWAP]" if it is an
 * active swap area, else its first mount point; return 0.  Return -1 if
 * it is neither.
 */
extern int nbd_device_use (const char *root, const char *dev,
                           char *out, size_t cap);

#endif /* NBDZRAMCTL_NBD_NAMES_H */
