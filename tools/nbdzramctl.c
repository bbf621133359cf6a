/* nbdzramctl: show and control an nbdkit-zram device through its control
 * socket, in the manner of util-linux zramctl.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * It speaks the line protocol of include/zram/zctl.h: one command line,
 * then lines up to "ok" or "error ENAME: message".  It links nothing of the
 * device core.  Reading replies and printing them are in zctl-client.c,
 * the other programs' formats (kernel sysfs lines, Prometheus) in
 * ctl-format.c, naming a device after its /dev/nbdX in nbd-names.c; this
 * file talks to sockets and parses the command line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* struct ucred */
#endif
#include <errno.h>
#include <glob.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
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

#include "zram/size.h"
#include "zram/zctl.h"
#include "ctl-format.h"
#include "metrics-http.h"
#include "nbd-names.h"
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

/* For an HTTP scrape: under Prometheus's default scrape timeout (10 s), so
 * that a stalled server yields 503 with the reason rather than no answer.
 */
#define SCRAPE_TIMEOUT 8

/* For "idle", "recompress", "writeback", "group" and "dissolve", which
 * walk the whole device (zstd at a high level recompresses a few thousand
 * pages a second): an hour.
 */
#define WALK_TIMEOUT 3600

static int reply_timeout = REPLY_TIMEOUT;   /* seconds */

static const char *progname = "nbdzramctl";

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

/* The systemd unit's run directory: every device it starts has a control
 * socket at RUNDIR/INSTANCE/ctl.sock.  Listing without -s looks there.
 */
#define DEFAULT_RUNDIR "/run/nbdkit-zram"

/* Most devices one run lists. */
#define MAX_DEVICES 64

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage:\n"
"  %s [options] [SOCKET...]                list devices (a zramctl table)\n"
"  %s -r SOCKET...                         reset devices (as zramctl -r)\n"
"  %s -s SOCKET stats                      raw statistics (key=value)\n"
"  %s -s SOCKET mm_stat|io_stat|bd_stat    the kernel zram's sysfs lines\n"
"  %s [-s SOCKET] metrics [--listen ADDR:PORT]\n"
"                                          Prometheus text format\n"
"  %s -s SOCKET reset [--force] [--algorithm NAME [--level N]]\n"
"  %s -s SOCKET compact\n"
"  %s -s SOCKET mem-limit SIZE             e.g. 512M; 0 = no limit\n"
"  %s -s SOCKET idle all|SECONDS           mark pages idle\n"
"  %s -s SOCKET recompress type=idle|huge|huge_idle [threshold=BYTES]\n"
"               [max_pages=N] [algo=NAME[:LEVEL]|priority=N]\n"
"  %s -s SOCKET writeback type=idle|huge|huge_idle|incompressible\n"
"               [max_pages=N]             move pages to the backing store\n"
"  %s -s SOCKET writeback-limit BLOCKS      4 KiB blocks writeback may still write\n"
"  %s -s SOCKET writeback-limit-enable 0|1 whether that budget applies\n"
"  %s -s SOCKET group [max_pages=N] [age=SECONDS]\n"
"                                          pack idle pages into groups now\n"
"  %s -s SOCKET dissolve [live_min=PERCENT]  take groups apart\n"
"\n"
"Without -s or SOCKET, the devices are those of $NBDZRAMCTL_SOCKET and\n"
"every %s/*/ctl.sock (the systemd unit's; $NBDZRAMCTL_RUNDIR changes it).\n"
"\n"
"Options:\n"
"  -s, --socket PATH     the plugin's ctl= socket\n"
"  -o, --output LIST     columns to show (+LIST adds to the default)\n"
"      --output-all      show every column\n"
"  -b, --bytes           print sizes in bytes\n"
"  -n, --noheadings      do not print the heading line\n"
"      --raw             no alignment (one space between columns)\n"
"  -J, --json            JSON output (table and stats)\n"
"  -r, --reset           reset the devices named (refused while connected)\n"
"      --listen ADDR:PORT  with metrics: serve them over HTTP at /metrics\n"
"  -h, --help            this help\n"
"  -V, --version         print the version\n"
"\n"
"Available output columns:\n",
           progname, progname, progname, progname, progname, progname,
           progname, progname, progname, progname, progname, progname,
           progname, progname, progname, DEFAULT_RUNDIR);
  zctl_columns_help (fp);
  fprintf (fp, "\nOnly a server run by root or by you is trusted.\n");
}

