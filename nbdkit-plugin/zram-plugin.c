/* nbdkit-zram: the nbdkit plugin, a thin layer over the core in src/.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * This file knows NBD and nbdkit; it knows nothing of slots, size classes
 * or codecs beyond their names.  Every data callback maps to one core call
 * and passes the core's errno to the client.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zram/compiler.h"
#include "zram/size.h"
#include "zram/zctl-server.h"
#include "zram/zram.h"
#include "zram/thread-ctx.h"
#include "background-params.h"
#include "group-params.h"
#include "writeback-params.h"
#include "dict-params.h"
#include "ctl-owner.h"

#include "fd-headroom.h"
#include "local-peer.h"
#include "nbdkit-cmdline.h"
#include "preflight.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* Largest read or write nbdkit 1.32 accepts from a client (its
 * MAX_REQUEST_SIZE); advertising more would invite requests it refuses.
 */
#define ZRAM_MAX_REQUEST (64 * 1024 * 1024)

/* liburcu-bp reader records made ready at start: nbdkit's 16 request
 * threads per connection for four connections (nbd-client -C 4).
 */
#define RCU_READERS_PRESIZED 64

/* malloc thresholds with a reserve (see zram_plugin_get_ready): glibc's
 * largest mmap threshold on 64-bit (HEAP_MAX_SIZE / 2), and a trim
 * threshold past any heap top worth giving back.
 */
#define ZRAM_MALLOC_MMAP_THRESHOLD (32 * 1024 * 1024)
#define ZRAM_MALLOC_TRIM_THRESHOLD (1024 * 1024 * 1024)

static struct zram_config config = {
  .algo = ZCOMP_DEFAULT_ALGO,
  .level = 0,
  .pool = ZPOOL_ZS,
  .reserve_wait_ms = ZRAM_RESERVE_DEFAULT_WAIT_MS,
};
static bool size_given;
static uint64_t mem_limit;         /* mem_limit=SIZE; 0 = none */
static bool level_given;
static bool lock_memory;           /* mlock=true */
static bool reserve_given;         /* reserve=SIZE given */
static bool allow_remote;          /* allow-remote=true */
static char *ctl_path;             /* ctl=PATH, made absolute */
static char *backing_path;         /* backing=PATH (made absolute) or URI */

static struct zram *zram;
static struct zctl_server *ctl_server;
static struct ctl_owner ctl_owner; /* who serves it after nbdkit -u/-g */

/* Whether this worker thread has tried PR_SET_IO_FLUSHER (a non-NULL
 * value under io_flusher_key), and whether the one warning about a refusal
 * has been printed.  A pthread key, not a __thread variable: glibc
 * allocates a dlopened plugin's thread-local storage on the thread's first
 * access and aborts the server if that fails (see
 * include/zram/thread-ctx.h).  Its key is made at load, among the first,
 * so pthread_setspecific allocates nothing.
 */
static pthread_key_t io_flusher_key;
static bool io_flusher_key_ok;
static bool io_flusher_warned;

static void
zram_plugin_load (void)
{
  io_flusher_key_ok = pthread_key_create (&io_flusher_key, NULL) == 0;
}

static void
zram_plugin_unload (void)
{
  zram_destroy (zram);
  zram = NULL;
  free (ctl_path);
  free (backing_path);
  dict_file_release ();
  cmdline_release ();
  if (io_flusher_key_ok)
    pthread_key_delete (io_flusher_key);
}

/* Sizes parse as everywhere else in the project (include/zram/size.h),
 * not with nbdkit_parse_size, which refuses "4GiB".
 */
static int
parse_size (const char *key, const char *value, uint64_t *bytes)
{
  if (zram_parse_size (value, bytes) == 0)
    return 0;
  if (errno == ERANGE)
    nbdkit_error ("%s: '%s' is too large (more than 2^64 - 1 bytes)", key, value);
  else
    nbdkit_error ("%s: '%s' is not a size: use " ZRAM_SIZE_SYNTAX, key, value);
  return -1;
}

