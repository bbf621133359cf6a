/* Unit test: per-thread contexts (include/zram/thread-ctx.h).
 *
 *   1. Each thread gets its own context, the same one on every call, with
 *      usable scratch pages; contexts are freed when their threads exit.
 *   2. Out of memory (an address-space limit, every byte of it taken):
 *      a thread's first request fails with ENOMEM instead of aborting the
 *      process, statistics still answer on that thread, a control thread
 *      that cannot make its context refuses to start with ENOMEM, and once
 *      memory is back the same thread writes and reads normally.
 *   3. The same when malloc still has room (other threads' arenas) but
 *      mmap has none: the registry probe of src/thread-ctx.c refuses the
 *      registration.  (Whether liburcu-bp would really have had to grow its
 *      registry, and aborted, depends on how its chunks happened to be laid
 *      out, which the test cannot see or force.)
 *
 *   4. zram_thread_ctx_presize (64) works with little address space to
 *      spare (48 MiB): its helper threads only register, and used to take
 *      a default 8 MiB stack each, 512 MiB at once, so that under
 *      'ulimit -v' (or a finite 'ulimit -l' with mlock=true) the presize
 *      failed and silently did nothing.
 *
 * Parts 2, 3 and 4 run in child processes forked before any thread exists
 * (so malloc has only the main arena there), and an abort shows up as the
 * child's death by SIGABRT.  They need the real malloc and mmap: under
 * ASan or TSan (whose allocators reserve terabytes of address space) they
 * are skipped; part 1 still runs.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "zram/thread-ctx.h"
#include "zram/zctl-server.h"
#include "zram/zram.h"
#include "check.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#define PAGE 4096
#define NR_THREADS 8

static struct zram *
make_device (uint64_t size)
{
  struct zram_config cfg = { .disksize = size, .algo = ZCOMP_LZ4, .pool = ZPOOL_ZS };
  struct zram *z = zram_create (&cfg);

  CHECK (z != NULL);
  return z;
}

static void
fill (unsigned char *p, unsigned seed)
{
  unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;

  for (size_t i = 0; i < PAGE; i++)
    p[i] = (unsigned char) (test_rand (&s) >> 56);
}

/* --- 1. one context per thread, freed at exit ---------------------------- */

struct worker {
  struct zram *z;
  unsigned index;
  pthread_barrier_t *all_alive;   /* waited on twice: alive, counted */
  struct zram_thread_ctx *ctx;
};

static void *
worker (void *arg)
{
  struct worker *w = arg;
  unsigned char page[PAGE], back[PAGE];

  w->ctx = zram_thread_ctx_get ();
  CHECK (w->ctx != NULL);
  CHECK (zram_thread_ctx_get () == w->ctx);
  CHECK (w->ctx->page != NULL && w->ctx->cbuf != NULL && w->ctx->codec != NULL);
  memset (w->ctx->page, 0xa5, ZRAM_THREAD_CTX_PAGE);
  memset (w->ctx->cbuf, 0x5a, ZRAM_THREAD_CTX_PAGE);
  /* Partial-page writes use ctx->page, full ones ctx->cbuf. */
  fill (page, w->index);
  CHECK (zram_write (w->z, page, PAGE, (uint64_t) w->index * PAGE) == 0);
  CHECK (zram_write (w->z, page + 100, 1000, (uint64_t) w->index * PAGE + 100) == 0);
  CHECK (zram_read (w->z, back, PAGE, (uint64_t) w->index * PAGE) == 0);
  CHECK (memcmp (page, back, PAGE) == 0);
  pthread_barrier_wait (w->all_alive);
  pthread_barrier_wait (w->all_alive);
  return NULL;
}

