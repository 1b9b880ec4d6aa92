/*
 * pkt: PostgreSQL v3 message framing and a bounds-checked reading cursor.
 *
 * Pure code: it is fed bytes, never a socket. Every getter checks the remaining length first and
 * returns false (leaving the output untouched) when the message is too short, so a parser built on
 * it cannot read past a message, whatever a peer sends.
 */
#ifndef PGMUX_PROTO_PKT_H
#define PGMUX_PROTO_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_HDR_LEN 5         /* type byte + int32 length */
#define PKT_STARTUP_HDR_LEN 8 /* int32 length + int32 code */
#define PKT_STARTUP_MAX 10000 /* PostgreSQL's own limit for startup packets */

/* PostgreSQL's NAMEDATALEN: a name (identifier, setting name) is at most one byte shorter. */
#define PG_NAMEDATALEN 64

#define PROTO_V3 196608 /* 3.0 */
#define PROTO_CANCEL 80877102
#define PROTO_SSL 80877103
#define PROTO_GSSENC 80877104

struct pkt_header {
	char type;    /* 0 for startup-phase packets, which have no type byte */
	uint32_t len; /* whole message length on the wire, header included */
};

enum pkt_peek {
	PKT_PEEK_OK,
	PKT_PEEK_SHORT, /* need more bytes to see the header */
	PKT_PEEK_BAD,   /* the length field is impossible */
};

/* Read a typed message header from buf. len counts the type byte; bad if length field < 4. */
enum pkt_peek pkt_peek_header(const uint8_t *buf, size_t avail, struct pkt_header *hdr);

/* Read a startup-phase header (no type byte); bad if outside 8..PKT_STARTUP_MAX. */
enum pkt_peek pkt_peek_startup(const uint8_t *buf, size_t avail, struct pkt_header *hdr);

struct pkt_cursor {
	const uint8_t *pos;
	const uint8_t *end;
};

static inline void pkt_cursor_init(struct pkt_cursor *c, const uint8_t *data, size_t len)
{
	c->pos = data;
	c->end = data + len;
}

static inline size_t pkt_remaining(const struct pkt_cursor *c)
{
	return (size_t)(c->end - c->pos);
}

#define PKT_MUST_USE __attribute__((warn_unused_result))

PKT_MUST_USE bool pkt_get_u8(struct pkt_cursor *c, uint8_t *out);
PKT_MUST_USE bool pkt_get_u16(struct pkt_cursor *c, uint16_t *out);
PKT_MUST_USE bool pkt_get_u32(struct pkt_cursor *c, uint32_t *out);
PKT_MUST_USE bool pkt_get_i32(struct pkt_cursor *c, int32_t *out);
/* A NUL-terminated string inside the message; *out points into the message (borrowed). */
PKT_MUST_USE bool pkt_get_cstring(struct pkt_cursor *c, const char **out);
/* n raw bytes; *out points into the message (borrowed). */
PKT_MUST_USE bool pkt_get_bytes(struct pkt_cursor *c, size_t n, const uint8_t **out);

static inline uint16_t pkt_read_u16(const uint8_t *p)
{
	return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static inline uint32_t pkt_read_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void pkt_write_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
