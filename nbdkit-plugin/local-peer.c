/* nbdkit-zram: which clients the plugin serves by default (see local-peer.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#ifdef __linux__
#include <linux/vm_sockets.h>
#endif

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "local-peer.h"

static bool
is_local (const struct sockaddr_storage *ss)
{
  const struct sockaddr_in *in4 = (const struct sockaddr_in *) ss;
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) ss;

  switch (ss->ss_family) {
  case AF_UNIX:
    return true;
#ifdef AF_VSOCK
  case AF_VSOCK:
    return true;
#endif
  case AF_INET:
    return (ntohl (in4->sin_addr.s_addr) >> 24) == 127;
  case AF_INET6:
    return IN6_IS_ADDR_LOOPBACK (&in6->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr) &&
            in6->sin6_addr.s6_addr[12] == 127);
  default:
    return false;
  }
}

/* "10.200.0.2 port 40312", "vsock cid 3 port 1024", "address family 17". */
static void
describe (const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t size)
{
  char host[NI_MAXHOST], port[NI_MAXSERV];

#ifdef AF_VSOCK
  if (ss->ss_family == AF_VSOCK) {
    const struct sockaddr_vm *vm = (const struct sockaddr_vm *) ss;

    snprintf (buf, size, "vsock cid %u port %u", vm->svm_cid, vm->svm_port);
    return;
  }
#endif
  if ((ss->ss_family == AF_INET || ss->ss_family == AF_INET6) &&
      getnameinfo ((const struct sockaddr *) ss, len, host, sizeof host,
                   port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
    snprintf (buf, size, "%s port %s", host, port);
  else
    snprintf (buf, size, "address family %d", ss->ss_family);
}

int
local_peer_check (bool allow_remote)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char who[NI_MAXHOST + NI_MAXSERV + 32];

  if (allow_remote)
    return 0;
  memset (&ss, 0, sizeof ss);
  if (nbdkit_peer_name ((struct sockaddr *) &ss, &len) == -1) {
    /* nbdkit -s on a pipe: no peer, the client is our own parent. */
    if (errno == ENOTSOCK)
      return 0;
    nbdkit_error ("refusing a client whose address is unknown (%m): only "
                  "local clients are served unless allow-remote=true is "
                  "given");
    return -1;
  }
  if (is_local (&ss))
    return 0;
  describe (&ss, len, who, sizeof who);
  nbdkit_error ("refusing the client at %s: this plugin serves only local "
                "clients (unix socket, vsock, loopback) unless "
                "allow-remote=true is given; the disk is writable and "
                "unauthenticated, so use it with --tls=require or a "
                "firewall", who);
  return -1;
}
