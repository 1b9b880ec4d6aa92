/* link: src/auth/hba.c */
/*
 * Unit tests for auth/hba: parsing of pg_hba.conf syntax (types, lists, quoting, comments,
 * CIDR and address/mask forms, the clientcert option) and the errors for what pgmux does not
 * support (every other option among them), then a table of connections against one rule file
 * checking that the first matching rule decides, with its clientcert.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "auth/hba.h"

static struct hba *parse(const char *text, char *err, size_t errlen)
{
	return hba_parse(text, strlen(text), "hba.conf", err, errlen);
}

static const char rules[] =
	"# TYPE  DATABASE        USER            ADDRESS                 METHOD\n"
	"local   all             postgres                                trust\n"
	"local   all             all                                     scram-sha-256\n"
	"host    app             alice           127.0.0.1/32            scram-sha-256\n"
	"host    app,other       bob             10.0.0.0 255.0.0.0      md5   # mask form\n"
	"host    other           bob             127.0.0.1/32            reject\n"
	"hostssl all             carol           0.0.0.0/0               cert clientcert=verify-full\n"
	"hostnossl all           carol           0.0.0.0/0               password\n"
	"host    sameuser        dave            192.168.0.0/16          trust\n"
	"host    \"all\"           \"all\", erin     ::1/128                 md5\n"
	"host    app             \"frank\",  grace 2001:db8::/32         password\n"
	"host    replication     all             all                     trust\n"
	"host    all             all             192.168.1.0/24          reject\n"
	"host    all             all             192.168.0.0/16          md5\n"
	"hostssl app             heidi           127.0.0.1/32  scram-sha-256 clientcert=verify-ca\n"
	"hostssl app             ivan            127.0.0.1/32  md5 clientcert=verify-ca clientcert=verify-full\n"
	"\n";

static const struct {
	bool is_unix, tls;
	const char *addr, *db, *user;
	bool match;
	enum hba_method method;
	int line;
	enum hba_clientcert clientcert;
} cases[] = {
	{ true, false, NULL, "app", "postgres", true, HBA_TRUST, 2 },
	{ true, false, NULL, "app", "alice", true, HBA_SCRAM_SHA_256, 3 },
	{ false, false, "127.0.0.1", "app", "alice", true, HBA_SCRAM_SHA_256, 4 },
	{ false, false, "127.0.0.1", "other", "alice", false, HBA_TRUST, 0 },
	{ false, false, "127.0.0.2", "app", "alice", false, HBA_TRUST, 0 },
	{ false, false, "10.200.3.4", "other", "bob", true, HBA_MD5, 5 },
	{ false, false, "11.0.0.1", "other", "bob", false, HBA_TRUST, 0 },
	{ false, false, "127.0.0.1", "other", "bob", true, HBA_REJECT, 6 },
	{ false, true, "127.0.0.1", "app", "carol", true, HBA_CERT, 7, HBA_CLIENTCERT_VERIFY_FULL },
	{ false, false, "127.0.0.1", "app", "carol", true, HBA_PASSWORD, 8 },
	{ false, false, "192.168.5.5", "dave", "dave", true, HBA_TRUST, 9 },
	{ false, false, "192.168.5.5", "app", "dave", true, HBA_MD5, 14 },
	{ false, false, "192.168.1.5", "app", "dave", true, HBA_REJECT, 13 },
	/* quoted "all" names a database/role called all */
	{ false, false, "::1", "all", "all", true, HBA_MD5, 10 },
	{ false, false, "::1", "app", "all", false, HBA_TRUST, 0 },
	{ false, false, "::1", "all", "erin", true, HBA_MD5, 10 },
	{ false, false, "::1", "app", "erin", false, HBA_TRUST, 0 },
	/* a list continued after a comma and blanks */
	{ false, false, "2001:db8:1::5", "app", "frank", true, HBA_PASSWORD, 11 },
	{ false, false, "2001:db8:1::5", "app", "grace", true, HBA_PASSWORD, 11 },
	{ false, false, "2001:db9::5", "app", "grace", false, HBA_TRUST, 0 },
	/* an IPv4 client on an IPv6 socket matches IPv4 rules */
	{ false, false, "::ffff:10.1.1.1", "app", "bob", true, HBA_MD5, 5 },
	/* replication rules never match ordinary connections */
	{ false, false, "172.16.0.1", "replication", "x", false, HBA_TRUST, 0 },
	/* clientcert, the last one given winning as in PostgreSQL; hostssl rows want TLS */
	{ false, true, "127.0.0.1", "app", "heidi", true, HBA_SCRAM_SHA_256, 15,
	  HBA_CLIENTCERT_VERIFY_CA },
	{ false, true, "127.0.0.1", "app", "ivan", true, HBA_MD5, 16, HBA_CLIENTCERT_VERIFY_FULL },
	{ false, false, "127.0.0.1", "app", "heidi", false, HBA_TRUST, 0 },
};

