/* nbdkit-zram: the plugin's dictionary parameters: a dictionary file, and
 * the policy that trains dictionaries (include/zram/policy-dict.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   dict=PATH     a dictionary for the primary algorithm (Linux zram's
 *                 algorithm_params ... dict=PATH): raw bytes typical of
 *                 the data, or a zstd dictionary made by 'zstd --train';
 *                 1 byte .. ZCOMP_DICT_MAX (1 MiB)
 *   dict_train=on|off         train dictionaries from the device's pages
 *                             in the background (default off)
 *   dict_train_gain=PERCENT   publish one only if it stores the held-out
 *                             pages this much smaller (2)
 *   dict_train_period=SECONDS between tries (300)
 *   dict_train_min_pages=N    pages stored before a try (4096)
 *
 * The file is read whole when the parameter is given (before the server
 * forks or changes directory), so a missing, empty, oversized or
 * unreadable file stops the start with a message saying which.  Every
 * function reports its own failures with nbdkit_error.  Call them from
 * nbdkit's main thread.
 */
#ifndef ZRAM_PLUGIN_DICT_PARAMS_H
#define ZRAM_PLUGIN_DICT_PARAMS_H

#include <stddef.h>

#include "zram/zcomp.h"

struct zram;
struct zram_bg;

/* .config: 1 if key is one of the parameters above (handled), 0 if not,
 * -1 if its value (or the file) is bad.
 */
extern int dict_file_config (const char *key, const char *value);

/* The bytes read (NULL if dict= was not given) and their length. */
extern const void *dict_file_bytes (size_t *len);

/* .config_complete: check that the algorithm (at level, 0 = default)
 * accepts the dictionary.  0, or -1 (reported).
 */
extern int dict_file_complete (enum zcomp_algo algo, int level);

/* Add the training policy to bg if dict_train=on.  0, or -1 (reported). */
extern int dict_policy_add (struct zram_bg *bg, struct zram *zram);

/* Free the bytes (.unload). */
extern void dict_file_release (void);

#define DICT_FILE_HELP \
  "dict=PATH                Dictionary for the algorithm (a file of up to\n" \
  "                         1M, e.g. made by 'zstd --train').\n" \
  "dict_train=on|off        Train dictionaries from the device's pages and\n" \
  "                         use one when it gains (default off).\n" \
  "dict_train_gain=PERCENT  Least gain on held-out pages to use one (2).\n" \
  "dict_train_period=SECONDS Between tries (300).\n" \
  "dict_train_min_pages=N   Pages stored before a try (4096)."

#endif /* ZRAM_PLUGIN_DICT_PARAMS_H */
