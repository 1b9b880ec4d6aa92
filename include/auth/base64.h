/*
 * base64: the standard alphabet of RFC 4648 section 4, with '=' padding, as SCRAM (RFC 5802)
 * and PostgreSQL's stored SCRAM secrets use it.
 *
 * Every call takes explicit lengths and never writes past the output size it is given. Decoding
 * is strict so that a malformed message is rejected rather than guessed at: the length must be
 * a multiple of 4, only the last one or two characters may be '=', whitespace is not skipped,
 * and the unused low bits of the last character must be zero (every encoder writes them so).
 * Pure: no I/O, no globals.
 */
#ifndef PGMUX_AUTH_BASE64_H
#define PGMUX_AUTH_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters that encoding n bytes produces, not counting a terminating NUL. */
size_t base64_encoded_len(size_t n);

/* Most bytes that decoding n characters can produce (the exact count depends on padding). */
size_t base64_decoded_max(size_t n);

/*
 * Encode src[0..n) into out, followed by a NUL. Returns false, writing nothing, when outlen is
 * smaller than base64_encoded_len(n) + 1. On success *outn (if not NULL) is the number of
 * characters written before the NUL. The caller owns both buffers.
 */
bool base64_encode(const uint8_t *src, size_t n, char *out, size_t outlen, size_t *outn);

/*
 * Decode src[0..n) into out. Returns false when the input is not strict base64 (see above) or
 * when the decoded bytes would not fit in outlen; out may then hold partial garbage. On success
 * *outn (if not NULL) is the number of bytes written. No NUL is appended. Empty input decodes to
 * zero bytes and succeeds; callers that need data check *outn.
 */
bool base64_decode(const char *src, size_t n, uint8_t *out, size_t outlen, size_t *outn);

#endif
