/* nbdzramctl: show and control an nbdkit-zram device through its control
 * socket, in the manner of util-linux zramctl.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * It speaks the line protocol of include/zram/zctl.h: one command line,
 * then lines up to "ok" or "error ENAME: message".  It links nothing of the
 * device core.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* struct ucred */
#endif
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "zram/zctl.h"
#include "zctl-client.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* Exit statuses (documented in man/nbdzramctl.pod). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 1,               /* bad command line */
  EXIT_NO_SERVER = 2,           /* no server, or not a control socket */
  EXIT_DENIED = 3,              /* permission denied, or a stranger's server */
  EXIT_REFUSED = 4,             /* the server answered "error ..." */
  EXIT_COMM = 5,                /* connection broke, bad or no reply */
};

/* Seconds to wait for a connection and a whole reply ("reset" waits for
 * connections to close and for requests in flight).
 */
#define REPLY_TIMEOUT 60

static const char *progname = "nbdzramctl";
static const char *socket_path;

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage:\n"
"  %s -s SOCKET [-b] [-n] [--json]         show the device (a table)\n"
"  %s -s SOCKET stats                      raw statistics (key=value)\n"
"  %s -s SOCKET reset [--force] [--algorithm NAME [--level N]]\n"
"  %s -s SOCKET compact\n"
"  %s -s SOCKET mem-limit SIZE             e.g. 512M; 0 = no limit\n"
"\n"
"Options:\n"
"  -s, --socket PATH   the plugin's ctl= socket (or $NBDZRAMCTL_SOCKET)\n"
"  -b, --bytes         print sizes in bytes\n"
"  -n, --noheadings    do not print the table heading\n"
"  -J, --json          JSON output (table and stats)\n"
"  -h, --help          this help\n"
"  -V, --version       print the version\n"
"\n"
"Only a server run by root or by you is trusted.\n",
           progname, progname, progname, progname, progname);
}

/* The socket path as it may be printed. */
static const char *
shown_path (void)
{
  static char buf[4 * 108 + 1];

  return zctl_clean (socket_path, buf, sizeof buf);
}

/* What is at the path, for "it is not a control socket" messages. */
static const char *
kind_of (const struct stat *st)
{
  if (S_ISREG (st->st_mode))
    return "a regular file";
  if (S_ISDIR (st->st_mode))
    return "a directory";
  if (S_ISFIFO (st->st_mode))
    return "a FIFO";
  if (S_ISCHR (st->st_mode) || S_ISBLK (st->st_mode))
    return "a device node";
  return "not a socket";
}

static int
connect_server (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = REPLY_TIMEOUT };
  struct ucred cred;
  socklen_t credlen = sizeof cred;
  struct stat st;
  int fd;

  if (strlen (socket_path) >= sizeof addr.sun_path) {
    fprintf (stderr, "%s: %s: socket path too long\n", progname, shown_path ());
    exit (EXIT_USAGE);
  }
  strcpy (addr.sun_path, socket_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    fprintf (stderr, "%s: socket: %m\n", progname);
    exit (EXIT_COMM);
  }
  /* A connect to a server whose queue is full waits this long too. */
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    int err = errno;

    /* connect says "refused" for anything that is not a socket. */
    if (err == ECONNREFUSED && stat (socket_path, &st) == 0 &&
        !S_ISSOCK (st.st_mode)) {
      fprintf (stderr, "%s: %s: is %s, not a control socket "
               "(give the path of the plugin's ctl= parameter)\n",
               progname, shown_path (), kind_of (&st));
      exit (EXIT_NO_SERVER);
    }
    switch (err) {
    case ENOENT:
      fprintf (stderr, "%s: %s: no such control socket "
               "(is nbdkit running with ctl=%s?)\n",
               progname, shown_path (), shown_path ());
      exit (EXIT_NO_SERVER);
    case ECONNREFUSED:
      fprintf (stderr, "%s: %s: no server is listening "
               "(stale socket of a stopped nbdkit?)\n", progname, shown_path ());
      exit (EXIT_NO_SERVER);
    case EACCES:
    case EPERM:
      fprintf (stderr, "%s: %s: permission denied "
               "(the socket belongs to another user)\n", progname, shown_path ());
      exit (EXIT_DENIED);
    case EAGAIN:
    case EINPROGRESS:
      fprintf (stderr, "%s: %s: the server accepts no connection within "
               "%d seconds\n", progname, shown_path (), REPLY_TIMEOUT);
      exit (EXIT_COMM);
    default:
      errno = err;
      fprintf (stderr, "%s: %s: connect: %m\n", progname, shown_path ());
      exit (EXIT_NO_SERVER);
    }
  }
  /* Anyone who can write the socket's directory can put a server there:
   * talk only to one run by root or by ourselves.  (For a unix socket the
   * credentials are those of the process that called listen().)
   */
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
    fprintf (stderr, "%s: %s: SO_PEERCRED: %m\n", progname, shown_path ());
    exit (EXIT_COMM);
  }
  if (cred.uid != 0 && cred.uid != geteuid ()) {
    fprintf (stderr, "%s: %s: the server there runs as uid %u, neither root "
             "nor you; not trusting it (run %s as that user if it is "
             "yours)\n", progname, shown_path (), (unsigned) cred.uid,
             progname);
    exit (EXIT_DENIED);
  }
  return fd;
}

