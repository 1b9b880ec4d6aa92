/*
 * tls: OpenSSL contexts and per-connection TLS sessions (see ev/tls.h).
 *
 * The session reads and writes the socket through a small BIO of our own, so that bytes pgmux
 * already read before TLS began (a direct-TLS ClientHello sits in the input buffer when the
 * client code recognises it) are handed to OpenSSL first, then the socket is read.
 *
 * Invariants: a conn has c->ssl exactly while it holds a session; the session's BIO points at
 * the conn and never outlives it (tls_conn_free runs from conn_close).
 */
#include "ev/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/log.h"
#include "ev/conn.h"

/* The largest TLS record pgmux writes (see setup_ctx). */
#define TLS_MAX_RECORD 8192

struct tls_ctx {
	SSL_CTX *ctx;
	int mode;
};

/* ALPN protocol list on the wire: length-prefixed names. */
static const unsigned char alpn_postgresql[] = "\x0apostgresql";

static void ssl_error_text(const char *what, char *err, size_t errlen)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s", what, buf);
}

/* "secure" | "all" | "legacy" | a list of tlsv1.0 ... tlsv1.3: the version range. */
static bool parse_protocols(const char *spec, int *lo, int *hi, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		int version;
	} names[] = {
		{ "tlsv1.0", TLS1_VERSION },   { "tlsv1", TLS1_VERSION },
		{ "tlsv1.1", TLS1_1_VERSION }, { "tlsv1.2", TLS1_2_VERSION },
		{ "tlsv1.3", TLS1_3_VERSION },
	};
	char tmp[128], *save = NULL, *tok;

	if (!*spec || !strcasecmp(spec, "secure")) {
		*lo = TLS1_2_VERSION;
		*hi = TLS1_3_VERSION;
		return true;
	}
	if (!strcasecmp(spec, "all") || !strcasecmp(spec, "legacy")) {
		*lo = TLS1_VERSION;
		*hi = TLS1_3_VERSION;
		return true;
	}
	if (strlen(spec) >= sizeof(tmp)) {
		snprintf(err, errlen, "protocols list too long");
		return false;
	}
	snprintf(tmp, sizeof(tmp), "%s", spec);
	*lo = INT32_MAX;
	*hi = 0;
	for (tok = strtok_r(tmp, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcasecmp(tok, names[i].name))
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			snprintf(err, errlen, "unknown TLS protocol \"%s\"", tok);
			return false;
		}
		if (names[i].version < *lo)
			*lo = names[i].version;
		if (names[i].version > *hi)
			*hi = names[i].version;
	}
	if (*hi == 0) {
		snprintf(err, errlen, "empty TLS protocol list");
		return false;
	}
	return true;
}

static bool set_dheparams(SSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	EVP_PKEY *dh = NULL;
	BIO *bio;

	if (!strcasecmp(spec, "none"))
		return true;
	if (!*spec || !strcasecmp(spec, "auto") || !strcasecmp(spec, "legacy")) {
		SSL_CTX_set_dh_auto(ctx, 1);
		return true;
	}
	bio = BIO_new_file(spec, "r");
	if (bio) {
		dh = PEM_read_bio_Parameters(bio, NULL);
		BIO_free(bio);
	}
	if (!dh) {
		char what[300];

		snprintf(what, sizeof(what), "could not load DH parameters from %s", spec);
		ssl_error_text(what, err, errlen);
		return false;
	}
	if (SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
		EVP_PKEY_free(dh);
		ssl_error_text("could not use DH parameters", err, errlen);
		return false;
	}
	return true;
}

/*
 * The private key of key_file, read with the context's passphrase callback (as OpenSSL's own
 * loader would). NULL, with err set, when the file cannot be read as a key.
 */
static EVP_PKEY *read_key(SSL_CTX *ctx, const char *key_file, char *err, size_t errlen)
{
	char what[300];
	EVP_PKEY *key = NULL;
	BIO *bio = BIO_new_file(key_file, "r");

	if (bio) {
		key = PEM_read_bio_PrivateKey(bio, NULL, SSL_CTX_get_default_passwd_cb(ctx),
					      SSL_CTX_get_default_passwd_cb_userdata(ctx));
		BIO_free(bio);
	}
	if (!key) {
		snprintf(what, sizeof(what), "could not load private key %s", key_file);
		ssl_error_text(what, err, errlen);
	}
	return key;
}

