/*
 * classify: decide from a query string's text where it may run (replica or primary), whether it
 * controls a transaction, changes settings or creates session state that pins the client to one
 * server. Pure: text and configuration in, a small description out; no I/O, no allocation.
 *
 * The router applies policy (DESIGN.md, "Routing rules"); this module only reads SQL. When in
 * doubt it answers ROUTE_WRITE: a read sent to the primary costs a little, a write sent to a
 * replica fails.
 */
#ifndef PGMUX_ROUTE_CLASSIFY_H
#define PGMUX_ROUTE_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

enum route_class {
	ROUTE_EMPTY, /* only whitespace, comments and ';': any server will do */
	ROUTE_READ, /* SELECT, VALUES, TABLE, SHOW, read-only WITH, EXPLAIN, COPY ... TO: a replica may answer */
	ROUTE_WRITE, /* writes, locks rows, calls a write function, or is not understood: primary */
	ROUTE_TXN_BEGIN, /* BEGIN / START TRANSACTION; read_only_txn tells READ ONLY */
	ROUTE_TXN_END,   /* COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION */
	ROUTE_TXN_OTHER, /* SAVEPOINT, RELEASE, ROLLBACK TO: stays with the transaction's server */
	ROUTE_SESSION_PIN, /* creates session state (pin_reason says which): primary, and stay there */
	ROUTE_SET,         /* SET (set_local for SET LOCAL), RESET, DISCARD: see route/setstmt.h */
	ROUTE_HINT_SET,    /* SET / RESET pgmux.route: handled by pgmux; hint is the new value */
};

enum route_hint {
	ROUTE_HINT_NONE,    /* no hint */
	ROUTE_HINT_PRIMARY, /* send to the primary */
	ROUTE_HINT_REPLICA, /* send to a replica (the user vouches that it only reads) */
	ROUTE_HINT_AUTO,    /* classify the text (the default; clears a session hint) */
	ROUTE_HINT_INVALID, /* SET pgmux.route to something else: the caller answers with an error */
};

struct route_result {
	enum route_class cls;
	/* ROUTE_TXN_BEGIN only: the transaction was declared READ ONLY. */
	bool read_only_txn;
	/* ROUTE_SET only: SET LOCAL (ends with the transaction). ROUTE_HINT_SET: SET LOCAL pgmux.route. */
	bool set_local;
	/*
	 * ROUTE_HINT_SET (a string holding only that statement): the value set. Otherwise the hint of a comment before the first statement
	 * ("/" "* pgmux:primary *" "/", or "-- pgmux:replica"); the caller decides whether it
	 * overrides cls (transaction control and SET are never re-routed by a hint).
	 */
	enum route_hint hint;
	/* ROUTE_SESSION_PIN: static string naming the session state, for SHOW CLIENTS; else NULL. */
	const char *pin_reason;
	/* Non-empty statements in the string (a simple Query may carry several). */
	int statements;
};

/*
 * Functions whose call makes a statement go to the primary. The names are matched without their
 * schema (public.nextval counts as nextval), case-insensitively unless written as a quoted
 * identifier, where the case must match as PostgreSQL would require.
 */
struct classify_config {
	const char *const *write_functions; /* NULL: classify_default_write_functions */
	size_t n_write_functions;
};

/*
 * The default write_functions list: sequences (nextval, setval, currval, lastval), advisory locks
 * (session and transaction level, and their unlocks), server-side large objects (lo_create,
 * lo_import, lowrite, ...), pg_notify, set_config, transaction ids (txid_current,
 * pg_current_xact_id), WAL positions and switches, replication slots and logical messages, and
 * dblink_exec. Session advisory locks and dblink_connect also pin, whatever the list says.
 */
extern const char *const classify_default_write_functions[];
extern const size_t classify_n_default_write_functions;

/*
 * Classify the query string sql[0..len) (need not be NUL-terminated; never read past len).
 * cfg may be NULL for the defaults. Several statements give ROUTE_READ only when all of them
 * read, ROUTE_SESSION_PIN when any of them pins (pin_reason of the first), else ROUTE_WRITE.
 * Fills *out completely; pin_reason points to static storage. Never calls back.
 */
void classify_sql(const char *sql, size_t len, const struct classify_config *cfg,
		  struct route_result *out);

/* Names for logs and SHOW output ("read", "write", "txn_begin", ...; "primary", "replica", ...): static strings. */
const char *route_class_name(enum route_class cls);
const char *route_hint_name(enum route_hint hint);

#endif
