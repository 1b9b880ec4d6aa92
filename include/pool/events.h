/*
 * pool/events: what the pool tells a client, whose lifecycle it owns.
 *
 * The pool decides when a client has finished logging in, gets a server, lets it go, waits, or
 * must leave; what that means for the client's protocol (AuthenticationOk, relaying, its
 * transaction's timing) is the client module's to do. So the pool calls the client through this
 * table, which the client module fills in (client_pool_events, client/client.h) and the worker
 * lends the pools (struct pools' events): the pool module never names a client function.
 */
#ifndef PGMUX_POOL_EVENTS_H
#define PGMUX_POOL_EVENTS_H

#include <stdbool.h>

struct client;
struct server;

struct pool_events {
	/* The pool made c IDLE after its login: parameters, AuthenticationOk, ReadyForQuery. */
	void (*login_done)(struct client *c);
	/* The pool gave c a server (c->server): pair the conns, start relaying. */
	void (*server_linked)(struct client *c);
	/*
	 * The pool let go of c's server: unpair the conns; no query runs any more. True when settings
	 * may have changed in ways only that server could tell (it needs a reset).
	 */
	bool (*server_released)(struct client *c);
	/* c started waiting for a server (queued, or logged in while the first server logs in). */
	void (*wait_started)(struct client *c);
	/*
	 * c waits for a server of a cluster whose topology changed: if its member can no longer
	 * serve it, it picks again (pool_retarget).
	 */
	void (*topology_changed)(struct client *c);
	/* c must go (its database was killed): close it with this error. */
	void (*close)(struct client *c, const char *sqlstate, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	/* s is closing: cancel requests on their way to its backend no longer wait for it. */
	void (*server_closing)(struct server *s);
};

#endif
