/*
 * authquery: secrets of users that are not in auth_file, fetched with auth_query over a
 * persistent connection per target (ev/pgquery) and cached for auth_cache_ttl seconds.
 *
 * A lookup either answers at once from the cache or queues the caller as a waiter; lookups of
 * the same (target, user) while one is running share it. Answers "no such user" are cached
 * too (so a client cannot tell them apart by timing after the first); errors are not cached.
 * Secrets are wiped when dropped and never logged.
 */
#ifndef PGMUX_AUTH_AUTHQUERY_H
#define PGMUX_AUTH_AUTHQUERY_H

#include <stdbool.h>

struct worker;

/*
 * A waiter's answer: secret is the user's secret ("" when the query found the user without
 * one, NULL when it found no row: unknown or expired), borrowed for the call; error is non-NULL when the query failed. Called from the
 * loop, never from inside authquery_lookup(). The callback may start lookups or cancel waiters.
 */
typedef void (*authquery_fn)(void *arg, const char *secret, const char *error);

enum authquery_status {
	AUTHQUERY_CACHED, /* *secret_out holds a copy ("" or NULL as for authquery_fn); caller frees */
	AUTHQUERY_WAIT,   /* fn(arg, ...) will be called */
	AUTHQUERY_FAILED, /* out of memory */
};

/*
 * Look user up on the server conninfo names (libpq keywords; must not need name resolution)
 * with query ($1 = user), in w's cache and over w's connections (made on first use).
 */
enum authquery_status authquery_lookup(struct worker *w, const char *conninfo,
				       const char *query, double ttl, double timeout,
				       const char *user, authquery_fn fn, void *arg,
				       char **secret_out);

/* Forget every waiter in w registered with arg (a client that goes away). */
void authquery_cancel(struct worker *w, void *arg);

/*
 * Free w's cache (wiping the secrets) and close its connections without calling anyone back;
 * at exit, after every client is closed and while the loop still exists.
 */
void authquery_destroy(struct worker *w);

#endif
