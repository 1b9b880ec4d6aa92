/*
 * scram_server: the server side of a SCRAM-SHA-256 exchange on top of auth/scram's building
 * blocks.
 *
 * Invariants: NEW -> FIRST_SENT -> DONE, or FAILED on the first error after which every step
 * refuses; client input is bounds-checked before it is copied; a mock exchange looks like a
 * real one on the wire until the final step and never reaches DONE; key material is wiped
 * by scram_server_clear().
 */
#include "auth/scram_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/base64.h"

__attribute__((format(printf, 4, 5))) static enum scram_server_result
malformed(struct scram_server *ss, char *err, size_t errlen, const char *fmt, ...)
{
	ss->state = SCRAM_SERVER_FAILED;
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return SCRAM_SERVER_MALFORMED;
}

/* RFC 5802 "printable": %x21-2B / %x2D-7E. */
static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

bool scram_server_init(struct scram_server *ss, const struct scram_secret *secret,
		       const uint8_t *mock_salt, size_t mock_salt_len, const char *nonce)
{
	memset(ss, 0, sizeof(*ss));
	ss->state = SCRAM_SERVER_FAILED;
	if (secret) {
		ss->secret = *secret;
	} else {
		if (!mock_salt || mock_salt_len == 0 || mock_salt_len > SCRAM_SALT_MAX)
			return false;
		ss->mock = true;
		ss->secret.iterations = SCRAM_DEFAULT_ITERATIONS;
		memcpy(ss->secret.salt, mock_salt, mock_salt_len);
		ss->secret.salt_len = mock_salt_len;
		if (RAND_bytes(ss->secret.stored_key, SCRAM_KEY_LEN) != 1 ||
		    RAND_bytes(ss->secret.server_key, SCRAM_KEY_LEN) != 1)
			return false;
	}
	if (nonce) {
		size_t n = strlen(nonce);
		if (n == 0 || n > SCRAM_NONCE_MAX || !printable(nonce, n))
			return false;
		memcpy(ss->nonce, nonce, n + 1); /* moved behind the client's part later */
	} else {
		uint8_t raw[SCRAM_RAW_NONCE_LEN];
		if (RAND_bytes(raw, sizeof(raw)) != 1 ||
		    !base64_encode(raw, sizeof(raw), ss->nonce, SCRAM_NONCE_MAX + 1, NULL))
			return false;
	}
	ss->state = SCRAM_SERVER_NEW;
	return true;
}

bool scram_server_set_channel_binding(struct scram_server *ss, bool selected, const uint8_t *data,
				      size_t len)
{
	if (len == 0 || len > sizeof(ss->cb_data))
		return false;
	ss->cb_offered = true;
	ss->cb_selected = selected;
	memcpy(ss->cb_data, data, len);
	ss->cb_len = len;
	return true;
}

/* "<name>=" at *p; the value runs to the next ',' or end. Advances past the ','. */
static bool take_attr(const char **p, const char *end, char name, const char **val, size_t *vlen)
{
	const char *s = *p;
	if (end - s < 2 || s[0] != name || s[1] != '=')
		return false;
	const char *v = s + 2;
	const char *comma = memchr(v, ',', (size_t)(end - v));
	*val = v;
	*vlen = (size_t)((comma ? comma : end) - v);
	*p = comma ? comma + 1 : end;
	return true;
}

