/* link: src/proto/pkt.c src/proto/build.c src/proto/startup.c src/proto/be.c */
/*
 * Unit tests for the protocol codec: message framing, the checked cursor, the writers, startup
 * packets and the backend message parsers. Every parser is also fed truncated input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/be.h"
#include "proto/build.h"
#include "proto/pkt.h"
#include "proto/startup.h"

static void test_peek_header(void **state)
{
	const uint8_t ok[] = { 'Q', 0, 0, 0, 9, 's', 'e', 'l', 0 };
	const uint8_t bad[] = { 'Q', 0, 0, 0, 3 };
	const uint8_t huge[] = { 'D', 0xff, 0xff, 0xff, 0xff };
	struct pkt_header h;

	(void)state;
	assert_int_equal(pkt_peek_header(ok, 4, &h), PKT_PEEK_SHORT);
	assert_int_equal(pkt_peek_header(ok, sizeof(ok), &h), PKT_PEEK_OK);
	assert_int_equal(h.type, 'Q');
	assert_int_equal(h.len, 10);
	assert_int_equal(pkt_peek_header(bad, sizeof(bad), &h), PKT_PEEK_BAD);
	assert_int_equal(pkt_peek_header(huge, sizeof(huge), &h), PKT_PEEK_BAD);
}

static void test_peek_startup(void **state)
{
	const uint8_t ok[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	const uint8_t tiny[] = { 0, 0, 0, 4 };
	const uint8_t huge[] = { 0x7f, 0xff, 0xff, 0xff };
	struct pkt_header h;

	(void)state;
	assert_int_equal(pkt_peek_startup(ok, 3, &h), PKT_PEEK_SHORT);
	assert_int_equal(pkt_peek_startup(ok, sizeof(ok), &h), PKT_PEEK_OK);
	assert_int_equal(h.len, 8);
	assert_int_equal(pkt_peek_startup(tiny, sizeof(tiny), &h), PKT_PEEK_BAD);
	assert_int_equal(pkt_peek_startup(huge, sizeof(huge), &h), PKT_PEEK_BAD);
}

static void test_cursor_bounds(void **state)
{
	const uint8_t data[] = { 1, 0, 2, 0, 0, 0, 3, 'a', 'b', 0, 'c' };
	struct pkt_cursor c;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	const char *s;
	const uint8_t *b;

	(void)state;
	pkt_cursor_init(&c, data, sizeof(data));
	assert_true(pkt_get_u8(&c, &u8) && u8 == 1);
	assert_true(pkt_get_u16(&c, &u16) && u16 == 2);
	assert_true(pkt_get_u32(&c, &u32) && u32 == 3);
	assert_true(pkt_get_cstring(&c, &s) && strcmp(s, "ab") == 0);
	/* "c" has no terminator: the getter must refuse, not run past the end. */
	assert_false(pkt_get_cstring(&c, &s));
	assert_false(pkt_get_u32(&c, &u32));
	assert_false(pkt_get_bytes(&c, 2, &b));
	assert_true(pkt_get_bytes(&c, 1, &b) && b[0] == 'c');
	assert_false(pkt_get_u8(&c, &u8));
}

static void test_builders(void **state)
{
	struct msgbuf mb;
	struct pkt_header h;
	const char *names[] = { "a", "b" };
	const char *values[] = { "1", NULL };

	(void)state;
	mb_init(&mb);
	build_ready(&mb, 'T');
	assert_int_equal(mb.len, 6);
	assert_memory_equal(mb.data, "Z\0\0\0\x05T", 6);
	mb_reset(&mb);
	build_query(&mb, "select 1");
	assert_int_equal(pkt_peek_header(mb.data, mb.len, &h), PKT_PEEK_OK);
	assert_int_equal(h.len, mb.len);
	assert_int_equal(h.len, 5 + 9);
	mb_reset(&mb);
	build_row_description(&mb, 2, names, NULL);
	assert_int_equal(pkt_peek_header(mb.data, mb.len, &h), PKT_PEEK_OK);
	assert_int_equal(h.len, mb.len);
	mb_reset(&mb);
	build_data_row(&mb, 2, values);
	/* 'D' len(4) ncols(2) len(4) "1" len(4)=-1 */
	assert_int_equal(mb.len, 1 + 4 + 2 + 4 + 1 + 4);
	assert_memory_equal(mb.data + mb.len - 4, "\xff\xff\xff\xff", 4);
	mb_free(&mb);
}

