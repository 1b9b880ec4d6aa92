/*
 * Unit tests for shard/bucket. The expected hashes are what PostgreSQL 15 returns for the same
 * keys (SELECT hashint8extended(k, seed), hashtextextended(t, seed), uuid_hash_extended(u, seed));
 * test/integration/test_shard_bucket.py compares many more keys against a running server.
 *
 * Run with arguments, the binary is that test's calculator instead:
 *   test_bucket --hash int8|text|uuid SEED   reads one key a line (text as hex, uuid as written)
 *                                             and prints its hash as PostgreSQL shows it (int8).
 */
/* link: src/shard/bucket.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/bucket.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	int64_t key;
	uint64_t seed;
	int64_t expected;
} int8_cases[] = {
#include "bucket_int8_vectors.h"
};

static const struct {
	const char *text;
	uint64_t seed;
	int64_t expected;
} text_cases[] = {
#include "bucket_text_vectors.h"
};

static void test_int8_matches_postgresql(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(int8_cases); i++) {
		int64_t got = (int64_t)bucket_hash_int8(int8_cases[i].key, int8_cases[i].seed);

		if (got != int8_cases[i].expected)
			fail_msg("hashint8extended(%lld, %llu): got %lld, PostgreSQL %lld",
				 (long long)int8_cases[i].key,
				 (unsigned long long)int8_cases[i].seed, (long long)got,
				 (long long)int8_cases[i].expected);
	}
}

static void test_text_matches_postgresql(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(text_cases); i++) {
		const char *t = text_cases[i].text;
		int64_t got = (int64_t)bucket_hash_text(t, strlen(t), text_cases[i].seed);

		if (got != text_cases[i].expected)
			fail_msg("hashtextextended('%s', %llu): got %lld, PostgreSQL %lld", t,
				 (unsigned long long)text_cases[i].seed, (long long)got,
				 (long long)text_cases[i].expected);
	}
}

/*
 * An integer that fits in 32 bits hashes as its four little-endian bytes (PostgreSQL's
 * hash_uint32_extended equals hash_any_extended of the word), so int2, int4 and int8 columns
 * holding the same number share a bucket.
 */
static void test_small_integers_hash_as_their_word(void **state)
{
	static const int64_t keys[] = { 0, 1, -1, 42, -42, INT32_MAX, INT32_MIN };

	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		uint32_t w = (uint32_t)(int32_t)keys[i];
		uint8_t word[4] = { (uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16),
				    (uint8_t)(w >> 24) };

		assert_true(bucket_hash_int8(keys[i], 7) == bucket_hash_bytes(word, 4, 7));
		assert_true(bucket_hash_int8(keys[i], 0) == bucket_hash_bytes(word, 4, 0));
	}
}

static void test_bucket_is_the_low_bits(void **state)
{
	assert_int_equal(bucket_of(0xFFFFFFFFFFFFC123ull, 16384), 0x0123);
	assert_int_equal(bucket_of(0x123456789ull, 1), 0);
	assert_int_equal(bucket_of(0x123456789ull, 16), 9);
}

/* --- calculator mode --- */

static int hex_digit(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Hex digits (dashes skipped) into out; the number of bytes, or -1. */
static long from_hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (; *s && *s != '\n'; s++) {
		int hi, lo;

		if (*s == '-')
			continue;
		if ((hi = hex_digit(s[0])) < 0 || (lo = hex_digit(s[1])) < 0 || n == cap)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
		s++;
	}
	return (long)n;
}

static int calculator(const char *type, uint64_t seed)
{
	static char line[1 << 16];
	static uint8_t bytes[1 << 15];

	while (fgets(line, sizeof(line), stdin)) {
		uint64_t h;
		long n;

		if (strcmp(type, "int8") == 0) {
			h = bucket_hash_int8(strtoll(line, NULL, 10), seed);
		} else if ((n = from_hex(line, bytes, sizeof(bytes))) < 0) {
			fprintf(stderr, "bad key: %s", line);
			return 1;
		} else if (strcmp(type, "uuid") == 0 && n == 16) {
			h = bucket_hash_uuid(bytes, seed);
		} else if (strcmp(type, "text") == 0) {
			h = bucket_hash_text((const char *)bytes, (size_t)n, seed);
		} else {
			fprintf(stderr, "bad type or key: %s %s", type, line);
			return 1;
		}
		printf("%lld\n", (long long)(int64_t)h);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int8_matches_postgresql),
		cmocka_unit_test(test_text_matches_postgresql),
		cmocka_unit_test(test_small_integers_hash_as_their_word),
		cmocka_unit_test(test_bucket_is_the_low_bits),
	};

	if (argc == 4 && strcmp(argv[1], "--hash") == 0)
		return calculator(argv[2], strtoull(argv[3], NULL, 10));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
