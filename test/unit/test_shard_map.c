/*
 * Unit tests for shard/map: shares by weight in contiguous runs, plans that move only what the
 * new weights require (none between two old shards when one is added) and keep runs few,
 * overrides (set, removed, carried over or dropped by a plan, checked), buckets given to a
 * shard (an old one, or a new one added), validation, and how evenly keys spread.
 */
/* link: src/shard/map.c src/shard/bucket.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/bucket.h"
#include "shard/map.h"

#define BUCKETS 16384

static const char *const NAMES[] = {
	"s0",  "s1",  "s2",  "s3",  "s4",  "s5",  "s6",  "s7",  "s8",  "s9",  "s10", "s11", "s12",
	"s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25",
	"s26", "s27", "s28", "s29", "s30", "s31", "s32", "s33", "s34", "s35", "s36", "s37", "s38",
	"s39", "s40", "s41", "s42", "s43", "s44", "s45", "s46", "s47", "s48", "s49", "s50", "s51",
	"s52", "s53", "s54", "s55", "s56", "s57", "s58", "s59", "s60", "s61", "s62", "s63", "s64",
};
static const double ONES[65] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
				 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
				 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

static struct shard_map *create(int n, const double *weights)
{
	char err[200];
	struct shard_map *m = shard_map_create(BUCKETS, 0, NAMES, weights, n, err, sizeof(err));

	if (!m)
		fail_msg("shard_map_create: %s", err);
	return m;
}

static void assert_counts(const struct shard_map *m, const uint32_t *expected)
{
	uint32_t counts[SHARD_MAX];

	shard_map_counts(m, counts);
	for (int i = 0; i < m->n_shards; i++)
		if (counts[i] != expected[i])
			fail_msg("shard %s holds %u buckets, expected %u", m->names[i], counts[i],
				 expected[i]);
}

/* The runs of shard s in m (all shards' runs when s is -1). */
static int runs(const struct shard_map *m, int s)
{
	int n = 0;

	for (uint32_t b = 0; b < m->n_buckets; b++)
		if ((s < 0 || m->owner[b] == s) && (b == 0 || m->owner[b - 1] != m->owner[b]))
			n++;
	return n;
}

static struct shard_map *plan(const struct shard_map *old, const char *const *names,
			      const double *weights, int n)
{
	struct shard_move *moves;
	size_t n_moves;
	char err[200];
	struct shard_map *m = shard_map_plan(old, names, weights, n, &moves, &n_moves, err,
					     sizeof(err));

	if (!m)
		fail_msg("shard_map_plan: %s", err);
	free(moves);
	return m;
}

static void test_create_shares_by_weight(void **state)
{
	static const double weights[] = { 1, 2, 1 };
	struct shard_map *m = create(3, ONES);
	char err[200];

	assert_counts(m, (uint32_t[]){ 5462, 5461, 5461 });
	assert_true(shard_map_validate(m, err, sizeof(err)));
	assert_int_equal(m->version, 1);
	/* one run each, in order */
	assert_int_equal(m->owner[0], 0);
	assert_int_equal(m->owner[5461], 0);
	assert_int_equal(m->owner[5462], 1);
	assert_int_equal(m->owner[10923], 2);
	assert_int_equal(m->owner[BUCKETS - 1], 2);
	shard_map_free(m);
	m = create(3, weights);
	assert_counts(m, (uint32_t[]){ 4096, 8192, 4096 });
	assert_int_equal(m->owner[4095], 0);
	assert_int_equal(m->owner[4096], 1);
	assert_int_equal(m->owner[12288], 2);
	shard_map_free(m);
}

static void test_first_map_is_one_run_per_shard(void **state)
{
	for (int n = 1; n <= 64; n++) {
		struct shard_map *m = create(n, ONES);

		assert_int_equal(runs(m, -1), n);
		for (int i = 0; i < n; i++)
			assert_int_equal(runs(m, i), 1);
		shard_map_free(m);
	}
}

/*
 * Adding shards one by one keeps runs few: a shard that gives buckets up never gains a run
 * (it gives the end or the start of a run), and the new shard takes at most one piece from
 * each old one.
 */
