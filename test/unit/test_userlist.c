/*
 * Unit tests for auth/userlist (PgBouncer auth_file parsing) and auth/secret (what kind of
 * credential a password string holds).
 */
/* link: src/auth/userlist.c src/auth/secret.c src/auth/md5.c src/auth/scram.c src/auth/base64.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/secret.h"
#include "auth/userlist.h"

#define SCRAM_EXAMPLE                                                                               \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static struct userlist *parse(const char *text, char *err, size_t errlen)
{
	return userlist_parse(text, strlen(text), "users.txt", err, errlen);
}

static void test_parse_good(void **state)
{
	const char *text = "; a comment\n"
			   "# another\n"
			   "\n"
			   "   \t\n"
			   "\"alice\" \"secret\"\n"
			   "  \"bob\"\t\"md553f48b7c4b76a86ce72276c5755f217d\"  \n"
			   "\"carol\" \"" SCRAM_EXAMPLE "\"\r\n"
			   "\"say \"\"hi\"\"\" \"pa\"\"ss\"\n"
			   "\"dave\" \"\" \"extra\" fields ignored ; here\n"
			   "\"erin\" \"  spaced ; # kept  \"\n"
			   "\"frank\" \"last line without newline\"";
	char err[256] = "";
	struct userlist *ul = parse(text, err, sizeof(err));
	assert_non_null(ul);
	assert_string_equal(err, "");
	assert_int_equal(userlist_count(ul), 7);
	assert_string_equal(userlist_find(ul, "alice"), "secret");
	assert_string_equal(userlist_find(ul, "bob"), "md553f48b7c4b76a86ce72276c5755f217d");
	assert_string_equal(userlist_find(ul, "carol"), SCRAM_EXAMPLE);
	assert_string_equal(userlist_find(ul, "say \"hi\""), "pa\"ss");
	assert_string_equal(userlist_find(ul, "dave"), "");
	assert_string_equal(userlist_find(ul, "erin"), "  spaced ; # kept  ");
	assert_string_equal(userlist_find(ul, "frank"), "last line without newline");
	assert_null(userlist_find(ul, "Alice")); /* role names are case-sensitive */
	assert_null(userlist_find(ul, "mallory"));
	assert_null(userlist_find(ul, ""));
	userlist_free(ul);
}

static void test_empty_and_duplicates(void **state)
{
	char err[256];
	struct userlist *ul = parse("", err, sizeof(err));
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 0);
	assert_null(userlist_find(ul, "alice"));
	userlist_free(ul);

	ul = parse("\"zed\" \"1\"\n\"alice\" \"old\"\n\"bob\" \"b\"\n\"alice\" \"new\"\n"
		   "\"alice\" \"newest\"\n",
		   err, sizeof(err));
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 3);
	assert_string_equal(userlist_find(ul, "alice"), "newest");
	assert_string_equal(userlist_find(ul, "bob"), "b");
	assert_string_equal(userlist_find(ul, "zed"), "1");
	userlist_free(ul);
	userlist_free(NULL);
}

