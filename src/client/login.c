/*
 * client/login: a client's way in — SSL/GSSENC/cancel requests, the startup packet and its
 * parameters, authentication against auth_type and auth_file, and the choice of admin console or
 * pool. Ends in client_finish_login() (or waits for the pool's first server to learn what
 * parameters to show).
 */
#include "client/login.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/secret.h"
#include "auth/userlist.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/startup.h"

void login_forget_secrets(struct client *c)
{
	if (c->proven_password) {
		OPENSSL_cleanse(c->proven_password, strlen(c->proven_password));
		free(c->proven_password);
		c->proven_password = NULL;
	}
}

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
	client_send(c, &mb);
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
	client_send(c, &mb);
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
	client_send(c, &mb);
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
	login_forget_secrets(c);
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
		client_send(c, &mb);
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

enum conn_action login_on_packet(struct client *c, const struct pkt_header *hdr, const uint8_t *whole)
{
	if (!whole)
		return CONN_NEED_WHOLE;
	if (c->auth_method)
		return handle_password(c, hdr, whole);
	return handle_startup(c, whole, hdr->len);
}
