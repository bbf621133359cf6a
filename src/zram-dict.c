/* nbdkit-zram: a state's dictionaries (see struct meta_dict in
 * src/zram-impl.h and include/zram/zcomp-dict.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A state holds up to ZRAM_MAX_DICT dictionaries of its primary algorithm.
 * cur_dict names the one new compressions use (0: none); a slot's
 * SLOT_DICT bits name the one its object was compressed with, and each
 * dictionary counts the slots that name it.  The write path pays one
 * load and one predictable branch when there is no dictionary.
 */
#include <errno.h>

#include "zram-impl.h"

int
zram_meta_dict_init (struct zram_meta *m, const void *bytes, size_t len,
                     uint64_t version)
{
  struct zcomp_dict *d = zcomp_dict_create (m->comp, bytes, len);

  if (d == NULL)
    return -1;
  m->dicts[1].group_dict = zram_meta_group_dict (m, d);
  m->dicts[1].version = version;
  /* Nobody can see m yet; its publication (a release store of z->meta)
   * carries these stores to the readers.
   */
  m->dicts[1].dict = d;
  m->cur_dict = 1;
  return 0;
}

struct zcomp_dict *
zram_meta_group_dict (const struct zram_meta *m, const struct zcomp_dict *d)
{
  int saved_errno = errno;
  struct zcomp_dict *g;

  if (m->group_comp == NULL)
    return NULL;
  /* Without it groups simply compress without a dictionary. */
  g = zcomp_dict_remake (d, m->group_comp, ZRAM_GROUP_DICT_MAX);
  errno = saved_errno;
  return g;
}

void
zram_meta_dict_destroy (struct zram_meta *m)
{
  for (unsigned i = 1; i <= ZRAM_MAX_DICT; i++) {
    zcomp_dict_destroy (m->dicts[i].dict);
    zcomp_dict_destroy (m->dicts[i].group_dict);
    m->dicts[i].dict = NULL;
    m->dicts[i].group_dict = NULL;
  }
  m->cur_dict = 0;
}

void
zram_meta_dict_stats (struct zram_meta *m, struct zram_stats *s)
{
  unsigned cur = __atomic_load_n (&m->cur_dict, __ATOMIC_ACQUIRE);
  const struct zcomp_dict *d, *g;

  s->dict_version = 0;
  s->dict_bytes = 0;
  s->dict_pages = 0;
  s->dict_mem_bytes = 0;
  for (unsigned i = 1; i <= ZRAM_MAX_DICT; i++) {
    d = __atomic_load_n (&m->dicts[i].dict, __ATOMIC_ACQUIRE);
    if (d == NULL)
      continue;
    s->dict_pages += __atomic_load_n (&m->dicts[i].objects, __ATOMIC_RELAXED);
    s->dict_mem_bytes += zcomp_dict_mem_bytes (d);
    /* Its copy for the groups' compressor is freed with it (see
     * struct meta_dict), so it is read under the same protection.
     */
    g = __atomic_load_n (&m->dicts[i].group_dict, __ATOMIC_ACQUIRE);
    if (g != NULL)
      s->dict_mem_bytes += zcomp_dict_mem_bytes (g);
    if (i == cur) {
      s->dict_version = m->dicts[i].version;
      s->dict_bytes = zcomp_dict_size (d);
    }
  }
}
