/*
 * build: protocol message writers (see proto/build.h).
 */
#include "proto/build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pkt.h"

void mb_init(struct msgbuf *mb)
{
	memset(mb, 0, sizeof(*mb));
}

void mb_free(struct msgbuf *mb)
{
	free(mb->data);
	mb_init(mb);
}

static bool mb_reserve(struct msgbuf *mb, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (mb->failed)
		return false;
	if (mb->len + n <= mb->cap)
		return true;
	cap = mb->cap ? mb->cap : 256;
	while (cap < mb->len + n)
		cap *= 2;
	p = realloc(mb->data, cap);
	if (!p) {
		mb->failed = true;
		return false;
	}
	mb->data = p;
	mb->cap = cap;
	return true;
}

void mb_put_bytes(struct msgbuf *mb, const void *p, size_t n)
{
	if (!n || !mb_reserve(mb, n))
		return;
	memcpy(mb->data + mb->len, p, n);
	mb->len += n;
}

void mb_put_u8(struct msgbuf *mb, uint8_t v)
{
	mb_put_bytes(mb, &v, 1);
}

void mb_put_u16(struct msgbuf *mb, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	mb_put_bytes(mb, b, 2);
}

void mb_put_u32(struct msgbuf *mb, uint32_t v)
{
	uint8_t b[4];

	pkt_write_u32(b, v);
	mb_put_bytes(mb, b, 4);
}

void mb_put_cstring(struct msgbuf *mb, const char *s)
{
	mb_put_bytes(mb, s, strlen(s) + 1);
}

size_t mb_begin(struct msgbuf *mb, char type)
{
	size_t lenpos;

	if (type)
		mb_put_u8(mb, (uint8_t)type);
	lenpos = mb->len;
	mb_put_u32(mb, 0);
	return lenpos;
}

void mb_end(struct msgbuf *mb, size_t lenpos)
{
	/* The length field counts itself and what follows, never the type byte. */
	if (!mb->failed)
		pkt_write_u32(mb->data + lenpos, (uint32_t)(mb->len - lenpos));
}

static void build_error_fields(struct msgbuf *mb, char type, const char *severity,
			       const char *sqlstate, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t start;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	start = mb_begin(mb, type);
	mb_put_u8(mb, 'S');
	mb_put_cstring(mb, severity);
	mb_put_u8(mb, 'V');
	mb_put_cstring(mb, severity);
	mb_put_u8(mb, 'C');
	mb_put_cstring(mb, sqlstate);
	mb_put_u8(mb, 'M');
	mb_put_cstring(mb, msg);
	mb_put_u8(mb, 0);
	mb_end(mb, start);
}

void build_error(struct msgbuf *mb, const char *severity, const char *sqlstate, const char *fmt,
		 ...)
{
	va_list ap;

	va_start(ap, fmt);
	build_error_fields(mb, 'E', severity, sqlstate, fmt, ap);
	va_end(ap);
}

bool build_error_with_severity(struct msgbuf *mb, const uint8_t *body, size_t len,
			       const char *severity)
{
	size_t lenpos = mb_begin(mb, 'E');
	size_t pos = 0;

	while (pos < len && body[pos] != '\0') {
		char field = (char)body[pos++];
		const uint8_t *nul = memchr(body + pos, '\0', len - pos);

		if (!nul)
			return false;
		mb_put_u8(mb, (uint8_t)field);
		/* 'S' is the localized severity, 'V' the one clients may parse: both say severity. */
		mb_put_cstring(mb,
			       field == 'S' || field == 'V' ? severity : (const char *)body + pos);
		pos = (size_t)(nul - body) + 1;
	}
	if (pos >= len)
		return false;
	mb_put_u8(mb, 0);
	mb_end(mb, lenpos);
	return !mb->failed;
}

void build_notice(struct msgbuf *mb, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	build_error_fields(mb, 'N', "NOTICE", sqlstate, fmt, ap);
	va_end(ap);
}

void build_ready(struct msgbuf *mb, char tx_status)
{
	size_t start = mb_begin(mb, 'Z');

	mb_put_u8(mb, (uint8_t)tx_status);
	mb_end(mb, start);
}

