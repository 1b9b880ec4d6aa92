/*
 * server: connections from pgmux to PostgreSQL once logged in (the way in is server/login.c):
 * relay backend messages to the linked client and notice when a unit of work ends
 * (ReadyForQuery). pgmux's own queries (parameter sync, reset) are pipelined ahead of the
 * client's and their replies consumed, counted by internal_pending.
 */
#include "server/server.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/lsn.h"
#include "pool/pool.h"
#include "proto/be.h"
#include "proto/build.h"
#include "proto/pkt.h"
#include "server/events.h"
#include "server/login.h"

static enum conn_action on_packet(void *owner, struct conn *c, const struct pkt_header *hdr,
				  const uint8_t *whole);
static void on_closed(void *owner, struct conn *c, enum conn_close_reason why);

static void on_connected(void *owner, struct conn *c, bool ok, int errnum)
{
	server_login_connected(owner, ok, errnum);
}

static const struct conn_ops server_ops = { on_packet, on_connected, on_closed };

static void remember_welcome(struct pool *p, const char *name, const char *value)
{
	if (p->welcome_ready ||
	    p->welcome.n >= (int)(sizeof(p->welcome.names) / sizeof(p->welcome.names[0])))
		return;
	if (strlen(name) >= sizeof(p->welcome.names[0]) || strlen(value) >= PARAM_VALUE_MAX)
		return;
	strcpy(p->welcome.names[p->welcome.n], name);
	strcpy(p->welcome.values[p->welcome.n], value);
	p->welcome.n++;
}

void server_track_parameter(struct server *s, const uint8_t *body, size_t len, bool for_client)
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
			s->events->parameter_set(s->client, (enum tracked_param)idx, value);
	}
	if (s->state == SERVER_LOGIN) {
		remember_welcome(s->pool, name, value);
		if (idx >= 0 && !s->pool->welcome_ready)
			param_store(&s->pool->defaults, (enum tracked_param)idx, value);
	}
}

struct server *server_launch(struct server_env *env, struct pool *pool, int member)
{
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = ++env->next_id;
	s->env = env;
	s->events = env->events;
	s->pool = pool;
	s->member = member;
	s->tx_status = 'I';
	list_init(&s->node);
	list_init(&s->cancels);
	conn_init(&s->conn, env->loop, &server_ops, s);
	snprintf(s->addr, sizeof(s->addr), "?");
	s->connect_time_us = s->request_time_us = clock_now_us();
	pool_server_launched(s);
	if (!server_login_start(s))
		return NULL;
	return s;
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

/* The DataRow of SELECT pg_current_wal_lsn(): the client's write is at most there. */
static void capture_lsn(struct server *s, const uint8_t *body, size_t len)
{
	char text[32];
	uint64_t lsn;
	uint32_t vlen;

	/* int16 column count, int32 value length, value */
	if (len < 6 || body[0] != 0 || body[1] != 1)
		return;
	vlen = (uint32_t)body[2] << 24 | (uint32_t)body[3] << 16 | (uint32_t)body[4] << 8 | body[5];
	if (vlen >= sizeof(text) || 6 + (size_t)vlen > len)
		return;
	memcpy(text, body + 6, vlen);
	text[vlen] = '\0';
	if (lsn_parse(text, &lsn))
		s->events->write_lsn(s->client, lsn);
}

bool server_read_settings(struct server *s, const struct settings *known,
			  const struct settings *touched)
{
	struct msgbuf mb;

	mb_init(&mb);
	settings_read_sql(&mb, known, touched);
	if (mb.failed) {
		/* No question, no answer: what the session kept is unknown, so it is reset on release. */
		s->settings_unknown = true;
		mb_free(&mb);
		return false;
	}
	server_send_internal_query(s, (const char *)mb.data);
	mb_free(&mb);
	s->reading_settings = true;
	settings_clear(&s->readback);
	return true;
}

/* A row of server_read_settings' answer: the client's setting, unless it is followed otherwise. */
static void note_setting(struct server *s, const uint8_t *body, size_t len)
{
	const uint8_t *name, *value;
	int32_t nlen, vlen;
	char n[PG_NAMEDATALEN], *v;

	if (!be_data_row_column(body, len, 0, &name, &nlen) || nlen <= 0 ||
	    nlen >= PG_NAMEDATALEN || !be_data_row_column(body, len, 1, &value, &vlen) ||
	    vlen < 0) {
		s->internal_failed = true;
		return;
	}
	memcpy(n, name, (size_t)nlen);
	n[nlen] = '\0';
	/* Reported parameters have their own layer; transaction_* end with each transaction. */
	if (param_lookup(n) >= 0 || strncmp(n, "transaction_", 12) == 0)
		return;
	v = strndup((const char *)value, (size_t)vlen);
	if (!v || !settings_put_raw(&s->readback, n, v))
		s->internal_failed = true;
	free(v);
}

/* The answer to server_read_settings is complete. */
static void settings_read(struct server *s)
{
	bool failed = s->internal_failed;

	s->reading_settings = false;
	s->internal_failed = false;
	if (!s->client || s->state != SERVER_ACTIVE) {
		/* Released meanwhile: the release marked its settings unknown. */
		settings_clear(&s->readback);
		return;
	}
	s->events->settings_read(s->client, failed ? NULL : &s->readback);
	settings_clear(&s->readback);
}

/* A message answering pgmux's own query: everything is consumed. Returns the action. */
static enum conn_action internal_packet(struct server *s, const struct pkt_header *hdr,
					const uint8_t *whole)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	size_t len = hdr->len - PKT_HDR_LEN;
	struct be_error e;

