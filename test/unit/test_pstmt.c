/* link: src/server/pstmt.c */
/*
 * Unit tests for the prepared-statement bookkeeping: the shared registry, a client's names and a
 * server's set, and the reference counts that tie them (a statement lives exactly as long as a
 * name or a server holds it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/pstmt.h"

#define DEF(s) (const uint8_t *)(s), sizeof(s)

static void test_registry_shares_by_definition(void **state)
{
	struct pstmt_registry r;
	struct pstmt *a, *b, *c;

	(void)state;
	pstmt_registry_init(&r);
	assert_null(pstmt_registry_find(&r, DEF("select 1\0\0")));
	a = pstmt_registry_get(&r, DEF("select 1\0\0"));
	b = pstmt_registry_get(&r, DEF("select 1\0\0"));
	c = pstmt_registry_get(&r, DEF("select 2\0\0"));
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_ptr_equal(pstmt_registry_find(&r, DEF("select 1\0\0")), a);
	assert_string_equal(a->name, "pgmux_1");
	assert_string_equal(c->name, "pgmux_2");
	assert_int_equal(r.count, 2);
	assert_int_equal(a->refs, 0);
	/* same text, other parameter types: another statement */
	assert_ptr_not_equal(pstmt_registry_get(&r, DEF("select 1\0\0\1\0\0\0\x17")), a);
	pstmt_registry_destroy(&r);
}

static void test_client_names(void **state)
{
	struct pstmt_registry r;
	struct client_pstmts m1 = { 0 }, m2 = { 0 };
	struct pstmt *a, *b;
	const struct cstmt *e;
	uint64_t seq;

	(void)state;
	pstmt_registry_init(&r);
	a = pstmt_registry_get(&r, DEF("select 1"));
	assert_true(client_pstmts_set(&r, &m1, "s1", a));
	assert_true(client_pstmts_set(&r, &m2, "other", a));
	assert_int_equal(a->refs, 2);
	e = client_pstmts_find(&m1, "s1");
	assert_non_null(e);
	assert_ptr_equal(e->ps, a);
	assert_int_equal(e->shape, 0);
	assert_null(client_pstmts_find(&m1, "other"));

	/* a name parsed again with another text: the old statement loses a holder */
	b = pstmt_registry_get(&r, DEF("select 2"));
	seq = e->parsed_seq;
	assert_true(client_pstmts_set(&r, &m1, "s1", b));
	e = client_pstmts_find(&m1, "s1");
	assert_ptr_equal(e->ps, b);
	assert_true(e->parsed_seq > seq);
	assert_int_equal(a->refs, 1);
	assert_int_equal(m1.n, 1);

	/* the last holder gone: the statement leaves the registry */
	client_pstmts_remove(&r, &m2, "other");
	assert_null(pstmt_registry_find(&r, DEF("select 1")));
	assert_int_equal(r.count, 1);
	client_pstmts_remove(&r, &m2, "no such name");

	client_pstmts_free(&r, &m1);
	client_pstmts_free(&r, &m2);
	assert_int_equal(r.count, 0);
	pstmt_registry_destroy(&r);
}

static void test_client_forget_parse(void **state)
{
	struct pstmt_registry r;
	struct client_pstmts m = { 0 };
	struct pstmt *a;
	uint64_t first, second;

	(void)state;
	pstmt_registry_init(&r);
	a = pstmt_registry_get(&r, DEF("select 1"));
	assert_true(client_pstmts_set(&r, &m, "s1", a));
	first = client_pstmts_find(&m, "s1")->parsed_seq;
	assert_true(client_pstmts_set(&r, &m, "s1", a));
	second = client_pstmts_find(&m, "s1")->parsed_seq;
	assert_true(second > first);
	/* the failure of the earlier Parse does not take the later name */
	client_pstmts_forget_parse(&r, &m, a, first);
	assert_non_null(client_pstmts_find(&m, "s1"));
	client_pstmts_forget_parse(&r, &m, a, second);
	assert_null(client_pstmts_find(&m, "s1"));
	assert_int_equal(r.count, 0);
	client_pstmts_free(&r, &m);
	pstmt_registry_destroy(&r);
}

