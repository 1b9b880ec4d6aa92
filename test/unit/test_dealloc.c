/* link: src/route/dealloc.c src/route/sqlscan.c */
/*
 * Unit tests for the DEALLOCATE / DISCARD ALL recogniser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/dealloc.h"

struct dealloc_case {
	const char *sql;
	enum dealloc_kind kind;
	const char *name;
};

static const struct dealloc_case cases[] = {
	{ "DEALLOCATE _pg3_0", DEALLOC_NAME, "_pg3_0" },
	{ "deallocate s1;", DEALLOC_NAME, "s1" },
	{ "  DEALLOCATE   MyStmt  ;  ", DEALLOC_NAME, "mystmt" },
	{ "DEALLOCATE PREPARE s$1", DEALLOC_NAME, "s$1" },
	{ "DEALLOCATE \"MyStmt\"", DEALLOC_NAME, "MyStmt" },
	{ "DEALLOCATE \"a\"\"b\"", DEALLOC_NAME, "a\"b" },
	{ "DEALLOCATE \"all\"", DEALLOC_NAME, "all" },
	{ "DEALLOCATE \"my stmt\"", DEALLOC_NAME, "my stmt" },
	{ "DEALLOCATE prepare", DEALLOC_NAME, "prepare" },
	{ "DEALLOCATE prepare;", DEALLOC_NAME, "prepare" },
	{ "DEALLOCATE PREPARE prepare", DEALLOC_NAME, "prepare" },
	{ "/* c */ DEALLOCATE -- why\n s /* x /* nested */ */ ;", DEALLOC_NAME, "s" },
	{ "DEALLOCATE ALL", DEALLOC_ALL, NULL },
	{ "deallocate prepare all ;", DEALLOC_ALL, NULL },
	{ "DISCARD ALL", DEALLOC_DISCARD_ALL, NULL },
	{ "discard all;", DEALLOC_DISCARD_ALL, NULL },
	{ "DISCARD PLANS", DEALLOC_NONE, NULL },
	{ "DISCARD", DEALLOC_NONE, NULL },
	{ "DEALLOCATE", DEALLOC_NONE, NULL },
	{ "DEALLOCATE ;", DEALLOC_NONE, NULL },
	{ "DEALLOCATE a b", DEALLOC_NONE, NULL },
	{ "DEALLOCATE a; SELECT 1", DEALLOC_NONE, NULL },
	{ "DEALLOCATE a;;", DEALLOC_NONE, NULL },
	{ "DEALLOCATE \"\"", DEALLOC_NONE, NULL },
	{ "DEALLOCATE \"open", DEALLOC_NONE, NULL },
	{ "DEALLOCATE 1a", DEALLOC_NONE, NULL },
	{ "DEALLOCATE U&\"x\"", DEALLOC_NONE, NULL },
	{ "\"DEALLOCATE\" a", DEALLOC_NONE, NULL },
	{ "DEALLOCATEa", DEALLOC_NONE, NULL },
	{ "SELECT 'DEALLOCATE a'", DEALLOC_NONE, NULL },
	{ "", DEALLOC_NONE, NULL },
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dealloc_stmt st;
		enum dealloc_kind k = dealloc_parse(cases[i].sql, strlen(cases[i].sql), &st);

		if (k != cases[i].kind)
			fail_msg("%s: kind %d, expected %d", cases[i].sql, k, cases[i].kind);
		if (strcmp(st.name, cases[i].name ? cases[i].name : "") != 0)
			fail_msg("%s: name '%s'", cases[i].sql, st.name);
	}
}

static void test_not_nul_terminated(void **state)
{
	const char sql[] = { 'D', 'E', 'A', 'L', 'L', 'O', 'C', 'A', 'T', 'E', ' ', 'a', 'b' };
	struct dealloc_stmt st;

	(void)state;
	assert_int_equal(dealloc_parse(sql, sizeof(sql) - 1, &st), DEALLOC_NAME);
	assert_string_equal(st.name, "a");
}

/* 63 bytes is a name; 64 would be truncated by PostgreSQL: left to the server. */
static void test_name_length(void **state)
{
	char sql[128];
	struct dealloc_stmt st;

	(void)state;
	memcpy(sql, "DEALLOCATE ", 11);
	memset(sql + 11, 'n', 63);
	assert_int_equal(dealloc_parse(sql, 11 + 63, &st), DEALLOC_NAME);
	assert_int_equal(strlen(st.name), 63);
	memset(sql + 11, 'n', 64);
	assert_int_equal(dealloc_parse(sql, 11 + 64, &st), DEALLOC_NONE);
	sql[11] = '"';
	memset(sql + 12, 'q', 64);
	sql[76] = '"';
	assert_int_equal(dealloc_parse(sql, 77, &st), DEALLOC_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_name_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
