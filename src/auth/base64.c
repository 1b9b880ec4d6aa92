/*
 * base64: strict RFC 4648 encoding and decoding with explicit bounds.
 *
 * Invariants: encode writes exactly base64_encoded_len(n) characters plus a NUL, or nothing;
 * decode never writes more than outlen bytes and accepts only the canonical encoding of some
 * byte string, so each valid input has exactly one meaning.
 */
#include "auth/base64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
	return (n / 3 + (n % 3 != 0)) * 4;
}

size_t base64_decoded_max(size_t n)
{
	return n / 4 * 3;
}

bool base64_encode(const uint8_t *src, size_t n, char *out, size_t outlen, size_t *outn)
{
	/* base64_encoded_len() would wrap around for n this large. */
	if (n > (SIZE_MAX / 4 - 1) * 3)
		return false;
	size_t need = base64_encoded_len(n);
	if (outlen < need + 1)
		return false;

	size_t o = 0;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)src[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)src[i + 1] << 8;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	if (outn)
		*outn = o;
	return true;
}

/* The 6-bit value of an alphabet character, or -1 for anything else (including '='). */
static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode one group of four characters into v, returning how many bytes it carries (1..3) or 0
 * when it is invalid. Padding is allowed only when last is true.
 */
static int decode_quad(const char *q, bool last, uint32_t *v)
{
	int pad = 0;
	if (last && q[3] == '=')
		pad = q[2] == '=' ? 2 : 1;

	uint32_t acc = 0;
	for (int k = 0; k < 4 - pad; k++) {
		int s = sextet(q[k]);
		if (s < 0)
			return 0;
		acc = acc << 6 | (uint32_t)s;
	}
	acc <<= 6 * pad;

	/* The bits the padding leaves unused must be zero, or two inputs would mean one output. */
	if ((pad == 1 && (acc & 0xff) != 0) || (pad == 2 && (acc & 0xffff) != 0))
		return 0;
	*v = acc;
	return 3 - pad;
}

bool base64_decode(const char *src, size_t n, uint8_t *out, size_t outlen, size_t *outn)
{
	if (n % 4 != 0)
		return false;

	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v;
		int bytes = decode_quad(src + i, i + 4 == n, &v);
		if (bytes == 0 || outlen - o < (size_t)bytes)
			return false;
		out[o++] = (uint8_t)(v >> 16);
		if (bytes > 1)
			out[o++] = (uint8_t)(v >> 8);
		if (bytes > 2)
			out[o++] = (uint8_t)v;
	}
	if (outn)
		*outn = o;
	return true;
}
