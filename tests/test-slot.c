/* Unit test: slot packing, the slot lock, same-filled detection.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "zram/compiler.h"
#include "zram/slot.h"
#include "zram/zram.h"
#include "check.h"

#define THREADS 4
#define ROUNDS 100000

static struct zram_slot shared_slot;
static uint64_t counter;        /* guarded by shared_slot's lock */

static void *
lock_worker (void *arg UNUSED)
{
  for (int i = 0; i < ROUNDS; ++i) {
    slot_lock (&shared_slot);
    counter++;                  /* a plain increment: the lock must protect it */
    slot_unlock (&shared_slot);
  }
  return NULL;
}

static void
test_packing (void)
{
  struct zram_slot s = { 0, 0 };

  CHECK (slot_is_empty (&s));
  CHECK (slot_peek_zero (&s));
  slot_lock (&s);
  CHECK (slot_test_flag (&s, SLOT_LOCK));
  slot_set_handle (&s, 0xdeadbeefcafeULL);
  slot_set_size_flags (&s, 4096, SLOT_BIT (SLOT_HUGE), 0);
  CHECK (slot_get_handle (&s) == 0xdeadbeefcafeULL);
  CHECK (slot_get_size (&s) == 4096);
  CHECK (slot_test_flag (&s, SLOT_HUGE));
  CHECK (!slot_test_flag (&s, SLOT_SAME));
  CHECK (slot_test_flag (&s, SLOT_LOCK));  /* setters keep the lock */
  CHECK (!slot_is_empty (&s));
  CHECK (!slot_peek_zero (&s));
  slot_set_size_flags (&s, 1, 0, 0);
  CHECK (slot_get_size (&s) == 1 && !slot_test_flag (&s, SLOT_HUGE));
  slot_unlock (&s);
  CHECK (!slot_test_flag (&s, SLOT_LOCK));
  CHECK (slot_get_size (&s) == 1);

  /* SAME with the word 0 is a zero page; with another word it is data. */
  slot_lock (&s);
  slot_set_handle (&s, 0);
  slot_set_size_flags (&s, 0, SLOT_BIT (SLOT_SAME), 0);
  slot_unlock (&s);
  CHECK (!slot_is_empty (&s) && slot_peek_zero (&s));
  slot_lock (&s);
  slot_set_handle (&s, 0x0101010101010101ULL);
  slot_unlock (&s);
  CHECK (!slot_peek_zero (&s));
  CHECK (sizeof (struct zram_slot) == 16);
}

static void
test_lock (void)
{
  pthread_t t[THREADS];

  for (int i = 0; i < THREADS; ++i)
    CHECK (pthread_create (&t[i], NULL, lock_worker, NULL) == 0);
  for (int i = 0; i < THREADS; ++i)
    pthread_join (t[i], NULL);
  CHECK (counter == (uint64_t) THREADS * ROUNDS);
}

static void
test_same_filled (void)
{
  unsigned char buf[ZRAM_PAGE_SIZE + 16];
  uint64_t word = 1, pattern = 0x1122334455667788ULL;

  for (int shift = 0; shift < 9; shift += 3) {   /* aligned and not */
    unsigned char *page = buf + shift;

    memset (page, 0, ZRAM_PAGE_SIZE);
    CHECK (page_same_filled (page, &word) && word == 0);
    page_fill (page, pattern);
    CHECK (page_same_filled (page, &word) && word == pattern);
    CHECK (memcmp (page, &pattern, 8) == 0);
    page[ZRAM_PAGE_SIZE - 1] ^= 1;               /* last byte differs */
    CHECK (!page_same_filled (page, &word));
    page_fill (page, pattern);
    page[2048] ^= 0x80;                          /* a middle byte differs */
    CHECK (!page_same_filled (page, &word));
    memset (page, 0xab, ZRAM_PAGE_SIZE);         /* bytes repeat: words too */
    CHECK (page_same_filled (page, &word) && word == 0xababababababababULL);
  }
}

static void
test_table (void)
{
  const uint64_t nr = 1 << 20;                        /* 16 MiB, untouched */
  struct slot_table t;

  CHECK (slot_table_create (&t, nr) == 0);
  CHECK (slot_is_empty (slot_at (&t, 0)) && slot_is_empty (slot_at (&t, nr - 1)));
  CHECK (slot_table_peek_zero (&t, 0) && slot_table_peek_zero (&t, nr - 1));

  /* The touched map: nothing touched, then groups 1 and 200 (group 200 in
   * the fourth word of the map).
   */
  CHECK (!slot_table_touched (&t, 0) && !slot_table_touched (&t, nr - 1));
  CHECK (slot_table_next_touched (&t, 0, nr) == nr);
  slot_table_touch (&t, SLOT_GROUP_SLOTS + 5);
  slot_table_touch (&t, 200 * SLOT_GROUP_SLOTS + 17);
  slot_table_touch (&t, 200 * SLOT_GROUP_SLOTS + 3);  /* set already */
  CHECK (slot_table_touched (&t, SLOT_GROUP_SLOTS) &&
         slot_table_touched (&t, 2 * SLOT_GROUP_SLOTS - 1));
  CHECK (!slot_table_touched (&t, SLOT_GROUP_SLOTS - 1) &&
         !slot_table_touched (&t, 2 * SLOT_GROUP_SLOTS));
  CHECK (slot_table_next_touched (&t, 0, nr) == SLOT_GROUP_SLOTS);
  CHECK (slot_table_next_touched (&t, SLOT_GROUP_SLOTS + 9, nr) == SLOT_GROUP_SLOTS + 9);
  CHECK (slot_table_next_touched (&t, 2 * SLOT_GROUP_SLOTS, nr) == 200 * SLOT_GROUP_SLOTS);
  /* "to" bounds the answer, also inside a word and at a group edge. */
  CHECK (slot_table_next_touched (&t, 0, SLOT_GROUP_SLOTS) == SLOT_GROUP_SLOTS);
  CHECK (slot_table_next_touched (&t, 0, 5) == 5);
  CHECK (slot_table_next_touched (&t, 2 * SLOT_GROUP_SLOTS, 200 * SLOT_GROUP_SLOTS)
         == 200 * SLOT_GROUP_SLOTS);
  CHECK (slot_table_next_touched (&t, 2 * SLOT_GROUP_SLOTS, 200 * SLOT_GROUP_SLOTS + 1)
         == 200 * SLOT_GROUP_SLOTS);
  CHECK (slot_table_next_touched (&t, 201 * SLOT_GROUP_SLOTS, nr) == nr);
  CHECK (slot_table_next_touched (&t, nr, nr) == nr);
  /* A touched group with an empty slot still peeks as zero. */
  CHECK (slot_table_peek_zero (&t, SLOT_GROUP_SLOTS + 5));
  slot_table_destroy (&t);
  slot_table_destroy (&t);                            /* idempotent */

  CHECK (slot_table_create (&t, 0) == -1);
  CHECK (slot_table_create (&t, UINT64_MAX / 4) == -1);
  slot_table_destroy (&t);
}

int
main (void)
{
  test_packing ();
  test_lock ();
  test_same_filled ();
  test_table ();
  printf ("test-slot: ok\n");
  return 0;
}
