/*
 * admin/sockets: SHOW CLIENTS, SERVERS, SOCKETS and ACTIVE_SOCKETS (see admin/sockets.h).
 *
 * The four tables share PgBouncer's first eighteen columns, written by one row function per
 * kind of socket. What follows application_name depends on the table: pgmux's own "pinned" in
 * CLIENTS and SERVERS, PgBouncer's seven buffer columns in SOCKETS and ACTIVE_SOCKETS.
 *
 * pgmux's buffers are not PgBouncer's: a socket has an input buffer and an output queue, where
 * PgBouncer has one buffer whose received bytes go on to the peer. The buffer columns say what
 * pgmux has: recv_pos and pkt_pos are the input buffer's offsets read up to and processed up
 * to (pkt_avail the bytes between them), pkt_remain the bytes of a relayed or skipped message
 * still to arrive, send_pos the bytes of the output queue already written and send_avail those
 * queued and not yet written to this socket. send_remain has no counterpart: 0, as PgBouncer
 * prints it. A buffer the socket does not hold shows as 0s.
 *
 * "Active" in ACTIVE_SOCKETS is PgBouncer's: a socket whose buffers are not empty (bytes read
 * and not processed, a message still arriving, bytes waiting to be sent). It is not the state
 * "active" of SHOW CLIENTS and SERVERS: a client idle in a transaction holds no bytes.
 */
#include "admin/sockets.h"
#include "admin/rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/list.h"
#include "pool/pool.h"
#include "server/server.h"
#include "worker/worker.h"

/*
 * Split "ip:port", "[ipv6]:port" or a name without port (unix sockets, "unknown") into host and
 * port; port is 0 when there is none.
 */
static void split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon;
	size_t n;

	*port = 0;
	if (addr[0] == '[' && (colon = strstr(addr, "]:")) != NULL) {
		n = (size_t)(colon - addr - 1);
		snprintf(host, hostlen, "%.*s", (int)n, addr + 1);
		*port = atoi(colon + 2);
		return;
	}
	colon = strrchr(addr, ':');
	if (!colon || strchr(addr, ':') != colon) {
		snprintf(host, hostlen, "%s", addr);
		return;
	}
	snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
	*port = atoi(colon + 1);
}

static const char *app_name(const struct param_set *ps)
{
	const char *name = param_get(ps, PARAM_APPLICATION_NAME);

	return name ? name : "";
}

/* What a walk over the connections writes, and which sockets it leaves out. */
struct socket_walk {
	struct worker *w;
	struct msgbuf *mb;
	uint64_t now;
	bool buffers;     /* SOCKETS: list names as states, buffer columns instead of "pinned" */
	bool active_only; /* ACTIVE_SOCKETS: only sockets with bytes in flight */
};

static const struct column socket_cols[] = {
	{ "type", OID_TEXT },         { "user", OID_TEXT },       { "database", OID_TEXT },
	{ "state", OID_TEXT },        { "addr", OID_TEXT },       { "port", OID_INT4 },
	{ "local_addr", OID_TEXT },   { "local_port", OID_INT4 }, { "connect_time", OID_TEXT },
	{ "request_time", OID_TEXT }, { "wait", OID_INT4 },       { "wait_us", OID_INT4 },
	{ "close_needed", OID_INT4 }, { "ptr", OID_TEXT },        { "link", OID_TEXT },
	{ "remote_pid", OID_INT4 },   { "tls", OID_TEXT },        { "application_name", OID_TEXT },
};

/* SHOW CLIENTS and SERVERS: pgmux's own, last so that PgBouncer's columns keep their places. */
static const struct column pinned_cols[] = {
	{ "pinned", OID_TEXT },
};

/* SHOW SOCKETS and ACTIVE_SOCKETS (see the top of this file for their meaning here). */
static const struct column buffer_cols[] = {
	{ "recv_pos", OID_INT4 },   { "pkt_pos", OID_INT4 },     { "pkt_remain", OID_INT4 },
	{ "send_pos", OID_INT4 },   { "send_remain", OID_INT4 }, { "pkt_avail", OID_INT4 },
	{ "send_avail", OID_INT4 },
};

_Static_assert(ARRAY_LEN(socket_cols) + ARRAY_LEN(buffer_cols) <= MAX_COLS,
	       "SHOW SOCKETS is wider than a row");

static int walk_ncols(const struct socket_walk *sw)
{
	return (int)(ARRAY_LEN(socket_cols) +
		     (sw->buffers ? ARRAY_LEN(buffer_cols) : ARRAY_LEN(pinned_cols)));
}

