/*
 * md5: PostgreSQL's MD5 password scheme, for logging in to servers that ask for
 * AuthenticationMD5Password.
 *
 * PostgreSQL stores "md5" followed by the lowercase hex of md5(password || username), and
 * answers a challenge with "md5" followed by hex(md5(stored_hex || salt)), where stored_hex is
 * the 32 hex digits after the "md5" prefix. So a stored secret is as good as the password for
 * this scheme, which is why auth files may hold either. Pure: no I/O, no globals.
 */
#ifndef PGMUX_AUTH_MD5_H
#define PGMUX_AUTH_MD5_H

#include <stdbool.h>
#include <stdint.h>

/* Length of "md5" + 32 hex digits, without the NUL; buffers are MD5_PASSWORD_LEN + 1 bytes. */
#define MD5_PASSWORD_LEN 35

/*
 * True when s is a stored MD5 secret exactly as PostgreSQL recognises one: "md5" followed by 32
 * lowercase hex digits and nothing else. Anything else is a plaintext password to this scheme.
 */
bool md5_is_secret(const char *s);

/*
 * Write the secret PostgreSQL would store for (user, password) into out, NUL-terminated, in the
 * caller's buffer. Returns false only when libcrypto cannot compute MD5 (e.g. a FIPS-only
 * provider); out is then an empty string.
 */
bool md5_password_hash(const char *user, const char *password, char out[MD5_PASSWORD_LEN + 1]);

/*
 * Write the answer to an AuthenticationMD5Password challenge with the given 4-byte salt into
 * out (the caller's buffer, NUL-terminated; send it as the PasswordMessage body). secret is a
 * plaintext password or a stored MD5 secret (see md5_is_secret()). A SCRAM secret cannot answer
 * this challenge and would be taken as plaintext: callers check secret_kind_of() first.
 * Returns false only when libcrypto cannot compute MD5; out is then an empty string.
 */
bool md5_password_response(const char *user, const char *secret, const uint8_t salt[4],
			   char out[MD5_PASSWORD_LEN + 1]);

#endif
