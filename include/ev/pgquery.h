/*
 * pgquery: one persistent libpq connection that runs small parameterized queries without
 * blocking the loop (PQconnectStart/PQconnectPoll, PQsendQueryParams, PQconsumeInput driven by
 * libev). Used for auth_query and for topology's health checks (one per member). Requests queue
 * FIFO and run one at a time; the connection opens on the first request, stays open while it
 * works, and is reopened after an error.
 *
 * The conninfo must not make libpq resolve a name: give hostaddr= (numeric) or a unix socket
 * directory as host=. A connect or query that takes longer than the timeout drops the
 * connection and fails what was queued.
 *
 * Two options of the conninfo are pgquery's own, taken out before libpq sees it (libpq 15 knows
 * neither): require_auth= (libpq 16's list: password, md5, scram-sha-256, none) and
 * scram_max_iterations=. pgquery looks at each authentication request before libpq reads it
 * and fails the connection, before anything derived from the password is sent, when the method
 * is not listed or SCRAM asks for more iterations (which libpq would compute on the loop).
 */
#ifndef PGMUX_EV_PGQUERY_H
#define PGMUX_EV_PGQUERY_H

#include <stdbool.h>
#include <stddef.h>

struct evloop;
struct pgquery;

enum pgquery_outcome {
	PGQUERY_ROW,    /* the query returned at least one row: values hold the first */
	PGQUERY_NO_ROW, /* it returned no row, or was a command that returns none (DDL) */
	PGQUERY_ERROR,  /* the query failed: error says why */
	PGQUERY_LOST,   /* no answer: the connection could not be made, failed or timed out */
};

/*
 * Called from the loop once a request is done, never from inside pgquery_submit(). values are
 * the first row's ncols columns (NULL for SQL NULL); they and error are valid only during the
 * call. The callback may submit requests, but must not free the pgquery.
 */
typedef void (*pgquery_done_fn)(void *arg, enum pgquery_outcome outcome, int ncols,
				const char *const *values, const char *error);

/* What pgquery_conninfo_policy() appends: pgmux's rules for its logins to servers. */
struct pgquery_policy {
	int sslmode;           /* enum tls_mode (ev/tls.h): as server_tls_sslmode */
	const char *ca_file;   /* "" = the system's CAs (only verify-full uses them) */
	const char *cert_file; /* "" = none */
	const char *key_file;
	const char *host_name;    /* the name verify-full checks; "" = none (numeric hosts) */
	const char *require_auth; /* methods the server may ask for; "" = any */
	int scram_max_iterations; /* 0 = no bound */
};

/*
 * Append " key='value'" to the conninfo in out (NUL-terminated), quoted as libpq reads it.
 * False when out is too small (out is then cut at a key boundary, not half a value).
 */
bool pgquery_conninfo_add(char *out, size_t outlen, const char *key, const char *value);

/* Append sslmode and the TLS files, host= for verify-full, and the authentication bounds. */
bool pgquery_conninfo_policy(char *out, size_t outlen, const struct pgquery_policy *p);

/* A connection (opened lazily) for conninfo; the caller owns it. NULL when out of memory. */
struct pgquery *pgquery_new(struct evloop *loop, const char *conninfo, double timeout);

/* The conninfo it was made with (borrowed). */
const char *pgquery_conninfo(const struct pgquery *q);

/* Queue sql with one text parameter $1 (param may be NULL for none). False: out of memory. */
bool pgquery_submit(struct pgquery *q, const char *sql, const char *param, pgquery_done_fn fn,
		    void *arg);

/*
 * Take back a request queued with fn and arg that has not been sent yet; its callback will not
 * run. False when there is none (not queued, or already sent: then the callback still comes).
 * Never calls back.
 */
bool pgquery_withdraw(struct pgquery *q, pgquery_done_fn fn, void *arg);

/*
 * Close the connection and free q without calling any callback. loop_alive false: the loop is
 * already destroyed (at exit), so watchers are only freed, not stopped.
 */
void pgquery_free(struct pgquery *q, bool loop_alive);

/* "libpq MAJOR.MINOR" of the libpq linked at run time, into buf (--version). */
void pgquery_library_version(char *buf, size_t len);

#endif
