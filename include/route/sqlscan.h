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

/*
 * p is just past a block comment's opening slash-star; comments nest. Returns the end of the
 * comment, and its body's end in *body_end (both end for an unterminated comment: the server
 * refuses the string).
 */
const char *sqlscan_comment_end(const char *p, const char *end, const char **body_end);

/* Skip white space, -- comments and (nested) block comments, as PostgreSQL's scanner does. */
void sqlscan_skip_space(struct sql_scan *s);

#endif
