/*
 * shard/key: one shard key value, read from the forms a client can send it in (an SQL literal's
 * content, a SET value, a startup option, a text- or binary-format Bind parameter), and hashed
 * with shard/bucket so that it lands in the bucket PostgreSQL computes for the same value.
 *
 * Invariants: a value is accepted exactly when PostgreSQL's input function for the key's type
 * (int8in, uuid_in, text) or receive function (int2/int4/int8recv, uuid_recv, textrecv) would
 * accept it, so a key pgmux routes is a key the server can store; the text and binary forms of
 * one value give the same struct shard_key, hence the same hash. Integer keys of any width are
 * one type: an int2, int4 or int8 column holding the same number lands in the same bucket.
 *
 * Pure: no I/O, no allocation; a text key points into the caller's bytes.
 */
#ifndef PGMUX_SHARD_KEY_H
#define PGMUX_SHARD_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum shard_key_type { SHARD_KEY_INT = 0, SHARD_KEY_TEXT, SHARD_KEY_UUID };

/* One parsed key value; text points into the caller's bytes. */
struct shard_key {
	enum shard_key_type type;
	int64_t i;        /* SHARD_KEY_INT */
	uint8_t uuid[16]; /* SHARD_KEY_UUID */
	const char *text; /* SHARD_KEY_TEXT: not NUL-terminated */
	size_t text_len;
};

/* Room for the canonical text of an int or uuid key, NUL included. */
#define SHARD_KEY_FORMAT_MAX 40

/*
 * A key of type t from its text form: s[0..len), no NUL needed. INT as int8in reads it (optional
 * blanks around an optional sign and decimal digits, within int64); UUID as uuid_in (32 hex
 * digits of either case, a hyphen allowed after any group of four but the last, optionally in
 * braces); TEXT the bytes as they are (not a NUL byte, which text cannot hold). On success k's
 * text, if any, points into s. false (err says why) for a value the server would refuse.
 */
bool shard_key_from_text(enum shard_key_type t, const char *s, size_t len, struct shard_key *k,
			 char *err, size_t errlen);

/*
 * A key of type t from a binary-format Bind parameter: INT from 2, 4 or 8 bytes big-endian (the
 * int2, int4 and int8 send formats), UUID from 16 bytes, TEXT the bytes (not a NUL byte). false
 * (err says why) for any other length.
 */
bool shard_key_from_binary(enum shard_key_type t, const uint8_t *v, size_t len, struct shard_key *k,
			   char *err, size_t errlen);

/* The key's hash: bucket_hash_int8, bucket_hash_text or bucket_hash_uuid with this seed. */
uint64_t shard_key_hash(const struct shard_key *k, uint64_t seed);

/* Same type and same value (text compared byte for byte). */
bool shard_key_equal(const struct shard_key *a, const struct shard_key *b);

/*
 * The canonical text of k into buf (int: decimal; uuid: lower-case 8-4-4-4-12; text: as is),
 * truncated to buflen - 1 bytes and NUL-terminated when buflen > 0. Returns buf.
 */
const char *shard_key_format(const struct shard_key *k, char *buf, size_t buflen);

/*
 * The key type a column type name stands for, case-insensitively: int, integer, bigint, int8,
 * int4, int2, smallint -> INT; text, varchar -> TEXT; uuid -> UUID. false for any other name.
 */
bool shard_key_type_parse(const char *name, enum shard_key_type *t);

/* "int", "text" or "uuid" (a static string). */
const char *shard_key_type_name(enum shard_key_type t);

#endif
