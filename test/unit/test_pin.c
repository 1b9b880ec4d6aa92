/* link: src/route/pin.c */
/*
 * Unit tests for session-state (pinning) statement recognition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/pin.h"

static const struct {
	const char *sql;
	const char *reason;
} cases[] = {
	{ "LISTEN jobs", "LISTEN" },
	{ "  listen \"Jobs\";", "LISTEN" },
	{ "/* c */ PREPARE q(int) AS SELECT $1", "SQL PREPARE" },
	{ "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "cursor WITH HOLD" },
	{ "DECLARE c CURSOR FOR SELECT 1", NULL },
	{ "CREATE TEMP TABLE t (x int)", "temporary object" },
	{ "create temporary sequence s", "temporary object" },
	{ "CREATE LOCAL TEMPORARY TABLE t (x int)", "temporary object" },
	{ "CREATE TABLE t (x int)", NULL },
	{ "SELECT pg_advisory_lock(1)", "session advisory lock" },
	{ "select pg_try_advisory_lock(1, 2)", "session advisory lock" },
	{ "SELECT pg_advisory_xact_lock(1)", NULL },
	{ "SELECT 1", NULL },
	{ "UNLISTEN *", NULL },
	{ "-- LISTEN x\nSELECT 1", NULL },
	{ "", NULL },
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *r = pin_reason(cases[i].sql, strlen(cases[i].sql));

		if (!cases[i].reason && r)
			fail_msg("%s: pinned (%s)", cases[i].sql, r);
		if (cases[i].reason && (!r || strcmp(r, cases[i].reason) != 0))
			fail_msg("%s: got %s", cases[i].sql, r ? r : "(none)");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_cases) };

	return cmocka_run_group_tests(tests, NULL, NULL);
}
