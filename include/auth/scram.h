/*
 * scram: SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it for SASL authentication.
 *
 * Client side, for pgmux logging in to a server: init, then client-first, then client-final
 * (from the server-first message), then verify the server-final message. The client never
 * offers channel binding, so its GS2 header is "n,," and the channel-binding attribute is
 * "c=biws". PostgreSQL ignores the SCRAM user name (the startup packet names the user) and its
 * clients send "n=", but the user is a parameter so the RFC test vectors can be checked.
 *
 * Server side building blocks, for authenticating pgmux's own clients: parse and make stored
 * secrets "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (the pg_authid format),
 * check a ClientProof and compute a ServerSignature.
 *
 * Passwords and SASLprep: passwords are used as their raw bytes. For ASCII passwords this is
 * exactly what SASLprep yields, and PostgreSQL itself uses the raw bytes of any password that
 * SASLprep rejects (such as one that is not UTF-8). Only a non-ASCII UTF-8 password that NFKC
 * normalization or SASLprep's mapping would change (non-ASCII spaces, compatibility characters,
 * soft hyphens...) gives a different key here than in PostgreSQL; store such passwords as
 * SCRAM secrets made by PostgreSQL, or choose passwords that are already normalized.
 *
 * A stored secret alone cannot log in to a server: the proof needs the ClientKey, which the
 * secret does not hold. The client needs the plaintext password, or a ClientKey and ServerKey
 * (scram_client_init_keys()), such as the ClientKey recovered by scram_verify_client_proof()
 * when a client of pgmux authenticates with the same secret (pass-through).
 *
 * Pure: no I/O, no globals. Nothing here calls back.
 */
#ifndef PGMUX_AUTH_SCRAM_H
#define PGMUX_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_MECHANISM "SCRAM-SHA-256"
#define SCRAM_KEY_LEN 32              /* SHA-256 output: keys, proofs and signatures */
#define SCRAM_RAW_NONCE_LEN 18        /* random bytes in a nonce we make (24 base64 chars) */
#define SCRAM_NONCE_MAX 64            /* longest client nonce a caller may pass */
#define SCRAM_SALT_LEN 16             /* salt bytes scram_make_secret() draws */
#define SCRAM_SALT_MAX 64             /* longest salt accepted in a stored secret */
#define SCRAM_DEFAULT_ITERATIONS 4096 /* PostgreSQL's default */
/*
 * Most iterations accepted from a server (and for scram_make_secret()). The cost of a login is
 * linear in it; the bound keeps a hostile or misconfigured server from pinning the CPU while
 * leaving room far above any recommended setting.
 */
#define SCRAM_MAX_ITERATIONS 10000000
#define SCRAM_MESSAGE_MAX 1024 /* longest client-first-bare / server-first kept */
#define SCRAM_SECRET_MAX 256   /* buffer that holds any secret scram_make_secret() writes */

/*
 * Keys derived from one password for one salt and iteration count: logging in again to the same
 * server as the same user (same salt and count) copies them instead of running PBKDF2 again.
 * The password itself is not kept, only its SHA-256, so a changed password misses.
 */
struct scram_derived {
	bool valid;
	unsigned used; /* cache clock at the last use; oldest is replaced */
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_SALT_MAX];
	uint8_t password_digest[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

#define SCRAM_DERIVED_SLOTS 4

/* A caller's small cache of derived keys (zeroed = empty); wipe it with scram_derived_clear(). */
struct scram_derived_cache {
	unsigned clock;
	struct scram_derived slot[SCRAM_DERIVED_SLOTS];
};

enum scram_client_state {
	SCRAM_CLIENT_NEW,        /* initialized; next: scram_client_first_message() */
	SCRAM_CLIENT_FIRST_SENT, /* next: scram_client_final_message() */
	SCRAM_CLIENT_FINAL_SENT, /* next: scram_client_verify_final() */
	SCRAM_CLIENT_DONE,       /* the server proved it knows the secret */
	SCRAM_CLIENT_FAILED,     /* any error; only scram_client_clear() is useful now */
};

/*
 * One client exchange. The caller owns the struct (embed it anywhere) and must call
 * scram_client_clear() once it is done with an initialized one, whatever the outcome: it holds
 * an allocated copy of the password and key material.
 */
struct scram_client {
	enum scram_client_state state;
	char *password; /* owned copy; NULL once keys are derived */
	bool have_keys; /* client_key and server_key are valid */
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN]; /* expected in server-final */
	char nonce[SCRAM_NONCE_MAX + 1];         /* our client nonce, NUL-terminated */
	char client_first_bare[SCRAM_MESSAGE_MAX];
	size_t client_first_bare_len;
	char server_first[SCRAM_MESSAGE_MAX]; /* exactly as received; part of AuthMessage */
	size_t server_first_len;
	int max_iterations;                /* most a server may ask to derive; see _limit() */
	struct scram_derived_cache *cache; /* borrowed; NULL = derive every time */
	bool keys_from_cache;              /* the keys came from the cache, not PBKDF2 */
	bool refused_iterations;           /* failed: the server asked more than the bound */
};

/* A parsed stored secret. */
struct scram_secret {
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_SALT_MAX];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Name of a client state for logs; never NULL. */
const char *scram_client_state_name(enum scram_client_state state);

/*
 * Start an exchange with a plaintext password (copied; the caller keeps its own). nonce is the
 * client nonce to use, or NULL for 18 random bytes in base64; a given nonce must be 1 to
 * SCRAM_NONCE_MAX printable ASCII characters other than ','. Overwrites *sc without freeing
 * anything in it. Returns false on a bad nonce, a random-number or allocation failure; sc is then
 * in SCRAM_CLIENT_FAILED and holds nothing that needs clearing (clearing is still harmless).
 */