static void
test_per_thread (void)
{
  struct zram *z = make_device (64 * PAGE);
  struct worker w[NR_THREADS];
  pthread_t t[NR_THREADS];
  pthread_barrier_t all_alive;
  unsigned base = zram_thread_ctx_live (), i, j, round;

  pthread_barrier_init (&all_alive, NULL, NR_THREADS + 1);
  for (i = 0; i < NR_THREADS; i++) {
    w[i] = (struct worker) { .z = z, .index = i, .all_alive = &all_alive };
    CHECK (pthread_create (&t[i], NULL, worker, &w[i]) == 0);
  }
  pthread_barrier_wait (&all_alive);
  CHECK (zram_thread_ctx_live () == base + NR_THREADS);
  pthread_barrier_wait (&all_alive);
  for (i = 0; i < NR_THREADS; i++) {
    pthread_join (t[i], NULL);
    for (j = 0; j < i; j++)
      CHECK (w[i].ctx != w[j].ctx);
  }
  /* Each thread's key destructor has run by the time it is joined. */
  CHECK (zram_thread_ctx_live () == base);
  pthread_barrier_destroy (&all_alive);

  /* Many short-lived threads: contexts do not pile up (and the leak check
   * of ASan sees none).
   */
  pthread_barrier_init (&all_alive, NULL, 1);
  for (round = 0; round < 100; round++) {
    w[0] = (struct worker) { .z = z, .index = round % 64, .all_alive = &all_alive };
    CHECK (pthread_create (&t[0], NULL, worker, &w[0]) == 0);
    pthread_join (t[0], NULL);
  }
  CHECK (zram_thread_ctx_live () == base);
  pthread_barrier_destroy (&all_alive);
  zram_destroy (z);
}

/* --- 2. out of memory ---------------------------------------------------- */

#define MAX_HOGS (1u << 20)

static void **hogs;             /* mmapped before the limit is set */
static size_t *hog_len;         /* 0: a malloc block, else an mmap length */
static size_t nr_hogs;

/* Take every byte the address-space limit leaves: mappings from 64 MiB
 * down to a page, then malloc blocks from 64 KiB down to 16 bytes.
 */
