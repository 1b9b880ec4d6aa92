/*
 * server/login: opening a server connection — resolve the database entry's host (asynchronously,
 * through ev/dns), connect (with TLS per server_tls_sslmode, inside ev/conn), send
 * the startup packet, answer the server's authentication (trust, cleartext, md5, SCRAM-SHA-256)
 * with the entry's or the auth_file's password, and collect parameters until ReadyForQuery.
 *
 * The server is not trusted with more than server_auth_methods allows: a method it asks for that
 * is not allowed fails the login before anything derived from the password is sent, and SCRAM
 * derives keys only up to server_scram_max_iterations (the derivation runs on the event loop),
 * once per user, salt and count. Messages are taken only in the order PostgreSQL sends them:
 * nothing but authentication before AuthenticationOk, no ReadyForQuery before it.
 */
#include "server/login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/secret.h"
#include "auth/userlist.h"
#include "config/config.h"
#include "core/log.h"
#include "ev/dns.h"
#include "pool/address.h"
#include "pool/pool.h"
#include "proto/be.h"
#include "proto/build.h"

static const char *server_dbname(const struct server *s)
{
	const struct db_entry *e = s->pool->db->entry;

	return e && *e->dbname ? e->dbname : s->pool->db->name;
}

/* Connecting or logging in failed: why (sqlstate, err) reaches the pool, unless another host may do. */
static void connect_failed(struct server *s, const char *sqlstate, const char *err, const char *why)
{
	if (!pool_server_host_failed(s))
		pool_server_login_failed(s, sqlstate, err);
	server_close(s, why);
}

/* A unix socket path for the entry's socket directory into s->sa. */
static bool server_unix_addr(struct server *s, const char *dir, int port, char *err, size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&s->sa;

	sun->sun_family = AF_UNIX;
	if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d", dir, port) >=
	    sizeof(sun->sun_path)) {
		snprintf(err, errlen, "unix socket path too long");
		return false;
	}
	s->salen = sizeof(*sun);
	snprintf(s->addr, sizeof(s->addr), "%s", sun->sun_path);
	return true;
}

static void start_failed(struct server *s, const char *err, const char *why)
{
	server_log(LOG_LVL_WARNING, s, "%s", err);
	connect_failed(s, "08006", err, why);
}

/*
 * Connect to the database entry's host: a unix socket directory (starts with '/'), an address,
 * or a name that ev/dns resolves without blocking (on_connected follows either way).
 */
bool server_login_start(struct server *s)
{
	const char *host = s->host;
	int port = s->port;
	char err[400];
	int errnum = 0;
	bool started;

	if (host[0] == '/') {
		if (!server_unix_addr(s, host, port, err, sizeof(err))) {
			start_failed(s, err, "bad socket path");
			return false;
		}
		started = conn_connect(&s->conn, (struct sockaddr *)&s->sa, s->salen, &errnum);
	} else {
		snprintf(s->addr, sizeof(s->addr), "%s:%d", host, port);
		if (*s->env->tls && !conn_use_tls(&s->conn, *s->env->tls, host)) {
			snprintf(err, sizeof(err), "could not set up TLS to server %s: %s", s->addr,
				 conn_error(&s->conn) ? conn_error(&s->conn) : "unknown error");
			start_failed(s, err, "TLS setup failed");
			return false;
		}
		started = conn_connect_name(&s->conn, *s->env->dns, host, port, &errnum);
	}
	if (!started) {
		if (!errnum && conn_error(&s->conn))
			snprintf(err, sizeof(err), "%s", conn_error(&s->conn));
		else
			snprintf(err, sizeof(err), "could not connect to server %s: %s", s->addr,
				 strerror(errnum));
		start_failed(s, err, "connect failed");
		return false;
	}
	server_log(LOG_LVL_DEBUG, s, "connecting");
	return true;
}