/* Why talking to a device failed: the exit status and the message
 * (already cleaned for a terminal), to print or to serve as HTTP 503.
 */
struct failure {
  int code;
  char msg[1024];
};

static int __attribute__ ((format (printf, 3, 4)))
failed (struct failure *f, int code, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (f->msg, sizeof f->msg, fmt, ap);
  va_end (ap);
  f->code = code;
  return -1;
}

/* Print the failure and exit with its status. */
static void __attribute__ ((noreturn))
die (const struct failure *f)
{
  fprintf (stderr, "%s: %s\n", progname, f->msg);
  exit (f->code);
}

/* path as it may be printed (static buffer: one at a time). */
static const char *
shown (const char *path)
{
  static char buf[4 * 4096 + 1];

  return zctl_clean (path, buf, sizeof buf);
}

/* Connect to the control socket at path and check who serves it.
 * Returns the descriptor, or -1 with *f filled.
 */
static int
connect_server (const char *path, struct failure *f)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = reply_timeout };
  struct ucred cred;
  socklen_t credlen = sizeof cred;
  struct stat st;
  int fd, err;

  if (strlen (path) >= sizeof addr.sun_path)
    return failed (f, EXIT_USAGE, "%s: socket path too long", shown (path));
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return failed (f, EXIT_COMM, "socket: %s", strerror (errno));
  /* A connect to a server whose queue is full waits this long too. */
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    err = errno;
    close (fd);
    /* connect says "refused" for anything that is not a socket. */
    if (err == ECONNREFUSED && stat (path, &st) == 0 && !S_ISSOCK (st.st_mode))
      return failed (f, EXIT_NO_SERVER, "%s: is %s, not a control socket "
                     "(give the path of the plugin's ctl= parameter)",
                     shown (path), kind_of (&st));
    switch (err) {
    case ENOENT:
      return failed (f, EXIT_NO_SERVER, "%s: no such control socket "
                     "(is nbdkit running with ctl=%s?)", shown (path),
                     shown (path));
    case ECONNREFUSED:
      return failed (f, EXIT_NO_SERVER, "%s: no server is listening "
                     "(stale socket of a stopped nbdkit?)", shown (path));
    case EACCES:
    case EPERM:
      return failed (f, EXIT_DENIED, "%s: permission denied "
                     "(the socket belongs to another user)", shown (path));
    case EAGAIN:
    case EINPROGRESS:
      return failed (f, EXIT_COMM, "%s: the server accepts no connection "
                     "within %d seconds", shown (path), reply_timeout);
    default:
      return failed (f, EXIT_NO_SERVER, "%s: connect: %s", shown (path),
                     strerror (err));
    }
  }
  /* Anyone who can write the socket's directory can put a server there:
   * talk only to one run by root or by ourselves.  (For a unix socket the
   * credentials are those of the process that called listen().)
   */
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
    err = errno;
    close (fd);
    return failed (f, EXIT_COMM, "%s: SO_PEERCRED: %s", shown (path),
                   strerror (err));
  }
  if (cred.uid != 0 && cred.uid != geteuid ()) {
    close (fd);
    return failed (f, EXIT_DENIED, "%s: the server there runs as uid %u, "
                   "neither root nor you; not trusting it (run %s as that "
                   "user if it is yours)", shown (path), (unsigned) cred.uid,
                   progname);
  }
  return fd;
}

/* Send one command to the server at path and read the reply up to its
 * terminating line.  Returns ZCTL_REPLY_OK or ZCTL_REPLY_ERROR with r
 * filled, or -1 with *f filled (no server, broken connection, malformed
 * reply).
 */
