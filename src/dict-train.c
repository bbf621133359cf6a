/* nbdkit-zram: training dictionaries from the device's own pages (see
 * zram_dict_train in include/zram/zram.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A dictionary's life in a state (struct meta_dict, src/zram-impl.h):
 *
 *   free ──publish──> current ──next publish──> retired ──no page uses it──> free
 *         (cur_dict = i)         (cur_dict = j)            (freed by a later call)
 *
 * Writers read cur_dict inside their read-side section and count their
 * slot (objects) when they install it, inside the same section.  So once
 * a grace period has passed since an index was retired, no writer still
 * holds it and objects only falls; at 0 no slot names it, and after one
 * more grace period no reader that copied its pointer (a written-back
 * page's fetch) is left either: then it is freed.  Only this file frees a
 * live state's dictionaries, one training at a time (dict_lock), under
 * ctl_lock, which keeps a reset away and excludes the statistics readers
 * that have no read-side section.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zram/zcomp-dict.h"
#include "zram-impl.h"

/* One page in HELD_EVERY of those sampled is held out for the A/B. */
#define HELD_EVERY 5

/* The smallest dictionary worth training. */
#define DICT_TRAIN_MIN_BYTES 1024

struct sample_buf {
  unsigned char *train, *held;    /* pages laid end to end */
  size_t *sizes;                  /* ZRAM_PAGE_SIZE each, for the trainer */
  unsigned n_train, n_held;       /* wanted */
  unsigned got_train, got_held;
};

/* After a grace period, tell ThreadSanitizer the readers are done. */
static void
grace_period (struct zram *z)
{
  urcu_bp_synchronize_rcu ();
  rcu_grace_period_done (&z->rcu_sync);
}

/* Free the retired dictionaries of the live state that no page uses any
 * more; add their number to *freed.  Called outside any read-side
 * section, holding dict_lock.
 */
static void
reclaim (struct zram *z, unsigned *freed)
{
  struct zcomp_dict *dead[2 * ZRAM_MAX_DICT];
  struct zram_meta *m;
  unsigned i, n = 0, indices = 0, cur;
  bool retired = false;

  pthread_mutex_lock (&z->ctl_lock);
  m = z->meta;
  if (m == NULL)
    goto out;
  cur = m->cur_dict;          /* changed only by publish, under ctl_lock */
  for (i = 1; i <= ZRAM_MAX_DICT; i++)
    retired |= i != cur && m->dicts[i].dict != NULL;
  if (!retired)
    goto out;
  /* Writers that read a retired index before it was retired have
   * installed (and counted) their slots once this returns.
   */
  grace_period (z);
  for (i = 1; i <= ZRAM_MAX_DICT; i++) {
    if (i == cur || m->dicts[i].dict == NULL ||
        __atomic_load_n (&m->dicts[i].objects, __ATOMIC_ACQUIRE) != 0)
      continue;
    indices++;
    dead[n++] = m->dicts[i].dict;
    dead[n++] = m->dicts[i].group_dict;  /* NULL is accepted */
    __atomic_store_n (&m->dicts[i].dict, NULL, __ATOMIC_RELEASE);
    __atomic_store_n (&m->dicts[i].group_dict, NULL, __ATOMIC_RELEASE);
  }
  /* Readers that copied a pointer while a slot still named it are done. */
  if (n > 0)
    grace_period (z);
 out:
  pthread_mutex_unlock (&z->ctl_lock);
  for (i = 0; i < n; i++)
    zcomp_dict_destroy (dead[i]);
  *freed += indices;
}

/* True if m has an index free for a new dictionary. */
static bool
has_free_index (const struct zram_meta *m)
{
  for (unsigned i = 1; i <= ZRAM_MAX_DICT; i++)
    if (__atomic_load_n (&m->dicts[i].dict, __ATOMIC_ACQUIRE) == NULL)
      return true;
  return false;
}

