/*
 * fe: frontend message parsers (see proto/fe.h). Each parser walks the message once with the
 * checked cursor and ends by requiring that nothing is left, as PostgreSQL does.
 */
#include "proto/fe.h"

/* A string that must end exactly at the end of the message. */
static bool only_cstring(const uint8_t *body, size_t len, const char **out)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	return pkt_get_cstring(&c, out) && pkt_remaining(&c) == 0;
}

/* n big-endian int16 or int32 values, borrowed. */
static bool get_array(struct pkt_cursor *c, uint16_t n, size_t width, const uint8_t **out)
{
	return pkt_get_bytes(c, (size_t)n * width, out);
}

bool fe_parse_query(const uint8_t *body, size_t len, struct fe_query *out)
{
	if (!only_cstring(body, len, &out->sql))
		return false;
	out->sql_len = len - 1;
	return true;
}

bool fe_parse_parse(const uint8_t *body, size_t len, struct fe_parse *out)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	if (!pkt_get_cstring(&c, &out->name))
		return false;
	out->def = c.pos;
	if (!pkt_get_cstring(&c, &out->query))
		return false;
	out->query_len = (size_t)((const char *)c.pos - out->query) - 1;
	if (!pkt_get_u16(&c, &out->nparams) || !get_array(&c, out->nparams, 4, &out->param_types) ||
	    pkt_remaining(&c) != 0)
		return false;
	out->def_len = (size_t)(c.end - out->def);
	return true;
}

uint32_t fe_parse_param_type(const struct fe_parse *p, uint16_t i)
{
	return i < p->nparams ? pkt_read_u32(p->param_types + (size_t)i * 4) : 0;
}

bool fe_parse_bind(const uint8_t *body, size_t len, struct fe_bind *out)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	if (!pkt_get_cstring(&c, &out->portal))
		return false;
	out->statement_off = (size_t)(c.pos - body);
	if (!pkt_get_cstring(&c, &out->statement))
		return false;
	out->rest_off = (size_t)(c.pos - body);
	if (!pkt_get_u16(&c, &out->nformats) || !get_array(&c, out->nformats, 2, &out->formats) ||
	    !pkt_get_u16(&c, &out->nparams))
		return false;
	out->params = c.pos;
	for (uint16_t i = 0; i < out->nparams; i++) {
		int32_t vlen;
		const uint8_t *v;

		if (!pkt_get_i32(&c, &vlen) || vlen < -1)
			return false;
		if (vlen > 0 && !pkt_get_bytes(&c, (size_t)vlen, &v))
			return false;
	}
	out->params_len = (size_t)(c.pos - out->params);
	return pkt_get_u16(&c, &out->nresult_formats) &&
	       get_array(&c, out->nresult_formats, 2, &out->result_formats) &&
	       pkt_remaining(&c) == 0;
}

bool fe_bind_param(const struct fe_bind *b, uint16_t i, const uint8_t **val, int32_t *len,
		   bool *binary)
{
	struct pkt_cursor c;

	if (i >= b->nparams)
		return false;
	pkt_cursor_init(&c, b->params, b->params_len);
	for (uint16_t k = 0;; k++) {
		if (!pkt_get_i32(&c, len) || *len < -1)
			return false;
		if (k == i)
			break;
		if (*len > 0 && !pkt_get_bytes(&c, (size_t)*len, val))
			return false;
	}
	/* An empty value points at where it stands, not NULL: it is a value, unlike SQL NULL. */
	*val = *len >= 0 ? c.pos : NULL;
	if (*len > 0 && !pkt_get_bytes(&c, (size_t)*len, val))
		return false;
	/* No format codes: all text; one: it applies to all; else one per parameter. */
	*binary = b->nformats == 0 ? false
		  : b->nformats == 1
			  ? pkt_read_u16(b->formats) == 1
			  : i < b->nformats && pkt_read_u16(b->formats + (size_t)i * 2) == 1;
	return true;
}

static bool parse_target(const uint8_t *body, size_t len, struct fe_describe *out)
{
	struct pkt_cursor c;
	uint8_t kind;

	pkt_cursor_init(&c, body, len);
	if (!pkt_get_u8(&c, &kind) || (kind != FE_STATEMENT && kind != FE_PORTAL))
		return false;
	out->kind = (enum fe_target)kind;
	return pkt_get_cstring(&c, &out->name) && pkt_remaining(&c) == 0;
}

bool fe_parse_describe(const uint8_t *body, size_t len, struct fe_describe *out)
{
	return parse_target(body, len, out);
}

bool fe_parse_close(const uint8_t *body, size_t len, struct fe_describe *out)
{
	return parse_target(body, len, out);
}

bool fe_parse_execute(const uint8_t *body, size_t len, struct fe_execute *out)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	return pkt_get_cstring(&c, &out->portal) && pkt_get_u32(&c, &out->max_rows) &&
	       pkt_remaining(&c) == 0;
}

bool fe_parse_copy_data(const uint8_t *body, size_t len, const uint8_t **data, size_t *data_len)
{
	*data = body;
	*data_len = len;
	return true;
}

bool fe_parse_copy_done(const uint8_t *body, size_t len)
{
	return len == 0;
}

bool fe_parse_copy_fail(const uint8_t *body, size_t len, const char **message)
{
	return only_cstring(body, len, message);
}

bool fe_parse_sasl_initial(const uint8_t *body, size_t len, struct fe_sasl_initial *out)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	if (!pkt_get_cstring(&c, &out->mechanism) || !pkt_get_i32(&c, &out->data_len) ||
	    out->data_len < -1)
		return false;
	out->data = NULL;
	if (out->data_len >= 0 && !pkt_get_bytes(&c, (size_t)out->data_len, &out->data))
		return false;
	return pkt_remaining(&c) == 0;
}

bool fe_parse_sasl_response(const uint8_t *body, size_t len, const uint8_t **data, size_t *data_len)
{
	*data = body;
	*data_len = len;
	return true;
}

bool fe_parse_password(const uint8_t *body, size_t len, const char **password)
{
	return only_cstring(body, len, password);
}
