/*
 * client/login: a client's way in — SSL/GSSENC/cancel requests, the startup packet and its
 * parameters, authentication against auth_type (or the auth_hba_file rule) and auth_file, and the
 * choice of admin console or pool. Ends in pool_client_logged_in(), which calls back
 * client_finish_login() at once or once the pool's first server has told what parameters to show.
 *
 * Authentication follows PostgreSQL: wrong password, unknown user and a user without a usable
 * secret all end in the same 28P01 message, after the same exchange (a SCRAM exchange for an
 * unknown user runs against a mock secret whose salt is stable per user name); secrets are
 * compared in constant time and never logged. PBKDF2 (a SCRAM secret made from a plaintext
 * password, a cleartext password checked against a SCRAM secret) runs once per secret and
 * password, remembered in auth/kdfcache, and otherwise only within auth_kdf_budget, so that
 * guesses cannot stall the loop; an unknown user costs what a known one does. A client proven
 * with SCRAM against a stored SCRAM
 * secret leaves its ClientKey and the ServerKey on its pool_user, for server logins
 * (pass-through). c->auth_method is the request the client must answer next (cleartext or md5
 * password, SASLInitialResponse after AuthenticationSASL, SASLResponse after
 * AuthenticationSASLContinue), BE_AUTH_OK before and after; c->auth_query_wait while pgmux waits
 * for auth_query (the client owes nothing; the lookup's callback resumes it).
 *
 * Until it is authenticated a client is a stranger: its messages are capped at
 * LOGIN_PACKET_MAX (max_packet_size only after login), a message during an auth_query lookup is
 * refused on its header, it gets one SSLRequest and one GSSENCRequest, and its login is refused
 * rather than given a guessable cancel key or mock salt when the CSPRNG fails.
 */
#include "client/login.h"
#include "client/admit.h"
#include "client/cancel.h"
#include "client/clients.h"
#include "client/route.h"
#include "client/shard.h"
#include "client/tls.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authquery.h"
#include "auth/hba.h"
#include "auth/kdfcache.h"
#include "auth/md5.h"
#include "auth/scram.h"
#include "auth/scram_server.h"
#include "auth/secret.h"
#include "auth/userlist.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "ev/pgquery.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/cancelkey.h"
#include "proto/fe.h"
#include "proto/startup.h"
#include "server/params.h"

/*
 * The largest message a client may send before it is authenticated, type byte included:
 * PostgreSQL's limit for authentication messages (65535 bytes counted from the length field).
 * SCRAM messages are far smaller. Only an authenticated client gets max_packet_size, so that no
 * one can make pgmux buffer more than this without a password.
 */
#define LOGIN_PACKET_MAX (1 + 65535)

void login_forget_secrets(struct client *c)
{
	if (c->proven_password) {
		OPENSSL_cleanse(c->proven_password, strlen(c->proven_password));
		free(c->proven_password);
		c->proven_password = NULL;
	}
	if (c->scram) {
		scram_server_clear(c->scram);
		free(c->scram);
		c->scram = NULL;
	}
	c->scram_pass_through = false;
	if (c->auth_secret) {
		OPENSSL_cleanse(c->auth_secret, strlen(c->auth_secret));
		free(c->auth_secret);
		c->auth_secret = NULL;
	}
	if (c->auth_query_wait) {
		authquery_cancel(c->cs->authquery, c);
		c->auth_query_wait = false;
	}
}

/*
 * The BackendKeyData the client will be told, drawn when its startup packet is taken. False when
 * the CSPRNG fails: a guessable key would let anyone cancel the client's queries, so the login
 * is refused rather than given a weaker one.
 */
static bool new_cancel_key(struct client *c)
{
	uint32_t k[2];
	struct cancelkey ck;

	if (RAND_bytes((unsigned char *)k, sizeof(k)) != 1)
		return false;
	/* The key names this process (peer_id), so a peer that receives the cancel finds us. */
	ck = cancelkey_make(clients_cfg(c->cs)->peer_id, k[0], k[1]);
	c->cancel_pid = ck.pid;
	c->cancel_key = ck.key;
	return true;
}

/* AuthenticationOk, the server's parameters (the client's own where it set them), key, Ready. */
static void send_login_ok(struct client *c)
{
	struct pool *p = c->pool;
	struct msgbuf mb;

	mb_init(&mb);
	build_auth_request(&mb, BE_AUTH_OK, NULL, 0);
	for (int i = 0; p && i < p->welcome.n; i++) {
		int idx = param_lookup(p->welcome.names[i]);
		const char *value = p->welcome.values[i];

		if (idx >= 0 && param_get(&c->params, (enum tracked_param)idx))
			value = param_get(&c->params, (enum tracked_param)idx);
		build_parameter_status(&mb, p->welcome.names[i], value);
	}
	build_backend_key(&mb, c->cancel_pid, c->cancel_key);
	build_ready(&mb, 'I');
	client_send(c, &mb);
	mb_free(&mb);
}

static void send_admin_login_ok(struct client *c)
{
	static const char *const params[][2] = {
		{ "server_version", "15.0 (pgmux " PGMUX_VERSION ")" },
		{ "server_encoding", "UTF8" },
		{ "client_encoding", "UTF8" },
		{ "DateStyle", "ISO, MDY" },
		{ "TimeZone", "UTC" },
		{ "integer_datetimes", "on" },
		{ "standard_conforming_strings", "on" },
		{ "application_name", "" },
		{ "is_superuser", "off" },
	};
	struct msgbuf mb;

	mb_init(&mb);
	build_auth_request(&mb, BE_AUTH_OK, NULL, 0);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		build_parameter_status(&mb, params[i][0], params[i][1]);
	build_backend_key(&mb, c->cancel_pid, c->cancel_key);
	build_ready(&mb, 'I');
	client_send(c, &mb);
	mb_free(&mb);
}

void client_finish_login(struct client *c)
{
	/* Fill in what the client did not choose with the server's defaults. */
	for (int i = 0; i < PARAM_COUNT; i++)
		if (!param_get(&c->params, (enum tracked_param)i) &&
		    param_get(&c->pool->defaults, (enum tracked_param)i))
			param_store(&c->params, (enum tracked_param)i,
				    param_get(&c->pool->defaults, (enum tracked_param)i));
	send_login_ok(c);
	if (clients_cfg(c->cs)->log_connections)
		client_log(LOG_LVL_INFO, c, "login ok");
	/* Anything the client pipelined behind its startup packet is processed now. */
	conn_resume(&c->conn);
}

