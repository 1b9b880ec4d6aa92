/*
 * Unit tests for shard/json: reading in place, navigation by skip, escapes decoded where they
 * stand, and refusal of what is not one JSON value (or is nested too deep).
 */
/* link: src/shard/json.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/json.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Read a copy of text (the reader writes into it); the copy is in *buf, freed by the caller. */
static bool read_copy(const char *text, struct json_doc *d, char **buf, int depth)
{
	bool oom;

	*buf = strdup(text);
	assert_non_null(*buf);
	return json_read(d, *buf, strlen(text), depth, &oom);
}

static void test_navigation(void **state)
{
	struct json_doc d;
	char *buf;
	const struct json_node *root, *stmts, *v;
	const char *key;

	(void)state;
	assert_true(read_copy("{\"version\": 150001, \"stmts\": [{\"stmt\": {\"SelectStmt\": "
			      "{\"targetList\": [1, 2, 3], \"op\": \"SETOP_NONE\"}}}, {}], "
			      "\"empty\": {}, \"none\": null, \"yes\": true}",
			      &d, &buf, 100));
	root = d.nodes;
	assert_int_equal(root->kind, JSON_OBJECT);
	assert_int_equal(root->count, 5);
	assert_int_equal(root->skip, d.n);
	assert_int_equal(json_field(root, "version")->num, 150001);
	stmts = json_field(root, "stmts");
	assert_int_equal(json_len(stmts), 2);
	v = json_first(json_field(json_at(stmts, 0), "stmt"), &key);
	assert_string_equal(key, "SelectStmt");
	assert_int_equal(json_len(json_field(v, "targetList")), 3);
	assert_int_equal(json_at(json_field(v, "targetList"), 2)->num, 3);
	assert_null(json_at(json_field(v, "targetList"), 3));
	assert_true(json_str_is(json_field(v, "op"), "SETOP_NONE"));
	assert_int_equal(json_at(stmts, 1)->kind, JSON_OBJECT);
	assert_null(json_first(json_at(stmts, 1), &key));
	assert_int_equal(json_field(root, "none")->kind, JSON_NULL);
	assert_int_equal(json_field(root, "yes")->num, 1);
	assert_null(json_field(root, "missing"));
	assert_null(json_field(stmts, "version")); /* not an object */
	/* walking members with json_next visits each key once, in order */
	{
		const char *want[] = { "version", "stmts", "empty", "none", "yes" };
		const struct json_node *k = root + 1;

		for (size_t i = 0; i < ARRAY_LEN(want); i++, k = json_next(k + 1))
			assert_string_equal(k->s, want[i]);
		assert_ptr_equal(k, d.nodes + d.n);
	}
	json_free(&d);
	free(buf);
}

static void test_strings_and_numbers(void **state)
{
	struct json_doc d;
	char *buf;

	(void)state;
	assert_true(read_copy("[\"a\\\"b\\\\c\\/d\\n\", \"\\u00e9\\u20ac\\ud83d\\ude00\", \"\", "
			      "-42, 9223372036854775807, 99999999999999999999, 1.5e3]",
			      &d, &buf, 10));
	assert_string_equal(json_at(d.nodes, 0)->s, "a\"b\\c/d\n");
	assert_int_equal(json_at(d.nodes, 0)->len, 8);
	assert_string_equal(json_at(d.nodes, 1)->s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_string_equal(json_at(d.nodes, 2)->s, "");
	assert_int_equal(json_at(d.nodes, 3)->num, -42);
	assert_int_equal(json_at(d.nodes, 4)->num, INT64_MAX);
	assert_int_equal(json_at(d.nodes, 5)->num, INT64_MAX); /* clamped */
	assert_int_equal(json_at(d.nodes, 6)->num, 1);         /* the integer part */
	json_free(&d);
	free(buf);
}

static void test_refused(void **state)
{
	static const char *const bad[] = { "",
					   "   ",
					   "{",
					   "[1,",
					   "[1 2]",
					   "{\"a\" 1}",
					   "{1: 2}",
					   "\"open",
					   "[\"\\x\"]",
					   "[\"\\u12\"]",
					   "[\"\\u0000\"]",
					   "[\"\\ud83d\"]",
					   "[\"\\ude00\"]",
					   "[\"a\nb\"]",
					   "[1] [2]",
					   "nul",
					   "tru",
					   "-",
					   "[-a]",
					   "{\"a\":1,}" };
	struct json_doc d;
	char *buf;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (read_copy(bad[i], &d, &buf, 10))
			fail_msg("accepted: %s", bad[i]);
		json_free(&d);
		free(buf);
	}
	/* nesting past the limit */
	assert_true(read_copy("[[[[1]]]]", &d, &buf, 4));
	json_free(&d);
	free(buf);
	assert_false(read_copy("[[[[[1]]]]]", &d, &buf, 4));
	json_free(&d);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_navigation),
		cmocka_unit_test(test_strings_and_numbers),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
