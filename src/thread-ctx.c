/* nbdkit-zram: the per-thread context (see include/zram/thread-ctx.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * Finding the context: pthread_getspecific.  In glibc 2.36
 * (nptl/pthread_getspecific.c) it never allocates: keys below
 * PTHREAD_KEY_2NDLEVEL_SIZE (32) live in an array inside the thread
 * descriptor, and for higher keys a missing second-level block just reads
 * as NULL.  pthread_setspecific allocates (calloc of that block) only for
 * keys of 32 and above, and then fails with ENOMEM rather than aborting,
 * which we report like any other failure.  Our key is made by a
 * constructor, when the plugin is loaded, so it is one of the first
 * (measured under nbdkit 1.32.5: nbdkit's own key is 0, liburcu-bp's 1,
 * ours 2, the plugin's io_flusher_key 3), and liburcu-bp's, made before
 * ours, is low too: its pthread_setspecific allocates nothing either.
 *
 * Registering with liburcu-bp (0.13, src/urcu-bp.c) where failure can be
 * reported.  urcu_bp_register_thread does two allocations that abort() on
 * failure; we check, just before calling it, that each would succeed:
 *
 *   1. Its first access to its own `__thread` variable makes glibc allocate
 *      the thread's block of liburcu-bp's TLS (elf/dl-tls.c,
 *      allocate_dtv_entry: malloc (block size), or block size + alignment
 *      when the alignment exceeds malloc's; 80 bytes here).  We malloc and
 *      free a block of exactly that request size first.  The freed chunk
 *      goes into this thread's tcache (glibc keeps per-thread caches of
 *      small chunks; this thread's first malloc made its cache), and the
 *      very next malloc of that size on this thread, glibc's, is served
 *      from it: it cannot fail.
 *   2. Its reader registry (an array of struct urcu_bp_reader in mmapped
 *      chunks, never shrunk) grows when every record is in use: mremap in
 *      place to twice the last chunk, else mmap a new chunk of that size.
 *      Growth happens only when more threads are registered at once than
 *      ever before, and is then at most about four records per registered
 *      thread.  We mmap and unmap a mapping of that bound first, unless
 *      zram_thread_ctx_presize made room for more threads than are alive.
 *
 * Registrations are serialised by reg_lock, so our threads cannot take
 * each other's room.  What remains, accepted:
 *   - Between the probe and liburcu's mmap (microseconds) another thread
 *     (a request growing the pool) can take the address space the probe
 *     found; liburcu then aborts.  Closing that would need every allocation
 *     of the process under one lock.
 *   - If glibc's tcache is disabled (tunable glibc.malloc.tcache_count=0),
 *     the freed probe chunk goes to a bin shared by the arena's threads.
 *   - A thread started before a module with TLS is dlopened must grow its
 *     TLS vector on first access, which glibc also treats as fatal.  nbdkit
 *     loads every plugin and filter before it serves.
 *   - Under a memory cgroup a mapping never fails; touching it at the
 *     limit wakes the OOM killer instead.  src/mem-guard.c keeps the pool
 *     below the cgroup's limit to leave room for such small allocations.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* dl_iterate_phdr */
#endif
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <urcu/urcu-bp.h>
#include <urcu/static/urcu-bp.h>  /* sizeof (struct urcu_bp_reader) */

#include "zram/thread-ctx.h"
#include "zram/zcomp.h"

/* Alignment of the scratch pages: a cache line. */
#define SCRATCH_ALIGN 64

/* Stack of a presize helper, which only registers and waits: with the
 * default (8 MiB), 64 helpers took 512 MiB of address space at once, and
 * under 'ulimit -v', or a finite 'ulimit -l' with every mapping locked,
 * the presize failed.  Room for the sanitizers' larger frames.
 */
#define PRESIZE_STACK (256 * 1024)

/* Records of struct urcu_bp_reader the registry probe allows per thread
 * registered at once (see 2. above), and the least it assumes registered
 * (liburcu's first chunk holds 8).
 */
#define REGISTRY_GROWTH_FACTOR 4
#define REGISTRY_MIN_THREADS 16