/* Send one command, read the reply up to its terminating line, check it.
 * Exits on communication failure or a malformed reply; returns the status
 * (ZCTL_REPLY_OK or ZCTL_REPLY_ERROR) with r filled.
 */
static enum zctl_reply_status
run_command (const char *cmd, struct zctl_reply *r)
{
  char line[ZCTL_LINE_MAX + 2], data[ZCTL_REPLY_MAX];
  struct timespec t0, t;
  size_t len = 0, n;
  int fd, send_errno = 0;
  enum zctl_reply_status st;

  n = snprintf (line, sizeof line, "%s\n", cmd);
  if (n >= sizeof line) {
    fprintf (stderr, "%s: command too long\n", progname);
    exit (EXIT_USAGE);
  }
  fd = connect_server ();
  /* A server that refuses us (too many clients) may have answered and
   * hung up before we send: read what it said before blaming the send.
   */
  if (send (fd, line, n, MSG_NOSIGNAL) != (ssize_t) n)
    send_errno = errno ? errno : EPIPE;

  clock_gettime (CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    ssize_t got;
    long left;

    clock_gettime (CLOCK_MONOTONIC, &t);
    left = REPLY_TIMEOUT * 1000L - ((t.tv_sec - t0.tv_sec) * 1000L +
                                    (t.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0 || poll (&p, 1, (int) left) == 0) {
      fprintf (stderr, "%s: %s: no complete reply within %d seconds\n",
               progname, shown_path (), REPLY_TIMEOUT);
      exit (EXIT_COMM);
    }
    got = recv (fd, data + len, sizeof data - len, MSG_DONTWAIT);
    if (got == -1 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (got <= 0) {
      if (send_errno) {
        errno = send_errno;
        fprintf (stderr, "%s: %s: send: %m\n", progname, shown_path ());
      }
      else if (got == -1)
        fprintf (stderr, "%s: %s: recv: %m\n", progname, shown_path ());
      else
        fprintf (stderr, "%s: %s: server closed the connection "
                 "without a complete reply\n", progname, shown_path ());
      exit (EXIT_COMM);
    }
    len += got;
    st = zctl_reply_parse (r, data, len);
    if (st == ZCTL_REPLY_NBD) {
      fprintf (stderr, "%s: %s: is the socket of %s; give the plugin's "
               "ctl= path instead\n", progname, shown_path (), r->why);
      exit (EXIT_NO_SERVER);
    }
    if (st == ZCTL_REPLY_BAD) {
      fprintf (stderr, "%s: %s: malformed reply: %s\n",
               progname, shown_path (), r->why);
      exit (EXIT_COMM);
    }
    if (st != ZCTL_REPLY_INCOMPLETE)
      break;
  }
  close (fd);
  return st;
}

/* Exit with the server's error message if it refused; after an EBUSY
 * refusal, print busy_hint too (if not NULL): the server's messages spell
 * no nbdzramctl command.
 */
static void
check_refused (enum zctl_reply_status st, const struct zctl_reply *r,
               const char *busy_hint)
{
  char msg[4 * ZCTL_REPLY_MAX];

  if (st != ZCTL_REPLY_ERROR)
    return;
  fprintf (stderr, "%s: %s: %s\n", progname, shown_path (),
           zctl_clean (r->error, msg, sizeof msg));
  if (busy_hint && strncmp (r->error, "EBUSY:", 6) == 0)
    fprintf (stderr, "%s: %s\n", progname, busy_hint);
  exit (strncmp (r->error, "EACCES:", 7) == 0 ? EXIT_DENIED : EXIT_REFUSED);
}

static int
show_table (bool bytes, bool headings, bool json)
{
  struct zctl_reply r;
  enum zctl_reply_status st;
  char err[256];

  st = run_command ("stats", &r);
  check_refused (st, &r, NULL);
  if (zctl_print_table (stdout, &r, socket_path, bytes, headings, json,
                        err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s: %s\n", progname, shown_path (), err);
    return EXIT_COMM;
  }
  return EXIT_OK;
}

static int
show_stats (bool json)
{
  struct zctl_reply r;
  enum zctl_reply_status st;

  st = run_command ("stats", &r);
  check_refused (st, &r, NULL);
  zctl_print_kv (stdout, &r, json);
  return EXIT_OK;
}

/* Words sent to the server must not split or end the command line. */
static const char *
check_word (const char *what, const char *w)
{
  const char *p;

  if (*w == '\0')
    goto bad;
  for (p = w; *p; p++)
    if (*p <= ' ' || *p > '~')
      goto bad;
  return w;
 bad:
  fprintf (stderr, "%s: bad %s '%s'\n", progname, what, w);
  exit (EXIT_USAGE);
}

static int
simple_command (const char *cmd, const char *busy_hint)
{
  struct zctl_reply r;
  enum zctl_reply_status st;

  st = run_command (cmd, &r);
  check_refused (st, &r, busy_hint);
  zctl_print_kv (stdout, &r, false);
  return EXIT_OK;
}

static int
cmd_reset (bool force, const char *algo, const char *level)
{
  char cmd[ZCTL_LINE_MAX + 1], hint[ZCTL_LINE_MAX + 4 * 108];
  size_t n;

  n = snprintf (cmd, sizeof cmd, "reset%s", force ? " force" : "");
  if (algo && n < sizeof cmd)
    n += snprintf (cmd + n, sizeof cmd - n, " algorithm=%s", algo);
  if (level && n < sizeof cmd)
    n += snprintf (cmd + n, sizeof cmd - n, " level=%s", level);
  if (n >= sizeof cmd) {
    fprintf (stderr, "%s: reset: arguments too long\n", progname);
    return EXIT_USAGE;
  }
  snprintf (hint, sizeof hint, "to reset anyway (the clients' data is "
            "lost, their connections stay): %s -s %s reset --force",
            progname, shown_path ());
  return simple_command (cmd, force ? NULL : hint);
}

int
main (int argc, char **argv)
{
  /* Options may come before or after the command (GNU style).  --force,
   * --algorithm and --level belong to "reset" only.
   */
  static const struct option opts[] = {
    { "socket",     required_argument, NULL, 's' },
    { "bytes",      no_argument,       NULL, 'b' },
    { "noheadings", no_argument,       NULL, 'n' },
    { "json",       no_argument,       NULL, 'J' },
    { "help",       no_argument,       NULL, 'h' },
    { "version",    no_argument,       NULL, 'V' },
    { "force",      no_argument,       NULL, 'f' },
    { "algorithm",  required_argument, NULL, 'a' },
    { "level",      required_argument, NULL, 'l' },
    { NULL }
  };
  bool bytes = false, headings = true, json = false, force = false;
  const char *algo = NULL, *level = NULL, *sub;
  char cmd[ZCTL_LINE_MAX + 1];
  int c, nargs;

  socket_path = getenv ("NBDZRAMCTL_SOCKET");
  while ((c = getopt_long (argc, argv, "s:bnJhVfa:l:", opts, NULL)) != -1) {
    switch (c) {
    case 's': socket_path = optarg; break;
    case 'b': bytes = true; break;
    case 'n': headings = false; break;
    case 'J': json = true; break;
    case 'h': usage (stdout); return EXIT_OK;
    case 'V': printf ("%s %s\n", progname, PACKAGE_VERSION); return EXIT_OK;
    case 'f': force = true; break;
    case 'a': algo = check_word ("algorithm", optarg); break;
    case 'l': level = check_word ("level", optarg); break;
    default: usage (stderr); return EXIT_USAGE;
    }
  }
  sub = optind < argc ? argv[optind] : NULL;
  nargs = argc - optind;
  if ((force || algo || level) && (sub == NULL || strcmp (sub, "reset") != 0)) {
    fprintf (stderr, "%s: --force, --algorithm and --level go with "
             "'reset' only\n", progname);
    return EXIT_USAGE;
  }
  if (socket_path == NULL || *socket_path == '\0') {
    fprintf (stderr, "%s: no control socket: use -s PATH "
             "(the plugin's ctl= parameter)\n", progname);
    return EXIT_USAGE;
  }
  if (sub == NULL)
    return show_table (bytes, headings, json);
  if (strcmp (sub, "stats") == 0 && nargs == 1)
    return show_stats (json);
  if (strcmp (sub, "reset") == 0 && nargs == 1)
    return cmd_reset (force, algo, level);
  if (strcmp (sub, "compact") == 0 && nargs == 1)
    return simple_command ("compact", NULL);
  if (strcmp (sub, "mem-limit") == 0 && nargs == 2) {
    snprintf (cmd, sizeof cmd, "mem_limit %s", check_word ("size", argv[optind + 1]));
    return simple_command (cmd, NULL);
  }
  fprintf (stderr, "%s: unknown command or wrong arguments: %s "
           "(see --help)\n", progname, sub);
  return EXIT_USAGE;
}
