/*
 * dealloc: recognise the SQL statements that drop prepared statements (DEALLOCATE and DISCARD
 * ALL), so that pgmux can apply them to the names it manages for a client in transaction
 * pooling instead of to the server's (shared, renamed) statements. Pure: text in, description out.
 */
#ifndef PGMUX_ROUTE_DEALLOC_H
#define PGMUX_ROUTE_DEALLOC_H

#include <stddef.h>

enum dealloc_kind {
	DEALLOC_NONE,        /* none of these, or a form not understood (the server answers it) */
	DEALLOC_NAME,        /* DEALLOCATE [PREPARE] name */
	DEALLOC_ALL,         /* DEALLOCATE [PREPARE] ALL */
	DEALLOC_DISCARD_ALL, /* DISCARD ALL */
};

/* PostgreSQL's NAMEDATALEN: a statement name has at most 63 bytes. */
#define DEALLOC_NAME_MAX 64

struct dealloc_stmt {
	enum dealloc_kind kind;
	char name
		[DEALLOC_NAME_MAX]; /* DEALLOC_NAME: as PostgreSQL reads it (lower-cased unless quoted) */
};

/*
 * Classify one query string (len bytes, need not be NUL-terminated): a single statement,
 * comments and a final ';' allowed. A name PostgreSQL would truncate is DEALLOC_NONE.
 */
enum dealloc_kind dealloc_parse(const char *sql, size_t len, struct dealloc_stmt *out);

#endif