static pthread_key_t ctx_key;
static bool ctx_key_ok;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned ctx_live;       /* reg_lock */
static unsigned ctx_peak;       /* reg_lock: most contexts alive at once */
static size_t tls_request;      /* glibc's malloc size for liburcu-bp's TLS */
static unsigned registry_room;  /* reg_lock: readers liburcu-bp holds room for */

static void
ctx_free (struct zram_thread_ctx *ctx)
{
  zcomp_scratch_destroy (ctx->codec);
  free (ctx->page);             /* cbuf is in the same block */
  free (ctx->group);
  free (ctx);
}

unsigned char *
zram_thread_ctx_group (struct zram_thread_ctx *ctx)
{
  if (ctx->group == NULL)
    ctx->group = aligned_alloc (SCRATCH_ALIGN, ZRAM_THREAD_CTX_GROUP);
  return ctx->group;
}

static void
ctx_destructor (void *p)
{
  ctx_free (p);
  pthread_mutex_lock (&reg_lock);
  ctx_live--;
  pthread_mutex_unlock (&reg_lock);
}

/* dl_iterate_phdr callback: if this object holds urcu_bp_read_lock, set
 * tls_request from its TLS segment and stop.
 */
static int
find_urcu_tls (struct dl_phdr_info *info, size_t size, void *data)
{
  uintptr_t fn = (uintptr_t) data;
  const ElfW(Phdr) *tls = NULL;
  bool ours = false;
  size_t align;
  int i;

  (void) size;
  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

    if (ph->p_type == PT_TLS)
      tls = ph;
    else if (ph->p_type == PT_LOAD &&
             fn - info->dlpi_addr >= ph->p_vaddr &&
             fn - info->dlpi_addr < ph->p_vaddr + ph->p_memsz)
      ours = true;
  }
  if (!ours)
    return 0;
  if (tls != NULL && tls->p_memsz > 0) {
    /* glibc 2.36 elf/dl-tls.c, allocate_dtv_entry. */
    align = tls->p_align ? tls->p_align : 1;
    tls_request = tls->p_memsz;
    if ((align & (align - 1)) != 0 || align > _Alignof (max_align_t))
      tls_request += align;
  }
  return 1;
}

/* Made when the plugin (or a test program) is loaded: after liburcu-bp's
 * own constructor, before any thread of ours exists.
 */
__attribute__ ((constructor))
static void
ctx_init (void)
{
  ctx_key_ok = pthread_key_create (&ctx_key, ctx_destructor) == 0;
  dl_iterate_phdr (find_urcu_tls, (void *) (uintptr_t) &urcu_bp_read_lock);
}

/* When the plugin is unloaded (dlclose) the destructor's code goes with
 * it: delete the key so that no thread exiting later calls into unmapped
 * code.  nbdkit joins its request threads before unloading; at most the
 * context of a stray thread leaks.
 */
__attribute__ ((destructor))
static void
ctx_fini (void)
{
  if (ctx_key_ok)
    pthread_key_delete (ctx_key);
}

/* Register the calling thread with liburcu-bp after checking that its two
 * allocations will succeed (see the top of this file).  reg_lock held.
 * Returns 0, or -1 with errno ENOMEM.
 */
static int
registry_probe (void)
{
  long pagesize = sysconf (_SC_PAGESIZE);
  size_t len;
  void *p;

  len = (size_t) (ctx_peak + REGISTRY_MIN_THREADS) * REGISTRY_GROWTH_FACTOR *
        sizeof (struct urcu_bp_reader);
  len = (len + pagesize - 1) & ~(size_t) (pagesize - 1);
  p = mmap (NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
            -1, 0);
  if (p == MAP_FAILED) {
    errno = ENOMEM;
    return -1;
  }
  munmap (p, len);
  return 0;
}

static int
rcu_register_checked (void)
{
  void *p;

  /* Within the room zram_thread_ctx_presize made, liburcu-bp's registry
   * has a free record and maps nothing; the probe, which needs address
   * space that may all be in use (a reserve keeps trimmed pool memory
   * mapped), would refuse for nothing.
   */
  if (ctx_live >= registry_room && registry_probe () == -1)
    return -1;

  /* Last before registering: nothing may malloc in between. */
  if (tls_request > 0) {
    p = malloc (tls_request);
    if (p == NULL)
      return -1;
    free (p);
  }
  urcu_bp_register_thread ();
  return 0;
}

