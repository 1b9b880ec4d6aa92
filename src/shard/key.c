/*
 * shard/key: shard key values from text and binary forms (see key.h).
 *
 * The text readers follow PostgreSQL 15's input functions rule for rule rather than the C
 * library's: strtoll() would take hex, leading zeros with a base prefix or a locale's blanks,
 * and isxdigit()/isspace() depend on the locale, while the server's answers do not.
 */
#include "shard/key.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/hex.h"
#include "shard/bucket.h"

/* Bytes of an offending value quoted in an error message. */
#define QUOTE_MAX 40

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

/* The first bytes of a value, printable, for an error message (a value may be binary). */
static const char *quote(const char *s, size_t len, char *buf, size_t buflen)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 4 < buflen; i++)
		buf[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (len > n && n + 4 <= buflen) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* isspace() in the C locale, which is what int8in skips. */
static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * int8in: blanks, an optional sign, at least one decimal digit, blanks. The magnitude is
 * gathered as a negative number, whose range reaches INT64_MIN.
 */
static bool int_from_text(const char *s, size_t len, int64_t *out, char *err, size_t errlen)
{
	const char *p = s, *end = s + len;
	bool negative = false;
	int64_t v = 0;
	char q[QUOTE_MAX];

	while (p < end && is_blank(*p))
		p++;
	if (p < end && (*p == '-' || *p == '+'))
		negative = *p++ == '-';
	if (p == end || *p < '0' || *p > '9')
		return fail(err, errlen, "invalid input syntax for type bigint: \"%s\"",
			    quote(s, len, q, sizeof(q)));
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		int digit = *p - '0';

		if (v < (INT64_MIN + digit) / 10)
			return fail(err, errlen, "value \"%s\" is out of range for type bigint",
				    quote(s, len, q, sizeof(q)));
		v = v * 10 - digit;
	}
	while (p < end && is_blank(*p))
		p++;
	if (p != end)
		return fail(err, errlen, "invalid input syntax for type bigint: \"%s\"",
			    quote(s, len, q, sizeof(q)));
	if (!negative && v == INT64_MIN)
		return fail(err, errlen, "value \"%s\" is out of range for type bigint",
			    quote(s, len, q, sizeof(q)));
	*out = negative ? v : -v;
	return true;
}

/*
 * uuid_in: an optional '{' (then a closing '}' is required), 16 pairs of hex digits, and after
 * each second pair but the last one optional '-'. Nothing else, not even blanks.
 */
static bool uuid_from_text(const char *s, size_t len, uint8_t *uuid, char *err, size_t errlen)
{
	const char *p = s, *end = s + len;
	bool braces = p < end && *p == '{';
	char q[QUOTE_MAX];

	p += braces;
	for (int i = 0; i < 16; i++) {
		int hi = end - p >= 2 ? hex_digit_value((unsigned char)p[0]) : -1;
		int lo = hi >= 0 ? hex_digit_value((unsigned char)p[1]) : -1;

		if (lo < 0)
			goto syntax;
		uuid[i] = (uint8_t)(hi << 4 | lo);
		p += 2;
		if (p < end && *p == '-' && i % 2 == 1 && i < 15)
			p++;
	}
	if (braces) {
		if (p == end || *p != '}')
			goto syntax;
		p++;
	}
	if (p == end)
		return true;
syntax:
	return fail(err, errlen, "invalid input syntax for type uuid: \"%s\"",
		    quote(s, len, q, sizeof(q)));
}

static bool text_key(const char *s, size_t len, struct shard_key *k, char *err, size_t errlen)
{
	if (len > 0 && memchr(s, '\0', len))
		return fail(err, errlen, "a text key cannot hold a NUL byte");
	k->text = len > 0 ? s : "";
	k->text_len = len;
	return true;
}

bool shard_key_from_text(enum shard_key_type t, const char *s, size_t len, struct shard_key *k,
			 char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->type = t;
	switch (t) {
	case SHARD_KEY_INT:
		return int_from_text(s, len, &k->i, err, errlen);
	case SHARD_KEY_UUID:
		return uuid_from_text(s, len, k->uuid, err, errlen);
	case SHARD_KEY_TEXT:
		return text_key(s, len, k, err, errlen);
	}
	return fail(err, errlen, "unknown shard key type %d", (int)t);
}