/*
 * Certificate and key, each read on its own first, so that a good key that is not the
 * certificate's (or has none yet) is told apart from a file that cannot be used: the first is the
 * state between two admin SETs (TLS_BUILD_UNPAIRED), the second an error (TLS_BUILD_FAILED).
 */
static enum tls_build load_pair(SSL_CTX *ctx, const struct tls_settings *s, char *err,
				size_t errlen)
{
	char what[600];
	EVP_PKEY *key = NULL;
	X509 *cert;

	if (*s->cert_file && SSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != 1) {
		snprintf(what, sizeof(what), "could not load certificate %s", s->cert_file);
		ssl_error_text(what, err, errlen);
		return TLS_BUILD_FAILED;
	}
	if (*s->key_file && !(key = read_key(ctx, s->key_file, err, errlen)))
		return TLS_BUILD_FAILED;
	cert = SSL_CTX_get0_certificate(ctx);
	if (key && cert && X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "private key %s does not match certificate %s", s->key_file,
			 s->cert_file);
		EVP_PKEY_free(key);
		return TLS_BUILD_UNPAIRED;
	}
	if (key && !cert) {
		snprintf(err, errlen, "private key %s has no certificate", s->key_file);
		EVP_PKEY_free(key);
		return TLS_BUILD_UNPAIRED;
	}
	if (key && SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		snprintf(what, sizeof(what), "could not use private key %s", s->key_file);
		ssl_error_text(what, err, errlen);
		EVP_PKEY_free(key);
		return TLS_BUILD_FAILED;
	}
	EVP_PKEY_free(key);
	return TLS_BUILD_OK;
}

/*
 * Common settings: protocol range, ciphers, key and certificate, CA. Every setting is checked
 * even when the pair is unpaired, so that a bad file elsewhere is still reported as a failure.
 */
static enum tls_build setup_ctx(SSL_CTX *ctx, const struct tls_settings *s, bool server, char *err,
				size_t errlen)
{
	int lo, hi;
	char what[300];
	enum tls_build pair;

	if (!parse_protocols(s->protocols, &lo, &hi, err, errlen))
		return TLS_BUILD_FAILED;
	if (SSL_CTX_set_min_proto_version(ctx, lo) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, hi) != 1) {
		ssl_error_text("could not set TLS protocol range", err, errlen);
		return TLS_BUILD_FAILED;
	}
	if (lo < TLS1_2_VERSION)
		SSL_CTX_set_security_level(ctx, 0);
	if (*s->ciphers && strcasecmp(s->ciphers, "default") != 0 &&
	    SSL_CTX_set_cipher_list(ctx, s->ciphers) != 1) {
		snprintf(what, sizeof(what), "bad ciphers \"%s\"", s->ciphers);
		ssl_error_text(what, err, errlen);
		return TLS_BUILD_FAILED;
	}
	if (s->tls13_ciphers && *s->tls13_ciphers && strcasecmp(s->tls13_ciphers, "default") != 0 &&
	    SSL_CTX_set_ciphersuites(ctx, s->tls13_ciphers) != 1) {
		snprintf(what, sizeof(what), "bad TLS 1.3 ciphers \"%s\"", s->tls13_ciphers);
		ssl_error_text(what, err, errlen);
		return TLS_BUILD_FAILED;
	}
	pair = load_pair(ctx, s, err, errlen);
	if (pair == TLS_BUILD_FAILED)
		return TLS_BUILD_FAILED;
	if (*s->ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL) != 1) {
			snprintf(what, sizeof(what), "could not load CA file %s", s->ca_file);
			ssl_error_text(what, err, errlen);
			return TLS_BUILD_FAILED;
		}
		if (server) {
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->ca_file);

			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
	} else if (!server && s->mode >= TLS_VERIFY_CA &&
		   SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_error_text("could not load the system's CA certificates", err, errlen);
		return TLS_BUILD_FAILED;
	}
	/* Moving and partial writes: the output queue may be compacted between retries. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/*
	 * Records no larger than libpq's 8 kB input buffer, as PostgreSQL's own: libpq reads part of
	 * a larger record, OpenSSL keeps the rest decrypted, the socket looks empty, and a client
	 * that waits on the socket (any non-blocking libpq user) waits forever.
	 */
	SSL_CTX_set_max_send_fragment(ctx, TLS_MAX_RECORD);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return pair;
}

