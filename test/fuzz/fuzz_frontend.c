/* link: src/proto/fe.c src/proto/pkt.c */
/* libFuzzer target: the frontend messages pgmux parses (Query, Parse, Bind, ..., SASL, password). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/fe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results are read back, so that a pointer outside the input shows up under ASan. */
static volatile size_t sink;

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; p && i < n; i++)
		sink += b[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fe_query q;
	struct fe_parse p;
	struct fe_bind b;
	struct fe_describe d;
	struct fe_execute e;
	struct fe_sasl_initial si;
	const uint8_t *bytes;
	const char *s;
	size_t n;

	if (fe_parse_query(data, size, &q))
		touch(q.sql, q.sql_len + 1);
	if (fe_parse_parse(data, size, &p)) {
		touch(p.name, strlen(p.name) + 1);
		touch(p.query, p.query_len + 1);
		touch(p.def, p.def_len);
		for (uint16_t i = 0; i < p.nparams; i++)
			sink += fe_parse_param_type(&p, i);
	}
	if (fe_parse_bind(data, size, &b)) {
		touch(b.portal, strlen(b.portal) + 1);
		touch(b.statement, strlen(b.statement) + 1);
		touch(data + b.rest_off, size - b.rest_off);
		touch(b.formats, (size_t)b.nformats * 2);
		touch(b.params, b.params_len);
		touch(b.result_formats, (size_t)b.nresult_formats * 2);
	}
	if (fe_parse_describe(data, size, &d))
		touch(d.name, strlen(d.name) + 1);
	if (fe_parse_close(data, size, &d))
		touch(d.name, strlen(d.name) + 1);
	if (fe_parse_execute(data, size, &e))
		touch(e.portal, strlen(e.portal) + 1);
	if (fe_parse_copy_data(data, size, &bytes, &n))
		touch(bytes, n);
	if (fe_parse_copy_done(data, size))
		touch(data, size);
	if (fe_parse_copy_fail(data, size, &s))
		touch(s, strlen(s) + 1);
	if (fe_parse_sasl_initial(data, size, &si) && si.data_len > 0)
		touch(si.data, (size_t)si.data_len);
	if (fe_parse_sasl_response(data, size, &bytes, &n))
		touch(bytes, n);
	if (fe_parse_password(data, size, &s))
		touch(s, strlen(s) + 1);
	return 0;
}
