/* link: src/proto/fe.c src/proto/pkt.c */
/*
 * Unit tests for the frontend message parsers. A table of valid and malformed bodies; every
 * valid message is also fed every truncation of itself and each of its strings without its NUL,
 * each in a buffer of exactly its size (so a sanitizer build sees any read past it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/fe.h"

/* Parse body as a message of this type; 'p' alone is ambiguous, so the table names the kind. */
enum kind {
	K_QUERY,
	K_PARSE,
	K_BIND,
	K_DESCRIBE,
	K_CLOSE,
	K_EXECUTE,
	K_COPY_DONE,
	K_COPY_FAIL,
	K_SASL_INITIAL,
	K_PASSWORD
};

static bool parse_as(enum kind k, const uint8_t *body, size_t len)
{
	struct fe_query q;
	struct fe_parse p;
	struct fe_bind b;
	struct fe_describe d;
	struct fe_execute e;
	struct fe_sasl_initial si;
	const char *s;

	switch (k) {
	case K_QUERY:
		return fe_parse_query(body, len, &q);
	case K_PARSE:
		return fe_parse_parse(body, len, &p);
	case K_BIND:
		return fe_parse_bind(body, len, &b);
	case K_DESCRIBE:
		return fe_parse_describe(body, len, &d);
	case K_CLOSE:
		return fe_parse_close(body, len, &d);
	case K_EXECUTE:
		return fe_parse_execute(body, len, &e);
	case K_COPY_DONE:
		return fe_parse_copy_done(body, len);
	case K_COPY_FAIL:
		return fe_parse_copy_fail(body, len, &s);
	case K_SASL_INITIAL:
		return fe_parse_sasl_initial(body, len, &si);
	case K_PASSWORD:
		return fe_parse_password(body, len, &s);
	}
	return false;
}

/* The message in a buffer of exactly len bytes. */
static bool parse_exact(enum kind k, const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	bool ok;

	assert_non_null(copy);
	memcpy(copy, data, len);
	ok = parse_as(k, copy, len);
	free(copy);
	return ok;
}

#define MSG(s) (const uint8_t *)(s), sizeof(s) - 1

struct fe_case {
	const char *name;
	enum kind kind;
	const uint8_t *data;
	size_t len;
	bool ok;
	int nuls[4]; /* offsets of string terminators (valid cases), ended by 0 after the first */
};

