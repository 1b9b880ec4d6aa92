/* link: src/proto/clientrec.c src/proto/build.c src/proto/pkt.c */
/* clientrec: a client's hand-over record built, checked and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/build.h"
#include "proto/clientrec.h"
#include "proto/pkt.h"

static const uint8_t client_key[32] = { 1, 2, 3 };
static const uint8_t server_key[32] = { 9, 8, 7 };
static const uint8_t definition[] = { 'S', 'E', 'L', 'E', 'C', 'T', ' ', '$',
				      '1', 0,   0,   1,   0,   0,   0,   23 };

static void build_full(struct msgbuf *mb)
{
	mb_init(mb);
	clientrec_begin(mb);
	clientrec_string(mb, CLIENTREC_USER, "alice");
	clientrec_string(mb, CLIENTREC_DATABASE, "app");
	clientrec_string(mb, CLIENTREC_ADDR, "10.0.0.7:51234");
	clientrec_cancel(mb, 0x7fffffff, 0xdeadbeef);
	clientrec_u64(mb, CLIENTREC_CONNECTED, 0x0102030405060708ull);
	clientrec_param(mb, 3, "Europe/Paris");
	clientrec_setting(mb, "search_path", "app, public", false);
	clientrec_setting(mb, "myapp.tenant", "", true);
	clientrec_statement(mb, "get_user", 0xabcd, definition, sizeof(definition));
	clientrec_u8(mb, CLIENTREC_ROUTE_HINT, 2);
	clientrec_u64(mb, CLIENTREC_RYW_LSN, 0x16b3748ull);
	clientrec_string(mb, CLIENTREC_SHARD_KEY, "42");
	clientrec_string(mb, CLIENTREC_SHARD, "b");
	clientrec_string(mb, CLIENTREC_PASSWORD, "s3cret");
	clientrec_scram_keys(mb, client_key, server_key);
	clientrec_string(mb, CLIENTREC_SECRET, "md5abc");
	clientrec_end(mb);
	assert_false(mb->failed);
}

static bool str_is(const struct clientrec_field *f, const char *s)
{
	return f->str_len == strlen(s) && memcmp(f->str, s, f->str_len) == 0;
}

static void test_round_trip(void **state)
{
	struct clientrec_reader r;
	struct clientrec_field f;
	struct msgbuf mb;
	char why[128];
	int n = 0;

	build_full(&mb);
	assert_true(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	while (clientrec_next(&r, &f)) {
		n++;
		switch (f.tag) {
		case CLIENTREC_USER:
			assert_true(str_is(&f, "alice"));
			break;
		case CLIENTREC_DATABASE:
			assert_true(str_is(&f, "app"));
			break;
		case CLIENTREC_ADDR:
			assert_true(str_is(&f, "10.0.0.7:51234"));
			break;
		case CLIENTREC_CANCEL:
			assert_int_equal(f.num, 0x7fffffff);
			assert_int_equal(f.num2, 0xdeadbeef);
			break;
		case CLIENTREC_CONNECTED:
			assert_true(f.num == 0x0102030405060708ull);
			break;
		case CLIENTREC_PARAM:
			assert_int_equal(f.index, 3);
			assert_true(str_is(&f, "Europe/Paris"));
			break;
		case CLIENTREC_SETTING:
			if (str_is(&f, "search_path")) {
				assert_int_equal(f.value_len, strlen("app, public"));
				assert_memory_equal(f.value, "app, public", f.value_len);
				assert_int_equal(f.index, 0);
			} else {
				assert_true(str_is(&f, "myapp.tenant"));
				assert_int_equal(f.index, 1);
				assert_int_equal(f.value_len, 0);
			}
			break;
		case CLIENTREC_STATEMENT:
			assert_true(str_is(&f, "get_user"));
			assert_int_equal(f.num, 0xabcd);
			assert_int_equal(f.bytes_len, sizeof(definition));
			assert_memory_equal(f.bytes, definition, sizeof(definition));
			break;
		case CLIENTREC_ROUTE_HINT:
			assert_int_equal(f.num, 2);
			break;
		case CLIENTREC_RYW_LSN:
			assert_int_equal(f.num, 0x16b3748);
			break;
		case CLIENTREC_SHARD_KEY:
			assert_true(str_is(&f, "42"));
			break;
		case CLIENTREC_SHARD:
			assert_true(str_is(&f, "b"));
			break;
		case CLIENTREC_PASSWORD:
			assert_true(str_is(&f, "s3cret"));
			break;
		case CLIENTREC_SCRAM_KEYS:
			assert_int_equal(f.bytes_len, 64);
			assert_memory_equal(f.bytes, client_key, 32);
			assert_memory_equal(f.bytes + 32, server_key, 32);
			break;
		case CLIENTREC_SECRET:
			assert_true(str_is(&f, "md5abc"));
			break;
		case CLIENTREC_END:
			fail();
		}
	}
	assert_int_equal(n, 16);
	assert_false(clientrec_next(&r, &f));
	mb_free(&mb);
}

/* Every proper prefix of a record is refused: a record cut short is never half applied. */
static void test_truncated_records_refused(void **state)
{
	struct clientrec_reader r;
	struct clientrec_field f;
	struct msgbuf mb;
	char why[128];

	build_full(&mb);
	for (size_t len = 0; len < mb.len; len++) {
		assert_false(clientrec_open(&r, mb.data, len, why, sizeof(why)));
		assert_true(why[0] != '\0');
		assert_false(clientrec_next(&r, &f));
	}
	mb_free(&mb);
}