/* Milliseconds: decimal digits only, at most max.  Not
 * nbdkit_parse_unsigned, which reads "010" as 8 and "0x10" as 16, takes
 * leading blanks, and calls "soon" an empty string.
 */
static int
parse_ms (const char *key, const char *value, unsigned max, unsigned *ms)
{
  const char *c;
  uint64_t v = 0;

  for (c = value; *c >= '0' && *c <= '9' && v <= max; c++)
    v = v * 10 + (unsigned) (*c - '0');
  if (*c >= '0' && *c <= '9')
    v = UINT64_MAX;             /* too many digits: too long */
  else if (c == value || *c != '\0') {
    nbdkit_error ("%s: '%s' is not a number of milliseconds: use decimal "
                  "digits only, 0 to %u", key, value, max);
    return -1;
  }
  if (v > max) {
    nbdkit_error ("%s: %s ms is too long; at most %u", key, value, max);
    return -1;
  }
  *ms = (unsigned) v;
  return 0;
}

static int
zram_plugin_config (const char *key, const char *value)
{
  int handled = bg_params_config (key, value);

  if (handled == 0)
    handled = wb_params_config (key, value);
  if (handled == 0)
    handled = group_params_config (key, value);
  if (handled == 0)
    handled = dict_file_config (key, value);
  if (handled != 0)
    return handled == 1 ? 0 : -1;
  if (strcmp (key, "size") == 0) {
    uint64_t r;

    if (parse_size (key, value, &r) == -1)
      return -1;
    if (r == 0) {
      nbdkit_error ("size: the device size must be greater than 0 "
                    "(for example size=4G)");
      return -1;
    }
    if (r > ZRAM_MAX_DISKSIZE - ZRAM_PAGE_SIZE) {
      nbdkit_error ("size: %" PRIu64 " bytes is too large; the largest "
                    "device is %" PRIu64 " bytes", r,
                    ZRAM_MAX_DISKSIZE - ZRAM_PAGE_SIZE);
      return -1;
    }
    /* Round up to whole pages, like zram's disksize. */
    config.disksize = (r + ZRAM_PAGE_SIZE - 1) & ~(uint64_t) (ZRAM_PAGE_SIZE - 1);
    size_given = true;
  }
  else if (strcmp (key, "mem_limit") == 0) {
    if (parse_size (key, value, &mem_limit) == -1)
      return -1;
  }
  else if (strcmp (key, "algorithm") == 0) {
    if (zcomp_parse_algo (value, &config.algo) == -1) {
      nbdkit_error ("algorithm: unknown algorithm '%s'; accepted: %s",
                    value, ZCOMP_ALGO_NAMES);
      return -1;
    }
  }
  else if (strcmp (key, "level") == 0) {
    if (nbdkit_parse_int ("level", value, &config.level) == -1)
      return -1;
    level_given = true;
  }
  else if (strcmp (key, "recomp_algorithm") == 0) {
    char err[160];

    if (zram_parse_recomp_spec (value, &config, err, sizeof err) == -1) {
      nbdkit_error ("recomp_algorithm: %s", err);
      return -1;
    }
  }
  else if (strcmp (key, "pool") == 0) {
    if (zpool_parse_kind (value, &config.pool) == -1) {
      nbdkit_error ("pool: unknown allocator '%s'; accepted: zs, malloc", value);
      return -1;
    }
  }
  else if (strcmp (key, "mlock") == 0) {
    int r = nbdkit_parse_bool (value);

    if (r == -1) {
      nbdkit_error ("mlock: expected true or false, not '%s'", value);
      return -1;
    }
    lock_memory = r;
  }
  else if (strcmp (key, "reserve") == 0) {
    uint64_t r;

    if (parse_size (key, value, &r) == -1)
      return -1;
    if (r != 0 && r < ZPOOL_RESERVE_MIN) {
      nbdkit_error ("reserve: %" PRIu64 " bytes is too small; give 0 (no "
                    "reserve) or at least %" PRIu64 " bytes", r,
                    ZPOOL_RESERVE_MIN);
      return -1;
    }
    if (r > ZRAM_MAX_DISKSIZE) {
      nbdkit_error ("reserve: %" PRIu64 " bytes is too large", r);
      return -1;
    }
    config.reserve = r;
    reserve_given = true;
  }
  else if (strcmp (key, "reserve-wait") == 0) {
    if (parse_ms (key, value, ZPOOL_RESERVE_MAX_WAIT_MS,
                  &config.reserve_wait_ms) == -1)
      return -1;
  }
  else if (strcmp (key, "allow-remote") == 0) {
    int r = nbdkit_parse_bool (value);

    if (r == -1) {
      nbdkit_error ("allow-remote: expected true or false, not '%s'", value);
      return -1;
    }
    allow_remote = r;
  }
  else if (strcmp (key, "backing") == 0) {
    if (*value == '\0') {
      nbdkit_error ("backing: empty; give the path of a regular file or "
                    "block device, or an NBD URI");
      return -1;
    }
    free (backing_path);
    /* A URI (an NBD server; backing_open judges its scheme) is kept as it
     * is.  A path is resolved now: the server changes directory to / when
     * it forks.
     */
    if (strstr (value, "://") != NULL)
      backing_path = strdup (value);
    else
      backing_path = nbdkit_absolute_path (value);
    if (backing_path == NULL) {
      nbdkit_error ("backing: %m");
      return -1;
    }
  }
  else if (strcmp (key, "ctl") == 0) {
    free (ctl_path);
    /* Resolved now: the server changes directory to / when it forks. */
    ctl_path = nbdkit_absolute_path (value);
    if (ctl_path == NULL)
      return -1;
  }
  else {
    nbdkit_error ("unknown parameter '%s'; accepted: size, algorithm, level, "
                  "recomp_algorithm, pool, mem_limit, backing, ctl, mlock, "
                  "allow-remote, reserve, reserve-wait, recomp_policy, "
                  "recomp_age, recomp_budget, recomp_rate, recomp_soft_limit, "
                  "writeback_policy, writeback_age, writeback_rate, "
                  "writeback_high, writeback_low, writeback_wait, "
                  "writeback_limit, writeback_limit_enable, group_pages, "
                  "group_algorithm, group_age, group_budget, group_live_min, "
                  "dict, dict_train, dict_train_gain, dict_train_period, "
                  "dict_train_min_pages "
                  "(see nbdkit-zram-plugin(1))", key);
    return -1;
  }
  return 0;
}

