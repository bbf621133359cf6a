/* nbdzramctl: serving the metrics over HTTP (libmicrohttpd).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * "nbdzramctl metrics --listen ADDR:PORT" answers GET /metrics with the
 * Prometheus exposition, rendered afresh for every scrape by a callback,
 * so a scraper always sees the device as it is.  The HTTP protocol is
 * libmicrohttpd's; this module only routes and renders.
 */
#ifndef NBDZRAMCTL_METRICS_HTTP_H
#define NBDZRAMCTL_METRICS_HTTP_H

#include <stdio.h>

/* Write the exposition to out and return 0, or return -1 after writing
 * the reason to err (the scrape then gets 503 with that text).
 */
typedef int (*metrics_render_fn) (FILE *out, FILE *err, void *opaque);

/* Parse "HOST:PORT", "[IPV6]:PORT" or "PORT" (host 127.0.0.1), serve
 * until SIGINT or SIGTERM, then return 0.  Returns -1 after printing a
 * message to stderr (bad address, port in use, no libmicrohttpd support).
 * Blocks SIGINT and SIGTERM in the calling thread.
 */
extern int metrics_http_serve (const char *listen, metrics_render_fn render,
                               void *opaque);

#endif /* NBDZRAMCTL_METRICS_HTTP_H */
