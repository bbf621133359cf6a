/* Promela model of zram_reset against the data path (liburcu-bp).
 * Copyright (C) 2026 The nbdkit-zram authors.  SPDX-License-Identifier: BSD-3-Clause
 *
 * What is modelled (src/zram.c, liburcu-bp 0.13 urcu-bp.c):
 *   - two device states ("meta" objects 1 and 2) reused alternately, with a
 *     generation number bumped on every free, so a reader that keeps a
 *     pointer across free + reuse (ABA) is caught too;
 *   - readers: urcu_bp_read_lock stores a snapshot of the grace-period
 *     phase in the reader's slot, as a separate load and store (as in
 *     urcu-bp: "ctr = CMM_LOAD_SHARED (gp.ctr)"), then load meta, use it
 *     for two steps, unlock;
 *   - the resetter: build a fresh state, claim (without force: only if no
 *     connection is open, in one atomic step), exchange meta with NULL,
 *     synchronize_rcu (two phase flips, each waiting for every reader that
 *     is in a read section of the old phase), free the old state, publish
 *     the fresh one, drop the claim;
 *   - a connection: zram_open (atomic: refused while claimed) and
 *     zram_close.
 * Sequential consistency is assumed: the memory barriers (membarrier in
 * urcu-bp, the release/acquire on meta) are what make the real code
 * behave so; they are not modelled.
 *
 * Checked properties:
 *   - no reader touches a freed or reused state (assertions);
 *   - a reset without force never proceeds while a connection is open;
 *   - no deadlock (invalid end states);
 *   - with -DNP (pan -l -f): the resetter always makes progress under weak
 *     fairness, i.e. readers cannot starve a grace period.
 * Compile with -DONE_FLIP to model a synchronize_rcu with one phase flip:
 * spin must then find a use-after-free (the test checks that it does).
 * With -DNO_CLAIM, zram_open ignores the claim: spin must then find a
 * connection open during a reset without force.
 */

#define NREADERS 2

byte meta = 1;                  /* published state: 0 = none (resetting) */
bool freed[3];                  /* freed[1], freed[2]: state is free */
byte gen[3];                    /* bumped (mod 4) on every free of a state */
bit gp_phase = 0;
byte reader_ctr[NREADERS];      /* 0 = offline, else 1 + phase at lock */

bool claim = false;             /* a reset without force holds the device */
byte nopen = 0;                 /* open connections */
bool resetting_unforced = false;

inline wait_old_readers ()
{
  /* Block until no reader is in a read section of the old phase. */
  (reader_ctr[0] == 0 || reader_ctr[0] == 1 + gp_phase) &&
  (reader_ctr[1] == 0 || reader_ctr[1] == 1 + gp_phase)
}

inline synchronize_rcu ()
{
  gp_phase = 1 - gp_phase;
  wait_old_readers ();
#ifndef ONE_FLIP
  gp_phase = 1 - gp_phase;
  wait_old_readers ();
#endif
}

proctype reader (byte id)
{
  bit snap;
  byte m, g;

  do
  :: snap = gp_phase;                   /* urcu_bp_read_lock: load ... */
     reader_ctr[id] = 1 + snap;         /* ... then store */
     m = meta;                          /* rcu_dereference */
     if
     :: m != 0 ->
        g = gen[m];
        assert (!freed[m]);             /* use, step 1 */
        assert (!freed[m] && gen[m] == g);   /* use, step 2 */
     :: else -> skip                    /* EIO: reset in progress */
     fi;
     reader_ctr[id] = 0;                /* urcu_bp_read_unlock */
     m = 0; g = 0                       /* dead values: fewer states */
  od
}

proctype connection ()
{
  do
#ifdef NO_CLAIM
  :: atomic { nopen++ };                /* a broken zram_open */
#else
  :: atomic { !claim -> nopen++ };      /* zram_open succeeds */
#endif
     assert (!resetting_unforced);
     atomic { nopen-- }                 /* zram_close */
  :: atomic { claim -> skip }           /* zram_open: EBUSY */
  od
}

proctype resetter ()
{
  byte old, fresh;
  bool force, ok;

  do
  :: /* meta_create: the state that is not published is free. */
     fresh = (meta == 1 -> 2 : 1);
     assert (freed[fresh]);
     freed[fresh] = false;
     if
     :: force = true
     :: force = false
     fi;
     if
     :: force -> ok = true
     :: else ->
        atomic {
          if
          :: nopen == 0 && !claim -> claim = true; ok = true;
             resetting_unforced = true
          :: else -> ok = false
          fi
        }
     fi;
     if
     :: ok ->
        atomic { old = meta; meta = 0 };        /* rcu_xchg_pointer */
        synchronize_rcu ();
        assert (force || nopen == 0);
        freed[old] = true;                      /* meta_destroy */
        gen[old] = (gen[old] + 1) % 4;
        meta = fresh;                           /* publish */
        if
        :: !force -> resetting_unforced = false; claim = false
        :: else -> skip
        fi
     :: else ->
        freed[fresh] = true                     /* EBUSY: drop fresh */
     fi;
progress:
     old = 0; fresh = 0; force = false; ok = false
  od
}

init
{
  freed[1] = false;
  freed[2] = true;
  atomic {
    run reader (0);
    run reader (1);
    run connection ();
    run resetter ()
  }
}
