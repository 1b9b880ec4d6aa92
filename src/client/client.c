/*
 * client: application connections — startup packet, authentication, then relaying the client's
 * messages to its server while keeping count of what the server still owes (ReadyForQuery per
 * Query/Sync), so the pool knows exactly when the unit of work ends.
 */
#include "client/client.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/secret.h"
#include "auth/userlist.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/startup.h"

#define client_log(lvl, c, fmt, ...)                                                             \
	log_msg(lvl, "C-%llu %s/%s@%s " fmt, (unsigned long long)(c)->id, (c)->dbname, (c)->user, \
		(c)->addr, ##__VA_ARGS__)

static enum conn_action on_packet(void *owner, struct conn *conn, const struct pkt_header *hdr,
				  const uint8_t *whole);
static void on_closed(void *owner, struct conn *conn, enum conn_close_reason why);

static const struct conn_ops client_ops = { on_packet, NULL, on_closed };

const char *client_state_name(enum client_state s)
{
	static const char *const names[] = { "login", "waiting", "idle", "waiting", "active", "closing" };

	return names[s];
}

void client_accept(struct worker *w, int fd, bool is_unix)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c) {
		log_error("out of memory accepting a client");
		return;
	}
	c->id = ++w->next_client_id;
	c->w = w;
	c->tx_status = 'I';
	list_init(&c->node);
	conn_init(&c->conn, &w->loop, &client_ops, c);
	c->conn.startup = true;
	c->conn.max_packet = PKT_STARTUP_MAX;
	c->connect_time_us = c->request_time_us = evloop_now_us(&w->loop);
	if (is_unix)
		snprintf(c->addr, sizeof(c->addr), "unix");
	else
		conn_peer_name(fd, c->addr, sizeof(c->addr));
	snprintf(c->dbname, sizeof(c->dbname), "(nodb)");
	snprintf(c->user, sizeof(c->user), "(nouser)");
	w->n_clients++;
	client_set_state(c, CLIENT_LOGIN);
	if (!conn_attach(&c->conn, fd)) {
		client_close(c, NULL, "out of memory");
		return;
	}
	if (w->cfg->log_connections)
		client_log(LOG_LVL_DEBUG, c, "new connection");
}

static void send_mb(struct client *c, struct msgbuf *mb)
{
	if (mb->failed) {
		client_log(LOG_LVL_ERROR, c, "out of memory building a message");
		return;
	}
	conn_write(&c->conn, mb->data, mb->len);
}

static void vsend_error(struct client *c, const char *severity, const char *sqlstate, const char *fmt, va_list ap)
{
	char msg[512];
	struct msgbuf mb;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	mb_init(&mb);
	build_error(&mb, severity, sqlstate, "%s", msg);
	send_mb(c, &mb);
	mb_free(&mb);
	if (c->w->cfg->log_pooler_errors)
		client_log(LOG_LVL_INFO, c, "error: %s %s", sqlstate, msg);
}

void client_send_error(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsend_error(c, "ERROR", sqlstate, fmt, ap);
	va_end(ap);
}

static void forget_proven_password(struct client *c)
{
	if (c->proven_password) {
		OPENSSL_cleanse(c->proven_password, strlen(c->proven_password));
		free(c->proven_password);
		c->proven_password = NULL;
	}
}

static void client_free(void *obj)
{
	struct client *c = obj;

	forget_proven_password(c);
	mb_free(&c->replay);
	free(c);
}

/* Let go of the server when the client goes away: reuse it only if it is clean. */
static void detach_server_on_close(struct client *c)
{
	struct server *s = c->server;

	if (!s)
		return;
	/* An open transaction is rolled back on release; a half-done exchange cannot be repaired. */
	if (c->pending_ready || c->unsynced || c->in_copy || s->fatal_seen) {
		if (c->query_running)
			server_cancel_query(s);
		s->close_when_released = true;
	}
	pool_release_server(c);
}