/* True if the slot holds an object in the pool (what a dictionary is
 * made from).  Pages stored raw count too: a dictionary may be what
 * makes them compress.  Written-back pages are cold and would cost store
 * reads.  Lock-free when peeking, exact under the lock.
 */
static bool
slot_samplable (const struct zram_slot *slot)
{
  return slot_get_handle (slot) != 0 && !slot_test_flag (slot, SLOT_SAME) &&
         !slot_test_flag (slot, SLOT_WB);
}

/* Read slot i's page into the next free place of sb, if it still holds a
 * compressed object.  0, or -1 with errno EIO or ENOMEM.
 */
static int
take_sample (struct zram_meta *m, struct zram_thread_ctx *ctx, uint64_t i,
             struct sample_buf *sb)
{
  struct zram_slot *slot = slot_at (&m->table, i);
  unsigned taken = sb->got_train + sb->got_held;
  bool held = (taken % HELD_EVERY == HELD_EVERY - 1 && sb->got_held < sb->n_held) ||
              sb->got_train == sb->n_train;
  unsigned char *dst = held ? sb->held + (size_t) sb->got_held * ZRAM_PAGE_SIZE
                            : sb->train + (size_t) sb->got_train * ZRAM_PAGE_SIZE;
  int r = 0;

  slot_lock (slot);
  /* Not an access: the slot keeps its time and IDLE (plain unlock). */
  if (slot_samplable (slot)) {
    r = zram_read_locked (m, ctx, slot, dst);
    if (r == 0) {
      if (held)
        sb->got_held++;
      else
        sb->sizes[sb->got_train++] = ZRAM_PAGE_SIZE;
    }
  }
  slot_unlock (slot);
  return r;
}

/* Take evenly spread samples of the live state of generation gen into sb,
 * in batches of read-side sections.  Enters with *m in a section and
 * leaves with none.  0 (sb says how many), 1 if a reset replaced the
 * state, or -1 with errno.
 */
static int
sample (struct zram *z, struct zram_thread_ctx *ctx, struct zram_meta *m,
        uint64_t gen, struct sample_buf *sb)
{
  uint64_t stored, stride, seen = 0, i = 0, batch_end;
  unsigned want = sb->n_train + sb->n_held;

  stored = STAT_GET (m->stats.pages_stored) - STAT_GET (m->stats.same_pages) -
           STAT_GET (m->stats.bd_count);
  /* Counters read apart may not add up exactly: treat nonsense as few. */
  if (stored > m->nr_pages)
    stored = m->nr_pages;
  stride = stored / want > 1 ? stored / want : 1;
  while (i < m->nr_pages && sb->got_train + sb->got_held < want) {
    batch_end = m->nr_pages - i > ZRAM_WALK_BATCH_SLOTS ? i + ZRAM_WALK_BATCH_SLOTS
                                                        : m->nr_pages;
    while ((i = slot_table_next_touched (&m->table, i, batch_end)) < batch_end &&
           sb->got_train + sb->got_held < want) {
      if (slot_samplable (slot_at (&m->table, i)) && seen++ % stride == 0 &&
          take_sample (m, ctx, i, sb) == -1) {
        meta_put (z);
        return -1;
      }
      i++;
    }
    i = batch_end;
    if (walks_stopped (z)) {
      meta_put (z);
      errno = ECANCELED;
      return -1;
    }
    if (!meta_renew (z, ctx, &m, gen))
      return 1;
  }
  meta_put (z);
  return 0;
}

/* Measure d against what new writes use now, on the held-out pages, in
 * the live state of generation gen.  0, 1 if a reset replaced the state,
 * or -1 with errno.
 */
static int
measure (struct zram *z, struct zram_thread_ctx *ctx, uint64_t gen,
         const struct zcomp_dict *d, const struct sample_buf *sb,
         struct zram_dict_train_result *res)
{
  struct zram_meta *m = meta_get (z, ctx);
  const struct zcomp_dict *cur;
  uint64_t plain, with_cur;
  int r;

