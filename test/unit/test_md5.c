/*
 * Unit tests for auth/md5. Expected values were computed independently (Python's hashlib) and
 * checked against the rolpassword PostgreSQL 15 stored for the same user and password.
 */
/* link: src/auth/md5.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/md5.h"

/* What PostgreSQL stores for ALTER ROLE postgres PASSWORD 'secret' with md5 encryption. */
#define POSTGRES_SECRET "md553f48b7c4b76a86ce72276c5755f217d"

static void test_hash_matches_postgresql(void **state)
{
	static const struct {
		const char *user, *password, *expected;
	} cases[] = {
		{ "postgres", "secret", POSTGRES_SECRET },
		{ "alice", "pa\"ss", "md5c6f229a1e3258b51f5f720c7e2feb8fe" },
		{ "", "", "md5d41d8cd98f00b204e9800998ecf8427e" }, /* md5 of nothing */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[MD5_PASSWORD_LEN + 1];
		assert_true(md5_password_hash(cases[i].user, cases[i].password, out));
		assert_string_equal(out, cases[i].expected);
	}
}

static void test_response(void **state)
{
	static const struct {
		uint8_t salt[4];
		const char *expected;
	} cases[] = {
		{ { 0x01, 0x02, 0x03, 0x04 }, "md5bb41a296aab6baccb36ff243a562abff" },
		{ { 0xde, 0xad, 0xbe, 0xef }, "md5c546d0bbed2af888b328536b45c76348" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char from_plain[MD5_PASSWORD_LEN + 1], from_secret[MD5_PASSWORD_LEN + 1];
		assert_true(md5_password_response("postgres", "secret", cases[i].salt, from_plain));
		assert_string_equal(from_plain, cases[i].expected);
		/* A stored secret answers the challenge just as the password does. */
		assert_true(md5_password_response("postgres", POSTGRES_SECRET, cases[i].salt,
						  from_secret));
		assert_string_equal(from_secret, cases[i].expected);
	}
}

static void test_is_secret(void **state)
{
	assert_true(md5_is_secret(POSTGRES_SECRET));
	assert_false(md5_is_secret("md553F48B7C4B76A86CE72276C5755F217D")); /* uppercase hex */
	assert_false(md5_is_secret("MD553f48b7c4b76a86ce72276c5755f217d"));
	assert_false(md5_is_secret("md553f48b7c4b76a86ce72276c5755f217"));   /* 31 digits */
	assert_false(md5_is_secret("md553f48b7c4b76a86ce72276c5755f217d0")); /* 33 digits */
	assert_false(md5_is_secret("md553f48b7c4b76a86ce72276c5755f217g"));
	assert_false(md5_is_secret("md5"));
	assert_false(md5_is_secret("secret"));
	assert_false(md5_is_secret(""));
}

/* Something that merely looks like a secret is a password, as in PostgreSQL. */
static void test_near_secret_is_plaintext(void **state)
{
	const char *upper = "md553F48B7C4B76A86CE72276C5755F217D";
	const uint8_t salt[4] = { 1, 2, 3, 4 };
	char hashed[MD5_PASSWORD_LEN + 1], resp[MD5_PASSWORD_LEN + 1], expect[MD5_PASSWORD_LEN + 1];

	assert_true(md5_password_hash("postgres", upper, hashed));
	assert_true(md5_password_response("postgres", hashed, salt, expect));
	assert_true(md5_password_response("postgres", upper, salt, resp));
	assert_string_equal(resp, expect);
	assert_string_not_equal(resp, "md5bb41a296aab6baccb36ff243a562abff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_matches_postgresql),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_is_secret),
		cmocka_unit_test(test_near_secret_is_plaintext),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