void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	struct worker *w = c->w;

	if (c->state == CLIENT_CLOSING)
		return;
	if (sqlstate) {
		va_start(ap, fmt);
		vsend_error(c, "FATAL", sqlstate, fmt, ap);
		va_end(ap);
	} else if (w->cfg->log_disconnections && c->state != CLIENT_LOGIN) {
		char msg[256];

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		client_log(LOG_LVL_DEBUG, c, "closing: %s", msg);
	}
	if (c->admin)
		admin_forget_client(c);
	detach_server_on_close(c);
	client_set_state(c, CLIENT_CLOSING);
	w->n_clients--;
	if (sqlstate && conn_is_open(&c->conn) && !c->conn.failed)
		conn_close_after_flush(&c->conn);
	else
		conn_close(&c->conn);
	if (!conn_is_open(&c->conn))
		evloop_park(&w->loop, c, client_free);
}

static void on_closed(void *owner, struct conn *conn, enum conn_close_reason why)
{
	struct client *c = owner;

	if (c->state == CLIENT_CLOSING) {
		/* The last error was flushed (or could not be): now it can go. */
		conn_close(conn);
		evloop_park(&c->w->loop, c, client_free);
		return;
	}
	if (why == CONN_BAD_PACKET) {
		client_close(c, "08P01", c->conn.startup ? "invalid startup packet" : "invalid message length or format");
		return;
	}
	client_close(c, NULL, why == CONN_EOF ? "client closed the connection" : "client connection failed");
}

/* ---- login ---- */

static void new_cancel_key(struct client *c)
{
	uint32_t k[2];

	if (RAND_bytes((unsigned char *)k, sizeof(k)) != 1) {
		k[0] = (uint32_t)random();
		k[1] = (uint32_t)random();
	}
	/* Positive pids: some drivers treat the pid as a signed process id. */
	c->cancel_pid = k[0] & 0x7fffffff;
	c->cancel_key = k[1];
}

/* AuthenticationOk, the server's parameters (the client's own where it set them), key, Ready. */
static void send_login_ok(struct client *c)
{
	struct pool *p = c->pool;
	struct msgbuf mb;

	mb_init(&mb);
	build_auth_request(&mb, 0, NULL, 0);
	for (int i = 0; p && i < p->welcome.n; i++) {
		int idx = param_lookup(p->welcome.names[i]);
		const char *value = p->welcome.values[i];

		if (idx >= 0 && c->params.set[idx])
			value = c->params.value[idx];
		build_parameter_status(&mb, p->welcome.names[i], value);
	}
	new_cancel_key(c);
	build_backend_key(&mb, c->cancel_pid, c->cancel_key);
	build_ready(&mb, 'I');
	send_mb(c, &mb);
	mb_free(&mb);
}

static void send_admin_login_ok(struct client *c)
{
	static const char *const params[][2] = {
		{ "server_version", "15.0 (pgmux " PGMUX_VERSION ")" }, { "server_encoding", "UTF8" },
		{ "client_encoding", "UTF8" }, { "DateStyle", "ISO, MDY" }, { "TimeZone", "UTC" },
		{ "integer_datetimes", "on" }, { "standard_conforming_strings", "on" },
		{ "application_name", "" }, { "is_superuser", "off" },
	};
	struct msgbuf mb;

	mb_init(&mb);
	build_auth_request(&mb, 0, NULL, 0);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		build_parameter_status(&mb, params[i][0], params[i][1]);
	new_cancel_key(c);
	build_backend_key(&mb, c->cancel_pid, c->cancel_key);
	build_ready(&mb, 'I');
	send_mb(c, &mb);
	mb_free(&mb);
}

void client_finish_login(struct client *c)
{
	/* Fill in what the client did not choose with the server's defaults. */
	for (int i = 0; i < PARAM_COUNT; i++)
		if (!c->params.set[i] && c->pool->defaults.set[i])
			param_store(&c->params, (enum tracked_param)i, c->pool->defaults.value[i]);
	send_login_ok(c);
	client_set_state(c, CLIENT_IDLE);
	if (c->w->cfg->log_connections)
		client_log(LOG_LVL_INFO, c, "login ok");
	/* Anything the client pipelined behind its startup packet is processed now. */
	conn_resume(&c->conn);
}

static bool is_ignored_param(const struct client *c, const char *name)
{
	return config_list_contains(c->w->cfg->ignore_startup_parameters, name);
}