static void test_server_set(void **state)
{
	struct pstmt_registry r;
	struct server_pstmts set = { 0 };
	struct client_pstmts m = { 0 };
	struct pstmt *ps[20];
	char def[32];

	(void)state;
	pstmt_registry_init(&r);
	for (int i = 0; i < 20; i++) {
		int n = snprintf(def, sizeof(def), "select %d", i);

		ps[i] = pstmt_registry_get(&r, (const uint8_t *)def, (size_t)n + 1);
		assert_non_null(ps[i]);
		assert_true(server_pstmts_add(&set, ps[i], ++r.seq));
	}
	assert_int_equal(set.n, 20);
	assert_int_equal(server_pstmts_find(&set, ps[7]), 7);
	/* the oldest is the least recently used, until it is used */
	assert_int_equal(server_pstmts_lru(&set), 0);
	server_pstmts_use(&set, 0);
	assert_int_equal(server_pstmts_lru(&set), 1);

	/* parsed again: fresh sequence, shape unknown, used now */
	set.shape[2] = 42;
	server_pstmts_reparsed(&set, 2, ++r.seq);
	assert_int_equal(set.shape[2], 0);
	assert_int_equal(set.prepared_seq[2], r.seq);
	assert_int_equal(server_pstmts_lru(&set), 1);

	/* a client and a server hold ps[3]: both must let go */
	assert_true(client_pstmts_set(&r, &m, "s3", ps[3]));
	server_pstmts_forget(&r, &set, ps[3]);
	assert_int_equal(server_pstmts_find(&set, ps[3]), -1);
	assert_int_equal(set.n, 19);
	assert_int_equal(r.count, 20);
	server_pstmts_remove_at(&r, &set, (size_t)server_pstmts_find(&set, ps[4]));
	assert_int_equal(r.count, 19);

	server_pstmts_clear(&r, &set);
	assert_int_equal(set.n, 0);
	assert_int_equal(r.count, 1);
	assert_ptr_equal(pstmt_registry_find(&r, DEF("select 3")), ps[3]);
	client_pstmts_free(&r, &m);
	assert_int_equal(r.count, 0);
	server_pstmts_free(&r, &set);
	pstmt_registry_destroy(&r);
}

/* Many names, removed in a scattered order: every lookup agrees with a plain scan. */
static void test_client_index_follows_removals(void **state)
{
	enum { N = 3000 };
	struct pstmt_registry r;
	struct client_pstmts m = { 0 };
	struct pstmt *ps;
	char name[32];

	(void)state;
	pstmt_registry_init(&r);
	ps = pstmt_registry_get(&r, DEF("select 1"));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		assert_true(client_pstmts_set(&r, &m, name, ps));
	}
	assert_int_equal(m.n, N);
	for (int i = 0; i < N; i += 3) {
		snprintf(name, sizeof(name), "s%d", (i * 7) % N);
		client_pstmts_remove(&r, &m, name);
	}
	for (int i = 0; i < N; i++) {
		bool removed = false;
		const struct cstmt *e;

		for (int j = 0; j < N; j += 3)
			removed |= (j * 7) % N == i;
		snprintf(name, sizeof(name), "s%d", i);
		e = client_pstmts_find(&m, name);
		if (removed) {
			assert_null(e);
		} else {
			assert_non_null(e);
			assert_string_equal(e->name, name);
		}
	}
	client_pstmts_free(&r, &m);
	assert_int_equal(r.count, 0);
	pstmt_registry_destroy(&r);
}