static void test_match_table(void **state)
{
	char err[256];
	struct hba *h = parse(rules, err, sizeof(err));

	if (!h)
		fail_msg("parse failed: %s", err);
	assert_int_equal(hba_count(h), 15);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hba_client c = { .is_unix = cases[i].is_unix,
					.tls = cases[i].tls,
					.database = cases[i].db,
					.user = cases[i].user };
		struct hba_verdict v = { .line = -1 };

		if (cases[i].addr) {
			c.family = strchr(cases[i].addr, ':') ? AF_INET6 : AF_INET;
			assert_int_equal(inet_pton(c.family, cases[i].addr, c.addr), 1);
		}
		bool got = hba_match(h, &c, &v);
		if (got != cases[i].match ||
		    (got && (v.method != cases[i].method || v.line != cases[i].line ||
			     v.clientcert != cases[i].clientcert)))
			fail_msg(
				"case %zu (%s %s@%s): got match=%d method=%s line=%d clientcert=%d",
				i, cases[i].addr ? cases[i].addr : "local", cases[i].user,
				cases[i].db, got, hba_method_name(v.method), v.line,
				(int)v.clientcert);
		if (!got)
			assert_int_equal(v.line, 0);
	}
	hba_free(h);
}

static void test_empty_file(void **state)
{
	char err[64];
	struct hba *h = parse("# nothing\n\n   \n", err, sizeof(err));
	struct hba_client c = { .is_unix = true, .database = "a", .user = "b" };
	struct hba_verdict v;

	assert_non_null(h);
	assert_int_equal(hba_count(h), 0);
	assert_false(hba_match(h, &c, &v));
	hba_free(h);
	assert_false(hba_match(NULL, &c, &v));
}