/* PostgreSQL 14 and later report in_hot_standby at login: the server's own word on its role. */
static void note_hot_standby(struct server *s, const uint8_t *body, size_t len)
{
	const char *name, *value;

	if (be_parse_parameter_status(body, len, &name, &value) &&
	    strcmp(name, "in_hot_standby") == 0)
		s->in_hot_standby = strcmp(value, "on") == 0;
}

/*
 * Fencing: a connection opened to the confirmed primary that finds a standby (a demotion
 * pgmux has not seen yet) must not take writes. The member is re-checked at once and the
 * connection closed; waiting clients are re-routed when the topology catches up.
 */
static bool fenced_ok(struct server *s)
{
	if (!s->in_hot_standby || !pool_server_fenced(s))
		return true;
	server_log(LOG_LVL_WARNING, s, "the cluster's primary says it is a standby: fencing it");
	server_close(s, "primary turned out to be a standby");
	return false;
}

static void send_startup(struct server *s)
{
	const struct db_entry *e = s->pool->db->entry;
	const char *pairs[16];
	int n = 0;
	struct msgbuf mb;

	pairs[n++] = "user";
	pairs[n++] = s->pool->user->name;
	pairs[n++] = "database";
	pairs[n++] = server_dbname(s);
	if (e && *e->client_encoding) {
		pairs[n++] = "client_encoding";
		pairs[n++] = e->client_encoding;
	}
	if (e && *e->datestyle) {
		pairs[n++] = "DateStyle";
		pairs[n++] = e->datestyle;
	}
	if (e && *e->timezone) {
		pairs[n++] = "TimeZone";
		pairs[n++] = e->timezone;
	}
	if (e && *e->application_name) {
		pairs[n++] = "application_name";
		pairs[n++] = e->application_name;
	}
	pairs[n] = NULL;
	mb_init(&mb);
	build_startup(&mb, pairs);
	conn_write(&s->conn, mb.data, mb.len);
	mb_free(&mb);
}

void server_login_connected(struct server *s, bool ok, int errnum)
{
	char err[512];

	if (!ok && !errnum && conn_error(&s->conn)) {
		/* The host name did not resolve. */
		snprintf(err, sizeof(err), "%s", conn_error(&s->conn));
		start_failed(s, err, "resolve failed");
		return;
	}
	if (!ok && conn_error(&s->conn)) {
		/* TCP was up; the TLS negotiation failed (refused, or the certificate was wrong). */
		snprintf(err, sizeof(err), "could not connect to server %s: %s", s->addr,
			 conn_error(&s->conn));
		start_failed(s, err, "TLS failed");
		return;
	}
	if (!ok) {
		snprintf(err, sizeof(err), "could not connect to server %s: %s", s->addr,
			 strerror(errnum));
		start_failed(s, err, "connect failed");
		return;
	}
	if (s->sa.ss_family != AF_UNIX) {
		/* Where a name led (for cancel requests and to notice when it moves). */
		if (!conn_peer_addr(&s->conn, &s->sa, &s->salen))
			s->salen = 0;
		else if (dns_is_name(s->host))
			pool_server_address_known(s);
	}
	pool_server_connected(s);
	send_startup(s);
}

/* u's cache of derived SCRAM keys, made on first use. NULL (out of memory): derive every time. */
static struct scram_derived_cache *user_key_cache(struct pool_user *u)
{
	if (!u->server_scram_keys)
		u->server_scram_keys = calloc(1, sizeof(*u->server_scram_keys));
	return u->server_scram_keys;
}

void server_login_forget_user(struct pool_user *u)
{
	if (!u->server_scram_keys)
		return;
	scram_derived_clear(u->server_scram_keys);
	free(u->server_scram_keys);
	u->server_scram_keys = NULL;
}

