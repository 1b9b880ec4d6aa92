/*
 * client: application connections once logged in (the way in is client/login.c) — relaying the
 * client's messages to its server while keeping count of what the server still owes
 * (ReadyForQuery per Query/Sync), so the pool knows exactly when the unit of work ends; following
 * the session settings and session state that must travel with the client or pin it.
 */
#include "client/client.h"
#include "client/admit.h"
#include "client/cancel.h"
#include "client/clients.h"
#include "client/copysplit.h"
#include "client/login.h"
#include "client/prepared.h"
#include "client/route.h"
#include "client/shard.h"
#include "client/statements.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/authquery.h"
#include "auth/kdfcache.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/events.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/fe.h"
#include "route/pin.h"
#include "server/events.h"
#include "server/server.h"

static enum conn_action on_packet(void *owner, struct conn *conn, const struct pkt_header *hdr,
				  const uint8_t *whole);
static void on_closed(void *owner, struct conn *conn, enum conn_close_reason why);
static void client_on_server_lost(struct client *c);

static void on_accepted(void *owner, struct conn *conn, bool ok, int errnum);
static const struct conn_ops client_ops = { on_packet, on_accepted, on_closed };

void clients_init(struct clients *cs)
{
	memset(cs, 0, sizeof(*cs));
	list_init(&cs->cancel_reqs);
	list_init(&cs->peers);
}

void clients_free(struct clients *cs)
{
	cancel_free_all(cs);
	authquery_destroy(&cs->authquery);
	kdfcache_free(cs->kdfcache);
	cs->kdfcache = NULL;
}

struct client *client_new(struct clients *cs)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c) {
		log_error("out of memory accepting a client");
		return NULL;
	}
	c->id = ++cs->next_id;
	c->cs = cs;
	c->tx_status = 'I';
	list_init(&c->node);
	conn_init(&c->conn, cs->loop, &client_ops, c);
	conn_set_framing(&c->conn, true, PKT_STARTUP_MAX);
	c->connect_time_us = c->request_time_us = clock_now_us();
	snprintf(c->dbname, sizeof(c->dbname), "(nodb)");
	snprintf(c->user, sizeof(c->user), "(nouser)");
	cs->n++;
	pool_client_accepted(c->cs->pools, c);
	return c;
}

struct conn *client_accept(struct clients *cs)
{
	struct client *c = client_new(cs);

	return c ? &c->conn : NULL;
}

/* The listener attached the accepted socket to c's conn (ok), or could not. */
static void on_accepted(void *owner, struct conn *conn, bool ok, int errnum)
{
	struct client *c = owner;

	if (!ok) {
		client_close(c, NULL, "out of memory");
		return;
	}
	conn_peer_name(conn, c->addr, sizeof(c->addr));
	if (!admit_accepted(c)) {
		client_close(c, "53300",
			     "too many connections from this address "
			     "(max_client_conn_per_addr)");
		return;
	}
	if (clients_cfg(c->cs)->log_connections)
		client_log(LOG_LVL_DEBUG, c, "new connection");
}

/* Take like's parameters and session settings; false: out of memory. */
static bool copy_session(struct client *c, const struct client *like)
{
	for (int i = 0; i < PARAM_COUNT; i++) {
		const char *v = param_get(&like->params, (enum tracked_param)i);

		if (v && !param_store(&c->params, (enum tracked_param)i, v))
			return false;
	}
	return settings_copy(&c->settings, &like->settings);
}

bool client_open_internal(struct clients *cs, int fd, const struct client *like, struct pool *p)
{
	struct client *c = client_new(cs);

	if (!c) {
		conn_drop_fd(fd);
		return false;
	}
	snprintf(c->addr, sizeof(c->addr), "unix");
	snprintf(c->user, sizeof(c->user), "%s", like->user);
	snprintf(c->dbname, sizeof(c->dbname), "%s", p->db->name);
	c->session_hint = like->session_hint;
	if (!conn_attach(&c->conn, fd)) {
		conn_drop_fd(fd);
		client_close(c, NULL, "out of memory");
		return false;
	}
	if (!copy_session(c, like)) {
		client_close(c, NULL, "out of memory");
		return false;
	}
	return login_internal(c, p);
}

