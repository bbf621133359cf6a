/* nbdzramctl: show and control an nbdkit-zram device through its control
 * socket, in the manner of util-linux zramctl.
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * It speaks the line protocol of include/zram/zctl.h: one command line,
 * then lines up to "ok" or "error ENAME: message".  It links nothing of the
 * device core.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "zram/size.h"
#include "zram/zctl.h"
#include "ctl-format.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* Exit statuses (documented in man/nbdzramctl.pod). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 1,               /* bad command line */
  EXIT_NO_SERVER = 2,           /* socket missing, or nobody listening */
  EXIT_DENIED = 3,              /* permission denied (file mode or peer check) */
  EXIT_REFUSED = 4,             /* the server answered "error ..." */
  EXIT_COMM = 5,                /* connection broke, bad or no reply */
};

/* Seconds to wait for a reply ("reset" waits for in-flight requests). */
#define REPLY_TIMEOUT 60

/* Most key=value lines in a reply that we keep. */
#define MAX_KEYS 64

static const char *progname = "nbdzramctl";
static const char *socket_path;

struct kv {
  char *key, *value;
};

struct reply {
  char buf[ZCTL_REPLY_MAX + 1];
  struct kv kv[MAX_KEYS];
  size_t nkv;
  char *error;                  /* the text after "error ", or NULL */
};

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
"  %s -s SOCKET mm_stat|io_stat|bd_stat    the kernel zram's sysfs lines\n"
"  %s -s SOCKET metrics                    Prometheus text format\n"
"\n"
"Options:\n"
"  -s, --socket PATH   the plugin's ctl= socket (or $NBDZRAMCTL_SOCKET)\n"
"  -b, --bytes         print sizes in bytes\n"
"  -n, --noheadings    do not print the table heading\n"
"  -J, --json          JSON output (table and stats)\n"
"  -h, --help          this help\n"
"  -V, --version       print the version\n",
           progname, progname, progname, progname, progname, progname,
           progname);
}

static int
connect_server (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = REPLY_TIMEOUT };
  int fd;

  if (strlen (socket_path) >= sizeof addr.sun_path) {
    fprintf (stderr, "%s: %s: socket path too long\n", progname, socket_path);
    exit (EXIT_USAGE);
  }
  strcpy (addr.sun_path, socket_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    fprintf (stderr, "%s: socket: %m\n", progname);
    exit (EXIT_COMM);
  }
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    switch (errno) {
    case ENOENT:
      fprintf (stderr, "%s: %s: no such control socket "
               "(is nbdkit running with ctl=%s?)\n",
               progname, socket_path, socket_path);
      exit (EXIT_NO_SERVER);
    case ECONNREFUSED:
      fprintf (stderr, "%s: %s: no server is listening "
               "(stale socket of a stopped nbdkit?)\n", progname, socket_path);
      exit (EXIT_NO_SERVER);
    case EACCES:
    case EPERM:
      fprintf (stderr, "%s: %s: permission denied "
               "(the socket belongs to another user)\n", progname, socket_path);
      exit (EXIT_DENIED);
    default:
      fprintf (stderr, "%s: %s: connect: %m\n", progname, socket_path);
      exit (EXIT_NO_SERVER);
    }
  }
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* Send one command, read the reply up to its terminating line, split it.
 * Exits on communication failure; returns with r->error set if the server
 * refused.
 */