static void test_limits(void **state)
{
	struct pstmt_registry r;
	struct client_pstmts m = { 0 };
	struct pstmt_limits lim = { .client_count = 2, .client_bytes = 40, .total_count = 3 };
	struct pstmt *a, *b;

	(void)state;
	pstmt_registry_init(&r);
	/* "a" + NUL + 9 bytes of definition: 11 bytes each */
	a = pstmt_registry_get(&r, DEF("select 1"));
	b = pstmt_registry_get(&r, DEF("select 2"));
	assert_int_equal(client_pstmts_check(&r, &m, "a", DEF("select 1"), &lim), PSTMT_WITHIN);
	assert_true(client_pstmts_set(&r, &m, "a", a));
	assert_true(client_pstmts_set(&r, &m, "b", b));
	assert_int_equal(m.bytes, 22);
	/* a third name is one too many; replacing a name is not */
	assert_int_equal(client_pstmts_check(&r, &m, "c", DEF("select 1"), &lim),
			 PSTMT_CLIENT_COUNT);
	assert_int_equal(client_pstmts_check(&r, &m, "a", DEF("select 2"), &lim), PSTMT_WITHIN);
	/* what the replaced name held is freed before the new size counts */
	assert_int_equal(client_pstmts_check(&r, &m, "a", DEF("select 1 + 1 + 1 + 1 + 1"), &lim),
			 PSTMT_WITHIN);
	assert_int_equal(client_pstmts_check(&r, &m, "a", DEF("select 1 + 1 + 1 + 1 + 1 + 1 + 1"),
					     &lim),
			 PSTMT_CLIENT_BYTES);
	/* clients hold 2: one more definition fits, a fourth does not */
	lim.client_count = 0;
	lim.client_bytes = 0;
	assert_int_equal(client_pstmts_check(&r, &m, "d", DEF("select 3"), &lim), PSTMT_WITHIN);
	assert_true(client_pstmts_set(&r, &m, "c", pstmt_registry_get(&r, DEF("select 3"))));
	assert_int_equal(r.client_held, 3);
	assert_int_equal(client_pstmts_check(&r, &m, "d", DEF("select 4"), &lim),
			 PSTMT_TOTAL_COUNT);
	/* a definition a client holds already costs nothing */
	assert_int_equal(client_pstmts_check(&r, &m, "d", DEF("select 2"), &lim), PSTMT_WITHIN);
	/* one only a server holds counts no more than a new one */
	assert_int_equal(client_pstmts_check(&r, &m, "d", DEF("select 5"), &lim),
			 PSTMT_TOTAL_COUNT);
	client_pstmts_remove(&r, &m, "c");
	assert_int_equal(r.client_held, 2);
	client_pstmts_remove(&r, &m, "b");
	assert_int_equal(m.bytes, 11);
	client_pstmts_free(&r, &m);
	pstmt_registry_destroy(&r);
}

/* The registry grows past its first buckets and finds every statement, and frees them all. */
static void test_registry_grows(void **state)
{
	enum { N = 5000 };
	struct pstmt_registry r;
	struct client_pstmts m = { 0 };
	char def[32], name[32];

	(void)state;
	pstmt_registry_init(&r);
	for (int i = 0; i < N; i++) {
		int n = snprintf(def, sizeof(def), "select %d", i);
		struct pstmt *ps = pstmt_registry_get(&r, (const uint8_t *)def, (size_t)n + 1);

		assert_non_null(ps);
		snprintf(name, sizeof(name), "n%d", i);
		assert_true(client_pstmts_set(&r, &m, name, ps));
	}
	assert_true(r.nbuckets >= N);
	for (int i = 0; i < N; i++) {
		int n = snprintf(def, sizeof(def), "select %d", i);

		snprintf(name, sizeof(name), "n%d", i);
		assert_ptr_equal(pstmt_registry_find(&r, (const uint8_t *)def, (size_t)n + 1),
				 client_pstmts_find(&m, name)->ps);
	}
	client_pstmts_free(&r, &m);
	assert_int_equal(r.count, 0);
	pstmt_registry_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_shares_by_definition),
		cmocka_unit_test(test_client_names),
		cmocka_unit_test(test_client_forget_parse),
		cmocka_unit_test(test_server_set),
		cmocka_unit_test(test_client_index_follows_removals),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_registry_grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
