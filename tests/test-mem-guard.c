/* Unit test: the cgroup memory guard (include/zram/mem-guard.h) on fake
 * cgroup trees: v2 (at the root, hybrid "unified", namespaced "/"), v1,
 * ancestors' limits, no limit; and as a pool's growth gate, asked once
 * per ZPOOL_GROW_STEP and refusing with ENOMEM near the limit.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zram/mem-guard.h"
#include "zram/zpool.h"
#include "check.h"

#define MiB (UINT64_C (1) << 20)

static char top[] = "/tmp/test-mem-guard.XXXXXX";
static char proc[256], root[256];

static void
put (const char *rel, const char *text)
{
  char path[512], *p;
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", top, rel);
  for (p = path + strlen (top) + 1; (p = strchr (p, '/')) != NULL; p++) {
    *p = '\0';
    mkdir (path, 0755);
    *p = '/';
  }
  fp = fopen (path, "w");
  CHECK (fp != NULL);
  fputs (text, fp);
  fclose (fp);
}

static void
put_u64 (const char *rel, uint64_t v)
{
  char buf[32];

  snprintf (buf, sizeof buf, "%llu\n", (unsigned long long) v);
  put (rel, buf);
}

/* Room and limit as the guard sees them now; 0 when none applies. */
static int
room (uint64_t *r, uint64_t *l)
{
  struct zram_mem_guard *g = zram_mem_guard_create (proc, root);
  int found;

  CHECK (g != NULL);
  *r = *l = 0;
  found = zram_mem_guard_room (g, r, l);
  zram_mem_guard_destroy (g);
  return found;
}

static void
clear (void)
{
  char cmd[300];

  snprintf (cmd, sizeof cmd, "rm -rf '%s'/*", top);
  CHECK (system (cmd) == 0);
}

static unsigned gate_calls;

static int
counting_gate (void *guard, uint64_t total)
{
  gate_calls++;
  return zram_mem_guard_gate (guard, total);
}

