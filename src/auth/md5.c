/*
 * md5: PostgreSQL MD5 password hashing and challenge responses on top of libcrypto.
 *
 * Invariant: every output buffer is either a complete "md5" + 32 lowercase hex digits string or
 * the empty string; intermediate digests that are password equivalents are wiped before return.
 */
#include "auth/md5.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_DIGEST_BYTES 16
#define MD5_HEX_LEN (2 * MD5_DIGEST_BYTES)

bool md5_is_secret(const char *s)
{
	if (strncmp(s, "md5", 3) != 0 || strlen(s) != MD5_PASSWORD_LEN)
		return false;
	/* Uppercase hex does not count: PostgreSQL would treat it as a password, so do we. */
	return strspn(s + 3, "0123456789abcdef") == MD5_HEX_LEN;
}

/* "md5" + hex(md5(a || b)) into out; false (out empty) when libcrypto refuses. */
static bool md5_hex_of(const void *a, size_t alen, const void *b, size_t blen,
		       char out[MD5_PASSWORD_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[MD5_DIGEST_BYTES];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
		  EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
		  EVP_DigestFinal_ex(ctx, digest, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		out[0] = '\0';
		return false;
	}
	memcpy(out, "md5", 3);
	for (int i = 0; i < MD5_DIGEST_BYTES; i++) {
		out[3 + 2 * i] = hex[digest[i] >> 4];
		out[3 + 2 * i + 1] = hex[digest[i] & 15];
	}
	out[MD5_PASSWORD_LEN] = '\0';
	OPENSSL_cleanse(digest, sizeof(digest));
	return true;
}

bool md5_password_hash(const char *user, const char *password, char out[MD5_PASSWORD_LEN + 1])
{
	return md5_hex_of(password, strlen(password), user, strlen(user), out);
}

bool md5_password_response(const char *user, const char *secret, const uint8_t salt[4],
			   char out[MD5_PASSWORD_LEN + 1])
{
	char stored[MD5_PASSWORD_LEN + 1];
	if (md5_is_secret(secret))
		memcpy(stored, secret, sizeof(stored));
	else if (!md5_password_hash(user, secret, stored)) {
		out[0] = '\0';
		return false;
	}
	/* The challenge hashes the hex digits only, without the "md5" prefix. */
	bool ok = md5_hex_of(stored + 3, MD5_HEX_LEN, salt, 4, out);
	OPENSSL_cleanse(stored, sizeof(stored));
	return ok;
}