static bool is_ignored_param(const struct client *c, const char *name)
{
	return config_list_contains(clients_cfg(c->cs)->ignore_startup_parameters, name);
}

/*
 * One "-c name=value": a reported parameter is the client's like one given on its own (one
 * place says what a server must have for it); anything else is a session setting.
 */
static bool take_option(struct client *c, const char *name, const char *value)
{
	int idx = param_lookup(name);

	if (idx >= 0)
		return param_store(&c->params, (enum tracked_param)idx, value);
	return client_take_route_option(c, name, value) ||
	       client_take_shard_option(c, name, value) ||
	       settings_put_raw(&c->settings, name, value);
}

/* A startup setting's name goes into SQL on every server the client gets: only real names. */
static bool refuse_bad_name(struct client *c, const char *name)
{
	if (settings_name_valid(name))
		return false;
	client_close(c, "42602", "invalid configuration parameter name \"%s\"", name);
	return true;
}

/* "-c name=value" (or "--name=value") words of the options startup parameter. */
static bool take_options(struct client *c, const char *options)
{
	char *copy = strdup(options), *save = NULL;
	bool ok = copy != NULL;

	for (char *w = copy ? strtok_r(copy, " \t", &save) : NULL; ok && w;
	     w = strtok_r(NULL, " \t", &save)) {
		char *eq;

		if (strcmp(w, "-c") == 0 && !(w = strtok_r(NULL, " \t", &save)))
			break;
		else if (strncmp(w, "-c", 2) == 0)
			w += 2;
		else if (strncmp(w, "--", 2) == 0)
			w += 2;
		eq = strchr(w, '=');
		if (!eq) {
			client_close(c, "08P01", "invalid command-line argument in options: %s", w);
			free(copy);
			return false;
		}
		*eq = '\0';
		if (refuse_bad_name(c, w)) {
			free(copy);
			return false;
		}
		ok = take_option(c, w, eq + 1);
	}
	free(copy);
	if (!ok)
		client_close(c, "53200", "out of memory");
	return ok;
}

/*
 * Any other startup parameter is a session setting the client expects on every server it gets
 * (extra_float_digits, search_path...): pgmux applies it with SET, as a server would at startup.
 */
static bool take_session_setting(struct client *c, const char *name, const char *value)
{
	if (strcmp(name, "replication") == 0) {
		client_close(c, "08P01", "replication connections are not supported");
		return false;
	}
	if (strcmp(name, "options") == 0)
		return take_options(c, value);
	if (client_take_route_option(c, name, value) || client_take_shard_option(c, name, value))
		return true;
	if (refuse_bad_name(c, name))
		return false;
	if (!settings_put_raw(&c->settings, name, value)) {
		client_close(c, "53200", "out of memory");
		return false;
	}
	return true;
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
				client_close(c, "08P01", "value of startup parameter %s too long",
					     name);
				return false;
			}
			continue;
		}
		if (is_ignored_param(c, name))
			continue;
		if (!take_session_setting(c, name, value))
			return false;
	}
	if (clients_cfg(c->cs)->application_name_add_host) {
		char app[PARAM_VALUE_MAX * 3];

		/* Too long to track means the name stays as the client gave it. */
		snprintf(app, sizeof(app), "%s - %s",
			 param_get(&c->params, PARAM_APPLICATION_NAME) ?: "", c->addr);
		param_store(&c->params, PARAM_APPLICATION_NAME, app);
	}
	return true;
}

/* user's secret in the auth_file of the config in force ("" for none); NULL when not listed. */
static const char *auth_file_secret(const struct client *c, const char *user)
{
	const struct userlist *ul = clients_cfg(c->cs)->userlist;

	return ul ? userlist_find(ul, user) : NULL;
}

static bool in_auth_file(const struct client *c)
{
	return auth_file_secret(c, c->user) != NULL;
}

/*
 * The secret for the client's user: the auth_file's, else what auth_query found; NULL when none
 * (an empty one is none).
 */
static const char *user_secret(const struct client *c)
{
	const char *s = auth_file_secret(c, c->user);

	if (!s && c->auth_secret)
		s = c->auth_secret;
	return s && *s ? s : NULL;
}

/* Append " key='value'" to a libpq conninfo, quoting as libpq reads it. */
static bool conninfo_add(char *out, size_t outlen, const char *key, const char *value)
{
	size_t n = strlen(out);

	if (n + strlen(key) + 3 >= outlen)
		return false;
	n += (size_t)snprintf(out + n, outlen - n, " %s='", key);
	for (const char *v = value; *v; v++) {
		if (n + 3 >= outlen)
			return false;
		if (*v == '\'' || *v == '\\')
			out[n++] = '\\';
		out[n++] = *v;
	}
	if (n + 2 >= outlen)
		return false;
	out[n++] = '\'';
	out[n] = '\0';
	return true;
}

/*
 * The user auth_query runs as for this client: its database entry's auth_user, else [pgmux]'s;
 * "" when auth_query is off for it. As in PgBouncer, one database may look users up as a
 * different role (its own SECURITY DEFINER function, say) than the rest.
 */
static const char *auth_user_of(const struct client *c)
{
	const struct db_entry *e = config_find_db(clients_cfg(c->cs), c->dbname);

	return e && *e->auth_user ? e->auth_user : clients_cfg(c->cs)->auth_user;
}

/* The database entry auth_query runs in: the client's entry's auth_dbname, [pgmux]'s, its own. */
static const char *auth_dbname_of(const struct client *c)
{
	const struct config *cfg = clients_cfg(c->cs);
	const struct db_entry *e = config_find_db(cfg, c->dbname);

	if (e && *e->auth_dbname)
		return e->auth_dbname;
	return *cfg->auth_dbname ? cfg->auth_dbname : c->dbname;
}

/* The TLS and authentication rules of pgmux's server logins, for auth_query's connection too. */
static bool auth_query_policy(const struct config *cfg, const char *host, char *out, size_t outlen)
{
	char require_auth[64];
	struct pgquery_policy policy = {
		.sslmode = cfg->server_tls_sslmode,
		.ca_file = cfg->server_tls_ca_file,
		.cert_file = cfg->server_tls_cert_file,
		.key_file = cfg->server_tls_key_file,
		.host_name = host[0] == '/' ? "" : host,
		.require_auth = require_auth,
		.scram_max_iterations = cfg->server_scram_max_iterations,
	};

	config_server_require_auth(cfg, require_auth, sizeof(require_auth));
	return pgquery_conninfo_policy(out, outlen, &policy);
}