static void test_error_roundtrip(void **state)
{
	struct msgbuf mb;
	struct be_error e;

	(void)state;
	mb_init(&mb);
	build_error(&mb, "FATAL", "57P01", "shutting %s", "down");
	assert_true(be_parse_error(mb.data + 5, mb.len - 5, &e));
	assert_string_equal(e.severity, "FATAL");
	assert_string_equal(e.sqlstate, "57P01");
	assert_string_equal(e.message, "shutting down");
	/* Every truncation is refused. */
	for (size_t n = 0; n < mb.len - 5; n++)
		assert_false(be_parse_error(mb.data + 5, n, &e));
	mb_free(&mb);
}

static void test_backend_parsers(void **state)
{
	const uint8_t ps[] = { 'T', 'i', 'm', 'e', 'Z', 'o', 'n', 'e', 0, 'U', 'T', 'C', 0 };
	const uint8_t key[] = { 0, 0, 0, 7, 0, 0, 0, 9 };
	const uint8_t md5[] = { 0, 0, 0, 5, 1, 2, 3, 4 };
	const char *n, *v;
	uint32_t pid, k, code;
	const uint8_t *data;
	size_t dlen;

	(void)state;
	assert_true(be_parse_parameter_status(ps, sizeof(ps), &n, &v));
	assert_string_equal(n, "TimeZone");
	assert_string_equal(v, "UTC");
	assert_false(be_parse_parameter_status(ps, sizeof(ps) - 1, &n, &v));
	assert_true(be_parse_backend_key(key, sizeof(key), &pid, &k));
	assert_int_equal(pid, 7);
	assert_int_equal(k, 9);
	assert_false(be_parse_backend_key(key, 7, &pid, &k));
	assert_true(be_parse_auth(md5, sizeof(md5), &code, &data, &dlen));
	assert_int_equal(code, BE_AUTH_MD5_PASSWORD);
	assert_string_equal(be_auth_code_name(code), "AuthenticationMD5Password");
	assert_string_equal(be_auth_code_name(4), "unknown");
	assert_int_equal(dlen, 4);
	assert_false(be_parse_auth(md5, 3, &code, &data, &dlen));
}

static void test_startup_v3(void **state)
{
	struct msgbuf mb;
	struct startup_msg m;
	const char *pairs[] = { "user", "alice", "database", "app", "_pq_.x", "1", NULL };
	char err[128];

	(void)state;
	mb_init(&mb);
	build_startup(&mb, pairs);
	assert_int_equal(startup_parse(mb.data, mb.len, &m, err, sizeof(err)), STARTUP_V3);
	assert_string_equal(startup_get(&m, "user"), "alice");
	assert_string_equal(startup_get(&m, "database"), "app");
	assert_null(startup_get(&m, "options"));
	assert_int_equal(m.nunknown_opts, 1);
	/* Truncations and a missing terminator are refused. */
	for (size_t n = 8; n < mb.len; n++) {
		uint8_t copy[256];

		memcpy(copy, mb.data, n);
		copy[0] = copy[1] = 0;
		copy[2] = (uint8_t)(n >> 8);
		copy[3] = (uint8_t)n;
		assert_int_equal(startup_parse(copy, n, &m, err, sizeof(err)), STARTUP_BAD);
	}
	mb_free(&mb);
}

