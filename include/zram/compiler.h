/* nbdkit-zram: small compiler helpers shared by every module.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef ZRAM_COMPILER_H
#define ZRAM_COMPILER_H

/* Marks a parameter that an interface requires but this implementation
 * does not need, so -Wextra's unused-parameter warning stays useful.
 */
#define UNUSED __attribute__ ((unused))

#endif /* ZRAM_COMPILER_H */