void client_send(struct client *c, struct msgbuf *mb)
{
	if (mb->failed) {
		client_log(LOG_LVL_ERROR, c, "out of memory building a message");
		return;
	}
	client_send_bytes(c, mb->data, mb->len);
}

void client_send_bytes(struct client *c, const void *data, size_t len)
{
	conn_write(&c->conn, data, len);
	/* The client has an answer from pgmux: its request cannot start over unnoticed. */
	conn_tap_spoil(&c->conn);
}

bool client_local_name(const struct client *c, char *buf, size_t len)
{
	return conn_local_name(&c->conn, buf, len);
}

bool client_tls_describe(const struct client *c, char *buf, size_t len)
{
	return conn_tls_describe(&c->conn, buf, len);
}

void client_buffer_state(const struct client *c, struct conn_buffers *b)
{
	conn_buffer_state(&c->conn, b);
}

static void vsend_error(struct client *c, const char *severity, const char *sqlstate,
			const char *fmt, va_list ap)
{
	char msg[512];
	struct msgbuf mb;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	mb_init(&mb);
	build_error(&mb, severity, sqlstate, "%s", msg);
	client_send(c, &mb);
	mb_free(&mb);
	if (clients_cfg(c->cs)->log_pooler_errors)
		client_log(LOG_LVL_INFO, c, "error: %s %s", sqlstate, msg);
}

void client_send_error(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsend_error(c, "ERROR", sqlstate, fmt, ap);
	va_end(ap);
}

static void client_free(void *obj)
{
	struct client *c = obj;

	login_forget_secrets(c);
	client_pstmts_free(&c->cs->pools->pstmts, &c->pstmts);
	settings_free(&c->settings);
	settings_free(&c->custom_names);
	param_set_free(&c->params);
	free(c->pending_set);
	free(c->deferred_begin);
	client_shard_free(c);
	mb_free(&c->replay);
	free(c);
}

/* The unit of work ended: c lets go of its server. */
static void client_release_server(struct client *c)
{
	pool_release_server(c);
	/* The client may have pipelined more work behind what just finished. */
	if (c->state == CLIENT_IDLE && conn_buffered_input(&c->conn))
		conn_resume(&c->conn);
	/* A PAUSE or a SHUTDOWN may have waited for this server. */
	if (c->cs->console)
		c->cs->console->tick(c->cs->console_arg);
}

void client_unlink_for_replay(struct client *c, const char *reason)
{
	conn_unlink(&c->conn);
	pool_unlink_for_replay(c, reason);
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
			cancel_server_query(c->cs, s);
		s->close_when_released = true;
	}
	client_release_server(c);
}

void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	struct clients *cs = c->cs;

	if (c->state == CLIENT_CLOSING)
		return;
	if (sqlstate) {
		va_start(ap, fmt);
		vsend_error(c, "FATAL", sqlstate, fmt, ap);
		va_end(ap);
	} else if (clients_cfg(cs)->log_disconnections && c->state != CLIENT_LOGIN) {
		char msg[256];

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		client_log(LOG_LVL_DEBUG, c, "closing: %s", msg);
	}
	if (c->admin)
		cs->console->forget_client(cs->console_arg, c);
	copysplit_free(c); /* its legs go now, rolling back what they did not commit */
	detach_server_on_close(c);
	pool_client_closing(c);
	cs->n--;
	admit_released(c);
	if (sqlstate && conn_can_write(&c->conn))
		conn_close_after_flush(&c->conn);
	else
		conn_close(&c->conn);
	if (!conn_is_open(&c->conn))
		evloop_park(cs->loop, c, client_free);
}