/* Take the startup parameters; false if the client was closed. */
static bool take_startup_params(struct client *c, const struct startup_msg *m)
{
	const char *user = startup_get(m, "user");
	const char *db = startup_get(m, "database");

	if (!user || !*user) {
		client_close(c, "28000", "no PostgreSQL user name specified in startup packet");
		return false;
	}
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->dbname, sizeof(c->dbname), "%s", db && *db ? db : user);
	if (strlen(user) >= sizeof(c->user) || (db && strlen(db) >= sizeof(c->dbname))) {
		client_close(c, "08P01", "user or database name too long");
		return false;
	}
	for (int i = 0; i < m->nparams; i++) {
		const char *name = m->names[i], *value = m->values[i];
		int idx;

		if (!strcmp(name, "user") || !strcmp(name, "database"))
			continue;
		idx = param_lookup(name);
		if (idx >= 0) {
			if (!param_store(&c->params, (enum tracked_param)idx, value)) {
				client_close(c, "08P01", "value of startup parameter %s too long", name);
				return false;
			}
			continue;
		}
		if (!is_ignored_param(c, name)) {
			client_close(c, "08P01", "unsupported startup parameter: %s", name);
			return false;
		}
	}
	if (c->w->cfg->application_name_add_host) {
		char app[PARAM_VALUE_MAX * 3];

		/* Too long to track means the name stays as the client gave it. */
		snprintf(app, sizeof(app), "%s - %s",
			 c->params.set[PARAM_APPLICATION_NAME] ? c->params.value[PARAM_APPLICATION_NAME] : "",
			 c->addr);
		param_store(&c->params, PARAM_APPLICATION_NAME, app);
	}
	return true;
}

/* Password-based methods; trust and any log in at once. */
static bool needs_password(const struct client *c)
{
	int t = c->w->cfg->auth_type;

	return t == AUTH_PASSWORD || t == AUTH_MD5 || t == AUTH_SCRAM_SHA_256;
}

static bool ask_password(struct client *c)
{
	struct msgbuf mb;
	const char *secret = c->w->userlist ? userlist_find(c->w->userlist, c->user) : NULL;

	mb_init(&mb);
	if (c->w->cfg->auth_type == AUTH_PASSWORD || (secret && secret_kind_of(secret) == SECRET_SCRAM)) {
		c->auth_method = 3;
		build_auth_request(&mb, 3, NULL, 0);
	} else {
		if (RAND_bytes(c->auth_salt, sizeof(c->auth_salt)) != 1) {
			mb_free(&mb);
			client_close(c, "XX000", "could not generate a random salt");
			return false;
		}
		c->auth_method = 5;
		build_auth_request(&mb, 5, c->auth_salt, 4);
	}
	send_mb(c, &mb);
	mb_free(&mb);
	return true;
}

/* The login is authenticated: attach to the admin console or a pool. */
static bool enter_pool(struct client *c)
{
	struct database *db;
	const char *user;

	if (admin_is_console_db(c->dbname)) {
		bool admin = config_list_contains(c->w->cfg->admin_users, c->user);
		bool stats = config_list_contains(c->w->cfg->stats_users, c->user);

		if (!admin && !stats) {
			client_close(c, "28000", "not allowed to connect to the admin console");
			return false;
		}
		c->admin = true;
		c->admin_can_write = admin;
		send_admin_login_ok(c);
		client_set_state(c, CLIENT_IDLE);
		conn_resume(&c->conn);
		return true;
	}
	db = database_lookup(c->w, c->dbname);
	if (!db) {
		client_close(c, "3D000", "no such database: %s", c->dbname);
		return false;
	}
	if (db->disabled) {
		client_close(c, "57P03", "database \"%s\" does not allow connections: disabled", c->dbname);
		return false;
	}
	user = db->entry && *db->entry->user ? db->entry->user : c->user;
	c->pool = pool_get(c->w, db, user);
	if (!c->pool) {
		client_close(c, "53200", "out of memory");
		return false;
	}
	if (c->proven_password && strcmp(user, c->user) == 0)
		snprintf(c->pool->user->proven_password, sizeof(c->pool->user->proven_password), "%s",
			 c->proven_password);
	forget_proven_password(c);
	if (c->pool->welcome_ready) {
		client_set_state(c, CLIENT_IDLE);
		client_finish_login(c);
	} else {
		client_set_state(c, CLIENT_WAITING_LOGIN);
		pool_launch_needed(c->pool);
	}
	return true;
}

