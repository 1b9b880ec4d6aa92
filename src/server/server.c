/*
 * server: connections from pgmux to PostgreSQL — connect, log in (trust, cleartext, md5,
 * SCRAM-SHA-256), then relay backend messages to the linked client and notice when a unit of work
 * ends (ReadyForQuery). pgmux's own queries (parameter sync, reset) are pipelined ahead of the
 * client's and their replies consumed, counted by internal_pending.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/secret.h"
#include "auth/userlist.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/be.h"
#include "proto/build.h"

#define server_log(lvl, s, fmt, ...)                                                          \
	log_msg(lvl, "S-%llu %s/%s %s: " fmt, (unsigned long long)(s)->id, (s)->pool->db->name, \
		(s)->pool->user->name, (s)->addr, ##__VA_ARGS__)

static enum conn_action on_packet(void *owner, struct conn *c, const struct pkt_header *hdr,
				  const uint8_t *whole);
static void on_connected(void *owner, struct conn *c, bool ok, int errnum);
static void on_closed(void *owner, struct conn *c, enum conn_close_reason why);

static const struct conn_ops server_ops = { on_packet, on_connected, on_closed };

const char *server_state_name(enum server_state s)
{
	static const char *const names[] = { "login", "login", "idle", "active", "tested", "used", "closing" };

	return names[s];
}

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

struct server *server_launch(struct pool *pool)
{
	struct worker *w = pool->w;
	struct server *s = calloc(1, sizeof(*s));
	char err[256];
	int errnum = 0;

	if (!s)
		return NULL;
	s->id = ++w->next_server_id;
	s->w = w;
	s->pool = pool;
	s->tx_status = 'I';
	list_init(&s->node);
	conn_init(&s->conn, &w->loop, &server_ops, s);
	snprintf(s->addr, sizeof(s->addr), "?");
	s->connect_time_us = s->request_time_us = evloop_now_us(&w->loop);
	server_set_state(s, SERVER_CONNECTING);
	if (!server_resolve(s, err, sizeof(err))) {
		server_log(LOG_LVL_WARNING, s, "%s", err);
		pool_server_login_failed(pool, "08006", err);
		server_close(s, "resolve failed");
		return NULL;
	}
	if (!conn_connect(&s->conn, (struct sockaddr *)&s->sa, s->salen, &errnum)) {
		snprintf(err, sizeof(err), "could not connect to server %s: %s", s->addr, strerror(errnum));
		server_log(LOG_LVL_WARNING, s, "%s", err);
		pool_server_login_failed(pool, "08006", err);
		server_close(s, "connect failed");
		return NULL;
	}
	server_log(LOG_LVL_DEBUG, s, "connecting");
	return s;
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

static void on_connected(void *owner, struct conn *c, bool ok, int errnum)
{
	struct server *s = owner;
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

static void drop_scram(struct server *s)
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
		drop_scram(s);
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

static void remember_welcome(struct pool *p, const char *name, const char *value)
{
	if (p->welcome_ready || p->welcome.n >= (int)(sizeof(p->welcome.names) / sizeof(p->welcome.names[0])))
		return;
	if (strlen(name) >= sizeof(p->welcome.names[0]) || strlen(value) >= PARAM_VALUE_MAX)
		return;
	strcpy(p->welcome.names[p->welcome.n], name);
	strcpy(p->welcome.values[p->welcome.n], value);
	p->welcome.n++;
}

static void track_parameter(struct server *s, const uint8_t *body, size_t len, bool for_client)
{
	const char *name, *value;
	int idx;

	if (!be_parse_parameter_status(body, len, &name, &value))
		return;
	idx = param_lookup(name);
	if (idx >= 0) {
		param_store(&s->params, (enum tracked_param)idx, value);
		/*
		 * The client's own SET, or pgmux's SET on its behalf: either way the client now expects
		 * this (canonical) value, so later comparisons need no further SET.
		 */
		if (for_client && s->client)
			param_store(&s->client->params, (enum tracked_param)idx, value);
	}
	if (s->state == SERVER_LOGIN) {
		remember_welcome(s->pool, name, value);
		if (idx >= 0 && !s->pool->welcome_ready)
			param_store(&s->pool->defaults, (enum tracked_param)idx, value);
	}
}

