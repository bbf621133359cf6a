/* nbdkit-zram: keep the pool below the cgroup's memory limit (see
 * include/zram/mem-guard.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zram/mem-guard.h"
#include "zram/zpool.h"

/* cgroup v1 writes "no limit" as a huge number (page-rounded LONG_MAX). */
#define V1_UNLIMITED (UINT64_C (1) << 62)

/* /proc/self/cgroup is one line per hierarchy; a few lines in practice. */
#define PROC_CGROUP_MAX 4096

struct zram_mem_guard {
  char proc_cgroup[ZRAM_MEM_GUARD_PATH_MAX / 2];
  char root[ZRAM_MEM_GUARD_PATH_MAX / 2];
};

/* The least room found so far, and the limit that gives it. */
struct room {
  bool found;
  uint64_t room;
  uint64_t limit;
};

struct zram_mem_guard *
zram_mem_guard_create (const char *proc_cgroup, const char *cgroup_root)
{
  struct zram_mem_guard *g;

  if (proc_cgroup == NULL)
    proc_cgroup = "/proc/self/cgroup";
  if (cgroup_root == NULL)
    cgroup_root = "/sys/fs/cgroup";
  if (strlen (proc_cgroup) >= sizeof g->proc_cgroup ||
      strlen (cgroup_root) >= sizeof g->root) {
    errno = EINVAL;
    return NULL;
  }
  g = calloc (1, sizeof *g);
  if (g == NULL)
    return NULL;
  strcpy (g->proc_cgroup, proc_cgroup);
  strcpy (g->root, cgroup_root);
  return g;
}

void
zram_mem_guard_destroy (struct zram_mem_guard *g)
{
  free (g);
}

/* Read a small file into buf (NUL-terminated).  Returns its length, or -1. */
static ssize_t
read_small (const char *path, char *buf, size_t size)
{
  ssize_t n, len = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return -1;
  while ((size_t) len < size - 1 &&
         (n = read (fd, buf + len, size - 1 - len)) > 0)
    len += n;
  close (fd);
  buf[len] = '\0';
  return len;
}

/* Read dir/name as a number.  Returns 1 and sets *v; 0 for "max" (no
 * limit); -1 if absent or unreadable.
 */
static int
read_number (const char *dir, const char *name, uint64_t *v)
{
  char path[ZRAM_MEM_GUARD_PATH_MAX + 64], buf[64], *end;

  if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return -1;
  if (read_small (path, buf, sizeof buf) <= 0)
    return -1;
  if (strncmp (buf, "max", 3) == 0)
    return 0;
  errno = 0;
  *v = strtoull (buf, &end, 10);
  if (errno != 0 || end == buf)
    return -1;
  return 1;
}

/* Fold the limit of one cgroup directory into *r. */
static void
fold_dir (const char *dir, const char *limit_file, const char *usage_file,
          struct room *r)
{
  uint64_t limit, usage, room;

  if (read_number (dir, limit_file, &limit) != 1 || limit >= V1_UNLIMITED)
    return;
  if (read_number (dir, usage_file, &usage) != 1)
    return;
  room = usage < limit ? limit - usage : 0;
  if (!r->found || room < r->room) {
    r->found = true;
    r->room = room;
    r->limit = limit;
  }
}

/* Fold base/path and each of its ancestors up to base itself. */
static void
fold_hierarchy (const char *base, const char *path, const char *limit_file,
                const char *usage_file, struct room *r)
{
  char dir[ZRAM_MEM_GUARD_PATH_MAX];
  size_t baselen = strlen (base);
  char *slash;

  if ((size_t) snprintf (dir, sizeof dir, "%s%s", base, path) >= sizeof dir)
    return;
  for (;;) {
    /* Trailing slashes (path "/") name the same directory. */
    while (strlen (dir) > baselen && dir[strlen (dir) - 1] == '/')
      dir[strlen (dir) - 1] = '\0';
    fold_dir (dir, limit_file, usage_file, r);
    if (strlen (dir) <= baselen)
      break;
    slash = strrchr (dir + baselen, '/');
    if (slash == NULL)
      break;
    *slash = '\0';
  }
}

/* Does the comma-separated controller list name "memory"? */
static bool
lists_memory (const char *list, size_t len)
{
  const char *p = list, *end = list + len;

  while (p < end) {
    const char *comma = memchr (p, ',', end - p);
    size_t n = (comma ? comma : end) - p;

    if (n == 6 && memcmp (p, "memory", 6) == 0)
      return true;
    p += n + 1;
  }
  return false;
}

int
zram_mem_guard_room (const struct zram_mem_guard *g, uint64_t *room,
                     uint64_t *limit)
{
  char buf[PROC_CGROUP_MAX], base[ZRAM_MEM_GUARD_PATH_MAX];
  struct room r = { false, 0, 0 };
  char *line, *next;

  if (read_small (g->proc_cgroup, buf, sizeof buf) <= 0)
    return 0;
  /* Lines are "ID:CONTROLLERS:PATH": v2 has ID 0 and no controllers. */
  for (line = buf; *line; line = next) {
    char *c1, *c2, *nl = strchr (line, '\n');

    next = nl ? nl + 1 : line + strlen (line);
    if (nl)
      *nl = '\0';
    c1 = strchr (line, ':');
    c2 = c1 ? strchr (c1 + 1, ':') : NULL;
    if (c2 == NULL || c2[1] != '/')
      continue;
    if (c2 == c1 + 1) {
      /* cgroup2, mounted at the root or, in the hybrid layout, below. */
      fold_hierarchy (g->root, c2 + 1, "memory.max", "memory.current", &r);
      snprintf (base, sizeof base, "%s/unified", g->root);
      fold_hierarchy (base, c2 + 1, "memory.max", "memory.current", &r);
    }
    else if (lists_memory (c1 + 1, c2 - c1 - 1)) {
      snprintf (base, sizeof base, "%s/memory", g->root);
      fold_hierarchy (base, c2 + 1, "memory.limit_in_bytes",
                      "memory.usage_in_bytes", &r);
    }
  }
  if (!r.found)
    return 0;
  *room = r.room;
  *limit = r.limit;
  return 1;
}

int
zram_mem_guard_gate (void *opaque, uint64_t total_bytes)
{
  const struct zram_mem_guard *g = opaque;
  uint64_t room, limit, margin;

  (void) total_bytes;
  if (!zram_mem_guard_room (g, &room, &limit))
    return 0;
  margin = limit / ZRAM_MEM_GUARD_MARGIN_DIV;
  if (margin < ZRAM_MEM_GUARD_MARGIN_MIN)
    margin = ZRAM_MEM_GUARD_MARGIN_MIN;
  if (room >= margin + ZPOOL_GROW_STEP)
    return 0;
  errno = ENOMEM;
  return -1;
}