static void on_closed(void *owner, struct conn *conn, enum conn_close_reason why)
{
	struct client *c = owner;

	if (c->state == CLIENT_CLOSING) {
		/* The last error was flushed (or could not be): now it can go. */
		conn_close(conn);
		evloop_park(c->cs->loop, c, client_free);
		return;
	}
	if (why == CONN_BAD_PACKET) {
		client_close(c, "08P01",
			     c->conn.startup ? "invalid startup packet"
					     : "invalid message length or format");
		return;
	}
	client_close(c, NULL,
		     why == CONN_EOF ? "client closed the connection" : "client connection failed");
}

/* ReadyForQuery written by pgmux itself. */
static void send_ready(struct client *c, char tx_status)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_ready(&mb, tx_status);
	client_send(c, &mb);
	mb_free(&mb);
}

/* ---- admin console ---- */

static enum conn_action admin_packet(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole)
{
	struct fe_query q;

	switch (hdr->type) {
	case 'Q':
		if (!whole)
			return CONN_NEED_WHOLE;
		if (!fe_parse_query(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &q)) {
			client_close(c, "08P01", "invalid query message");
			return CONN_CLOSED;
		}
		c->cs->console->handle_query(c->cs->console_arg, c, q.sql);
		return c->state == CLIENT_CLOSING ? CONN_CLOSED : CONN_CONSUME;
	case 'X':
		client_close(c, NULL, "client terminated");
		return CONN_CLOSED;
	case 'S':
		send_ready(c, 'I');
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
		c->query_start_us = clock_now_us();
	}
}

/* Message types a client may send after login. */
static bool valid_frontend_type(char type)
{
	return strchr("QPBEDCSHFdcfp", type) != NULL && type != '\0';
}

/*
 * The query text of a Query or an unnamed Parse, or NULL (also for a malformed message, which
 * changes nothing where it goes). A named statement is watched when it is executed: see
 * prepared.c.
 */
static const char *query_text(char type, const uint8_t *body, size_t len, size_t *qlen)
{
	struct fe_query q;
	struct fe_parse p;

	if (type == 'Q') {
		if (!fe_parse_query(body, len, &q))
			return NULL;
		*qlen = q.sql_len;
		return q.sql;
	}
	if (!fe_parse_parse(body, len, &p) || *p.name)
		return NULL;
	*qlen = p.query_len;
	return p.query;
}

static void watch_settings(struct client *c, char type, const uint8_t *whole, uint32_t len)
{
	size_t qlen;
	const char *sql = query_text(type, whole + PKT_HDR_LEN, len - PKT_HDR_LEN, &qlen);

	if (sql)
		client_watch_statement(c, sql, qlen);
}

/*
 * Settings may have changed in ways only the server can tell: it is asked at the end of the unit
 * of work, by name for the custom settings pg_settings does not list.
 */
static void settings_changed(struct client *c, const struct setstmt_changes *ch)
{
	c->settings_dirty = true;
	c->settings_unnamed |= ch->unnamed;
	for (int i = 0; i < ch->n_names; i++)
		if (!settings_put(&c->custom_names, ch->names[i], ""))
			c->settings_unnamed = true;
}

void client_watch_statement(struct client *c, const char *sql, size_t qlen)
{
	struct setstmt_changes ch;
	struct set_stmt st;
	const char *pin;

	if (!c->pin_reason && pool_shares_servers(c->pool) && (pin = pin_reason(sql, qlen))) {
		/* Its state lives on this server only: keep them together rather than break it. */
		c->pin_reason = pin;
		c->server->needs_discard = true;
		client_log(LOG_LVL_INFO, c, "pinned to its server: %s", pin);
	}

	switch (setstmt_parse(sql, qlen, &st)) {
	case SET_LOCAL:
		return;
	case SET_NONE:
		setstmt_scan_changes(sql, qlen, &ch);
		if (ch.any)
			settings_changed(c, &ch);
		return;
	case SET_UNKNOWN:
		setstmt_scan_changes(sql, qlen, &ch);
		settings_changed(c, &ch);
		return;
	default:
		break;
	}
	/* Reported parameters follow themselves: the server reports each change (ParameterStatus). */
	if (param_lookup(st.name) >= 0 && st.kind != SET_RESET_ALL)
		return;
	/*
	 * Inside a transaction it lasts only if the transaction commits (and no savepoint around it
	 * is rolled back): the server says what stuck once the transaction is over.
	 */
	if (c->tx_status != 'I' || c->pending_set || !(c->pending_set = malloc(sizeof(st)))) {
		setstmt_scan_changes(sql, qlen, &ch);
		settings_changed(c, &ch);
		return;
	}
	*c->pending_set = st;
	c->pending_set_failed = false;
}