/* The server side's ALPN choice: "postgresql" or nothing at all. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel = NULL;

	if (SSL_select_next_proto(&sel, outlen, alpn_postgresql, sizeof(alpn_postgresql) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static struct tls_ctx *wrap(SSL_CTX *ctx, int mode)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (!t) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	t->ctx = ctx;
	t->mode = mode;
	return t;
}

/* What only the context that accepts clients has: DH and ECDH groups, ALPN, client certificates. */
static bool finish_server_ctx(SSL_CTX *ctx, const struct tls_settings *s, char *err, size_t errlen)
{
	if (!set_dheparams(ctx, s->dheparams, err, errlen))
		return false;
	if (*s->ecdhcurve && strcasecmp(s->ecdhcurve, "auto") && strcasecmp(s->ecdhcurve, "none") &&
	    SSL_CTX_set1_groups_list(ctx, s->ecdhcurve) != 1) {
		char what[200];

		snprintf(what, sizeof(what), "bad ecdhcurve \"%s\"", s->ecdhcurve);
		ssl_error_text(what, err, errlen);
		return false;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (s->mode >= TLS_VERIFY_CA)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return true;
}

static enum tls_build build_server(const struct tls_settings *s, struct tls_ctx **out, char *err,
				   size_t errlen)
{
	enum tls_build res;
	SSL_CTX *ctx;

	*out = NULL;
	*err = '\0';
	if (s->mode == TLS_DISABLE)
		return TLS_BUILD_OK;
	if (!*s->key_file && !*s->cert_file) {
		snprintf(err, errlen,
			 "client_tls_key_file and client_tls_cert_file are needed for TLS");
		return TLS_BUILD_FAILED;
	}
	if (s->mode >= TLS_VERIFY_CA && !*s->ca_file) {
		snprintf(err, errlen, "client_tls_ca_file is needed to verify client certificates");
		return TLS_BUILD_FAILED;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_error_text("could not create TLS context", err, errlen);
		return TLS_BUILD_FAILED;
	}
	res = setup_ctx(ctx, s, true, err, errlen);
	if (res != TLS_BUILD_FAILED && !finish_server_ctx(ctx, s, err, errlen))
		res = TLS_BUILD_FAILED;
	/* A certificate alone is half of a pair too: accepting TLS needs its key. */
	if (res == TLS_BUILD_OK && !*s->key_file) {
		snprintf(err, errlen, "certificate %s has no private key", s->cert_file);
		res = TLS_BUILD_UNPAIRED;
	}
	if (res != TLS_BUILD_OK) {
		SSL_CTX_free(ctx);
		return res;
	}
	*out = wrap(ctx, s->mode);
	return *out ? TLS_BUILD_OK : TLS_BUILD_FAILED;
}

static enum tls_build build_client(const struct tls_settings *s, struct tls_ctx **out, char *err,
				   size_t errlen)
{
	enum tls_build res;
	SSL_CTX *ctx;

	*out = NULL;
	*err = '\0';
	if (s->mode == TLS_DISABLE)
		return TLS_BUILD_OK;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		ssl_error_text("could not create TLS context", err, errlen);
		return TLS_BUILD_FAILED;
	}
	res = setup_ctx(ctx, s, false, err, errlen);
	if (res != TLS_BUILD_FAILED &&
	    SSL_CTX_set_alpn_protos(ctx, alpn_postgresql, sizeof(alpn_postgresql) - 1) != 0) {
		ssl_error_text("could not set ALPN", err, errlen);
		res = TLS_BUILD_FAILED;
	}
	if (res != TLS_BUILD_OK) {
		SSL_CTX_free(ctx);
		return res;
	}
	SSL_CTX_set_verify(ctx, s->mode >= TLS_VERIFY_CA ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	*out = wrap(ctx, s->mode);
	return *out ? TLS_BUILD_OK : TLS_BUILD_FAILED;
}

struct tls_ctx *tls_ctx_new_server(const struct tls_settings *s, char *err, size_t errlen)
{
	struct tls_ctx *t;

	return build_server(s, &t, err, errlen) == TLS_BUILD_OK ? t : NULL;
}

struct tls_ctx *tls_ctx_new_client(const struct tls_settings *s, char *err, size_t errlen)
{
	struct tls_ctx *t;

	return build_client(s, &t, err, errlen) == TLS_BUILD_OK ? t : NULL;
}

enum tls_build tls_build_side(const struct tls_settings *s, enum tls_side side,
			      struct tls_ctx **out, char *err, size_t errlen)
{
	char why[400];
	enum tls_build res;

	if (side == TLS_SIDE_CLIENTS)
		res = build_server(s, out, why, sizeof(why));
	else
		res = build_client(s, out, why, sizeof(why));
	if (res != TLS_BUILD_OK)
		snprintf(err, errlen, "%s TLS: %s", side == TLS_SIDE_CLIENTS ? "client" : "server",
			 why);
	return res;
}

bool tls_load_contexts(const struct tls_settings *clients, const struct tls_settings *servers,
		       struct tls_ctx **client_side, struct tls_ctx **server_side, char *err,
		       size_t errlen)
{
	struct tls_ctx *c, *s;

	if (tls_build_side(clients, TLS_SIDE_CLIENTS, &c, err, errlen) != TLS_BUILD_OK)
		return false;
	if (tls_build_side(servers, TLS_SIDE_SERVERS, &s, err, errlen) != TLS_BUILD_OK) {
		tls_ctx_free(c);
		return false;
	}
	*client_side = c;
	*server_side = s;
	return true;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int tls_ctx_mode(const struct tls_ctx *t)
{
	return t ? t->mode : TLS_DISABLE;
}

/* ---- the socket BIO: pre-read bytes first, then the socket ---- */

static int bio_read(BIO *b, char *buf, int len)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (c->tls_pre && c->tls_pre_pos < c->tls_pre_len) {
		uint32_t avail = c->tls_pre_len - c->tls_pre_pos;

		if ((uint32_t)len > avail)
			len = (int)avail;
		memcpy(buf, c->tls_pre + c->tls_pre_pos, (size_t)len);
		c->tls_pre_pos += (uint32_t)len;
		if (c->tls_pre_pos == c->tls_pre_len) {
			free(c->tls_pre);
			c->tls_pre = NULL;
			c->tls_pre_len = c->tls_pre_pos = 0;
		}
		return len;
	}
	n = recv(c->fd, buf, (size_t)len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* Built once; lives as long as the process (OpenSSL has no static BIO_METHOD). */
static BIO_METHOD *conn_bio_method(void)
{
	static BIO_METHOD *m;

	if (!m) {
		m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pgmux conn");
		if (!m)
			return NULL;
		BIO_meth_set_read(m, bio_read);
		BIO_meth_set_write(m, bio_write);
		BIO_meth_set_ctrl(m, bio_ctrl);
		BIO_meth_set_create(m, bio_create);
	}
	return m;
}

/* ---- sessions ---- */

static bool is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

bool tls_conn_new(struct conn *c, struct tls_ctx *t, bool server, bool direct, const char *host)
{
	BIO_METHOD *m = conn_bio_method();
	SSL *ssl;
	BIO *bio;

	if (!m || !(ssl = SSL_new(t->ctx))) {
		conn_set_error(c, "could not create a TLS session");
		ERR_clear_error();
		return false;
	}
	bio = BIO_new(m);
	if (!bio) {
		SSL_free(ssl);
		conn_set_error(c, "could not create a TLS session");
		return false;
	}
	BIO_set_data(bio, c);
	SSL_set_bio(ssl, bio, bio);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (host && *host && host[0] != '/') {
			bool ip = is_ip_literal(host);

			if (!ip)
				SSL_set_tlsext_host_name(ssl, host);
			if (t->mode == TLS_VERIFY_FULL) {
				X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
				int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
					    : X509_VERIFY_PARAM_set1_host(vp, host, 0);

				if (ok != 1) {
					SSL_free(ssl);
					conn_set_error(c, "could not set the host name to verify");
					ERR_clear_error();
					return false;
				}
			}
		}
	}
	c->ssl = ssl;
	c->tls_direct = direct;
	return true;
}

static void record_failure(struct conn *c, SSL *ssl, int rc, const char *what)
{
	unsigned long e = ERR_peek_error();
	char buf[256];
	long vr;

	if (!SSL_is_server(ssl) && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		conn_set_error(c, "%s: certificate verify failed: %s", what,
			       X509_verify_cert_error_string(vr));
	} else if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		conn_set_error(c, "%s: %s", what, buf);
	} else if (SSL_get_error(ssl, rc) == SSL_ERROR_SYSCALL) {
		conn_set_error(c, "%s: %s", what, errno ? strerror(errno) : "connection closed");
	} else {
		conn_set_error(c, "%s failed", what);
	}
	ERR_clear_error();
}

enum tls_step tls_conn_handshake(struct conn *c)
{
	SSL *ssl = c->ssl;
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(ssl);
	if (rc == 1) {
		if (c->tls_direct) {
			const unsigned char *proto = NULL;
			unsigned int plen = 0;

			SSL_get0_alpn_selected(ssl, &proto, &plen);
			if (!plen) {
				conn_set_error(c,
					       "direct TLS connection without ALPN \"postgresql\"");
				return TLS_STEP_FAILED;
			}
		}
		return TLS_STEP_DONE;
	}
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return TLS_STEP_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_STEP_WANT_WRITE;
	default:
		record_failure(c, ssl, rc, "TLS handshake");
		return TLS_STEP_FAILED;
	}
}