static int
ask (const char *path, const char *cmd, struct zctl_reply *r,
     struct failure *f)
{
  char line[ZCTL_LINE_MAX + 2], data[ZCTL_REPLY_MAX];
  struct timespec t0, t;
  size_t len = 0, n;
  int fd, send_errno = 0;
  enum zctl_reply_status st;

  n = snprintf (line, sizeof line, "%s\n", cmd);
  if (n >= sizeof line)
    return failed (f, EXIT_USAGE, "command too long");
  fd = connect_server (path, f);
  if (fd == -1)
    return -1;
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
    left = reply_timeout * 1000L - ((t.tv_sec - t0.tv_sec) * 1000L +
                                    (t.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0 || poll (&p, 1, (int) left) == 0) {
      close (fd);
      return failed (f, EXIT_COMM, "%s: no complete reply within %d seconds",
                     shown (path), reply_timeout);
    }
    got = recv (fd, data + len, sizeof data - len, MSG_DONTWAIT);
    if (got == -1 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (got <= 0) {
      int err = got == -1 ? errno : 0;

      close (fd);
      if (send_errno)
        return failed (f, EXIT_COMM, "%s: send: %s", shown (path),
                       strerror (send_errno));
      if (err)
        return failed (f, EXIT_COMM, "%s: recv: %s", shown (path),
                       strerror (err));
      return failed (f, EXIT_COMM, "%s: server closed the connection "
                     "without a complete reply", shown (path));
    }
    len += got;
    st = zctl_reply_parse (r, data, len);
    if (st == ZCTL_REPLY_NBD) {
      close (fd);
      return failed (f, EXIT_NO_SERVER, "%s: is the socket of %s; give the "
                     "plugin's ctl= path instead", shown (path), r->why);
    }
    if (st == ZCTL_REPLY_BAD) {
      close (fd);
      return failed (f, EXIT_COMM, "%s: malformed reply: %s", shown (path),
                     r->why);
    }
    if (st != ZCTL_REPLY_INCOMPLETE)
      break;
  }
  close (fd);
  return st;
}

/* ask, and turn a refusal into a failure too; after an EBUSY refusal add
 * busy_hint (if not NULL): the server's messages spell no nbdzramctl
 * command.
 */
static int
ask_ok (const char *path, const char *cmd, struct zctl_reply *r,
        const char *busy_hint, struct failure *f)
{
  char msg[4 * ZCTL_REPLY_MAX];
  int st = ask (path, cmd, r, f);

  if (st != ZCTL_REPLY_ERROR)
    return st == -1 ? -1 : 0;
  zctl_clean (r->error, msg, sizeof msg);
  if (busy_hint && strncmp (r->error, "EBUSY:", 6) == 0)
    return failed (f, EXIT_REFUSED, "%s: %.400s\n%s: %s", shown (path), msg,
                   progname, busy_hint);
  return failed (f, strncmp (r->error, "EACCES:", 7) == 0 ? EXIT_DENIED
                                                          : EXIT_REFUSED,
                 "%s: %.600s", shown (path), msg);
}

/* --- devices --------------------------------------------------------------- */

/* What one run shows: the sockets named, or found. */
static const char *devices[MAX_DEVICES];
static size_t ndevices;
static char *found_paths[MAX_DEVICES];

static void
add_device (const char *path)
{
  size_t i;

  for (i = 0; i < ndevices; i++)
    if (strcmp (devices[i], path) == 0)
      return;
  if (ndevices == MAX_DEVICES) {
    fprintf (stderr, "%s: more than %d devices; showing the first %d\n",
             progname, MAX_DEVICES, MAX_DEVICES);
    return;
  }
  devices[ndevices++] = path;
}

/* No device named: $NBDZRAMCTL_SOCKET and the unit's run directory. */
static void
find_devices (void)
{
  const char *env = getenv ("NBDZRAMCTL_SOCKET");
  const char *rundir = getenv ("NBDZRAMCTL_RUNDIR");
  char pattern[4096];
  glob_t g;
  size_t i;

  if (env && *env)
    add_device (env);
  snprintf (pattern, sizeof pattern, "%s/*/ctl.sock",
            rundir && *rundir ? rundir : DEFAULT_RUNDIR);
  if (glob (pattern, 0, NULL, &g) != 0)
    return;
  for (i = 0; i < g.gl_pathc && ndevices < MAX_DEVICES; i++) {
    found_paths[i] = strdup (g.gl_pathv[i]);
    if (found_paths[i])
      add_device (found_paths[i]);
  }
  globfree (&g);
}

/* The one device a single-device command works on. */
static const char *
one_device (const char *sub)
{
  if (ndevices == 1)
    return devices[0];
  if (ndevices == 0)
    fprintf (stderr, "%s: %s: no control socket: use -s PATH (the plugin's "
             "ctl= parameter)\n", progname, sub);
  else
    fprintf (stderr, "%s: %s works on one device; %zu were given\n",
             progname, sub, ndevices);
  exit (EXIT_USAGE);
}

/* The root below which /sys and /proc are read (tests set it). */
static const char *
sysroot (void)
{
  const char *r = getenv ("NBDZRAMCTL_SYSROOT");

  return r ? r : "";
}

/* Everything shown about one device. */
struct device_info {
  const char *socket;
  struct zctl_reply stats, hists;
  bool have_hists;
  char nbd[64];                 /* "/dev/nbdX", or "" */
  char use[4096];               /* mount point, "[SWAP]", or "" */
};

/* Fetch a device's stats (and histograms, if asked), and find the
 * /dev/nbdX it is attached to.  Returns 0, or -1 with *f filled.
 */
static int
fetch_device (const char *path, bool hists, struct device_info *d,
              struct failure *f)
{
  const char *pids;