enum scram_server_result scram_server_first(struct scram_server *ss, const char *msg, size_t len,
					    char *out, size_t outlen, size_t *outn, char *err,
					    size_t errlen)
{
	const char *p = msg, *end = msg + len, *v;
	size_t vlen;

	if (ss->state != SCRAM_SERVER_NEW)
		return malformed(ss, err, errlen, "SCRAM exchange out of order");
	if (memchr(msg, '\0', len))
		return malformed(ss, err, errlen, "malformed SCRAM message: NUL byte");
	if (len < 3)
		return malformed(ss, err, errlen, "malformed SCRAM message: too short");
	/* GS2 header: channel-binding flag, then an (unsupported) authorization identity. */
	if (p[0] == 'p') {
		if (!ss->cb_selected)
			return malformed(
				ss, err, errlen,
				"malformed SCRAM message: the client selected SCRAM-SHA-256 "
				"without channel binding, but the SCRAM message includes channel "
				"binding data");
		if (len < 23 || memcmp(p, "p=tls-server-end-point,", 23) != 0)
			return malformed(ss, err, errlen, "unsupported SCRAM channel-binding type");
		p += 23;
	} else if (p[0] == 'y' && p[1] == ',') {
		if (ss->cb_offered)
			return malformed(
				ss, err, errlen,
				"SCRAM channel binding negotiation error: the client supports "
				"SCRAM channel binding but thinks the server does not, while this "
				"server does support channel binding");
		p += 2;
	} else if (p[0] == 'n' && p[1] == ',') {
		if (ss->cb_selected)
			return malformed(
				ss, err, errlen,
				"malformed SCRAM message: the client selected "
				"SCRAM-SHA-256-PLUS, but the SCRAM message does not include "
				"channel binding data");
		p += 2;
	} else {
		return malformed(ss, err, errlen,
				 "malformed SCRAM message: unexpected channel-binding flag");
	}
	if (p < end && *p == 'a')
		return malformed(ss, err, errlen,
				 "client uses authorization identity, but it is not supported");
	if (p >= end || *p != ',')
		return malformed(ss, err, errlen, "malformed SCRAM message: expected ','");
	p++;
	ss->gs2_len = (size_t)(p - msg);
	memcpy(ss->gs2_header, msg, ss->gs2_len);

	const char *bare = p;
	size_t bare_len = (size_t)(end - bare);
	if (bare_len >= sizeof(ss->client_first_bare))
		return malformed(ss, err, errlen, "SCRAM message too long");
	if (end - p >= 2 && p[0] == 'm' && p[1] == '=')
		return malformed(ss, err, errlen, "client requires an unsupported SCRAM extension");
	/* The user name is ignored: the startup packet names the user, as in PostgreSQL. */
	if (!take_attr(&p, end, 'n', &v, &vlen))
		return malformed(ss, err, errlen, "malformed SCRAM message: expected n=");
	if (!take_attr(&p, end, 'r', &v, &vlen) || vlen == 0)
		return malformed(ss, err, errlen, "malformed SCRAM message: expected r=");
	if (vlen > SCRAM_NONCE_MAX || !printable(v, vlen))
		return malformed(ss, err, errlen, "malformed SCRAM message: invalid nonce");
	memcpy(ss->client_first_bare, bare, bare_len);
	ss->client_first_bare_len = bare_len;

	/* nonce = client part + ours */
	char ours[SCRAM_NONCE_MAX + 1];
	size_t olen = strnlen(ss->nonce, SCRAM_NONCE_MAX);
	memcpy(ours, ss->nonce, olen);
	memcpy(ss->nonce, v, vlen);
	memcpy(ss->nonce + vlen, ours, olen);
	ss->nonce[vlen + olen] = '\0';

	char salt64[SCRAM_SALT_MAX / 3 * 4 + 8];
	if (!base64_encode(ss->secret.salt, ss->secret.salt_len, salt64, sizeof(salt64), NULL))
		return malformed(ss, err, errlen, "salt does not fit");
	int w = snprintf(ss->server_first, sizeof(ss->server_first), "r=%s,s=%s,i=%d", ss->nonce,
			 salt64, ss->secret.iterations);
	if (w < 0 || (size_t)w >= sizeof(ss->server_first) || (size_t)w >= outlen)
		return malformed(ss, err, errlen, "server-first-message does not fit");
	ss->server_first_len = (size_t)w;
	memcpy(out, ss->server_first, (size_t)w + 1);
	*outn = (size_t)w;
	ss->state = SCRAM_SERVER_FIRST_SENT;
	return SCRAM_SERVER_OK;
}