/* The statement in flight ended: keep its effect if it worked. */
static void settle_settings(struct client *c)
{
	struct set_stmt *st = c->pending_set;
	struct server *s = c->server;

	c->pending_set = NULL;
	/* A pipeline may have opened a transaction before it: the outcome is known at its end. */
	if (!c->pending_set_failed && c->tx_status != 'I')
		c->settings_dirty = true;
	if (!c->pending_set_failed && c->tx_status == 'I') {
		switch (st->kind) {
		case SET_VALUE:
			if (!settings_put(&c->settings, st->name, st->value) ||
			    !settings_put(&s->applied, st->name, st->value))
				c->settings_dirty = true;
			break;
		case SET_RESET:
			settings_remove(&c->settings, st->name);
			settings_remove(&s->applied, st->name);
			break;
		default:
			settings_clear(&c->settings);
			settings_clear(&s->applied);
			break;
		}
	}
	free(st);
}

static enum conn_action relay_linked(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole, bool query_checked);

static enum conn_action relay_packet(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole)
{
	if (!valid_frontend_type(hdr->type) && hdr->type != 'X') {
		client_close(c, "08P01", "invalid frontend message type %d",
			     (unsigned char)hdr->type);
		return CONN_CLOSED;
	}
	if (hdr->type == 'X') {
		client_close(c, NULL, "client terminated");
		return CONN_CLOSED;
	}
	if (c->copy_split) {
		enum conn_action act = copysplit_client_message(c, hdr, whole);

		if (act != CONN_FORWARD)
			return act;
	}
	if (c->discarding)
		return client_discard_packet(c, hdr);
	if (!c->server) {
		/* Sync or Flush with nothing in flight and no server: answer it ourselves. */
		if (hdr->type == 'S' && c->pending_ready == 0 && !c->unsynced) {
			send_ready(c, c->tx_status);
			return CONN_CONSUME;
		}
		if (hdr->type == 'H' && !c->unsynced)
			return CONN_CONSUME;
		/* DEALLOCATE of the client's own statements needs no server. */
		if (hdr->type == 'Q' && prepared_active(c)) {
			enum conn_action act = prepared_query(c, hdr, whole);

			if (act != CONN_FORWARD)
				return act;
		}
		/*
		 * A named Parse outside a transaction of a text a server already accepted needs no
		 * server: it is prepared on whichever server the client's Bind finds. A client that
		 * prepares while holding nothing then cannot wait for a server that its own other
		 * connections hold. Any other Parse goes to a server, which answers it.
		 */
		if (hdr->type == 'P' && prepared_active(c) && c->tx_status == 'I' && !c->unsynced &&
		    c->pending_ready == 0) {
			enum conn_action act = prepared_parse_unlinked(c, hdr, whole);

			if (act != CONN_FORWARD)
				return act;
		}
		if (c->state == CLIENT_IDLE && c->home) {
			enum conn_action act = client_shard_unit(c, hdr, whole);

			if (act != CONN_FORWARD)
				return act;
		}
		if (c->state == CLIENT_IDLE && c->pool->db->cluster) {
			enum conn_action act = client_route_unit(c, hdr, whole);

			if (act != CONN_FORWARD)
				return act;
		}
		if (c->state == CLIENT_IDLE)
			pool_request_server(c);
		/* Linked at once: go on with this message, whose DEALLOCATE check is done. */
		return c->server
			       ? relay_linked(c, hdr, whole, hdr->type == 'Q' && prepared_active(c))
			       : CONN_STOP;
	}
	return relay_linked(c, hdr, whole, false);
}

