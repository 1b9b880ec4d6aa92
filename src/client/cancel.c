/*
 * cancel: CancelRequest routing (see client/cancel.h). Clients only know pgmux's BackendKeyData; a request naming it is
 * forwarded, on a new connection, to the backend the client is using at that moment. While it is
 * on its way the server is not handed to anyone else (CANCEL_WAIT on release), so a late cancel can
 * never hit another client's query.
 *
 * "On its way" lasts until PostgreSQL closes the cancel connection: it does so only after it has
 * signalled the backend. Having written the request is not enough: the signal could then land on
 * whatever the backend runs next. One that is not confirmed within server_connect_timeout (a
 * connect to a server that does not answer) is given up by cancel_expire(), and its server
 * closed instead of reused.
 *
 * Each forwarded request costs PostgreSQL a connection (a process), and a client may send any
 * number for its own key: at most CANCEL_MAX_IN_FLIGHT client requests are on their way at once,
 * further ones are dropped (a cancel is best effort; the client may send it again).
 *
 * Peering (peer_id, [peers]): several processes share a port, and a client's CancelRequest
 * reaches whichever one the kernel picks. Its key names the process that issued it
 * (proto/cancelkey.h); a request for another peer is sent on to that peer's address, marked as
 * forwarded, on a connection of its own that the peer closes once it has dealt with it. At most
 * the peer's pool_size of them are on their way at once, later ones wait in order. A request
 * already marked is never sent on again, so a disagreement between [peers] sections cannot
 * make one circle: it is dropped with a log line, as one for a peer_id not in [peers].
 */
#include "client/cancel.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "client/client.h"
#include "client/clients.h"
#include "client/copysplit.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/cancelkey.h"
#include "server/server.h"

#define CANCEL_MAX_IN_FLIGHT 64

static void peer_request_ended(struct cancel_req *r, bool delivered);

static struct client *find_client(struct clients *cs, uint32_t pid, uint32_t key)
{
	struct list_node *n, *t, *m, *u;

	list_for_each_safe(n, t, &cs->pools->all) {
		struct pool *p = list_entry(n, struct pool, node);

		list_for_each_safe(m, u, &p->active_clients) {
			struct client *c = list_entry(m, struct client, node);

			if (c->cancel_pid == pid && c->cancel_key == key)
				return c;
		}
	}
	return NULL;
}

static void cancel_free(void *obj)
{
	free(obj);
}

static void cancel_done(struct cancel_req *r, bool delivered)
{
	struct server *s = r->server;

	list_del(&r->node);
	conn_close(&r->conn);
	evloop_park(r->cs->loop, r, cancel_free);
	if (r->peer)
		peer_request_ended(r, delivered);
	if (!s)
		return;
	list_del(&r->at_server);
	if (list_empty(&s->cancels) && s->state == SERVER_CANCEL_WAIT)
		pool_recycle_server(s);
}

/* Why a connect failed: the system's error, or what ev/ said (a name that did not resolve). */
static const char *connect_error(const struct conn *c, int errnum)
{
	if (errnum)
		return strerror(errnum);
	return conn_error(c) ? conn_error(c) : "connect failed";
}

static enum conn_action on_packet(void *owner, struct conn *c, const struct pkt_header *hdr,
				  const uint8_t *whole)
{
	return CONN_CONSUME;
}

static void on_connected(void *owner, struct conn *c, bool ok, int errnum)
{
	struct cancel_req *r = owner;
	struct msgbuf mb;

	if (!ok) {
		if (r->peer)
			log_warning("cancel request could not be forwarded to peer %d: %s",
				    r->peer->id, connect_error(c, errnum));
		else
			log_warning("cancel request could not be delivered: %s", strerror(errnum));
		cancel_done(r, false);
		return;
	}
	mb_init(&mb);
	build_cancel_request(&mb, r->pid, r->key);
	conn_write(c, mb.data, mb.len);
	mb_free(&mb);
	r->sent = true;
	if (r->peer) {
		r->peer->n_login--;
		r->peer->n_active++;
	}
	/* on_closed follows when PostgreSQL (or the peer) closes the connection, its signal sent. */
}

static void on_closed(void *owner, struct conn *c, enum conn_close_reason why)
{
	struct cancel_req *r = owner;

	cancel_done(r, r->sent);
}

static const struct conn_ops cancel_ops = { on_packet, on_connected, on_closed };

