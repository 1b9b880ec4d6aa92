/*
 * startup: parse StartupMessage and its special request codes.
 */
#include "proto/startup.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/pkt.h"

static enum startup_kind bad(struct startup_msg *out, char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	out->kind = STARTUP_BAD;
	return STARTUP_BAD;
}

static enum startup_kind parse_params(struct pkt_cursor *c, struct startup_msg *out, char *err,
				      size_t errlen)
{
	for (;;) {
		const char *name, *value;

		if (!pkt_get_cstring(c, &name))
			return bad(
				out, err, errlen,
				"invalid startup packet layout: expected terminator as last byte");
		if (!*name)
			break;
		if (!pkt_get_cstring(c, &value))
			return bad(out, err, errlen,
				   "invalid startup packet layout: missing value");
		if (strncmp(name, "_pq_.", 5) == 0) {
			if (out->nunknown_opts < STARTUP_MAX_PARAMS)
				out->unknown_opts[out->nunknown_opts++] = name;
			continue;
		}
		if (out->nparams >= STARTUP_MAX_PARAMS)
			return bad(out, err, errlen, "too many startup parameters");
		out->names[out->nparams] = name;
		out->values[out->nparams] = value;
		out->nparams++;
	}
	if (pkt_remaining(c) != 0)
		return bad(out, err, errlen,
			   "invalid startup packet layout: expected terminator as last byte");
	out->kind = STARTUP_V3;
	return STARTUP_V3;
}

enum startup_kind startup_parse(const uint8_t *pkt, size_t len, struct startup_msg *out, char *err,
				size_t errlen)
{
	struct pkt_cursor c;
	uint32_t plen, code;

	memset(out, 0, sizeof(*out));
	pkt_cursor_init(&c, pkt, len);
	if (!pkt_get_u32(&c, &plen) || !pkt_get_u32(&c, &code) || plen != len)
		return bad(out, err, errlen, "invalid length of startup packet");
	switch (code) {
	case PROTO_SSL:
		out->kind = STARTUP_SSL;
		return plen == 8 ? STARTUP_SSL
				 : bad(out, err, errlen, "invalid length of SSL request");
	case PROTO_GSSENC:
		out->kind = STARTUP_GSSENC;
		return plen == 8 ? STARTUP_GSSENC
				 : bad(out, err, errlen, "invalid length of GSSENC request");
	case PROTO_CANCEL:
		if (!pkt_get_u32(&c, &out->cancel_pid) || !pkt_get_u32(&c, &out->cancel_key) ||
		    pkt_remaining(&c) != 0)
			return bad(out, err, errlen, "invalid length of cancel request");
		out->kind = STARTUP_CANCEL;
		return STARTUP_CANCEL;
	default:
		break;
	}
	out->version = code;
	if ((code >> 16) < 3) {
		snprintf(err, errlen,
			 "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			 code >> 16, code & 0xffff);
		out->kind = STARTUP_OLD_PROTO;
		return STARTUP_OLD_PROTO;
	}
	if ((code >> 16) > 3) {
		snprintf(err, errlen,
			 "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			 code >> 16, code & 0xffff);
		out->kind = STARTUP_OLD_PROTO;
		return STARTUP_OLD_PROTO;
	}
	return parse_params(&c, out, err, errlen);
}

const char *startup_get(const struct startup_msg *m, const char *name)
{
	for (int i = 0; i < m->nparams; i++)
		if (strcmp(m->names[i], name) == 0)
			return m->values[i];
	return NULL;
}