static int
zram_plugin_config_complete (void)
{
  int min, max, dflt;

  if (!size_given) {
    nbdkit_error ("size: the size parameter is required (for example "
                  "'nbdkit zram 4G' or 'size=4G')");
    return -1;
  }
  /* A swap device (mlock=true) gets a reserve unless told otherwise. */
  if (!reserve_given && lock_memory && config.pool == ZPOOL_ZS)
    config.reserve = zram_reserve_default (config.disksize);
  if (config.reserve > zram_reserve_max (config.disksize)) {
    nbdkit_error ("reserve: %" PRIu64 " bytes is more than the device "
                  "(size=%" PRIu64 " bytes) can ever store, and would be "
                  "locked memory never used; give at most %" PRIu64
                  " (or reserve=0)", config.reserve, config.disksize,
                  zram_reserve_max (config.disksize));
    return -1;
  }
  if (config.reserve && !lock_memory) {
    nbdkit_error ("reserve: needs mlock=true: a reserve that is not locked "
                  "in RAM can itself be swapped out, and then it does not "
                  "help (or give reserve=0)");
    return -1;
  }
  if (config.reserve && config.pool != ZPOOL_ZS) {
    nbdkit_error ("reserve: pool=%s keeps no reserve; use pool=zs (or give "
                  "reserve=0)", zpool_kind_name (config.pool));
    return -1;
  }
  zcomp_level_range (config.algo, &min, &max, &dflt);
  if (level_given) {
    if (config.level < min || config.level > max) {
      nbdkit_error ("level: %d is out of range for %s; accepted: %d to %d "
                    "(default %d)", config.level,
                    zcomp_algo_name (config.algo), min, max, dflt);
      return -1;
    }
  }
  if (bg_params_complete (config.nr_recomp) == -1 ||
      wb_params_complete (backing_path != NULL) == -1 ||
      group_params_complete (&config) == -1 ||
      dict_file_complete (config.algo, config.level) == -1)
    return -1;
  return preflight_refuse_nbdkit_swap (config.disksize);
}

