/* nbdzramctl's pure parts: naming an export after its /dev/nbdX (against
 * a fake /sys and /proc), the kernel-format lines, and the Prometheus
 * exposition's refusals and escaping.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl-format.h"
#include "zctl-client.h"
#include "nbd-names.h"
#include "check.h"

static char root[] = "/tmp/zram-ctl-format.XXXXXX";

static void
put (const char *path, const char *text)
{
  char full[4096], *slash;
  FILE *fp;

  snprintf (full, sizeof full, "%s%s", root, path);
  for (slash = strchr (full + strlen (root) + 1, '/'); slash;
       slash = strchr (slash + 1, '/')) {
    *slash = '\0';
    mkdir (full, 0755);
    *slash = '/';
  }
  fp = fopen (full, "w");
  CHECK (fp != NULL);
  fputs (text, fp);
  fclose (fp);
}

static void
test_names (void)
{
  char out[64];

  CHECK (mkdtemp (root) != NULL);
  put ("/sys/block/nbd0/pid", "111\n");
  put ("/sys/block/nbd0/dev", "43:0\n");
  put ("/sys/block/nbd1/pid", "222\n");
  put ("/sys/block/nbd1/dev", "43:32\n");
  put ("/sys/block/nbd2/dev", "43:64\n");          /* not connected: no pid */
  put ("/sys/block/nbdx/pid", "333\n");            /* not an nbd device */
  put ("/sys/block/loop0/pid", "444\n");
  put ("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n"
                      "/dev/nbd1                               partition\t1048572\t0\t-2\n");
  put ("/proc/self/mountinfo",
       "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
       "80 22 43:0 / /mnt/zram\\040disk rw,relatime shared:40 - ext4 /dev/nbd0 rw\n");

  EXPECT (nbd_device_of_pids (root, "5,111", out, sizeof out) == 0 &&
          strcmp (out, "/dev/nbd0") == 0, "111: %s", out);
  EXPECT (nbd_device_of_pids (root, "222", out, sizeof out) == 0 &&
          strcmp (out, "/dev/nbd1") == 0, "222: %s", out);
  EXPECT (nbd_device_of_pids (root, "11,1111,22", out, sizeof out) == -1,
          "prefixes of a pid must not match");
  EXPECT (nbd_device_of_pids (root, "333,444", out, sizeof out) == -1,
          "only nbdN devices count");
  EXPECT (nbd_device_of_pids (root, "", out, sizeof out) == -1, "no pids");
  EXPECT (nbd_device_of_pids ("/nonexistent", "111", out, sizeof out) == -1,
          "no sysfs");

  EXPECT (nbd_device_use (root, "/dev/nbd0", out, sizeof out) == 0 &&
          strcmp (out, "/mnt/zram\\040disk") == 0, "nbd0 use: %s", out);
  EXPECT (nbd_device_use (root, "/dev/nbd1", out, sizeof out) == 0 &&
          strcmp (out, "[SWAP]") == 0, "nbd1 use: %s", out);
  EXPECT (nbd_device_use (root, "/dev/nbd2", out, sizeof out) == -1, "nbd2 unused");
  EXPECT (nbd_device_use (root, "/dev/nbd9", out, sizeof out) == -1, "nbd9 absent");
}

/* Run f into a string. */
static char *
capture (int (*f) (FILE *, FILE *, const struct ctl_device *), const struct ctl_device *d,
         int *ret, char **err)
{
  char *out = NULL;
  size_t len = 0, elen = 0;
  FILE *o = open_memstream (&out, &len), *e = open_memstream (err, &elen);

  *ret = f (o, e, d);
  fclose (o);
  fclose (e);
  return out;
}

static int
metrics1 (FILE *o, FILE *e, const struct ctl_device *d)
{
  return ctl_print_metrics (o, e, d, 1);
}

static int
mm (FILE *o, FILE *e, const struct ctl_device *d)
{
  return ctl_print_kstat (o, e, KSTAT_MM, d);
}

static int
bd (FILE *o, FILE *e, const struct ctl_device *d)
{
  return ctl_print_kstat (o, e, KSTAT_BD, d);
}

static struct zctl_reply stats_r, hists_r;

/* Parse text (a whole reply) into r. */
static void
reply_of (struct zctl_reply *r, const char *text)
{
  CHECK (zctl_reply_parse (r, text, strlen (text)) == ZCTL_REPLY_OK);
}

#define STATS(mem_used_total) \
  "disksize=1048576\norig_data_size=8192\ncompr_data_size=100\n" \
  "mem_used_total=" mem_used_total "\nmem_limit=0\nmem_used_max=4096\n" \
  "same_pages=1\npages_compacted=0\nhuge_pages=0\n" \
  "huge_pages_since=123456789\nfailed_reads=0\nfailed_writes=0\n" \
  "invalid_io=0\nnotify_free=0\nconnections=1\ninitialised=1\n" \
  "algorithm=lz4\nlevel=0\npool=zs\nidle_pages=7\n" \
  "incompressible_pages=2\nrecomp_attempts=9\nrecomp_successes=5\n" \
  "recomp_bytes_saved=3000\npages_recomp1=4\npages_recomp2=1\n" \
  "pages_recomp3=0\nok\n"