  memset (d, 0, sizeof *d);
  d->socket = path;
  if (ask_ok (path, "stats", &d->stats, NULL, f) == -1)
    return -1;
  if (hists) {
    if (ask_ok (path, "histograms", &d->hists, NULL, f) == -1)
      return -1;
    d->have_hists = true;
  }
  pids = zctl_reply_get (&d->stats, "client_pids");
  if (pids && nbd_device_of_pids (sysroot (), pids, d->nbd, sizeof d->nbd) == 0)
    nbd_device_use (sysroot (), d->nbd, d->use, sizeof d->use);
  return 0;
}

static const char *
device_name (const struct device_info *d)
{
  return d->nbd[0] ? d->nbd : d->socket;
}

/* --- commands -------------------------------------------------------------- */

static int
show_table (struct zctl_table *t)
{
  struct device_info *info = calloc (ndevices ? ndevices : 1, sizeof *info);
  struct zctl_row rows[MAX_DEVICES];
  struct failure f;
  size_t i, n = 0;
  int status = EXIT_OK;
  char err[256];

  if (info == NULL) {
    fprintf (stderr, "%s: out of memory\n", progname);
    return EXIT_COMM;
  }
  /* A device that cannot be read is reported and left out, as zramctl
   * skips what it cannot read; the exit status says so.
   */
  for (i = 0; i < ndevices; i++) {
    if (fetch_device (devices[i], false, &info[n], &f) == -1) {
      fprintf (stderr, "%s: %s\n", progname, f.msg);
      status = f.code;
      continue;
    }
    rows[n] = (struct zctl_row) {
      &info[n].stats, device_name (&info[n]),
      info[n].use[0] ? info[n].use : NULL, info[n].socket,
    };
    n++;
  }
  if (n > 0 || (ndevices == 0 && t->json)) {
    if (zctl_print_table (stdout, t, rows, n, err, sizeof err) == -1) {
      fprintf (stderr, "%s: %s\n", progname, err);
      status = EXIT_COMM;
    }
  }
  free (info);
  return status;
}

static int
show_stats (const char *path, bool json)
{
  struct zctl_reply r;
  struct failure f;

  if (ask_ok (path, "stats", &r, NULL, &f) == -1)
    die (&f);
  zctl_print_kv (stdout, &r, json);
  return EXIT_OK;
}

static int
show_kstat (const char *path, enum ctl_kstat which)
{
  struct device_info d;
  struct ctl_device dev;
  struct failure f;

  if (fetch_device (path, false, &d, &f) == -1)
    die (&f);
  dev = (struct ctl_device) { device_name (&d), &d.stats, NULL };
  return ctl_print_kstat (stdout, stderr, which, &dev) == 0 ? EXIT_OK : EXIT_COMM;
}

/* Render the metrics of every device into out; a device that cannot be
 * read fails the whole exposition (a partial one would look complete).
 */
static int
render_metrics (FILE *out, FILE *err, void *opaque)
{
  struct device_info *info = calloc (ndevices ? ndevices : 1, sizeof *info);
  struct ctl_device devs[MAX_DEVICES];
  struct failure f;
  size_t i;
  int r = 0;

  (void) opaque;
  if (info == NULL) {
    fprintf (err, "out of memory\n");
    return -1;
  }
  for (i = 0; i < ndevices && r == 0; i++) {
    if (fetch_device (devices[i], true, &info[i], &f) == -1) {
      fprintf (err, "%s\n", f.msg);
      r = -1;
      break;
    }
    devs[i] = (struct ctl_device) { device_name (&info[i]), &info[i].stats,
                                    &info[i].hists };
  }
  if (r == 0)
    r = ctl_print_metrics (out, err, devs, ndevices);
  free (info);
  return r;
}

static int
show_metrics (const char *listen)
{
  /* No device (none named, none found) is an empty exposition, not an
   * error: a timer on a machine without devices must not fail.
   */
  if (listen) {
#ifdef HAVE_LIBMICROHTTPD
    reply_timeout = SCRAPE_TIMEOUT;
    return metrics_http_serve (listen, render_metrics, NULL) == 0 ? EXIT_OK
                                                                  : EXIT_USAGE;
#else
    fprintf (stderr, "%s: --listen: built without libmicrohttpd; use the "
             "textfile collector instead (see nbdzramctl(1))\n", progname);
    return EXIT_USAGE;
#endif
  }
  return render_metrics (stdout, stderr, NULL) == 0 ? EXIT_OK : EXIT_COMM;
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
  fprintf (stderr, "%s: bad %s '%s'\n", progname, what, shown (w));
  exit (EXIT_USAGE);
}

static int
simple_command (const char *path, const char *cmd, const char *busy_hint)
{
  struct zctl_reply r;
  struct failure f;

  if (ask_ok (path, cmd, &r, busy_hint, &f) == -1)
    die (&f);
  zctl_print_kv (stdout, &r, false);
  return EXIT_OK;
}

/* reset (without force) one device; 0, or an exit status after printing
 * why not.
 */
static int
reset_one (const char *path, bool force, const char *algo, const char *level)
{
  char cmd[ZCTL_LINE_MAX + 1], hint[ZCTL_LINE_MAX + 4 * 4096];
  struct zctl_reply r;
  struct failure f;
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
            progname, shown (path));
  if (ask_ok (path, cmd, &r, force ? NULL : hint, &f) == -1) {
    fprintf (stderr, "%s: %s\n", progname, f.msg);
    return f.code;
  }
  return EXIT_OK;
}

