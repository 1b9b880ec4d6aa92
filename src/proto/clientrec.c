/*
 * clientrec: building and reading the record of a client handed to the next pgmux process.
 * The reader checks the whole record once (clientrec_open) so that applying its fields, which
 * changes a live client, never meets a malformed one halfway.
 */
#include "proto/clientrec.h"

#include <stdio.h>
#include <string.h>

#include "proto/build.h"
#include "proto/pkt.h"

static const uint8_t magic[8] = { 'P', 'G', 'M', 'X', 'C', 'R', '1', '\0' };

#define SCRAM_KEY_LEN 32

/* The tags of enum clientrec_tag other than END (none is 0, which strchr would find). */
static const char known_tags[] = "udaktpsPhrKSwcq";

void clientrec_begin(struct msgbuf *mb)
{
	mb_put_bytes(mb, magic, sizeof(magic));
}

void clientrec_string(struct msgbuf *mb, enum clientrec_tag tag, const char *s)
{
	size_t at = mb_begin(mb, (char)tag);

	mb_put_bytes(mb, s, strlen(s));
	mb_end(mb, at);
}

void clientrec_u64(struct msgbuf *mb, enum clientrec_tag tag, uint64_t v)
{
	size_t at = mb_begin(mb, (char)tag);

	mb_put_u32(mb, (uint32_t)(v >> 32));
	mb_put_u32(mb, (uint32_t)v);
	mb_end(mb, at);
}

void clientrec_u8(struct msgbuf *mb, enum clientrec_tag tag, uint8_t v)
{
	size_t at = mb_begin(mb, (char)tag);

	mb_put_u8(mb, v);
	mb_end(mb, at);
}

void clientrec_cancel(struct msgbuf *mb, uint32_t pid, uint32_t key)
{
	size_t at = mb_begin(mb, (char)CLIENTREC_CANCEL);

	mb_put_u32(mb, pid);
	mb_put_u32(mb, key);
	mb_end(mb, at);
}

void clientrec_param(struct msgbuf *mb, uint8_t index, const char *value)
{
	size_t at = mb_begin(mb, (char)CLIENTREC_PARAM);

	mb_put_u8(mb, index);
	mb_put_bytes(mb, value, strlen(value));
	mb_end(mb, at);
}

void clientrec_setting(struct msgbuf *mb, const char *name, const char *value, bool raw)
{
	size_t at = mb_begin(mb, (char)CLIENTREC_SETTING);

	mb_put_u8(mb, raw);
	mb_put_cstring(mb, name);
	mb_put_bytes(mb, value, strlen(value));
	mb_end(mb, at);
}

void clientrec_statement(struct msgbuf *mb, const char *name, uint32_t shape, const uint8_t *def,
			 size_t def_len)
{
	size_t at = mb_begin(mb, (char)CLIENTREC_STATEMENT);

	mb_put_u32(mb, shape);
	mb_put_cstring(mb, name);
	mb_put_bytes(mb, def, def_len);
	mb_end(mb, at);
}

void clientrec_scram_keys(struct msgbuf *mb, const uint8_t client_key[32],
			  const uint8_t server_key[32])
{
	size_t at = mb_begin(mb, (char)CLIENTREC_SCRAM_KEYS);

	mb_put_bytes(mb, client_key, SCRAM_KEY_LEN);
	mb_put_bytes(mb, server_key, SCRAM_KEY_LEN);
	mb_end(mb, at);
}

void clientrec_end(struct msgbuf *mb)
{
	mb_end(mb, mb_begin(mb, (char)CLIENTREC_END));
	if (mb->len > CLIENTREC_MAX)
		mb->failed = true;
}

/* --- reading --- */

static uint64_t read_u64(const uint8_t *p)
{
	return (uint64_t)pkt_read_u32(p) << 32 | pkt_read_u32(p + 4);
}

static bool no_nul(const uint8_t *p, size_t n)
{
	return memchr(p, '\0', n) == NULL;
}

/*
 * Decode one field's payload into f; false when the payload does not fit its tag. A tag this
 * version does not know decodes to nothing (f->tag is still set) and is skipped by the caller.
 */
