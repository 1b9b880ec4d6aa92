/*
 * admin/rows: the SHOW tables' row builder (see admin/rows.h).
 */
#include "admin/rows.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "core/log.h"

void put_header(struct msgbuf *mb, const struct column *cols, int ncols)
{
	const char *names[MAX_COLS];
	uint32_t oids[MAX_COLS];

	ASSERT(ncols <= MAX_COLS);
	for (int i = 0; i < ncols; i++) {
		names[i] = cols[i].name;
		oids[i] = cols[i].oid;
	}
	build_row_description(mb, ncols, names, oids);
}

void row_start(struct row *r, int ncols)
{
	ASSERT(ncols <= MAX_COLS);
	r->n = 0;
	r->ncols = ncols;
}

void put_str(struct row *r, const char *s)
{
	ASSERT(r->n < r->ncols);
	r->val[r->n++] = s;
}

void put_int(struct row *r, int64_t v)
{
	ASSERT(r->n < r->ncols);
	snprintf(r->slot[r->n], SLOT_LEN, "%" PRId64, v);
	r->val[r->n] = r->slot[r->n];
	r->n++;
}

void put_uint(struct row *r, uint64_t v)
{
	ASSERT(r->n < r->ncols);
	snprintf(r->slot[r->n], SLOT_LEN, "%" PRIu64, v);
	r->val[r->n] = r->slot[r->n];
	r->n++;
}

void put_ptr(struct row *r, const void *p)
{
	ASSERT(r->n < r->ncols);
	if (!p) {
		r->val[r->n++] = NULL;
		return;
	}
	snprintf(r->slot[r->n], SLOT_LEN, "%p", p);
	r->val[r->n] = r->slot[r->n];
	r->n++;
}

void put_time(struct row *r, uint64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	ASSERT(r->n < r->ncols);
	if (!localtime_r(&t, &tm) ||
	    strftime(r->slot[r->n], SLOT_LEN, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
		r->slot[r->n][0] = '\0';
	r->val[r->n] = r->slot[r->n];
	r->n++;
}

void row_end(struct msgbuf *mb, struct row *r)
{
	ASSERT(r->n == r->ncols);
	build_data_row(mb, r->n, r->val);
}
