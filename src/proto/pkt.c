/*
 * pkt: message framing and the checked cursor (see proto/pkt.h).
 */
#include "proto/pkt.h"

#include <string.h>

enum pkt_peek pkt_peek_header(const uint8_t *buf, size_t avail, struct pkt_header *hdr)
{
	uint32_t len;

	if (avail < PKT_HDR_LEN)
		return PKT_PEEK_SHORT;
	len = pkt_read_u32(buf + 1);
	/* The length counts itself but not the type byte; it can never be below 4. */
	if (len < 4 || len > UINT32_MAX - 1)
		return PKT_PEEK_BAD;
	hdr->type = (char)buf[0];
	hdr->len = len + 1;
	return PKT_PEEK_OK;
}

enum pkt_peek pkt_peek_startup(const uint8_t *buf, size_t avail, struct pkt_header *hdr)
{
	uint32_t len;

	if (avail < 4)
		return PKT_PEEK_SHORT;
	len = pkt_read_u32(buf);
	if (len < PKT_STARTUP_HDR_LEN || len > PKT_STARTUP_MAX)
		return PKT_PEEK_BAD;
	hdr->type = 0;
	hdr->len = len;
	return PKT_PEEK_OK;
}

bool pkt_get_u8(struct pkt_cursor *c, uint8_t *out)
{
	if (pkt_remaining(c) < 1)
		return false;
	*out = *c->pos++;
	return true;
}

bool pkt_get_u16(struct pkt_cursor *c, uint16_t *out)
{
	if (pkt_remaining(c) < 2)
		return false;
	*out = (uint16_t)((c->pos[0] << 8) | c->pos[1]);
	c->pos += 2;
	return true;
}

bool pkt_get_u32(struct pkt_cursor *c, uint32_t *out)
{
	if (pkt_remaining(c) < 4)
		return false;
	*out = pkt_read_u32(c->pos);
	c->pos += 4;
	return true;
}

bool pkt_get_i32(struct pkt_cursor *c, int32_t *out)
{
	uint32_t v;

	if (!pkt_get_u32(c, &v))
		return false;
	*out = (int32_t)v;
	return true;
}

bool pkt_get_cstring(struct pkt_cursor *c, const char **out)
{
	const uint8_t *nul = memchr(c->pos, '\0', pkt_remaining(c));

	if (!nul)
		return false;
	*out = (const char *)c->pos;
	c->pos = nul + 1;
	return true;
}

bool pkt_get_bytes(struct pkt_cursor *c, size_t n, const uint8_t **out)
{
	if (pkt_remaining(c) < n)
		return false;
	*out = c->pos;
	c->pos += n;
	return true;
}