  if (m == NULL)
    return 1;
  if (m->gen != gen) {
    meta_put (z);
    return 1;
  }
  /* The current dictionary stays while we are in the section: only a
   * training frees one, and we hold dict_lock.
   */
  cur = meta_dict (m, __atomic_load_n (&m->cur_dict, __ATOMIC_ACQUIRE));
  r = zcomp_dict_ab (m->comp, d, ctx->codec, sb->held, sb->got_held,
                     m->huge_class_size, &plain, &res->bytes_dict);
  res->bytes_now = plain;
  if (r == 0 && cur != NULL) {
    r = zcomp_dict_ab (m->comp, cur, ctx->codec, sb->held, sb->got_held,
                       m->huge_class_size, &plain, &with_cur);
    res->bytes_now = with_cur;
  }
  meta_put (z);
  return r;
}

/* Make d the dictionary of new writes in the live state of generation
 * gen.  0 (published, res->version set), 1 if a reset replaced the state
 * (d not taken), 2 if no index is free (d not taken).
 */
static int
publish (struct zram *z, uint64_t gen, struct zcomp_dict *d,
         struct zram_dict_train_result *res)
{
  struct zram_meta *m;
  unsigned i;
  int r = 2;

  pthread_mutex_lock (&z->ctl_lock);
  m = z->meta;
  if (m == NULL || m->gen != gen) {
    r = 1;
    goto out;
  }
  for (i = 1; i <= ZRAM_MAX_DICT; i++) {
    if (m->dicts[i].dict != NULL)
      continue;
    /* A freed index is named by no slot, and no writer holds it. */
    assert (__atomic_load_n (&m->dicts[i].objects, __ATOMIC_RELAXED) == 0);
    m->dicts[i].version = res->version = ++z->dict_versions;
    m->dicts[i].group_dict = zram_meta_group_dict (m, d);
    m->dicts[i].group_trials = 0;
    m->dicts[i].group_plain = m->dicts[i].group_with = 0;
    m->dicts[i].group_use = false;
    /* The dictionary is complete before its index can be seen: writers
     * load cur_dict with acquire, then the pointer (meta_dict).
     */
    __atomic_store_n (&m->dicts[i].dict, d, __ATOMIC_RELEASE);
    __atomic_store_n (&m->cur_dict, i, __ATOMIC_RELEASE);
    r = 0;
    break;
  }
 out:
  pthread_mutex_unlock (&z->ctl_lock);
  return r;
}