/*
 * The libpq conninfo auth_query connects with: the database entry auth_dbname_of() names, as
 * auth_user_of() with its auth_file password when that is plaintext. The host must be a numeric
 * address or a unix socket directory, so libpq never resolves a name. False with a reason in
 * why when there is no such entry or the host is a name.
 */
static bool auth_query_conninfo(const struct client *c, char *out, size_t outlen, char *why,
				size_t whylen)
{
	const struct config *cfg = clients_cfg(c->cs);
	const char *name = auth_dbname_of(c), *auth_user = auth_user_of(c);
	const struct db_entry *e = config_find_db(cfg, name);
	const char *host, *pw;
	char port[16];
	uint8_t addr[16];

	if (!e) {
		snprintf(why, whylen, "no database entry \"%s\" for auth_query", name);
		return false;
	}
	host = *e->host ? e->host : "127.0.0.1";
	snprintf(port, sizeof(port), "%d", e->port > 0 ? e->port : 5432);
	out[0] = '\0';
	if (host[0] == '/') {
		if (!conninfo_add(out, outlen, "host", host))
			goto too_long;
	} else if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
		if (!conninfo_add(out, outlen, "hostaddr", host))
			goto too_long;
	} else {
		snprintf(why, whylen,
			 "auth_query needs a numeric address or a unix socket directory "
			 "as host of database entry \"%s\"",
			 name);
		return false;
	}
	pw = auth_file_secret(c, auth_user);
	if (!conninfo_add(out, outlen, "port", port) ||
	    !conninfo_add(out, outlen, "dbname", *e->dbname ? e->dbname : name) ||
	    !conninfo_add(out, outlen, "user", auth_user) ||
	    !conninfo_add(out, outlen, "application_name", "pgmux auth_query") ||
	    (pw && *pw && secret_kind_of(pw) == SECRET_PLAIN &&
	     !conninfo_add(out, outlen, "password", pw)) ||
	    !auth_query_policy(cfg, host, out, outlen))
		goto too_long;
	return true;
too_long:
	snprintf(why, whylen, "auth_query connection string too long");
	return false;
}

/*
 * The key of stable_salt(): one per process, nothing else is shared between clients. Made by
 * salt_key_ready(), which every login passes before any salt is needed.
 */
static uint8_t salt_key[32];
static bool have_salt_key;

/*
 * Make the salt key on first use. False when the CSPRNG fails: a guessable key would make the
 * mock salts of unknown users predictable (telling them from real ones), so the login is refused
 * instead; a later login tries again.
 */
static bool salt_key_ready(void)
{
	if (!have_salt_key && RAND_bytes(salt_key, sizeof(salt_key)) == 1)
		have_salt_key = true;
	return have_salt_key;
}

/*
 * A salt that is stable for a user name but unpredictable without this process's key: shown to
 * a SCRAM client when its user is unknown (so that the answer looks like a real user's), and
 * used to turn a plaintext auth_file password into a SCRAM secret. Only after salt_key_ready().
 */
static void stable_salt(const char *user, uint8_t out[SCRAM_SALT_LEN])
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	ASSERT(have_salt_key);
	if (!HMAC(EVP_sha256(), salt_key, (int)sizeof(salt_key), (const uint8_t *)user,
		  strlen(user), mac, &maclen) ||
	    maclen < SCRAM_SALT_LEN)
		memset(mac, 0x5a, SCRAM_SALT_LEN);
	memcpy(out, mac, SCRAM_SALT_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
}

/* How this client must prove itself. */
enum login_method {
	LOGIN_ANY,      /* auth_type = any: no check, the user name does not matter */
	LOGIN_TRUST,    /* no password, but the user must be known (auth_file or auth_query) */
	LOGIN_PASSWORD, /* cleartext */
	LOGIN_MD5,      /* md5, or SCRAM when the stored secret is SCRAM (as in PostgreSQL) */
	LOGIN_SCRAM,
	LOGIN_CERT,
	LOGIN_REJECT,  /* an hba "reject" rule */
	LOGIN_NO_RULE, /* no hba rule matched */
};

/* The connection as the hba matcher sees it; false when the peer address cannot be read. */
static bool hba_client_of(const struct client *c, struct hba_client *hc, char *host, size_t hostlen)
{
	char buf[64];
	char *end;

	memset(hc, 0, sizeof(*hc));
	hc->database = c->dbname;
	hc->user = c->user;
	hc->tls = c->conn.tls;
	if (c->conn.is_unix) {
		hc->is_unix = true;
		snprintf(host, hostlen, "[local]");
		return true;
	}
	/* c->addr is "a.b.c.d:port" or "[v6]:port" (conn_peer_name()). */
	if (c->addr[0] == '[') {
		snprintf(buf, sizeof(buf), "%s", c->addr + 1);
		end = strchr(buf, ']');
		hc->family = AF_INET6;
	} else {
		snprintf(buf, sizeof(buf), "%s", c->addr);
		end = strrchr(buf, ':');
		hc->family = AF_INET;
	}
	if (end)
		*end = '\0';
	snprintf(host, hostlen, "%s", buf);
	return inet_pton(hc->family, buf, hc->addr) == 1;
}

/*
 * The method auth_type (or the first matching auth_hba_file rule) asks of this client, and
 * into *clientcert what that rule asks of its certificate.
 */
static enum login_method login_method_of(const struct client *c, char *host, size_t hostlen,
					 enum hba_clientcert *clientcert)
{
	struct hba_client hc;
	struct hba_verdict v;

	*clientcert = HBA_CLIENTCERT_NONE;
	snprintf(host, hostlen, "%s", c->addr);
	switch (clients_cfg(c->cs)->auth_type) {
	case AUTH_ANY:
		return LOGIN_ANY;
	case AUTH_TRUST:
		return LOGIN_TRUST;
	case AUTH_PASSWORD:
		return LOGIN_PASSWORD;
	case AUTH_MD5:
		return LOGIN_MD5;
	case AUTH_SCRAM_SHA_256:
		return LOGIN_SCRAM;
	case AUTH_CERT:
		return LOGIN_CERT;
	case AUTH_HBA:
		break;
	}
	if (!hba_client_of(c, &hc, host, hostlen) || !clients_cfg(c->cs)->hba ||
	    !hba_match(clients_cfg(c->cs)->hba, &hc, &v))
		return LOGIN_NO_RULE;
	*clientcert = v.clientcert;
	switch (v.method) {
	case HBA_TRUST:
		return LOGIN_TRUST;
	case HBA_REJECT:
		return LOGIN_REJECT;
	case HBA_MD5:
		return LOGIN_MD5;
	case HBA_SCRAM_SHA_256:
		return LOGIN_SCRAM;
	case HBA_PASSWORD:
		return LOGIN_PASSWORD;
	case HBA_CERT:
		return LOGIN_CERT;
	}
	return LOGIN_NO_RULE;
}