/*
 * A message of a client that holds a server. query_checked: prepared_query already looked at
 * this Query (while the client held none) and let it through.
 */
static enum conn_action relay_linked(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole, bool query_checked)
{
	if (c->home) {
		enum conn_action act = client_shard_linked(c, hdr, whole);

		if (act != CONN_FORWARD)
			return act;
	}
	if (c->pool->db->cluster) {
		enum conn_action act = client_route_linked(c, hdr, whole);

		if (act != CONN_FORWARD)
			return act;
	}
	if ((hdr->type == 'Q' || hdr->type == 'P') && hdr->len <= SETTINGS_PEEK_MAX) {
		if (!whole)
			return CONN_NEED_WHOLE;
		watch_settings(c, hdr->type, whole, hdr->len);
	}
	if (c->skip_to_sync) {
		/* pgmux failed a Bind in this pipeline: PostgreSQL would skip up to the Sync. */
		if (hdr->type != 'S')
			return CONN_CONSUME;
		c->skip_to_sync = false;
	}
	if (prepared_active(c)) {
		enum conn_action act = hdr->type == 'Q' && !query_checked
					       ? prepared_query(c, hdr, whole)
					       : CONN_FORWARD;

		/* Answered by pgmux (nothing goes to the server), or waiting: nothing to count. */
		if (act != CONN_FORWARD)
			return act;
		act = prepared_client_message(c, hdr, whole);

		if (act == CONN_NEED_WHOLE || act == CONN_CLOSED || act == CONN_STOP)
			return act;
		note_frontend_message(c, hdr->type);
		c->request_time_us = clock_now_us();
		c->pool->stats.bytes_received += hdr->len;
		return act;
	}
	note_frontend_message(c, hdr->type);
	c->request_time_us = clock_now_us();
	c->pool->stats.bytes_received += hdr->len;
	return CONN_FORWARD;
}

static enum conn_action on_packet(void *owner, struct conn *conn, const struct pkt_header *hdr,
				  const uint8_t *whole)
{
	struct client *c = owner;

	switch (c->state) {
	case CLIENT_LOGIN:
		return login_on_packet(c, hdr, whole);
	case CLIENT_WAITING_LOGIN:
	case CLIENT_WAITING:
		return CONN_STOP;
	case CLIENT_CLOSING:
		return CONN_CLOSED;
	case CLIENT_IDLE:
	case CLIENT_ACTIVE:
		if (c->admin)
			return admin_packet(c, hdr, whole);
		return relay_packet(c, hdr, whole);
	}
	return CONN_STOP;
}

/* Keep the request until the server's first answer, so it can be replayed (see server.c). */
#define REPLAY_LIMIT (64 * 1024)

/* Until the server answers, the client's request is kept so it can be replayed elsewhere. */
static bool client_replay_armed(const struct client *c)
{
	return c->conn.tap != NULL;
}

void client_replay_disarm(struct client *c)
{
	conn_tap_stop(&c->conn);
	mb_free(&c->replay);
}

static void replay_arm(struct client *c)
{
	/*
	 * Only a unit of work that starts outside a transaction can start over elsewhere; and not
	 * a read going to every shard once shards before this one have sent their rows.
	 */
	if (c->tx_status != 'I' || client_fanout_midway(c))
		return;
	mb_reset(&c->replay);
	conn_tap_start(&c->conn, &c->replay, REPLAY_LIMIT);
}

/*
 * Forget what processing the request did to the client's protocol position, so that processing
 * it again (on the next server) counts it once.
 */
