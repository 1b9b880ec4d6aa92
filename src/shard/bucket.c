/*
 * shard/bucket: lookup3 as PostgreSQL's extended hash functions use it (see bucket.h).
 *
 * The state is three 32-bit words. Whole 12-byte blocks are added in and mixed; the last 0..11
 * bytes are added into the same words without a mix, except that c's lowest byte is left out
 * (lookup3 reserved it for the length) when the tail reaches c; then a final scramble.
 */
#include "shard/bucket.h"

#define GOLDEN 0x9e3779b9u
/* Added to the initial state with the length (PostgreSQL's constant). */
#define INIT_EXTRA 3923095u

static inline uint32_t rotl(uint32_t x, int k)
{
	return (x << k) | (x >> (32 - k));
}

/* Reversible mixing of a 12-byte block into the state. */
static inline void mix(uint32_t *a, uint32_t *b, uint32_t *c)
{
	*a -= *c;
	*a ^= rotl(*c, 4);
	*c += *b;
	*b -= *a;
	*b ^= rotl(*a, 6);
	*a += *c;
	*c -= *b;
	*c ^= rotl(*b, 8);
	*b += *a;
	*a -= *c;
	*a ^= rotl(*c, 16);
	*c += *b;
	*b -= *a;
	*b ^= rotl(*a, 19);
	*a += *c;
	*c -= *b;
	*c ^= rotl(*b, 4);
	*b += *a;
}

/* Final scramble, so every input bit affects every output bit. */
static inline void final(uint32_t *a, uint32_t *b, uint32_t *c)
{
	*c ^= *b;
	*c -= rotl(*b, 14);
	*a ^= *c;
	*a -= rotl(*c, 11);
	*b ^= *a;
	*b -= rotl(*a, 25);
	*c ^= *b;
	*c -= rotl(*b, 16);
	*a ^= *c;
	*a -= rotl(*c, 4);
	*b ^= *a;
	*b -= rotl(*a, 14);
	*c ^= *b;
	*c -= rotl(*b, 24);
}

/* n (0..4) bytes at p as a little-endian number. */
static uint32_t le_bytes(const uint8_t *p, size_t n)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void init_state(uint32_t *a, uint32_t *b, uint32_t *c, uint32_t len, uint64_t seed)
{
	*a = *b = *c = GOLDEN + len + INIT_EXTRA;
	/* A seed is treated as padding after the data: mixed in before it. */
	if (seed != 0) {
		*a += (uint32_t)(seed >> 32);
		*b += (uint32_t)seed;
		mix(a, b, c);
	}
}

static uint64_t result(uint32_t b, uint32_t c)
{
	return (uint64_t)b << 32 | c;
}

uint64_t bucket_hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *k = data;
	uint32_t a, b, c;

	init_state(&a, &b, &c, (uint32_t)len, seed);
	for (; len >= 12; k += 12, len -= 12) {
		a += le_bytes(k, 4);
		b += le_bytes(k + 4, 4);
		c += le_bytes(k + 8, 4);
		mix(&a, &b, &c);
	}
	/* The tail: a takes bytes 0..3, b 4..7, and bytes 8..10 go into c's upper three bytes. */
	a += le_bytes(k, len < 4 ? len : 4);
	if (len > 4)
		b += le_bytes(k + 4, len < 8 ? len - 4 : 4);
	if (len > 8)
		c += le_bytes(k + 8, len - 8) << 8;
	final(&a, &b, &c);
	return result(b, c);
}

/* PostgreSQL's hash_uint32_extended(): one word, no length-dependent tail. */
static uint64_t hash_word(uint32_t k, uint64_t seed)
{
	uint32_t a, b, c;

	init_state(&a, &b, &c, sizeof(uint32_t), seed);
	a += k;
	final(&a, &b, &c);
	return result(b, c);
}

uint64_t bucket_hash_int8(int64_t key, uint64_t seed)
{
	uint32_t lo = (uint32_t)key, hi = (uint32_t)((uint64_t)key >> 32);

	/*
	 * Fold to 32 bits so that a value that fits in int4 hashes as the int4 would: for those,
	 * hi is all zeros (key >= 0) or all ones (key < 0), and the fold leaves lo as it is.
	 */
	lo ^= key >= 0 ? hi : ~hi;
	return hash_word(lo, seed);
}

uint64_t bucket_hash_text(const char *text, size_t len, uint64_t seed)
{
	return bucket_hash_bytes(text, len, seed);
}

uint64_t bucket_hash_uuid(const uint8_t uuid[16], uint64_t seed)
{
	return bucket_hash_bytes(uuid, 16, seed);
}