long tls_conn_read(struct conn *c, void *buf, size_t len, bool *wants_write)
{
	size_t got = 0;
	int rc;

	*wants_write = false;
	ERR_clear_error();
	errno = 0;
	rc = SSL_read_ex(c->ssl, buf, len, &got);
	if (rc == 1)
		return (long)got;
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*wants_write = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_IO_EOF;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error() && errno == 0) {
			ERR_clear_error();
			return TLS_IO_EOF; /* the peer closed without close_notify */
		}
		/* fall through */
	default:
		record_failure(c, c->ssl, rc, "TLS read");
		return TLS_IO_ERROR;
	}
}

long tls_conn_write(struct conn *c, const void *buf, size_t len, bool *wants_read)
{
	size_t put = 0;
	int rc;

	*wants_read = false;
	ERR_clear_error();
	errno = 0;
	rc = SSL_write_ex(c->ssl, buf, len, &put);
	if (rc == 1)
		return (long)put;
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_WANT_READ:
		*wants_read = true;
		return 0;
	default:
		record_failure(c, c->ssl, rc, "TLS write");
		return TLS_IO_ERROR;
	}
}

bool tls_conn_pending(const struct conn *c)
{
	return c->ssl && SSL_has_pending(c->ssl);
}

void tls_conn_free(struct conn *c)
{
	if (c->ssl) {
		SSL *ssl = c->ssl;

		/* One best-effort close_notify; never waits for the peer's. */
		if (c->tls && c->fd >= 0)
			(void)SSL_shutdown(ssl);
		ERR_clear_error();
		SSL_free(ssl);
		c->ssl = NULL;
	}
	free(c->tls_pre);
	c->tls_pre = NULL;
	c->tls_pre_len = c->tls_pre_pos = 0;
}