static void test_plans_keep_runs_few(void **state)
{
	struct shard_map *m = create(4, ONES), *next;

	next = plan(m, NAMES, ONES, 5);
	for (int i = 0; i < 5; i++)
		if (runs(next, i) > 2)
			fail_msg("4 -> 5 shards: shard %d in %d runs", i, runs(next, i));
	/* the four given-up pieces join in pairs across the old boundaries */
	assert_int_equal(runs(next, 4), 2);
	assert_int_equal(runs(next, -1), 6);
	shard_map_free(m);
	m = next;
	for (int n = 6; n <= 16; n++) {
		next = plan(m, NAMES, ONES, n);
		for (int i = 0; i < n - 1; i++)
			if (runs(next, i) > runs(m, i))
				fail_msg("%d -> %d shards: shard %d from %d to %d runs", n - 1, n,
					 i, runs(m, i), runs(next, i));
		assert_true(runs(next, n - 1) <= n - 1);
		shard_map_free(m);
		m = next;
	}
	shard_map_free(m);
}

static void test_create_refuses_bad_input(void **state)
{
	static const char *const twice[] = { "a", "a" };
	static const double bad[] = { 1, 0 };
	char err[200];

	assert_null(shard_map_create(1000, 0, NAMES, ONES, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "power of two"));
	assert_null(shard_map_create(BUCKETS, 0, twice, ONES, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "named twice"));
	assert_null(shard_map_create(BUCKETS, 0, NAMES, bad, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "weight"));
	assert_null(shard_map_create(BUCKETS, 0, NAMES, ONES, 0, err, sizeof(err)));
	assert_null(shard_map_create(BUCKETS, 0, (const char *const[]){ "a b" }, ONES, 1, err,
				     sizeof(err)));
	assert_non_null(strstr(err, "letters"));
}

/* Adding shard N+1 to N: only the new share moves, all of it to the new shard. */
static void test_adding_a_shard_moves_only_its_share(void **state)
{
	for (int n = 1; n < 64; n++) {
		struct shard_map *old = create(n, ONES), *m;
		struct shard_move *moves;
		uint32_t counts[SHARD_MAX];
		size_t n_moves;
		char err[200];

		m = shard_map_plan(old, NAMES, ONES, n + 1, &moves, &n_moves, err, sizeof(err));
		assert_non_null(m);
		assert_true(shard_map_validate(m, err, sizeof(err)));
		assert_int_equal(m->version, 2);
		shard_map_counts(m, counts);
		assert_int_equal(n_moves, counts[n]);
		for (size_t k = 0; k < n_moves; k++)
			if (moves[k].to != n || old->owner[moves[k].bucket] != moves[k].from)
				fail_msg("%d -> %d shards: bucket %u moves %d -> %d", n, n + 1,
					 moves[k].bucket, moves[k].from, moves[k].to);
		for (int i = 0; i <= n; i++) {
			uint32_t share = BUCKETS / (uint32_t)(n + 1);

			assert_true(counts[i] == share || counts[i] == share + 1);
		}
		free(moves);
		shard_map_free(m);
		shard_map_free(old);
	}
}