void build_auth_request(struct msgbuf *mb, enum be_auth_code code, const void *extra,
			size_t extra_len)
{
	size_t start = mb_begin(mb, 'R');

	mb_put_u32(mb, code);
	mb_put_bytes(mb, extra, extra_len);
	mb_end(mb, start);
}

void build_parameter_status(struct msgbuf *mb, const char *name, const char *value)
{
	size_t start = mb_begin(mb, 'S');

	mb_put_cstring(mb, name);
	mb_put_cstring(mb, value);
	mb_end(mb, start);
}

void build_backend_key(struct msgbuf *mb, uint32_t pid, uint32_t key)
{
	size_t start = mb_begin(mb, 'K');

	mb_put_u32(mb, pid);
	mb_put_u32(mb, key);
	mb_end(mb, start);
}

void build_command_complete(struct msgbuf *mb, const char *tag)
{
	size_t start = mb_begin(mb, 'C');

	mb_put_cstring(mb, tag);
	mb_end(mb, start);
}

void build_empty_query(struct msgbuf *mb)
{
	mb_end(mb, mb_begin(mb, 'I'));
}

void build_row_description(struct msgbuf *mb, int ncols, const char *const *names,
			   const uint32_t *oids)
{
	size_t start = mb_begin(mb, 'T');

	mb_put_u16(mb, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		uint32_t oid = oids ? oids[i] : 25;

		mb_put_cstring(mb, names[i]);
		mb_put_u32(mb, 0); /* table oid */
		mb_put_u16(mb, 0); /* column number */
		mb_put_u32(mb, oid);
		mb_put_u16(mb, oid == 20 ? 8 : oid == 23 ? 4 : 0xffff); /* type size */
		mb_put_u32(mb, 0xffffffff);                             /* type modifier */
		mb_put_u16(mb, 0);                                      /* text format */
	}
	mb_end(mb, start);
}

void build_data_row(struct msgbuf *mb, int ncols, const char *const *values)
{
	size_t start = mb_begin(mb, 'D');

	mb_put_u16(mb, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		if (!values[i]) {
			mb_put_u32(mb, 0xffffffff);
			continue;
		}
		size_t n = strlen(values[i]);

		mb_put_u32(mb, (uint32_t)n);
		mb_put_bytes(mb, values[i], n);
	}
	mb_end(mb, start);
}

void build_query(struct msgbuf *mb, const char *sql)
{
	size_t start = mb_begin(mb, 'Q');

	mb_put_cstring(mb, sql);
	mb_end(mb, start);
}

void build_password(struct msgbuf *mb, const char *password)
{
	size_t start = mb_begin(mb, 'p');

	mb_put_cstring(mb, password);
	mb_end(mb, start);
}

void build_sasl_initial(struct msgbuf *mb, const char *mech, const void *data, size_t len)
{
	size_t start = mb_begin(mb, 'p');

	mb_put_cstring(mb, mech);
	mb_put_u32(mb, (uint32_t)len);
	mb_put_bytes(mb, data, len);
	mb_end(mb, start);
}

void build_sasl_response(struct msgbuf *mb, const void *data, size_t len)
{
	size_t start = mb_begin(mb, 'p');

	mb_put_bytes(mb, data, len);
	mb_end(mb, start);
}

void build_cancel_request(struct msgbuf *mb, uint32_t pid, uint32_t key)
{
	mb_put_u32(mb, 16);
	mb_put_u32(mb, PROTO_CANCEL);
	mb_put_u32(mb, pid);
	mb_put_u32(mb, key);
}

void build_startup(struct msgbuf *mb, const char *const *pairs)
{
	size_t start = mb_begin(mb, 0);

	mb_put_u32(mb, PROTO_V3);
	for (; pairs[0]; pairs += 2) {
		mb_put_cstring(mb, pairs[0]);
		mb_put_cstring(mb, pairs[1]);
	}
	mb_put_u8(mb, 0);
	mb_end(mb, start);
}

void build_negotiate_version(struct msgbuf *mb, uint32_t minor, int nopts, const char *const *opts)
{
	size_t start = mb_begin(mb, 'v');

	mb_put_u32(mb, minor);
	mb_put_u32(mb, (uint32_t)nopts);
	for (int i = 0; i < nopts; i++)
		mb_put_cstring(mb, opts[i]);
	mb_end(mb, start);
}
