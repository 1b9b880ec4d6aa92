/*
 * client/handoff: an idle client's record and socket, out of this process at an upgrade and
 * into the next one.
 *
 * What makes a client safe to move is that between transactions, in a pool that shares servers,
 * everything it can still refer to is pgmux's own state, not a server's: the parameters and
 * settings it expects (pgmux replays them onto whichever server it gets), its named statements
 * (pgmux prepares them where needed), its cancel key (pgmux's, not a server's). A client whose
 * session state lives on a server (session mode, a pin, a transaction) stays where it is.
 */
#include "client/handoff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/admit.h"
#include "client/client.h"
#include "client/clients.h"
#include "client/shard.h"
#include "client/statements.h"
#include "core/log.h"
#include "ev/conn.h"
#include "ev/takeover.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/clientrec.h"
#include "server/params.h"
#include "server/pstmt.h"

/* The records handed to clients_hand_over_idle's pass go through the takeover connection. */
_Static_assert(CLIENTREC_MAX <= TAKEOVER_RECORD_MAX, "a client's record fits the takeover's");

/* NULL when c may be handed over now; else why not (static text, for the log). */
static const char *handoff_refusal(const struct client *c)
{
	if (c->admin || !c->pool)
		return "connected to the admin console";
	if (!pool_shares_servers(c->pool))
		return "pooled in session mode";
	if (c->conn.tls)
		return "TLS";
	if (c->state != CLIENT_IDLE || c->server || c->tx_status != 'I' || c->pending_ready ||
	    c->unsynced || c->in_copy || c->skip_to_sync || c->discarding || c->deferred_begin ||
	    c->fanout || c->copy_split || c->pending_set)
		return "in a unit of work";
	if (c->pin_reason)
		return "its session state is pinned to a server";
	if (c->settings_dirty || c->custom_names.n)
		return "its settings are not known yet";
	if (c->shutdown_pending)
		return "closing";
	if (conn_buffered_input(&c->conn) || conn_pending_output(&c->conn))
		return "bytes are on their way";
	/* settings and the rest are small beside what max_client_prepared_bytes allows */
	if (c->pstmts.bytes > CLIENTREC_MAX - 1024 * 1024)
		return "its prepared statements are too large to carry";
	return NULL;
}

static void put_settings(const struct client *c, struct msgbuf *mb)
{
	for (size_t i = 0; i < c->settings.n; i++)
		clientrec_setting(mb, c->settings.items[i].name, c->settings.items[i].value,
				  c->settings.items[i].raw);
}

static void put_statements(const struct client *c, struct msgbuf *mb)
{
	for (size_t i = 0; i < c->pstmts.n; i++) {
		const struct cstmt *cs = &c->pstmts.items[i];

		clientrec_statement(mb, cs->name, cs->shape, cs->ps->def, cs->ps->def_len);
	}
}

/* What the client's pool logs in to servers with, when the login of this very user gave it. */
static void put_credentials(const struct client *c, struct msgbuf *mb)
{
	const struct pool_user *u = c->pool->user;

	if (strcmp(u->name, c->user) != 0)
		return;
	if (*u->proven_password)
		clientrec_string(mb, CLIENTREC_PASSWORD, u->proven_password);
	if (u->scram_keys_set)
		clientrec_scram_keys(mb, u->scram_client_key, u->scram_server_key);
	if (*u->queried_secret)
		clientrec_string(mb, CLIENTREC_SECRET, u->queried_secret);
}

/*
 * The record of c (one handoff_refusal accepted) appended to mb, and c's socket, which stays
 * c's until handed_over: the caller sends both. -1: no record (out of memory).
 */
static int handoff_export(const struct client *c, struct msgbuf *mb)
{
	size_t start = mb->len;

	clientrec_begin(mb);
	clientrec_string(mb, CLIENTREC_USER, c->user);
	clientrec_string(mb, CLIENTREC_DATABASE, c->dbname);
	clientrec_string(mb, CLIENTREC_ADDR, c->addr);
	clientrec_cancel(mb, c->cancel_pid, c->cancel_key);
	clientrec_u64(mb, CLIENTREC_CONNECTED, c->connect_time_us);
	for (int i = 0; i < PARAM_COUNT; i++) {
		const char *v = param_get(&c->params, (enum tracked_param)i);

		if (v)
			clientrec_param(mb, (uint8_t)i, v);
	}
	put_settings(c, mb);
	put_statements(c, mb);
	clientrec_u8(mb, CLIENTREC_ROUTE_HINT, c->session_hint);
	if (c->ryw_lsn)
		clientrec_u64(mb, CLIENTREC_RYW_LSN, c->ryw_lsn);
	if (c->shard_session.key)
		clientrec_string(mb, CLIENTREC_SHARD_KEY, c->shard_session.key);
	if (c->shard_session.shard)
		clientrec_string(mb, CLIENTREC_SHARD, c->shard_session.shard);
	put_credentials(c, mb);
	clientrec_end(mb);
	if (mb->failed) {
		mb->len = start;
		return -1;
	}
	return c->conn.fd;
}