static void forget_request(struct client *c)
{
	c->pending_ready = 0;
	c->unsynced = false;
	c->in_copy = false;
	c->query_running = false;
	c->skip_to_sync = false;
	c->drain_wait = false;
	free(c->pending_set);
	c->pending_set = NULL;
}

/* The server died before answering: process the client's request again, on another server. */
static void client_replay_elsewhere(struct client *c)
{
	conn_tap_stop(&c->conn);
	/* The request goes back in front of the client's input, as if it had just arrived. */
	if (c->conn.tap_overflow || c->replay.failed ||
	    !conn_unread(&c->conn, c->replay.data, (uint32_t)c->replay.len)) {
		mb_free(&c->replay);
		client_on_server_lost(c);
		return;
	}
	mb_free(&c->replay);
	forget_request(c);
	/* Detach without a word to the client: it must not notice. */
	client_unlink_for_replay(c, "terminated by the administrator");
	conn_resume(&c->conn);
}

/* The pool gave this client a server: start relaying. */
static void client_on_server_linked(struct client *c)
{
	struct server *s = c->server;
	char sql[1024];
	struct msgbuf mb;
	int n = param_diff_sql(&c->params, &s->params, sql, sizeof(sql));

	conn_link(&c->conn, &s->conn); /* each side's reading follows the other's queue */
	/* One internal query, pipelined ahead of the client's: no extra round trip. */
	mb_init(&mb);
	if (n > 0)
		mb_put_bytes(&mb, sql, strlen(sql));
	n += settings_diff_sql(&c->settings, &s->applied, &mb);
	mb_put_u8(&mb, 0);
	if (n > 0 && !mb.failed) {
		server_send_internal_query(s, (const char *)mb.data);
		if (!settings_copy(&s->applied, &c->settings))
			s->settings_unknown = true;
	}
	mb_free(&mb);
	c->xact_start_us = s->link_time_us;
	c->error_sent = false;
	if (c->pin_reason)
		s->needs_discard = true; /* the state it keeps here must not outlive it */
	/* A batch that only prepares runs outside the transaction pgmux holds (client/shard.c). */
	if (!c->unit_outside_txn)
		client_send_deferred_begin(c);
	replay_arm(c);
	conn_resume(&c->conn);
}

static void finish_unit(struct client *c);

/* The linked server sent ReadyForQuery (z, len bytes): relay it, release the server if the unit
 * of work ended. */
static void client_on_ready(struct client *c, const uint8_t *z, uint32_t len)
{
	struct pool *p = c->pool;
	uint64_t now = clock_now_us();
	char tx_status = len > PKT_HDR_LEN ? (char)z[PKT_HDR_LEN] : 'I';

	/* Ran outside the transaction pgmux holds: for the client, that transaction goes on. */
	bool outside = c->unit_outside_txn && tx_status == 'I';

	if (c->pending_ready)
		c->pending_ready--;
	c->tx_status = outside ? 'T' : tx_status;
	if (c->pending_set && !c->pending_ready)
		settle_settings(c);
	if (c->query_running) {
		pool_count_duration(c, false, c->query_start_us, now);
		c->query_running = c->pending_ready > 0;
		c->query_start_us = now;
	}
	c->request_time_us = now;
	if (tx_status != 'I' && pool_releases_per_statement(p) && !c->pending_ready) {
		/* The server's transaction is rolled back on release; the client stays usable. */
		client_send_error(c, "0A000",
				  "transaction blocks not allowed in statement pooling mode");
		send_ready(c, 'I');
		c->tx_status = 'I';
		client_release_server(c);
		return;
	}
	/* A read going to every shard: the client hears one ReadyForQuery, after the last. */
	if (outside)
		send_ready(c, 'T');
	else if (!c->fanout || !client_fanout_on_ready(c))
		conn_write(&c->conn, z, len);
	client_route_drained(c);
	if (c->pending_ready || c->unsynced || c->in_copy || c->server->internal_pending ||
	    tx_status != 'I')
		return;
	c->unit_outside_txn = false;
	pool_count_duration(c, true, c->xact_start_us, now);
	finish_unit(c);
}