static void walk_header(const struct socket_walk *sw)
{
	struct column cols[MAX_COLS];
	size_t n = ARRAY_LEN(socket_cols);

	memcpy(cols, socket_cols, sizeof(socket_cols));
	if (sw->buffers)
		memcpy(cols + n, buffer_cols, sizeof(buffer_cols));
	else
		memcpy(cols + n, pinned_cols, sizeof(pinned_cols));
	put_header(sw->mb, cols, walk_ncols(sw));
}

static bool in_flight(const struct conn_buffers *b)
{
	return b->in_end > b->in_pos || b->msg_left > 0 || b->out_end > b->out_pos;
}

/*
 * The state column: SHOW CLIENTS and SERVERS print state as it is; SHOW SOCKETS prefixes it
 * the way PgBouncer names its lists there ("cl_active", "sv_idle"...), into buf.
 */
static const char *list_state(const struct socket_walk *sw, const char *prefix, const char *state,
			      char *buf, size_t len)
{
	if (!sw->buffers)
		return state;
	snprintf(buf, len, "%s%s", prefix, state);
	return buf;
}

/* One socket's values for PgBouncer's first eighteen columns; pointers are borrowed. */
struct socket_info {
	const char *type, *user, *database, *state, *application_name;
	char addr[SLOT_LEN], local[SLOT_LEN], tls[SLOT_LEN + 32];
	const char *local_addr; /* local, "unix", or NULL without a socket */
	int port, local_port;
	uint64_t connect_us, request_us, waited_us;
	bool close_needed;
	const void *ptr, *link;
	uint32_t remote_pid;
};

/*
 * Both ends: remote is "ip:port" or "[ipv6]:port"; local_name as client_local_name() gives it,
 * "" while there is no socket (NULL and 0 then). A unix socket has no port: the caller picks
 * what to show.
 */
static void set_ends(struct socket_info *si, const char *remote, const char *local_name)
{
	split_addr(remote, si->addr, sizeof(si->addr), &si->port);
	si->local_addr = NULL;
	si->local_port = 0;
	if (local_name[0]) {
		split_addr(local_name, si->local, sizeof(si->local), &si->local_port);
		si->local_addr = si->local;
	}
}

/*
 * The row of one socket; after application_name, the socket's buffers (SOCKETS) or why its
 * client is pinned (CLIENTS, SERVERS).
 */
static void socket_row(const struct socket_walk *sw, const struct socket_info *si,
		       const struct conn_buffers *b, const char *pin_reason)
{
	struct row r;

	row_start(&r, walk_ncols(sw));
	put_str(&r, si->type);
	put_str(&r, si->user);
	put_str(&r, si->database);
	put_str(&r, si->state);
	put_str(&r, si->addr);
	put_int(&r, si->port);
	put_str(&r, si->local_addr);
	put_int(&r, si->local_port);
	put_time(&r, si->connect_us);
	put_time(&r, si->request_us ? si->request_us : si->connect_us);
	put_uint(&r, si->waited_us / 1000000);
	put_uint(&r, si->waited_us % 1000000);
	put_int(&r, si->close_needed ? 1 : 0);
	put_ptr(&r, si->ptr);
	put_ptr(&r, si->link);
	put_uint(&r, si->remote_pid);
	put_str(&r, si->tls);
	put_str(&r, si->application_name);
	if (sw->buffers) {
		put_uint(&r, b->in_end);
		put_uint(&r, b->in_pos);
		put_uint(&r, b->msg_left);
		put_uint(&r, b->out_pos);
		put_int(&r, 0);
		put_uint(&r, b->in_end - b->in_pos);
		put_uint(&r, b->out_end - b->out_pos);
	} else {
		put_str(&r, pin_reason ? pin_reason : "");
	}
	row_end(sw->mb, &r);
}

/* The state names PgBouncer shows for its client lists. */
static const char *client_show_state(const struct client *c)
{
	switch (c->state) {
	case CLIENT_LOGIN:
		return "login";
	case CLIENT_WAITING_LOGIN:
	case CLIENT_WAITING:
		return "waiting";
	case CLIENT_IDLE:
		return "idle";
	case CLIENT_ACTIVE:
		return "active";
	case CLIENT_CLOSING:
		return "closing";
	}
	return "unknown";
}