static void
take_all_memory (void)
{
  size_t len;
  void *p;

  for (len = 64u << 20; len >= PAGE; len /= 2)
    while (nr_hogs < MAX_HOGS &&
           (p = mmap (NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) != MAP_FAILED) {
      hogs[nr_hogs] = p;
      hog_len[nr_hogs++] = len;
    }
  for (len = 64u << 10; len >= 16; len /= 2)
    while (nr_hogs < MAX_HOGS && (p = malloc (len)) != NULL) {
      hogs[nr_hogs] = p;
      hog_len[nr_hogs++] = 0;
    }
  CHECK (nr_hogs < MAX_HOGS);
}

static void
give_back_memory (void)
{
  while (nr_hogs > 0) {
    nr_hogs--;
    if (hog_len[nr_hogs])
      munmap (hogs[nr_hogs], hog_len[nr_hogs]);
    else
      free (hogs[nr_hogs]);
  }
}

struct oom {
  struct zram *z;
  pthread_barrier_t step;
  int write_errno;              /* of the write while memory was gone */
  uint64_t failed_writes;       /* stats read on the same thread then */
  int trim_r, trim_errno;       /* trim of pages 1-2 while memory was gone */
  int zero_r, zero_errno;       /* zero of page 3 and part of page 4 */
  uint64_t notify_free;         /* pages freed by those two */
  int write_after;              /* 0: the write after memory came back */
  int read_after;
  int same_data;
};

/* A thread that does nothing (and allocates nothing) before memory is
 * gone, so that its first request is the one that needs a context.
 */
static void *
oom_thread (void *arg)
{
  struct oom *o = arg;
  unsigned char page[PAGE], back[PAGE];
  struct zram_stats st;

  fill (page, 99);
  pthread_barrier_wait (&o->step);      /* memory is gone */
  errno = 0;
  o->write_errno = zram_write (o->z, page, PAGE, 0) == -1 ? errno : 0;
  zram_get_stats (o->z, &st);
  o->failed_writes = st.failed_writes;
  /* Freeing needs no memory, not even this thread's first context: the
   * whole pages go, only the partial end of the zero fails.
   */
  errno = 0;
  o->trim_r = zram_trim (o->z, 2 * PAGE, PAGE);
  o->trim_errno = errno;
  errno = 0;
  o->zero_r = zram_discard (o->z, PAGE + 100, 3 * PAGE);
  o->zero_errno = errno;
  zram_get_stats (o->z, &st);
  o->notify_free = st.notify_free;
  pthread_barrier_wait (&o->step);      /* memory is back */
  pthread_barrier_wait (&o->step);
  o->write_after = zram_write (o->z, page, PAGE, 0);
  o->read_after = zram_read (o->z, back, PAGE, 0);
  o->same_data = memcmp (page, back, PAGE) == 0;
  return NULL;
}

static void *
idle_thread (void *arg)
{
  pthread_barrier_t *together = arg;

  /* Alive at the same time, so that each leaves a stack of its own. */
  if (together)
    pthread_barrier_wait (together);
  return NULL;
}

/* Threads that hold a context (and so an RCU registration) meanwhile. */
#define NR_HOLDERS 16

static void *
holder_thread (void *arg)
{
  pthread_barrier_t *release = arg;

  CHECK (zram_thread_ctx_get () != NULL);
  pthread_barrier_wait (release);       /* registered */
  pthread_barrier_wait (release);       /* the test is over */
  return NULL;
}

/* Runs in the child.  Returns normally only if every check passed.
 * With holders, NR_HOLDERS threads keep contexts meanwhile: their malloc
 * arenas (reserved address space) leave malloc room that the exhaustion
 * of address space does not take, so the thread under test gets its
 * context's memory and fails later, at the registration probe.
 */
static void
oom_child (bool holders)
{
  char sock[] = "/tmp/test-thread-ctx.XXXXXX", err[256];
  struct zctl_server *srv;
  struct rlimit rl;
  struct oom o = { 0 };
  pthread_t t, idle[3], holder[NR_HOLDERS];
  pthread_barrier_t idle_together;
  unsigned live_before;
  pthread_barrier_t release;
  unsigned long vm_pages;
  FILE *fp;
  int start_r = -1, start_errno = ENOMEM, i;

  hogs = mmap (NULL, MAX_HOGS * (sizeof *hogs + sizeof *hog_len),
               PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK (hogs != MAP_FAILED);
  hog_len = (size_t *) (hogs + MAX_HOGS);

  o.z = make_device (1024 * PAGE);
  {
    unsigned char data[4 * PAGE];

    /* Pages 1-4 hold data for the freeing below (page 0 stays empty). */
    for (i = 0; i < 4; i++)
      fill (data + i * PAGE, 10 + i);
    CHECK (zram_write (o.z, data, sizeof data, PAGE) == 0);
  }
  CHECK (mkdtemp (sock) != NULL);
  strcat (sock, "/ctl");
  srv = zctl_server_bind (sock, o.z, NULL, err, sizeof err);
  CHECK (srv != NULL);
  pthread_barrier_init (&o.step, NULL, 2);
  pthread_barrier_init (&release, NULL, NR_HOLDERS + 1);
  live_before = zram_thread_ctx_live ();   /* this thread's, made above */
  if (holders) {
    for (i = 0; i < NR_HOLDERS; i++)
      CHECK (pthread_create (&holder[i], NULL, holder_thread, &release) == 0);
    pthread_barrier_wait (&release);
    CHECK (zram_thread_ctx_live () == live_before + NR_HOLDERS);
  }
  CHECK (pthread_create (&t, NULL, oom_thread, &o) == 0);
  /* A joined thread leaves its stack in glibc's cache, so that the three
   * control threads below can start with memory gone and fail only for
   * their contexts.
   */
  pthread_barrier_init (&idle_together, NULL, 3);
  for (i = 0; i < 3; i++)
    CHECK (pthread_create (&idle[i], NULL, idle_thread, &idle_together) == 0);
  for (i = 0; i < 3; i++)
    pthread_join (idle[i], NULL);
  pthread_barrier_destroy (&idle_together);

  /* Limit the address space to what is in use, then take what is left. */
  fp = fopen ("/proc/self/statm", "r");
  CHECK (fp != NULL && fscanf (fp, "%lu", &vm_pages) == 1);
  fclose (fp);
  CHECK (getrlimit (RLIMIT_AS, &rl) == 0);
  rl.rlim_cur = (rlim_t) vm_pages * sysconf (_SC_PAGESIZE) + (8u << 20);
  CHECK (setrlimit (RLIMIT_AS, &rl) == 0);
  take_all_memory ();

  pthread_barrier_wait (&o.step);
  if (!holders) {
    start_r = zctl_server_start (srv);
    start_errno = errno;
  }
  pthread_barrier_wait (&o.step);
  give_back_memory ();
  rl.rlim_cur = rl.rlim_max;
  CHECK (setrlimit (RLIMIT_AS, &rl) == 0);
  pthread_barrier_wait (&o.step);
  pthread_join (t, NULL);

  printf ("  out of memory%s: write -> %s, failed_writes %llu, control thread "
          "start -> %d (%s); memory back: write %d, read %d, data %s\n",
          holders ? " (malloc has room, mmap none)" : "",
          strerror (o.write_errno), (unsigned long long) o.failed_writes,
          start_r, strerror (start_errno), o.write_after, o.read_after,
          o.same_data ? "intact" : "WRONG");
  CHECK (o.write_errno == ENOMEM);
  CHECK (o.failed_writes >= 1);
  printf ("  out of memory, no context: trim -> %d (%s), zero with a partial "
          "end -> %d (%s), notify_free %llu\n", o.trim_r,
          strerror (o.trim_errno), o.zero_r, strerror (o.zero_errno),
          (unsigned long long) o.notify_free);
  CHECK (o.trim_r == 0);
  CHECK (o.zero_r == -1 && o.zero_errno == ENOMEM);
  CHECK (o.notify_free == 3);
  CHECK (start_r == -1 && start_errno == ENOMEM);
  CHECK (o.write_after == 0 && o.read_after == 0 && o.same_data);

  /* And with memory back, the control thread starts. */
  zctl_server_stop (srv);
  srv = zctl_server_bind (sock, o.z, NULL, err, sizeof err);
  CHECK (srv != NULL);
  CHECK (zctl_server_start (srv) == 0);
  zctl_server_stop (srv);
  *strrchr (sock, '/') = '\0';
  rmdir (sock);
  if (holders) {
    pthread_barrier_wait (&release);
    for (i = 0; i < NR_HOLDERS; i++)
      pthread_join (holder[i], NULL);
  }
  pthread_barrier_destroy (&release);
  pthread_barrier_destroy (&o.step);
  zram_destroy (o.z);
}

static void __attribute__ ((unused))
test_out_of_memory (bool holders)
{
  pid_t pid;
  int status;

  fflush (stdout);
  pid = fork ();
  CHECK (pid != -1);
  if (pid == 0) {
    oom_child (holders);
    fflush (stdout);
    _exit (0);
  }
  CHECK (waitpid (pid, &status, 0) == pid);
  if (WIFSIGNALED (status))
    fprintf (stderr, "test-thread-ctx: the out-of-memory child was killed "
             "by signal %d (an abort instead of ENOMEM?)\n", WTERMSIG (status));
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

static void __attribute__ ((unused))
test_presize_small (void)
{
  pid_t pid;
  int status;

  fflush (stdout);
  pid = fork ();
  CHECK (pid != -1);
  if (pid == 0) {
    unsigned long long vm_kb = 0;
    char line[128];
    struct rlimit rl;
    FILE *f = fopen ("/proc/self/status", "r");
    int r;

    while (f && fgets (line, sizeof line, f))
      if (sscanf (line, "VmSize: %llu kB", &vm_kb) == 1)
        break;
    if (f)
      fclose (f);
    if (vm_kb == 0 || getrlimit (RLIMIT_AS, &rl) == -1)
      _exit (0);                /* cannot tell: nothing to check */
    rl.rlim_cur = (vm_kb + 48 * 1024) * 1024;
    if (setrlimit (RLIMIT_AS, &rl) == -1)
      _exit (0);
    r = zram_thread_ctx_presize (64);
    printf ("test-thread-ctx: presize of 64 with 48 MiB of address space to "
            "spare: %s\n", r == 0 ? "done" : strerror (errno));
    fflush (stdout);
    _exit (r == 0 ? 0 : 1);
  }
  CHECK (waitpid (pid, &status, 0) == pid);
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

int
main (void)
{
#ifdef UNDER_SANITIZER
  printf ("test-thread-ctx: out-of-memory parts skipped: the sanitizer's "
          "allocator does not run under an address-space limit\n");
#else
  test_out_of_memory (false);
  test_out_of_memory (true);
  test_presize_small ();
#endif
  test_per_thread ();
  printf ("test-thread-ctx: ok\n");
  return 0;
}