static const struct fe_case cases[] = {
	{ "query", K_QUERY, MSG("select 1\0"), true, { 8 } },
	{ "query, empty string", K_QUERY, MSG("\0"), true, { 0 } },
	{ "query, no NUL", K_QUERY, MSG("select 1"), false },
	{ "query, bytes after the NUL", K_QUERY, MSG("select 1\0x"), false },
	{ "query, empty body", K_QUERY, MSG(""), false },
	{ "parse",
	  K_PARSE,
	  MSG("s1\0select $1\0"
	      "\0\1"
	      "\0\0\0\x17"),
	  true,
	  { 2, 12 } },
	{ "parse, unnamed, no types",
	  K_PARSE,
	  MSG("\0select 1\0"
	      "\0\0"),
	  true,
	  { 0, 9 } },
	{ "parse, more types than bytes", K_PARSE,
	  MSG("\0select 1\0"
	      "\0\5"
	      "\0\0\0\x17"),
	  false },
	{ "parse, count 65535, no types", K_PARSE,
	  MSG("\0select 1\0"
	      "\xff\xff"),
	  false },
	{ "parse, byte after the types", K_PARSE,
	  MSG("\0select 1\0"
	      "\0\0"
	      "x"),
	  false },
	{ "parse, no query", K_PARSE, MSG("s1\0"), false },
	{ "bind",
	  K_BIND,
	  MSG("p1\0s1\0"
	      "\0\1"
	      "\0\1"
	      "\0\2"
	      "\0\0\0\3"
	      "abc"
	      "\xff\xff\xff\xff"
	      "\0\1"
	      "\0\0"),
	  true,
	  { 2, 5 } },
	{ "bind, all empty",
	  K_BIND,
	  MSG("\0\0"
	      "\0\0"
	      "\0\0"
	      "\0\0"),
	  true,
	  { 0, 1 } },
	{ "bind, empty body", K_BIND, MSG(""), false },
	{ "bind, portal without NUL", K_BIND, MSG("portal"), false },
	{ "bind, statement without NUL", K_BIND, MSG("\0stmt"), false },
	{ "bind, value length -2", K_BIND,
	  MSG("\0\0"
	      "\0\0"
	      "\0\1"
	      "\xff\xff\xff\xfe"
	      "\0\0"),
	  false },
	{ "bind, value longer than the message", K_BIND,
	  MSG("\0\0"
	      "\0\0"
	      "\0\1"
	      "\0\0\1\0"
	      "ab"
	      "\0\0"),
	  false },
	{ "bind, value length 2^31-1", K_BIND,
	  MSG("\0\0"
	      "\0\0"
	      "\0\1"
	      "\x7f\xff\xff\xff"
	      "\0\0"),
	  false },
	{ "bind, more formats than bytes", K_BIND,
	  MSG("\0\0"
	      "\0\3"
	      "\0\1"
	      "\0\0"
	      "\0\0"),
	  false },
	{ "bind, byte after result formats", K_BIND,
	  MSG("\0\0"
	      "\0\0"
	      "\0\0"
	      "\0\0"
	      "x"),
	  false },
	{ "describe statement", K_DESCRIBE, MSG("Sname\0"), true, { 5 } },
	{ "describe unnamed portal", K_DESCRIBE, MSG("P\0"), true, { 1 } },
	{ "describe, bad kind", K_DESCRIBE, MSG("X\0"), false },
	{ "describe, kind NUL", K_DESCRIBE, MSG("\0\0"), false },
	{ "describe, kind only", K_DESCRIBE, MSG("S"), false },
	{ "describe, bytes after the name", K_DESCRIBE, MSG("Sa\0b\0"), false },
	{ "close statement", K_CLOSE, MSG("Sname\0"), true, { 5 } },
	{ "close portal", K_CLOSE, MSG("Pp\0"), true, { 2 } },
	{ "close, bad kind", K_CLOSE, MSG("s\0"), false },
	{ "execute",
	  K_EXECUTE,
	  MSG("p1\0"
	      "\0\0\0\x0a"),
	  true,
	  { 2 } },
	{ "execute unnamed",
	  K_EXECUTE,
	  MSG("\0"
	      "\0\0\0\0"),
	  true,
	  { 0 } },
	{ "execute, short row count", K_EXECUTE,
	  MSG("\0"
	      "\0\0\0"),
	  false },
	{ "execute, byte after", K_EXECUTE,
	  MSG("\0"
	      "\0\0\0\0"
	      "x"),
	  false },
	{ "copy done", K_COPY_DONE, MSG(""), true },
	{ "copy done, with bytes", K_COPY_DONE, MSG("x"), false },
	{ "copy fail", K_COPY_FAIL, MSG("oops\0"), true, { 4 } },
	{ "copy fail, no NUL", K_COPY_FAIL, MSG("oops"), false },
	{ "sasl initial",
	  K_SASL_INITIAL,
	  MSG("SCRAM-SHA-256\0"
	      "\0\0\0\3"
	      "n,,"),
	  true,
	  { 13 } },
	{ "sasl initial, no data",
	  K_SASL_INITIAL,
	  MSG("SCRAM-SHA-256\0"
	      "\xff\xff\xff\xff"),
	  true,
	  { 13 } },
	{ "sasl initial, length -2", K_SASL_INITIAL,
	  MSG("SCRAM-SHA-256\0"
	      "\xff\xff\xff\xfe"),
	  false },
	{ "sasl initial, data shorter than said", K_SASL_INITIAL,
	  MSG("M\0"
	      "\0\0\0\4"
	      "n,,"),
	  false },
	{ "sasl initial, data longer than said", K_SASL_INITIAL,
	  MSG("M\0"
	      "\0\0\0\2"
	      "n,,"),
	  false },
	{ "sasl initial, no mechanism NUL", K_SASL_INITIAL, MSG("SCRAM-SHA-256"), false },
	{ "password", K_PASSWORD, MSG("secret\0"), true, { 6 } },
	{ "password, empty body", K_PASSWORD, MSG(""), false },
	{ "password, two strings", K_PASSWORD, MSG("a\0b\0"), false },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fe_case *t = &cases[i];

		if (parse_exact(t->kind, t->data, t->len) != t->ok)
			fail_msg("%s: expected %s", t->name, t->ok ? "valid" : "malformed");
	}
}

static void test_truncations(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fe_case *t = &cases[i];

		if (!t->ok)
			continue;
		for (size_t n = 0; n < t->len; n++)
			if (parse_exact(t->kind, t->data, n))
				fail_msg("%s: truncated to %zu bytes, still valid", t->name, n);
	}
}

static void test_missing_nuls(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fe_case *t = &cases[i];

		for (int k = 0; t->ok && k < 4 && (k == 0 || t->nuls[k]); k++) {
			uint8_t *copy;
			bool ok;

			if (t->kind == K_COPY_DONE)
				break;
			assert_int_equal(t->data[t->nuls[k]], 0);
			copy = malloc(t->len);
			assert_non_null(copy);
			memcpy(copy, t->data, t->len);
			copy[t->nuls[k]] = 'x';
			ok = parse_as(t->kind, copy, t->len);
			free(copy);
			if (ok)
				fail_msg("%s: valid without the NUL at %d", t->name, t->nuls[k]);
		}
	}
}

static void test_query_fields(void **state)
{
	const uint8_t body[] = "select 1";
	struct fe_query q;

	(void)state;
	assert_true(fe_parse_query(body, sizeof(body), &q));
	assert_string_equal(q.sql, "select 1");
	assert_int_equal(q.sql_len, 8);
}