static void send_auth_request(struct client *c, enum be_auth_code code, const void *data,
			      size_t len)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_auth_request(&mb, code, data, len);
	client_send(c, &mb);
	mb_free(&mb);
}

static bool enter_pool(struct client *c);
static bool enter_console(struct client *c, bool can_write);
static bool start_auth(struct client *c);

/* auth_query answered for a waiting client: go on with authentication. */
static void on_auth_query(void *arg, const char *secret, const char *error)
{
	struct client *c = arg;

	if (c->state != CLIENT_LOGIN || !c->auth_query_wait)
		return;
	c->auth_query_wait = false;
	c->auth_query_done = true;
	if (error) {
		client_close(c, "08006", "could not look up the password of user \"%s\"", c->user);
		return;
	}
	if (secret && !(c->auth_secret = strdup(secret))) {
		client_close(c, "53200", "out of memory");
		return;
	}
	start_auth(c);
}

/*
 * When the user is not in auth_file and auth_query is on, look its secret up. Returns 1 when
 * authentication can go on now, 0 when the client waits for the answer, -1 when it was closed.
 */
static int fetch_secret(struct client *c)
{
	const struct config *cfg = clients_cfg(c->cs);
	char conninfo[2048], why[256];
	char *secret = NULL;

	if (!*auth_user_of(c) || c->auth_query_done || in_auth_file(c))
		return 1;
	if (!auth_query_conninfo(c, conninfo, sizeof(conninfo), why, sizeof(why))) {
		client_log(LOG_LVL_WARNING, c, "%s", why);
		client_close(c, "08006", "could not look up the password of user \"%s\"", c->user);
		return -1;
	}
	switch (authquery_lookup(&c->cs->authquery, c->cs->loop, conninfo, cfg->auth_query,
				 cfg->auth_cache_ttl, cfg->server_connect_timeout, c->user,
				 on_auth_query, c, &secret)) {
	case AUTHQUERY_CACHED:
		c->auth_query_done = true;
		c->auth_secret = secret;
		return 1;
	case AUTHQUERY_WAIT:
		c->auth_query_wait = true;
		return 0;
	case AUTHQUERY_ERROR:
		client_close(c, "08006", "could not look up the password of user \"%s\"", c->user);
		return -1;
	case AUTHQUERY_BUSY:
		client_close(c, "53300",
			     "too many logins are waiting for auth_query, try again later");
		return -1;
	case AUTHQUERY_FAILED:
		break;
	}
	client_close(c, "53200", "out of memory");
	return -1;
}

/*
 * The user is in auth_file (with any secret, even none) or auth_query found it. A user
 * auth_query found without a password has "" as its secret, unlike one it did not find.
 */
static bool user_is_known(const struct client *c)
{
	return in_auth_file(c) || c->auth_secret;
}

/*
 * As PgBouncer: the OS user that runs pgmux reaches the admin console over the unix socket
 * without a password, under the user name pgmux (or pgbouncer, for existing scripts). It could
 * read the config and auth_file anyway; the kernel vouches for the peer's identity.
 */
static bool is_own_os_user_at_console(const struct client *c)
{
	return clients_is_console_db(c->cs, c->dbname) && c->conn.is_unix &&
	       (strcmp(c->user, "pgmux") == 0 || strcmp(c->user, "pgbouncer") == 0) &&
	       conn_peer_is_own_user(&c->conn);
}

/*
 * An hba rule's clientcert: the client must have shown a certificate, and for verify-full one
 * whose common name is its user name; refused with 28000 as PostgreSQL words it. The TLS layer
 * asks for a certificate only when client_tls_sslmode is verify-ca or verify-full, and then
 * fails the handshake unless it verifies, so a certificate seen here is a verified one.
 */
static bool client_cert_ok(struct client *c, enum hba_clientcert clientcert)
{
	char cn[256];

	if (clientcert == HBA_CLIENTCERT_NONE)
		return true;
	if (!c->conn.tls || !conn_tls_peer_name(&c->conn, cn, sizeof(cn))) {
		client_close(c, "28000", "connection requires a valid client certificate");
		return false;
	}
	if (clientcert == HBA_CLIENTCERT_VERIFY_FULL && strcmp(cn, c->user) != 0) {
		client_close(c, "28000",
			     "certificate validation (clientcert=verify-full) failed for "
			     "user \"%s\": CN mismatch",
			     c->user);
		return false;
	}
	return true;
}