/* c's record and socket are on their way: c goes without a word to the client. */
static void handed_over(struct client *c)
{
	/*
	 * Our descriptor goes; the socket stays open in the new process, which holds it now (a
	 * close ends a connection only with the last descriptor of it, and nothing is written).
	 */
	int fd = conn_release_fd(&c->conn);

	if (fd >= 0)
		close(fd);
	if (clients_cfg(c->cs)->log_disconnections)
		client_log(LOG_LVL_INFO, c, "handed over to the next pgmux process");
	client_close(c, NULL, "handed over");
}

int clients_hand_over_idle(struct clients *cs, client_pass_fn pass, void *arg)
{
	struct list_node *pn, *pt, *cn, *ct;
	struct msgbuf mb;
	int sent = 0;

	mb_init(&mb);
	list_for_each_safe(pn, pt, &cs->pools->all) {
		struct pool *p = list_entry(pn, struct pool, node);

		list_for_each_safe(cn, ct, &p->active_clients) {
			struct client *c = list_entry(cn, struct client, node);
			int fd, r;

			if (handoff_refusal(c))
				continue;
			mb_reset(&mb);
			if ((fd = handoff_export(c, &mb)) < 0)
				continue;
			r = pass(arg, fd, mb.data, mb.len);
			if (r < 0) {
				mb_free(&mb);
				return -1;
			}
			if (r == 0)
				continue;
			handed_over(c);
			sent++;
		}
	}
	mb_free(&mb);
	return sent;
}

/* --- the new process --- */

/* The pool's credentials from the record, where this process has none of its own yet. */
static void take_credentials(struct client *c, const struct clientrec_field *f)
{
	struct pool_user *u = c->pool->user;

	if (strcmp(u->name, c->user) != 0)
		return;
	if (f->tag == CLIENTREC_PASSWORD && !*u->proven_password &&
	    f->str_len < sizeof(u->proven_password))
		snprintf(u->proven_password, sizeof(u->proven_password), "%.*s", (int)f->str_len,
			 f->str);
	if (f->tag == CLIENTREC_SECRET && !*u->queried_secret &&
	    f->str_len < sizeof(u->queried_secret))
		snprintf(u->queried_secret, sizeof(u->queried_secret), "%.*s", (int)f->str_len,
			 f->str);
	if (f->tag == CLIENTREC_SCRAM_KEYS && !u->scram_keys_set) {
		memcpy(u->scram_client_key, f->bytes, sizeof(u->scram_client_key));
		memcpy(u->scram_server_key, f->bytes + sizeof(u->scram_client_key),
		       sizeof(u->scram_server_key));
		u->scram_keys_set = true;
	}
}

static bool take_statement(struct client *c, const struct clientrec_field *f)
{
	char name[256];
	struct pstmt *ps;

	if (f->str_len >= sizeof(name))
		return false;
	snprintf(name, sizeof(name), "%.*s", (int)f->str_len, f->str);
	ps = pstmt_registry_get(&c->cs->pools->pstmts, f->bytes, f->bytes_len);
	if (!ps || !client_on_statement_parsed(c, name, ps))
		return false;
	/* the result columns it was told, so that a Describe the new server answers is compared */
	client_on_statement_described(c, ps, (uint32_t)f->num);
	return true;
}

static bool take_setting(struct client *c, const struct clientrec_field *f)
{
	char name[128], *value;
	bool ok;

	if (f->str_len >= sizeof(name) || !(value = strndup(f->value, f->value_len)))
		return false;
	snprintf(name, sizeof(name), "%.*s", (int)f->str_len, f->str);
	ok = f->index ? settings_put_raw(&c->settings, name, value)
		      : settings_put(&c->settings, name, value);
	free(value);
	return ok;
}

/* text into a name buffer of size n; false when it does not fit. */
static bool copy_name(char *to, size_t n, const char *text)
{
	size_t len = strlen(text);

	if (len >= n)
		return false;
	memcpy(to, text, len + 1);
	return true;
}

