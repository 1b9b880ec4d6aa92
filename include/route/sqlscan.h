/*
 * sqlscan: the piece of SQL lexing the small statement recognisers share (setstmt, dealloc):
 * a cursor over text that need not be NUL-terminated, and skipping what PostgreSQL skips
 * between tokens. Pure.
 */
#ifndef PGMUX_ROUTE_SQLSCAN_H
#define PGMUX_ROUTE_SQLSCAN_H

struct sql_scan {
	const char *p, *end;
};

/* Skip white space, -- comments and (nested) block comments, as PostgreSQL's scanner does. */
void sqlscan_skip_space(struct sql_scan *s);

#endif
