/* nbdkit-zram: parsing sizes (see include/zram/size.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>

#include "zram/size.h"

int
zram_parse_size (const char *str, uint64_t *bytes)
{
  static const char units[] = "KMGTPE";
  uint64_t v = 0;
  unsigned shift = 0, i;
  const char *p = str;

  if (*p < '0' || *p > '9') {
    errno = EINVAL;
    return -1;
  }
  for (; *p >= '0' && *p <= '9'; p++) {
    unsigned d = *p - '0';

    if (v > (UINT64_MAX - d) / 10) {
      errno = ERANGE;
      return -1;
    }
    v = v * 10 + d;
  }
  for (i = 0; units[i]; i++)
    if ((*p & ~0x20) == units[i]) {
      shift = 10 * (i + 1);
      p++;
      break;
    }
  if (shift > 0 && (p[0] == 'i' || p[0] == 'I') && (p[1] == 'B' || p[1] == 'b'))
    p += 2;
  else if (*p == 'B' || *p == 'b')
    p++;
  if (*p != '\0') {
    errno = EINVAL;
    return -1;
  }
  if (shift > 0 && v > (UINT64_MAX >> shift)) {
    errno = ERANGE;
    return -1;
  }
  *bytes = v << shift;
  return 0;
}
