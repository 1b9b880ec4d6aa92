/*
 * scram: SCRAM-SHA-256 client exchange and stored-secret helpers on top of libcrypto.
 *
 * Invariants: the client moves NEW -> FIRST_SENT -> FINAL_SENT -> DONE and drops to FAILED on
 * the first error, after which every step refuses; the plaintext password lives only from init
 * until the keys are derived; every intermediate key (salted password, StoredKey, signatures)
 * is wiped before a function returns; server input is bounds-checked before it is copied.
 */
#include "auth/scram.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/base64.h"

#define SECRET_PREFIX "SCRAM-SHA-256$"
#define CHANNEL_BINDING "c=biws" /* base64("n,,"): no channel binding */

/* ---- crypto primitives ---- */

static bool hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
			uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;
	if (keylen > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) != NULL &&
	       outlen == SCRAM_KEY_LEN;
}

static bool sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	return EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) == 1;
}

/* ClientKey and ServerKey from a password, as RFC 5802 section 3 defines them. */
static bool keys_from_password(const char *password, const uint8_t *salt, size_t salt_len,
			       int iterations, uint8_t client_key[SCRAM_KEY_LEN],
			       uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	size_t plen = strlen(password);
	bool ok = plen <= INT_MAX && salt_len <= INT_MAX &&
		  PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len, iterations,
				    EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
		  hmac_sha256(salted, sizeof(salted), "Client Key", 10, client_key) &&
		  hmac_sha256(salted, sizeof(salted), "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

/* ---- small parsing helpers ---- */

/* RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','. */
static bool nonce_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

/* Decimal digits only, no sign or spaces, value in [1, max]. */
static bool parse_count(const char *s, size_t n, long max, int *out)
{
	long v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return false;
	}
	if (v < 1)
		return false;
	*out = (int)v;
	return true;
}

/* A read cursor over a message that is not NUL-terminated. */
struct cursor {
	const char *p;
	const char *end;
};

/*
 * Take "<name>=<value>" at the cursor, value running to the next ',' or the end; step past the
 * ',' too. Returns false when the attribute is not next.
 */
static bool take_attr(struct cursor *c, char name, const char **val, size_t *vlen)
{
	if (c->end - c->p < 2 || c->p[0] != name || c->p[1] != '=')
		return false;
	const char *v = c->p + 2;
	const char *comma = memchr(v, ',', (size_t)(c->end - v));
	const char *stop = comma ? comma : c->end;
	*val = v;
	*vlen = (size_t)(stop - v);
	c->p = comma ? comma + 1 : c->end;
	return true;
}

/* Write fmt into err (when there is room) and return false, so callers can `return fail(...)`. */
__attribute__((format(printf, 4, 5))) static bool fail(struct scram_client *sc, char *err,
						       size_t errlen, const char *fmt, ...)
{
	if (sc)
		sc->state = SCRAM_CLIENT_FAILED;
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* ---- client ---- */

const char *scram_client_state_name(enum scram_client_state state)
{
	switch (state) {
	case SCRAM_CLIENT_NEW:
		return "new";
	case SCRAM_CLIENT_FIRST_SENT:
		return "first-sent";
	case SCRAM_CLIENT_FINAL_SENT:
		return "final-sent";
	case SCRAM_CLIENT_DONE:
		return "done";
	case SCRAM_CLIENT_FAILED:
		return "failed";
	}
	return "unknown";
}

/* Reset sc and set its nonce (given or random); the common part of both inits. */
static bool client_start(struct scram_client *sc, const char *nonce)
{
	memset(sc, 0, sizeof(*sc));
	sc->state = SCRAM_CLIENT_FAILED;
	if (nonce) {
		size_t n = strlen(nonce);
		if (n == 0 || n > SCRAM_NONCE_MAX || !nonce_chars_ok(nonce, n))
			return false;
		memcpy(sc->nonce, nonce, n + 1);
	} else {
		uint8_t raw[SCRAM_RAW_NONCE_LEN];
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return false;
		/* base64 never yields ',' so the encoding is a valid nonce as is. */
		if (!base64_encode(raw, sizeof(raw), sc->nonce, sizeof(sc->nonce), NULL))
			return false;
	}
	sc->state = SCRAM_CLIENT_NEW;
	return true;
}

bool scram_client_init(struct scram_client *sc, const char *password, const char *nonce)
{
	if (!client_start(sc, nonce))
		return false;
	sc->password = strdup(password);
	if (!sc->password) {
		sc->state = SCRAM_CLIENT_FAILED;
		return false;
	}
	return true;
}

bool scram_client_init_keys(struct scram_client *sc, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN], const char *nonce)
{
	if (!client_start(sc, nonce))
		return false;
	memcpy(sc->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(sc->server_key, server_key, SCRAM_KEY_LEN);
	sc->have_keys = true;
	return true;
}

/* Append the saslname form of user ('=' -> "=3D", ',' -> "=2C") at buf[*n], within cap. */
static bool append_saslname(char *buf, size_t cap, size_t *n, const char *user)
{
	for (const char *u = user; *u; u++) {
		const char *piece = *u == '=' ? "=3D" : *u == ',' ? "=2C" : NULL;
		size_t plen = piece ? 3 : 1;
		if (cap - *n < plen)
			return false;
		memcpy(buf + *n, piece ? piece : u, plen);
		*n += plen;
	}
	return true;
}

bool scram_client_first_message(struct scram_client *sc, const char *user, char *out, size_t outlen,
				size_t *outn)
{
	if (sc->state != SCRAM_CLIENT_NEW)
		return fail(sc, NULL, 0, "out of order");

	char *bare = sc->client_first_bare;
	size_t cap = sizeof(sc->client_first_bare);
	size_t n = 2;
	memcpy(bare, "n=", 2);
	if (!append_saslname(bare, cap, &n, user ? user : ""))
		return fail(sc, NULL, 0, "user too long");
	int w = snprintf(bare + n, cap - n, ",r=%s", sc->nonce);
	if (w < 0 || (size_t)w >= cap - n)
		return fail(sc, NULL, 0, "user too long");
	n += (size_t)w;
	sc->client_first_bare_len = n;

	/* GS2 header "n,,": no channel binding, no authzid. */
	if (outlen < 3 + n + 1)
		return fail(sc, NULL, 0, "output buffer too small");
	memcpy(out, "n,,", 3);
	memcpy(out + 3, bare, n);
	out[3 + n] = '\0';
	*outn = 3 + n;
	sc->state = SCRAM_CLIENT_FIRST_SENT;
	return true;
}

/* What the server-first message tells the client. */
struct server_first {
	const char *nonce;
	size_t nonce_len;
	uint8_t salt[SCRAM_MESSAGE_MAX];
	size_t salt_len;
	int iterations;
};

static bool parse_server_first(struct scram_client *sc, const char *msg, size_t len,
			       struct server_first *sf, char *err, size_t errlen)
{
	struct cursor c = { msg, msg + len };
	const char *v;
	size_t vlen;

	if (len >= 2 && msg[0] == 'm' && msg[1] == '=')
		return fail(sc, err, errlen,
			    "server-first-message requires an unsupported extension");

	if (!take_attr(&c, 'r', &sf->nonce, &sf->nonce_len))
		return fail(sc, err, errlen, "malformed server-first-message: expected r=");
	size_t ours = strlen(sc->nonce);
	if (sf->nonce_len <= ours || memcmp(sf->nonce, sc->nonce, ours) != 0)
		return fail(sc, err, errlen, "server nonce does not extend the client nonce");
	if (!nonce_chars_ok(sf->nonce, sf->nonce_len))
		return fail(sc, err, errlen, "malformed server-first-message: invalid nonce");

	if (!take_attr(&c, 's', &v, &vlen))
		return fail(sc, err, errlen, "malformed server-first-message: expected s=");
	if (!base64_decode(v, vlen, sf->salt, sizeof(sf->salt), &sf->salt_len) || sf->salt_len == 0)
		return fail(sc, err, errlen, "malformed server-first-message: invalid salt");

	if (!take_attr(&c, 'i', &v, &vlen))
		return fail(sc, err, errlen, "malformed server-first-message: expected i=");
	if (!parse_count(v, vlen, SCRAM_MAX_ITERATIONS, &sf->iterations))
		return fail(sc, err, errlen,
			    "unacceptable iteration count in server-first-message (1..%d)",
			    SCRAM_MAX_ITERATIONS);
	/* Whatever follows is extensions, which RFC 5802 lets a client ignore. */
	return true;
}

/* ClientProof and the expected ServerSignature for auth (the AuthMessage), from sc's keys. */
static bool compute_proof(struct scram_client *sc, const char *auth, size_t auth_len,
			  uint8_t proof[SCRAM_KEY_LEN])
{
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t client_sig[SCRAM_KEY_LEN];
	bool ok = sha256(sc->client_key, SCRAM_KEY_LEN, stored_key) &&
		  hmac_sha256(stored_key, SCRAM_KEY_LEN, auth, auth_len, client_sig) &&
		  hmac_sha256(sc->server_key, SCRAM_KEY_LEN, auth, auth_len, sc->server_signature);
	for (int i = 0; ok && i < SCRAM_KEY_LEN; i++)
		proof[i] = sc->client_key[i] ^ client_sig[i];
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	return ok;
}

/* The cache slot holding keys for this password digest, salt and count; NULL when none. */
static struct scram_derived *cache_find(struct scram_derived_cache *cache,
					const uint8_t digest[SCRAM_KEY_LEN],
					const struct server_first *sf)
{
	for (int i = 0; i < SCRAM_DERIVED_SLOTS; i++) {
		struct scram_derived *d = &cache->slot[i];

		if (d->valid && d->iterations == sf->iterations && d->salt_len == sf->salt_len &&
		    memcmp(d->salt, sf->salt, sf->salt_len) == 0 &&
		    CRYPTO_memcmp(d->password_digest, digest, SCRAM_KEY_LEN) == 0)
			return d;
	}
	return NULL;
}

/* Remember sc's fresh keys in the empty or least recently used slot. */
static void cache_store(struct scram_derived_cache *cache, const uint8_t digest[SCRAM_KEY_LEN],
			const struct server_first *sf, const struct scram_client *sc)
{
	struct scram_derived *d = &cache->slot[0];

	if (sf->salt_len > SCRAM_SALT_MAX)
		return;
	for (int i = 1; i < SCRAM_DERIVED_SLOTS && d->valid; i++) {
		if (!cache->slot[i].valid || cache->slot[i].used < d->used)
			d = &cache->slot[i];
	}
	d->valid = true;
	d->used = ++cache->clock;
	d->iterations = sf->iterations;
	d->salt_len = sf->salt_len;
	memcpy(d->salt, sf->salt, sf->salt_len);
	memcpy(d->password_digest, digest, SCRAM_KEY_LEN);
	memcpy(d->client_key, sc->client_key, SCRAM_KEY_LEN);
	memcpy(d->server_key, sc->server_key, SCRAM_KEY_LEN);
}

/* Derive the keys (or find them in the cache) once the salt is known, then drop the password. */
static bool derive_keys(struct scram_client *sc, const struct server_first *sf)
{
	uint8_t digest[SCRAM_KEY_LEN];
	struct scram_derived *hit = NULL;
	bool ok;

	if (sc->have_keys)
		return true;
	ok = sha256((const uint8_t *)sc->password, strlen(sc->password), digest);
	if (ok && sc->cache)
		hit = cache_find(sc->cache, digest, sf);
	if (hit) {
		memcpy(sc->client_key, hit->client_key, SCRAM_KEY_LEN);
		memcpy(sc->server_key, hit->server_key, SCRAM_KEY_LEN);
		hit->used = ++sc->cache->clock;
		sc->keys_from_cache = true;
	} else if (ok) {
		ok = keys_from_password(sc->password, sf->salt, sf->salt_len, sf->iterations,
					sc->client_key, sc->server_key);
		if (ok && sc->cache)
			cache_store(sc->cache, digest, sf, sc);
	}
	OPENSSL_cleanse(digest, sizeof(digest));
	OPENSSL_cleanse(sc->password, strlen(sc->password));
	free(sc->password);
	sc->password = NULL;
	sc->have_keys = ok;
	return ok;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static bool build_auth_message(const struct scram_client *sc, const char *final, size_t final_len,
			       char *auth, size_t cap, size_t *auth_len)
{
	size_t bare = sc->client_first_bare_len, first = sc->server_first_len;
	size_t n = bare + 1 + first + 1 + final_len;
	if (n > cap)
		return false;
	memcpy(auth, sc->client_first_bare, bare);
	auth[bare] = ',';
	memcpy(auth + bare + 1, sc->server_first, first);
	auth[bare + 1 + first] = ',';
	memcpy(auth + bare + 2 + first, final, final_len);
	*auth_len = n;
	return true;
}

bool scram_client_final_message(struct scram_client *sc, const char *server_first, size_t len,
				char *out, size_t outlen, size_t *outn, char *err, size_t errlen)
{
	if (sc->state != SCRAM_CLIENT_FIRST_SENT)
		return fail(sc, err, errlen, "SCRAM exchange out of order (%s)",
			    scram_client_state_name(sc->state));
	if (len >= sizeof(sc->server_first))
		return fail(sc, err, errlen, "server-first-message too long (%zu bytes)", len);
	if (memchr(server_first, '\0', len))
		return fail(sc, err, errlen, "malformed server-first-message: NUL byte");

	struct server_first sf;
	if (!parse_server_first(sc, server_first, len, &sf, err, errlen))
		return false;
	/* Only a derivation costs; keys given whole (pass-through) take any count. */
	if (!sc->have_keys && sc->max_iterations > 0 && sf.iterations > sc->max_iterations) {
		sc->refused_iterations = true;
		return fail(sc, err, errlen,
			    "server asks for %d SCRAM iterations, more than the %d allowed",
			    sf.iterations, sc->max_iterations);
	}
	memcpy(sc->server_first, server_first, len);
	sc->server_first_len = len;

	/* client-final-without-proof, then ",p=<proof>" appended in place. */
	int w = snprintf(out, outlen, CHANNEL_BINDING ",r=%.*s", (int)sf.nonce_len, sf.nonce);
	if (w < 0 || (size_t)w >= outlen)
		return fail(sc, err, errlen, "client-final-message does not fit the buffer");
	size_t without_proof = (size_t)w;

	char auth[3 * SCRAM_MESSAGE_MAX];
	size_t auth_len;
	if (!build_auth_message(sc, out, without_proof, auth, sizeof(auth), &auth_len))
		return fail(sc, err, errlen, "AuthMessage too long");

	uint8_t proof[SCRAM_KEY_LEN];
	if (!derive_keys(sc, &sf) || !compute_proof(sc, auth, auth_len, proof)) {
		OPENSSL_cleanse(proof, sizeof(proof));
		return fail(sc, err, errlen, "SCRAM key derivation failed in libcrypto");
	}

	size_t n = without_proof;
	bool fits = outlen - n > 3;
	if (fits) {
		memcpy(out + n, ",p=", 3);
		n += 3;
		size_t plen;
		fits = base64_encode(proof, sizeof(proof), out + n, outlen - n, &plen);
		n += fits ? plen : 0;
	}
	OPENSSL_cleanse(proof, sizeof(proof));
	if (!fits)
		return fail(sc, err, errlen, "client-final-message does not fit the buffer");
	*outn = n;
	sc->state = SCRAM_CLIENT_FINAL_SENT;
	return true;
}

/* Report a server's "e=" error, keeping only printable ASCII so logs stay one clean line. */
static bool fail_server_error(struct scram_client *sc, const char *v, size_t vlen, char *err,
			      size_t errlen)
{
	char clean[128];
	size_t n = vlen < sizeof(clean) - 1 ? vlen : sizeof(clean) - 1;
	for (size_t i = 0; i < n; i++)
		clean[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
	clean[n] = '\0';
	return fail(sc, err, errlen, "server reported SCRAM error \"%s\"", clean);
}

bool scram_client_verify_final(struct scram_client *sc, const char *server_final, size_t len,
			       char *err, size_t errlen)
{
	if (sc->state != SCRAM_CLIENT_FINAL_SENT)
		return fail(sc, err, errlen, "SCRAM exchange out of order (%s)",
			    scram_client_state_name(sc->state));

	struct cursor c = { server_final, server_final + len };
	const char *v;
	size_t vlen;
	if (take_attr(&c, 'e', &v, &vlen))
		return fail_server_error(sc, v, vlen, err, errlen);
	if (!take_attr(&c, 'v', &v, &vlen))
		return fail(sc, err, errlen, "malformed server-final-message: expected v=");

	uint8_t sig[SCRAM_KEY_LEN];
	size_t siglen = 0;
	if (!base64_decode(v, vlen, sig, sizeof(sig), &siglen) || siglen != SCRAM_KEY_LEN)
		return fail(sc, err, errlen, "malformed server-final-message: invalid signature");
	if (CRYPTO_memcmp(sig, sc->server_signature, SCRAM_KEY_LEN) != 0)
		return fail(sc, err, errlen,
			    "server signature does not match: "
			    "the server does not know the password");
	sc->state = SCRAM_CLIENT_DONE;
	return true;
}

void scram_client_limit(struct scram_client *sc, int max_iterations,
			struct scram_derived_cache *cache)
{
	sc->max_iterations = max_iterations;
	sc->cache = cache;
}

void scram_derived_clear(struct scram_derived_cache *cache)
{
	OPENSSL_cleanse(cache, sizeof(*cache));
}

void scram_client_clear(struct scram_client *sc)
{
	if (sc->password) {
		OPENSSL_cleanse(sc->password, strlen(sc->password));
		free(sc->password);
	}
	OPENSSL_cleanse(sc, sizeof(*sc));
	sc->password = NULL;
	sc->state = SCRAM_CLIENT_FAILED;
}

/* ---- stored secrets and the server side ---- */

/* Decode exactly want bytes of base64 from s[0..n). */
static bool decode_exact(const char *s, size_t n, uint8_t *out, size_t want)
{
	size_t got = 0;
	return base64_decode(s, n, out, want, &got) && got == want;
}

bool scram_parse_secret(const char *secret, struct scram_secret *out)
{
	size_t plen = strlen(SECRET_PREFIX);
	if (strncmp(secret, SECRET_PREFIX, plen) != 0)
		return false;
	const char *iter = secret + plen;
	const char *colon1 = strchr(iter, ':');
	const char *dollar = colon1 ? strchr(colon1, '$') : NULL;
	const char *colon2 = dollar ? strchr(dollar, ':') : NULL;
	if (!colon2)
		return false;
	const char *salt = colon1 + 1;
	const char *stored = dollar + 1;
	const char *server = colon2 + 1;

	return parse_count(iter, (size_t)(colon1 - iter), INT_MAX, &out->iterations) &&
	       base64_decode(salt, (size_t)(dollar - salt), out->salt, sizeof(out->salt),
			     &out->salt_len) &&
	       out->salt_len > 0 &&
	       decode_exact(stored, (size_t)(colon2 - stored), out->stored_key, SCRAM_KEY_LEN) &&
	       decode_exact(server, strlen(server), out->server_key, SCRAM_KEY_LEN);
}

bool scram_make_secret_salted(const char *password, int iterations, const uint8_t *salt,
			      size_t salt_len, char *out, size_t outlen)
{
	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS || salt_len == 0 ||
	    salt_len > SCRAM_SALT_MAX)
		return false;

	uint8_t client_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
	char salt64[SCRAM_SALT_MAX / 3 * 4 + 8], stored64[64], server64[64];
	bool ok = keys_from_password(password, salt, salt_len, iterations, client_key,
				     server_key) &&
		  sha256(client_key, SCRAM_KEY_LEN, stored_key) &&
		  base64_encode(salt, salt_len, salt64, sizeof(salt64), NULL) &&
		  base64_encode(stored_key, SCRAM_KEY_LEN, stored64, sizeof(stored64), NULL) &&
		  base64_encode(server_key, SCRAM_KEY_LEN, server64, sizeof(server64), NULL);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	if (!ok)
		return false;

	int w = snprintf(out, outlen, SECRET_PREFIX "%d:%s$%s:%s", iterations, salt64, stored64,
			 server64);
	if (w < 0 || (size_t)w >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return false;
	}
	return true;
}

bool scram_make_secret(const char *password, int iterations, char *out, size_t outlen)
{
	uint8_t salt[SCRAM_SALT_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return false;
	return scram_make_secret_salted(password, iterations, salt, sizeof(salt), out, outlen);
}

bool scram_verify_client_proof(const struct scram_secret *s, const char *auth_message, size_t len,
			       const uint8_t proof[SCRAM_KEY_LEN],
			       uint8_t client_key_out[SCRAM_KEY_LEN])
{
	uint8_t client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], hashed[SCRAM_KEY_LEN];
	bool ok = hmac_sha256(s->stored_key, SCRAM_KEY_LEN, auth_message, len, client_sig);
	for (int i = 0; ok && i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	ok = ok && sha256(client_key, SCRAM_KEY_LEN, hashed) &&
	     CRYPTO_memcmp(hashed, s->stored_key, SCRAM_KEY_LEN) == 0;
	if (ok && client_key_out)
		memcpy(client_key_out, client_key, SCRAM_KEY_LEN);
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(hashed, sizeof(hashed));
	return ok;
}

bool scram_server_signature(const struct scram_secret *s, const char *auth_message, size_t len,
			    uint8_t out[SCRAM_KEY_LEN])
{
	return hmac_sha256(s->server_key, SCRAM_KEY_LEN, auth_message, len, out);
}

bool scram_secret_matches(const char *secret, const char *password)
{
	struct scram_secret want, got;
	char computed[SCRAM_SECRET_MAX];
	bool ok;

	if (!scram_parse_secret(secret, &want) ||
	    !scram_make_secret_salted(password, want.iterations, want.salt, want.salt_len, computed,
				      sizeof(computed)) ||
	    !scram_parse_secret(computed, &got))
		return false;
	ok = CRYPTO_memcmp(want.stored_key, got.stored_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(&got, sizeof(got));
	OPENSSL_cleanse(computed, sizeof(computed));
	return ok;
}