bool scram_client_init(struct scram_client *sc, const char *password, const char *nonce);

/*
 * Like scram_client_init(), but with a known ClientKey and ServerKey instead of a password, so
 * no PBKDF2 runs and the server's salt and iteration count are only checked, not used.
 */
bool scram_client_init_keys(struct scram_client *sc, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN], const char *nonce);

/*
 * After either init: derive keys only for 1..max_iterations iterations (a server asking more is
 * refused by scram_client_final_message(); without this call the bound is SCRAM_MAX_ITERATIONS),
 * and look derived keys up in, and add them to, the caller's cache (may be NULL), which must
 * outlive the exchange. Keys given to scram_client_init_keys() are never bounded nor cached.
 */
void scram_client_limit(struct scram_client *sc, int max_iterations,
			struct scram_derived_cache *cache);

/* Wipe every key of a cache; it is empty afterwards. */
void scram_derived_clear(struct scram_derived_cache *cache);

/*
 * Write the client-first message ("n,,n=<user>,r=<nonce>", NUL-terminated) into the caller's
 * out and its length without the NUL into *outn: the body of SASLInitialResponse. user may be
 * NULL or "" (what PostgreSQL clients send); ',' and '=' in it are escaped as RFC 5802 says.
 * Returns false when sc is not in SCRAM_CLIENT_NEW or the message does not fit in outlen or
 * SCRAM_MESSAGE_MAX; sc is then SCRAM_CLIENT_FAILED.
 */
bool scram_client_first_message(struct scram_client *sc, const char *user, char *out, size_t outlen,
				size_t *outn);

/*
 * Take the server-first message (AuthenticationSASLContinue data, len bytes, need not be
 * NUL-terminated) and write the client-final message, NUL-terminated, into the caller's out,
 * its length into *outn: the body of SASLResponse. Checks that the server nonce extends ours,
 * the salt is non-empty valid base64, and 1 <= iterations <= SCRAM_MAX_ITERATIONS (or the bound
 * given to scram_client_limit() when keys are to be derived). Derives the keys (PBKDF2 with the
 * password, or from the cache; then wipes the password) and remembers the ServerSignature to
 * expect. Returns false with a reason in err (NUL-terminated, truncated to errlen) when the
 * message is malformed or unacceptable, out is too small, or libcrypto fails; sc is then
 * SCRAM_CLIENT_FAILED.
 */
bool scram_client_final_message(struct scram_client *sc, const char *server_first, size_t len,
				char *out, size_t outlen, size_t *outn, char *err, size_t errlen);

/*
 * Check the server-final message (AuthenticationSASLFinal data, len bytes): "v=<signature>" must
 * equal the expected ServerSignature (compared in constant time). Returns true, leaving sc in
 * SCRAM_CLIENT_DONE, only then. An "e=<error>" message, a wrong signature or a malformed message
 * returns false with a reason in err; printable characters of a server error are quoted there.
 */
bool scram_client_verify_final(struct scram_client *sc, const char *server_final, size_t len,
			       char *err, size_t errlen);

/* Wipe all key material and free the password copy; sc may be initialized again afterwards. */
void scram_client_clear(struct scram_client *sc);

/*
 * Parse a stored secret "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" into the
 * caller's *out. Returns false when secret is not exactly that shape: iterations 1..INT_MAX in
 * decimal, a salt of 1..SCRAM_SALT_MAX bytes and two 32-byte keys, all strict base64.
 */
bool scram_parse_secret(const char *secret, struct scram_secret *out);

/*
 * Write a new stored secret for password with a random SCRAM_SALT_LEN-byte salt into the
 * caller's out (NUL-terminated; SCRAM_SECRET_MAX bytes always suffice). Returns false when
 * iterations is outside 1..SCRAM_MAX_ITERATIONS, out is too small, or libcrypto fails.
 */
bool scram_make_secret(const char *password, int iterations, char *out, size_t outlen);

/* scram_make_secret() with a given salt of 1..SCRAM_SALT_MAX bytes, for reproducible secrets. */
/*
 * Does a cleartext password match a stored SCRAM secret? (For clients that answer a cleartext
 * password request while the auth_file holds only the secret.) Constant-time comparison.
 */
bool scram_secret_matches(const char *secret, const char *password);

bool scram_make_secret_salted(const char *password, int iterations, const uint8_t *salt,
			      size_t salt_len, char *out, size_t outlen);

/*
 * Server side: check a client's proof for the AuthMessage (client-first-bare "," server-first
 * "," client-final-without-proof, len bytes). ClientKey = proof XOR HMAC(StoredKey, AuthMessage)
 * must hash to StoredKey (compared in constant time). Returns true when it does, and then writes
 * the ClientKey into the caller's client_key_out (may be NULL); the caller must wipe it after use.
 * Returns false for a wrong proof or a libcrypto failure.
 */
bool scram_verify_client_proof(const struct scram_secret *s, const char *auth_message, size_t len,
			       const uint8_t proof[SCRAM_KEY_LEN],
			       uint8_t client_key_out[SCRAM_KEY_LEN]);

/*
 * Server side: the ServerSignature HMAC(ServerKey, AuthMessage) for the server-final message,
 * into the caller's out. Returns false only when libcrypto fails.
 */
bool scram_server_signature(const struct scram_secret *s, const char *auth_message, size_t len,
			    uint8_t out[SCRAM_KEY_LEN]);

#endif
