/*
 * Unit tests for auth/kdfcache: tags tell their parts apart, entries are found only under their
 * own tag and are wiped when the source changes, and the time budget refills at its rate,
 * never holds more than one second's worth, and learns PBKDF2's speed.
 */
/* link: src/auth/kdfcache.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/kdfcache.h"

static void tag_of(const struct kdfcache *kc, const char *a, const char *b, uint8_t *tag)
{
	const char *parts[] = { a, b };

	assert_true(kdfcache_tag(kc, parts, 2, tag));
}

static void test_tags_tell_parts_apart(void **state)
{
	struct kdfcache *kc = kdfcache_new(16), *other = kdfcache_new(16);
	uint8_t t1[KDFCACHE_TAG_LEN], t2[KDFCACHE_TAG_LEN];

	assert_non_null(kc);
	assert_non_null(other);
	tag_of(kc, "ab", "c", t1);
	tag_of(kc, "ab", "c", t2);
	assert_memory_equal(t1, t2, KDFCACHE_TAG_LEN);
	tag_of(kc, "a", "bc", t2);
	assert_memory_not_equal(t1, t2, KDFCACHE_TAG_LEN);
	tag_of(kc, "", NULL, t1);
	tag_of(kc, "", "", t2);
	assert_memory_not_equal(t1, t2, KDFCACHE_TAG_LEN);
	/* each cache has its own key */
	tag_of(kc, "alice", "pw", t1);
	tag_of(other, "alice", "pw", t2);
	assert_memory_not_equal(t1, t2, KDFCACHE_TAG_LEN);
	kdfcache_free(kc);
	kdfcache_free(other);
}

/*
 * Tags of alice's and of another user's password that sit in different slots of kc: a slot
 * holds one tag, and which slot a tag takes depends on the key kc drew, so "bob" would share
 * alice's slot in one run out of 64. The probing leaves kc empty.
 */
static void tags_apart(struct kdfcache *kc, uint8_t t1[KDFCACHE_TAG_LEN],
		       uint8_t t2[KDFCACHE_TAG_LEN])
{
	int probe;

	tag_of(kc, "alice", "secret", t1);
	for (int i = 0; i < 1000; i++) {
		char user[16];
		bool apart;

		snprintf(user, sizeof(user), "bob%d", i);
		tag_of(kc, user, "secret", t2);
		kdfcache_put(kc, t1, NULL);
		kdfcache_put(kc, t2, NULL);
		apart = kdfcache_get(kc, t1, NULL);
		kdfcache_bind(kc, &probe); /* another source: wiped */
		if (apart)
			return;
	}
	fail_msg("no two tags in different slots");
}

static void test_get_put_bind(void **state)
{
	struct kdfcache *kc = kdfcache_new(64);
	uint8_t t1[KDFCACHE_TAG_LEN], t2[KDFCACHE_TAG_LEN];
	struct scram_secret s = { .iterations = 4096, .salt_len = 3 }, got;
	int source1, source2;

	assert_non_null(kc);
	tags_apart(kc, t1, t2);
	kdfcache_bind(kc, &source1);
	memset(s.stored_key, 7, sizeof(s.stored_key));
	assert_false(kdfcache_get(kc, t1, NULL));
	kdfcache_put(kc, t1, &s);
	kdfcache_put(kc, t2, NULL);
	assert_true(kdfcache_get(kc, t1, &got));
	assert_int_equal(got.iterations, 4096);
	assert_memory_equal(got.stored_key, s.stored_key, sizeof(s.stored_key));
	assert_true(kdfcache_get(kc, t2, NULL));
	/* a bare "matched" entry has no secret to give */
	assert_false(kdfcache_get(kc, t2, &got));
	/* the same source keeps the entries, another wipes them */
	kdfcache_bind(kc, &source1);
	assert_true(kdfcache_get(kc, t1, NULL));
	kdfcache_bind(kc, &source2);
	assert_false(kdfcache_get(kc, t1, NULL));
	assert_false(kdfcache_get(kc, t2, NULL));
	kdfcache_free(kc);
}

static void test_one_slot_keeps_the_newest(void **state)
{
	struct kdfcache *kc = kdfcache_new(1);
	uint8_t t1[KDFCACHE_TAG_LEN], t2[KDFCACHE_TAG_LEN];

	assert_non_null(kc);
	tag_of(kc, "alice", "1", t1);
	tag_of(kc, "alice", "2", t2);
	kdfcache_put(kc, t1, NULL);
	kdfcache_put(kc, t2, NULL);
	assert_false(kdfcache_get(kc, t1, NULL));
	assert_true(kdfcache_get(kc, t2, NULL));
	kdfcache_free(kc);
}

static void test_budget(void **state)
{
	struct kdfcache *kc = kdfcache_new(1);
	uint64_t t = 1000000;

	assert_non_null(kc);
	/* 1 us an iteration until measured: 1000 iterations cost an estimated 1 ms */
	assert_true(kdfcache_estimate_us(kc, 1000) > 999 && kdfcache_estimate_us(kc, 1000) < 1001);
	/* 10 ms a second: the bucket holds 10 ms */
	assert_true(kdfcache_afford(kc, t, 10000, 4000));
	kdfcache_charge(kc, 4000, 4000);
	assert_true(kdfcache_afford(kc, t, 10000, 4000));
	kdfcache_charge(kc, 4000, 4000);
	assert_false(kdfcache_afford(kc, t, 10000, 4000));
	assert_true(kdfcache_afford(kc, t, 10000, 2000));
	kdfcache_charge(kc, 2000, 2000);
	assert_false(kdfcache_afford(kc, t, 10000, 1));
	/* 200 ms refill 2 ms */
	t += 200000;
	assert_true(kdfcache_afford(kc, t, 10000, 2000));
	kdfcache_charge(kc, 2000, 2000);
	assert_false(kdfcache_afford(kc, t, 10000, 1000));
	/* a long pause refills the bucket, no more */
	t += 60000000;
	assert_true(kdfcache_afford(kc, t, 10000, 10000));
	kdfcache_charge(kc, 10000, 10000);
	assert_false(kdfcache_afford(kc, t, 10000, 1));
	/* a dearer derivation runs on a full bucket and leaves a debt: 40 ms owed, 4 s to pay */
	t += 60000000;
	assert_true(kdfcache_afford(kc, t, 10000, 50000));
	kdfcache_charge(kc, 50000, 50000);
	t += 3000000;
	assert_false(kdfcache_afford(kc, t, 10000, 1));
	t += 1100000;
	assert_true(kdfcache_afford(kc, t, 10000, 1000));
	/* what is charged is the time measured, and the estimate follows it */
	t += 60000000;
	for (int i = 0; i < 40; i++) {
		kdfcache_afford(kc, t, 10000, 1000);
		kdfcache_charge(kc, 1000, 10000);
	}
	assert_true(kdfcache_estimate_us(kc, 1000) > 9000);
	assert_false(kdfcache_afford(kc, t, 10000, 1));
	kdfcache_free(kc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tags_tell_parts_apart),
		cmocka_unit_test(test_get_put_bind),
		cmocka_unit_test(test_one_slot_keeps_the_newest),
		cmocka_unit_test(test_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