/* The password for server logins: the database entry's, else the auth_file's. NULL if none. */
static const char *server_password(const struct server *s)
{
	const struct db_entry *e = s->pool->db->entry;
	const struct userlist *ul = (*s->env->cfg)->userlist;
	const char *secret = ul ? userlist_find(ul, s->pool->user->name) : NULL;

	if (e && *e->password)
		return e->password;
	if (secret && secret_kind_of(secret) == SECRET_SCRAM && *s->pool->user->proven_password)
		return s->pool->user->proven_password;
	if (!secret && *s->pool->user->queried_secret)
		return s->pool->user->queried_secret;
	return secret;
}

static void login_failed(struct server *s, const char *sqlstate, const char *msg)
{
	server_log(LOG_LVL_WARNING, s, "login failed: %s", msg);
	connect_failed(s, sqlstate, msg, "login failed");
}

/* The name a method has in server_auth_methods. */
static const char *method_name(unsigned method)
{
	switch (method) {
	case SERVER_AUTH_PASSWORD:
		return "password";
	case SERVER_AUTH_MD5:
		return "md5";
	case SERVER_AUTH_SCRAM:
		return "scram-sha-256";
	default:
		return "none";
	}
}

/*
 * May the server make pgmux prove the password this way (server_auth_methods)? When not, the
 * login fails (08004: the server asked for something pgmux will not do) with a message naming
 * the setting to change. Cleartext under "auto" needs a verified certificate: without one,
 * whoever answers on the server's address would get the password itself.
 */
static bool method_allowed(struct server *s, unsigned method)
{
	const struct config *cfg = server_cfg(s);
	unsigned allowed;
	char msg[400];

	if (!config_server_auth_methods(cfg->server_auth_methods, &allowed))
		allowed = 0; /* config_validate() refuses such a value: unreachable */
	if (allowed & method)
		return true;
	if (method == SERVER_AUTH_PASSWORD && (allowed & SERVER_AUTH_PASSWORD_IF_VERIFIED)) {
		if (conn_tls_verified(&s->conn))
			return true;
		snprintf(
			msg, sizeof(msg),
			"server asked for the password in clear text, which server_auth_methods = %s "
			"allows only when the server's certificate was verified: set server_tls_sslmode "
			"= verify-full, or add password to server_auth_methods",
			cfg->server_auth_methods);
	} else {
		snprintf(
			msg, sizeof(msg),
			"server asked for %s authentication, which server_auth_methods = %s does not "
			"allow: add %s to server_auth_methods to accept it",
			method_name(method), cfg->server_auth_methods, method_name(method));
	}
	login_failed(s, "08004", msg);
	return false;
}

/*
 * Start the SCRAM exchange as the pool's user u: with password when it is a plaintext one, else
 * with the keys a client of u proved (SCRAM pass-through, client/login.c). False when neither is
 * available (or on a libcrypto failure); sc then needs no clearing.
 */
static bool scram_start(const struct pool_user *u, const char *password, struct scram_client *sc)
{
	if (password && secret_kind_of(password) == SECRET_PLAIN)
		return scram_client_init(sc, password, NULL);
	if (u->scram_keys_set)
		return scram_client_init_keys(sc, u->scram_client_key, u->scram_server_key, NULL);
	return false;
}

static bool send_sasl_initial(struct server *s, const uint8_t *mechs, size_t len)
{
	const char *pw = server_password(s);
	char out[512];
	size_t outn;
	struct msgbuf mb;
	bool has_scram = false;

	/* The mechanism list is NUL-separated names ending with an empty one. */
	for (size_t i = 0; i < len && mechs[i];) {
		const char *m = (const char *)mechs + i;

		if (strcmp(m, "SCRAM-SHA-256") == 0)
			has_scram = true;
		i += strnlen(m, len - i) + 1;
	}
	if (!has_scram) {
		login_failed(s, "08P01", "server offers no supported SASL mechanism");
		return false;
	}
	s->scram = calloc(1, sizeof(*s->scram));
	/* A plaintext password, or the keys a client proved (SCRAM pass-through: client/login.c). */
	if (s->scram && !scram_start(s->pool->user, pw, s->scram)) {
		login_failed(
			s, "28P01",
			"no plaintext password or proven SCRAM keys for SCRAM login to the server");
		return false;
	}
	/* PBKDF2 runs on the loop: bounded, and done once per user, salt and count. */
	if (s->scram)
		scram_client_limit(s->scram, server_cfg(s)->server_scram_max_iterations,
				   user_key_cache(s->pool->user));
	if (!s->scram || !scram_client_first_message(s->scram, "", out, sizeof(out), &outn)) {
		login_failed(s, "XX000", "SCRAM initialisation failed");
		return false;
	}
	mb_init(&mb);
	build_sasl_initial(&mb, "SCRAM-SHA-256", out, outn);
	conn_write(&s->conn, mb.data, mb.len);
	mb_free(&mb);
	return true;
}

