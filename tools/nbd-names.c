/* nbdzramctl: which /dev/nbdX an export is attached to (see
 * tools/nbd-names.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd-names.h"

/* Read the first line of root/path into buf (without '\n'); 0 or -1. */
static int
read_line (const char *root, const char *path, char *buf, size_t cap)
{
  char full[4096];
  FILE *fp;
  bool ok;

  snprintf (full, sizeof full, "%s%s", root, path);
  fp = fopen (full, "re");
  if (fp == NULL)
    return -1;
  ok = fgets (buf, cap, fp) != NULL;
  fclose (fp);
  if (!ok)
    return -1;
  buf[strcspn (buf, "\n")] = '\0';
  return 0;
}

/* Is the decimal pid in the comma-separated list? */
static bool
pid_in_list (const char *pid, const char *list)
{
  size_t n = strlen (pid);
  const char *p = list;

  if (n == 0)
    return false;
  while (*p) {
    if (strncmp (p, pid, n) == 0 && (p[n] == ',' || p[n] == '\0'))
      return true;
    p = strchr (p, ',');
    if (p == NULL)
      break;
    p++;
  }
  return false;
}

int
nbd_device_of_pids (const char *root, const char *pids, char *out, size_t cap)
{
  char dir[4096], path[512], pid[32];
  struct dirent *d;
  DIR *dp;
  int r = -1;

  if (pids == NULL || *pids == '\0')
    return -1;
  snprintf (dir, sizeof dir, "%s/sys/block", root);
  dp = opendir (dir);
  if (dp == NULL)
    return -1;
  while (r == -1 && (d = readdir (dp)) != NULL) {
    if (strncmp (d->d_name, "nbd", 3) != 0 ||
        strspn (d->d_name + 3, "0123456789") != strlen (d->d_name + 3) ||
        d->d_name[3] == '\0')
      continue;
    snprintf (path, sizeof path, "/sys/block/%s/pid", d->d_name);
    if (read_line (root, path, pid, sizeof pid) == 0 && pid_in_list (pid, pids)) {
      snprintf (out, cap, "/dev/%s", d->d_name);
      r = 0;
    }
  }
  closedir (dp);
  return r;
}

int
nbd_device_use (const char *root, const char *dev, char *out, size_t cap)
{
  char path[512], devno[32], line[8192], full[4096];
  const char *name = strrchr (dev, '/');
  FILE *fp;
  int r = -1;

  name = name ? name + 1 : dev;

  /* Swap: /proc/swaps lists the device by path. */
  snprintf (full, sizeof full, "%s/proc/swaps", root);
  if ((fp = fopen (full, "re")) != NULL) {
    while (r == -1 && fgets (line, sizeof line, fp)) {
      size_t n = strcspn (line, " \t");

      if (n == strlen (dev) && strncmp (line, dev, n) == 0) {
        snprintf (out, cap, "[SWAP]");
        r = 0;
      }
    }
    fclose (fp);
  }
  if (r == 0)
    return 0;

  /* Mounts: field 3 of mountinfo is major:minor, field 5 the mount point
   * (with octal escapes for blanks, shown as they are).
   */
  snprintf (path, sizeof path, "/sys/block/%s/dev", name);
  if (read_line (root, path, devno, sizeof devno) == -1)
    return -1;
  snprintf (full, sizeof full, "%s/proc/self/mountinfo", root);
  if ((fp = fopen (full, "re")) == NULL)
    return -1;
  while (r == -1 && fgets (line, sizeof line, fp)) {
    char *field[5], *save = NULL, *p = line;
    int i;

    for (i = 0; i < 5 && (field[i] = strtok_r (p, " ", &save)) != NULL; i++)
      p = NULL;
    if (i == 5 && strcmp (field[2], devno) == 0) {
      snprintf (out, cap, "%s", field[4]);
      r = 0;
    }
  }
  fclose (fp);
  return r;
}