/* Ask for what the method needs, or let the client in / refuse it. False if it was closed. */
static bool start_auth(struct client *c)
{
	char host[64];
	enum hba_clientcert clientcert;
	enum login_method m = login_method_of(c, host, sizeof(host), &clientcert);
	const char *secret;
	/* Lists of names, each NUL-terminated, ending with an empty name. */
	static const char mechanisms[] = SCRAM_MECHANISM "\0";
	static const char mechanisms_plus[] = SCRAM_MECHANISM "-PLUS\0" SCRAM_MECHANISM "\0";
	uint8_t end_point[64];
	size_t end_point_len;
	char cn[256];

	if (is_own_os_user_at_console(c)) {
		client_log(LOG_LVL_INFO, c,
			   "admin console login by the OS user running pgmux "
			   "(unix socket, no password)");
		return enter_console(c, true);
	}
	if (m != LOGIN_CERT && m != LOGIN_REJECT && !client_cert_ok(c, clientcert))
		return false;
	if (m == LOGIN_TRUST || m == LOGIN_PASSWORD || m == LOGIN_MD5 || m == LOGIN_SCRAM) {
		int r = fetch_secret(c);

		if (r <= 0)
			return r == 0;
	}
	secret = user_secret(c);
	switch (m) {
	case LOGIN_ANY:
		return enter_pool(c);
	case LOGIN_TRUST:
		if (!user_is_known(c)) {
			/* As PgBouncer: trust spares the password, not the user list. */
			client_log(
				LOG_LVL_WARNING, c,
				"user \"%s\" is not in auth_file \"%s\": auth_type = "
				"trust admits only the users listed there (a line \"%s\" \"\" will do)",
				c->user, clients_cfg(c->cs)->auth_file, c->user);
			client_close(c, "28P01", "\"trust\" authentication failed");
			return false;
		}
		return enter_pool(c);
	case LOGIN_NO_RULE:
		client_close(
			c, "28000",
			"no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
			host, c->user, c->dbname, c->conn.tls ? "SSL encryption" : "no encryption");
		return false;
	case LOGIN_REJECT:
		client_close(c, "28000",
			     "pg_hba.conf rejects connection for host \"%s\", user \"%s\", "
			     "database \"%s\", %s",
			     host, c->user, c->dbname,
			     c->conn.tls ? "SSL encryption" : "no encryption");
		return false;
	case LOGIN_CERT:
		/* The TLS layer verified the certificate (client_tls_sslmode verify-ca/full). */
		if (!c->conn.tls || !conn_tls_peer_name(&c->conn, cn, sizeof(cn))) {
			client_close(c, "28000", "connection requires a valid client certificate");
			return false;
		}
		if (strcmp(cn, c->user) != 0) {
			client_close(c, "28000",
				     "certificate authentication failed for user \"%s\"", c->user);
			return false;
		}
		return enter_pool(c);
	case LOGIN_PASSWORD:
		c->auth_method = BE_AUTH_CLEARTEXT_PASSWORD;
		send_auth_request(c, BE_AUTH_CLEARTEXT_PASSWORD, NULL, 0);
		return true;
	case LOGIN_MD5:
		if (secret && secret_kind_of(secret) == SECRET_SCRAM)
			break;
		if (RAND_bytes(c->auth_salt, sizeof(c->auth_salt)) != 1) {
			client_close(c, "XX000", "could not generate a random salt");
			return false;
		}
		c->auth_method = BE_AUTH_MD5_PASSWORD;
		send_auth_request(c, BE_AUTH_MD5_PASSWORD, c->auth_salt, 4);
		return true;
	case LOGIN_SCRAM:
		break;
	}
	c->auth_method = BE_AUTH_SASL;
	if (c->conn.tls && conn_tls_server_end_point(&c->conn, end_point, &end_point_len))
		send_auth_request(c, BE_AUTH_SASL, mechanisms_plus, sizeof(mechanisms_plus));
	else
		send_auth_request(c, BE_AUTH_SASL, mechanisms, sizeof(mechanisms));
	return true;
}

/* Attach an authenticated client to the admin console; can_write: every command allowed. */
static bool enter_console(struct client *c, bool can_write)
{
	login_forget_secrets(c);
	/*
	 * Console commands are a line each, and the console holds a query whole: the login cap
	 * stays, so a stats user cannot make pgmux buffer max_packet_size.
	 */
	conn_set_framing(&c->conn, false, LOGIN_PACKET_MAX);
	c->admin = true;
	c->admin_can_write = can_write;
	send_admin_login_ok(c);
	pool_console_client_logged_in(c);
	conn_resume(&c->conn);
	return true;
}

/* The login is authenticated: attach to the admin console or a pool. */
static bool enter_pool(struct client *c)
{
	struct database *db;
	const char *user;

	if (clients_is_console_db(c->cs, c->dbname)) {
		bool admin = config_list_contains(clients_cfg(c->cs)->admin_users, c->user);
		bool stats = config_list_contains(clients_cfg(c->cs)->stats_users, c->user);

		if (!admin && !stats) {
			client_close(c, "28000", "not allowed to connect to the admin console");
			return false;
		}
		return enter_console(c, admin);
	}
	db = database_lookup(c->cs->pools, c->dbname);
	if (!db) {
		client_close(c, "3D000", "no such database: %s", c->dbname);
		return false;
	}
	if (db->disabled) {
		client_close(c, "57P03", "database \"%s\" is disabled", c->dbname);
		return false;
	}
	if (db->entry && db->entry->shards[0] && !(db = client_shard_login(c, db)))
		return false;
	user = db->entry && *db->entry->user ? db->entry->user : c->user;
	c->pool = pool_get(c->cs->pools, db, user);
	if (!c->pool) {
		client_close(c, "53200", "out of memory");
		return false;
	}
	if (c->auth_secret && *c->auth_secret && strcmp(user, c->user) == 0 &&
	    secret_kind_of(c->auth_secret) != SECRET_SCRAM)
		snprintf(c->pool->user->queried_secret, sizeof(c->pool->user->queried_secret), "%s",
			 c->auth_secret);
	if (c->proven_password && strcmp(user, c->user) == 0)
		snprintf(c->pool->user->proven_password, sizeof(c->pool->user->proven_password),
			 "%s", c->proven_password);
	if (c->scram_pass_through && c->scram && c->scram->state == SCRAM_SERVER_DONE &&
	    strcmp(user, c->user) == 0) {
		struct pool_user *u = c->pool->user;

		memcpy(u->scram_client_key, c->scram->client_key, sizeof(u->scram_client_key));
		memcpy(u->scram_server_key, c->scram->secret.server_key,
		       sizeof(u->scram_server_key));
		u->scram_keys_set = true;
	}
	login_forget_secrets(c);
	/* Authenticated: from here on messages may be as large as the configuration allows. */
	conn_set_framing(&c->conn, false, (uint32_t)clients_cfg(c->cs)->max_packet_size);
	pool_client_logged_in(c);
	return true;
}

bool login_internal(struct client *c, struct pool *p)
{
	if (!new_cancel_key(c)) {
		client_close(c, "XX000", "could not generate random cancel key");
		return false;
	}
	c->pool = p;
	conn_set_framing(&c->conn, false, (uint32_t)clients_cfg(c->cs)->max_packet_size);
	pool_client_logged_in(c);
	return true;
}

/*
 * As PostgreSQL: one SSLRequest and one GSSENCRequest per connection, neither once TLS is up. A
 * repeated one is what PostgreSQL then takes it for, a startup packet of protocol 1234.5679
 * (.5680), and refused with its words. Without this a client that never reads could loop
 * through requests, each answered with a byte queued for it.
 */
static bool refuse_repeated_request(struct client *c, bool *done, uint32_t code)
{
	if (!*done && !c->conn.tls) {
		*done = true;
		return false;
	}
	client_close(c, "0A000", "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
		     code >> 16, code & 0xffff);
	return true;
}