enum scram_server_result scram_server_final(struct scram_server *ss, const char *msg, size_t len,
					    char *out, size_t outlen, size_t *outn, char *err,
					    size_t errlen)
{
	const char *p = msg, *end = msg + len, *v;
	size_t vlen;
	uint8_t cbind[128], expect[128], proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	size_t cblen = 0, plen = 0;
	char auth[3 * SCRAM_MESSAGE_MAX];

	*outn = 0;
	if (outlen)
		out[0] = '\0';
	if (ss->state != SCRAM_SERVER_FIRST_SENT)
		return malformed(ss, err, errlen, "SCRAM exchange out of order");
	if (memchr(msg, '\0', len))
		return malformed(ss, err, errlen, "malformed SCRAM message: NUL byte");
	if (len >= SCRAM_MESSAGE_MAX)
		return malformed(ss, err, errlen, "SCRAM message too long");
	if (!take_attr(&p, end, 'c', &v, &vlen) ||
	    !base64_decode(v, vlen, cbind, sizeof(cbind), &cblen))
		return malformed(ss, err, errlen, "malformed SCRAM message: expected c=");
	/* c= repeats the GS2 header, followed by the binding data when binding is used. */
	memcpy(expect, ss->gs2_header, ss->gs2_len);
	if (ss->cb_selected)
		memcpy(expect + ss->gs2_len, ss->cb_data, ss->cb_len);
	if (cblen != ss->gs2_len + (ss->cb_selected ? ss->cb_len : 0) ||
	    CRYPTO_memcmp(cbind, expect, cblen) != 0)
		return malformed(
			ss, err, errlen,
			"SCRAM channel binding check failed: unexpected channel-binding data");
	if (!take_attr(&p, end, 'r', &v, &vlen))
		return malformed(ss, err, errlen, "malformed SCRAM message: expected r=");
	if (vlen != strlen(ss->nonce) || memcmp(v, ss->nonce, vlen) != 0)
		return malformed(ss, err, errlen, "SCRAM nonce mismatch");
	/* Extensions may follow; the proof is the last attribute. */
	const char *proof_at = NULL;
	for (const char *q = p; q + 2 <= end;) {
		if (q[0] == 'p' && q[1] == '=') {
			proof_at = q;
			break;
		}
		const char *comma = memchr(q, ',', (size_t)(end - q));
		if (!comma)
			break;
		q = comma + 1;
	}
	if (!proof_at)
		return malformed(ss, err, errlen, "malformed SCRAM message: expected p=");
	p = proof_at;
	if (!take_attr(&p, end, 'p', &v, &vlen) || p != end ||
	    !base64_decode(v, vlen, proof, sizeof(proof), &plen) || plen != SCRAM_KEY_LEN)
		return malformed(ss, err, errlen, "malformed SCRAM message: invalid proof");

	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
	size_t without = (size_t)(proof_at - 1 - msg);
	size_t n = ss->client_first_bare_len + 1 + ss->server_first_len + 1 + without;
	if (n > sizeof(auth))
		return malformed(ss, err, errlen, "SCRAM message too long");
	memcpy(auth, ss->client_first_bare, ss->client_first_bare_len);
	auth[ss->client_first_bare_len] = ',';
	memcpy(auth + ss->client_first_bare_len + 1, ss->server_first, ss->server_first_len);
	auth[ss->client_first_bare_len + 1 + ss->server_first_len] = ',';
	memcpy(auth + ss->client_first_bare_len + 2 + ss->server_first_len, msg, without);

	bool ok = scram_verify_client_proof(&ss->secret, auth, n, proof, ss->client_key) &&
		  !ss->mock;
	OPENSSL_cleanse(proof, sizeof(proof));
	if (!ok) {
		ss->state = SCRAM_SERVER_FAILED;
		OPENSSL_cleanse(ss->client_key, sizeof(ss->client_key));
		if (err && errlen)
			snprintf(err, errlen, "invalid SCRAM proof");
		return SCRAM_SERVER_BAD_PROOF;
	}
	size_t slen;
	if (outlen < 3 || !scram_server_signature(&ss->secret, auth, n, sig) ||
	    !base64_encode(sig, sizeof(sig), out + 2, outlen - 2, &slen)) {
		OPENSSL_cleanse(ss->client_key, sizeof(ss->client_key));
		return malformed(ss, err, errlen, "server-final-message does not fit");
	}
	memcpy(out, "v=", 2);
	*outn = 2 + slen;
	ss->state = SCRAM_SERVER_DONE;
	return SCRAM_SERVER_OK;
}

void scram_server_clear(struct scram_server *ss)
{
	OPENSSL_cleanse(ss, sizeof(*ss));
	ss->state = SCRAM_SERVER_FAILED;
}
