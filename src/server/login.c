/*
 * server/login: opening a server connection — resolve the database entry's host, connect, send
 * the startup packet, answer the server's authentication (trust, cleartext, md5, SCRAM-SHA-256)
 * with the entry's or the auth_file's password, and collect parameters until ReadyForQuery.
 */
#include "server/login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/secret.h"
#include "auth/userlist.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/be.h"
#include "proto/build.h"

static const char *server_dbname(const struct server *s)
{
	const struct db_entry *e = s->pool->db->entry;

	return e && *e->dbname ? e->dbname : s->pool->db->name;
}

/*
 * Resolve the database entry's host. A host starting with '/' is a unix socket directory.
 * Names resolve synchronously for now; numeric addresses (the common case) never block.
 */
static bool server_resolve(struct server *s, char *err, size_t errlen)
{
	const struct db_entry *e = s->pool->db->entry;
	const char *host = e && *e->host ? e->host : "127.0.0.1";
	int port = e && e->port > 0 ? e->port : 5432;
	struct addrinfo hints = { 0 }, *res = NULL;
	char portstr[16];
	int rc;

	if (host[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&s->sa;

		sun->sun_family = AF_UNIX;
		if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d", host, port) >=
		    sizeof(sun->sun_path)) {
			snprintf(err, errlen, "unix socket path too long");
			return false;
		}
		s->salen = sizeof(*sun);
		snprintf(s->addr, sizeof(s->addr), "%s", sun->sun_path);
		return true;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(host, portstr, &hints, &res);
	}
	if (rc != 0 || !res) {
		snprintf(err, errlen, "could not resolve host \"%s\": %s", host, gai_strerror(rc));
		return false;
	}
	memcpy(&s->sa, res->ai_addr, res->ai_addrlen);
	s->salen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(s->addr, sizeof(s->addr), "%s:%d", host, port);
	return true;
}

bool server_login_start(struct server *s)
{
	char err[256];
	int errnum = 0;

	if (!server_resolve(s, err, sizeof(err))) {
		server_log(LOG_LVL_WARNING, s, "%s", err);
		pool_server_login_failed(s->pool, "08006", err);
		server_close(s, "resolve failed");
		return false;
	}
	if (!conn_connect(&s->conn, (struct sockaddr *)&s->sa, s->salen, &errnum)) {
		snprintf(err, sizeof(err), "could not connect to server %s: %s", s->addr, strerror(errnum));
		server_log(LOG_LVL_WARNING, s, "%s", err);
		pool_server_login_failed(s->pool, "08006", err);
		server_close(s, "connect failed");
		return false;
	}
	server_log(LOG_LVL_DEBUG, s, "connecting");
	return true;
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
	char err[256];

	if (!ok) {
		snprintf(err, sizeof(err), "could not connect to server %s: %s", s->addr, strerror(errnum));
		server_log(LOG_LVL_WARNING, s, "%s", err);
		pool_server_login_failed(s->pool, "08006", err);
		server_close(s, "connect failed");
		return;
	}
	server_set_state(s, SERVER_LOGIN);
	send_startup(s);
}

/* The password for server logins: the database entry's, else the auth_file's. NULL if none. */
static const char *server_password(const struct server *s)
{
	const struct db_entry *e = s->pool->db->entry;

	const char *secret = s->w->userlist ? userlist_find(s->w->userlist, s->pool->user->name) : NULL;

	if (e && *e->password)
		return e->password;
	if (secret && secret_kind_of(secret) == SECRET_SCRAM && *s->pool->user->proven_password)
		return s->pool->user->proven_password;
	return secret;
}

static void login_failed(struct server *s, const char *sqlstate, const char *msg)
{
	server_log(LOG_LVL_WARNING, s, "login failed: %s", msg);
	pool_server_login_failed(s->pool, sqlstate, msg);
	server_close(s, "login failed");
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
	if (!pw || secret_kind_of(pw) != SECRET_PLAIN) {
		login_failed(s, "28P01", "no plaintext password for SCRAM login to the server");
		return false;
	}
	s->scram = calloc(1, sizeof(*s->scram));
	if (!s->scram || !scram_client_init(s->scram, pw, NULL) ||
	    !scram_client_first_message(s->scram, "", out, sizeof(out), &outn)) {
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
	char out[512], err[128];
	size_t outn;
	struct msgbuf mb;

	if (!s->scram || !scram_client_final_message(s->scram, (const char *)data, len, out, sizeof(out),
						      &outn, err, sizeof(err))) {
		login_failed(s, "08P01", "invalid SCRAM exchange with the server");
		return false;
	}
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
	switch (code) {
	case 0: /* AuthenticationOk */
		if (s->scram && s->scram->state != SCRAM_CLIENT_DONE) {
			login_failed(s, "08P01", "server skipped SCRAM verification");
			return false;
		}
		server_login_forget(s);
		return true;
	case 3: /* cleartext */
		if (!pw || secret_kind_of(pw) != SECRET_PLAIN) {
			login_failed(s, "28P01", "no plaintext password for the server login");
			return false;
		}
		mb_init(&mb);
		build_password(&mb, pw);
		conn_write(&s->conn, mb.data, mb.len);
		mb_free(&mb);
		return true;
	case 5: /* md5 */
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
	case 10: /* SASL */
		return send_sasl_initial(s, data, dlen);
	case 11: /* SASLContinue */
		return send_sasl_continue(s, data, dlen);
	case 12: /* SASLFinal */
		if (!s->scram || !scram_client_verify_final(s->scram, (const char *)data, dlen, err, sizeof(err))) {
			login_failed(s, "08P01", "server failed SCRAM verification");
			return false;
		}
		return true;
	default:
		snprintf(err, sizeof(err), "unsupported authentication method %u requested by server", code);
		login_failed(s, "08P01", err);
		return false;
	}
}

enum conn_action server_login_packet(struct server *s, const struct pkt_header *hdr, const uint8_t *whole)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	size_t len = hdr->len - PKT_HDR_LEN;
	struct be_error e;

	switch (hdr->type) {
	case 'R':
		return handle_auth(s, body, len) ? CONN_CONSUME : CONN_CLOSED;
	case 'S':
		server_track_parameter(s, body, len, false);
		return CONN_CONSUME;
	case 'K':
		if (!be_parse_backend_key(body, len, &s->backend_pid, &s->backend_key))
			server_log(LOG_LVL_WARNING, s, "malformed BackendKeyData");
		return CONN_CONSUME;
	case 'E':
		if (!be_parse_error(body, len, &e))
			e.message = "malformed error from server";
		pool_server_login_failed(s->pool, e.sqlstate, e.message);
		server_log(LOG_LVL_WARNING, s, "login failed: %s %s", e.sqlstate, e.message);
		server_close(s, "login error");
		return CONN_CLOSED;
	case 'Z':
		s->tx_status = len >= 1 ? (char)body[0] : 'I';
		server_log(LOG_LVL_DEBUG, s, "login done, backend pid %u", s->backend_pid);
		s->pool->welcome_ready = true;
		if (s->pool->db->entry && *s->pool->db->entry->connect_query) {
			server_set_state(s, SERVER_RESET);
			server_send_internal_query(s, s->pool->db->entry->connect_query);
			return CONN_CONSUME;
		}
		pool_server_ready(s);
		return CONN_CONSUME;
	default: /* NoticeResponse, NegotiateProtocolVersion: nothing to do */
		return CONN_CONSUME;
	}
}