static int
train_locked (struct zram *z, size_t dict_bytes, unsigned samples,
              unsigned gain_pm, struct zram_dict_train_result *res)
{
  struct zram_thread_ctx *ctx = zram_thread_ctx_get ();
  struct sample_buf sb = { .n_train = samples, .n_held = samples / 4 };
  struct zcomp *comp = NULL;
  struct zcomp_dict *d = NULL;
  unsigned char *dict_buf = NULL;
  struct zram_meta *m;
  size_t sample_bytes;
  uint64_t gen;
  long len;
  int r = -1;

  if (ctx == NULL)
    return -1;                /* ENOMEM */
  reclaim (z, &res->freed);
  m = meta_get (z, ctx);
  if (m == NULL)
    return -1;                /* EIO */
  gen = m->gen;
  if (!has_free_index (m)) {
    meta_put (z);
    res->outcome = ZRAM_DICT_FULL;
    return 0;
  }
  comp = zcomp_create (zcomp_get_algo (m->comp), zcomp_get_level (m->comp));
  /* The samples (MiBs) in a mapping of their own, so that they go back
   * to the system at once rather than stay in the heap.
   */
  sample_bytes = (size_t) (sb.n_train + sb.n_held) * ZRAM_PAGE_SIZE;
  sb.train = mmap (NULL, sample_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (sb.train == MAP_FAILED)
    sb.train = NULL;
  else
    sb.held = sb.train + (size_t) sb.n_train * ZRAM_PAGE_SIZE;
  sb.sizes = malloc (sb.n_train * sizeof *sb.sizes);
  dict_buf = malloc (dict_bytes);
  if (!comp || !sb.train || !sb.sizes || !dict_buf) {
    meta_put (z);
    errno = ENOMEM;
    goto out;
  }
  r = sample (z, ctx, m, gen, &sb);
  if (r != 0)
    goto out_raced;
  res->sampled = sb.got_train;
  res->held_out = sb.got_held;
  if (sb.got_train < ZCOMP_DICT_MIN_SAMPLES || sb.got_held == 0) {
    res->outcome = ZRAM_DICT_TOO_FEW;
    goto out;
  }
  len = zcomp_dict_train (dict_buf, dict_bytes, sb.train, sb.sizes,
                          sb.got_train);

  if (len < 0) {
    if (errno != EINVAL)
      goto out_err;
    res->outcome = ZRAM_DICT_TOO_FEW;   /* nothing worth keeping */
    r = 0;
    goto out;
  }
  res->dict_size = len;
  d = zcomp_dict_create (comp, dict_buf, len);
  if (d == NULL)
    goto out_err;
  __atomic_add_fetch (&z->dict_trainings, 1, __ATOMIC_RELAXED);
  r = measure (z, ctx, gen, d, &sb, res);
  if (r != 0)
    goto out_raced;
  /* Publish only a gain of at least gain_pm per mille of bytes_now. */
  if (res->bytes_dict >= res->bytes_now ||
      (res->bytes_now - res->bytes_dict) * 1000 < (uint64_t) gain_pm * res->bytes_now) {
    __atomic_add_fetch (&z->dict_rejected, 1, __ATOMIC_RELAXED);
    res->outcome = ZRAM_DICT_REJECTED;
    goto out;
  }
  r = publish (z, gen, d, res);
  if (r == 0) {
    d = NULL;                 /* the state's now */
    res->outcome = ZRAM_DICT_PUBLISHED;
  }
  else
    res->outcome = r == 1 ? ZRAM_DICT_RACED : ZRAM_DICT_FULL;
  r = 0;
  goto out;

 out_raced:
  if (r == 1) {
    res->outcome = ZRAM_DICT_RACED;
    r = 0;
  }
  goto out;
 out_err:
  r = -1;
 out:
  {
    int e = errno;
    zcomp_dict_destroy (d);
    zcomp_destroy (comp);
    free (dict_buf);
    free (sb.sizes);
    if (sb.train)
      munmap (sb.train, sample_bytes);
#ifdef __GLIBC__
    /* What the trainer, the rejected dictionary and the A/B's codec
     * contexts freed (MiBs with zstd) would stay resident in this
     * thread's malloc arena: give the free pages back (once a training).
     */
    malloc_trim (0);
#endif
    errno = e;
  }
  return r;
}

int
zram_dict_train (struct zram *z, const struct zram_dict_train_req *req,
                 struct zram_dict_train_result *res)
{
  size_t dict_bytes = req->dict_bytes ? req->dict_bytes
                                      : ZRAM_DICT_TRAIN_DEFAULT_BYTES;
  unsigned samples = req->samples ? req->samples
                                  : ZRAM_DICT_TRAIN_DEFAULT_SAMPLES;
  int r, e;

  memset (res, 0, sizeof *res);
  if (dict_bytes < DICT_TRAIN_MIN_BYTES || dict_bytes > ZCOMP_DICT_MAX ||
      samples < ZCOMP_DICT_MIN_SAMPLES || samples > ZRAM_DICT_TRAIN_MAX_SAMPLES ||
      req->gain_pm > 1000) {
    errno = EINVAL;
    return -1;
  }
  if (req->nowait) {
    if (pthread_mutex_trylock (&z->dict_lock) != 0) {
      errno = EBUSY;
      return -1;
    }
  }
  else
    pthread_mutex_lock (&z->dict_lock);
  r = train_locked (z, dict_bytes, samples, req->gain_pm, res);
  e = errno;
  pthread_mutex_unlock (&z->dict_lock);
  errno = e;
  return r;
}
