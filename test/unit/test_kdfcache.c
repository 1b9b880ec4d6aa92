/*
 * Unit tests for auth/kdfcache: tags tell their parts apart, entries are found only under their
 * own tag and are wiped when the source changes, and the iteration budget refills at its rate
 * without ever holding more than one second's worth.
 */
/* link: src/auth/kdfcache.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static void test_get_put_bind(void **state)
{
	struct kdfcache *kc = kdfcache_new(64);
	uint8_t t1[KDFCACHE_TAG_LEN], t2[KDFCACHE_TAG_LEN];
	struct scram_secret s = { .iterations = 4096, .salt_len = 3 }, got;
	int source1, source2;

	assert_non_null(kc);
	kdfcache_bind(kc, &source1);
	memset(s.stored_key, 7, sizeof(s.stored_key));
	tag_of(kc, "alice", "secret", t1);
	tag_of(kc, "bob", "secret", t2);
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
	/* a tenth of a second's worth at first, then nothing until time passes */
	assert_true(kdfcache_spend(kc, t, 100000, 4000));
	assert_true(kdfcache_spend(kc, t, 100000, 4000));
	assert_false(kdfcache_spend(kc, t, 100000, 4000));
	assert_true(kdfcache_spend(kc, t, 100000, 2000));
	assert_false(kdfcache_spend(kc, t, 100000, 1));
	/* 20 ms refill 2000 */
	t += 20000;
	assert_true(kdfcache_spend(kc, t, 100000, 2000));
	assert_false(kdfcache_spend(kc, t, 100000, 1));
	/* a long pause refills the bucket, no more */
	t += 60000000;
	assert_true(kdfcache_spend(kc, t, 100000, 10000));
	assert_false(kdfcache_spend(kc, t, 100000, 1));
	/* a dearer check runs on a full bucket and leaves a debt: 40000 owed, 0.4 s to pay */
	t += 60000000;
	assert_true(kdfcache_spend(kc, t, 100000, 50000));
	t += 300000;
	assert_false(kdfcache_spend(kc, t, 100000, 1));
	t += 110000;
	assert_true(kdfcache_spend(kc, t, 100000, 1000));
	/* more than one second's worth can never be afforded */
	t += 60000000;
	assert_false(kdfcache_spend(kc, t, 100000, 100001));
	assert_true(kdfcache_spend(kc, t, 100000, 100000));
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
