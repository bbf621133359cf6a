#!/usr/bin/env bash
# The export offers what Linux swap needs to discard freed swap space as it
# goes (swapon --discard=pages, issue 15): trim, and not rotational.  The
# kernel's NBD client copies the server's rotational flag to the device,
# and swap on a rotational device discards nothing after swapon, so every
# page ever swapped out would stay stored (README.md, "Use as swap").
# SPDX-License-Identifier: BSD-3-Clause
. "$srcdir/functions.sh"
requires nbdkit nbdinfo
make_tmpdir

start_nbdkit "$tmpdir/pid" "$tmpdir/sock" 16M
nbdinfo --json "$(uri_of "$tmpdir/sock")" > "$tmpdir/info.json"
/usr/bin/python3 - "$tmpdir/info.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
problems = []
if e.get("is_rotational") is not False:
    problems.append("is_rotational is %r (swap would never discard freed clusters)"
                    % e.get("is_rotational"))
if e.get("can_trim") is not True:
    problems.append("can_trim is %r (swapon --discard needs trim)" % e.get("can_trim"))
if problems:
    sys.exit("FAIL: " + "; ".join(problems))
print("export: not rotational, trim offered")
PY