static const struct {
	const char *text;
	const char *error;
} bad[] = {
	{ "hots all all 127.0.0.1/32 trust", "hba.conf:1: invalid connection type \"hots\"" },
	{ "host all all 127.0.0.1/33 trust", "hba.conf:1: invalid CIDR mask in address" },
	{ "host all all 127.0.0.1/ trust", "hba.conf:1: invalid CIDR mask" },
	{ "host all all ::1/129 trust", "hba.conf:1: invalid CIDR mask" },
	{ "host all all 127.0.0.1 trust", "hba.conf:1: invalid IP mask \"trust\"" },
	{ "host all all 127.0.0.1", "hba.conf:1: IP address \"127.0.0.1\" needs a CIDR mask" },
	{ "host all all 10.0.0.0 255.0.255.0 md5", "hba.conf:1: invalid IP mask" },
	{ "host all all 10.0.0.0 ffff:: md5", "hba.conf:1: invalid IP mask" },
	{ "host all all db.example.com trust", "host names are not supported" },
	{ "host all all samenet trust", "\"samenet\" is not supported" },
	{ "\nhost all +admins 127.0.0.1/32 trust", "hba.conf:2: group membership (\"+admins\")" },
	{ "host samerole all 127.0.0.1/32 trust", "\"samerole\" is not supported" },
	{ "host @dbs all 127.0.0.1/32 trust", "included files" },
	{ "host all /^a 127.0.0.1/32 trust", "regular expressions" },
	{ "host all all 127.0.0.1/32 ident", "unsupported authentication method \"ident\"" },
	{ "host all all 127.0.0.1/32 md5 foo", "not in name=value format: foo" },
	/* options that would change what a rule admits are refused, never ignored */
	{ "\n\nhostssl all all 0.0.0.0/0 cert map=certmap",
	  "hba.conf:3: authentication option \"map\" is not supported" },
	{ "hostssl all all 0.0.0.0/0 cert clientname=DN",
	  "option \"clientname\" is not supported" },
	{ "host all all 0.0.0.0/0 md5 clientcertx=verify-ca", "option \"clientcertx\" is not" },
	{ "hostssl all all 0.0.0.0/0 md5 =verify-ca", "option \"\" is not supported" },
	{ "host all all 0.0.0.0/0 md5 clientcert=verify-full",
	  "hba.conf:1: clientcert can only be configured for \"hostssl\" rows" },
	{ "hostnossl all all 0.0.0.0/0 md5 clientcert=verify-ca", "only be configured for" },
	{ "hostssl all all 0.0.0.0/0 md5 clientcert=no-verify", "invalid value for clientcert" },
	{ "hostssl all all 0.0.0.0/0 md5 clientcert=", "invalid value for clientcert" },
	{ "hostssl all all 0.0.0.0/0 cert clientcert=verify-ca",
	  "clientcert only accepts \"verify-full\" when using \"cert\"" },
	{ "local all all", "end of line before the authentication method" },
	{ "host all", "end of line before the user field" },
	{ "host all all", "end of line before the address field" },
	{ "host all all,", "end of line after a comma" },
	{ "host \"all all 127.0.0.1/32 trust", "unterminated quoted string" },
	{ "host all all 127.0.0.1/32 trust,md5", "must be a single value" },
	{ "local all \"\" trust", "empty user name" },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct hba *h = parse(bad[i].text, err, sizeof(err));

		if (h)
			fail_msg("accepted \"%s\"", bad[i].text);
		if (!strstr(err, bad[i].error))
			fail_msg("\"%s\": error \"%s\" lacks \"%s\"", bad[i].text, err,
				 bad[i].error);
	}
}

static void test_nul_byte_and_load(void **state)
{
	char err[256];
	char path[] = "/tmp/test_hba_XXXXXX";
	int fd;
	FILE *f;
	struct hba *h;

	assert_null(hba_parse("local all all trust\0x", 21, "n", err, sizeof(err)));
	assert_non_null(strstr(err, "NUL"));
	assert_null(hba_load("/nonexistent/hba.conf", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/hba.conf: cannot open: No such file or directory");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("local all all trust\r\nhost all all 0.0.0.0/0 md5", f);
	fclose(f);
	h = hba_load(path, err, sizeof(err));
	remove(path);
	assert_non_null(h);
	assert_int_equal(hba_count(h), 2);
	hba_free(h);
}

static void test_method_names(void **state)
{
	assert_string_equal(hba_method_name(HBA_TRUST), "trust");
	assert_string_equal(hba_method_name(HBA_REJECT), "reject");
	assert_string_equal(hba_method_name(HBA_MD5), "md5");
	assert_string_equal(hba_method_name(HBA_SCRAM_SHA_256), "scram-sha-256");
	assert_string_equal(hba_method_name(HBA_PASSWORD), "password");
	assert_string_equal(hba_method_name(HBA_CERT), "cert");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),  cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_errors),       cmocka_unit_test(test_nul_byte_and_load),
		cmocka_unit_test(test_method_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
