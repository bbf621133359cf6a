/* nbdzramctl: serving the metrics over HTTP (see tools/metrics-http.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "metrics-http.h"

/* Scrapers are few; a handful of connections and a short idle timeout
 * keep a stuck client from holding the exporter.
 */
#define HTTP_MAX_CONNECTIONS 16
#define HTTP_TIMEOUT_SECONDS 10

struct server {
  metrics_render_fn render;
  void *opaque;
};

static enum MHD_Result
reply (struct MHD_Connection *conn, unsigned status, const char *type,
       char *body, size_t len)
{
  struct MHD_Response *resp;
  enum MHD_Result r;

  resp = MHD_create_response_from_buffer (len, body, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free (body);
    return MHD_NO;
  }
  MHD_add_response_header (resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  r = MHD_queue_response (conn, status, resp);
  MHD_destroy_response (resp);
  return r;
}

static enum MHD_Result
reply_text (struct MHD_Connection *conn, unsigned status, const char *text)
{
  char *body = strdup (text);

  return body ? reply (conn, status, "text/plain; charset=utf-8", body,
                       strlen (body))
              : MHD_NO;
}

static enum MHD_Result
handle (void *cls, struct MHD_Connection *conn, const char *url,
        const char *method, const char *version, const char *upload,
        size_t *upload_size, void **state)
{
  struct server *srv = cls;
  char *out = NULL, *err = NULL;
  size_t out_len = 0, err_len = 0;
  FILE *outf, *errf;
  int r;

  (void) version;
  (void) upload;
  (void) state;
  if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply_text (conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                       "only GET /metrics is served\n");
  if (*upload_size != 0)
    return reply_text (conn, MHD_HTTP_BAD_REQUEST, "no body expected\n");
  if (strcmp (url, "/metrics") != 0)
    return reply_text (conn, MHD_HTTP_NOT_FOUND,
                       "not found: the metrics are at /metrics\n");

  outf = open_memstream (&out, &out_len);
  errf = open_memstream (&err, &err_len);
  if (outf == NULL || errf == NULL) {
    if (outf)
      fclose (outf);
    if (errf)
      fclose (errf);
    free (out);
    free (err);
    return reply_text (conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  r = srv->render (outf, errf, srv->opaque);
  if (fclose (outf) != 0 || fclose (errf) != 0)
    r = -1;
  if (r == 0) {
    free (err);
    return reply (conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                  out, out_len);
  }
  free (out);
  return reply (conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8", err, err_len);
}

/* Fill *ss from "HOST:PORT", "[IPV6]:PORT" or "PORT". */
static int
parse_listen (const char *listen, struct sockaddr_storage *ss)
{
  char host[64] = "127.0.0.1";
  const char *port = listen, *colon;
  char *end;
  unsigned long p;

  memset (ss, 0, sizeof *ss);
  if (listen[0] == '[') {
    const char *close = strchr (listen, ']');

    if (close == NULL || close[1] != ':' || (size_t) (close - listen - 1) >= sizeof host)
      return -1;
    memcpy (host, listen + 1, close - listen - 1);
    host[close - listen - 1] = '\0';
    port = close + 2;
  }
  else if ((colon = strrchr (listen, ':')) != NULL) {
    if ((size_t) (colon - listen) >= sizeof host)
      return -1;
    memcpy (host, listen, colon - listen);
    host[colon - listen] = '\0';
    port = colon + 1;
  }
  if (*port < '0' || *port > '9')
    return -1;
  errno = 0;
  p = strtoul (port, &end, 10);
  if (errno || *end || p == 0 || p > 65535)
    return -1;

  if (inet_pton (AF_INET, host, &((struct sockaddr_in *) ss)->sin_addr) == 1) {
    ((struct sockaddr_in *) ss)->sin_family = AF_INET;
    ((struct sockaddr_in *) ss)->sin_port = htons (p);
    return 0;
  }
  if (inet_pton (AF_INET6, host, &((struct sockaddr_in6 *) ss)->sin6_addr) == 1) {
    ((struct sockaddr_in6 *) ss)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *) ss)->sin6_port = htons (p);
    return 0;
  }
  return -1;
}

int
metrics_http_serve (const char *listen, metrics_render_fn render, void *opaque)
{
  struct server srv = { render, opaque };
  struct sockaddr_storage ss;
  struct MHD_Daemon *d;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  sigset_t stop;
  int sig;

  if (parse_listen (listen, &ss) == -1) {
    fprintf (stderr, "nbdzramctl: --listen: '%s' is not ADDRESS:PORT "
             "(e.g. 127.0.0.1:9101, [::1]:9101 or 9101 for 127.0.0.1)\n",
             listen);
    return -1;
  }
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;

  /* Block the stop signals before libmicrohttpd starts its thread, so
   * they reach sigwait below and not that thread.
   */
  sigemptyset (&stop);
  sigaddset (&stop, SIGINT);
  sigaddset (&stop, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &stop, NULL);

  d = MHD_start_daemon (flags, 0, NULL, NULL, handle, &srv,
                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                        MHD_OPTION_CONNECTION_LIMIT, (unsigned) HTTP_MAX_CONNECTIONS,
                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) HTTP_TIMEOUT_SECONDS,
                        MHD_OPTION_END);
  if (d == NULL) {
    fprintf (stderr, "nbdzramctl: --listen %s: cannot serve HTTP there "
             "(address in use, or not an address of this machine?)\n", listen);
    return -1;
  }
  fprintf (stderr, "nbdzramctl: serving metrics on http://%s/metrics\n", listen);
  sigwait (&stop, &sig);
  MHD_stop_daemon (d);
  return 0;
}
