/*
 * client/cancel: CancelRequest routing, to the backend a client's query runs on or to the peer
 * process that issued the key (see src/client/cancel.c). The pool holds a server whose cancel is
 * on its way (CANCEL_WAIT) until the cancel is done.
 */
#ifndef PGMUX_CLIENT_CANCEL_H
#define PGMUX_CLIENT_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"
#include "ev/conn.h"

struct server;
struct clients;

/*
 * Another pgmux process of [peers], as this one has dealt with it: the cancel requests on their
 * way to it and what became of those sent. Made when a request for it first arrives and kept
 * until exit (its settings are read from the config in force each time, by id).
 */
struct peer {
	struct list_node node;
	int id;                   /* its peer_id */
	int n_login;              /* connections to it being opened */
	int n_active;             /* requests written, waiting for it to close */
	struct list_node waiting; /* struct cancel_req beyond its pool_size, FIFO */
	int n_waiting;
	uint64_t forwarded; /* requests it took (closed the connection after) */
	uint64_t failed;    /* could not connect, or no answer in time */
	uint64_t dropped;   /* too many waiting, or gone from [peers] meanwhile */
};

/*
 * A CancelRequest being delivered on its own short connection: to a backend (server set until
 * the server closes), or to the peer that issued the key (peer set).
 */
struct cancel_req {
	struct list_node node;      /* on cs->cancel_reqs, or its peer's waiting list */
	struct list_node at_server; /* on server->cancels while server is set */
	struct clients *cs;
	struct server *server; /* NULL once the server closed, and for peers */
	struct peer *peer;     /* NULL: towards a backend */
	uint32_t pid, key;     /* the key to send, copied at creation */
	bool sent;             /* connected and written */
	uint64_t start_us;
	struct conn conn;
};

/* A CancelRequest for (pid, key) arrived: forward it to the client's server, if it has one. */
void client_cancel_request(struct clients *cs, uint32_t pid, uint32_t key);

/* Ask PostgreSQL to cancel what s's backend runs (on a connection of its own). */
void cancel_server_query(struct clients *cs, struct server *s);

/* s is closing (pool/events.h): the cancel requests on their way to it no longer wait for it. */
void cancel_server_closing(struct server *s);

/*
 * Give up on cancel requests PostgreSQL has not confirmed (closed) within timeout seconds; their
 * servers are closed rather than reused, since the cancel may still land.
 */
void cancel_expire(struct clients *cs, double timeout);

/* The state of peer id, or NULL when no cancel request was ever sent to it. Owned by cs. */
const struct peer *cancel_peer_find(const struct clients *cs, int id);

/*
 * At exit: close and free the requests on their way to a backend or a peer, every peer and
 * the requests still waiting for one.
 */
void cancel_free_all(struct clients *cs);

#endif