static bool decode(enum clientrec_tag tag, const uint8_t *p, size_t n, struct clientrec_field *f)
{
	const uint8_t *nul;

	memset(f, 0, sizeof(*f));
	f->tag = tag;
	switch (tag) {
	case CLIENTREC_END:
		return n == 0;
	case CLIENTREC_USER:
	case CLIENTREC_DATABASE:
	case CLIENTREC_ADDR:
	case CLIENTREC_SHARD_KEY:
	case CLIENTREC_SHARD:
	case CLIENTREC_PASSWORD:
	case CLIENTREC_SECRET:
		f->str = (const char *)p;
		f->str_len = n;
		return no_nul(p, n);
	case CLIENTREC_CANCEL:
		if (n != 8)
			return false;
		f->num = pkt_read_u32(p);
		f->num2 = pkt_read_u32(p + 4);
		return true;
	case CLIENTREC_CONNECTED:
	case CLIENTREC_RYW_LSN:
		if (n != 8)
			return false;
		f->num = read_u64(p);
		return true;
	case CLIENTREC_ROUTE_HINT:
		if (n != 1)
			return false;
		f->num = p[0];
		return true;
	case CLIENTREC_PARAM:
		if (n < 1)
			return false;
		f->index = p[0];
		f->str = (const char *)p + 1;
		f->str_len = n - 1;
		return no_nul(p + 1, n - 1);
	case CLIENTREC_SETTING:
		if (n < 2 || p[0] > 1 || !(nul = memchr(p + 1, '\0', n - 1)) || nul == p + 1)
			return false;
		f->index = p[0];
		f->str = (const char *)p + 1;
		f->str_len = (size_t)(nul - (p + 1));
		f->value = (const char *)nul + 1;
		f->value_len = n - 1 - f->str_len - 1;
		return no_nul(nul + 1, f->value_len);
	case CLIENTREC_STATEMENT:
		if (n < 5 || !(nul = memchr(p + 4, '\0', n - 4)) || nul == p + 4)
			return false;
		f->num = pkt_read_u32(p);
		f->str = (const char *)p + 4;
		f->str_len = (size_t)(nul - (p + 4));
		f->bytes = nul + 1;
		f->bytes_len = n - 4 - f->str_len - 1;
		return true;
	case CLIENTREC_SCRAM_KEYS:
		f->bytes = p;
		f->bytes_len = n;
		return n == 2 * SCRAM_KEY_LEN;
	}
	return true;
}

/* The field at r->pos: its tag, payload and where the next one starts. False: truncated. */
static bool frame(const struct clientrec_reader *r, uint8_t *tag, const uint8_t **payload,
		  size_t *n, size_t *next)
{
	uint32_t len;

	if (r->len - r->pos < 5)
		return false;
	*tag = r->data[r->pos];
	len = pkt_read_u32(r->data + r->pos + 1);
	if (len < 4 || len - 4 > r->len - r->pos - 5)
		return false;
	*payload = r->data + r->pos + 5;
	*n = len - 4;
	*next = r->pos + 1 + len;
	return true;
}

/* Why the record cannot be taken, or NULL: every field framed and decodable, END last. */
static const char *check(struct clientrec_reader *r)
{
	bool user = false, database = false, cancel = false;

	while (r->pos < r->len) {
		struct clientrec_field f;
		const uint8_t *payload;
		uint8_t tag;
		size_t n, next;

		if (!frame(r, &tag, &payload, &n, &next))
			return "a field runs past the end of the record";
		if (!decode((enum clientrec_tag)tag, payload, n, &f))
			return "a field's payload does not fit its tag";
		user |= tag == CLIENTREC_USER;
		database |= tag == CLIENTREC_DATABASE;
		cancel |= tag == CLIENTREC_CANCEL;
		r->pos = next;
		if (tag == CLIENTREC_END) {
			if (r->pos != r->len)
				return "bytes follow the end of the record";
			if (!user || !database || !cancel)
				return "the record lacks the user, the database or the cancel key";
			return NULL;
		}
	}
	return "the record has no end";
}

bool clientrec_open(struct clientrec_reader *r, const uint8_t *data, size_t len, char *why,
		    size_t whylen)
{
	const char *problem;

	*r = (struct clientrec_reader){ .data = data, .len = len, .pos = sizeof(magic) };
	if (len > CLIENTREC_MAX)
		problem = "the record is too large";
	else if (len < sizeof(magic) || memcmp(data, magic, sizeof(magic)) != 0)
		problem = "not a client record of this version";
	else
		problem = check(r);
	if (problem) {
		snprintf(why, whylen, "%s", problem);
		r->ended = true;
		return false;
	}
	r->pos = sizeof(magic);
	return true;
}

bool clientrec_next(struct clientrec_reader *r, struct clientrec_field *f)
{
	while (!r->ended) {
		const uint8_t *payload;
		uint8_t tag;
		size_t n, next;

		/* clientrec_open checked every frame: these cannot fail on an opened record */
		if (!frame(r, &tag, &payload, &n, &next) ||
		    !decode((enum clientrec_tag)tag, payload, n, f)) {
			r->ended = true;
			return false;
		}
		r->pos = next;
		if (tag == CLIENTREC_END) {
			r->ended = true;
			return false;
		}
		if (tag && strchr(known_tags, tag))
			return true;
		/* a tag from a newer pgmux: skipped */
	}
	return false;
}