static void build_minimal(struct msgbuf *mb, bool with_cancel)
{
	mb_init(mb);
	clientrec_begin(mb);
	clientrec_string(mb, CLIENTREC_USER, "bob");
	clientrec_string(mb, CLIENTREC_DATABASE, "app");
	if (with_cancel)
		clientrec_cancel(mb, 1, 2);
}

static void test_required_fields(void **state)
{
	struct clientrec_reader r;
	struct msgbuf mb;
	char why[128];

	build_minimal(&mb, false);
	clientrec_end(&mb);
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	assert_non_null(strstr(why, "cancel key"));
	mb_free(&mb);

	build_minimal(&mb, true);
	clientrec_end(&mb);
	assert_true(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	mb_free(&mb);
}

/* A field a newer pgmux added is skipped, the rest read. */
static void test_unknown_tag_skipped(void **state)
{
	struct clientrec_reader r;
	struct clientrec_field f;
	struct msgbuf mb;
	char why[128];
	size_t at;
	int n = 0;

	build_minimal(&mb, true);
	at = mb_begin(&mb, 'Z');
	mb_put_cstring(&mb, "from the future");
	mb_end(&mb, at);
	clientrec_string(&mb, CLIENTREC_SHARD, "c");
	clientrec_end(&mb);
	assert_true(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	while (clientrec_next(&r, &f)) {
		assert_true(f.tag != 'Z');
		n++;
	}
	assert_int_equal(n, 4);
	mb_free(&mb);
}

static void test_malformed_fields_refused(void **state)
{
	struct clientrec_reader r;
	struct msgbuf mb;
	char why[128];
	size_t at;

	/* a NUL inside a string */
	build_minimal(&mb, true);
	at = mb_begin(&mb, CLIENTREC_SHARD);
	mb_put_bytes(&mb, "a\0b", 3);
	mb_end(&mb, at);
	clientrec_end(&mb);
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	mb_free(&mb);

	/* a cancel key of the wrong size */
	build_minimal(&mb, false);
	at = mb_begin(&mb, CLIENTREC_CANCEL);
	mb_put_u32(&mb, 1);
	mb_end(&mb, at);
	clientrec_end(&mb);
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	mb_free(&mb);

	/* a statement without a name */
	build_minimal(&mb, true);
	clientrec_statement(&mb, "", 0, definition, sizeof(definition));
	clientrec_end(&mb);
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	mb_free(&mb);

	/* bytes after the end */
	build_minimal(&mb, true);
	clientrec_end(&mb);
	mb_put_u8(&mb, 0);
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	assert_non_null(strstr(why, "follow"));
	mb_free(&mb);

	/* a length that claims more than the record has */
	build_minimal(&mb, true);
	clientrec_end(&mb);
	pkt_write_u32(mb.data + 8 + 1, 0x7fffffff);
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	mb_free(&mb);

	/* another magic */
	build_minimal(&mb, true);
	clientrec_end(&mb);
	mb.data[6] = '2';
	assert_false(clientrec_open(&r, mb.data, mb.len, why, sizeof(why)));
	assert_non_null(strstr(why, "version"));
	mb_free(&mb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated_records_refused),
		cmocka_unit_test(test_required_fields),
		cmocka_unit_test(test_unknown_tag_skipped),
		cmocka_unit_test(test_malformed_fields_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