static enum conn_action handle_startup(struct client *c, const uint8_t *whole, uint32_t len)
{
	struct startup_msg m;
	char err[256];
	struct msgbuf mb;

	switch (startup_parse(whole, len, &m, err, sizeof(err))) {
	case STARTUP_SSL:
	case STARTUP_GSSENC:
		/* No encryption yet: 'N' and the client goes on in plain text (or gives up). */
		conn_write(&c->conn, "N", 1);
		return CONN_CONSUME;
	case STARTUP_CANCEL:
		client_cancel_request(c->w, m.cancel_pid, m.cancel_key);
		client_close(c, NULL, "cancel request handled");
		return CONN_CLOSED;
	case STARTUP_OLD_PROTO:
	case STARTUP_BAD:
		client_close(c, "08P01", "%s", err);
		return CONN_CLOSED;
	case STARTUP_V3:
		break;
	}
	if (c->w->shutting_down) {
		client_close(c, "57P01", "pgmux is shutting down");
		return CONN_CLOSED;
	}
	if (c->w->n_clients > c->w->cfg->max_client_conn) {
		client_close(c, "53300", "no more connections allowed (max_client_conn)");
		return CONN_CLOSED;
	}
	if (!take_startup_params(c, &m))
		return CONN_CLOSED;
	if ((m.version & 0xffff) != 0 || m.nunknown_opts) {
		/* Newer 3.x minor or _pq_ options: say what we speak, then go on as 3.0. */
		mb_init(&mb);
		build_negotiate_version(&mb, 0, m.nunknown_opts, m.unknown_opts);
		send_mb(c, &mb);
		mb_free(&mb);
	}
	c->conn.startup = false;
	c->conn.max_packet = (uint32_t)c->w->cfg->max_packet_size;
	if (needs_password(c))
		return ask_password(c) ? CONN_CONSUME : CONN_CLOSED;
	return enter_pool(c) ? CONN_CONSUME : CONN_CLOSED;
}

static bool check_password(struct client *c, const char *given)
{
	const char *secret = c->w->userlist ? userlist_find(c->w->userlist, c->user) : NULL;
	char expect[MD5_PASSWORD_LEN + 1];

	if (!secret)
		return false;
	if (c->auth_method == 3) {
		enum secret_kind kind = secret_kind_of(secret);

		if (kind == SECRET_PLAIN)
			return strlen(given) == strlen(secret) && CRYPTO_memcmp(given, secret, strlen(secret)) == 0;
		if (kind == SECRET_MD5) {
			if (!md5_password_hash(c->user, given, expect))
				return false;
			return CRYPTO_memcmp(expect, secret, MD5_PASSWORD_LEN) == 0;
		}
		if (!scram_secret_matches(secret, given))
			return false;
		c->proven_password = strdup(given);
		return true;
	}
	if (!md5_password_response(c->user, secret, c->auth_salt, expect))
		return false;
	return strlen(given) == MD5_PASSWORD_LEN && CRYPTO_memcmp(expect, given, MD5_PASSWORD_LEN) == 0;
}

static enum conn_action handle_password(struct client *c, const struct pkt_header *hdr, const uint8_t *whole)
{
	const char *given = (const char *)whole + PKT_HDR_LEN;
	size_t len = hdr->len - PKT_HDR_LEN;

	if (hdr->type != 'p' || len == 0 || memchr(given, '\0', len) != given + len - 1) {
		client_close(c, "08P01", "expected password response");
		return CONN_CLOSED;
	}
	if (!check_password(c, given)) {
		client_close(c, "28P01", "password authentication failed for user \"%s\"", c->user);
		return CONN_CLOSED;
	}
	c->auth_method = 0;
	return enter_pool(c) ? CONN_CONSUME : CONN_CLOSED;
}

/* ---- admin console ---- */

static enum conn_action admin_packet(struct client *c, const struct pkt_header *hdr, const uint8_t *whole)
{
	struct msgbuf mb;

