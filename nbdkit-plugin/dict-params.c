/* nbdkit-zram: the plugin's dict= parameter (see dict-params.h).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zram/policy-dict.h"
#include "zram/zcomp-dict.h"
#include "background-params.h"
#include "dict-params.h"

static unsigned char *dict;
static size_t dict_len;
static bool train_on;
static bool train_setting;        /* a dict_train_* setting was given */
static struct zram_dict_policy_config policy;
static bool policy_ready;

static void
policy_init (void)
{
  if (!policy_ready) {
    zram_dict_policy_defaults (&policy);
    policy_ready = true;
  }
}

/* Read the regular file path whole into a new buffer.  0, or -1 reported. */
static int
read_dict (const char *path)
{
  struct stat st;
  unsigned char *buf;
  size_t got = 0;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    nbdkit_error ("dict: cannot open '%s': %m", path);
    return -1;
  }
  if (fstat (fd, &st) == -1) {
    nbdkit_error ("dict: cannot stat '%s': %m", path);
    goto err_close;
  }
  if (!S_ISREG (st.st_mode)) {
    nbdkit_error ("dict: '%s' is not a regular file", path);
    goto err_close;
  }
  if (st.st_size == 0 || st.st_size > ZCOMP_DICT_MAX) {
    nbdkit_error ("dict: '%s' has %jd bytes; a dictionary has 1 to %d "
                  "(make one with 'zstd --train FILES -o DICT')", path,
                  (intmax_t) st.st_size, ZCOMP_DICT_MAX);
    goto err_close;
  }
  buf = malloc (st.st_size);
  if (buf == NULL) {
    nbdkit_error ("dict: %m");
    goto err_close;
  }
  while (got < (size_t) st.st_size) {
    ssize_t r = read (fd, buf + got, st.st_size - got);

    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        nbdkit_error ("dict: '%s' shrank while being read", path);
      else
        nbdkit_error ("dict: cannot read '%s': %m", path);
      free (buf);
      goto err_close;
    }
    got += r;
  }
  close (fd);
  free (dict);
  dict = buf;
  dict_len = got;
  return 0;

 err_close:
  close (fd);
  return -1;
}

int
dict_file_config (const char *key, const char *value)
{
  policy_init ();
  if (strcmp (key, "dict_train") == 0) {
    if (strcmp (value, "on") == 0 || strcmp (value, "off") == 0) {
      train_on = value[1] == 'n';
      return 1;
    }
    nbdkit_error ("dict_train: expected on or off, not '%s'", value);
    return -1;
  }
  if (strcmp (key, "dict_train_gain") == 0) {
    unsigned pm;

    if (bg_parse_permille (value, &pm) == -1 || pm > 1000) {
      nbdkit_error ("dict_train_gain: expected a percentage 0 to 100 "
                    "(e.g. 2 or 2.5), not '%s'", value);
      return -1;
    }
    policy.req.gain_pm = pm;
    train_setting = true;
    return 1;
  }
  if (strcmp (key, "dict_train_period") == 0) {
    unsigned s;

    if (nbdkit_parse_unsigned ("dict_train_period", value, &s) == -1)
      return -1;
    if (s == 0 || s > 86400 * 7) {
      nbdkit_error ("dict_train_period: %u seconds is out of range "
                    "(1 to 604800)", s);
      return -1;
    }
    policy.period_ms = s * 1000;
    train_setting = true;
    return 1;
  }
  if (strcmp (key, "dict_train_min_pages") == 0) {
    if (nbdkit_parse_uint64_t ("dict_train_min_pages", value,
                               &policy.min_pages) == -1)
      return -1;
    train_setting = true;
    return 1;
  }
  if (strcmp (key, "dict") != 0)
    return 0;
  if (*value == '\0') {
    nbdkit_error ("dict: empty; give the path of a dictionary file");
    return -1;
  }
  return read_dict (value) == 0 ? 1 : -1;
}

const void *
dict_file_bytes (size_t *len)
{
  *len = dict_len;
  return dict;
}

int
dict_file_complete (enum zcomp_algo algo, int level)
{
  struct zcomp *comp;
  struct zcomp_dict *d;

  if (train_setting && !train_on) {
    nbdkit_error ("dict_train_gain, dict_train_period and "
                  "dict_train_min_pages need dict_train=on");
    return -1;
  }
  if (dict == NULL)
    return 0;
  comp = zcomp_create (algo, level);
  if (comp == NULL) {
    nbdkit_error ("dict: %m");
    return -1;
  }
  d = zcomp_dict_create (comp, dict, dict_len);
  if (d == NULL)
    nbdkit_error ("dict: %s refuses the dictionary: %s", zcomp_algo_name (algo),
                  errno == EINVAL ? "it has a zstd dictionary header but is "
                  "not a valid zstd dictionary" : strerror (errno));
  zcomp_dict_destroy (d);
  zcomp_destroy (comp);
  return d == NULL ? -1 : 0;
}

int
dict_policy_add (struct zram_bg *bg, struct zram *zram)
{
  if (!train_on)
    return 0;
  policy_init ();
  policy.log = bg_log_debug;
  if (zram_dict_policy_add (bg, zram, &policy) == -1) {
    nbdkit_error ("dict_train: cannot add the dictionary policy: %m");
    return -1;
  }
  nbdkit_debug ("dictionary policy: a try every %u s once %llu pages are "
                "stored, publish at a gain of %u.%u %%", policy.period_ms / 1000,
                (unsigned long long) policy.min_pages, policy.req.gain_pm / 10,
                policy.req.gain_pm % 10);
  return 0;
}

void
dict_file_release (void)
{
  free (dict);
  dict = NULL;
  dict_len = 0;
}