#define HISTS(write) \
  "read_latency_us=10 0 2 1\nwrite_latency_us=" write "\n" \
  "discard_latency_us=0\ncompressed_size_bytes=100 1 0 0 0 0 0 0 1\nok\n"

static void
test_formats (void)
{
  struct ctl_device d = { "/run/a \"b\"\\c\x1b", &stats_r, &hists_r };
  char *out, *err;
  int r;

  reply_of (&stats_r, STATS ("4096"));
  reply_of (&hists_r, HISTS ("0"));
  out = capture (mm, &d, &r, &err);
  EXPECT (r == 0 && strcmp (out, "    8192      100     4096        0     4096        1"
                           "        0        0 123456789\n") == 0, "mm_stat: '%s'", out);
  free (out);
  free (err);

  /* bd_stat: the server's bd_* keys; zeroes from a server without them. */
  out = capture (bd, &d, &r, &err);
  EXPECT (r == 0 && strcmp (out, "       0        0        0\n") == 0,
          "bd_stat without keys: '%s'", out);
  free (out);
  free (err);
  {
    struct zctl_reply with_bd;
    struct ctl_device d2 = { "x", &with_bd, &hists_r };

    reply_of (&with_bd, "bd_count=12\nbd_reads=345\nbd_writes=6789\nok\n");
    out = capture (bd, &d2, &r, &err);
    EXPECT (r == 0 && strcmp (out, "      12      345     6789\n") == 0,
            "bd_stat: '%s'", out);
    free (out);
    free (err);
    reply_of (&with_bd, "bd_count=12\nbd_reads=x\nbd_writes=6789\nok\n");
    out = capture (bd, &d2, &r, &err);
    EXPECT (r == -1 && strstr (err, "bd_reads"), "bad bd_reads: '%s'", err);
    free (out);
    free (err);
  }

  out = capture (metrics1, &d, &r, &err);
  EXPECT (r == 0, "metrics failed: %s", err);
  EXPECT (strstr (out, "nbdzram_mem_used_bytes{device=\"/run/a \\\"b\\\"\\\\c\\\\x1b\"} 4096\n") != NULL,
          "label escaping: %s", out);
  EXPECT (strchr (out, '\x1b') == NULL, "a raw escape byte in the exposition");
  EXPECT (strstr (out, ",op=\"read\",le=\"0.000002\"} 2\n") != NULL, "cumulative: %s", out);
  EXPECT (strstr (out, ",op=\"read\",le=\"0.000004\"} 3\n") != NULL, "cumulative 4us");
  EXPECT (strstr (out, ",op=\"read\"} 0.000010\n") != NULL, "sum in seconds");
  EXPECT (strstr (out, ",le=\"128\"} 2\n") != NULL, "size buckets");
  EXPECT (strstr (out, "nbdzram_idle_pages{device=") != NULL &&
          strstr (out, "\"} 7\n# HELP nbdzram_incompressible_pages") != NULL, "idle pages: %s", out);
  EXPECT (strstr (out, "nbdzram_recomp_saved_bytes_total{") != NULL &&
          strstr (out, "} 3000\n") != NULL, "bytes saved");
  EXPECT (strstr (out, ",priority=\"1\"} 4\n") != NULL &&
          strstr (out, ",priority=\"2\"} 1\n") != NULL &&
          strstr (out, ",priority=\"3\"} 0\n") != NULL, "pages per priority");
  free (out);
  free (err);

  /* A bad number anywhere: an error naming the key, and no output. */
  reply_of (&stats_r, STATS ("12x"));
  out = capture (metrics1, &d, &r, &err);
  EXPECT (r == -1 && *out == '\0' && strstr (err, "mem_used_total") != NULL,
          "bad number: r=%d out='%s' err='%s'", r, out, err);
  free (out);
  free (err);
  reply_of (&stats_r, STATS ("4096"));
  reply_of (&hists_r, HISTS ("5 1 x"));
  out = capture (metrics1, &d, &r, &err);
  EXPECT (r == -1 && *out == '\0' && strstr (err, "write_latency_us") != NULL,
          "bad histogram: '%s'", err);
  free (out);
  free (err);
  reply_of (&stats_r, "disksize=1\nok\n");  /* an older server: keys missing */
  out = capture (mm, &d, &r, &err);
  EXPECT (r == -1 && strstr (err, "lack 'orig_data_size'") != NULL, "missing: '%s'", err);
  free (out);
  free (err);
}

int
main (void)
{
  char cmd[4200];

  test_names ();
  test_formats ();
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", root);
  if (check_failures)
    return 1;
  printf ("test-ctl-format: ok\n");
  return 0;
}
