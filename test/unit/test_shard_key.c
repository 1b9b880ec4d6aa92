/*
 * Unit tests for shard/key: what int8in and uuid_in accept and refuse, binary Bind formats, and
 * that every form of one value gives one key and one hash.
 */
/* link: src/shard/key.c src/shard/bucket.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/bucket.h"
#include "shard/key.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SEED 0x5eed5eed12345678ull

static struct shard_key from_text(enum shard_key_type t, const char *s)
{
	struct shard_key k;
	char err[128];

	if (!shard_key_from_text(t, s, strlen(s), &k, err, sizeof(err)))
		fail_msg("\"%s\" as %s refused: %s", s, shard_key_type_name(t), err);
	return k;
}

static bool refused(enum shard_key_type t, const char *s, size_t len)
{
	struct shard_key k;
	char err[128] = "";
	bool ok = shard_key_from_text(t, s, len, &k, err, sizeof(err));

	if (!ok && err[0] == '\0')
		fail_msg("\"%s\" refused without a reason", s);
	return !ok;
}

static void test_int_text_accepted(void **state)
{
	static const struct {
		const char *text;
		int64_t value;
	} cases[] = {
		{ "42", 42 },
		{ "  42 ", 42 },
		{ "\t\n42\r\f\v", 42 },
		{ "+7", 7 },
		{ "-0", 0 },
		{ "0", 0 },
		{ "000123", 123 },
		{ "-5", -5 },
		{ " -17", -17 },
		{ "9223372036854775807", INT64_MAX },
		{ "-9223372036854775808", INT64_MIN },
		{ "+9223372036854775807", INT64_MAX },
		{ "00000000000000000000009223372036854775807", INT64_MAX },
		{ "2147483648", 2147483648LL },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct shard_key k = from_text(SHARD_KEY_INT, cases[i].text);

		assert_int_equal(k.type, SHARD_KEY_INT);
		if (k.i != cases[i].value)
			fail_msg("\"%s\": got %lld, expected %lld", cases[i].text, (long long)k.i,
				 (long long)cases[i].value);
	}
}

static void test_int_text_refused(void **state)
{
	static const char *const cases[] = {
		"",
		" ",
		"4x",
		"x4",
		"- 5",
		"+-5",
		"--5",
		"4 2",
		"1.0",
		"1e3",
		"0x10",
		"1_000",
		"9223372036854775808",
		"-9223372036854775809",
		"99999999999999999999",
		"-",
		"+",
		"'42'",
	};
	struct shard_key k;
	char err[128];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		if (!refused(SHARD_KEY_INT, cases[i], strlen(cases[i])))
			fail_msg("\"%s\" accepted as an int key", cases[i]);
	/* The length counts, not a NUL: "42" followed by a NUL byte is not 42. */
	assert_true(refused(SHARD_KEY_INT, "42\0", 3));
	assert_true(shard_key_from_text(SHARD_KEY_INT, "4299", 2, &k, err, sizeof(err)));
	assert_int_equal(k.i, 42);
	/* The error names the value and the reason. */
	assert_false(shard_key_from_text(SHARD_KEY_INT, "9223372036854775808", 19, &k, err,
					 sizeof(err)));
	assert_non_null(strstr(err, "out of range"));
	assert_false(shard_key_from_text(SHARD_KEY_INT, "4x", 2, &k, err, sizeof(err)));
	assert_non_null(strstr(err, "\"4x\""));
}

static const uint8_t UUID_BYTES[16] = { 0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
					0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11 };