static void test_many_users(void **state)
{
	char *text = malloc(1000 * 32);
	size_t n = 0;
	for (int i = 999; i >= 0; i--)
		n += (size_t)sprintf(text + n, "\"user%d\" \"pw%d\"\n", i, i);
	char err[256];
	struct userlist *ul = userlist_parse(text, n, "big", err, sizeof(err));
	free(text);
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 1000);
	for (int i = 0; i < 1000; i++) {
		char user[16], pw[16];
		snprintf(user, sizeof(user), "user%d", i);
		snprintf(pw, sizeof(pw), "pw%d", i);
		assert_string_equal(userlist_find(ul, user), pw);
	}
	userlist_free(ul);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "alice \"secret\"\n", "users.txt:1: expected a double-quoted user name" },
		{ "\n\n'alice' 'secret'\n", "users.txt:3: expected a double-quoted user name" },
		{ "\"alice\"\n",
		  "users.txt:1: expected a double-quoted password after the user name" },
		{ "\"alice\" secret\n",
		  "users.txt:1: expected a double-quoted password after the user name" },
		{ "\"alice\" \"secret\n\"bob\" \"x\"\n", "users.txt:1: unterminated quoted field" },
		{ "\"ok\" \"1\"\n\"alice\n", "users.txt:2: unterminated quoted field" },
		{ "\"alice\"\"secret\"\n",
		  "users.txt:1: expected a double-quoted password after the user name" },
		{ "\"alice\"x \"secret\"\n",
		  "users.txt:1: unexpected character after closing quote" },
		{ "\"alice\" \"secret\"x\n",
		  "users.txt:1: unexpected character after closing quote" },
		{ "\"\" \"secret\"\n", "users.txt:1: empty user name" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		struct userlist *ul = parse(cases[i].text, err, sizeof(err));
		if (ul)
			fail_msg("accepted \"%s\"", cases[i].text);
		assert_string_equal(err, cases[i].err);
	}

	/* A NUL byte is refused (the messages above never quote a field, so no secret leaks). */
	static const char nul[] = "\"a\" \"1\"\n\"b\" \"x\0y\"\n";
	char err[256];
	assert_null(userlist_parse(nul, sizeof(nul) - 1, "users.txt", err, sizeof(err)));
	assert_string_equal(err, "users.txt:2: NUL byte in line");

	/* A zero-size error buffer is never written. */
	assert_null(parse("bad\n", err, 0));
}

static void test_load_file(void **state)
{
	const char *dir = getenv("TMPDIR");
	char path[256];
	snprintf(path, sizeof(path), "%s/test_userlist.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	/* Longer than one read buffer, so the reader has to grow. */
	FILE *f = fdopen(fd, "w");
	for (int i = 0; i < 500; i++)
		fprintf(f, "; padding comment line number %d to make the file large\n", i);
	fprintf(f, "\"alice\" \"secret\"\n\"bob\" \"hunter2\"\n");
	fclose(f);

	char err[256] = "";
	struct userlist *ul = userlist_load(path, err, sizeof(err));
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 2);
	assert_string_equal(userlist_find(ul, "bob"), "hunter2");
	userlist_free(ul);

	f = fopen(path, "a");
	fprintf(f, "broken\n");
	fclose(f);
	assert_null(userlist_load(path, err, sizeof(err)));
	char want[300];
	snprintf(want, sizeof(want), "%s:503: expected a double-quoted user name", path);
	assert_string_equal(err, want);

	unlink(path);
	assert_null(userlist_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
}

static void test_secret_kind(void **state)
{
	static const struct {
		const char *s;
		enum secret_kind kind;
	} cases[] = {
		{ "secret", SECRET_PLAIN },
		{ "", SECRET_PLAIN },
		{ "md553f48b7c4b76a86ce72276c5755f217d", SECRET_MD5 },
		{ "md553F48B7C4B76A86CE72276C5755F217D", SECRET_PLAIN },
		{ "md553f48b7c4b76a86ce72276c5755f217", SECRET_PLAIN },
		{ SCRAM_EXAMPLE, SECRET_SCRAM },
		{ "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$broken", SECRET_PLAIN },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (secret_kind_of(cases[i].s) != cases[i].kind)
			fail_msg("\"%s\" is not %s", cases[i].s, secret_kind_name(cases[i].kind));
	}
	assert_string_equal(secret_kind_name(SECRET_PLAIN), "plain");
	assert_string_equal(secret_kind_name(SECRET_MD5), "md5");
	assert_string_equal(secret_kind_name(SECRET_SCRAM), "scram");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good), cmocka_unit_test(test_empty_and_duplicates),
		cmocka_unit_test(test_many_users), cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_load_file),  cmocka_unit_test(test_secret_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
