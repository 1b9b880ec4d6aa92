/* Unit tests for proto/cancelkey: the peer_id, forwarded bit and random bits of a cancel key. */
/* link: src/proto/cancelkey.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/cancelkey.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_peer_id_round_trips(void **state)
{
	static const int ids[] = { 1, 2, 3, 255, 256, 8191, 8192, CANCELKEY_PEER_ID_MAX };
	static const uint32_t rnds[] = { 0, 1, 0x1ffff, 0x20000, 0xffffffff, 0xdeadbeef };

	for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
		for (size_t j = 0; j < ARRAY_LEN(rnds); j++) {
			struct cancelkey k = cancelkey_make(ids[i], rnds[j], rnds[j]);

			assert_int_equal(cancelkey_peer_id(k.key), ids[i]);
			assert_false(cancelkey_is_forwarded(k.key));
			/* the 17 random bits are the caller's, untouched */
			assert_int_equal(k.key & CANCELKEY_RANDOM_MASK,
					 rnds[j] & CANCELKEY_RANDOM_MASK);
			/* pid: 31 random bits, never negative as a signed int */
			assert_int_equal(k.pid, rnds[j] & 0x7fffffff);
			assert_true((int32_t)k.pid >= 0);
		}
	}
}

static void test_forwarded_bit(void **state)
{
	struct cancelkey k = cancelkey_make(4242, 0x12345678, 0xffffffff);
	uint32_t sent = cancelkey_mark_forwarded(k.key);

	assert_true(cancelkey_is_forwarded(sent));
	/* forwarding keeps the owner and gives the owner back the key it issued */
	assert_int_equal(cancelkey_peer_id(sent), 4242);
	assert_int_equal(cancelkey_as_issued(sent), k.key);
	assert_int_equal(cancelkey_as_issued(k.key), k.key);
	/* marking twice is marking once */
	assert_int_equal(cancelkey_mark_forwarded(sent), sent);
}

/* With random words, keys of two peers never name the other, and random bits do vary. */
static void test_peers_never_collide(void **state)
{
	uint32_t x = 2463534242u, seen_or = 0, seen_and = 0xffffffff;

	for (int i = 0; i < 10000; i++) {
		struct cancelkey a, b;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		a = cancelkey_make(1, x, x);
		b = cancelkey_make(2, x, ~x);
		assert_int_equal(cancelkey_peer_id(a.key), 1);
		assert_int_equal(cancelkey_peer_id(b.key), 2);
		seen_or |= a.key;
		seen_and &= a.key;
	}
	/* every one of the 17 random bits took both values */
	assert_int_equal(seen_or & CANCELKEY_RANDOM_MASK, CANCELKEY_RANDOM_MASK);
	assert_int_equal(seen_and & CANCELKEY_RANDOM_MASK, 0);
}

/* No peering: the whole key is random, nothing is reserved. */
static void test_no_peering_keeps_every_bit(void **state)
{
	struct cancelkey k = cancelkey_make(0, 0xffffffff, 0xfedcba98);

	assert_int_equal(k.key, 0xfedcba98);
	assert_int_equal(k.pid, 0x7fffffff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_id_round_trips),
		cmocka_unit_test(test_forwarded_bit),
		cmocka_unit_test(test_peers_never_collide),
		cmocka_unit_test(test_no_peering_keeps_every_bit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