static void test_startup_special(void **state)
{
	const uint8_t ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	const uint8_t gss[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
	const uint8_t cancel[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2 };
	const uint8_t v2[] = { 0, 0, 0, 9, 0, 2, 0, 0, 0 };
	const uint8_t v4[] = { 0, 0, 0, 9, 0, 4, 0, 0, 0 };
	struct startup_msg m;
	char err[128];

	(void)state;
	assert_int_equal(startup_parse(ssl, sizeof(ssl), &m, err, sizeof(err)), STARTUP_SSL);
	assert_int_equal(startup_parse(gss, sizeof(gss), &m, err, sizeof(err)), STARTUP_GSSENC);
	assert_int_equal(startup_parse(cancel, sizeof(cancel), &m, err, sizeof(err)),
			 STARTUP_CANCEL);
	assert_int_equal(m.cancel_pid, 1);
	assert_int_equal(m.cancel_key, 2);
	assert_int_equal(startup_parse(cancel, 12, &m, err, sizeof(err)), STARTUP_BAD);
	assert_int_equal(startup_parse(v2, sizeof(v2), &m, err, sizeof(err)), STARTUP_OLD_PROTO);
	assert_non_null(strstr(err, "unsupported frontend protocol 2.0"));
	assert_int_equal(startup_parse(v4, sizeof(v4), &m, err, sizeof(err)), STARTUP_OLD_PROTO);
}

static void test_negotiate_version(void **state)
{
	struct msgbuf mb;
	const char *opts[] = { "_pq_.a" };
	struct pkt_header h;

	(void)state;
	mb_init(&mb);
	build_negotiate_version(&mb, 0, 1, opts);
	assert_int_equal(pkt_peek_header(mb.data, mb.len, &h), PKT_PEEK_OK);
	assert_int_equal(h.type, 'v');
	assert_int_equal(h.len, 1 + 4 + 4 + 4 + 7);
	mb_free(&mb);
}

static void test_error_with_severity(void **state)
{
	static const char fatal[] = "SFATAL\0VFATAL\0C57P01\0Mterminating\0Dthe detail\0Hthe hint\0"
				    "Fpostgres.c\0L3197\0RProcessInterrupts\0";
	static const char unterminated[] = "SFATAL\0C57P01";
	static const char rest[] =
		"Dthe detail\0Hthe hint\0Fpostgres.c\0L3197\0RProcessInterrupts\0\0";
	struct msgbuf mb;
	struct be_error e;

	(void)state;
	mb_init(&mb);
	assert_true(build_error_with_severity(&mb, (const uint8_t *)fatal, sizeof(fatal), "ERROR"));
	assert_true(be_parse_error(mb.data + PKT_HDR_LEN, mb.len - PKT_HDR_LEN, &e));
	assert_string_equal(e.severity, "ERROR");
	assert_string_equal(e.sqlstate, "57P01");
	assert_string_equal(e.message, "terminating");
	/* everything else is copied as it was, in order */
	assert_non_null(memmem(mb.data, mb.len, rest, sizeof(rest) - 1));
	assert_int_equal(mb.data[mb.len - 1], 0);

	/* malformed bodies are refused, never read past */
	mb_reset(&mb);
	assert_false(build_error_with_severity(&mb, (const uint8_t *)unterminated,
					       sizeof(unterminated) - 1, "ERROR"));
	mb_reset(&mb);
	assert_false(build_error_with_severity(&mb, (const uint8_t *)fatal, 20, "ERROR"));
	mb_reset(&mb);
	assert_false(build_error_with_severity(&mb, (const uint8_t *)"", 0, "ERROR"));
	mb_free(&mb);
}

static void test_data_row_column(void **state)
{
	/* two columns: "ab" and NULL */
	static const uint8_t row[] = { 0, 2, 0, 0, 0, 2, 'a', 'b', 0xff, 0xff, 0xff, 0xff };
	const uint8_t *v;
	int32_t n;

	(void)state;
	assert_true(be_data_row_column(row, sizeof(row), 0, &v, &n));
	assert_int_equal(n, 2);
	assert_memory_equal(v, "ab", 2);
	assert_true(be_data_row_column(row, sizeof(row), 1, &v, &n));
	assert_int_equal(n, -1);
	assert_null(v);
	assert_false(be_data_row_column(row, sizeof(row), 2, &v, &n));
	assert_false(be_data_row_column(row, sizeof(row), -1, &v, &n));
	/* every truncation is refused */
	for (size_t len = 0; len < sizeof(row); len++)
		assert_false(be_data_row_column(row, len, 1, &v, &n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek_header),
		cmocka_unit_test(test_peek_startup),
		cmocka_unit_test(test_cursor_bounds),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_error_roundtrip),
		cmocka_unit_test(test_backend_parsers),
		cmocka_unit_test(test_startup_v3),
		cmocka_unit_test(test_startup_special),
		cmocka_unit_test(test_negotiate_version),
		cmocka_unit_test(test_error_with_severity),
		cmocka_unit_test(test_data_row_column),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
