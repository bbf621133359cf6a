/* nbdkit-zram: a backing store on a regular file or a block device (see
 * include/zram/backing.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Plain pread(2)/pwrite(2) through the page cache (no O_DIRECT: written
 * back pages are cold, and the kernel's cache may drop them as it likes).
 * Trim punches a hole; a block device that cannot (an old kernel, a
 * device without discard) is asked with BLKDISCARD, and a store that can
 * do neither is not asked again.
 */
#define _GNU_SOURCE             /* fallocate, FALLOC_FL_* */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>           /* BLKGETSIZE64, BLKDISCARD */
#include <linux/magic.h>        /* file systems' f_type */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>            /* fstatfs */
#include <unistd.h>

#include "backing-impl.h"

struct backing_file {
  struct backing b;           /* first: the store is cast to this */
  int fd;
  bool blk;                   /* a block device, not a regular file */
};

static int
file_fd (struct backing *b)
{
  return ((struct backing_file *) b)->fd;
}

static int
file_read (struct backing *b, void *buf, size_t len, uint64_t offset)
{
  unsigned char *p = buf;
  ssize_t n;

  while (len > 0) {
    n = pread (file_fd (b), p, len, offset);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      return -1;
    if (n == 0) {             /* the file shrank under us */
      errno = EIO;
      return -1;
    }
    p += n;
    len -= n;
    offset += n;
  }
  return 0;
}

static int
file_write (struct backing *b, const void *buf, size_t len, uint64_t offset)
{
  const unsigned char *p = buf;
  ssize_t n;

  while (len > 0) {
    n = pwrite (file_fd (b), p, len, offset);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      return -1;
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    p += n;
    len -= n;
    offset += n;
  }
  return 0;
}

static int
file_trim (struct backing *b, uint64_t len, uint64_t offset)
{
  struct backing_file *f = (struct backing_file *) b;
  uint64_t range[2] = { offset, len };

  if (fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 offset, len) == 0)
    return 0;
  if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
    return -1;
  if (f->blk && ioctl (f->fd, BLKDISCARD, range) == 0)
    return 0;
  return 1;                   /* cannot trim: do not ask again */
}

static void
file_close (struct backing *b)
{
  struct backing_file *f = (struct backing_file *) b;

  close (f->fd);
  free (f);
}

/* The kernel's own file systems, whose "regular files" are views of
 * kernel or process state, not storage: /proc/PID/mem is another
 * process's memory, a sysfs or procfs file a setting.  Writing pages
 * there would corrupt what they show (as root, even the kernel's
 * settings), so they are refused whatever their size.
 */
static const unsigned long kernel_fs[] = {
  PROC_SUPER_MAGIC, SYSFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC,
  SECURITYFS_MAGIC, SELINUX_MAGIC, SMACK_MAGIC, CGROUP_SUPER_MAGIC,
  CGROUP2_SUPER_MAGIC, BPF_FS_MAGIC, EFIVARFS_MAGIC, PSTOREFS_MAGIC,
  BINFMTFS_MAGIC, NSFS_MAGIC, RDTGROUP_SUPER_MAGIC,
  0x62656570,                 /* configfs */
  0x65735543,                 /* fusectl */
};

static bool
on_kernel_fs (int fd)
{
  struct statfs sfs;

  if (fstatfs (fd, &sfs) == -1)
    return false;             /* judged by what fails next */
  for (size_t i = 0; i < sizeof kernel_fs / sizeof kernel_fs[0]; i++)
    if ((unsigned long) sfs.f_type == kernel_fs[i])
      return true;
  return false;
}

static const struct backing_ops file_ops = {
  .kind = "file", .read = file_read, .write = file_write,
  .trim = file_trim, .close = file_close,
};

static const struct backing_ops blk_ops = {
  .kind = "block device", .read = file_read, .write = file_write,
  .trim = file_trim, .close = file_close,
};