/* What pgmux asks of the server before letting it go; then the server goes (client_unit_done). */
static void finish_unit(struct client *c)
{
	if (pool_shares_servers(c->pool) && !c->pin_reason && !c->shutdown_pending) {
		if (c->settings_dirty) {
			bool asked = server_read_settings(c->server, &c->settings,
							  &c->custom_names);

			c->settings_dirty = false;
			settings_clear(&c->custom_names);
			if (asked)
				return;
		}
		if (client_capture_write_lsn(c))
			return;
	}
	client_unit_done(c);
}

/*
 * The server said which settings its session has now (server_read_settings, at the end of a unit
 * of work that changed them): they become the client's, then the unit of work ends.
 */
static void client_on_settings_read(struct client *c, struct settings *now)
{
	struct server *s = c->server;

	/*
	 * The server's word replaces what pgmux had inferred, for the client and the server alike.
	 * No word (the query failed): the client keeps what it had, the server is reset on release.
	 */
	if (!now || !settings_copy(&c->settings, now) || !settings_copy(&s->applied, now))
		s->settings_unknown = true;
	/* A set_config() of a name pgmux could not read, say: only a reset on release undoes it. */
	if (c->settings_unnamed)
		s->settings_unknown = true;
	c->settings_unnamed = false;
	if (c->pending_ready || c->unsynced || c->in_copy || c->tx_status != 'I')
		return; /* more work arrived meanwhile: its ReadyForQuery ends the unit */
	finish_unit(c);
}

bool client_fast_close_due(const struct client *c)
{
	return c->server && c->server->close_when_released &&
	       clients_cfg(c->cs)->server_fast_close && pool_is_session(c->pool) &&
	       !c->query_running && c->tx_status == 'I' && !c->pending_ready && !c->unsynced &&
	       !c->in_copy;
}

void client_fast_close(struct client *c)
{
	/* The client must notice that its session ended: it is closed with its server. */
	client_close(c, "08006",
		     "server_fast_close: server connection closed because the database "
		     "configuration changed");
}

void client_unit_done(struct client *c)
{
	if (c->shutdown_pending) {
		client_close(c, "57P01", "pgmux is shutting down");
		return;
	}
	if (client_fast_close_due(c)) {
		client_fast_close(c);
		return;
	}
	if (pool_shares_servers(c->pool) && !c->pin_reason)
		client_release_server(c);
	if (c->fanout && !c->server)
		client_fanout_next(c);
}

/* The linked server is gone: tell the client what it lost, keep it if its session survives. */
static void client_on_server_lost(struct client *c)
{
	struct msgbuf mb;
	struct server *s = c->server;
	bool keep, tell;

	client_replay_disarm(c);
	s->close_when_released = true;
	/*
	 * What the client had in flight is lost; it survives if nothing is half-sent, and if a
	 * ReadyForQuery will tell it that its transaction is gone: idle inside one, it would send
	 * the rest of that transaction to run outside any.
	 */
	keep = pool_shares_servers(c->pool) && !c->unsynced && !c->in_copy && !c->pin_reason &&
	       !*c->cs->shutting_down && (c->pending_ready || c->tx_status == 'I');
	tell = !c->error_sent && (c->pending_ready || c->tx_status != 'I');
	c->query_running = false;
	c->tx_status = 'I';
	if (!keep) {
		/* client_close flushes the FATAL it sends; one written here would go unflushed. */
		if (tell)
			client_close(c, "08006", "server connection lost");
		else
			client_close(c, NULL, "server connection lost");
		return;
	}
	mb_init(&mb);
	if (tell)
		build_error(&mb, "ERROR", "08006", "server connection lost");
	for (; c->pending_ready; c->pending_ready--)
		build_ready(&mb, 'I');
	client_send(c, &mb);
	mb_free(&mb);
	client_release_server(c);
}