void cancel_server_query(struct clients *cs, struct server *s)
{
	struct cancel_req *r = calloc(1, sizeof(*r));
	int errnum;

	if (!r)
		return;
	list_init(&r->at_server);
	r->cs = cs;
	r->server = s;
	/* Copied: the server may be closed before the cancel connection is up. */
	r->pid = s->backend_pid;
	r->key = s->backend_key;
	r->start_us = clock_now_us();
	conn_init(&r->conn, cs->loop, &cancel_ops, r);
	list_add_tail(&cs->cancel_reqs, &r->node);
	if (!conn_connect(&r->conn, (struct sockaddr *)&s->sa, s->salen, &errnum)) {
		log_warning("cancel request could not connect: %s", strerror(errnum));
		list_del(&r->node);
		free(r);
		return;
	}
	list_add_tail(&s->cancels, &r->at_server);
}

void cancel_server_closing(struct server *s)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &s->cancels) {
		struct cancel_req *r = list_entry(n, struct cancel_req, at_server);

		list_del(n);
		r->server = NULL;
	}
}

void cancel_expire(struct clients *cs, double timeout)
{
	uint64_t now = clock_now_us();
	struct list_node *n, *t;

	list_for_each_safe(n, t, &cs->cancel_reqs) {
		struct cancel_req *r = list_entry(n, struct cancel_req, node);
		struct server *s = r->server;

		if (now - r->start_us < (uint64_t)(timeout * 1e6))
			continue;
		if (r->peer) {
			log_warning("cancel request not confirmed by peer %d after %g s",
				    r->peer->id, timeout);
			cancel_done(r, false);
			continue;
		}
		log_warning("cancel request not confirmed by the server after %g s", timeout);
		/* It may still arrive: the backend must never serve anyone again. */
		if (s) {
			list_del(&r->at_server);
			r->server = NULL;
			if (s->state == SERVER_CANCEL_WAIT)
				server_close(s, "cancel request not confirmed");
			else
				s->close_when_released = true;
		}
		cancel_done(r, false);
	}
}

static size_t cancels_in_flight(struct clients *cs)
{
	struct list_node *n, *t;
	size_t count = 0;

	list_for_each_safe(n, t, &cs->cancel_reqs)
		count++;
	return count;
}

/* --- forwarding to peers --- */

const struct peer *cancel_peer_find(const struct clients *cs, int id)
{
	const struct list_node *n;

	for (n = cs->peers.next; n != &cs->peers; n = n->next) {
		const struct peer *p = list_entry(n, struct peer, node);

		if (p->id == id)
			return p;
	}
	return NULL;
}

static struct peer *peer_get(struct clients *cs, int id)
{
	struct peer *p = (struct peer *)cancel_peer_find(cs, id);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->id = id;
	list_init(&p->waiting);
	list_add_tail(&cs->peers, &p->node);
	return p;
}

/* Connect to the peer's own address: a unix socket directory, an address or a name. */
static bool peer_connect(struct cancel_req *r, const struct peer_entry *e, int *errnum)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (e->host[0] != '/')
		return conn_connect_name(&r->conn, *r->cs->dns, e->host, e->port, errnum);
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", e->host,
			     e->port) >= sizeof(sun.sun_path)) {
		conn_set_error(&r->conn, "unix socket path too long");
		*errnum = 0;
		return false;
	}
	return conn_connect(&r->conn, (struct sockaddr *)&sun, sizeof(sun), errnum);
}

/* r (off every list) starts on its way to its peer, whose entry is e. */
static void peer_start(struct cancel_req *r, const struct peer_entry *e)
{
	struct clients *cs = r->cs;
	struct peer *p = r->peer;
	int errnum = 0;

	r->start_us = clock_now_us();
	conn_init(&r->conn, cs->loop, &cancel_ops, r);
	list_add_tail(&cs->cancel_reqs, &r->node);
	p->n_login++;
	if (!peer_connect(r, e, &errnum)) {
		log_warning("cancel request could not be forwarded to peer %d at %s:%d: %s", p->id,
			    e->host, e->port, connect_error(&r->conn, errnum));
		list_del(&r->node);
		p->n_login--;
		p->failed++;
		conn_close(&r->conn);
		free(r);
		return;
	}
	log_debug("cancel request forwarded to peer %d at %s:%d", p->id, e->host, e->port);
}