/* What a login needs from the CSPRNG, drawn before authentication starts. False: closed. */
static bool draw_login_keys(struct client *c)
{
	const char *what = !new_cancel_key(c)  ? "cancel key"
			   : !salt_key_ready() ? "salt key"
					       : NULL;

	if (!what)
		return true;
	client_log(LOG_LVL_ERROR, c, "the random number generator failed: login refused");
	client_close(c, "XX000", "could not generate random %s", what);
	return false;
}

/* The login may take a slot: admins on their way to the admin console may use the reserve. */
static bool has_slot(const struct client *c)
{
	const struct clients *cs = c->cs;
	bool admin = clients_is_console_db(cs, c->dbname) &&
		     (config_list_contains(clients_cfg(cs)->admin_users, c->user) ||
		      is_own_os_user_at_console(c));

	return admit_login(c, admin);
}

static enum conn_action handle_startup(struct client *c, const uint8_t *whole, uint32_t len)
{
	struct startup_msg m;
	char err[256];
	struct msgbuf mb;

	switch (startup_parse(whole, len, &m, err, sizeof(err))) {
	case STARTUP_SSL:
		if (refuse_repeated_request(c, &c->ssl_requested, PROTO_SSL))
			return CONN_CLOSED;
		return client_tls_ssl_request(c, len);
	case STARTUP_GSSENC:
		if (refuse_repeated_request(c, &c->gssenc_requested, PROTO_GSSENC))
			return CONN_CLOSED;
		/* No GSS encryption: 'N' and the client goes on (or gives up). */
		conn_write(&c->conn, "N", 1);
		return CONN_CONSUME;
	case STARTUP_CANCEL:
		client_cancel_request(c->cs, m.cancel_pid, m.cancel_key);
		client_close(c, NULL, "cancel request handled");
		return CONN_CLOSED;
	case STARTUP_OLD_PROTO:
		client_close(c, "0A000", "%s", err); /* as PostgreSQL: not supported, not broken */
		return CONN_CLOSED;
	case STARTUP_BAD:
		client_close(c, "08P01", "%s", err);
		return CONN_CLOSED;
	case STARTUP_V3:
		break;
	}
	if (!client_tls_check_startup(c))
		return CONN_CLOSED;
	/* Accepted before a takeover: not a refusal, the client logs in here and stays. */
	if (*c->cs->shutting_down && !*c->cs->handed_over) {
		client_close(c, "57P01", "pgmux is shutting down");
		return CONN_CLOSED;
	}
	if (!take_startup_params(c, &m))
		return CONN_CLOSED;
	if (!has_slot(c)) {
		client_close(c, "53300", "no more connections allowed (max_client_conn)");
		return CONN_CLOSED;
	}
	if (!draw_login_keys(c))
		return CONN_CLOSED;
	if ((m.version & 0xffff) != 0 || m.nunknown_opts) {
		/* Newer 3.x minor or _pq_ options: say what we speak, then go on as 3.0. */
		mb_init(&mb);
		build_negotiate_version(&mb, 0, m.nunknown_opts, m.unknown_opts);
		client_send(c, &mb);
		mb_free(&mb);
	}
	conn_set_framing(&c->conn, false, LOGIN_PACKET_MAX);
	return start_auth(c) ? CONN_CONSUME : CONN_CLOSED;
}

/* Compare two passwords in time that depends on neither content nor length: hash both first. */
static bool plain_equal(const char *given, const char *secret)
{
	uint8_t h1[EVP_MAX_MD_SIZE], h2[EVP_MAX_MD_SIZE];
	unsigned int n1 = 0, n2 = 0;
	bool ok = EVP_Digest(given, strlen(given), h1, &n1, EVP_sha256(), NULL) == 1 &&
		  EVP_Digest(secret, strlen(secret), h2, &n2, EVP_sha256(), NULL) == 1 &&
		  n1 == n2 && CRYPTO_memcmp(h1, h2, n1) == 0;

	OPENSSL_cleanse(h1, sizeof(h1));
	OPENSSL_cleanse(h2, sizeof(h2));
	return ok;
}

/*
 * Slots of the derived-key cache: enough for every plaintext auth_file user of a large site and
 * the users who log in with cleartext passwords against SCRAM secrets (about 180 bytes each).
 */
#define KDFCACHE_SLOTS 8192

/* Labels that keep the tags of the cache's two uses apart. */
#define TAG_SCRAM_FROM_PLAIN "scram-from-plain"
#define TAG_CLEARTEXT_MATCHED "cleartext-matched"

/* What checking a password (or preparing a SCRAM secret) concluded. */
enum pw_check {
	PW_OK,
	PW_WRONG, /* wrong password, unknown user or unusable secret: 28P01 */
	PW_BUSY,  /* the PBKDF2 budget of this second is spent: 53300, try again */
};

/*
 * The clients' cache of derived keys (struct clients), made on first use and emptied when
 * auth_file is read again. NULL when out of memory: nothing is cached and no PBKDF2 is afforded.
 */
static struct kdfcache *kdfcache_of(struct client *c)
{
	struct clients *cs = c->cs;

	if (!cs->kdfcache)
		cs->kdfcache = kdfcache_new(KDFCACHE_SLOTS);
	if (cs->kdfcache)
		kdfcache_bind(cs->kdfcache, clients_cfg(cs)->userlist);
	return cs->kdfcache;
}

/* auth_kdf_budget (milliseconds of PBKDF2 per second) in microseconds. */
static long kdf_budget_us(const struct client *c)
{
	return (long)clients_cfg(c->cs)->auth_kdf_budget * 1000;
}

/* May this login run PBKDF2 with so many iterations now? */
static bool kdf_afford(struct client *c, struct kdfcache *kc, long iterations)
{
	if (kc && kdfcache_afford(kc, clock_now_us(), kdf_budget_us(c), iterations))
		return true;
	if (clients_cfg(c->cs)->verbose > 0)
		client_log(LOG_LVL_DEBUG, c, "password check refused: auth_kdf_budget spent");
	return false;
}

/*
 * The process's CPU time now (not the loop's cached time: PBKDF2 runs within one iteration).
 * CPU time, not wall time, so that a machine busy with other work does not make a derivation
 * look dearer than it is and turn the budget into refusals.
 */
static uint64_t kdf_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Charge what a derivation that started at started_us cost to the budget. */
static void kdf_charge(struct kdfcache *kc, long iterations, uint64_t started_us)
{
	if (kc)
		kdfcache_charge(kc, iterations, kdf_clock_us() - started_us);
}

/*
 * A cleartext password against a stored SCRAM secret, or (secret NULL) an unknown user's: a
 * password that matched before is answered from the cache; otherwise PBKDF2 runs at the
 * secret's count, paid from the budget. An unknown user pays for a derivation at the default
 * count too, so the time taken does not tell whether the user exists.
 */
