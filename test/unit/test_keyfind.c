/*
 * Unit tests for shard/keyfind: hint comments, SET pgmux.*, and the key values of statements as
 * PostgreSQL's grammar reads them (every rule of keyfind.h, lexical corners, bounds).
 *
 * Run as "test_keyfind --bench", the binary prints the cost of keyfind_sql per call instead.
 */
/* link: src/shard/keyfind.c src/shard/json.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "shard/keyfind.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KEY "user_id"

enum { KEYED = KEYFIND_KEYED, NO_KEY = KEYFIND_NO_KEY, PARSE_ERROR = KEYFIND_PARSE_ERROR };

struct sql_case {
	const char *sql;
	int status;
	const char *values; /* "42|$1|-7": literals as text, parameters as $n */
	int writes;         /* -1: not checked */
};

static const char *status_name(int s)
{
	return s == KEYED ? "KEYED" : s == NO_KEY ? "NO_KEY" : "PARSE_ERROR";
}

/* The values of kf as "a|$1|b". */
static const char *values_text(const struct keyfind *kf, char *buf, size_t buflen)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < kf->n_values && n < buflen; i++) {
		const struct keyfind_value *v = &kf->values[i];

		if (v->param)
			n += (size_t)snprintf(buf + n, buflen - n, "%s$%d", i ? "|" : "", v->param);
		else
			n += (size_t)snprintf(buf + n, buflen - n, "%s%s", i ? "|" : "",
					      v->literal);
	}
	return buf;
}

static void check_len(const char *sql, size_t len, int status, const char *values, int writes)
{
	struct keyfind kf;
	char got[512];

	if (!keyfind_sql(sql, len, KEY, &kf))
		fail_msg("%s: out of memory", sql);
	values_text(&kf, got, sizeof(got));
	if ((int)kf.status != status || strcmp(got, values) != 0)
		fail_msg("%.200s\n  got %s [%s], expected %s [%s]", sql, status_name(kf.status),
			 got, status_name(status), values);
	if (writes >= 0 && kf.writes != writes)
		fail_msg("%.200s: writes %d, expected %d", sql, kf.writes, writes);
	for (int i = 0; i < kf.n_values; i++) {
		const struct keyfind_value *v = &kf.values[i];

		if (v->param == 0 && strlen(v->literal) != v->literal_len)
			fail_msg("%s: literal %d length %zu", sql, i, v->literal_len);
	}
	keyfind_free(&kf);
	assert_null(kf.values);
	assert_int_equal(kf.n_values, 0);
}

static void check(const struct sql_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		check_len(c[i].sql, strlen(c[i].sql), c[i].status, c[i].values, c[i].writes);
}

