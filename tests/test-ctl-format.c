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

static void
test_formats (void)
{
  struct ctl_kv stats[] = {
    { "disksize", "1048576" }, { "orig_data_size", "8192" },
    { "compr_data_size", "100" }, { "mem_used_total", "4096" },
    { "mem_limit", "0" }, { "mem_used_max", "4096" }, { "same_pages", "1" },
    { "pages_compacted", "0" }, { "huge_pages", "0" },
    { "huge_pages_since", "123456789" }, { "failed_reads", "0" },
    { "failed_writes", "0" }, { "invalid_io", "0" }, { "notify_free", "0" },
    { "connections", "1" }, { "initialised", "1" }, { "algorithm", "lz4" },
    { "level", "0" }, { "pool", "zs" },
  };
  struct ctl_kv hists[] = {
    { "read_latency_us", "10 0 2 1" }, { "write_latency_us", "0" },
    { "discard_latency_us", "0" }, { "compressed_size_bytes", "100 1 0 0 0 0 0 0 1" },
  };
  struct ctl_device d = { "/run/a \"b\"\\c", stats, sizeof stats / sizeof stats[0],
                          hists, 4 };
  char *out, *err;
  int r;

  out = capture (mm, &d, &r, &err);
  EXPECT (r == 0 && strcmp (out, "    8192      100     4096        0     4096        1"
                           "        0        0 123456789\n") == 0, "mm_stat: '%s'", out);
  free (out);
  free (err);

  out = capture (metrics1, &d, &r, &err);
  EXPECT (r == 0, "metrics failed: %s", err);
  EXPECT (strstr (out, "nbdzram_mem_used_bytes{device=\"/run/a \\\"b\\\"\\\\c\"} 4096\n") != NULL,
          "label escaping: %s", out);
  EXPECT (strstr (out, ",op=\"read\",le=\"0.000002\"} 2\n") != NULL, "cumulative: %s", out);
  EXPECT (strstr (out, ",op=\"read\",le=\"0.000004\"} 3\n") != NULL, "cumulative 4us");
  EXPECT (strstr (out, ",op=\"read\"} 0.00001\n") != NULL ||
          strstr (out, ",op=\"read\"} 0.000010\n") != NULL, "sum in seconds");
  EXPECT (strstr (out, "nbdzram_stored_page_size_bytes_bucket{device=\"/run/a \\\"b\\\"\\\\c\",le=\"128\"} 2\n") != NULL,
          "size buckets");
  free (out);
  free (err);

  /* A bad number anywhere: an error naming the key, and no output. */
  stats[3].value = "12x";
  out = capture (metrics1, &d, &r, &err);
  EXPECT (r == -1 && *out == '\0' && strstr (err, "mem_used_total") != NULL,
          "bad number: r=%d out='%s' err='%s'", r, out, err);
  free (out);
  free (err);
  stats[3].value = "4096";
  hists[1].value = "5 1 x";
  out = capture (metrics1, &d, &r, &err);
  EXPECT (r == -1 && *out == '\0' && strstr (err, "write_latency_us") != NULL,
          "bad histogram: '%s'", err);
  free (out);
  free (err);
  hists[1].value = "0";
  d.nstats = 3;                 /* an older server: keys missing */
  out = capture (mm, &d, &r, &err);
  EXPECT (r == -1 && strstr (err, "lack 'mem_used_total'") != NULL, "missing: '%s'", err);
  free (out);
  free (err);

  /* Terminal control bytes from a server are shown, not obeyed. */
  {
    char *s = NULL;
    size_t len = 0;
    FILE *o = open_memstream (&s, &len);

    ctl_print_safe (o, "ok\x1b]0;pwned\x07\xff");
    fclose (o);
    EXPECT (strcmp (s, "ok\\x1b]0;pwned\\x07\\xff") == 0, "%s", s);
    free (s);
  }
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
