#!/usr/bin/env python3
# Write DIR/dict (16 KiB: 512 random 32-byte tokens) and DIR/image (SIZE
# MiB of records drawn from those tokens): data a dictionary helps a lot,
# for the dictionary tests.
# SPDX-License-Identifier: BSD-3-Clause
import random
import sys

d = sys.argv[1]
mib = int(sys.argv[2]) if len(sys.argv) > 2 else 4
rnd = random.Random(7)
tokens = [bytes(rnd.getrandbits(8) for _ in range(32)) for _ in range(512)]
with open(d + "/dict", "wb") as f:
    f.write(b"".join(tokens))
with open(d + "/image", "wb") as f:
    for _ in range(mib * 1024 * 1024 // 32):
        f.write(tokens[rnd.randrange(512)])