	switch (hdr->type) {
	case 'Q':
		if (!whole)
			return CONN_NEED_WHOLE;
		if (hdr->len < PKT_HDR_LEN + 1 || whole[hdr->len - 1] != '\0') {
			client_close(c, "08P01", "invalid query message");
			return CONN_CLOSED;
		}
		admin_handle_query(c, (const char *)whole + PKT_HDR_LEN);
		return c->state == CLIENT_CLOSING ? CONN_CLOSED : CONN_CONSUME;
	case 'X':
		client_close(c, NULL, "client terminated");
		return CONN_CLOSED;
	case 'S':
		mb_init(&mb);
		build_ready(&mb, 'I');
		send_mb(c, &mb);
		mb_free(&mb);
		return CONN_CONSUME;
	default:
		client_send_error(c, "0A000", "the admin console supports only simple queries");
		return CONN_CONSUME;
	}
}

/* ---- relaying ---- */

/* Account for a message going to the server; returns false if it may not be sent. */
static void note_frontend_message(struct client *c, char type)
{
	switch (type) {
	case 'Q':
	case 'F':
		c->pending_ready++;
		break;
	case 'S':
		c->pending_ready++;
		c->unsynced = false;
		break;
	case 'P':
	case 'B':
	case 'E':
	case 'D':
	case 'C':
		c->unsynced = true;
		break;
	case 'c':
	case 'f':
		c->in_copy = false;
		break;
	default:
		break;
	}
	if ((type == 'Q' || type == 'E' || type == 'F') && !c->query_running) {
		c->query_running = true;
		c->query_start_us = evloop_now_us(&c->w->loop);
	}
}

/* Message types a client may send after login. */
static bool valid_frontend_type(char type)
{
	return strchr("QPBEDCSHFdcfp", type) != NULL && type != '\0';
}

static enum conn_action relay_packet(struct client *c, const struct pkt_header *hdr)
{
	if (!valid_frontend_type(hdr->type) && hdr->type != 'X') {
		client_close(c, "08P01", "invalid frontend message type %d", (unsigned char)hdr->type);
		return CONN_CLOSED;
	}
	if (hdr->type == 'X') {
		client_close(c, NULL, "client terminated");
		return CONN_CLOSED;
	}
	if (!c->server) {
		/* Sync or Flush with nothing in flight and no server: answer it ourselves. */
		if (hdr->type == 'S' && c->pending_ready == 0 && !c->unsynced) {
			struct msgbuf mb;

			mb_init(&mb);
			build_ready(&mb, c->tx_status);
			send_mb(c, &mb);
			mb_free(&mb);
			return CONN_CONSUME;
		}
		if (hdr->type == 'H' && !c->unsynced)
			return CONN_CONSUME;
		if (c->state == CLIENT_IDLE)
			pool_request_server(c);
		return c->server ? relay_packet(c, hdr) : CONN_STOP;
	}
	note_frontend_message(c, hdr->type);
	c->request_time_us = evloop_now_us(&c->w->loop);
	c->pool->stats.bytes_received += hdr->len;
	return CONN_FORWARD;
}

static enum conn_action on_packet(void *owner, struct conn *conn, const struct pkt_header *hdr,
				  const uint8_t *whole)
{
	struct client *c = owner;

	switch (c->state) {
	case CLIENT_LOGIN:
		if (!whole)
			return CONN_NEED_WHOLE;
		if (c->auth_method)
			return handle_password(c, hdr, whole);
		return handle_startup(c, whole, hdr->len);
	case CLIENT_WAITING_LOGIN:
	case CLIENT_WAITING:
		return CONN_STOP;
	case CLIENT_CLOSING:
		return CONN_CLOSED;
	case CLIENT_IDLE:
	case CLIENT_ACTIVE:
		if (c->admin)
			return admin_packet(c, hdr, whole);
		return relay_packet(c, hdr);
	}
	return CONN_STOP;
}

/* Keep the request until the server's first answer, so it can be replayed (see server.c). */
#define REPLAY_LIMIT (64 * 1024)

bool client_replay_armed(const struct client *c)
{
	return c->conn.tap != NULL;
}

