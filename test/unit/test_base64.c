/*
 * Unit tests for auth/base64: the RFC 4648 section 10 vectors, agreement with libcrypto's
 * encoder on every byte value, and the strict decoder's refusals.
 */
/* link: src/auth/base64.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auth/base64.h"

static const struct {
	const char *plain;
	const char *encoded;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void test_rfc4648_vectors(void **state)
{
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		const char *plain = rfc4648[i].plain;
		const char *enc = rfc4648[i].encoded;
		char out[32];
		uint8_t dec[32];
		size_t n = 99;

		assert_int_equal(base64_encoded_len(strlen(plain)), strlen(enc));
		assert_true(
			base64_encode((const uint8_t *)plain, strlen(plain), out, sizeof(out), &n));
		assert_string_equal(out, enc);
		assert_int_equal(n, strlen(enc));

		assert_true(base64_decoded_max(strlen(enc)) >= strlen(plain));
		assert_true(base64_decode(enc, strlen(enc), dec, sizeof(dec), &n));
		assert_int_equal(n, strlen(plain));
		assert_memory_equal(dec, plain, n);
	}
}

/* Every length 0..99 over all byte values, checked against libcrypto's encoder. */
static void test_matches_libcrypto(void **state)
{
	uint8_t src[100];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(255 - i * 7);

	for (size_t len = 0; len < sizeof(src); len++) {
		char ours[160];
		unsigned char theirs[160];
		uint8_t back[100];
		size_t n;

		assert_true(base64_encode(src, len, ours, sizeof(ours), &n));
		int tn = EVP_EncodeBlock(theirs, src, (int)len);
		assert_int_equal(n, (size_t)tn);
		assert_string_equal(ours, (char *)theirs);

		assert_true(base64_decode(ours, n, back, sizeof(back), &n));
		assert_int_equal(n, len);
		assert_memory_equal(back, src, len);
	}
}

static void test_all_byte_values(void **state)
{
	uint8_t src[256], back[256];
	char enc[400];
	size_t n;
	for (int i = 0; i < 256; i++)
		src[i] = (uint8_t)i;
	assert_true(base64_encode(src, sizeof(src), enc, sizeof(enc), &n));
	assert_true(base64_decode(enc, n, back, sizeof(back), &n));
	assert_int_equal(n, 256);
	assert_memory_equal(back, src, 256);
}

static void test_decode_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg=",                /* length not a multiple of 4 */
		"Zg",                 /* unpadded */
		"Zg=a",               /* data after padding */
		"Z===",               /* too much padding */
		"====",               /* padding only */
		"Zg==Zg==",           /* padding before the end */
		"Zh==",               /* non-zero bits under the padding */
		"Zm9=",               /* same, one '=' */
		"Zm9v*A==",           /* not in the alphabet */
		"Zm 9",               /* whitespace is not skipped */
		"Zm9v\nZg==", "Zm9-", /* URL-safe alphabet is not accepted */
		"Zm9_",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t out[16];
		size_t n = 0;
		if (base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n))
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_bounds(void **state)
{
	char out[9];
	uint8_t dec[6];
	size_t n;
	const uint8_t six[6] = { 'f', 'o', 'o', 'b', 'a', 'r' };

	/* "Zm9vYmFy" needs 8 characters plus the NUL. */
	assert_false(base64_encode(six, 6, out, 8, &n));
	assert_true(base64_encode(six, 6, out, 9, &n));
	assert_false(base64_encode(six, 1, out, 0, &n));

	assert_false(base64_decode("Zm9vYmFy", 8, dec, 5, &n));
	assert_true(base64_decode("Zm9vYmFy", 8, dec, 6, &n));
	assert_int_equal(n, 6);
	/* Padding makes the last group shorter, so two bytes fit in two. */
	assert_true(base64_decode("Zm8=", 4, dec, 2, &n));
	assert_false(base64_decode("Zm8=", 4, dec, 1, &n));

	/* Length is explicit: bytes past n are never read. */
	assert_true(base64_decode("Zm9v!!!!", 4, dec, sizeof(dec), &n));
	assert_int_equal(n, 3);
	assert_true(base64_decode("Zg==", 4, dec, sizeof(dec), NULL));
	assert_false(base64_encode(six, SIZE_MAX, out, sizeof(out), &n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors), cmocka_unit_test(test_matches_libcrypto),
		cmocka_unit_test(test_all_byte_values), cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