static bool send_sasl_continue(struct server *s, const uint8_t *data, size_t len)
{
	char out[512], err[160], msg[300];
	size_t outn;
	struct msgbuf mb;

	if (!s->scram) {
		login_failed(s, "08P01",
			     "SCRAM continuation from the server without a SCRAM exchange");
		return false;
	}
	if (!scram_client_final_message(s->scram, (const char *)data, len, out, sizeof(out), &outn,
					err, sizeof(err))) {
		if (s->scram->refused_iterations) {
			snprintf(msg, sizeof(msg),
				 "%s: raise server_scram_max_iterations to accept it", err);
			login_failed(s, "08004", msg);
		} else {
			snprintf(msg, sizeof(msg), "invalid SCRAM exchange with the server: %s",
				 err);
			login_failed(s, "08P01", msg);
		}
		return false;
	}
	if (s->scram->keys_from_cache)
		server_log(LOG_LVL_DEBUG, s, "SCRAM keys for this salt and iteration count reused");
	mb_init(&mb);
	build_sasl_response(&mb, out, outn);
	conn_write(&s->conn, mb.data, mb.len);
	mb_free(&mb);
	return true;
}

void server_login_forget(struct server *s)
{
	if (s->scram) {
		scram_client_clear(s->scram);
		free(s->scram);
		s->scram = NULL;
	}
}

/* Returns false when the server was closed. */
static bool handle_auth(struct server *s, const uint8_t *body, size_t len)
{
	uint32_t code;
	const uint8_t *data;
	size_t dlen;
	const char *pw = server_password(s);
	struct msgbuf mb;
	char resp[64], err[128];

	if (!be_parse_auth(body, len, &code, &data, &dlen)) {
		login_failed(s, "08P01", "malformed authentication request from server");
		return false;
	}
	if (code != BE_AUTH_OK && code != BE_AUTH_SASL_CONTINUE && code != BE_AUTH_SASL_FINAL)
		s->auth_asked = true;
	switch (code) {
	case BE_AUTH_OK:
		if (s->scram && s->scram->state != SCRAM_CLIENT_DONE) {
			login_failed(s, "08P01", "server skipped SCRAM verification");
			return false;
		}
		/* Trust: the server knows nothing of the password, so it may not be who it claims. */
		if (!s->auth_asked && !method_allowed(s, SERVER_AUTH_NONE))
			return false;
		s->auth_ok = true;
		server_login_forget(s);
		return true;
	case BE_AUTH_CLEARTEXT_PASSWORD:
		if (!method_allowed(s, SERVER_AUTH_PASSWORD))
			return false;
		if (!pw || secret_kind_of(pw) != SECRET_PLAIN) {
			login_failed(s, "28P01", "no plaintext password for the server login");
			return false;
		}
		mb_init(&mb);
		build_password(&mb, pw);
		conn_write(&s->conn, mb.data, mb.len);
		mb_free(&mb);
		return true;
	case BE_AUTH_MD5_PASSWORD:
		if (!method_allowed(s, SERVER_AUTH_MD5))
			return false;
		if (!pw || dlen != 4 || secret_kind_of(pw) == SECRET_SCRAM ||
		    !md5_password_response(s->pool->user->name, pw, data, resp)) {
			login_failed(s, "28P01", "no usable password for md5 login to the server");
			return false;
		}
		mb_init(&mb);
		build_password(&mb, resp);
		conn_write(&s->conn, mb.data, mb.len);
		mb_free(&mb);
		return true;
	case BE_AUTH_SASL:
		if (!method_allowed(s, SERVER_AUTH_SCRAM))
			return false;
		return send_sasl_initial(s, data, dlen);
	case BE_AUTH_SASL_CONTINUE:
		return send_sasl_continue(s, data, dlen);
	case BE_AUTH_SASL_FINAL:
		if (!s->scram || !scram_client_verify_final(s->scram, (const char *)data, dlen, err,
							    sizeof(err))) {
			login_failed(s, "08P01", "server failed SCRAM verification");
			return false;
		}
		return true;
	default:
		snprintf(err, sizeof(err),
			 "unsupported authentication method %u (%s) requested by server", code,
			 be_auth_code_name(code));
		login_failed(s, "08P01", err);
		return false;
	}
}