/* A field that needs only the client, before it has a pool. False: out of memory or too long. */
static bool take_session_field(struct client *c, const struct clientrec_field *f)
{
	char text[1024];

	if (f->tag == CLIENTREC_STATEMENT || f->tag == CLIENTREC_SETTING)
		return f->tag == CLIENTREC_STATEMENT ? take_statement(c, f) : take_setting(c, f);
	if (f->str && f->str_len >= sizeof(text))
		return false;
	if (f->str)
		snprintf(text, sizeof(text), "%.*s", (int)f->str_len, f->str);
	switch (f->tag) {
	case CLIENTREC_USER:
		return copy_name(c->user, sizeof(c->user), text);
	case CLIENTREC_DATABASE:
		return copy_name(c->dbname, sizeof(c->dbname), text);
	case CLIENTREC_ADDR:
		return copy_name(c->addr, sizeof(c->addr), text);
	case CLIENTREC_CANCEL:
		c->cancel_pid = (uint32_t)f->num;
		c->cancel_key = f->num2;
		return true;
	case CLIENTREC_CONNECTED:
		c->connect_time_us = f->num;
		return true;
	case CLIENTREC_PARAM:
		return f->index < PARAM_COUNT &&
		       param_store(&c->params, (enum tracked_param)f->index, text);
	case CLIENTREC_ROUTE_HINT:
		c->session_hint = (uint8_t)f->num;
		return true;
	case CLIENTREC_RYW_LSN:
		c->ryw_lsn = f->num;
		return true;
	case CLIENTREC_SHARD_KEY:
		return client_take_shard_option(c, "pgmux.shard_key", text);
	case CLIENTREC_SHARD:
		return client_take_shard_option(c, "pgmux.shard", text);
	default:
		return true; /* credentials: once the client has its pool */
	}
}

/* The pool of c's user and database, as a login would pick it. NULL: why says. */
static struct pool *pool_of(struct client *c, char *why, size_t whylen)
{
	struct database *db = database_lookup(c->cs->pools, c->dbname);
	struct pool *p;
	const char *user;

	if (!db || db->disabled) {
		snprintf(why, whylen, "database %s is %s here", c->dbname,
			 db ? "disabled" : "unknown");
		return NULL;
	}
	if (db->entry && db->entry->shards[0] && !(db = client_shard_login(c, db))) {
		snprintf(why, whylen, "database %s: no shard to start on", c->dbname);
		return NULL;
	}
	user = db->entry && *db->entry->user ? db->entry->user : c->user;
	if (!(p = pool_get(c->cs->pools, db, user)))
		snprintf(why, whylen, "out of memory");
	return p;
}

static bool adopt_record(struct client *c, const uint8_t *rec, size_t len, char *why, size_t whylen)
{
	struct clientrec_reader r;
	struct clientrec_field f;

	if (!clientrec_open(&r, rec, len, why, whylen))
		return false;
	while (clientrec_next(&r, &f)) {
		if (!take_session_field(c, &f)) {
			snprintf(why, whylen, "field '%c' could not be taken", (char)f.tag);
			return false;
		}
	}
	if (!(c->pool = pool_of(c, why, whylen)))
		return false;
	clientrec_open(&r, rec, len, why, whylen);
	while (clientrec_next(&r, &f))
		take_credentials(c, &f);
	return true;
}

bool client_adopt(struct clients *cs, int fd, const uint8_t *rec, size_t len, char *why,
		  size_t whylen)
{
	struct client *c = client_new(cs);

	if (!c) {
		conn_drop_fd(fd);
		snprintf(why, whylen, "out of memory");
		return false;
	}
	if (!conn_attach(&c->conn, fd)) {
		conn_drop_fd(fd);
		snprintf(why, whylen, "out of memory");
		client_close(c, NULL, "out of memory");
		return false;
	}
	if (!adopt_record(c, rec, len, why, whylen)) {
		/* as a server that goes away between transactions: the client may reconnect */
		client_close(c, "57P01", "terminating connection: %s", why);
		return false;
	}
	if (!admit_accepted(c)) {
		snprintf(why, whylen, "max_client_conn_per_addr");
		client_close(c, "53300",
			     "too many connections from this address "
			     "(max_client_conn_per_addr)");
		return false;
	}
	conn_set_framing(&c->conn, false, (uint32_t)clients_cfg(cs)->max_packet_size);
	pool_client_adopted(c);
	if (clients_cfg(cs)->log_connections)
		client_log(LOG_LVL_INFO, c, "taken over from the previous pgmux process");
	return true;
}