static void
run_command (const char *cmd, struct reply *r)
{
  char line[ZCTL_LINE_MAX + 2];
  size_t len = 0, n;
  char *p, *next;
  int fd;

  n = snprintf (line, sizeof line, "%s\n", cmd);
  if (n >= sizeof line) {
    fprintf (stderr, "%s: command too long\n", progname);
    exit (EXIT_USAGE);
  }
  fd = connect_server ();
  if (send (fd, line, n, MSG_NOSIGNAL) != (ssize_t) n) {
    fprintf (stderr, "%s: %s: send: %m\n", progname, socket_path);
    exit (EXIT_COMM);
  }

  /* Read until the buffer holds a terminating line. */
  for (;;) {
    char *last;
    ssize_t got;

    r->buf[len] = '\0';
    if (len > 0 && r->buf[len - 1] == '\n') {
      r->buf[len - 1] = '\0';
      last = strrchr (r->buf, '\n');
      last = last ? last + 1 : r->buf;
      r->buf[len - 1] = '\n';
      if (strncmp (last, "ok\n", 3) == 0 || strncmp (last, "error ", 6) == 0)
        break;
    }
    if (len == ZCTL_REPLY_MAX) {
      fprintf (stderr, "%s: %s: reply too long\n", progname, socket_path);
      exit (EXIT_COMM);
    }
    got = recv (fd, r->buf + len, ZCTL_REPLY_MAX - len, 0);
    if (got == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      fprintf (stderr, "%s: %s: no reply within %d seconds\n",
               progname, socket_path, REPLY_TIMEOUT);
      exit (EXIT_COMM);
    }
    if (got == -1) {
      fprintf (stderr, "%s: %s: recv: %m\n", progname, socket_path);
      exit (EXIT_COMM);
    }
    if (got == 0) {
      fprintf (stderr, "%s: %s: server closed the connection "
               "without a complete reply\n", progname, socket_path);
      exit (EXIT_COMM);
    }
    len += got;
  }
  close (fd);

  r->nkv = 0;
  r->error = NULL;
  for (p = r->buf; *p; p = next) {
    char *eq;

    next = strchr (p, '\n');
    *next++ = '\0';
    if (strncmp (p, "error ", 6) == 0) {
      r->error = p + 6;
      break;
    }
    if (strcmp (p, "ok") == 0)
      break;
    eq = strchr (p, '=');
    if (eq && r->nkv < MAX_KEYS) {
      *eq = '\0';
      r->kv[r->nkv].key = p;
      r->kv[r->nkv++].value = eq + 1;
    }
  }
}

/* Exit with the server's error message if it refused. */
static void
check_refused (const struct reply *r)
{
  if (r->error == NULL)
    return;
  fprintf (stderr, "%s: %s: %s\n", progname, socket_path, r->error);
  exit (strncmp (r->error, "EACCES", 6) == 0 ? EXIT_DENIED : EXIT_REFUSED);
}

static const char *
get (const struct reply *r, const char *key)
{
  size_t i;

  for (i = 0; i < r->nkv; i++)
    if (strcmp (r->kv[i].key, key) == 0)
      return r->kv[i].value;
  fprintf (stderr, "%s: %s: the server's stats lack '%s'\n",
           progname, socket_path, key);
  exit (EXIT_COMM);
}

static unsigned long long
get_u64 (const struct reply *r, const char *key)
{
  const char *v = get (r, key);
  char *end;
  unsigned long long n;

  errno = 0;
  n = strtoull (v, &end, 10);
  if (errno || end == v || *end) {
    fprintf (stderr, "%s: %s: bad number for '%s': %s\n",
             progname, socket_path, key, v);
    exit (EXIT_COMM);
  }
  return n;
}

/* zramctl's style: 1023B, 4K, 1.5M, 2G. */
static void
human_size (unsigned long long bytes, char *out, size_t cap)
{
  static const char units[] = "KMGTPE";
  double v = bytes;
  int u = -1;

  if (bytes < 1024) {
    snprintf (out, cap, "%lluB", bytes);
    return;
  }
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  if (v >= 1023.95 && u < 5) {  /* would print as 1024.0 */
    v /= 1024;
    u++;
  }
  if (bytes % (1ULL << (10 * (u + 1))) == 0)
    snprintf (out, cap, "%.0f%c", v, units[u]);
  else
    snprintf (out, cap, "%.1f%c", v, units[u]);
}

static void
json_string (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    unsigned char c = *s;
    if (c == '"' || c == '\\')
      printf ("\\%c", c);
    else if (c < 0x20)
      printf ("\\u%04x", c);
    else
      putchar (c);
  }
  putchar ('"');
}

enum col_type { COL_STRING, COL_SIZE, COL_COUNT, COL_RATIO };

struct column {
  const char *name;             /* heading; JSON key is its lowercase */
  enum col_type type;
  const char *key;              /* stats key, or NULL (name, ratio) */
};