bool tls_conn_end_point(const struct conn *c, uint8_t out[64], size_t *len)
{
	SSL *ssl = c->ssl;
	X509 *cert;
	const EVP_MD *md;
	int md_nid = NID_undef, pk_nid;
	unsigned int n = 0;
	bool ok;

	if (!ssl || !c->tls)
		return false;
	/* The certificate of whichever side is the TLS server. */
	if (SSL_is_server(ssl)) {
		cert = SSL_get_certificate(ssl);
		if (cert)
			X509_up_ref(cert);
	} else {
		cert = SSL_get1_peer_certificate(ssl);
	}
	if (!cert)
		return false;
	/* RFC 5929 4.1: the certificate's signature hash, with MD5 and SHA-1 moved up to SHA-256. */
	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) ||
	    md_nid == NID_undef || md_nid == NID_md5 || md_nid == NID_sha1)
		md_nid = NID_sha256;
	md = EVP_get_digestbynid(md_nid);
	ok = md && EVP_MD_get_size(md) <= 64 && X509_digest(cert, md, out, &n) == 1;
	X509_free(cert);
	if (ok)
		*len = n;
	return ok;
}

bool tls_conn_peer_name(const struct conn *c, char *buf, size_t len)
{
	X509 *cert;
	int n;

	if (!c->ssl || !c->tls || !(cert = SSL_get1_peer_certificate(c->ssl)))
		return false;
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)len);
	X509_free(cert);
	/* A name with an embedded NUL would compare as a shorter one: refuse it. */
	return n > 0 && (size_t)n < len && strlen(buf) == (size_t)n;
}

void tls_conn_describe(const struct conn *c, char *buf, size_t len)
{
	if (!c->ssl) {
		snprintf(buf, len, "plain");
		return;
	}
	snprintf(buf, len, "%s/%s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
}

void tls_library_version(char *buf, size_t len)
{
	snprintf(buf, len, "%s", OpenSSL_version(OPENSSL_VERSION));
}