static void test_uuid_text_like_uuid_in(void **state)
{
	static const char *const accepted[] = {
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",    "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",  "a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
		"a0eEbC99-9c0b-4eF8-bb6d-6bb9bd380a11",
	};
	static const char *const refused_forms[] = {
		"",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
		"-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"(a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)",
		" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
		"g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"{}",
	};
	char buf[SHARD_KEY_FORMAT_MAX];

	for (size_t i = 0; i < ARRAY_LEN(accepted); i++) {
		struct shard_key k = from_text(SHARD_KEY_UUID, accepted[i]);

		if (memcmp(k.uuid, UUID_BYTES, 16) != 0)
			fail_msg("\"%s\" read as %s", accepted[i],
				 shard_key_format(&k, buf, sizeof(buf)));
		assert_string_equal(shard_key_format(&k, buf, sizeof(buf)),
				    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
	}
	for (size_t i = 0; i < ARRAY_LEN(refused_forms); i++)
		if (!refused(SHARD_KEY_UUID, refused_forms[i], strlen(refused_forms[i])))
			fail_msg("\"%s\" accepted as a uuid", refused_forms[i]);
	/* Bounded by the length: the closing brace past len is not read. */
	assert_true(refused(SHARD_KEY_UUID, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", 37));
	assert_true(refused(SHARD_KEY_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 35));
}

static void test_text(void **state)
{
	const char s[] = "alice smith";
	struct shard_key k;
	char err[128], buf[6];

	assert_true(shard_key_from_text(SHARD_KEY_TEXT, s, 5, &k, err, sizeof(err)));
	assert_ptr_equal(k.text, s);
	assert_int_equal(k.text_len, 5);
	assert_string_equal(shard_key_format(&k, buf, sizeof(buf)), "alice");
	/* truncated to fit */
	assert_true(shard_key_from_text(SHARD_KEY_TEXT, s, strlen(s), &k, err, sizeof(err)));
	assert_string_equal(shard_key_format(&k, buf, sizeof(buf)), "alice");
	/* the empty text is a value */
	assert_true(shard_key_from_text(SHARD_KEY_TEXT, s, 0, &k, err, sizeof(err)));
	assert_int_equal(k.text_len, 0);
	assert_string_equal(shard_key_format(&k, buf, sizeof(buf)), "");
	assert_int_equal(shard_key_hash(&k, SEED), bucket_hash_text("", 0, SEED));
	/* ... also when its bytes are given as NULL, as an empty Bind value may be */
	assert_true(shard_key_from_text(SHARD_KEY_TEXT, NULL, 0, &k, err, sizeof(err)));
	assert_true(shard_key_from_binary(SHARD_KEY_TEXT, NULL, 0, &k, err, sizeof(err)));
	assert_int_equal(shard_key_hash(&k, SEED), bucket_hash_text("", 0, SEED));
	/* text cannot hold a NUL, in either format */
	assert_true(refused(SHARD_KEY_TEXT, "a\0b", 3));
	assert_false(shard_key_from_binary(SHARD_KEY_TEXT, (const uint8_t *)"a\0b", 3, &k, err,
					   sizeof(err)));
}

static void test_binary(void **state)
{
	static const uint8_t int2_m2[] = { 0xff, 0xfe };
	static const uint8_t int4_big[] = { 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t int4_neg[] = { 0x80, 0x00, 0x00, 0x00 };
	static const uint8_t int8_min[] = { 0x80, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t int8_42[] = { 0, 0, 0, 0, 0, 0, 0, 42 };
	static const uint8_t int8_big[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	struct shard_key k;
	char err[128];

	assert_true(shard_key_from_binary(SHARD_KEY_INT, int2_m2, 2, &k, err, sizeof(err)));
	assert_int_equal(k.i, -2);
	assert_true(shard_key_from_binary(SHARD_KEY_INT, int4_big, 4, &k, err, sizeof(err)));
	assert_int_equal(k.i, INT32_MAX);
	assert_true(shard_key_from_binary(SHARD_KEY_INT, int4_neg, 4, &k, err, sizeof(err)));
	assert_int_equal(k.i, INT32_MIN);
	assert_true(shard_key_from_binary(SHARD_KEY_INT, int8_min, 8, &k, err, sizeof(err)));
	assert_true(k.i == INT64_MIN);
	assert_true(shard_key_from_binary(SHARD_KEY_INT, int8_42, 8, &k, err, sizeof(err)));
	assert_int_equal(k.i, 42);
	assert_true(shard_key_from_binary(SHARD_KEY_INT, int8_big, 8, &k, err, sizeof(err)));
	assert_true(k.i == 0x0102030405060708LL);
	assert_true(shard_key_from_binary(SHARD_KEY_UUID, UUID_BYTES, 16, &k, err, sizeof(err)));
	assert_memory_equal(k.uuid, UUID_BYTES, 16);

	/* wrong lengths */
	for (size_t len = 0; len <= 17; len++) {
		bool int_ok = len == 2 || len == 4 || len == 8, uuid_ok = len == 16;

		err[0] = '\0';
		assert_int_equal(shard_key_from_binary(SHARD_KEY_INT, UUID_BYTES, len, &k, err,
						       sizeof(err)),
				 int_ok);
		if (!int_ok)
			assert_non_null(strstr(err, "bytes"));
		assert_int_equal(shard_key_from_binary(SHARD_KEY_UUID, UUID_BYTES, len, &k, err,
						       sizeof(err)),
				 uuid_ok);
	}
}

/* Every form of one value: the same key, the same hash, the hash bucket.h gives. */
static void test_forms_hash_alike(void **state)
{
	static const int64_t values[] = {
		0,         1,        -1,        42,        -5,
		32767,     -32768,   INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
		INT64_MAX, INT64_MIN
	};
	char err[128], text[32], buf[SHARD_KEY_FORMAT_MAX];

	for (size_t i = 0; i < ARRAY_LEN(values); i++) {
		int64_t v = values[i];
		uint8_t be[8];
		struct shard_key kt, kb;

		snprintf(text, sizeof(text), "%lld", (long long)v);
		kt = from_text(SHARD_KEY_INT, text);
		assert_string_equal(shard_key_format(&kt, buf, sizeof(buf)), text);
		for (int w = 0; w < 8; w++)
			be[w] = (uint8_t)((uint64_t)v >> (56 - 8 * w));
		assert_true(shard_key_from_binary(SHARD_KEY_INT, be, 8, &kb, err, sizeof(err)));
		assert_true(shard_key_equal(&kt, &kb));
		assert_true(shard_key_hash(&kt, SEED) == shard_key_hash(&kb, SEED));
		assert_true(shard_key_hash(&kt, SEED) == bucket_hash_int8(v, SEED));
		/* the narrower send formats, where the value fits */
		if (v >= INT32_MIN && v <= INT32_MAX) {
			assert_true(shard_key_from_binary(SHARD_KEY_INT, be + 4, 4, &kb, err,
							  sizeof(err)));
			assert_true(shard_key_hash(&kb, SEED) == shard_key_hash(&kt, SEED));
		}
		if (v >= INT16_MIN && v <= INT16_MAX) {
			assert_true(shard_key_from_binary(SHARD_KEY_INT, be + 6, 2, &kb, err,
							  sizeof(err)));
			assert_true(shard_key_hash(&kb, SEED) == shard_key_hash(&kt, SEED));
		}
	}
	/* uuid: braces, case and hyphens do not change the hash */
	{
		struct shard_key a = from_text(SHARD_KEY_UUID,
					       "{A0EEBC999C0B4EF8BB6D6BB9BD380A11}");
		struct shard_key b;

		assert_true(shard_key_from_binary(SHARD_KEY_UUID, UUID_BYTES, 16, &b, err,
						  sizeof(err)));
		assert_true(shard_key_equal(&a, &b));
		assert_true(shard_key_hash(&a, SEED) == shard_key_hash(&b, SEED));
		assert_true(shard_key_hash(&a, SEED) == bucket_hash_uuid(UUID_BYTES, SEED));
		assert_true(shard_key_hash(&a, 0) != shard_key_hash(&a, SEED));
	}
	/* text */
	{
		struct shard_key a = from_text(SHARD_KEY_TEXT, "bob"), b;

		assert_true(shard_key_from_binary(SHARD_KEY_TEXT, (const uint8_t *)"bobby", 3, &b,
						  err, sizeof(err)));
		assert_true(shard_key_equal(&a, &b));
		assert_true(shard_key_hash(&a, SEED) == bucket_hash_text("bob", 3, SEED));
		assert_true(shard_key_hash(&a, SEED) == shard_key_hash(&b, SEED));
	}
}

static void test_equal_distinguishes(void **state)
{
	struct shard_key a = from_text(SHARD_KEY_INT, "42"), b = from_text(SHARD_KEY_TEXT, "42");
	struct shard_key c = from_text(SHARD_KEY_INT, "43"), d = from_text(SHARD_KEY_TEXT, "420");

	assert_false(shard_key_equal(&a, &b));
	assert_false(shard_key_equal(&a, &c));
	assert_false(shard_key_equal(&b, &d));
	assert_true(shard_key_equal(&a, &a));
}

static void test_type_names(void **state)
{
	static const struct {
		const char *name;
		enum shard_key_type type;
	} names[] = {
		{ "int", SHARD_KEY_INT },      { "INTEGER", SHARD_KEY_INT },
		{ "BigInt", SHARD_KEY_INT },   { "int8", SHARD_KEY_INT },
		{ "int4", SHARD_KEY_INT },     { "int2", SHARD_KEY_INT },
		{ "smallint", SHARD_KEY_INT }, { "text", SHARD_KEY_TEXT },
		{ "VARCHAR", SHARD_KEY_TEXT }, { "uuid", SHARD_KEY_UUID },
		{ "UUID", SHARD_KEY_UUID },
	};
	static const char *const unknown[] = { "", "int16", "numeric", "char", "uuids", " int" };
	enum shard_key_type t;

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		t = (enum shard_key_type) - 1;
		if (!shard_key_type_parse(names[i].name, &t) || t != names[i].type)
			fail_msg("type name \"%s\"", names[i].name);
	}
	for (size_t i = 0; i < ARRAY_LEN(unknown); i++)
		assert_false(shard_key_type_parse(unknown[i], &t));
	assert_string_equal(shard_key_type_name(SHARD_KEY_INT), "int");
	assert_string_equal(shard_key_type_name(SHARD_KEY_TEXT), "text");
	assert_string_equal(shard_key_type_name(SHARD_KEY_UUID), "uuid");
	/* the names round-trip */
	for (int i = SHARD_KEY_INT; i <= SHARD_KEY_UUID; i++) {
		assert_true(shard_key_type_parse(shard_key_type_name(i), &t));
		assert_int_equal(t, i);
	}
}

static void test_format_bounds(void **state)
{
	struct shard_key k = from_text(SHARD_KEY_INT, "-9223372036854775808");
	char buf[8] = "xxxxxxx";

	assert_string_equal(shard_key_format(&k, buf, 5), "-922");
	assert_int_equal(buf[5], 'x');
	/* buflen 0 writes nothing */
	assert_ptr_equal(shard_key_format(&k, buf, 0), buf);
	assert_string_equal(buf, "-922");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int_text_accepted),
		cmocka_unit_test(test_int_text_refused),
		cmocka_unit_test(test_uuid_text_like_uuid_in),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_forms_hash_alike),
		cmocka_unit_test(test_equal_distinguishes),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_format_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