#define zram_plugin_config_help \
  "[size=]SIZE              Device size (required), e.g. 4G.\n" \
  "algorithm=lz4|lz4hc|zstd Compression algorithm (default lz4).\n" \
  "level=N                  Level: lz4 acceleration (1-65537, larger is\n" \
  "                         faster), lz4hc (1-12), zstd (1-22).\n" \
  "recomp_algorithm=NAME[:LEVEL][,...]\n" \
  "                         Up to 3 algorithms to recompress idle or huge\n" \
  "                         pages with, in priority order (e.g. zstd:3,zstd:19).\n" \
  "pool=zs|malloc           Allocator for compressed pages (default zs).\n" \
  "mem_limit=SIZE           Most memory the pool may use, e.g. 2G (default none).\n" \
  "backing=PATH|URI         File, block device or NBD server (nbd://...,\n" \
  "                         nbd+unix:///?socket=PATH) that 'nbdzramctl\n" \
  "                         writeback' moves pages to (an empty file grows\n" \
  "                         to size).\n" \
  "ctl=PATH                 Control socket for nbdzramctl (reset, stats...).\n" \
  "mlock=true|false         Lock the server in RAM (use under swap,\n" \
  "                         instead of nbdkit --swap).\n" \
  "allow-remote=true|false  Serve clients on other hosts (default: only\n" \
  "                         unix socket, vsock and loopback clients).\n" \
  "reserve=SIZE             Pool memory kept ready for writes (default with\n" \
  "                         mlock=true: size/16, 4M to 64M, at most size;\n" \
  "                         0 = none).\n" \
  "reserve-wait=MS          Fail a write when the reserve is empty and its\n" \
  "                         refill cannot get memory for MS (20).\n" \
  DICT_FILE_HELP "\n" \
  BG_PARAMS_HELP "\n" \
  WB_PARAMS_HELP "\n" \
  GROUP_PARAMS_HELP

static void
zram_plugin_dump_plugin (void)
{
  printf ("zram_algorithms=lz4 lz4hc zstd\n");
  printf ("zram_default_algorithm=%s\n", zcomp_algo_name (ZCOMP_DEFAULT_ALGO));
  printf ("zram_pools=zs malloc\n");
#ifdef HAVE_LIBNBD
  printf ("zram_backing=file nbd\n");
#else
  printf ("zram_backing=file\n");
#endif
}

/* The reserve is locked memory (mlock=true): with a finite 'ulimit -l',
 * check now, where the error is seen, that it fits, with the slot table
 * that zram_start populates, rather than fail after the fork.
 */