static enum conn_action login_packet(struct server *s, const struct pkt_header *hdr, const uint8_t *whole)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	size_t len = hdr->len - PKT_HDR_LEN;
	struct be_error e;

	switch (hdr->type) {
	case 'R':
		return handle_auth(s, body, len) ? CONN_CONSUME : CONN_CLOSED;
	case 'S':
		track_parameter(s, body, len, false);
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

void server_send_internal_query(struct server *s, const char *sql)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_query(&mb, sql);
	conn_write(&s->conn, mb.data, mb.len);
	mb_free(&mb);
	s->internal_pending++;
}

/* A message answering pgmux's own query: everything is consumed. Returns the action. */
static enum conn_action internal_packet(struct server *s, const struct pkt_header *hdr, const uint8_t *whole)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	size_t len = hdr->len - PKT_HDR_LEN;
	struct be_error e;

	switch (hdr->type) {
	case 'S':
		track_parameter(s, body, len, true);
		return CONN_CONSUME;
	case 'E':
		if (be_parse_error(body, len, &e))
			server_log(LOG_LVL_WARNING, s, "internal query failed: %s %s", e.sqlstate, e.message);
		s->internal_failed = true;
		return CONN_CONSUME;
	case 'Z':
		s->tx_status = len >= 1 ? (char)body[0] : 'I';
		s->internal_pending--;
		if (s->internal_pending == 0 && s->state == SERVER_RESET) {
			if (s->internal_failed || s->tx_status != 'I') {
				server_close(s, "reset query failed");
				return CONN_CLOSED;
			}
			pool_server_ready(s);
		} else if (s->internal_failed && s->client) {
			/* The client's settings could not be applied: it must not run on this server. */
			client_close(s->client, "08P01", "could not apply client settings on the server");
			return CONN_CLOSED;
		}
		return CONN_CONSUME;
	default:
		return CONN_CONSUME;
	}
}

/* Decide whether this message ends the client's unit of work. */
static enum conn_action ready_for_query(struct server *s, const uint8_t *whole, uint32_t len)
{
	s->tx_status = len > PKT_HDR_LEN ? (char)whole[PKT_HDR_LEN] : 'I';
	client_on_ready(s->client, whole, len);
	return CONN_CONSUME;
}

/*
 * A backend terminated by an administrator (or shutting down) says so with FATAL 57P0x as soon as
 * it notices, often while idle in the pool. If that is the first thing it says after being handed
 * out, the client's request never ran: it can be replayed on another server unnoticed.
 */
static bool is_termination_notice(const uint8_t *whole, uint32_t len)
{
	struct be_error e;

	return be_parse_error(whole + PKT_HDR_LEN, len - PKT_HDR_LEN, &e) &&
	       strcmp(e.severity, "FATAL") == 0 && strncmp(e.sqlstate, "57P0", 4) == 0;
}

/* Rewrite a FATAL error as ERROR: the client's session with pgmux goes on. */
static void relay_fatal_as_error(struct server *s, const struct be_error *e)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_error(&mb, "ERROR", e->sqlstate, "%s", e->message);
	conn_write(&s->client->conn, mb.data, mb.len);
	mb_free(&mb);
}

static enum conn_action active_packet(struct server *s, const struct pkt_header *hdr, const uint8_t *whole)
{
	struct be_error e;