/*
 * Is a message of this type in its place? Before AuthenticationOk a server only authenticates
 * (or fails, or notices, or negotiates the protocol); after it, it reports parameters, its key
 * and ReadyForQuery. Anything else (ReadyForQuery first would make an unauthenticated session
 * look logged in) is a protocol violation.
 */
static bool login_message_expected(const struct server *s, char type)
{
	if (type == 'E' || type == 'N')
		return true;
	if (!s->auth_ok)
		return type == 'R' || type == 'v';
	return type == 'S' || type == 'K' || type == 'Z';
}

enum conn_action server_login_header(struct server *s, const struct pkt_header *hdr)
{
	char msg[200];

	/* Refused before a byte of it is buffered: a hostile server's huge message costs nothing. */
	if (login_message_expected(s, hdr->type) && !server_message_too_big(s, hdr))
		return CONN_NEED_WHOLE;
	if (login_message_expected(s, hdr->type))
		snprintf(msg, sizeof(msg),
			 "server sent a %u byte message during login, more than "
			 "server_max_held_message (%.0f)",
			 hdr->len, server_cfg(s)->server_max_held_message);
	else
		snprintf(msg, sizeof(msg),
			 "unexpected message type 0x%02x from server %s authentication",
			 (unsigned char)hdr->type, s->auth_ok ? "after" : "before the end of");
	login_failed(s, "08P01", msg);
	return CONN_CLOSED;
}

enum conn_action server_login_packet(struct server *s, const struct pkt_header *hdr,
				     const uint8_t *whole)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	size_t len = hdr->len - PKT_HDR_LEN;
	struct be_error e;

	switch (hdr->type) {
	case 'R':
		return handle_auth(s, body, len) ? CONN_CONSUME : CONN_CLOSED;
	case 'S':
		server_track_parameter(s, body, len, false);
		note_hot_standby(s, body, len);
		return CONN_CONSUME;
	case 'K':
		if (!be_parse_backend_key(body, len, &s->backend_pid, &s->backend_key))
			server_log(LOG_LVL_WARNING, s, "malformed BackendKeyData");
		return CONN_CONSUME;
	case 'E':
		if (!be_parse_error(body, len, &e)) {
			e.sqlstate = "08P01";
			e.message = "malformed error from server";
		}
		login_failed(s, e.sqlstate, e.message);
		return CONN_CLOSED;
	case 'Z':
		s->tx_status = len >= 1 ? (char)body[0] : 'I';
		server_log(LOG_LVL_DEBUG, s, "login done, backend pid %u", s->backend_pid);
		if (!fenced_ok(s))
			return CONN_CLOSED;
		pool_server_login_done(s);
		return CONN_CONSUME;
	default: /* NoticeResponse, NegotiateProtocolVersion: nothing to do */
		return CONN_CONSUME;
	}
}
