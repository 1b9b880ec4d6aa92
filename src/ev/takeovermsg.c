/*
 * takeovermsg: the takeover socket's messages (see ev/takeovermsg.h).
 *
 * Invariants: the encoder writes only valid messages (so what it writes decodes to the same
 * struct); the decoder reads through bounds checks only and leaves every string NUL-terminated.
 */
#include "ev/takeovermsg.h"

#include <stdio.h>
#include <string.h>

#define MAGIC "pgmx"

static bool known_type(int type)
{
	return type == TAKEOVER_HELLO || type == TAKEOVER_SOCKETS || type == TAKEOVER_REFUSE ||
	       type == TAKEOVER_READY || type == TAKEOVER_DONE || type == TAKEOVER_PART ||
	       type == TAKEOVER_CLIENT || type == TAKEOVER_SERVERS;
}

static bool known_kind(int kind)
{
	return kind == TAKEOVER_CLIENTS || kind == TAKEOVER_METRICS || kind == TAKEOVER_CONTROL;
}

const char *takeovermsg_type_name(int type)
{
	switch (type) {
	case TAKEOVER_HELLO:
		return "hello";
	case TAKEOVER_SOCKETS:
		return "sockets";
	case TAKEOVER_REFUSE:
		return "refuse";
	case TAKEOVER_READY:
		return "ready";
	case TAKEOVER_DONE:
		return "done";
	case TAKEOVER_PART:
		return "part";
	case TAKEOVER_CLIENT:
		return "client";
	case TAKEOVER_SERVERS:
		return "servers";
	default:
		return "unknown";
	}
}

const char *takeovermsg_kind_name(int kind)
{
	switch (kind) {
	case TAKEOVER_CLIENTS:
		return "clients";
	case TAKEOVER_METRICS:
		return "metrics";
	case TAKEOVER_CONTROL:
		return "control";
	default:
		return "unknown";
	}
}

/* ---- writing ---- */

struct wbuf {
	uint8_t *p;
	size_t len, pos;
	bool ok;
};

static void put(struct wbuf *w, const void *src, size_t n)
{
	if (!w->ok || n > w->len - w->pos) {
		w->ok = false;
		return;
	}
	memcpy(w->p + w->pos, src, n);
	w->pos += n;
}

static void put_u8(struct wbuf *w, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(w, &b, 1);
}

static void put_u16(struct wbuf *w, unsigned v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(w, b, 2);
}

static void put_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put(w, b, 4);
}

/* A string of at most max - 1 bytes, after its one-byte length (max - 1 <= 255). */
static void put_str(struct wbuf *w, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	if (n >= max) {
		w->ok = false;
		return;
	}
	put_u8(w, (unsigned)n);
	put(w, s, n);
}

size_t takeovermsg_encode(const struct takeover_msg *m, uint8_t *buf, size_t len)
{
	struct wbuf w = { .p = buf, .len = len, .ok = true };

	if (!known_type(m->type))
		return 0;
	put(&w, MAGIC, 4);
	put_u8(&w, m->type);
	put_u16(&w, m->version);
	put_u32(&w, m->pid);
	if (m->type == TAKEOVER_SOCKETS) {
		if (m->n_socks < 0 || m->n_socks > TAKEOVER_MAX_SOCKETS)
			return 0;
		put_u8(&w, (unsigned)m->n_socks);
		for (int i = 0; i < m->n_socks; i++) {
			const struct takeover_sock *s = &m->socks[i];

			if (!known_kind(s->kind))
				return 0;
			put_u8(&w, s->kind);
			put_u8(&w, s->flags);
			put_u16(&w, s->family);
			put_str(&w, s->addr, sizeof(s->addr));
		}
	} else if (m->type == TAKEOVER_REFUSE) {
		put_str(&w, m->reason, sizeof(m->reason));
	} else if (m->type == TAKEOVER_SERVERS) {
		put_str(&w, m->db, sizeof(m->db));
		put_str(&w, m->user, sizeof(m->user));
		put_u32(&w, m->n_servers);
	} else if (m->type == TAKEOVER_PART || m->type == TAKEOVER_CLIENT) {
		if (!m->piece || m->piece_len == 0 || m->piece_len > TAKEOVER_PIECE_MAX)
			return 0;
		put(&w, m->piece, m->piece_len);
	}
	return w.ok ? w.pos : 0;
}