static enum pw_check check_cleartext_scram(struct client *c, const char *secret, const char *given)
{
	struct kdfcache *kc = kdfcache_of(c);
	const char *parts[] = { TAG_CLEARTEXT_MATCHED, c->user, secret, given };
	uint8_t tag[KDFCACHE_TAG_LEN], salt[SCRAM_SALT_LEN];
	struct scram_secret parsed;
	char mock[SCRAM_SECRET_MAX];
	bool tagged = kc && kdfcache_tag(kc, parts, 4, tag), ok;
	long iterations = SCRAM_DEFAULT_ITERATIONS;
	uint64_t started_us;

	if (tagged && kdfcache_get(kc, tag, NULL))
		return PW_OK;
	if (secret && scram_parse_secret(secret, &parsed))
		iterations = parsed.iterations;
	OPENSSL_cleanse(&parsed, sizeof(parsed));
	/* A check dearer than a whole second's budget could stall the loop for seconds. */
	if (kc && kdfcache_estimate_us(kc, iterations) > (double)kdf_budget_us(c)) {
		client_log(LOG_LVL_WARNING, c,
			   "the SCRAM secret of user \"%s\" has %ld iterations, "
			   "more than auth_kdf_budget allows a second: a cleartext password is not "
			   "checked against it",
			   c->user, iterations);
		return PW_WRONG;
	}
	if (!kdf_afford(c, kc, iterations))
		return PW_BUSY;
	started_us = kdf_clock_us();
	if (!secret) {
		stable_salt(c->user, salt);
		scram_make_secret_salted(given, SCRAM_DEFAULT_ITERATIONS, salt, sizeof(salt), mock,
					 sizeof(mock));
		OPENSSL_cleanse(mock, sizeof(mock));
		kdf_charge(kc, iterations, started_us);
		return PW_WRONG;
	}
	ok = scram_secret_matches(secret, given);
	kdf_charge(kc, iterations, started_us);
	if (ok && tagged)
		kdfcache_put(kc, tag, NULL);
	return ok ? PW_OK : PW_WRONG;
}

static enum pw_check check_password(struct client *c, const char *given)
{
	const char *secret = user_secret(c);
	char expect[MD5_PASSWORD_LEN + 1];
	enum pw_check r;
	bool ok;

	if (c->auth_method == BE_AUTH_CLEARTEXT_PASSWORD) {
		enum secret_kind kind = secret ? secret_kind_of(secret) : SECRET_SCRAM;

		if (kind == SECRET_PLAIN)
			return plain_equal(given, secret) ? PW_OK : PW_WRONG;
		if (kind == SECRET_MD5) {
			if (!md5_password_hash(c->user, given, expect))
				return PW_WRONG;
			ok = CRYPTO_memcmp(expect, secret, MD5_PASSWORD_LEN) == 0;
			OPENSSL_cleanse(expect, sizeof(expect));
			return ok ? PW_OK : PW_WRONG;
		}
		r = check_cleartext_scram(c, secret, given);
		if (r == PW_OK && !(c->proven_password = strdup(given)))
			return PW_WRONG;
		return r;
	}
	if (!secret)
		return PW_WRONG;
	if (!md5_password_response(c->user, secret, c->auth_salt, expect))
		return PW_WRONG;
	ok = strlen(given) == MD5_PASSWORD_LEN &&
	     CRYPTO_memcmp(expect, given, MD5_PASSWORD_LEN) == 0;
	OPENSSL_cleanse(expect, sizeof(expect));
	return ok ? PW_OK : PW_WRONG;
}

/* The PBKDF2 budget is spent: refuse for now, in words that say it is worth trying again. */
static enum conn_action too_busy(struct client *c)
{
	client_close(c, "53300", "too many password checks at once, try again later");
	return CONN_CLOSED;
}

static enum conn_action auth_failed(struct client *c)
{
	client_close(c, "28P01", "password authentication failed for user \"%s\"", c->user);
	return CONN_CLOSED;
}

static enum conn_action handle_password(struct client *c, const struct pkt_header *hdr,
					const uint8_t *whole)
{
	const char *given;

	if (hdr->type != 'p' ||
	    !fe_parse_password(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &given)) {
		client_close(c, "08P01", "expected password response");
		return CONN_CLOSED;
	}
	switch (check_password(c, given)) {
	case PW_OK:
		break;
	case PW_WRONG:
		return auth_failed(c);
	case PW_BUSY:
		return too_busy(c);
	}
	c->auth_method = BE_AUTH_OK;
	return enter_pool(c) ? CONN_CONSUME : CONN_CLOSED;
}

/*
 * A plaintext password turned into a SCRAM secret (salt stable per user, default count): from
 * the cache, or derived once, paid from the budget, and remembered.
 */
static enum pw_check scram_secret_from_plain(struct client *c, const char *password,
					     struct scram_secret *out)
{
	struct kdfcache *kc = kdfcache_of(c);
	const char *parts[] = { TAG_SCRAM_FROM_PLAIN, c->user, password };
	uint8_t tag[KDFCACHE_TAG_LEN], salt[SCRAM_SALT_LEN];
	char made[SCRAM_SECRET_MAX];
	bool tagged = kc && kdfcache_tag(kc, parts, 3, tag), ok;
	uint64_t started_us;

	if (tagged && kdfcache_get(kc, tag, out))
		return PW_OK;
	if (!kdf_afford(c, kc, SCRAM_DEFAULT_ITERATIONS))
		return PW_BUSY;
	started_us = kdf_clock_us();
	stable_salt(c->user, salt);
	ok = scram_make_secret_salted(password, SCRAM_DEFAULT_ITERATIONS, salt, sizeof(salt), made,
				      sizeof(made)) &&
	     scram_parse_secret(made, out);
	kdf_charge(kc, SCRAM_DEFAULT_ITERATIONS, started_us);
	OPENSSL_cleanse(made, sizeof(made));
	if (ok && tagged)
		kdfcache_put(kc, tag, out);
	return ok ? PW_OK : PW_WRONG;
}

/*
 * Do for a user without a usable secret the cache look-up a plaintext-secret user's SCRAM login
 * does, so that both answer SASLInitialResponse in the same time.
 */
