/* link: */
/*
 * Unit tests for core/lsn: pg_lsn's text form read as a WAL position, and what is not one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/lsn.h"

static void test_lsn_parse(void **state)
{
	uint64_t lsn;

	(void)state;
	assert_true(lsn_parse("0/16B3748", &lsn));
	assert_true(lsn == 0x16B3748);
	assert_true(lsn_parse("1A/0", &lsn));
	assert_true(lsn == 0x1A00000000ULL);
	assert_true(lsn_parse("FFFFFFFF/FFFFFFFF", &lsn));
	assert_true(lsn == UINT64_MAX);
	assert_false(lsn_parse("x/1", &lsn));
	assert_false(lsn_parse("1/2 ", &lsn));
	assert_false(lsn_parse("12", &lsn));
	assert_false(lsn_parse(NULL, &lsn));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lsn_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