static int
reserve_fits_lock_limit (void)
{
  uint64_t table = config.disksize / ZRAM_PAGE_SIZE * 16, need;
  struct rlimit rl;

  if (getrlimit (RLIMIT_MEMLOCK, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
      geteuid () == 0)
    return 0;                   /* root has CAP_IPC_LOCK: no limit applies */
  need = config.reserve + (table <= ZRAM_TABLE_POPULATE_MAX ? table : 0);
  if (need <= rl.rlim_cur)
    return 0;
  nbdkit_error ("reserve: %" PRIu64 " bytes of reserve and slot table must "
                "be locked, but 'ulimit -l' allows %" PRIu64 " bytes; raise "
                "it (LimitMEMLOCK=infinity under systemd) or give a smaller "
                "reserve=", need, (uint64_t) rl.rlim_cur);
  return -1;
}

/* zram_try_start or zram_start failed (errno set): say what can be at
 * fault and what to change.
 */
static void
reserve_error (void)
{
  nbdkit_error ("reserve: cannot fill a reserve of %" PRIu64 " bytes or "
                "start its thread: %m; the reserve and the slot table it "
                "populates must fit in 1/%d of the memory available "
                "(MemAvailable in /proc/meminfo), in the address space "
                "'ulimit -v' leaves and below the memory cgroup's limit; "
                "give a smaller reserve= (or reserve=0)",
                config.reserve, ZRAM_START_AVAIL_DIV);
}

static int
zram_plugin_get_ready (void)
{
  if (config.reserve) {
    /* The request path of a swap device must not fault in new memory
     * (see the reserve in include/zram/zpool.h).  nbdkit keeps one data
     * buffer per worker thread, grown with realloc to the largest request
     * that thread has served, so reads and writes allocate nothing once
     * each worker has served its largest size (measured: these settings
     * change no fault count of a write workload).  What nbdkit still
     * mallocs and frees per request (block-status extent lists; whole
     * buffers in other servers) should come from the heap, not from a
     * fresh mmap above M_MMAP_THRESHOLD, and freed heap memory should stay
     * in the process rather than be trimmed and faulted in again.
     */
    if (mallopt (M_MMAP_THRESHOLD, ZRAM_MALLOC_MMAP_THRESHOLD) == 0 ||
        mallopt (M_TRIM_THRESHOLD, ZRAM_MALLOC_TRIM_THRESHOLD) == 0)
      nbdkit_debug ("mallopt refused the thresholds: request buffers may "
                    "be faulted in again for each request");
  }
  /* Opened here, before the fork: errors reach the user, and the lock
   * on the store is inherited by the server process.
   */
  if (backing_path) {
    char err[BACKING_ERR_MAX];

    config.backing = backing_open (backing_path, config.disksize, err,
                                   sizeof err);
    if (config.backing == NULL) {
      nbdkit_error ("backing: %s", err);
      return -1;
    }
  }
  config.dict = dict_file_bytes (&config.dict_len);
  zram = zram_create (&config);
  if (zram == NULL) {
    nbdkit_error ("size: cannot create a device of %" PRIu64 " bytes "
                  "(%" PRIu64 " pages): %m", config.disksize,
                  config.disksize >> ZRAM_PAGE_SHIFT);
    backing_close (config.backing);   /* still ours on failure */
    config.backing = NULL;
    return -1;
  }
  zram_set_mem_limit (zram, mem_limit);
  wb_params_apply (zram);
  /* What .after_fork will do, tried now (with the slot table mapped, as
   * it will be then): after the fork a failure is only a syslog line.
   */
  if (preflight_try_start (lock_memory, config.disksize) == -1)
    return -1;
  if (config.reserve && reserve_fits_lock_limit () == -1)
    return -1;
  /* The reserve is filled in .after_fork, where a failure only kills the
   * server after the start command has exited 0: fill one now, on memory
   * given back at once.
   */
  if (config.reserve && zram_try_start (zram) == -1) {
    reserve_error ();
    return -1;
  }
  /* Bind the control socket here, where errors reach the user; its thread
   * must wait for .after_fork.
   */
  if (ctl_path) {
    char err[512];

    /* The socket is for the user nbdkit switches to (-u/-g): see
     * ctl-owner.h for why it is learnt from the command line.
     */
    if (ctl_owner_get (&ctl_owner, err, sizeof err) == -1) {
      nbdkit_error ("ctl: %s", err);
      return -1;
    }
    ctl_server = zctl_server_bind (ctl_path, zram, &ctl_owner.owner,
                                   err, sizeof err);
    if (ctl_server == NULL) {
      nbdkit_error ("ctl: %s", err);
      return -1;
    }
    if (!ctl_owner_can_remove (&ctl_owner, ctl_path))
      nbdkit_error ("warning: ctl: %s: once nbdkit runs as %s%s%s, it "
                    "cannot remove files in this directory, so the control "
                    "socket will stay behind at exit (the next start "
                    "replaces it); use a directory of that user, e.g. "
                    "RuntimeDirectory= in a unit with User=, or "
                    "'install -d -o USER DIR'", ctl_path,
                    ctl_owner.switch_user ? ctl_owner.user : "",
                    ctl_owner.switch_user && ctl_owner.switch_group ? ":" : "",
                    ctl_owner.switch_group ? ctl_owner.group : "");
  }
  return 0;
}

static int
zram_plugin_after_fork (void)
{
  /* Memory locks are not inherited across fork, so this is the place.
   * MCL_ONFAULT locks pages as they are first touched: the slot table of a
   * large device is not populated up front.  .get_ready made the same
   * calls, so these fail only if something changed since (threads refused
   * by 'ulimit -u' for the user of nbdkit -u, a limit reached meanwhile).
   */
  if (lock_memory &&
      mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
    nbdkit_error ("mlock: mlockall: %m (raise 'ulimit -l' or run as root)");
    goto fail;
  }
  /* Room in liburcu's reader registry for the request threads of a few
   * connections, so that a thread's first request maps nothing for it:
   * after trims under an address-space limit with a reserve (which keeps
   * the trimmed memory mapped), the probe for that mapping failed every
   * request of a thread that had not served one before.  Best effort.
   */
  if (zram_thread_ctx_presize (RCU_READERS_PRESIZED) == -1)
    nbdkit_debug ("cannot presize the RCU reader registry: %m; threads "
                  "register with a probe instead");
  /* The reserve: filled and its thread started here, after the fork
   * (pages populated before it would be copied at their first write).
   */
  if (zram_start (zram) == -1) {
    reserve_error ();
    goto fail;
  }
  /* Compaction, and recompression if configured: one thread.  Before the
   * control socket answers, so that its first stats show the policies.
   */
  if (bg_start (zram) == -1)
    goto fail;
  if (ctl_server && zctl_server_start (ctl_server) == -1) {
    nbdkit_error ("ctl: cannot start the control socket thread: %m");
    goto fail;
  }
  if (ctl_server && geteuid () != ctl_owner.owner.uid)
    nbdkit_error ("warning: ctl: the control socket was made for uid %u "
                  "but nbdkit runs as uid %u: only root can use it",
                  (unsigned) ctl_owner.owner.uid, (unsigned) geteuid ());
  return 0;

 fail:
  /* nbdkit exits without calling .cleanup: stop what was started, and
   * remove the control socket so that no stale socket is left behind.
   */
  zctl_server_stop (ctl_server);
  ctl_server = NULL;
  bg_stop (zram);
  nbdkit_error ("the server stops: it cannot run as configured");
  return -1;
}

/* Runs after every connection has closed: only our own threads are left. */
static void
zram_plugin_cleanup (void)
{
  /* The control socket first: it reports the background policies. */
  zctl_server_stop (ctl_server);
  ctl_server = NULL;
  bg_stop (zram);
}

/* Before the handshake: refuse clients from other hosts (local-peer.h),
 * and new clients while file descriptors run out, so that the control
 * socket can still answer (fd-headroom.h).
 */
static int
zram_plugin_preconnect (int readonly UNUSED)
{
  if (local_peer_check (allow_remote) == -1)
    return -1;
  /* Without a control socket there is nothing to keep descriptors for. */
  return ctl_server ? fd_headroom_check () : 0;
}


/* The process id of the client at the other end of a unix socket, or 0:
 * nbdzramctl names the device after the /dev/nbdX whose nbd-client it is.
 */
static int
client_pid (void)
{
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  int64_t pid;

  if (nbdkit_peer_name ((struct sockaddr *) &addr, &len) == -1 ||
      addr.ss_family != AF_UNIX)
    return 0;
  pid = nbdkit_peer_pid ();
  return pid > 0 && pid <= INT_MAX ? (int) pid : 0;
}

/* A connection's handle: the client pid noted with the device. */
struct connection {
  int pid;                      /* 0 = unknown or not noted */
};

static void *
zram_plugin_open (int readonly UNUSED)
{
  struct connection *c = calloc (1, sizeof *c);

  if (c == NULL) {
    nbdkit_error ("open: %m");
    return NULL;
  }
  if (zram_open (zram) == -1) {
    nbdkit_error ("device is being reset; try again");
    free (c);
    return NULL;
  }
  c->pid = client_pid ();
  if (c->pid > 0 && zram_client_pid_add (zram, c->pid) == -1)
    c->pid = 0;                 /* more clients than remembered: unnamed */
  return c;
}

static void
zram_plugin_close (void *handle)
{
  struct connection *c = handle;

  if (c->pid > 0)
    zram_client_pid_remove (zram, c->pid);
  zram_close (zram);
  free (c);
}

static int64_t
zram_plugin_get_size (void *handle UNUSED)
{
  return zram_disksize (zram);
}

static int
zram_plugin_block_size (void *handle UNUSED,
                        uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  *minimum = 1;               /* sub-page requests are read-modify-write */
  *preferred = ZRAM_PAGE_SIZE;
  *maximum = ZRAM_MAX_REQUEST;
  return 0;
}

static int
zram_plugin_can_multi_conn (void *handle UNUSED)
{
  return 1;                   /* every connection sees one device */
}

static int
zram_plugin_can_fua (void *handle UNUSED)
{
  return NBDKIT_FUA_NATIVE;   /* writes are durable (in RAM) when they return */
}

static int
zram_plugin_can_cache (void *handle UNUSED)
{
  /* NBD_CMD_CACHE is advice: pages in RAM need nothing, and pages
   * written back to the store stay there (nothing brings pages back
   * into RAM yet), so it succeeds doing nothing.
   */
  return NBDKIT_CACHE_NATIVE;
}

static int
zram_plugin_can_fast_zero (void *handle UNUSED)
{
  return 1;                   /* zeroing only frees slots */
}

/* Never rotational, and said so explicitly: the kernel's NBD client marks
 * a device rotational when the server does, and Linux swap on a rotational
 * device keeps no cluster map, so it discards freed swap space only once
 * at swapon and never again.  Every page ever swapped out would then stay
 * in this device until its slot is written again (README.md, "Use as
 * swap": in the guest, all 184 MiB still stored after the program exited,
 * against 2-10 MiB non-rotational).
 */
static int
zram_plugin_is_rotational (void *handle UNUSED)
{
  return 0;
}

/* Mark a worker thread as an I/O flusher, once per thread: under swap the
 * kernel then avoids recursing into reclaim (and so into this device) when
 * the thread allocates.  The kernel may refuse (before Linux 5.6, or
 * without CAP_SYS_RESOURCE): say so once and carry on.
 */
static void
mark_io_flusher (void)
{
  /* Without the key (or if setspecific fails), try on every request: the
   * prctl is idempotent.
   */
  if (io_flusher_key_ok) {
    if (pthread_getspecific (io_flusher_key) != NULL)
      return;
    (void) pthread_setspecific (io_flusher_key, &io_flusher_key);
  }
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == -1 &&
      !__atomic_exchange_n (&io_flusher_warned, true, __ATOMIC_RELAXED)) {
    /* With mlock=true the user told us this device holds swap: then the
     * refusal matters enough to reach the log without -v.
     */
    if (lock_memory)
      nbdkit_error ("warning: prctl (PR_SET_IO_FLUSHER): %m: worker threads "
                    "are not marked as I/O flushers (needs Linux >= 5.6 and "
                    "CAP_SYS_RESOURCE); swap on this device may deadlock "
                    "under memory pressure");
    else
      nbdkit_debug ("prctl (PR_SET_IO_FLUSHER): %m (needs Linux >= 5.6 and "
                    "CAP_SYS_RESOURCE)");
  }
}