static void test_select_predicates(void **state)
{
	static const struct sql_case cases[] = {
		{ "SELECT * FROM users WHERE user_id = $1", KEYED, "$1", 0 },
		{ "SELECT * FROM users WHERE user_id = 42", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE 42 = user_id", KEYED, "42", 0 },
		{ "SELECT * FROM users u WHERE u.user_id = 7", KEYED, "7", 0 },
		{ "SELECT * FROM public.users WHERE public.users.user_id = 7", KEYED, "7", 0 },
		{ "SELECT * FROM users WHERE user_id = '42'", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE user_id = '42'::bigint", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE user_id = bigint '42'", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE user_id = $1::int8", KEYED, "$1", 0 },
		{ "SELECT * FROM users WHERE user_id::int8 = 42", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE user_id::text = '42'", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE CAST(user_id AS bigint) = 42", KEYED, "42", 0 },
		{ "SELECT * FROM users WHERE user_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
		  KEYED, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0 },
		{ "SELECT * FROM users WHERE user_id = 'alice'", KEYED, "alice", 0 },
		{ "SELECT * FROM users WHERE user_id = ''", KEYED, "", 0 },
		{ "SELECT * FROM users WHERE user_id = 9223372036854775807", KEYED,
		  "9223372036854775807", 0 },
		{ "SELECT * FROM users WHERE user_id = 99999999999999999999", KEYED,
		  "99999999999999999999", 0 },
		{ "SELECT * FROM users WHERE user_id = 1.5", KEYED, "1.5", 0 },
		{ "SELECT * FROM users WHERE user_id OPERATOR(pg_catalog.=) 5", KEYED, "5", 0 },
		/* several conjuncts, nested ANDs, the key among other conditions */
		{ "SELECT * FROM users WHERE active AND user_id = 3 AND name = 'x'", KEYED, "3",
		  0 },
		{ "SELECT * FROM users WHERE a = 1 AND (b = 2 AND (user_id = 3))", KEYED, "3", 0 },
		{ "SELECT * FROM users WHERE (a = 1 OR b = 2) AND user_id = 6", KEYED, "6", 0 },
		{ "SELECT * FROM users WHERE user_id = 1 AND user_id = 2", KEYED, "1|2", 0 },
		{ "SELECT count(*) FROM t WHERE t.user_id = $1 AND created > now() - interval '1 day'",
		  KEYED, "$1", 0 },
		/* joins and CTEs: the top statement's WHERE decides */
		{ "SELECT * FROM users u JOIN orders o ON o.user_id = u.user_id WHERE u.user_id = $2",
		  KEYED, "$2", 0 },
		{ "WITH x AS (SELECT 1) SELECT * FROM t JOIN x ON true WHERE user_id = 3", KEYED,
		  "3", 0 },
		{ "SELECT * FROM t WHERE user_id = 4 ORDER BY 1 LIMIT 10 OFFSET 2", KEYED, "4", 0 },
		/* no key */
		{ "SELECT * FROM users", NO_KEY, "", 0 },
		{ "TABLE users", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE name = 'x'", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id > 5", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id <> 5", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = 5 OR user_id = 6", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE NOT (user_id = 5)", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE a = 1 AND (user_id = 5 OR b = 2)", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = other_id", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = user_id", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = f(1)", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = 1 + 1", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = (SELECT 5)", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE x IN (SELECT y FROM t WHERE user_id = 5)", NO_KEY, "",
		  0 },
		{ "SELECT * FROM (SELECT * FROM t WHERE user_id = 5) s", NO_KEY, "", 0 },
		{ "SELECT * FROM a JOIN b ON a.user_id = 5", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = NULL", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = true", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = -$1", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id IS NOT DISTINCT FROM 5", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE t.* = 5", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id2 = 5", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id.x = 5", NO_KEY, "", 0 },
		/* casts that would let other keys compare equal, or change the value */
		{ "SELECT * FROM users WHERE user_id::float8 = 42", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = 42::float8", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id::varchar(1) = '4'", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = '42'::varchar(1)", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = '42'::numeric", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id = '{1}'::int8[]", NO_KEY, "", 0 },
		{ "SELECT * FROM users WHERE user_id COLLATE \"C\" = 'x'", NO_KEY, "", 0 },
		/* FOR UPDATE locks: a write for routing, keyed all the same */
		{ "SELECT * FROM users WHERE user_id = 1 FOR UPDATE", KEYED, "1", 1 },
		{ "SELECT * FROM users WHERE user_id = 1 FOR SHARE", KEYED, "1", 1 },
		/* SELECT INTO creates a table */
		{ "SELECT * INTO copy FROM users WHERE user_id = 1", NO_KEY, "", 1 },
	};

	check(cases, ARRAY_LEN(cases));
}

/*
 * libpg_query 15's JSON leaves out integer constants that are zero or negative: they are read
 * back from the text, and any shape other than [-]digits gives no key rather than a wrong one.
 */
static void test_negative_and_zero(void **state)
{
	static const struct sql_case cases[] = {
		{ "SELECT * FROM t WHERE user_id = -5", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id = - 5", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id = -\n\t5", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id=-5", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id = 0", KEYED, "0", 0 },
		{ "SELECT * FROM t WHERE user_id = 000", KEYED, "0", 0 },
		{ "SELECT * FROM t WHERE user_id = -0", KEYED, "0", 0 },
		{ "SELECT * FROM t WHERE user_id = -2147483647", KEYED, "-2147483647", 0 },
		{ "SELECT * FROM t WHERE user_id = -2147483648", KEYED, "-2147483648", 0 },
		{ "SELECT * FROM t WHERE user_id = -9223372036854775808", KEYED,
		  "-9223372036854775808", 0 },
		{ "SELECT * FROM t WHERE user_id = 2147483647", KEYED, "2147483647", 0 },
		{ "SELECT * FROM t WHERE user_id = 2147483648", KEYED, "2147483648", 0 },
		{ "SELECT * FROM t WHERE user_id = -5::int8", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id = (-5)::int8", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id = -'5'::int8", KEYED, "-5", 0 },
		{ "SELECT * FROM t WHERE user_id = - -5", KEYED, "5", 0 },
		{ "SELECT * FROM t WHERE user_id = +5", KEYED, "5", 0 },
		{ "SELECT * FROM t WHERE user_id = -1.5", KEYED, "-1.5", 0 },
		{ "SELECT * FROM t WHERE user_id IN (0, -1, -2)", KEYED, "0|-1|-2", 0 },
		{ "INSERT INTO t (user_id) VALUES (-3), (0)", KEYED, "-3|0", 1 },
		/* the location counts in a string of several statements */
		{ "SELECT 1; SELECT * FROM t WHERE user_id = -77", KEYED, "-77", 0 },
		{ "SELECT * FROM t WHERE user_id = -8 AND x = -9; DELETE FROM t WHERE user_id = -0",
		  KEYED, "-8|0", 1 },
		/* folded by the grammar into shapes the text does not show plainly: no key */
		{ "SELECT * FROM t WHERE user_id = -(5)", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = -/* c */5", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = - - -5", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = -'abc'::text", NO_KEY, "", 0 },
	};

	check(cases, ARRAY_LEN(cases));
}

static void test_in_and_any(void **state)
{
	static const struct sql_case cases[] = {
		{ "SELECT * FROM t WHERE user_id IN (1, 2, 3)", KEYED, "1|2|3", 0 },
		{ "SELECT * FROM t WHERE user_id IN ($1, '4'::int8, -2)", KEYED, "$1|4|-2", 0 },
		{ "SELECT * FROM t WHERE user_id IN (7)", KEYED, "7", 0 },
		{ "SELECT * FROM t WHERE user_id = ANY(ARRAY[1, 2])", KEYED, "1|2", 0 },
		{ "SELECT * FROM t WHERE user_id = ANY(ARRAY[$1, $2]::int8[])", KEYED, "$1|$2", 0 },
		{ "SELECT * FROM t WHERE user_id = SOME(ARRAY[5])", KEYED, "5", 0 },
		{ "SELECT * FROM t WHERE user_id IN (1, f())", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id IN (SELECT id FROM u)", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id NOT IN (1, 2)", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = ANY($1)", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = ANY('{1,2}')", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = ANY(ARRAY[1, user_id])", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = ANY(ARRAY[1]::float8[])", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id <> ALL(ARRAY[1])", NO_KEY, "", 0 },
		/* a failed IN list leaves no values behind: the other conjunct's value alone */
		{ "SELECT * FROM t WHERE user_id IN (1, f()) AND user_id = 9", KEYED, "9", 0 },
	};

	check(cases, ARRAY_LEN(cases));
}

/* "SELECT * FROM t WHERE user_id IN (0, 1, ..., n - 1)" [+ the same again] */
static char *in_list(int n, bool twice)
{
	size_t cap = 64 + (size_t)n * 16;
	char *sql = malloc(2 * cap), *p = sql;

	assert_non_null(sql);
	for (int k = 0; k <= twice; k++) {
		p += sprintf(p, "%sSELECT * FROM t WHERE user_id IN (", k ? "; " : "");
		for (int i = 0; i < n; i++)
			p += sprintf(p, "%s%d", i ? ", " : "", i);
		p += sprintf(p, ")");
	}
	return sql;
}

static void test_huge_in_lists(void **state)
{
	char *sql = in_list(KEYFIND_MAX_VALUES, false);
	struct keyfind kf;

	assert_true(keyfind_sql(sql, strlen(sql), KEY, &kf));
	assert_int_equal(kf.status, KEYFIND_KEYED);
	assert_int_equal(kf.n_values, KEYFIND_MAX_VALUES);
	assert_string_equal(kf.values[0].literal, "0");
	assert_string_equal(kf.values[KEYFIND_MAX_VALUES - 1].literal, "1023");
	keyfind_free(&kf);
	free(sql);

	sql = in_list(KEYFIND_MAX_VALUES + 1, false);
	assert_true(keyfind_sql(sql, strlen(sql), KEY, &kf));
	assert_int_equal(kf.status, KEYFIND_NO_KEY);
	assert_int_equal(kf.n_values, 0);
	assert_null(kf.values);
	keyfind_free(&kf);
	free(sql);

	/* the bound is on the whole string, not each statement */
	sql = in_list(KEYFIND_MAX_VALUES / 2 + 1, true);
	assert_true(keyfind_sql(sql, strlen(sql), KEY, &kf));
	assert_int_equal(kf.status, KEYFIND_NO_KEY);
	assert_int_equal(kf.n_statements, 2);
	keyfind_free(&kf);
	free(sql);

	sql = in_list(20000, false);
	assert_true(keyfind_sql(sql, strlen(sql), KEY, &kf));
	assert_int_equal(kf.status, KEYFIND_NO_KEY);
	keyfind_free(&kf);
	free(sql);
}

static void copy_of(const char *sql, struct keyfind *kf)
{
	assert_true(keyfind_sql(sql, strlen(sql), KEY, kf));
	assert_int_equal(kf->status, KEYFIND_NO_KEY);
}

static void test_copy_description(void **state)
{
	static const char *const others[] = {
		"COPY t FROM '/tmp/x'",        "COPY t TO STDOUT",
		"COPY (SELECT 1) TO STDOUT",   "COPY t FROM PROGRAM 'cat'",
		"COPY t FROM STDIN; SELECT 1", "SELECT 1",
	};
	struct keyfind kf;

	copy_of("COPY public.\"Us\"\"rs\" (a, user_id) FROM STDIN WITH (FORMAT CSV, HEADER, "
		"DELIMITER ';', NULL 'x', QUOTE '''', ESCAPE '\\')",
		&kf);
	assert_true(kf.copy.from_stdin);
	assert_string_equal(kf.copy.table, "\"public\".\"Us\"\"rs\"");
	assert_int_equal(kf.copy.n_columns, 2);
	assert_int_equal(kf.copy.key_column, 1);
	assert_string_equal(kf.copy.format, "csv");
	assert_string_equal(kf.copy.delimiter, ";");
	assert_string_equal(kf.copy.null_string, "x");
	assert_true(kf.copy.null_given);
	assert_string_equal(kf.copy.quote, "'");
	assert_string_equal(kf.copy.escape, "\\");
	assert_int_equal(kf.copy.header, 1);
	assert_null(kf.copy.unsplittable);
	assert_true(kf.writes);
	keyfind_free(&kf);

	/* the old syntax, and no column list */
	copy_of("copy t from stdin csv header delimiter as '|'", &kf);
	assert_true(kf.copy.from_stdin);
	assert_string_equal(kf.copy.table, "\"t\"");
	assert_int_equal(kf.copy.n_columns, 0);
	assert_int_equal(kf.copy.key_column, -1);
	assert_string_equal(kf.copy.format, "csv");
	assert_string_equal(kf.copy.delimiter, "|");
	assert_int_equal(kf.copy.header, 1);
	assert_false(kf.copy.null_given);
	keyfind_free(&kf);

	copy_of("COPY t (a, b) FROM STDIN (HEADER match, FORMAT 'binary')", &kf);
	assert_int_equal(kf.copy.key_column, -1);
	assert_int_equal(kf.copy.n_columns, 2);
	assert_int_equal(kf.copy.header, 2);
	assert_string_equal(kf.copy.format, "binary");
	keyfind_free(&kf);

	copy_of("COPY t FROM STDIN (HEADER 0)", &kf);
	assert_int_equal(kf.copy.header, 0);
	keyfind_free(&kf);
	copy_of("COPY t FROM STDIN (HEADER perhaps)", &kf);
	assert_non_null(kf.copy.unsplittable);
	keyfind_free(&kf);
	copy_of("COPY t FROM STDIN (NULL 'a very long null string that is longer than the buffer "
		"kept for it, which is seventy-two bytes')",
		&kf);
	assert_non_null(kf.copy.unsplittable);
	keyfind_free(&kf);

	/* not a COPY of the client's data */
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_true(keyfind_sql(others[i], strlen(others[i]), KEY, &kf));
		assert_false(kf.copy.from_stdin);
		keyfind_free(&kf);
	}
}

static void test_insert(void **state)
{
	static const struct sql_case cases[] = {
		{ "INSERT INTO t (a, user_id) VALUES (1, 42), (2, $1)", KEYED, "42|$1", 1 },
		{ "INSERT INTO t (user_id, a) VALUES ($1, $2)", KEYED, "$1", 1 },
		{ "INSERT INTO t (a, user_id, b) VALUES (1, '7'::int8, 3), ($1, -8, $2)", KEYED,
		  "7|-8", 1 },
		{ "INSERT INTO t AS x (user_id) VALUES (5) ON CONFLICT (user_id) DO UPDATE SET a = 1",
		  KEYED, "5", 1 },
		{ "INSERT INTO t (user_id) VALUES (5) ON CONFLICT DO NOTHING RETURNING *", KEYED,
		  "5", 1 },
		{ "INSERT INTO public.t (\"user_id\") VALUES ('u-1')", KEYED, "u-1", 1 },
		{ "WITH s AS (SELECT 1) INSERT INTO t (user_id) VALUES (5)", KEYED, "5", 1 },
		/* no key */
		{ "INSERT INTO t (a, user_id) VALUES (1, 42), (2, DEFAULT)", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, user_id) VALUES (1, 42), (2, 40 + 2)", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, user_id) VALUES (1, f())", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, user_id) VALUES (1, NULL)", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, user_id) VALUES (1, (SELECT 5))", NO_KEY, "", 1 },
		{ "INSERT INTO t VALUES (1, 42)", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, b) VALUES (1, 42)", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, \"User_Id\") VALUES (1, 42)", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, user_id) SELECT 1, 42", NO_KEY, "", 1 },
		{ "INSERT INTO t (a, user_id) SELECT a, user_id FROM u WHERE user_id = 5", NO_KEY,
		  "", 1 },
		{ "INSERT INTO t DEFAULT VALUES", NO_KEY, "", 1 },
		/* the grammar takes it, the server refuses it later: no key either way */
		{ "INSERT INTO t (a, user_id) VALUES (1)", NO_KEY, "", 1 },
		{ "WITH d AS (DELETE FROM u RETURNING 1) INSERT INTO t (user_id) VALUES (5)",
		  NO_KEY, "", 1 },
	};

	check(cases, ARRAY_LEN(cases));
}

static void test_update_delete(void **state)
{
	static const struct sql_case cases[] = {
		{ "UPDATE users SET name = $1 WHERE user_id = $2", KEYED, "$2", 1 },
		{ "UPDATE users u SET name = 'x' FROM orders o WHERE o.id = 1 AND u.user_id = 3",
		  KEYED, "3", 1 },
		{ "UPDATE users SET n = n + 1 WHERE user_id IN (1, 2) RETURNING *", KEYED, "1|2",
		  1 },
		{ "DELETE FROM users WHERE user_id = 9", KEYED, "9", 1 },
		{ "DELETE FROM users USING orders WHERE users.user_id = $1 AND orders.x = 2", KEYED,
		  "$1", 1 },
		{ "WITH s AS (SELECT 1) DELETE FROM users WHERE user_id = 9", KEYED, "9", 1 },
		{ "UPDATE users SET name = 'x'", NO_KEY, "", 1 },
		{ "DELETE FROM users", NO_KEY, "", 1 },
		{ "DELETE FROM users WHERE user_id = 1 OR true", NO_KEY, "", 1 },
		{ "DELETE FROM users WHERE CURRENT OF c", NO_KEY, "", 1 },
		/* assigning the key would move the row to another shard */
		{ "UPDATE users SET user_id = 5 WHERE user_id = 4", NO_KEY, "", 1 },
		{ "UPDATE users SET (name, user_id) = ('x', 5) WHERE user_id = 4", NO_KEY, "", 1 },
		{ "WITH d AS (DELETE FROM u RETURNING 1) UPDATE t SET a = 1 WHERE user_id = 5",
		  NO_KEY, "", 1 },
	};

	check(cases, ARRAY_LEN(cases));
}

static void test_other_statements(void **state)
{
	static const struct sql_case cases[] = {
		/* EXPLAIN answers for its statement; it writes only with ANALYZE */
		{ "EXPLAIN SELECT * FROM t WHERE user_id = 1", KEYED, "1", 0 },
		{ "EXPLAIN DELETE FROM t WHERE user_id = 1", KEYED, "1", 0 },
		{ "EXPLAIN ANALYZE DELETE FROM t WHERE user_id = 1", KEYED, "1", 1 },
		{ "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t WHERE user_id = 1", KEYED, "1", 0 },
		{ "EXPLAIN SELECT * FROM t", NO_KEY, "", 0 },
		/* UNION: keyed when every arm is (an arm of constants alone is neutral) */
		{ "SELECT a FROM t WHERE user_id = 1 UNION SELECT a FROM t WHERE user_id = 2",
		  KEYED, "1|2", 0 },
		{ "SELECT a FROM t WHERE user_id = 1 UNION ALL SELECT 2", KEYED, "1", 0 },
		{ "SELECT a FROM t WHERE user_id = 1 EXCEPT SELECT a FROM t", NO_KEY, "", 0 },
		{ "(SELECT a FROM t WHERE user_id = 1) INTERSECT (SELECT a FROM t WHERE user_id = $1)",
		  KEYED, "1|$1", 0 },
		/* DECLARE answers for its query; FETCH and CLOSE go along */
		{ "DECLARE c CURSOR FOR SELECT * FROM t WHERE user_id = 9", KEYED, "9", 0 },
		{ "BEGIN; DECLARE c CURSOR FOR SELECT * FROM t WHERE user_id = 9; FETCH 1 FROM c; "
		  "CLOSE c; COMMIT",
		  KEYED, "9", 0 },
		/* data statements without a key */
		{ "COPY t FROM STDIN", NO_KEY, "", 1 },
		{ "COPY t TO STDOUT", NO_KEY, "", 0 },
		{ "COPY (SELECT * FROM t WHERE user_id = 1) TO STDOUT", NO_KEY, "", 0 },
		{ "MERGE INTO t USING s ON t.user_id = s.user_id WHEN MATCHED THEN DELETE", NO_KEY,
		  "", 1 },
		{ "CREATE TABLE x (user_id int8)", NO_KEY, "", 1 },
		{ "DROP TABLE x", NO_KEY, "", 1 },
		{ "CALL p(1)", NO_KEY, "", 1 },
		{ "DO $$ BEGIN END $$", NO_KEY, "", 1 },
		{ "PREPARE p AS SELECT * FROM t WHERE user_id = $1", NO_KEY, "", 1 },
		{ "EXECUTE p(5)", NO_KEY, "", 1 },
		{ "LOCK TABLE t", NO_KEY, "", 1 },
		{ "TRUNCATE t", NO_KEY, "", 1 },
		{ "VACUUM t", NO_KEY, "", 1 },
		{ "SELECT now()", NO_KEY, "", 0 },
		{ "SELECT nextval('s')", NO_KEY, "", 0 },
		{ "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d WHERE user_id = 5", NO_KEY,
		  "", 1 },
	};

	check(cases, ARRAY_LEN(cases));
}

static void test_neutral_and_several_statements(void **state)
{
	static const struct sql_case cases[] = {
		/* neutral statements alone: no key, no values */
		{ "BEGIN", NO_KEY, "", 0 },
		{ "BEGIN; COMMIT", NO_KEY, "", 0 },
		{ "START TRANSACTION ISOLATION LEVEL SERIALIZABLE; SAVEPOINT a; RELEASE a; "
		  "ROLLBACK TO a; ROLLBACK",
		  NO_KEY, "", 0 },
		{ "SET x = 1; SHOW x; RESET x; DISCARD ALL; DEALLOCATE ALL", NO_KEY, "", 0 },
		{ "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", NO_KEY, "", 0 },
		{ "LISTEN c; NOTIFY c; UNLISTEN *", NO_KEY, "", 0 },
		{ "SELECT 1", NO_KEY, "", 0 },
		{ "SELECT $1::int, 'x'", NO_KEY, "", 0 },
		{ "VALUES (1, 'a'), (2, 'b')", NO_KEY, "", 0 },
		{ "", NO_KEY, "", 0 },
		{ "  -- only a comment", NO_KEY, "", 0 },
		{ ";;", NO_KEY, "", 0 },
		/* neutral statements around keyed ones */
		{ "BEGIN; UPDATE t SET a = 1 WHERE user_id = 3; COMMIT", KEYED, "3", 1 },
		{ "SET LOCAL x = 1; SELECT * FROM t WHERE user_id = 3; SELECT 1", KEYED, "3", 0 },
		/* every keyed statement's values, in order */
		{ "SELECT * FROM t WHERE user_id = 1; DELETE FROM t WHERE user_id = $1", KEYED,
		  "1|$1", 1 },
		/* one statement without a key makes the string NO_KEY */
		{ "SELECT * FROM t WHERE user_id = 1; SELECT * FROM t", NO_KEY, "", 0 },
		{ "BEGIN; INSERT INTO t (user_id) VALUES (1); UPDATE t SET a = 2; COMMIT", NO_KEY,
		  "", 1 },
		{ "CREATE TABLE x (a int); SELECT * FROM t WHERE user_id = 1", NO_KEY, "", 1 },
	};
	static const struct {
		const char *sql;
		bool neutral;
	} neutral[] = {
		{ "SELECT 1", true },
		{ "BEGIN; SET x = 1; COMMIT", true },
		{ "SHOW search_path", true },
		{ "SELECT * FROM t", false },
		{ "SELECT * FROM t WHERE user_id = 1", false },
		{ "SET x = 1; SELECT * FROM t", false },
		{ "SELEC 1", false }, /* not parsed: not known to touch nothing */
	};
	struct keyfind kf;
	const char *sql = "BEGIN; SELECT * FROM t WHERE user_id = 1; COMMIT;";

	check(cases, ARRAY_LEN(cases));
	assert_true(keyfind_sql(sql, strlen(sql), KEY, &kf));
	assert_int_equal(kf.n_statements, 3);
	keyfind_free(&kf);
	/* rows from several shards that would have to be merged, and why */
	{
		static const struct {
			const char *sql, *why;
		} merges[] = {
			{ "SELECT * FROM t", NULL },
			{ "SELECT a, lower(b) FROM t WHERE c > 1", NULL },
			{ "SELECT * FROM t ORDER BY a", "ORDER BY" },
			{ "SELECT * FROM t LIMIT 5", "LIMIT" },
			{ "SELECT * FROM t OFFSET 5", "OFFSET" },
			{ "SELECT a FROM t GROUP BY a", "GROUP BY" },
			{ "SELECT DISTINCT a FROM t", "DISTINCT" },
			{ "SELECT count(*) FROM t", "aggregates or window functions" },
			{ "SELECT 1 + sum(a) FROM t", "aggregates or window functions" },
			{ "SELECT pg_catalog.max(a) FROM t", "aggregates or window functions" },
			{ "SELECT row_number() OVER () FROM t", "aggregates or window functions" },
			{ "SELECT a FROM t UNION ALL SELECT a FROM u",
			  "UNION, INTERSECT or EXCEPT" },
			{ "SELECT * FROM t FOR UPDATE", "FOR UPDATE or FOR SHARE" },
			{ "UPDATE t SET a = 1", NULL },
		};

		for (size_t i = 0; i < ARRAY_LEN(merges); i++) {
			const char *q = merges[i].sql;

			assert_true(keyfind_sql(q, strlen(q), KEY, &kf));
			if (merges[i].why
				    ? !kf.merge_needed || strcmp(kf.merge_needed, merges[i].why)
				    : kf.merge_needed != NULL)
				fail_msg("%s: merge %s, expected %s", q,
					 kf.merge_needed ? kf.merge_needed : "none",
					 merges[i].why ? merges[i].why : "none");
			keyfind_free(&kf);
		}
	}
	/* neutral: no statement touches a table, so any shard may run the string */
	for (size_t i = 0; i < ARRAY_LEN(neutral); i++) {
		assert_true(keyfind_sql(neutral[i].sql, strlen(neutral[i].sql), KEY, &kf));
		if (kf.neutral != neutral[i].neutral)
			fail_msg("%s: neutral %d, expected %d", neutral[i].sql, kf.neutral,
				 neutral[i].neutral);
		keyfind_free(&kf);
	}
}

static void test_lexical(void **state)
{
	static const struct sql_case cases[] = {
		/* quoted identifiers: case as written; unquoted ones are folded */
		{ "SELECT * FROM t WHERE \"user_id\" = 1", KEYED, "1", 0 },
		{ "SELECT * FROM t WHERE \"User_Id\" = 1", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE User_Id = 1", KEYED, "1", 0 },
		{ "SELECT * FROM t WHERE USER_ID = 1", KEYED, "1", 0 },
		{ "SELECT * FROM t WHERE \"t\".\"user_id\" = 1", KEYED, "1", 0 },
		/* keyword case */
		{ "select * from t where user_id = 1 and x = 2", KEYED, "1", 0 },
		{ "SeLeCt * FrOm t WhErE user_id In (1)", KEYED, "1", 0 },
		/* comments anywhere */
		{ "/* a */ SELECT /* b */ * FROM t -- c\n WHERE user_id /* d */ = /* e */ 4 -- f",
		  KEYED, "4", 0 },
		{ "SELECT * FROM t WHERE /* user_id = 1 AND */ user_id = 2", KEYED, "2", 0 },
		{ "SELECT * FROM t WHERE x = 1 -- AND user_id = 2", NO_KEY, "", 0 },
		{ "/* pgmux:shard_key=5 */ SELECT * FROM t WHERE user_id = 6", KEYED, "6", 0 },
		/* literals: the value after the lexer */
		{ "SELECT * FROM t WHERE user_id = $$42$$", KEYED, "42", 0 },
		{ "SELECT * FROM t WHERE user_id = $tag$a'b$$c$tag$", KEYED, "a'b$$c", 0 },
		{ "SELECT * FROM t WHERE user_id = E'\\x34\\062'", KEYED, "42", 0 },
		{ "SELECT * FROM t WHERE user_id = E'a\\'b'", KEYED, "a'b", 0 },
		{ "SELECT * FROM t WHERE user_id = 'a''b'", KEYED, "a'b", 0 },
		{ "SELECT * FROM t WHERE user_id = 'a\\b'", KEYED, "a\\b", 0 },
		{ "SELECT * FROM t WHERE user_id = U&'\\0041'", KEYED, "A", 0 },
		{ "SELECT * FROM t WHERE user_id = 'ab'\n'cd'", KEYED, "abcd", 0 },
		{ "SELECT * FROM t WHERE user_id = 'caf\xc3\xa9'", KEYED, "caf\xc3\xa9", 0 },
		{ "SELECT * FROM t WHERE x = 'user_id = 5'", NO_KEY, "", 0 },
		{ "SELECT * FROM t WHERE user_id = ' 42 '", KEYED, " 42 ", 0 },
		{ "SELECT * FROM t WHERE user_id = B'101'", NO_KEY, "", 0 },
		/* parse errors: the server will say why */
		{ "SELEC * FROM t WHERE user_id = 1", PARSE_ERROR, "", 1 },
		{ "SELECT * FROM t WHERE user_id = 'unterminated", PARSE_ERROR, "", 1 },
		{ "SELECT * FROM t WHERE user_id = 1; SELEC", PARSE_ERROR, "", 1 },
		{ "SELECT * FROM t WHERE user_id = 5abc", PARSE_ERROR, "", 1 },
		{ "SELECT * FROM t WHERE user_id = 0x10", PARSE_ERROR, "", 1 },
		{ "/* unterminated", PARSE_ERROR, "", 1 },
	};

	check(cases, ARRAY_LEN(cases));
}

static void test_bounds(void **state)
{
	static const char head[] = "SELECT * FROM t WHERE user_id = 1 AND x = '";
	size_t len = KEYFIND_MAX_SQL;
	char *sql = malloc(len + 2);
	struct keyfind kf;

	/* the length counts, not a NUL; text after a NUL is not part of the query string */
	check_len("SELECT * FROM t WHERE user_id = 12", 33, KEYED, "1", 0);
	check_len("SELECT * FROM t WHERE user_id = 5\0 OR true", 42, KEYED, "5", 0);
	check_len("\0SELECT", 7, NO_KEY, "", 0);

	/* a string of exactly KEYFIND_MAX_SQL bytes is parsed, one more byte is not */
	assert_non_null(sql);
	memcpy(sql, head, sizeof(head) - 1);
	memset(sql + sizeof(head) - 1, 'a', len - sizeof(head));
	sql[len - 1] = '\'';
	sql[len] = '\'';
	sql[len + 1] = '\0';
	assert_true(keyfind_sql(sql, len, KEY, &kf));
	assert_int_equal(kf.status, KEYFIND_KEYED);
	assert_int_equal(kf.n_statements, 1);
	assert_false(kf.writes);
	keyfind_free(&kf);
	sql[len - 1] = 'a'; /* the literal now closes one byte later */
	assert_true(keyfind_sql(sql, len + 1, KEY, &kf));
	assert_int_equal(kf.status, KEYFIND_NO_KEY);
	assert_int_equal(kf.n_statements, 0);
	assert_true(kf.writes);
	keyfind_free(&kf);
	free(sql);

	/* nesting deeper than the reader follows: no key, never a crash */
	sql = malloc(64 + 20000 * 4);
	assert_non_null(sql);
	strcpy(sql, "SELECT * FROM t WHERE user_id = 1 AND x = ");
	for (int i = 0; i < 20000; i++)
		strcat(sql, "1 + ");
	strcat(sql, "1");
	assert_true(keyfind_sql(sql, strlen(sql), KEY, &kf));
	assert_int_not_equal(kf.status, KEYFIND_KEYED);
	keyfind_free(&kf);
	free(sql);
}

static void test_column_name(void **state)
{
	const char *sql = "SELECT * FROM t WHERE \"Tenant\" = 'acme' AND tenant = 'other'";
	struct keyfind kf;

	assert_true(keyfind_sql(sql, strlen(sql), "Tenant", &kf));
	assert_int_equal(kf.status, KEYFIND_KEYED);
	assert_int_equal(kf.n_values, 1);
	assert_string_equal(kf.values[0].literal, "acme");
	assert_int_equal(kf.values[0].literal_len, 4);
	assert_int_equal(kf.values[0].param, 0);
	keyfind_free(&kf);
	assert_true(keyfind_sql(sql, strlen(sql), "tenant", &kf));
	assert_int_equal(kf.n_values, 1);
	assert_string_equal(kf.values[0].literal, "other");
	keyfind_free(&kf);
	assert_true(keyfind_sql(sql, strlen(sql), "ten", &kf));
	assert_int_equal(kf.status, KEYFIND_NO_KEY);
	keyfind_free(&kf);
}

/* ---- hints ---- */

static void check_hint(const char *sql, int kind, const char *value)
{
	struct keyfind_hint h;
	bool found = keyfind_hint(sql, strlen(sql), &h);

	if (found != (kind != KEYFIND_HINT_NONE) || (int)h.kind != kind)
		fail_msg("%s: hint kind %d (found %d), expected %d", sql, h.kind, found, kind);
	if (kind == KEYFIND_HINT_NONE)
		return;
	if (h.value < sql || h.value + h.value_len > sql + strlen(sql))
		fail_msg("%s: the value does not point into the text", sql);
	if (h.value_len != strlen(value) || memcmp(h.value, value, h.value_len) != 0)
		fail_msg("%s: value \"%.*s\", expected \"%s\"", sql, (int)h.value_len, h.value,
			 value);
}

static void test_hint(void **state)
{
	enum { NONE = KEYFIND_HINT_NONE, K = KEYFIND_HINT_KEY, S = KEYFIND_HINT_SHARD };
	static const struct {
		const char *sql;
		int kind;
		const char *value;
	} cases[] = {
		{ "/* pgmux:shard_key=42 */ SELECT 1", K, "42" },
		{ "/* pgmux:shard=eu-1 */ SELECT 1", S, "eu-1" },
		{ "/*pgmux:shard_key=42*/SELECT 1", K, "42" },
		{ "  \n\t/*  pgmux:shard_key=42  */ SELECT 1", K, "42" },
		{ "/* pgmux : shard_key = 42 */ SELECT 1", K, "42" },
		{ "/* PGMUX:Shard_Key=Abc */ SELECT 1", K, "Abc" },
		{ "/* pgmux:primary, pgmux:shard_key=42 */ SELECT 1", K, "42" },
		{ "/* pgmux:primary pgmux:shard_key=42 */ SELECT 1", K, "42" },
		{ "/* pgmux:primary,pgmux:shard_key=42,pgmux:replica */ SELECT 1", K, "42" },
		{ "/* pgmux:shard_key=42, pgmux:shard=b */ SELECT 1", K, "42" },
		{ "/* pgmux:shard=b pgmux:shard_key=42 */ SELECT 1", S, "b" },
		{ "/* pgmux:shard_key='a b, c' */ SELECT 1", K, "a b, c" },
		{ "/* pgmux:shard_key='' */ SELECT 1", K, "" },
		{ "/* pgmux:shard_key=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 */ SELECT 1", K,
		  "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
		{ "/* pgmux:shard_key=-5*/SELECT 1", K, "-5" },
		{ "/* app=web pgmux:shard_key=7 */ SELECT 1", K, "7" },
		{ "-- pgmux:shard_key=42\nSELECT 1", K, "42" },
		{ "-- pgmux:shard_key=42", K, "42" },
		{ "/* pgmux:primary */ /* pgmux:shard_key=9 */ SELECT 1", K, "9" },
		{ "/* pgmux:shard_key=1 */ /* pgmux:shard_key=2 */ SELECT 1", K, "1" },
		/* not a hint */
		{ "SELECT 1 /* pgmux:shard_key=42 */", NONE, NULL },
		{ "SELECT /* pgmux:shard_key=42 */ 1", NONE, NULL },
		{ "/* pgmux:primary */ SELECT 1", NONE, NULL },
		{ "/* pgmux:shard_key */ SELECT 1", NONE, NULL },
		{ "/* pgmux:shard_key= */ SELECT 1", NONE, NULL },
		{ "/* pgmux:shard_key='42 */ SELECT 1", NONE, NULL },
		{ "/* pgmux:shard_keys=42 */ SELECT 1", NONE, NULL },
		{ "/* pgmuxx:shard_key=42 */ SELECT 1", NONE, NULL },
		{ "/* xpgmux:shard_key=42 */ SELECT 1", NONE, NULL },
		{ "/* shard_key=42 */ SELECT 1", NONE, NULL },
		{ "'/* pgmux:shard_key=42 */'", NONE, NULL },
		{ "", NONE, NULL },
		{ "/", NONE, NULL },
		{ "/*", NONE, NULL },
	};
	struct keyfind_hint h;
	const char *sql = "/* pgmux:shard_key=4242 */";

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		check_hint(cases[i].sql, cases[i].kind, cases[i].value);
	/* bounded by len: the value stops at the end of the text given */
	assert_true(keyfind_hint(sql, 21, &h));
	assert_int_equal(h.value_len, 2);
	assert_false(keyfind_hint(sql, 19, &h));
	assert_int_equal(h.kind, KEYFIND_HINT_NONE);
}

/* ---- SET pgmux.* ---- */

static void check_set(const char *sql, bool ok, int what, bool local, bool reset, const char *value)
{
	struct keyfind_set s;
	bool got = keyfind_set(sql, strlen(sql), &s);

	if (got != ok)
		fail_msg("%s: keyfind_set %d, expected %d", sql, got, ok);
	if (!ok)
		return;
	if ((int)s.what != what || s.local != local || s.reset != reset)
		fail_msg("%s: what %d local %d reset %d", sql, s.what, s.local, s.reset);
	if (!value) {
		if (s.value || s.value_len)
			fail_msg("%s: a value on reset", sql);
		return;
	}
	if (s.value < sql || s.value + s.value_len > sql + strlen(sql))
		fail_msg("%s: the value does not point into the text", sql);
	if (s.value_len != strlen(value) || memcmp(s.value, value, s.value_len) != 0)
		fail_msg("%s: value \"%.*s\", expected \"%s\"", sql, (int)s.value_len, s.value,
			 value);
}

static void test_set(void **state)
{
	enum { K = KEYFIND_SET_KEY, S = KEYFIND_SET_SHARD };
	static const struct {
		const char *sql;
		bool ok;
		int what;
		bool local, reset;
		const char *value;
	} cases[] = {
		{ "SET pgmux.shard_key = 42", true, K, false, false, "42" },
		{ "SET pgmux.shard_key TO '42'", true, K, false, false, "42" },
		{ "SET pgmux.shard_key=42;", true, K, false, false, "42" },
		{ "set PGMUX.SHARD_KEY to 42 ;  ", true, K, false, false, "42" },
		{ "SET SESSION pgmux.shard_key = 42", true, K, false, false, "42" },
		{ "SET LOCAL pgmux.shard_key = 42", true, K, true, false, "42" },
		{ "\n SET\n\tLOCAL\n pgmux . shard_key\n TO\n -7 ;\n", true, K, true, false, "-7" },
		{ "/* c */ SET /* c */ pgmux.shard_key -- c\n = 42 -- c", true, K, false, false,
		  "42" },
		{ "SET pgmux.shard_key = 'a b'", true, K, false, false, "a b" },
		{ "SET pgmux.shard_key = ''", true, K, false, false, "" },
		{ "SET pgmux.shard_key = $$it's$$", true, K, false, false, "it's" },
		{ "SET pgmux.shard_key = $k$x$$y$k$", true, K, false, false, "x$$y" },
		{ "SET pgmux.shard_key = 9223372036854775807", true, K, false, false,
		  "9223372036854775807" },
		{ "SET pgmux.shard_key = +5", true, K, false, false, "+5" },
		{ "SET pgmux.shard_key = 1.5e3", true, K, false, false, "1.5e3" },
		{ "SET pgmux.shard_key = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", true, K, false,
		  false, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
		{ "SET pgmux.shard = eu_1", true, S, false, false, "eu_1" },
		{ "SET pgmux.shard = \"EU-1\"", true, S, false, false, "EU-1" },
		{ "SET pgmux.shard TO 'b'", true, S, false, false, "b" },
		{ "SET \"pgmux\".\"shard_key\" = 1", true, K, false, false, "1" },
		{ "SET\"pgmux\".shard = a", true, S, false, false, "a" },
		{ "RESET pgmux.shard_key", true, K, false, true, NULL },
		{ "reset pgmux.shard;", true, S, false, true, NULL },
		{ "SET pgmux.shard_key TO DEFAULT", true, K, false, true, NULL },
		{ "SET LOCAL pgmux.shard = default;", true, S, true, true, NULL },
		{ "SET pgmux.shard_key = 'DEFAULT'", true, K, false, false, "DEFAULT" },
		/* not ours, or not understood */
		{ "SET pgmux.route = primary", false, 0, false, false, NULL },
		{ "SET pgmux.shard_keys = 1", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key.x = 1", false, 0, false, false, NULL },
		{ "SET shard_key = 1", false, 0, false, false, NULL },
		{ "SET x.pgmux.shard_key = 1", false, 0, false, false, NULL },
		{ "SET \"PGMUX\".shard_key = 1", false, 0, false, false, NULL },
		{ "SET \"pgmux.shard_key\" = 1", false, 0, false, false, NULL },
		{ "SET pgmux.\"Shard_Key\" = 1", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 1; SELECT 1", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 1; SET pgmux.shard = a", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 1, 2", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 'a''b'", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = E'42'", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 'a' 'b'", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 'unterminated", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = $$x", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = 42abc", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = - 5", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = \"\"", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key = ", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key 42", false, 0, false, false, NULL },
		{ "SET pgmux.shard_key FROM CURRENT", false, 0, false, false, NULL },
		{ "SET LOCAL SESSION pgmux.shard_key = 1", false, 0, false, false, NULL },
		{ "RESET pgmux.shard_key = 1", false, 0, false, false, NULL },
		{ "RESET ALL", false, 0, false, false, NULL },
		{ "SETpgmux.shard_key = 1", false, 0, false, false, NULL },
		{ "SELECT 1", false, 0, false, false, NULL },
		{ "", false, 0, false, false, NULL },
	};
	struct keyfind_set s;
	const char *sql = "SET pgmux.shard_key = 12345";

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		check_set(cases[i].sql, cases[i].ok, cases[i].what, cases[i].local, cases[i].reset,
			  cases[i].value);
	/* bounded by len */
	assert_true(keyfind_set(sql, strlen(sql) - 3, &s));
	assert_int_equal(s.value_len, 2);
	assert_false(keyfind_set(sql, 19, &s));
}

/* ---- cost ---- */

static double ns_per_call(const char *sql, int calls)
{
	struct timespec t0, t1;
	struct keyfind kf;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < calls; i++) {
		if (!keyfind_sql(sql, strlen(sql), KEY, &kf) || kf.status != KEYFIND_KEYED)
			fail_msg("%s: not keyed", sql);
		keyfind_free(&kf);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / calls;
}

static const char *const BENCH_SQL[] = {
	"SELECT * FROM users WHERE user_id = $1",
	"INSERT INTO orders (id, user_id, total) VALUES ($1, $2, $3), ($4, $5, $6), ($7, $8, $9)",
};

/* Prints the figure; asserts nothing about time (machines differ). */
static void test_cost(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(BENCH_SQL); i++)
		printf("keyfind_sql: %6.0f ns per call: %s\n", ns_per_call(BENCH_SQL[i], 2000),
		       BENCH_SQL[i]);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select_predicates),
		cmocka_unit_test(test_negative_and_zero),
		cmocka_unit_test(test_in_and_any),
		cmocka_unit_test(test_huge_in_lists),
		cmocka_unit_test(test_insert),
		cmocka_unit_test(test_update_delete),
		cmocka_unit_test(test_other_statements),
		cmocka_unit_test(test_neutral_and_several_statements),
		cmocka_unit_test(test_lexical),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_copy_description),
		cmocka_unit_test(test_column_name),
		cmocka_unit_test(test_hint),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_cost),
	};

	if (argc == 2 && strcmp(argv[1], "--bench") == 0) {
		for (size_t i = 0; i < ARRAY_LEN(BENCH_SQL); i++)
			printf("%.0f ns per call: %s\n", ns_per_call(BENCH_SQL[i], 200000),
			       BENCH_SQL[i]);
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