/*
 * An error answers the client's request only if one is in flight. One that arrives while the
 * client waits for nothing (a backend terminated while idle in a transaction says FATAL) is
 * taken by libpq for a notice: the request the client sends next still needs an error of its
 * own if the server is lost before answering it.
 */
static void note_error_relayed(struct client *c)
{
	if (c->pending_ready || c->unsynced)
		c->error_sent = true;
}

/* The server sent an ErrorResponse for the client's current unit of work. */
static void client_on_server_error(struct client *c)
{
	note_error_relayed(c);
	c->pending_set_failed = true;
}

/* pgmux relayed an error of its own in place of the server's answer (prepared statements). */
static void client_on_error_relayed(struct client *c)
{
	note_error_relayed(c);
}

/* The server entered COPY IN or COPY BOTH: the client's CopyData goes through until CopyDone. */
static void client_on_copy_started(struct client *c)
{
	c->in_copy = true;
}

void client_skip_to_sync(struct client *c)
{
	c->skip_to_sync = true;
}

void client_wait_for_drain(struct client *c)
{
	c->drain_wait = true;
}

/*
 * The pool let go of c's server (pool_release_server): no query runs any more. True when
 * settings may have changed in ways only that server could tell (it needs a reset).
 */
static bool client_on_server_released(struct client *c)
{
	bool dirty = c->settings_dirty;

	conn_unlink(&c->conn);
	c->query_running = false;
	c->settings_dirty = false;
	return dirty;
}

/*
 * The server reported a tracked parameter's new value (ParameterStatus) after the client's SET, or
 * pgmux's SET on its behalf: the client now expects that value, so its next server needs no SET
 * for it.
 */
static void client_on_parameter_set(struct client *c, enum tracked_param p, const char *value)
{
	/* Too long or out of memory: the old value stays; a later server may get a needless SET. */
	param_store(&c->params, p, value);
}

/* c started waiting for a server (queued, or logged in while its pool's first server logs in). */
static void client_on_wait_started(struct client *c)
{
	c->wait_start_us = clock_now_us();
}

void client_close_after_transaction(struct client *c)
{
	c->shutdown_pending = true;
}

/* ---- what the linked server tells the client (server/events.h) ---- */

static struct conn *conn_of(struct client *c)
{
	return &c->conn;
}

static bool awaits_ready(const struct client *c)
{
	return c->pending_ready > 0;
}

static enum conn_action shard_message(struct client *c, const struct pkt_header *hdr,
				      const uint8_t *whole)
{
	return c->fanout ? client_fanout_message(c, hdr, whole) : CONN_FORWARD;
}

const struct server_events client_server_events = {
	.conn = conn_of,
	.ready = client_on_ready,
	.awaits_ready = awaits_ready,
	.split = client_on_split,
	.server_error = client_on_server_error,
	.error_relayed = client_on_error_relayed,
	.copy_started = client_on_copy_started,
	.server_lost = client_on_server_lost,
	.close = client_close,
	.replay_armed = client_replay_armed,
	.replay_disarm = client_replay_disarm,
	.replay_elsewhere = client_replay_elsewhere,
	.shard_message = shard_message,
	.parameter_set = client_on_parameter_set,
	.settings_read = client_on_settings_read,
	.write_lsn = client_on_write_lsn,
	.lsn_captured = client_on_lsn_captured,
	.parse_failed = client_on_parse_failed,
	.statement_described = client_on_statement_described,
	.statements_discarded = client_on_statements_discarded,
};

/* ---- what the pool tells the client (pool/events.h) ---- */

const struct pool_events client_pool_events = {
	.login_done = client_finish_login,
	.server_linked = client_on_server_linked,
	.server_released = client_on_server_released,
	.server_closing = cancel_server_closing,
	.wait_started = client_on_wait_started,
	.topology_changed = client_on_topology_changed,
	.close = client_close,
};
