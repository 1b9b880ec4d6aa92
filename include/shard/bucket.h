/*
 * shard/bucket: the 64-bit hash of a shard key, computed exactly as PostgreSQL's
 * hashint8extended(), hashtextextended() and uuid_hash_extended() compute it, and the bucket it
 * falls in. Because PostgreSQL computes the same value, the database itself can say which bucket
 * a row belongs to: SELECT hashint8extended(user_id, seed) & (buckets - 1).
 *
 * The hash is Bob Jenkins' lookup3 (public domain) in the variant PostgreSQL uses for its hash
 * functions: 32-bit words read little-endian, the key length folded into the initial state, a
 * nonzero seed mixed in first, and the 64-bit result made of the final b (high) and c (low).
 * Integer keys hash their value folded into 32 bits, so an int2, int4 or int8 column holding the
 * same number lands in the same bucket.
 *
 * Pure: no I/O, no allocation; the results do not depend on the machine's byte order.
 */
#ifndef PGMUX_SHARD_BUCKET_H
#define PGMUX_SHARD_BUCKET_H

#include <stddef.h>
#include <stdint.h>

/* PostgreSQL's hash_any_extended(): the hash of len bytes. */
uint64_t bucket_hash_bytes(const void *data, size_t len, uint64_t seed);

/* hashint8extended(key, seed), also right for int2 and int4 keys. */
uint64_t bucket_hash_int8(int64_t key, uint64_t seed);

/* hashtextextended(key, seed) under a deterministic collation: the bytes of the text. */
uint64_t bucket_hash_text(const char *text, size_t len, uint64_t seed);

/* uuid_hash_extended(key, seed): the uuid's 16 bytes, in the order they are written. */
uint64_t bucket_hash_uuid(const uint8_t uuid[16], uint64_t seed);

/* The bucket of a hash: its low bits. buckets must be a power of two. */
static inline uint32_t bucket_of(uint64_t hash, uint32_t buckets)
{
	return (uint32_t)(hash & (uint64_t)(buckets - 1));
}

#endif