int
main (void)
{
  struct zram_mem_guard *g;
  struct zpool *pool;
  uint64_t r, l;
  unsigned i;

  CHECK (mkdtemp (top) != NULL);
  snprintf (proc, sizeof proc, "%s/proc-cgroup", top);
  snprintf (root, sizeof root, "%s/cg", top);

  /* No /proc/self/cgroup, or no limit anywhere: nothing applies. */
  CHECK (room (&r, &l) == 0);
  put ("proc-cgroup", "0::/svc/app\n");
  put ("cg/svc/app/memory.max", "max\n");
  put_u64 ("cg/svc/app/memory.current", 5 * MiB);
  CHECK (room (&r, &l) == 0);

  /* v2: the cgroup's own limit, then a tighter ancestor's. */
  put_u64 ("cg/svc/app/memory.max", 256 * MiB);
  CHECK (room (&r, &l) == 1 && r == 251 * MiB && l == 256 * MiB);
  put_u64 ("cg/svc/memory.max", 128 * MiB);
  put_u64 ("cg/svc/memory.current", 100 * MiB);
  CHECK (room (&r, &l) == 1 && r == 28 * MiB && l == 128 * MiB);
  /* Usage over the limit: no room, not a wrap-around. */
  put_u64 ("cg/svc/memory.current", 130 * MiB);
  CHECK (room (&r, &l) == 1 && r == 0);

  /* v2 in a namespace: the process sees "/" and the root has the files. */
  clear ();
  put ("proc-cgroup", "0::/\n");
  put_u64 ("cg/memory.max", 64 * MiB);
  put_u64 ("cg/memory.current", 4 * MiB);
  CHECK (room (&r, &l) == 1 && r == 60 * MiB);

  /* Hybrid: cgroup2 under "unified", v1 controllers beside it. */
  clear ();
  put ("proc-cgroup", "9:name=systemd:/\n4:memory:/\n0::/box\n");
  put_u64 ("cg/unified/box/memory.max", 512 * MiB);
  put_u64 ("cg/unified/box/memory.current", 12 * MiB);
  CHECK (room (&r, &l) == 1 && r == 500 * MiB);

  /* v1: "memory" among several controllers; "unlimited" is a huge number. */
  clear ();
  put ("proc-cgroup", "5:cpu,memory:/job\n0::/\n");
  put ("cg/memory/job/memory.limit_in_bytes", "9223372036854771712\n");
  put_u64 ("cg/memory/job/memory.usage_in_bytes", 3 * MiB);
  CHECK (room (&r, &l) == 0);
  put_u64 ("cg/memory/job/memory.limit_in_bytes", 96 * MiB);
  CHECK (room (&r, &l) == 1 && r == 93 * MiB && l == 96 * MiB);
  /* memory.limit_in_bytes of the v1 root is unlimited too. */
  put ("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put_u64 ("cg/memory/memory.usage_in_bytes", 900 * MiB);
  CHECK (room (&r, &l) == 1 && r == 93 * MiB);

  /* The gate: room must cover the margin plus one step. */
  clear ();
  put ("proc-cgroup", "0::/svc\n");
  put_u64 ("cg/svc/memory.max", 256 * MiB);
  put_u64 ("cg/svc/memory.current",
           256 * MiB - ZRAM_MEM_GUARD_MARGIN_MIN - ZPOOL_GROW_STEP);
  g = zram_mem_guard_create (proc, root);
  CHECK (g != NULL);
  CHECK (zram_mem_guard_gate (g, 0) == 0);
  put_u64 ("cg/svc/memory.current",
           256 * MiB - ZRAM_MEM_GUARD_MARGIN_MIN - ZPOOL_GROW_STEP + 1);
  errno = 0;
  CHECK (zram_mem_guard_gate (g, 0) == -1 && errno == ENOMEM);
  /* A large limit's margin is a fraction of it. */
  put_u64 ("cg/svc/memory.max", 64ull << 30);
  put_u64 ("cg/svc/memory.current", (64ull << 30) - (64ull << 30) / 16);
  CHECK (zram_mem_guard_gate (g, 0) == -1);
  put_u64 ("cg/svc/memory.current",
           (64ull << 30) - (64ull << 30) / 16 - ZPOOL_GROW_STEP);
  CHECK (zram_mem_guard_gate (g, 0) == 0);

  /* As a pool's gate, for both allocators. */
  for (i = 0; i < 2; i++) {
    zpool_handle h[2048];
    unsigned n, more;

    put_u64 ("cg/svc/memory.max", 256 * MiB);
    put_u64 ("cg/svc/memory.current", 8 * MiB);
    pool = zpool_create (i == 0 ? ZPOOL_ZS : ZPOOL_MALLOC);
    CHECK (pool != NULL);
    zpool_set_grow_gate (pool, counting_gate, g);
    gate_calls = 0;
    /* 4 MiB of page-sized objects: two or three questions, not 1024. */
    for (n = 0; n < 1024; n++)
      CHECK ((h[n] = zpool_alloc (pool, 4096)) != 0);
    CHECK (gate_calls >= 1 && gate_calls <= 4);
    /* At the limit, growth fails with ENOMEM... */
    put_u64 ("cg/svc/memory.current", 250 * MiB);
    for (more = 1024; more < 2048; more++) {
      errno = 0;
      if ((h[more] = zpool_alloc (pool, 4096)) == 0)
        break;
    }
    CHECK (more < 2048 && errno == ENOMEM);
    printf ("  %s pool: gate asked %u times for 4 MiB; refused after %u "
            "more objects\n", i == 0 ? "zs" : "malloc", gate_calls,
            more - 1024);
    /* ...and memory freed is reused without asking. */
    for (n = 0; n < 256; n++)
      zpool_free (pool, h[n]);
    gate_calls = 0;
    for (n = 0; n < 256; n++)
      CHECK ((h[n] = zpool_alloc (pool, 4096)) != 0);
    CHECK (gate_calls == 0);
    for (n = 0; n < more; n++)
      zpool_free (pool, h[n]);
    zpool_destroy (pool);
  }
  zram_mem_guard_destroy (g);

  clear ();
  rmdir (top);
  printf ("test-mem-guard: ok\n");
  return 0;
}