struct zram_thread_ctx *
zram_thread_ctx_get (void)
{
  struct zram_thread_ctx *ctx;
  int err;

  if (!ctx_key_ok) {
    errno = ENOMEM;             /* out of keys at load: nothing works */
    return NULL;
  }
  ctx = pthread_getspecific (ctx_key);
  if (ctx != NULL)
    return ctx;

  ctx = calloc (1, sizeof *ctx);
  if (ctx == NULL)
    return NULL;
  ctx->page = aligned_alloc (SCRATCH_ALIGN, 2 * ZRAM_THREAD_CTX_PAGE);
  ctx->codec = zcomp_scratch_create ();
  if (ctx->page == NULL || ctx->codec == NULL)
    goto nomem;
  ctx->cbuf = ctx->page + ZRAM_THREAD_CTX_PAGE;

  pthread_mutex_lock (&reg_lock);
  if (rcu_register_checked () == -1) {
    pthread_mutex_unlock (&reg_lock);
    goto nomem;
  }
  err = pthread_setspecific (ctx_key, ctx);
  if (err != 0) {
    /* The thread stays registered with liburcu (harmless: it unregisters
     * itself at exit, and a second registration is a no-op).
     */
    pthread_mutex_unlock (&reg_lock);
    goto nomem;
  }
  if (++ctx_live > ctx_peak)
    ctx_peak = ctx_live;
  pthread_mutex_unlock (&reg_lock);
  return ctx;

 nomem:
  ctx_free (ctx);
  errno = ENOMEM;
  return NULL;
}

unsigned
zram_thread_ctx_live (void)
{
  unsigned n;

  pthread_mutex_lock (&reg_lock);
  n = ctx_live;
  pthread_mutex_unlock (&reg_lock);
  return n;
}

/* --- presizing liburcu-bp's reader registry ------------------------------ */

struct presize {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned arrived;             /* helpers registered (or failed) */
  unsigned failed;
  bool release;                 /* every helper may exit */
};

static void *
presize_thread (void *arg)
{
  struct presize *ps = arg;
  int r;

  pthread_mutex_lock (&reg_lock);
  r = rcu_register_checked ();
  pthread_mutex_unlock (&reg_lock);
  /* Hold the record until every helper has one: that is what makes the
   * registry grow to n records.  liburcu-bp gives it back at thread exit.
   */
  pthread_mutex_lock (&ps->lock);
  ps->arrived++;
  ps->failed += r == -1;
  pthread_cond_broadcast (&ps->cond);
  while (!ps->release)
    pthread_cond_wait (&ps->cond, &ps->lock);
  pthread_mutex_unlock (&ps->lock);
  return NULL;
}

int
zram_thread_ctx_presize (unsigned n)
{
  struct presize ps = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
  };
  pthread_t *tid;
  pthread_attr_t attr;
  bool attr_ok;
  unsigned i, started;
  int err = 0;

  if (n == 0)
    return 0;
  tid = calloc (n, sizeof *tid);
  if (tid == NULL)
    return -1;
  attr_ok = pthread_attr_init (&attr) == 0;
  if (attr_ok && pthread_attr_setstacksize (&attr, PRESIZE_STACK) != 0) {
    pthread_attr_destroy (&attr);
    attr_ok = false;
  }
  for (started = 0; started < n; started++) {
    err = pthread_create (&tid[started], attr_ok ? &attr : NULL,
                          presize_thread, &ps);
    if (err != 0)
      break;
  }
  if (attr_ok)
    pthread_attr_destroy (&attr);
  pthread_mutex_lock (&ps.lock);
  while (ps.arrived < started)
    pthread_cond_wait (&ps.cond, &ps.lock);
  ps.release = true;
  pthread_cond_broadcast (&ps.cond);
  pthread_mutex_unlock (&ps.lock);
  for (i = 0; i < started; i++)
    pthread_join (tid[i], NULL);
  free (tid);
  if (started < n || ps.failed) {
    errno = err ? err : ENOMEM;
    return -1;
  }
  pthread_mutex_lock (&reg_lock);
  if (n > registry_room)
    registry_room = n;
  pthread_mutex_unlock (&reg_lock);
  return 0;
}