static uint64_t be_bytes(const uint8_t *v, size_t len)
{
	uint64_t x = 0;

	for (size_t i = 0; i < len; i++)
		x = x << 8 | v[i];
	return x;
}

bool shard_key_from_binary(enum shard_key_type t, const uint8_t *v, size_t len, struct shard_key *k,
			   char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->type = t;
	switch (t) {
	case SHARD_KEY_INT:
		/* Sign-extend from the sent width: int2 and int4 are two's complement too. */
		if (len == 2)
			k->i = (int16_t)be_bytes(v, 2);
		else if (len == 4)
			k->i = (int32_t)be_bytes(v, 4);
		else if (len == 8)
			k->i = (int64_t)be_bytes(v, 8);
		else
			return fail(err, errlen,
				    "a binary integer key has 2, 4 or 8 bytes, not %zu", len);
		return true;
	case SHARD_KEY_UUID:
		if (len != 16)
			return fail(err, errlen, "a binary uuid key has 16 bytes, not %zu", len);
		memcpy(k->uuid, v, 16);
		return true;
	case SHARD_KEY_TEXT:
		return text_key((const char *)v, len, k, err, errlen);
	}
	return fail(err, errlen, "unknown shard key type %d", (int)t);
}

uint64_t shard_key_hash(const struct shard_key *k, uint64_t seed)
{
	switch (k->type) {
	case SHARD_KEY_INT:
		return bucket_hash_int8(k->i, seed);
	case SHARD_KEY_UUID:
		return bucket_hash_uuid(k->uuid, seed);
	case SHARD_KEY_TEXT:
		break;
	}
	return bucket_hash_text(k->text, k->text_len, seed);
}

bool shard_key_equal(const struct shard_key *a, const struct shard_key *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SHARD_KEY_INT:
		return a->i == b->i;
	case SHARD_KEY_UUID:
		return memcmp(a->uuid, b->uuid, 16) == 0;
	case SHARD_KEY_TEXT:
		break;
	}
	return a->text_len == b->text_len &&
	       (a->text_len == 0 || !memcmp(a->text, b->text, a->text_len));
}

const char *shard_key_format(const struct shard_key *k, char *buf, size_t buflen)
{
	const uint8_t *u = k->uuid;
	size_t n;

	if (buflen == 0)
		return buf;
	switch (k->type) {
	case SHARD_KEY_INT:
		snprintf(buf, buflen, "%lld", (long long)k->i);
		break;
	case SHARD_KEY_UUID:
		snprintf(buf, buflen,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
			 u[12], u[13], u[14], u[15]);
		break;
	case SHARD_KEY_TEXT:
		n = k->text_len < buflen - 1 ? k->text_len : buflen - 1;
		if (n)
			memcpy(buf, k->text, n);
		buf[n] = '\0';
		break;
	}
	return buf;
}

static const struct {
	const char *name;
	enum shard_key_type type;
} type_names[] = {
	{ "int", SHARD_KEY_INT },      { "integer", SHARD_KEY_INT }, { "bigint", SHARD_KEY_INT },
	{ "int8", SHARD_KEY_INT },     { "int4", SHARD_KEY_INT },    { "int2", SHARD_KEY_INT },
	{ "smallint", SHARD_KEY_INT }, { "text", SHARD_KEY_TEXT },   { "varchar", SHARD_KEY_TEXT },
	{ "uuid", SHARD_KEY_UUID },
};

bool shard_key_type_parse(const char *name, enum shard_key_type *t)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcasecmp(name, type_names[i].name) == 0) {
			*t = type_names[i].type;
			return true;
		}
	}
	return false;
}

const char *shard_key_type_name(enum shard_key_type t)
{
	switch (t) {
	case SHARD_KEY_INT:
		return "int";
	case SHARD_KEY_TEXT:
		return "text";
	case SHARD_KEY_UUID:
		return "uuid";
	}
	return "unknown";
}