/* ---- reading ---- */

struct rbuf {
	const uint8_t *p;
	size_t len, pos;
};

static __attribute__((warn_unused_result)) bool get(struct rbuf *r, void *dst, size_t n)
{
	if (n > r->len - r->pos)
		return false;
	memcpy(dst, r->p + r->pos, n);
	r->pos += n;
	return true;
}

static __attribute__((warn_unused_result)) bool get_u8(struct rbuf *r, uint8_t *v)
{
	return get(r, v, 1);
}

static __attribute__((warn_unused_result)) bool get_u16(struct rbuf *r, uint16_t *v)
{
	uint8_t b[2];

	if (!get(r, b, 2))
		return false;
	*v = (uint16_t)(b[0] << 8 | b[1]);
	return true;
}

static __attribute__((warn_unused_result)) bool get_u32(struct rbuf *r, uint32_t *v)
{
	uint8_t b[4];

	if (!get(r, b, 4))
		return false;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return true;
}

/* A length-prefixed string into dst (max bytes with its NUL); no NUL may be inside. */
static __attribute__((warn_unused_result)) bool get_str(struct rbuf *r, char *dst, size_t max)
{
	uint8_t n;

	if (!get_u8(r, &n) || n >= max || !get(r, dst, n) || memchr(dst, '\0', n))
		return false;
	dst[n] = '\0';
	return true;
}

static bool fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "takeover message: %s", what);
	return false;
}

static bool decode_sockets(struct rbuf *r, struct takeover_msg *m, char *err, size_t errlen)
{
	uint8_t n;

	if (!get_u8(r, &n))
		return fail(err, errlen, "sockets: no count");
	if (n > TAKEOVER_MAX_SOCKETS)
		return fail(err, errlen, "sockets: too many");
	m->n_socks = n;
	for (int i = 0; i < n; i++) {
		struct takeover_sock *s = &m->socks[i];

		if (!get_u8(r, &s->kind) || !get_u8(r, &s->flags) || !get_u16(r, &s->family) ||
		    !get_str(r, s->addr, sizeof(s->addr)))
			return fail(err, errlen, "sockets: record cut short or address invalid");
		if (!known_kind(s->kind))
			return fail(err, errlen, "sockets: unknown kind");
	}
	return true;
}

bool takeovermsg_decode(const uint8_t *buf, size_t len, struct takeover_msg *m, char *err,
			size_t errlen)
{
	struct rbuf r = { .p = buf, .len = len };
	char magic[4];

	memset(m, 0, sizeof(*m));
	if (!get(&r, magic, 4) || memcmp(magic, MAGIC, 4) != 0)
		return fail(err, errlen, "bad magic");
	if (!get_u8(&r, &m->type) || !get_u16(&r, &m->version) || !get_u32(&r, &m->pid))
		return fail(err, errlen, "header cut short");
	if (!known_type(m->type))
		return fail(err, errlen, "unknown type");
	if (m->type == TAKEOVER_SOCKETS && !decode_sockets(&r, m, err, errlen))
		return false;
	if (m->type == TAKEOVER_REFUSE && !get_str(&r, m->reason, sizeof(m->reason)))
		return fail(err, errlen, "refuse: reason cut short or invalid");
	if (m->type == TAKEOVER_SERVERS &&
	    (!get_str(&r, m->db, sizeof(m->db)) || !get_str(&r, m->user, sizeof(m->user)) ||
	     !get_u32(&r, &m->n_servers)))
		return fail(err, errlen, "servers: names cut short or invalid");
	if (m->type == TAKEOVER_PART || m->type == TAKEOVER_CLIENT) {
		if (r.pos == r.len || r.len - r.pos > TAKEOVER_PIECE_MAX)
			return fail(err, errlen, "client: a piece of a record empty or too long");
		m->piece = r.p + r.pos;
		m->piece_len = r.len - r.pos;
		r.pos = r.len;
	}
	if (r.pos != r.len)
		return fail(err, errlen, "bytes after the end");
	return true;
}