static void mock_cache_lookup(struct client *c)
{
	struct kdfcache *kc = kdfcache_of(c);
	const char *parts[] = { TAG_SCRAM_FROM_PLAIN, c->user, "" };
	uint8_t tag[KDFCACHE_TAG_LEN];
	struct scram_secret unused;

	if (kc && kdfcache_tag(kc, parts, 3, tag))
		kdfcache_get(kc, tag, &unused);
	OPENSSL_cleanse(&unused, sizeof(unused));
}

/*
 * The stored secret as SCRAM sees it, into *out: a SCRAM secret as is (pass-through possible,
 * *is_stored_scram set), a plaintext password turned into one. PW_WRONG for no secret or an md5
 * one (SCRAM cannot use it: the exchange runs against a mock), PW_BUSY when a plaintext password
 * would need a derivation the budget cannot pay for now.
 */
static enum pw_check scram_secret_of(struct client *c, struct scram_secret *out,
				     bool *is_stored_scram)
{
	const char *secret = user_secret(c);

	*is_stored_scram = false;
	switch (secret ? secret_kind_of(secret) : SECRET_MD5) {
	case SECRET_SCRAM:
		*is_stored_scram = true;
		return scram_parse_secret(secret, out) ? PW_OK : PW_WRONG;
	case SECRET_PLAIN:
		return scram_secret_from_plain(c, secret, out);
	case SECRET_MD5:
		if (secret && clients_cfg(c->cs)->verbose > 0)
			client_log(LOG_LVL_DEBUG, c, "user has an md5 secret: SCRAM cannot use it");
		mock_cache_lookup(c);
		return PW_WRONG;
	}
	return PW_WRONG;
}

static enum conn_action sasl_malformed(struct client *c, const char *why)
{
	client_close(c, "08P01", "%s", why);
	return CONN_CLOSED;
}

/* SASLInitialResponse: mechanism, then the client-first message. */
static enum conn_action handle_sasl_initial(struct client *c, const struct pkt_header *hdr,
					    const uint8_t *whole)
{
	struct fe_sasl_initial msg;
	struct scram_secret secret;
	bool have_secret, stored;
	uint8_t salt[SCRAM_SALT_LEN];
	char out[SCRAM_MESSAGE_MAX], err[128];
	size_t outn;
	uint8_t end_point[64];
	size_t end_point_len = 0;
	bool plus, have_cb;

	if (hdr->type != 'p')
		return sasl_malformed(c, "expected SASL response");
	/* pgmux needs the client-first message: an initial response without data is refused too. */
	if (!fe_parse_sasl_initial(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &msg) ||
	    msg.data_len < 0)
		return sasl_malformed(c, "malformed SASLInitialResponse message");
	plus = strcmp(msg.mechanism, SCRAM_MECHANISM "-PLUS") == 0;
	have_cb = c->conn.tls && conn_tls_server_end_point(&c->conn, end_point, &end_point_len);
	if (strcmp(msg.mechanism, SCRAM_MECHANISM) != 0 && !(plus && have_cb))
		return sasl_malformed(c,
				      "client selected an invalid SASL authentication mechanism");

	switch (scram_secret_of(c, &secret, &stored)) {
	case PW_OK:
		have_secret = true;
		break;
	case PW_WRONG:
		have_secret = false;
		break;
	case PW_BUSY:
		OPENSSL_cleanse(&secret, sizeof(secret));
		return too_busy(c);
	}
	stable_salt(c->user, salt);
	c->scram = calloc(1, sizeof(*c->scram));
	if (!c->scram ||
	    !scram_server_init(c->scram, have_secret ? &secret : NULL, salt, sizeof(salt), NULL)) {
		OPENSSL_cleanse(&secret, sizeof(secret));
		client_close(c, "XX000", "could not start a SCRAM exchange");
		return CONN_CLOSED;
	}
	OPENSSL_cleanse(&secret, sizeof(secret));
	if (have_cb &&
	    !scram_server_set_channel_binding(c->scram, plus, end_point, end_point_len)) {
		client_close(c, "XX000", "could not set up SCRAM channel binding");
		return CONN_CLOSED;
	}
	c->scram_pass_through = have_secret && stored;
	if (scram_server_first(c->scram, (const char *)msg.data, (size_t)msg.data_len, out,
			       sizeof(out), &outn, err, sizeof(err)) != SCRAM_SERVER_OK)
		return sasl_malformed(c, err);
	c->auth_method = BE_AUTH_SASL_CONTINUE;
	send_auth_request(c, BE_AUTH_SASL_CONTINUE, out, outn);
	return CONN_CONSUME;
}

/* SASLResponse: the client-final message with the proof. */
static enum conn_action handle_sasl_response(struct client *c, const struct pkt_header *hdr,
					     const uint8_t *whole)
{
	char out[SCRAM_MESSAGE_MAX], err[128];
	const uint8_t *data;
	size_t outn, dlen;

	if (hdr->type != 'p' ||
	    !fe_parse_sasl_response(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &data, &dlen))
		return sasl_malformed(c, "expected SASL response");
	switch (scram_server_final(c->scram, (const char *)data, dlen, out, sizeof(out), &outn, err,
				   sizeof(err))) {
	case SCRAM_SERVER_OK:
		break;
	case SCRAM_SERVER_MALFORMED:
		return sasl_malformed(c, err);
	case SCRAM_SERVER_BAD_PROOF:
		return auth_failed(c);
	}
	send_auth_request(c, BE_AUTH_SASL_FINAL, out, outn);
	c->auth_method = BE_AUTH_OK;
	return enter_pool(c) ? CONN_CONSUME : CONN_CLOSED;
}

enum conn_action login_on_packet(struct client *c, const struct pkt_header *hdr,
				 const uint8_t *whole)
{
	if (hdr->type == CONN_TLS_HELLO && c->conn.startup) {
		/* Direct TLS counts as the connection's SSL and GSSENC negotiation, as in PostgreSQL. */
		c->ssl_requested = c->gssenc_requested = true;
		return client_tls_direct(c);
	}
	/* The client owes nothing while auth_query runs: refused on its header, never buffered. */
	if (c->auth_query_wait) {
		client_close(c, "08P01", "unexpected message during authentication");
		return CONN_CLOSED;
	}
	if (!whole)
		return CONN_NEED_WHOLE;
	switch (c->auth_method) {
	case BE_AUTH_OK:
		return handle_startup(c, whole, hdr->len);
	case BE_AUTH_SASL:
		return handle_sasl_initial(c, hdr, whole);
	case BE_AUTH_SASL_CONTINUE:
		return handle_sasl_response(c, hdr, whole);
	default:
		return handle_password(c, hdr, whole);
	}
}