void client_replay_disarm(struct client *c)
{
	c->conn.tap = NULL;
	mb_free(&c->replay);
}

static void replay_arm(struct client *c)
{
	/* Only a unit of work that starts outside a transaction can start over elsewhere. */
	if (c->tx_status != 'I')
		return;
	mb_reset(&c->replay);
	c->conn.tap = &c->replay;
	c->conn.tap_limit = REPLAY_LIMIT;
	c->conn.tap_overflow = false;
}

void client_replay_elsewhere(struct client *c)
{
	struct server *s = c->server;

	if (c->conn.tap_overflow || c->replay.failed) {
		client_replay_disarm(c);
		client_on_server_lost(c);
		return;
	}
	c->conn.tap = NULL;
	c->replay_pending = true;
	s->close_when_released = true;
	/* Detach without a word to the client: it must not notice. */
	conn_unlink(&c->conn);
	c->server = NULL;
	s->client = NULL;
	client_set_state(c, CLIENT_IDLE);
	server_close(s, "terminated by the administrator");
	pool_request_server(c);
}

void client_on_server_linked(struct client *c)
{
	struct server *s = c->server;
	char sql[1024];

	if (param_diff_sql(&c->params, &s->params, sql, sizeof(sql)) > 0)
		server_send_internal_query(s, sql);
	c->error_sent = false;
	if (c->replay_pending) {
		c->replay_pending = false;
		conn_write(&s->conn, c->replay.data, c->replay.len);
	}
	replay_arm(c);
	conn_resume(&c->conn);
}

static void send_ready(struct client *c, char tx_status)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_ready(&mb, tx_status);
	send_mb(c, &mb);
	mb_free(&mb);
}

void client_on_ready(struct client *c, const uint8_t *z, uint32_t len)
{
	struct pool *p = c->pool;
	uint64_t now = evloop_now_us(&c->w->loop);
	char tx_status = len > PKT_HDR_LEN ? (char)z[PKT_HDR_LEN] : 'I';

	if (c->pending_ready)
		c->pending_ready--;
	c->tx_status = tx_status;
	if (c->query_running) {
		p->stats.query_count++;
		p->stats.query_time_us += now - c->query_start_us;
		c->query_running = c->pending_ready > 0;
		c->query_start_us = now;
	}
	c->request_time_us = now;
	if (tx_status != 'I' && pool_mode(p) == POOL_MODE_STATEMENT && !c->pending_ready) {
		/* The server's transaction is rolled back on release; the client stays usable. */
		client_send_error(c, "0A000", "transaction blocks not allowed in statement pooling mode");
		send_ready(c, 'I');
		c->tx_status = 'I';
		pool_release_server(c);
		return;
	}
	conn_write(&c->conn, z, len);
	p->stats.bytes_sent += len;
	if (c->pending_ready || c->unsynced || c->in_copy || c->server->internal_pending || tx_status != 'I')
		return;
	p->stats.xact_count++;
	p->stats.xact_time_us += now - c->xact_start_us;
	if (c->shutdown_pending) {
		client_close(c, "57P01", "pgmux is shutting down");
		return;
	}
	if (pool_mode(p) != POOL_MODE_SESSION)
		pool_release_server(c);
}

void client_on_server_lost(struct client *c)
{
	struct msgbuf mb;
	struct server *s = c->server;
	bool keep;

	s->close_when_released = true;
	/* What the client had in flight is lost; it survives if nothing is half-sent. */
	keep = pool_mode(c->pool) != POOL_MODE_SESSION && !c->unsynced && !c->in_copy &&
	       !c->w->shutting_down;
	mb_init(&mb);
	if (!c->error_sent && (c->pending_ready || c->tx_status != 'I'))
		build_error(&mb, keep ? "ERROR" : "FATAL", "08006", "server connection lost");
	if (keep)
		for (; c->pending_ready; c->pending_ready--)
			build_ready(&mb, 'I');
	send_mb(c, &mb);
	mb_free(&mb);
	c->query_running = false;
	c->tx_status = 'I';
	if (!keep) {
		client_close(c, NULL, "server connection lost");
		return;
	}
	pool_release_server(c);
}
