/* nbdkit-zram: the plugin's dict= parameter, a dictionary file.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 *   dict=PATH     a dictionary for the primary algorithm (Linux zram's
 *                 algorithm_params ... dict=PATH): raw bytes typical of
 *                 the data, or a zstd dictionary made by 'zstd --train';
 *                 1 byte .. ZCOMP_DICT_MAX (1 MiB)
 *
 * The file is read whole when the parameter is given (before the server
 * forks or changes directory), so a missing, empty, oversized or
 * unreadable file stops the start with a message saying which.  Every
 * function reports its own failures with nbdkit_error.  Call them from
 * nbdkit's main thread.
 */
#ifndef ZRAM_PLUGIN_DICT_FILE_H
#define ZRAM_PLUGIN_DICT_FILE_H

#include <stddef.h>

#include "zram/zcomp.h"

/* .config: 1 if key is dict (handled), 0 if not, -1 if the file is bad. */
extern int dict_file_config (const char *key, const char *value);

/* The bytes read (NULL if dict= was not given) and their length. */
extern const void *dict_file_bytes (size_t *len);

/* .config_complete: check that the algorithm (at level, 0 = default)
 * accepts the dictionary.  0, or -1 (reported).
 */
extern int dict_file_complete (enum zcomp_algo algo, int level);

/* Free the bytes (.unload). */
extern void dict_file_release (void);

#define DICT_FILE_HELP \
  "dict=PATH                Dictionary for the algorithm (a file of up to\n" \
  "                         1M, e.g. made by 'zstd --train')."

#endif /* ZRAM_PLUGIN_DICT_FILE_H */