static const struct column columns[] = {
  { "NAME",       COL_STRING, NULL },
  { "ALGORITHM",  COL_STRING, "algorithm" },
  { "DISKSIZE",   COL_SIZE,   "disksize" },
  { "DATA",       COL_SIZE,   "orig_data_size" },
  { "COMPR",      COL_SIZE,   "compr_data_size" },
  { "TOTAL",      COL_SIZE,   "mem_used_total" },
  { "ZERO-PAGES", COL_COUNT,  "same_pages" },
  { "MEM-LIMIT",  COL_SIZE,   "mem_limit" },
  { "MEM-USED",   COL_SIZE,   "mem_used_max" },
  { "MIGRATED",   COL_COUNT,  "pages_compacted" },
  { "COMP-RATIO", COL_RATIO,  NULL },
};
#define NCOLS (sizeof columns / sizeof columns[0])

static int
show_table (bool bytes, bool headings, bool json)
{
  struct reply r;
  char cell[NCOLS][64];
  int width[NCOLS];
  bool have_ratio;
  double ratio = 0;
  size_t i;

  run_command ("stats", &r);
  check_refused (&r);

  have_ratio = get_u64 (&r, "mem_used_total") > 0;
  if (have_ratio)
    ratio = (double) get_u64 (&r, "orig_data_size") /
            (double) get_u64 (&r, "mem_used_total");

  for (i = 0; i < NCOLS; i++) {
    const struct column *c = &columns[i];

    switch (c->type) {
    case COL_STRING:
      snprintf (cell[i], sizeof cell[i], "%s",
                c->key ? get (&r, c->key) : socket_path);
      break;
    case COL_SIZE:
      if (bytes)
        snprintf (cell[i], sizeof cell[i], "%llu", get_u64 (&r, c->key));
      else
        human_size (get_u64 (&r, c->key), cell[i], sizeof cell[i]);
      break;
    case COL_COUNT:
      snprintf (cell[i], sizeof cell[i], "%llu", get_u64 (&r, c->key));
      break;
    case COL_RATIO:
      if (have_ratio)
        snprintf (cell[i], sizeof cell[i], "%.4f", ratio);
      else
        snprintf (cell[i], sizeof cell[i], "-");
      break;
    }
  }

  if (json) {
    printf ("{\n   \"devices\": [\n      {");
    for (i = 0; i < NCOLS; i++) {
      const char *n;

      printf ("%s\n         \"", i ? "," : "");
      for (n = columns[i].name; *n; n++)
        putchar (*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n);
      printf ("\": ");
      if (columns[i].type == COL_STRING ||
          (columns[i].type == COL_SIZE && !bytes))
        json_string (i == 0 ? socket_path : cell[i]);
      else if (columns[i].type == COL_RATIO && !have_ratio)
        printf ("null");
      else
        printf ("%s", cell[i]);
    }
    printf ("\n      }\n   ]\n}\n");
    return EXIT_OK;
  }

  /* Each column as wide as the wider of its heading and its value;
   * without headings, as wide as the value (one row: nothing to align).
   */
  for (i = 0; i < NCOLS; i++) {
    int w = (int) strlen (cell[i]);

    if (headings && w < (int) strlen (columns[i].name))
      w = (int) strlen (columns[i].name);
    width[i] = w;
  }
  if (headings) {
    for (i = 0; i < NCOLS; i++)
      printf (columns[i].type == COL_STRING ? "%s%-*s" : "%s%*s",
              i ? " " : "", width[i], columns[i].name);
    putchar ('\n');
  }
  for (i = 0; i < NCOLS; i++)
    printf (columns[i].type == COL_STRING ? "%s%-*s" : "%s%*s",
            i ? " " : "", width[i], cell[i]);
  putchar ('\n');
  return EXIT_OK;
}

