/* link: src/route/setstmt.c src/route/sqlscan.c */
/*
 * Unit tests for the SET / RESET / DISCARD ALL recogniser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/setstmt.h"

struct set_case {
	const char *sql;
	enum set_kind kind;
	const char *name;
	const char *value;
};

static const struct set_case cases[] = {
	{ "SET search_path TO app, public", SET_VALUE, "search_path", "app, public" },
	{ "set search_path = 'a'", SET_VALUE, "search_path", "'a'" },
	{ "  SET SESSION statement_timeout = '150ms';  ", SET_VALUE, "statement_timeout",
	  "'150ms'" },
	{ "SET work_mem TO '64MB'", SET_VALUE, "work_mem", "'64MB'" },
	{ "SET TIME ZONE 'UTC'", SET_VALUE, "timezone", "'UTC'" },
	{ "SET ROLE alice", SET_VALUE, "role", "alice" },
	{ "SET SESSION AUTHORIZATION bob", SET_VALUE, "session_authorization", "bob" },
	{ "SET NAMES 'UTF8'", SET_VALUE, "client_encoding", "'UTF8'" },
	{ "SET \"MyParam\" TO 1", SET_VALUE, "MyParam", "1" },
	{ "SET myext.flag = 'on'", SET_VALUE, "myext.flag", "'on'" },
	{ "SET x = 'a;b'", SET_VALUE, "x", "'a;b'" },
	{ "/* hint */ SET a TO 1", SET_VALUE, "a", "1" },
	{ "SET statement_timeout TO DEFAULT", SET_RESET, "statement_timeout", NULL },
	{ "RESET search_path", SET_RESET, "search_path", NULL },
	{ "reset time zone", SET_RESET, "timezone", NULL },
	{ "RESET ALL", SET_RESET_ALL, NULL, NULL },
	{ "DISCARD ALL;", SET_RESET_ALL, NULL, NULL },
	{ "SET LOCAL statement_timeout = '5s'", SET_LOCAL, NULL, NULL },
	{ "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SET_NONE, NULL, NULL },
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", SET_NONE, NULL, NULL },
	{ "SET CONSTRAINTS ALL DEFERRED", SET_NONE, NULL, NULL },
	{ "SET a TO 1; SELECT 1", SET_UNKNOWN, NULL, NULL },
	{ "SET a FROM CURRENT", SET_UNKNOWN, NULL, NULL },
	{ "SET a TO 'unterminated", SET_UNKNOWN, NULL, NULL },
	{ "SELECT 1", SET_NONE, NULL, NULL },
	{ "settings", SET_NONE, NULL, NULL },
	{ "DISCARD PLANS", SET_NONE, NULL, NULL },
	{ "", SET_NONE, NULL, NULL },
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct set_stmt st;
		enum set_kind k = setstmt_parse(cases[i].sql, strlen(cases[i].sql), &st);

		if (k != cases[i].kind)
			fail_msg("%s: kind %d, expected %d", cases[i].sql, k, cases[i].kind);
		if (cases[i].name && strcmp(st.name, cases[i].name) != 0 && k != SET_VALUE)
			fail_msg("%s: name '%s'", cases[i].sql, st.name);
		if (cases[i].name && cases[i].value && strcmp(st.name, cases[i].name) != 0)
			fail_msg("%s: name '%s'", cases[i].sql, st.name);
		if (cases[i].value && strcmp(st.value, cases[i].value) != 0)
			fail_msg("%s: value '%s'", cases[i].sql, st.value);
	}
}

static void test_not_nul_terminated(void **state)
{
	const char sql[] = { 'S', 'E', 'T', ' ', 'a', '=', '1', 'X' };
	struct set_stmt st;

	(void)state;
	assert_int_equal(setstmt_parse(sql, 7, &st), SET_VALUE);
	assert_string_equal(st.value, "1");
}

static void test_too_long(void **state)
{
	char sql[2048];
	struct set_stmt st;

	(void)state;
	memcpy(sql, "SET a TO '", 10);
	memset(sql + 10, 'x', sizeof(sql) - 12);
	sql[sizeof(sql) - 2] = '\'';
	sql[sizeof(sql) - 1] = '\0';
	assert_int_equal(setstmt_parse(sql, strlen(sql), &st), SET_UNKNOWN);
}

static void test_scan_changes(void **state)
{
	static const struct {
		const char *sql;
		bool any, unnamed;
		const char *names; /* space-separated */
	} scans[] = {
		{ "select 1", false, false, "" },
		{ "select 1; select 2", false, false, "" },
		{ "update t set x = 1", false, false, "" },
		{ "set work_mem = '7MB'", true, false, "" },
		{ "select 1; set work_mem = '7MB'", true, false, "" },
		{ "begin; /* why */ SET MyApp.Tenant = 4; commit", true, false, "myapp.tenant" },
		{ "select 1;reset all", true, false, "" },
		{ "select 1; reset app.user", true, false, "app.user" },
		{ "select 1; discard all", true, false, "" },
		{ "select pg_catalog.SET_CONFIG( 'App.Id', $1, false)", true, false, "app.id" },
		{ "select set_config(name, 'x', false) from t", true, true, "" },
		{ "select set_config('a.b', '1', false), set_config('c.d', '2', false)", true,
		  false, "a.b c.d" },
		{ "set a.a=1; set b.b=1; set c.c=1; set d.d=1; set e.e=1", true, true,
		  "a.a b.b c.c d.d" },
		{ "select ';set x=1'", true, false, "" }, /* a false alarm, never a miss */
		{ "select 1;", false, false, "" },
		{ ";", false, false, "" },
		{ "", false, false, "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(scans) / sizeof(scans[0]); i++) {
		struct setstmt_changes ch;
		char names[SETSTMT_MAX_NAMES * SET_NAME_MAX] = "";

		setstmt_scan_changes(scans[i].sql, strlen(scans[i].sql), &ch);
		for (int k = 0; k < ch.n_names; k++) {
			if (k)
				strcat(names, " ");
			strcat(names, ch.names[k]);
		}
		if (ch.any != scans[i].any || ch.unnamed != scans[i].unnamed ||
		    strcmp(names, scans[i].names) != 0)
			fail_msg("%s: got any=%d unnamed=%d names=[%s]", scans[i].sql, ch.any,
				 ch.unnamed, names);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_scan_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
