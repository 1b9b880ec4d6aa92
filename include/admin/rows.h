/*
 * admin/rows: building the result tables of SHOW commands: a column list declared once, and
 * rows filled through a builder that counts its values, so a row can never have more or fewer
 * values than its header says (checked by ASSERT).
 */
#ifndef PGMUX_ADMIN_ROWS_H
#define PGMUX_ADMIN_ROWS_H

#include <stdint.h>

#include "proto/build.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define OID_INT8 20
#define OID_INT4 23
#define OID_TEXT 25

/*
 * The widest table (SHOW SOCKETS) has 25 columns. A struct row lives on the stack while one
 * row is written, and is reused for the next: its size, MAX_COLS * (SLOT_LEN + a pointer), is
 * paid once per table, never per row.
 */
#define MAX_COLS 25
#define SLOT_LEN 64 /* an IPv6 address, a timestamp, a decimal uint64 */

struct column {
	const char *name;
	uint32_t oid;
};

/* One DataRow being filled: values point at caller strings or at the row's own slots. */
struct row {
	int n, ncols;
	const char *val[MAX_COLS];
	char slot[MAX_COLS][SLOT_LEN];
};

/* The RowDescription of ncols columns. */
void put_header(struct msgbuf *mb, const struct column *cols, int ncols);
void row_start(struct row *r, int ncols);
/* s is borrowed until row_end(); NULL is SQL NULL. */
void put_str(struct row *r, const char *s);
void put_int(struct row *r, int64_t v);
void put_uint(struct row *r, uint64_t v);
void put_ptr(struct row *r, const void *p);
/* A wall-clock time in microseconds as local time, the way PgBouncer prints it. */
void put_time(struct row *r, uint64_t us);
/* The DataRow, once every column has its value. */
void row_end(struct msgbuf *mb, struct row *r);

/* Microseconds from then to now; 0 when then is unset (0) or not before now. */
static inline uint64_t since(uint64_t now, uint64_t then)
{
	return then && now > then ? now - then : 0;
}

#define HEADER(mb, cols) put_header((mb), (cols), (int)ARRAY_LEN(cols))
#define ROW(r, cols) row_start((r), (int)ARRAY_LEN(cols))

#endif