static void test_removing_and_reweighting(void **state)
{
	static const char *const without_s1[] = { "s0", "s2", "s3" };
	static const double heavier_s0[] = { 3, 1, 1, 1 };
	struct shard_map *old = create(4, ONES), *m;
	struct shard_move *moves;
	size_t n_moves;
	char err[200];

	/* s1 leaves: its 4096 buckets, and only they, go to the others, evenly */
	m = shard_map_plan(old, without_s1, ONES, 3, &moves, &n_moves, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(n_moves, 4096);
	for (size_t k = 0; k < n_moves; k++)
		assert_int_equal(moves[k].from, 1);
	assert_counts(m, (uint32_t[]){ 5462, 5461, 5461 });
	free(moves);
	shard_map_free(m);
	/* s0 weighs 3: it takes 4096 more, from the three others alike */
	m = shard_map_plan(old, NAMES, heavier_s0, 4, &moves, &n_moves, err, sizeof(err));
	assert_non_null(m);
	assert_counts(m, (uint32_t[]){ 8192, 2731, 2731, 2730 });
	assert_int_equal(n_moves, 4096);
	for (size_t k = 0; k < n_moves; k++)
		assert_int_equal(moves[k].to, 0);
	free(moves);
	shard_map_free(m);
	shard_map_free(old);
}

static void test_overrides_set_removed_and_checked(void **state)
{
	struct shard_map *m = create(4, ONES), *a, *b, *c;
	char err[200];

	a = shard_map_set_override(m, "42", 3, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(a->version, 2);
	assert_int_equal(a->n_overrides, 1);
	assert_string_equal(a->overrides[0].key, "42");
	assert_int_equal(a->overrides[0].shard, 3);
	assert_memory_equal(a->owner, m->owner, BUCKETS * sizeof(*m->owner));
	assert_true(shard_map_validate(a, err, sizeof(err)));
	assert_true(a->checksum != m->checksum);
	b = shard_map_set_override(a, "acme corp", 1, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(shard_map_override_index(b, "acme corp"), 1);
	assert_int_equal(shard_map_override_index(b, "acme"), -1);
	/* moving a key replaces its override in place */
	c = shard_map_set_override(b, "42", 0, err, sizeof(err));
	assert_int_equal(c->n_overrides, 2);
	assert_int_equal(c->overrides[0].shard, 0);
	assert_true(c->checksum != b->checksum);
	shard_map_free(c);
	c = shard_map_set_override(b, "42", -1, err, sizeof(err));
	assert_int_equal(c->n_overrides, 1);
	assert_string_equal(c->overrides[0].key, "acme corp");
	shard_map_free(c);
	assert_null(shard_map_set_override(b, "7", -1, err, sizeof(err)));
	assert_non_null(strstr(err, "no override"));
	assert_null(shard_map_set_override(b, "7", 4, err, sizeof(err)));
	assert_null(shard_map_set_override(b, "", 1, err, sizeof(err)));
	assert_null(shard_map_set_override(b, "a\nb", 1, err, sizeof(err)));
	/* damage: a key twice, a shard out of range, a changed override */
	free(b->overrides[1].key);
	b->overrides[1].key = strdup("42");
	b->checksum = shard_map_checksum(b);
	assert_int_equal(shard_map_override_twice(b), 1);
	assert_false(shard_map_validate(b, err, sizeof(err)));
	assert_non_null(strstr(err, "set twice"));
	b->overrides[1].key[0] = '5';
	assert_false(shard_map_validate(b, err, sizeof(err)));
	assert_non_null(strstr(err, "checksum"));
	b->overrides[1].shard = 4;
	b->checksum = shard_map_checksum(b);
	assert_false(shard_map_validate(b, err, sizeof(err)));
	assert_non_null(strstr(err, "shard 4"));
	shard_map_free(b);
	shard_map_free(a);
	shard_map_free(m);
}

/* A plan renumbers the overrides' shards, and drops (saying so) those of a shard left out. */
static void test_plan_carries_overrides(void **state)
{
	static const char *const reordered[] = { "s3", "s0", "s2" };
	struct shard_map *m = create(4, ONES), *a, *b, *next;
	struct shard_move *moves;
	size_t n_moves;
	char err[200];

	a = shard_map_set_override(m, "big", 1, err, sizeof(err));
	b = shard_map_set_override(a, "bigger", 3, err, sizeof(err));
	next = shard_map_plan(b, reordered, ONES, 3, &moves, &n_moves, err, sizeof(err));
	assert_non_null(next);
	assert_int_equal(next->n_overrides, 1);
	assert_string_equal(next->overrides[0].key, "bigger");
	assert_int_equal(next->overrides[0].shard, 0);
	assert_non_null(strstr(err, "big (on s1)"));
	assert_true(shard_map_validate(next, err, sizeof(err)));
	free(moves);
	shard_map_free(next);
	next = shard_map_plan(b, NAMES, ONES, 5, &moves, &n_moves, err, sizeof(err));
	assert_int_equal(next->n_overrides, 2);
	assert_string_equal(err, "");
	free(moves);
	shard_map_free(next);
	shard_map_free(b);
	shard_map_free(a);
	shard_map_free(m);
}

static bool in_first_hundred(uint32_t bucket, void *arg)
{
	(void)arg;
	return bucket < 100;
}

static bool in_last_ten(uint32_t bucket, void *arg)
{
	(void)arg;
	return bucket >= BUCKETS - 10;
}

static void test_give_to_an_old_or_a_new_shard(void **state)
{
	struct shard_map *m = create(2, ONES), *o, *a, *b;
	char err[200];
	uint32_t counts[SHARD_MAX];

	(void)state;
	o = shard_map_set_override(m, "42", 0, err, sizeof(err));
	/* to a shard of the map: only the buckets given change */
	a = shard_map_give(o, in_last_ten, NULL, "s0", err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(a->version, o->version + 1);
	assert_int_equal(a->n_shards, 2);
	assert_memory_equal(a->owner, o->owner, (BUCKETS - 10) * sizeof(*o->owner));
	assert_int_equal(a->owner[BUCKETS - 1], 0);
	assert_true(shard_map_validate(a, err, sizeof(err)));
	/* to a shard the map does not name: added last, weight 1, overrides kept */
	b = shard_map_give(a, in_first_hundred, NULL, "grown", err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(b->n_shards, 3);
	assert_string_equal(b->names[2], "grown");
	assert_true(b->weights[2] == 1);
	shard_map_counts(b, counts);
	assert_int_equal(counts[2], 100);
	assert_int_equal(counts[0], BUCKETS / 2 - 100 + 10);
	assert_int_equal(counts[1], BUCKETS / 2 - 10);
	assert_int_equal(b->n_overrides, 1);
	assert_int_equal(b->overrides[0].shard, 0);
	assert_true(shard_map_validate(b, err, sizeof(err)));
	assert_null(shard_map_give(b, in_first_hundred, NULL, "no spaces", err, sizeof(err)));
	assert_non_null(strstr(err, "shard's name"));
	shard_map_free(b);
	shard_map_free(a);
	shard_map_free(o);
	shard_map_free(m);
}

static void test_validate_catches_damage(void **state)
{
	struct shard_map *m = create(4, ONES);
	char err[200];

	m->owner[7] = (uint16_t)((m->owner[7] + 1) % 4);
	assert_false(shard_map_validate(m, err, sizeof(err)));
	assert_non_null(strstr(err, "checksum"));
	m->owner[7] = 9;
	assert_false(shard_map_validate(m, err, sizeof(err)));
	assert_non_null(strstr(err, "bucket 7"));
	shard_map_free(m);
}

/* Keys per shard over 1M sequential and 1M random ids: max / mean, printed and bounded. */
static void test_keys_spread_evenly(void **state)
{
	static const int shard_counts[] = { 2, 3, 5, 8, 16, 64 };
	static uint32_t keys_on[SHARD_MAX];
	uint64_t rnd = 0x9e3779b97f4a7c15ull;

	for (size_t t = 0; t < sizeof(shard_counts) / sizeof(shard_counts[0]); t++) {
		int n = shard_counts[t];
		struct shard_map *m = create(n, ONES);

		for (int pass = 0; pass < 2; pass++) {
			uint32_t max = 0;

			memset(keys_on, 0, sizeof(keys_on));
			for (int64_t id = 1; id <= 1000000; id++) {
				int64_t key = id;

				if (pass == 1) { /* xorshift64 */
					rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
					key = (int64_t)rnd;
				}
				keys_on[shard_map_shard_of(m, bucket_hash_int8(key, 0))]++;
			}
			for (int i = 0; i < n; i++)
				max = keys_on[i] > max ? keys_on[i] : max;
			printf("%2d shards, 1M %s ids: max/mean %.4f\n", n,
			       pass ? "random" : "sequential", max / (1000000.0 / n));
			assert_true(max / (1000000.0 / n) < 1.05);
		}
		shard_map_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_shares_by_weight),
		cmocka_unit_test(test_first_map_is_one_run_per_shard),
		cmocka_unit_test(test_plans_keep_runs_few),
		cmocka_unit_test(test_create_refuses_bad_input),
		cmocka_unit_test(test_adding_a_shard_moves_only_its_share),
		cmocka_unit_test(test_removing_and_reweighting),
		cmocka_unit_test(test_overrides_set_removed_and_checked),
		cmocka_unit_test(test_plan_carries_overrides),
		cmocka_unit_test(test_give_to_an_old_or_a_new_shard),
		cmocka_unit_test(test_validate_catches_damage),
		cmocka_unit_test(test_keys_spread_evenly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