int
main (int argc, char **argv)
{
  /* Options may come before or after the command (GNU style).  --force,
   * --algorithm and --level belong to "reset" only, --listen to
   * "metrics".
   */
  enum { OPT_RAW = 256, OPT_OUTPUT_ALL, OPT_LISTEN };
  static const struct option opts[] = {
    { "socket",     required_argument, NULL, 's' },
    { "bytes",      no_argument,       NULL, 'b' },
    { "noheadings", no_argument,       NULL, 'n' },
    { "json",       no_argument,       NULL, 'J' },
    { "output",     required_argument, NULL, 'o' },
    { "output-all", no_argument,       NULL, OPT_OUTPUT_ALL },
    { "raw",        no_argument,       NULL, OPT_RAW },
    { "reset",      no_argument,       NULL, 'r' },
    { "listen",     required_argument, NULL, OPT_LISTEN },
    { "help",       no_argument,       NULL, 'h' },
    { "version",    no_argument,       NULL, 'V' },
    { "force",      no_argument,       NULL, 'f' },
    { "algorithm",  required_argument, NULL, 'a' },
    { "level",      required_argument, NULL, 'l' },
    { NULL }
  };
  int cols[ZCTL_MAX_COLUMNS];
  struct zctl_table table = { .cols = cols, .headings = true };
  bool force = false, reset_opt = false, named = false, json = false;
  const char *algo = NULL, *level = NULL, *listen = NULL, *sub = NULL;
  char cmd[ZCTL_LINE_MAX + 1], err[256];
  int c, i, nargs, status;

  table.ncols = zctl_columns_default (cols);
  while ((c = getopt_long (argc, argv, "s:bnJo:rhVfa:l:", opts, NULL)) != -1) {
    switch (c) {
    case 's': add_device (optarg); named = true; break;
    case 'b': table.bytes = true; break;
    case 'n': table.headings = false; break;
    case 'J': json = true; break;
    case 'o':
      if (zctl_columns_parse (optarg, cols, &table.ncols, err, sizeof err) == -1) {
        fprintf (stderr, "%s: --output: %s\n", progname, err);
        return EXIT_USAGE;
      }
      break;
    case OPT_OUTPUT_ALL: table.ncols = zctl_columns_all (cols); break;
    case OPT_RAW: table.raw = true; break;
    case 'r': reset_opt = true; break;
    case OPT_LISTEN: listen = optarg; break;
    case 'h': usage (stdout); return EXIT_OK;
    case 'V': printf ("%s %s\n", progname, PACKAGE_VERSION); return EXIT_OK;
    case 'f': force = true; break;
    case 'a': algo = check_word ("algorithm", optarg); break;
    case 'l': level = check_word ("level", optarg); break;
    default: usage (stderr); return EXIT_USAGE;
    }
  }
  table.json = json;

  /* zramctl takes devices as arguments: a word with a '/' is a socket,
   * anything else the command.
   */
  for (i = optind; i < argc && strchr (argv[i], '/'); i++) {
    add_device (argv[i]);
    named = true;
  }
  if (i < argc)
    sub = argv[i++];
  nargs = argc - i;
  if (!named)
    find_devices ();

  if ((force || algo || level) && (sub == NULL || strcmp (sub, "reset") != 0)) {
    fprintf (stderr, "%s: --force, --algorithm and --level go with "
             "'reset' only\n", progname);
    return EXIT_USAGE;
  }
  if (listen && (sub == NULL || strcmp (sub, "metrics") != 0)) {
    fprintf (stderr, "%s: --listen goes with 'metrics' only\n", progname);
    return EXIT_USAGE;
  }
  if (reset_opt) {
    if (sub) {
      fprintf (stderr, "%s: -r resets the devices named; it takes no "
               "command ('%s')\n", progname, shown (sub));
      return EXIT_USAGE;
    }
    if (!named) {
      fprintf (stderr, "%s: -r: name the devices to reset (-s SOCKET or "
               "SOCKET...)\n", progname);
      return EXIT_USAGE;
    }
    status = EXIT_OK;
    for (i = 0; i < (int) ndevices; i++) {
      int s = reset_one (devices[i], false, NULL, NULL);

      if (s != EXIT_OK)
        status = s;
    }
    return status;
  }

  if (sub == NULL)
    return show_table (&table);
  if (strcmp (sub, "metrics") == 0 && nargs == 0)
    return show_metrics (listen);
  if (strcmp (sub, "stats") == 0 && nargs == 0)
    return show_stats (one_device (sub), json);
  if (strcmp (sub, "mm_stat") == 0 && nargs == 0)
    return show_kstat (one_device (sub), KSTAT_MM);
  if (strcmp (sub, "io_stat") == 0 && nargs == 0)
    return show_kstat (one_device (sub), KSTAT_IO);
  if (strcmp (sub, "bd_stat") == 0 && nargs == 0)
    return show_kstat (one_device (sub), KSTAT_BD);
  if (strcmp (sub, "reset") == 0 && nargs == 0)
    return reset_one (one_device (sub), force, algo, level);
  if (strcmp (sub, "compact") == 0 && nargs == 0)
    return simple_command (one_device (sub), "compact", NULL);
  if (strcmp (sub, "mem-limit") == 0 && nargs == 1) {
    const char *size = argv[i];
    const char *path;
    uint64_t limit;

    /* The server parses it the same way; checking here first gives the
     * same message without a round trip, and before any socket is named.
     */
    if (zram_parse_size (size, &limit) == -1) {
      fprintf (stderr, "%s: mem-limit: '%s' is %s\n", progname, shown (size),
               errno == ERANGE ? "too large (more than 2^64 - 1 bytes)"
               : "not a size: use " ZRAM_SIZE_SYNTAX);
      return EXIT_USAGE;
    }
    path = one_device (sub);
    snprintf (cmd, sizeof cmd, "mem_limit %s", size);
    return simple_command (path, cmd, NULL);
  }
  if ((strcmp (sub, "writeback-limit") == 0 ||
       strcmp (sub, "writeback-limit-enable") == 0) && nargs == 1) {
    /* The server checks the value and says what is wrong. */
    const char *v = check_word (sub, argv[i]);

    snprintf (cmd, sizeof cmd, "%s %.64s",
              sub[15] == '\0' ? "writeback_limit" : "writeback_limit_enable",
              v);
    return simple_command (one_device (sub), cmd, NULL);
  }
  if (strcmp (sub, "writeback-limit") == 0 ||
      strcmp (sub, "writeback-limit-enable") == 0) {
    fprintf (stderr, "%s: usage: %s\n", progname,
             sub[15] == '\0' ? "writeback-limit BLOCKS"
             : "writeback-limit-enable 0|1");
    return EXIT_USAGE;
  }
  if ((strcmp (sub, "idle") == 0 && nargs == 1) ||
      (strcmp (sub, "recompress") == 0 && nargs >= 1) ||
      (strcmp (sub, "writeback") == 0 && nargs >= 1) ||
      strcmp (sub, "group") == 0 ||
      (strcmp (sub, "dissolve") == 0 && nargs <= 1)) {
    /* The words as the protocol has them; the server checks them (and
     * says what is wrong) before it changes anything.
     */
    size_t n = snprintf (cmd, sizeof cmd, "%s", sub);

    for (; i < argc; i++) {
      check_word (sub, argv[i]);
      if (n < sizeof cmd)
        n += snprintf (cmd + n, sizeof cmd - n, " %s", argv[i]);
    }
    if (n >= sizeof cmd) {
      fprintf (stderr, "%s: %s: arguments too long\n", progname, sub);
      return EXIT_USAGE;
    }
    reply_timeout = WALK_TIMEOUT;
    return simple_command (one_device (sub), cmd, NULL);
  }
  if (strcmp (sub, "idle") == 0 || strcmp (sub, "recompress") == 0 ||
      strcmp (sub, "writeback") == 0 || strcmp (sub, "dissolve") == 0) {
    fprintf (stderr, "%s: usage: %s\n", progname,
             strcmp (sub, "idle") == 0 ? "idle all|SECONDS"
             : strcmp (sub, "dissolve") == 0 ? "dissolve [live_min=PERCENT]"
             : strcmp (sub, "writeback") == 0
             ? "writeback type=idle|huge|huge_idle|incompressible [max_pages=N]"
             : "recompress type=idle|huge|huge_idle [threshold=BYTES] "
               "[max_pages=N] [algo=NAME[:LEVEL]|priority=N]");
    return EXIT_USAGE;
  }
  fprintf (stderr, "%s: unknown command or wrong arguments: %s "
           "(see --help)\n", progname, shown (sub));
  return EXIT_USAGE;
}
