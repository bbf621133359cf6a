/* libFuzzer target for nbdzramctl's reply reader and printers: the input
 * is what a server (any process listening at the socket path) sends.
 * Checks the properties of zctl-client-check.h and aborts if one fails.
 * Built and run by tests/test-zctl-client-fuzz.sh with clang
 * -fsanitize=fuzzer.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include "zctl-client-check.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *bad = zctl_client_check (data, size);

  if (bad) {
    fprintf (stderr, "fuzz-zctl-client: %s\n", bad);
    abort ();
  }
  return 0;
}