struct backing *
backing_file_open (const char *path, uint64_t max_bytes, char *err,
                   size_t err_cap)
{
  struct backing_file *f;
  struct stat st;
  uint64_t size;
  int fd, e;

  /* Look before opening: O_EXCL is what keeps a mounted block device
   * away, but on a path that does not exist it would create a file.
   */
  if (stat (path, &st) == -1) {
    e = errno;
    snprintf (err, err_cap, "backing store '%s': %s; give an existing "
              "regular file (e.g. made with 'truncate -s 4G %s') or block "
              "device", path, strerror (e), path);
    errno = e;
    return NULL;
  }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
    snprintf (err, err_cap, "backing store '%s': not a regular file or block "
              "device", path);
    errno = EINVAL;
    return NULL;
  }
  fd = open (path, O_RDWR | O_CLOEXEC | (S_ISBLK (st.st_mode) ? O_EXCL : 0));
  if (fd == -1) {
    e = errno;
    if (e == EBUSY)
      snprintf (err, err_cap, "backing store '%s': the block device is in use "
                "(mounted, or held by another program)", path);
    else
      snprintf (err, err_cap, "backing store '%s': cannot open it for reading "
                "and writing: %s", path, strerror (e));
    errno = e;
    return NULL;
  }
  /* The path may have been replaced between stat and open: judge the
   * file that was opened.
   */
  if (fstat (fd, &st) == -1 || (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode))) {
    snprintf (err, err_cap, "backing store '%s': not a regular file or block "
              "device", path);
    e = EINVAL;
    goto err;
  }
  if (S_ISREG (st.st_mode) && on_kernel_fs (fd)) {
    snprintf (err, err_cap, "backing store '%s': a file of the kernel's "
              "(procfs, sysfs, ...), not storage; give a regular file on a "
              "disk's file system or a block device", path);
    e = EINVAL;
    goto err;
  }
  if (S_ISREG (st.st_mode) && flock (fd, LOCK_EX | LOCK_NB) == -1) {
    e = errno == EWOULDBLOCK ? EBUSY : errno;
    snprintf (err, err_cap, "backing store '%s': %s", path,
              e == EBUSY ? "another process uses it (it is locked)"
                         : strerror (e));
    goto err;
  }
  if (S_ISBLK (st.st_mode)) {
    if (ioctl (fd, BLKGETSIZE64, &size) == -1) {
      e = errno;
      snprintf (err, err_cap, "backing store '%s': cannot read the size of the "
                "block device: %s", path, strerror (e));
      goto err;
    }
  }
  else {
    size = st.st_size;
    /* An empty file is a sparse store of the size asked for: creating one
     * takes no more than touch(1).
     */
    if (size == 0 && max_bytes > 0) {
      if (ftruncate (fd, max_bytes) == -1) {
        e = errno;
        snprintf (err, err_cap, "backing store '%s': cannot grow the empty "
                  "file to %" PRIu64 " bytes: %s", path, max_bytes,
                  strerror (e));
        goto err;
      }
      /* A file that ignores ftruncate would be taken for a store of
       * blocks that do not exist.
       */
      if (fstat (fd, &st) == -1 || (uint64_t) st.st_size != max_bytes) {
        snprintf (err, err_cap, "backing store '%s': growing the empty file "
                  "to %" PRIu64 " bytes did not change its size; give a "
                  "regular file on a disk's file system", path, max_bytes);
        e = EINVAL;
        goto err;
      }
      size = max_bytes;
    }
  }
  if (max_bytes > 0 && size > max_bytes)
    size = max_bytes;
  if (size < BACKING_BLOCK_SIZE) {
    snprintf (err, err_cap, "backing store '%s': %" PRIu64 " bytes is smaller "
              "than one block (%u bytes)", path, size, BACKING_BLOCK_SIZE);
    e = EINVAL;
    goto err;
  }

  f = calloc (1, sizeof *f);
  if (f == NULL) {
    e = ENOMEM;
    snprintf (err, err_cap, "backing store '%s': out of memory", path);
    goto err;
  }
  f->fd = fd;
  f->blk = S_ISBLK (st.st_mode);
  f->b.ops = f->blk ? &blk_ops : &file_ops;
  f->b.nr_blocks = size >> BACKING_BLOCK_SHIFT;
  return &f->b;

 err:
  close (fd);
  errno = e;
  return NULL;
}
