/*
 * authquery: secrets of users that are not in auth_file, fetched with auth_query over a
 * persistent connection per target (ev/pgquery) and cached for auth_cache_ttl seconds.
 *
 * A lookup either answers at once from the cache or queues the caller as a waiter; lookups of
 * the same (target, user) while one is running share it. Answers "no such user" and failed
 * queries are cached for a few seconds (so a client cannot tell them apart by timing after the
 * first, and repeating a name costs nothing); lookups waiting for a query are capped, and one
 * whose waiters all left before it was sent is dropped. Secrets are wiped when dropped and
 * never logged.
 */
#ifndef PGMUX_AUTH_AUTHQUERY_H
#define PGMUX_AUTH_AUTHQUERY_H

#include <stdbool.h>

struct evloop;
/* One owner's cache and connections; the owner holds a pointer, NULL until the first lookup. */
struct authquery;

/*
 * A waiter's answer: secret is the user's secret ("" when the query found the user without
 * one, NULL when it found no row: unknown or expired), borrowed for the call; error is non-NULL when the query failed. Called from the
 * loop, never from inside authquery_lookup(). The callback may start lookups or cancel waiters.
 */
typedef void (*authquery_fn)(void *arg, const char *secret, const char *error);

enum authquery_status {
	AUTHQUERY_CACHED, /* *secret_out holds a copy ("" or NULL as for authquery_fn); caller frees */
	AUTHQUERY_WAIT,   /* fn(arg, ...) will be called */
	AUTHQUERY_ERROR,  /* the query for this user failed moments ago (cached) */
	AUTHQUERY_BUSY,   /* too many lookups wait for their query: refuse the client for now */
	AUTHQUERY_FAILED, /* out of memory */
};

/*
 * Look user up on the server conninfo names (libpq keywords; must not need name resolution)
 * with query ($1 = user), in *aq's cache and over its connections on loop. *aq is made on first
 * use and stays the owner's.
 */
enum authquery_status authquery_lookup(struct authquery **aq, struct evloop *loop,
				       const char *conninfo, const char *query, double ttl,
				       double timeout, const char *user, authquery_fn fn, void *arg,
				       char **secret_out);

/* Forget every waiter in aq (NULL: none) registered with arg (a client that goes away). */
void authquery_cancel(struct authquery *aq, void *arg);

/*
 * Free *aq's cache (wiping the secrets), close its connections without calling anyone back and
 * set *aq to NULL; at exit, after every client is closed and while the loop still exists.
 */
void authquery_destroy(struct authquery **aq);

#endif