	switch (hdr->type) {
	case 'S':
		server_track_parameter(s, body, len, true);
		return CONN_CONSUME;
	case 'E':
		if (be_parse_error(body, len, &e))
			server_log(LOG_LVL_WARNING, s, "internal query failed: %s %s", e.sqlstate,
				   e.message);
		s->internal_failed = true;
		return CONN_CONSUME;
	case 'D':
		if (s->capture_lsn && s->client)
			capture_lsn(s, body, len);
		else if (s->reading_settings)
			note_setting(s, body, len);
		return CONN_CONSUME;
	case 'Z':
		s->tx_status = len >= 1 ? (char)body[0] : 'I';
		s->internal_pending--;
		if (s->internal_pending == 0 && s->reading_settings) {
			struct client *c = s->client;

			settings_read(s);
			if (c && s->client != c)
				return s->state == SERVER_CLOSING ? CONN_CLOSED : CONN_CONSUME;
		}
		if (s->internal_pending == 0 && s->capture_lsn) {
			s->capture_lsn = false;
			if (s->client && s->state == SERVER_ACTIVE) {
				s->events->lsn_captured(s->client);
				return s->state == SERVER_CLOSING ? CONN_CLOSED : CONN_CONSUME;
			}
		}
		if (s->internal_pending == 0 && s->state == SERVER_RESET) {
			if (s->internal_failed || s->tx_status != 'I') {
				server_close(s, "reset query failed");
				return CONN_CLOSED;
			}
			pool_server_ready(s);
		} else if (s->internal_failed && s->client) {
			/* The client's settings could not be applied: it must not run on this server. */
			s->close_when_released = true;
			s->events->close(s->client, "08P01",
					 "could not apply client settings on the server");
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
	struct client *c = s->client;
	bool failed = s->seg_error;

	s->tx_status = len > PKT_HDR_LEN ? (char)whole[PKT_HDR_LEN] : 'I';
	s->seg_error = false;
	if (s->respq.len)
		prepared_on_ready(s);
	if (s->split_pending && !s->events->awaits_ready(c)) {
		/* The answer to pgmux's own Sync (client/route.c): the client never sees it. */
		s->split_pending = false;
		s->events->split(c, failed);
		return s->state == SERVER_CLOSING ? CONN_CLOSED : CONN_CONSUME;
	}
	s->events->ready(c, whole, len);
	/* Answers pgmux owes right after this ReadyForQuery (a pipeline goes on). */
	if (s->client == c && s->respq.len)
		prepared_emit_owed(s);
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

/* Rewrite a FATAL error as ERROR: the client's session with pgmux goes on. Every field is kept. */
static void relay_fatal_as_error(struct server *s, const uint8_t *whole, uint32_t len,
				 const struct be_error *e)
{
	struct msgbuf mb;

	mb_init(&mb);
	if (!build_error_with_severity(&mb, whole + PKT_HDR_LEN, len - PKT_HDR_LEN, "ERROR")) {
		mb_reset(&mb);
		build_error(&mb, "ERROR", e->sqlstate, "%s", e->message);
	}
	conn_write(s->events->conn(s->client), mb.data, mb.len);
	mb_free(&mb);
}

static enum conn_action active_packet(struct server *s, const struct pkt_header *hdr,
				      const uint8_t *whole)
{
	struct be_error e;

	/* Counted once: a message seen whole is seen by header first. */
	if (!whole)
		s->pool->stats.bytes_sent += hdr->len;
	bool armed = s->events->replay_armed(s->client);

	if (armed) {
		if (hdr->type == 'E' && !whole)
			return CONN_NEED_WHOLE;
		if (hdr->type == 'E' && is_termination_notice(whole, hdr->len)) {
			server_log(LOG_LVL_INFO, s,
				   "terminated before answering: replaying the request elsewhere");
			s->events->replay_elsewhere(s->client);
			return CONN_CLOSED;
		}
	}
	if (s->respq.len) {
		struct client *c = s->client;
		uint64_t told = conn_output_total(s->events->conn(c));
		enum conn_action act = prepared_server_message(s, hdr, whole);

		if (act == CONN_NEED_WHOLE || act == CONN_CLOSED)
			return act;
		/*
		 * The answer to a message pgmux sent ahead of the client's (a Parse of a statement
		 * this server lacked), of which the client heard nothing, does not end the chance
		 * to replay: a server terminated right after it has still told the client nothing.
		 */
		if (armed &&
		    !(act == CONN_CONSUME && conn_output_total(s->events->conn(c)) == told))
			s->events->replay_disarm(c);
		if (act != CONN_FORWARD)
			return act;
	} else if (armed) {
		s->events->replay_disarm(s->client);
	}
	if (hdr->type != 'Z') {
		enum conn_action act = s->events->shard_message(s->client, hdr, whole);

		if (act != CONN_FORWARD)
			return act;
	}
	switch (hdr->type) {
	case 'Z':
		if (!whole)
			return CONN_NEED_WHOLE;
		return ready_for_query(s, whole, hdr->len);
	case 'S':
		if (!whole)
			return CONN_NEED_WHOLE;
		server_track_parameter(s, whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, true);
		return CONN_FORWARD;
	case 'E':
		if (!whole)
			return CONN_NEED_WHOLE;
		s->events->server_error(s->client);
		s->seg_error = true;
		if (be_parse_error(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &e) &&
		    (strcmp(e.severity, "FATAL") == 0 || strcmp(e.severity, "PANIC") == 0)) {
			s->fatal_seen = true;
			if (pool_shares_servers(s->pool)) {
				relay_fatal_as_error(s, whole, hdr->len, &e);
				return CONN_CONSUME;
			}
		}
		return CONN_FORWARD;
	case 'G': /* CopyInResponse */
	case 'W': /* CopyBothResponse */
		s->events->copy_started(s->client);
		return CONN_FORWARD;
	default:
		return CONN_FORWARD;
	}
}

static enum conn_action idle_packet(struct server *s, const struct pkt_header *hdr,
				    const uint8_t *whole)
{
	struct be_error e;

	if (hdr->type == 'S' || hdr->type == 'E') {
		if (!whole)
			return CONN_NEED_WHOLE;
		if (hdr->type == 'S') {
			server_track_parameter(s, whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN,
					       false);
		} else if (be_parse_error(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &e)) {
			/* An error out of the blue means the backend is going away: never hand it out. */
			server_log(LOG_LVL_INFO, s, "idle server said: %s %s", e.sqlstate,
				   e.message);
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

bool server_message_too_big(const struct server *s, const struct pkt_header *hdr)
{
	return (double)hdr->len > server_cfg(s)->server_max_held_message;
}

static enum conn_action logged_in_packet(struct server *s, const struct pkt_header *hdr,
					 const uint8_t *whole)
{
	if (s->internal_pending) {
		if (!whole && (hdr->type == 'S' || hdr->type == 'E' || hdr->type == 'Z' ||
			       (hdr->type == 'D' && (s->capture_lsn || s->reading_settings))))
			return CONN_NEED_WHOLE;
		return whole ? internal_packet(s, hdr, whole) : CONN_CONSUME;
	}
	if (s->state == SERVER_ACTIVE && s->client)
		return active_packet(s, hdr, whole);
	return idle_packet(s, hdr, whole);
}

/*
 * Messages pgmux must read are held whole, and only up to server_max_held_message: a server (or
 * whoever answers in its place) cannot make pgmux allocate what it likes. Everything else
 * streams through at any size.
 */
static enum conn_action on_packet(void *owner, struct conn *c, const struct pkt_header *hdr,
				  const uint8_t *whole)
{
	struct server *s = owner;
	enum conn_action act;

	if (s->state == SERVER_LOGIN)
		return whole ? server_login_packet(s, hdr, whole) : server_login_header(s, hdr);
	act = logged_in_packet(s, hdr, whole);
	if (act != CONN_NEED_WHOLE || !server_message_too_big(s, hdr))
		return act;
	server_log(LOG_LVL_WARNING, s,
		   "server sent a %u byte message (type 0x%02x) that pgmux must hold "
		   "whole, more than server_max_held_message (%.0f)",
		   hdr->len, (unsigned char)hdr->type, server_cfg(s)->server_max_held_message);
	server_close(s, "server message too large");
	return CONN_CLOSED;
}

static void on_closed(void *owner, struct conn *c, enum conn_close_reason why)
{
	struct server *s = owner;

	if (s->state == SERVER_LOGIN || s->state == SERVER_CONNECTING) {
		pool_server_login_failed(s, "08006", "server closed the connection during login");
		server_close(s, "closed during login");
		return;
	}
	if (s->client)
		s->events->server_lost(s->client);
	server_close(s,
		     why == CONN_EOF ? "server closed the connection" : "server connection failed");
}

static void server_free(void *obj)
{
	struct server *s = obj;

	server_login_forget(s);
	server_pstmts_free(s->env->pstmts, &s->pstmts);
	settings_free(&s->applied);
	settings_free(&s->readback);
	param_set_free(&s->params);
	respq_free(&s->respq);
	free(s);
}

void server_close(struct server *s, const char *reason)
{
	if (s->state == SERVER_CLOSING)
		return;
	if (s->client) {
		s->events->server_lost(s->client);
		/* A client that keeps its session released s, and the release closed it already. */
		if (s->state == SERVER_CLOSING)
			return;
	}
	server_log(s->state == SERVER_IDLE || s->state == SERVER_RESET ? LOG_LVL_DEBUG
								       : LOG_LVL_INFO,
		   s, "closing: %s", reason);
	if (s->state != SERVER_CONNECTING && s->state != SERVER_LOGIN && conn_is_open(&s->conn) &&
	    !s->conn.failed) {
		/* Tell PostgreSQL we are leaving, so it does not log an unexpected EOF. */
		static const uint8_t terminate[] = { 'X', 0, 0, 0, 4 };

		conn_close_with(&s->conn, terminate, sizeof(terminate));
	}
	pool_server_closing(s);
	conn_close(&s->conn);
	evloop_park(s->env->loop, s, server_free);
}

bool server_local_name(const struct server *s, char *buf, size_t len)
{
	return conn_local_name(&s->conn, buf, len);
}

bool server_tls_describe(const struct server *s, char *buf, size_t len)
{
	return conn_tls_describe(&s->conn, buf, len);
}

void server_buffer_state(const struct server *s, struct conn_buffers *b)
{
	conn_buffer_state(&s->conn, b);
}

bool server_same_address(const struct server *a, const struct server *b)
{
	const struct sockaddr_storage *x = &a->sa, *y = &b->sa;

	if (x->ss_family != y->ss_family)
		return false;
	if (x->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
			      &((const struct sockaddr_in *)y)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	if (x->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
			      &((const struct sockaddr_in6 *)y)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return true;
}
