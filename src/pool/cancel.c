/*
 * cancel: CancelRequest routing. Clients only know pgmux's BackendKeyData; a request naming it is
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
 */
#include <stdlib.h>
#include <string.h>

#include "client/copysplit.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "worker/worker.h"

#define CANCEL_MAX_IN_FLIGHT 64

static struct client *find_client(struct worker *w, uint32_t pid, uint32_t key)
{
	struct list_node *n, *t, *m, *u;

	list_for_each_safe(n, t, &w->pools) {
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

static void cancel_done(struct cancel_req *r)
{
	struct server *s = r->server;

	list_del(&r->node);
	conn_close(&r->conn);
	evloop_park(&r->w->loop, r, cancel_free);
	if (!s)
		return;
	s->cancel_inflight--;
	if (s->cancel_inflight == 0 && s->state == SERVER_CANCEL_WAIT)
		pool_recycle_server(s);
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
		log_warning("cancel request could not be delivered: %s", strerror(errnum));
		cancel_done(r);
		return;
	}
	mb_init(&mb);
	build_cancel_request(&mb, r->pid, r->key);
	conn_write(c, mb.data, mb.len);
	mb_free(&mb);
	/* on_closed follows when PostgreSQL closes the connection, its signal sent. */
}

static void on_closed(void *owner, struct conn *c, enum conn_close_reason why)
{
	cancel_done(owner);
}

static const struct conn_ops cancel_ops = { on_packet, on_connected, on_closed };

void server_cancel_query(struct server *s)
{
	struct worker *w = s->w;
	struct cancel_req *r = calloc(1, sizeof(*r));
	int errnum;

	if (!r)
		return;
	r->w = w;
	r->server = s;
	/* Copied: the server may be closed before the cancel connection is up. */
	r->pid = s->backend_pid;
	r->key = s->backend_key;
	r->start_us = clock_now_us();
	conn_init(&r->conn, &w->loop, &cancel_ops, r);
	list_add_tail(&w->cancel_reqs, &r->node);
	if (!conn_connect(&r->conn, (struct sockaddr *)&s->sa, s->salen, &errnum)) {
		log_warning("cancel request could not connect: %s", strerror(errnum));
		list_del(&r->node);
		free(r);
		return;
	}
	s->cancel_inflight++;
}

void cancel_expire(struct worker *w, double timeout)
{
	uint64_t now = clock_now_us();
	struct list_node *n, *t;

	list_for_each_safe(n, t, &w->cancel_reqs) {
		struct cancel_req *r = list_entry(n, struct cancel_req, node);
		struct server *s = r->server;

		if (now - r->start_us < (uint64_t)(timeout * 1e6))
			continue;
		log_warning("cancel request not confirmed by the server after %g s", timeout);
		/* It may still arrive: the backend must never serve anyone again. */
		if (s) {
			r->server = NULL;
			s->cancel_inflight--;
			if (s->state == SERVER_CANCEL_WAIT)
				server_close(s, "cancel request not confirmed");
			else
				s->close_when_released = true;
		}
		cancel_done(r);
	}
}

static size_t cancels_in_flight(struct worker *w)
{
	struct list_node *n, *t;
	size_t count = 0;

	list_for_each_safe(n, t, &w->cancel_reqs)
		count++;
	return count;
}

void client_cancel_request(struct worker *w, uint32_t pid, uint32_t key)
{
	struct client *c = find_client(w, pid, key);

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
	if (cancels_in_flight(w) >= CANCEL_MAX_IN_FLIGHT) {
		log_debug("C-%llu cancel dropped: %d cancel requests are already on their way",
			  (unsigned long long)c->id, CANCEL_MAX_IN_FLIGHT);
		return;
	}
	log_debug("C-%llu cancel forwarded to S-%llu", (unsigned long long)c->id,
		  (unsigned long long)c->server->id);
	server_cancel_query(c->server);
}
