/* nbdkit-zram: the one way sizes are written (parameters, CLI, control).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * A size is decimal digits, optionally followed by a unit K, M, G, T, P or
 * E (either case; powers of 1024, as zramctl and nbdkit read them), which
 * may be followed by "B" or "iB"; a bare "B" means bytes.  So "4096",
 * "4k", "4G", "4GB" and "4GiB" are all accepted, and "1.5G", "0x10",
 * "-1", " 4G", "4 G" and "4Gi" are all refused.  The plugin's size= and
 * mem_limit=, the control protocol's mem_limit and nbdzramctl's mem-limit
 * all parse with this function and report errors with ZRAM_SIZE_SYNTAX,
 * so a size that works in one place works in all of them.
 */
#ifndef ZRAM_SIZE_H
#define ZRAM_SIZE_H

#include <stdint.h>

/* What an error message should say a size looks like. */
#define ZRAM_SIZE_SYNTAX \
  "a whole number of bytes, optionally with a unit K, M, G, T, P or E " \
  "(powers of 1024, optionally followed by B or iB), e.g. 4096, 512M or 4GiB"

/* Parse str.  Returns 0 and sets *bytes, or -1 with errno EINVAL (not a
 * size) or ERANGE (more than 2^64 - 1 bytes); *bytes is then unchanged.
 */
extern int zram_parse_size (const char *str, uint64_t *bytes);

#endif /* ZRAM_SIZE_H */