/* Hand the core's errno to the client. */
static int
fail (void)
{
  nbdkit_set_error (errno);
  return -1;
}

static int
zram_plugin_pread (void *handle UNUSED, void *buf, uint32_t count, uint64_t offset,
                   uint32_t flags UNUSED)
{
  mark_io_flusher ();
  return zram_read (zram, buf, count, offset) == -1 ? fail () : 0;
}

static int
zram_plugin_pwrite (void *handle UNUSED, const void *buf, uint32_t count,
                    uint64_t offset, uint32_t flags UNUSED)
{
  mark_io_flusher ();
  return zram_write (zram, buf, count, offset) == -1 ? fail () : 0;
}

static int
zram_plugin_trim (void *handle UNUSED, uint32_t count, uint64_t offset, uint32_t flags UNUSED)
{
  /* NBD trim is advisory (the client may not assume what trimmed bytes
   * read as), so partial pages at the ends are skipped, as kernel zram
   * does: trim then needs no memory and works at the memory limit.
   */
  mark_io_flusher ();
  return zram_trim (zram, count, offset) == -1 ? fail () : 0;
}

static int
zram_plugin_zero (void *handle UNUSED, uint32_t count, uint64_t offset, uint32_t flags UNUSED)
{
  /* Freed pages read back as zeroes, so zeroing is a discard whether or
   * not the client allowed a hole (NBD_CMD_FLAG_NO_HOLE): the device never
   * promises allocation.  It is always fast, so FAST_ZERO is honoured.
   */
  mark_io_flusher ();
  return zram_discard (zram, count, offset) == -1 ? fail () : 0;
}