static void client_row(const struct socket_walk *sw, const struct client *c)
{
	struct socket_info si = {
		.type = "C",
		.user = c->user,
		.database = c->dbname,
		.application_name = app_name(&c->params),
		.connect_us = c->connect_time_us,
		.request_us = c->request_time_us,
		.ptr = c,
		.link = c->server,
	};
	char name[SLOT_LEN + 16], state[SLOT_LEN];
	struct conn_buffers b;

	client_buffer_state(c, &b);
	if (sw->active_only && !in_flight(&b))
		return;
	si.state = list_state(sw, "cl_", client_show_state(c), state, sizeof(state));
	if (c->state == CLIENT_WAITING || c->state == CLIENT_WAITING_LOGIN)
		si.waited_us = since(sw->now, c->wait_start_us);
	client_local_name(c, name, sizeof(name));
	set_ends(&si, c->addr, name);
	if (c->conn.is_unix) {
		/* A unix socket has no port: show the one its file name carries (.s.PGSQL.N). */
		snprintf(si.addr, sizeof(si.addr), "unix");
		si.port = sw->w->cfg->listen_port;
		si.local_addr = "unix";
		si.local_port = sw->w->cfg->listen_port;
	}
	client_tls_describe(c, si.tls, sizeof(si.tls));
	socket_row(sw, &si, &b, c->pin_reason);
}

static void client_list_rows(const struct socket_walk *sw, const struct list_node *head)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, head)
		client_row(sw, list_entry(pos, struct client, node));
}

/* The state names PgBouncer shows for its server lists. */
static const char *server_show_state(const struct server *s)
{
	switch (s->state) {
	case SERVER_CONNECTING:
	case SERVER_LOGIN:
		return "new";
	case SERVER_IDLE:
		return "idle";
	case SERVER_ACTIVE:
		return "active";
	case SERVER_RESET:
		return "tested";
	case SERVER_CANCEL_WAIT:
		return "being_canceled";
	case SERVER_CLOSING:
		return "closing";
	}
	return "unknown";
}

static void server_row(const struct socket_walk *sw, const struct pool *p, const struct server *s)
{
	struct socket_info si = {
		.type = "S",
		.user = p->user->name,
		.database = p->db->name,
		.application_name = s->client ? app_name(&s->client->params) : "",
		.connect_us = s->connect_time_us,
		.request_us = s->request_time_us,
		.close_needed = s->close_when_released,
		.ptr = s,
		.link = s->client,
		.remote_pid = s->backend_pid,
	};
	char name[SLOT_LEN + 16], state[SLOT_LEN];
	const char *st = server_show_state(s);
	struct conn_buffers b;

	server_buffer_state(s, &b);
	if (sw->active_only && !in_flight(&b))
		return;
	/* PgBouncer's SHOW SERVERS calls a server logging in "new", its SHOW SOCKETS "sv_login". */
	if (sw->buffers && (s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN))
		st = "login";
	si.state = list_state(sw, "sv_", st, state, sizeof(state));
	server_local_name(s, name, sizeof(name));
	set_ends(&si, s->addr, name);
	server_tls_describe(s, si.tls, sizeof(si.tls));
	socket_row(sw, &si, &b, s->client ? s->client->pin_reason : NULL);
}

static void server_list_rows(const struct socket_walk *sw, const struct pool *p,
			     const struct list_node *head)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, head)
		server_row(sw, p, list_entry(pos, struct server, node));
}

static void pool_server_rows(const struct socket_walk *sw, const struct pool *p)
{
	server_list_rows(sw, p, &p->active_servers);
	server_list_rows(sw, p, &p->idle_servers);
	server_list_rows(sw, p, &p->reset_servers);
	server_list_rows(sw, p, &p->login_servers);
}

/* Each pool's clients and then its servers, as PgBouncer orders them; then the other clients. */
void admin_show_sockets(struct worker *w, enum admin_show what, struct msgbuf *mb)
{
	const struct socket_walk sw = {
		.w = w,
		.mb = mb,
		.now = clock_now_us(),
		.buffers = what == ADMIN_SHOW_SOCKETS || what == ADMIN_SHOW_ACTIVE_SOCKETS,
		.active_only = what == ADMIN_SHOW_ACTIVE_SOCKETS,
	};
	bool clients = what != ADMIN_SHOW_SERVERS, servers = what != ADMIN_SHOW_CLIENTS;
	struct list_node *pos, *tmp;

	walk_header(&sw);
	list_for_each_safe(pos, tmp, &w->pools.all) {
		const struct pool *p = list_entry(pos, struct pool, node);

		if (clients) {
			client_list_rows(&sw, &p->active_clients);
			client_list_rows(&sw, &p->waiting_clients);
		}
		if (servers)
			pool_server_rows(&sw, p);
	}
	/* Admin console clients and those still logging in. */
	if (clients)
		client_list_rows(&sw, &w->pools.login_clients);
}