static int
show_stats (bool json)
{
  struct reply r;
  size_t i;

  run_command ("stats", &r);
  check_refused (&r);
  if (!json) {
    for (i = 0; i < r.nkv; i++)
      printf ("%s=%s\n", r.kv[i].key, r.kv[i].value);
    return EXIT_OK;
  }
  printf ("{");
  for (i = 0; i < r.nkv; i++) {
    const char *v = r.kv[i].value;
    bool number = v[0] != '\0' && strspn (v, "0123456789") == strlen (v);

    printf ("%s\n   ", i ? "," : "");
    json_string (r.kv[i].key);
    printf (": ");
    if (number)
      printf ("%s", v);
    else
      json_string (v);
  }
  printf ("\n}\n");
  return EXIT_OK;
}

/* The stats (and, if hists is not NULL, the histograms) of the device at
 * socket_path, as a struct ctl_device whose strings live in the replies.
 */
static void
fetch_device (struct ctl_device *dev, struct reply *stats,
              struct ctl_kv *skv, struct reply *hists, struct ctl_kv *hkv)
{
  size_t i;

  run_command ("stats", stats);
  check_refused (stats);
  for (i = 0; i < stats->nkv; i++)
    skv[i] = (struct ctl_kv) { stats->kv[i].key, stats->kv[i].value };
  *dev = (struct ctl_device) { .name = socket_path, .stats = skv,
                               .nstats = stats->nkv };
  if (hists) {
    run_command ("histograms", hists);
    check_refused (hists);
    for (i = 0; i < hists->nkv; i++)
      hkv[i] = (struct ctl_kv) { hists->kv[i].key, hists->kv[i].value };
    dev->hists = hkv;
    dev->nhists = hists->nkv;
  }
}

static int
show_kstat (enum ctl_kstat which)
{
  static struct reply stats;
  struct ctl_kv skv[MAX_KEYS];
  struct ctl_device dev;

  fetch_device (&dev, &stats, skv, NULL, NULL);
  return ctl_print_kstat (stdout, stderr, which, &dev) == 0 ? EXIT_OK : EXIT_COMM;
}

static int
show_metrics (void)
{
  static struct reply stats, hists;
  struct ctl_kv skv[MAX_KEYS], hkv[MAX_KEYS];
  struct ctl_device dev;

  fetch_device (&dev, &stats, skv, &hists, hkv);
  return ctl_print_metrics (stdout, stderr, &dev, 1) == 0 ? EXIT_OK : EXIT_COMM;
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
simple_command (const char *cmd)
{
  struct reply r;
  size_t i;

  run_command (cmd, &r);
  check_refused (&r);
  for (i = 0; i < r.nkv; i++)
    printf ("%s=%s\n", r.kv[i].key, r.kv[i].value);
  return EXIT_OK;
}

static int
cmd_reset (bool force, const char *algo, const char *level)
{
  char cmd[ZCTL_LINE_MAX + 1];
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
  return simple_command (cmd);
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
  if (strcmp (sub, "mm_stat") == 0 && nargs == 1)
    return show_kstat (KSTAT_MM);
  if (strcmp (sub, "io_stat") == 0 && nargs == 1)
    return show_kstat (KSTAT_IO);
  if (strcmp (sub, "bd_stat") == 0 && nargs == 1)
    return show_kstat (KSTAT_BD);
  if (strcmp (sub, "metrics") == 0 && nargs == 1)
    return show_metrics ();
  if (strcmp (sub, "compact") == 0 && nargs == 1)
    return simple_command ("compact");
  if (strcmp (sub, "mem-limit") == 0 && nargs == 2) {
    const char *size = argv[optind + 1];
    uint64_t limit;

    /* The server parses it the same way; checking here first gives the
     * same message without a round trip.
     */
    if (zram_parse_size (size, &limit) == -1) {
      fprintf (stderr, "%s: mem-limit: '%s' is %s\n", progname, size,
               errno == ERANGE ? "too large (more than 2^64 - 1 bytes)"
               : "not a size: use " ZRAM_SIZE_SYNTAX);
      return EXIT_USAGE;
    }
    snprintf (cmd, sizeof cmd, "mem_limit %s", size);
    return simple_command (cmd);
  }
  fprintf (stderr, "%s: unknown command or wrong arguments: %s "
           "(see --help)\n", progname, sub);
  return EXIT_USAGE;
}