static int
zram_plugin_flush (void *handle UNUSED, uint32_t flags UNUSED)
{
  return 0;                   /* nothing is cached outside the device */
}

static int
zram_plugin_cache (void *handle UNUSED, uint32_t count UNUSED, uint64_t offset UNUSED, uint32_t flags)
{
  if (flags != 0) {
    nbdkit_error ("cache: unknown flags 0x%" PRIx32, flags);
    nbdkit_set_error (EINVAL);
    return -1;
  }
  return 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length,
            enum zram_extent_type type)
{
  uint32_t nbd_type = type == ZRAM_EXTENT_ZERO ?
                      NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;

  return nbdkit_add_extent (opaque, offset, length, nbd_type);
}

/* The core clips its runs to [offset, offset+count), which is what
 * nbdkit 1.32 needs: it asserts that no extent it sends is longer than
 * the request, and NBD block descriptors have 32-bit lengths.
 */
static int
zram_plugin_extents (void *handle UNUSED, uint32_t count, uint64_t offset,
                     uint32_t flags UNUSED, struct nbdkit_extents *extents)
{
  return zram_extents (zram, count, offset, add_extent, extents) == -1 ?
         fail () : 0;
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
  .name              = "zram",
  .version           = PACKAGE_VERSION,
  .longname          = "nbdkit zram-style compressed RAM disk plugin",
  .description       = "A compressed RAM disk modelled on Linux zram.",
  .magic_config_key  = "size",
  .load              = zram_plugin_load,
  .unload            = zram_plugin_unload,
  .config            = zram_plugin_config,
  .config_complete   = zram_plugin_config_complete,
  .config_help       = zram_plugin_config_help,
  .dump_plugin       = zram_plugin_dump_plugin,
  .get_ready         = zram_plugin_get_ready,
  .after_fork        = zram_plugin_after_fork,
  .cleanup           = zram_plugin_cleanup,
  .preconnect        = zram_plugin_preconnect,
  .open              = zram_plugin_open,
  .close             = zram_plugin_close,
  .get_size          = zram_plugin_get_size,
  .block_size        = zram_plugin_block_size,
  .can_multi_conn    = zram_plugin_can_multi_conn,
  .can_fua           = zram_plugin_can_fua,
  .can_cache         = zram_plugin_can_cache,
  .can_fast_zero     = zram_plugin_can_fast_zero,
  .is_rotational     = zram_plugin_is_rotational,
  .pread             = zram_plugin_pread,
  .pwrite            = zram_plugin_pwrite,
  .trim              = zram_plugin_trim,
  .zero              = zram_plugin_zero,
  .flush             = zram_plugin_flush,
  .cache             = zram_plugin_cache,
  .extents           = zram_plugin_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