static void test_parse_fields(void **state)
{
	const uint8_t body[] = "s1\0select $1, $2\0"
			       "\0\2"
			       "\0\0\0\x17"
			       "\0\0\0\x19";
	struct fe_parse p;

	(void)state;
	assert_true(fe_parse_parse(body, sizeof(body) - 1, &p));
	assert_string_equal(p.name, "s1");
	assert_string_equal(p.query, "select $1, $2");
	assert_int_equal(p.query_len, 13);
	assert_int_equal(p.nparams, 2);
	assert_int_equal(fe_parse_param_type(&p, 0), 23);
	assert_int_equal(fe_parse_param_type(&p, 1), 25);
	assert_int_equal(fe_parse_param_type(&p, 2), 0);
	assert_ptr_equal(p.def, body + 3);
	assert_int_equal(p.def_len, sizeof(body) - 1 - 3);
}

static void test_bind_fields(void **state)
{
	const uint8_t body[] = "p1\0s1\0"
			       "\0\1"
			       "\0\1"
			       "\0\2"
			       "\0\0\0\3"
			       "abc"
			       "\xff\xff\xff\xff"
			       "\0\1"
			       "\0\0";
	struct fe_bind b;

	(void)state;
	assert_true(fe_parse_bind(body, sizeof(body) - 1, &b));
	assert_string_equal(b.portal, "p1");
	assert_string_equal(b.statement, "s1");
	assert_int_equal(b.statement_off, 3);
	assert_int_equal(b.rest_off, 6);
	assert_int_equal(b.nformats, 1);
	assert_ptr_equal(b.formats, body + 8);
	assert_int_equal(b.nparams, 2);
	assert_ptr_equal(b.params, body + 12);
	assert_int_equal(b.params_len, 4 + 3 + 4);
	assert_int_equal(b.nresult_formats, 1);
	assert_ptr_equal(b.result_formats, body + 25);
	/* the parameters, and their format (one format code: it applies to all) */
	{
		const uint8_t *v;
		int32_t n;
		bool binary;

		assert_true(fe_bind_param(&b, 0, &v, &n, &binary));
		assert_int_equal(n, 3);
		assert_memory_equal(v, "abc", 3);
		assert_true(binary);
		assert_true(fe_bind_param(&b, 1, &v, &n, &binary));
		assert_int_equal(n, -1);
		assert_null(v);
		assert_false(fe_bind_param(&b, 2, &v, &n, &binary));
	}
	/* an empty value is a value: it points somewhere, unlike NULL */
	{
		const uint8_t empty[] = "\0\0"
					"\0\0"
					"\0\1"
					"\0\0\0\0"
					"\0\0";
		const uint8_t *v;
		int32_t n;
		bool binary;

		assert_true(fe_parse_bind(empty, sizeof(empty) - 1, &b));
		assert_true(fe_bind_param(&b, 0, &v, &n, &binary));
		assert_int_equal(n, 0);
		assert_non_null(v);
		assert_false(binary);
	}
}

static void test_describe_execute_fields(void **state)
{
	struct fe_describe d;
	struct fe_execute e;
	const uint8_t exec[] = "p1\0"
			       "\0\0\1\0";

	(void)state;
	assert_true(fe_parse_describe((const uint8_t *)"Sst", 4, &d));
	assert_int_equal(d.kind, FE_STATEMENT);
	assert_string_equal(d.name, "st");
	assert_true(fe_parse_close((const uint8_t *)"P", 2, &d));
	assert_int_equal(d.kind, FE_PORTAL);
	assert_string_equal(d.name, "");
	assert_true(fe_parse_execute(exec, sizeof(exec) - 1, &e));
	assert_string_equal(e.portal, "p1");
	assert_int_equal(e.max_rows, 256);
}

static void test_auth_fields(void **state)
{
	const uint8_t init[] = "SCRAM-SHA-256\0"
			       "\0\0\0\3"
			       "n,,";
	const uint8_t none[] = "SCRAM-SHA-256\0"
			       "\xff\xff\xff\xff";
	struct fe_sasl_initial si;
	const uint8_t *data;
	size_t dlen;
	const char *pw;

	(void)state;
	assert_true(fe_parse_sasl_initial(init, sizeof(init) - 1, &si));
	assert_string_equal(si.mechanism, "SCRAM-SHA-256");
	assert_int_equal(si.data_len, 3);
	assert_memory_equal(si.data, "n,,", 3);
	assert_true(fe_parse_sasl_initial(none, sizeof(none) - 1, &si));
	assert_int_equal(si.data_len, -1);
	assert_null(si.data);
	assert_true(fe_parse_sasl_response((const uint8_t *)"c=biws", 6, &data, &dlen));
	assert_int_equal(dlen, 6);
	assert_true(fe_parse_copy_data((const uint8_t *)"", 0, &data, &dlen));
	assert_int_equal(dlen, 0);
	assert_true(fe_parse_password((const uint8_t *)"md5abc", 7, &pw));
	assert_string_equal(pw, "md5abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_missing_nuls),
		cmocka_unit_test(test_query_fields),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_bind_fields),
		cmocka_unit_test(test_describe_execute_fields),
		cmocka_unit_test(test_auth_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