	if (client_replay_armed(s->client)) {
		if (hdr->type == 'E' && !whole)
			return CONN_NEED_WHOLE;
		if (hdr->type == 'E' && is_termination_notice(whole, hdr->len)) {
			server_log(LOG_LVL_INFO, s, "terminated before answering: replaying the request elsewhere");
			client_replay_elsewhere(s->client);
			return CONN_CLOSED;
		}
		client_replay_disarm(s->client);
	}
	switch (hdr->type) {
	case 'Z':
		if (!whole)
			return CONN_NEED_WHOLE;
		return ready_for_query(s, whole, hdr->len);
	case 'S':
		if (!whole)
			return CONN_NEED_WHOLE;
		track_parameter(s, whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, true);
		return CONN_FORWARD;
	case 'E':
		if (!whole)
			return CONN_NEED_WHOLE;
		s->client->error_sent = true;
		if (be_parse_error(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &e) &&
		    (strcmp(e.severity, "FATAL") == 0 || strcmp(e.severity, "PANIC") == 0)) {
			s->fatal_seen = true;
			if (pool_mode(s->pool) != POOL_MODE_SESSION) {
				relay_fatal_as_error(s, &e);
				return CONN_CONSUME;
			}
		}
		return CONN_FORWARD;
	case 'G': /* CopyInResponse */
	case 'W': /* CopyBothResponse */
		s->client->in_copy = true;
		return CONN_FORWARD;
	default:
		return CONN_FORWARD;
	}
}

static enum conn_action idle_packet(struct server *s, const struct pkt_header *hdr, const uint8_t *whole)
{
	struct be_error e;

	if (hdr->type == 'S' || hdr->type == 'E') {
		if (!whole)
			return CONN_NEED_WHOLE;
		if (hdr->type == 'S') {
			track_parameter(s, whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, false);
		} else if (be_parse_error(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &e)) {
			/* An error out of the blue means the backend is going away: never hand it out. */
			server_log(LOG_LVL_INFO, s, "idle server said: %s %s", e.sqlstate, e.message);
			if (s->state == SERVER_IDLE) {
				server_close(s, "server reported a fatal error while idle");
				return CONN_CLOSED;
			}
			s->fatal_seen = true;
		}
	}
	/* Notices and notifications with nobody to hear them are dropped. */
	return CONN_CONSUME;
}

static enum conn_action on_packet(void *owner, struct conn *c, const struct pkt_header *hdr,
				  const uint8_t *whole)
{
	struct server *s = owner;

	if (s->state == SERVER_LOGIN)
		return whole ? login_packet(s, hdr, whole) : CONN_NEED_WHOLE;
	if (s->internal_pending) {
		if (!whole && (hdr->type == 'S' || hdr->type == 'E' || hdr->type == 'Z'))
			return CONN_NEED_WHOLE;
		return whole ? internal_packet(s, hdr, whole) : CONN_CONSUME;
	}
	if (s->state == SERVER_ACTIVE && s->client)
		return active_packet(s, hdr, whole);
	return idle_packet(s, hdr, whole);
}

static void on_closed(void *owner, struct conn *c, enum conn_close_reason why)
{
	struct server *s = owner;

	if (s->state == SERVER_LOGIN || s->state == SERVER_CONNECTING) {
		pool_server_login_failed(s->pool, "08006", "server closed the connection during login");
		server_close(s, "closed during login");
		return;
	}
	if (s->client)
		client_on_server_lost(s->client);
	server_close(s, why == CONN_EOF ? "server closed the connection" : "server connection failed");
}

static void server_free(void *obj)
{
	struct server *s = obj;

	drop_scram(s);
	free(s);
}

void server_close(struct server *s, const char *reason)
{
	if (s->state == SERVER_CLOSING)
		return;
	if (s->client)
		client_on_server_lost(s->client);
	server_log(s->state == SERVER_IDLE || s->state == SERVER_RESET ? LOG_LVL_DEBUG : LOG_LVL_INFO, s,
		   "closing: %s", reason);
	if (s->state != SERVER_CONNECTING && s->state != SERVER_LOGIN && conn_is_open(&s->conn) &&
	    !s->conn.failed) {
		/* Tell PostgreSQL we are leaving, so it does not log an unexpected EOF. */
		static const uint8_t terminate[] = { 'X', 0, 0, 0, 4 };

		conn_close_with(&s->conn, terminate, sizeof(terminate));
	}
	pool_forget_server(s);
	server_set_state(s, SERVER_CLOSING);
	conn_close(&s->conn);
	evloop_park(&s->w->loop, s, server_free);
}
