/*
 * tls: OpenSSL contexts for both sides of pgmux, and the per-connection TLS state that
 * ev/conn.c drives (handshakes, encrypted reads and writes).
 *
 * A context is built whole from a struct tls_settings; building fails with a reason instead of
 * leaving a half-configured context, so a RELOAD with bad files keeps the previous context.
 * Contexts are reference counted by OpenSSL: a connection that started under an old context
 * keeps it alive until it closes, while new connections take the current one.
 *
 * Only src/ev/ includes this header's I/O part; the rest of pgmux sees contexts as opaque.
 */
#ifndef PGMUX_EV_TLS_H
#define PGMUX_EV_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;

/* Index = the config's sslmode value (see config/config.h enum tls_sslmode). */
enum tls_mode {
	TLS_DISABLE = 0,
	TLS_ALLOW,
	TLS_PREFER,
	TLS_REQUIRE,
	TLS_VERIFY_CA,
	TLS_VERIFY_FULL,
};

/* What a context is built from; strings may be "" (unset), never NULL. */
struct tls_settings {
	int mode; /* enum tls_mode */
	const char *key_file;
	const char *cert_file;
	const char *ca_file;
	const char *protocols;     /* "secure", "all", "legacy", or a list like "tlsv1.2,tlsv1.3" */
	const char *ciphers;       /* TLS 1.2 and older cipher list */
	const char *tls13_ciphers; /* TLS 1.3 cipher suites */
	const char *dheparams;     /* "none", "auto", "legacy", or a PEM file of DH parameters */
	const char *ecdhcurve;     /* "none", "auto", or a list of groups */
};

/*
 * A context for accepting TLS from clients (pgmux is the TLS server). Returns NULL when the mode
 * is disable (err set to "") or when a file or setting is bad (err says why). Caller owns it.
 */
struct tls_ctx *tls_ctx_new_server(const struct tls_settings *s, char *err, size_t errlen);

/*
 * A context for TLS towards PostgreSQL servers (pgmux is the TLS client). Returns NULL when the
 * mode is disable (err set to "") or on a bad file or setting (err says why). Caller owns it.
 */
struct tls_ctx *tls_ctx_new_client(const struct tls_settings *s, char *err, size_t errlen);

/* Which of pgmux's two TLS contexts. */
enum tls_side {
	TLS_SIDE_CLIENTS, /* accepting clients: client_tls_* keys */
	TLS_SIDE_SERVERS, /* towards PostgreSQL servers: server_tls_* keys */
};

/* How building a context went. */
enum tls_build {
	TLS_BUILD_OK,
	/*
	 * Every setting and file is fine on its own, but the key and certificate do not form a pair
	 * (the key is not the certificate's, or one of them is unset): the state between an admin
	 * SET of one and a SET of the other.
	 */
	TLS_BUILD_UNPAIRED,
	TLS_BUILD_FAILED, /* a file cannot be read, a setting is bad, or something is missing */
};

/*
 * One side's context from its settings (the config's client_tls_* or server_tls_* keys, which
 * the caller copies into s). TLS_BUILD_OK: the caller owns *out (NULL when the mode is
 * disable). Otherwise *out is NULL and err names the side and the reason.
 */
enum tls_build tls_build_side(const struct tls_settings *s, enum tls_side side,
			      struct tls_ctx **out, char *err, size_t errlen);

/*
 * Both contexts, accepting clients and towards servers. On success the caller owns
 * *client_side and *server_side (each NULL when its mode is disable). False: nothing is
 * returned and err names the side and the reason (a key and certificate that do not form a
 * pair included).
 */
bool tls_load_contexts(const struct tls_settings *clients, const struct tls_settings *servers,
		       struct tls_ctx **client_side, struct tls_ctx **server_side, char *err,
		       size_t errlen);

/* Drop the caller's reference; connections still using the context keep it alive. NULL ok. */
void tls_ctx_free(struct tls_ctx *t);

/* The mode the context was built for. */
int tls_ctx_mode(const struct tls_ctx *t);

/*
 * Per-connection TLS, for ev/conn.c only. I/O results follow conn's rule: >0 bytes, 0 would
 * block (the wants flags say which way), TLS_IO_ERROR, or TLS_IO_EOF for a clean close.
 */
struct conn;

#define TLS_IO_ERROR (-1)
#define TLS_IO_EOF (-2)

enum tls_step {
	TLS_STEP_DONE,
	TLS_STEP_WANT_READ,
	TLS_STEP_WANT_WRITE,
	TLS_STEP_FAILED, /* conn_error() says why */
};

/*
 * Attach a TLS session to c's socket. server: pgmux accepts (direct: the client began with a
 * ClientHello, so ALPN "postgresql" is required); otherwise pgmux connects and host (may be NULL)
 * is checked against the certificate under verify-full. False (error recorded) on failure.
 */
bool tls_conn_new(struct conn *c, struct tls_ctx *t, bool server, bool direct, const char *host);
enum tls_step tls_conn_handshake(struct conn *c);
long tls_conn_read(struct conn *c, void *buf, size_t len, bool *wants_write);
long tls_conn_write(struct conn *c, const void *buf, size_t len, bool *wants_read);
/* Decrypted bytes wait inside OpenSSL (no socket event will announce them). */
bool tls_conn_pending(const struct conn *c);
void tls_conn_free(struct conn *c);
/* RFC 5929 tls-server-end-point hash of the certificate the TLS server side presented. */
bool tls_conn_end_point(const struct conn *c, uint8_t out[64], size_t *len);
/* The peer certificate's common name into buf; false when there is none or it is too long. */
bool tls_conn_peer_name(const struct conn *c, char *buf, size_t len);
/* "TLSv1.3/TLS_AES_256_GCM_SHA384" into buf (for logs). */
void tls_conn_describe(const struct conn *c, char *buf, size_t len);

/* OpenSSL's own version line ("OpenSSL 3.0.2 15 Mar 2022") at run time, into buf (--version). */
void tls_library_version(char *buf, size_t len);

#endif