/* Start p's waiting requests while it has room; drop them if it left [peers]. */
static void peer_start_waiting(struct clients *cs, struct peer *p)
{
	while (p->n_waiting > 0) {
		const struct peer_entry *e = config_find_peer(clients_cfg(cs), p->id);
		struct cancel_req *r = list_entry(p->waiting.next, struct cancel_req, node);

		if (e && p->n_login + p->n_active >= config_peer_pool_size(clients_cfg(cs), e))
			return;
		list_del(&r->node);
		p->n_waiting--;
		if (!e) {
			log_warning("cancel request for peer %d dropped: no longer in [peers]",
				    p->id);
			p->dropped++;
			free(r);
			continue;
		}
		peer_start(r, e);
	}
}

/* Called by cancel_done for a request to a peer: its counts, then the next one waiting. */
static void peer_request_ended(struct cancel_req *r, bool delivered)
{
	struct peer *p = r->peer;

	if (r->sent)
		p->n_active--;
	else
		p->n_login--;
	if (delivered)
		p->forwarded++;
	else
		p->failed++;
	peer_start_waiting(r->cs, p);
}

/* A CancelRequest whose key was issued by another peer: on to that peer, once. */
static void forward_to_peer(struct clients *cs, uint32_t pid, uint32_t key)
{
	int id = cancelkey_peer_id(key);
	const struct peer_entry *e;
	struct cancel_req *r;
	struct peer *p;

	if (cancelkey_is_forwarded(key)) {
		log_warning("cancel request forwarded by a peer is for peer %d, not this one (%d): "
			    "dropped (do the [peers] sections of the processes agree?)",
			    id, clients_cfg(cs)->peer_id);
		return;
	}
	e = config_find_peer(clients_cfg(cs), id);
	if (!e) {
		log_warning("cancel request for peer %d, which is not in [peers]: dropped", id);
		return;
	}
	p = peer_get(cs, id);
	r = p ? calloc(1, sizeof(*r)) : NULL;
	if (!r)
		return;
	list_init(&r->at_server);
	r->cs = cs;
	r->peer = p;
	r->pid = pid;
	r->key = cancelkey_mark_forwarded(key);
	if (p->n_login + p->n_active < config_peer_pool_size(clients_cfg(cs), e)) {
		peer_start(r, e);
		return;
	}
	/* Bounded: each waiting request is memory a stranger can make us hold. */
	if (p->n_waiting >= CANCEL_MAX_IN_FLIGHT) {
		log_debug("cancel request for peer %d dropped: %d are waiting already", id,
			  CANCEL_MAX_IN_FLIGHT);
		p->dropped++;
		free(r);
		return;
	}
	list_add_tail(&p->waiting, &r->node);
	p->n_waiting++;
}

void cancel_free_all(struct clients *cs)
{
	struct list_node *n, *t, *m, *u;

	list_for_each_safe(n, t, &cs->cancel_reqs) {
		struct cancel_req *r = list_entry(n, struct cancel_req, node);

		list_del(n);
		conn_close(&r->conn);
		free(r);
	}
	list_for_each_safe(n, t, &cs->peers) {
		struct peer *p = list_entry(n, struct peer, node);

		list_for_each_safe(m, u, &p->waiting) {
			list_del(m);
			free(list_entry(m, struct cancel_req, node));
		}
		list_del(n);
		free(p);
	}
}

void client_cancel_request(struct clients *cs, uint32_t pid, uint32_t key)
{
	struct client *c;

	if (clients_cfg(cs)->peer_id) {
		if (cancelkey_peer_id(key) != clients_cfg(cs)->peer_id) {
			forward_to_peer(cs, pid, key);
			return;
		}
		/* Ours, perhaps by way of a peer: look for the key as it was issued. */
		if (cancelkey_is_forwarded(key))
			log_debug("cancel request forwarded by a peer");
		key = cancelkey_as_issued(key);
	}
	c = find_client(cs, pid, key);

	if (c && c->copy_split) {
		copysplit_cancel(c); /* its COPY runs on servers of its own legs */
		return;
	}
	/* An idle client has nothing running: a cancel must not touch anyone's server. */
	if (!c || !c->server || c->server->state != SERVER_ACTIVE) {
		log_debug("cancel request for an idle or unknown client ignored");
		return;
	}
	/* Counted after the lookup, so that unknown keys cost no walk of the list. */
	if (cancels_in_flight(cs) >= CANCEL_MAX_IN_FLIGHT) {
		log_debug("C-%llu cancel dropped: %d cancel requests are already on their way",
			  (unsigned long long)c->id, CANCEL_MAX_IN_FLIGHT);
		return;
	}
	log_debug("C-%llu cancel forwarded to S-%llu", (unsigned long long)c->id,
		  (unsigned long long)c->server->id);
	cancel_server_query(cs, c->server);
}
