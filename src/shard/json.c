/*
 * shard/json: an in-place JSON reader for libpg_query's parse trees (see shard/json.h).
 */
#include "shard/json.h"

#include <stdlib.h>
#include <string.h>

struct reader {
	struct json_doc *d;
	char *p, *end;
	int depth, max_depth;
	bool oom;
};

static void skip_blanks(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* A new node at the end of the array; its index, or UINT32_MAX when memory ran out. */
static uint32_t add_node(struct reader *r, enum json_kind kind)
{
	struct json_doc *d = r->d;

	if (d->n == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 256;
		struct json_node *bigger = cap > d->cap ? realloc(d->nodes, cap * sizeof(*bigger))
							: NULL;

		if (!bigger) {
			r->oom = true;
			return UINT32_MAX;
		}
		d->nodes = bigger;
		d->cap = cap;
	}
	memset(&d->nodes[d->n], 0, sizeof(d->nodes[0]));
	d->nodes[d->n].kind = (uint8_t)kind;
	return d->n++;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* Four hex digits at p into *out. */
static bool read_hex4(const char *p, const char *end, unsigned *out)
{
	*out = 0;
	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		int v = hex_value(p[i]);

		if (v < 0)
			return false;
		*out = *out << 4 | (unsigned)v;
	}
	return true;
}

/* code as UTF-8 at *w. */
static void put_utf8(char **w, unsigned code)
{
	char *o = *w;

	if (code < 0x80) {
		*o++ = (char)code;
	} else if (code < 0x800) {
		*o++ = (char)(0xC0 | code >> 6);
		*o++ = (char)(0x80 | (code & 0x3F));
	} else if (code < 0x10000) {
		*o++ = (char)(0xE0 | code >> 12);
		*o++ = (char)(0x80 | (code >> 6 & 0x3F));
		*o++ = (char)(0x80 | (code & 0x3F));
	} else {
		*o++ = (char)(0xF0 | code >> 18);
		*o++ = (char)(0x80 | (code >> 12 & 0x3F));
		*o++ = (char)(0x80 | (code >> 6 & 0x3F));
		*o++ = (char)(0x80 | (code & 0x3F));
	}
	*w = o;
}

/* One escape after the backslash at *p, decoded at *w (never longer than the escape). */
static bool read_escape(struct reader *r, char **w)
{
	static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
	const char *hit;
	unsigned code, low;

	if (r->p >= r->end)
		return false;
	if ((hit = memchr(plain, *r->p, sizeof(plain) - 1))) {
		*(*w)++ = decoded[hit - plain];
		r->p++;
		return true;
	}
	if (*r->p != 'u' || !read_hex4(r->p + 1, r->end, &code))
		return false;
	r->p += 5;
	if (code >= 0xD800 && code < 0xDC00) {
		/* A surrogate pair: the low half must follow as \uDC00-\uDFFF. */
		if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
		    !read_hex4(r->p + 2, r->end, &low) || low < 0xDC00 || low > 0xDFFF)
			return false;
		r->p += 6;
		code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
	} else if (code >= 0xDC00 && code < 0xE000) {
		return false;
	}
	if (code == 0)
		return false; /* a NUL inside would end the C string early */
	put_utf8(w, code);
	return true;
}

/* A string at r->p (its opening quote), decoded in place and NUL-terminated. */
static bool read_string(struct reader *r, struct json_node *n)
{
	char *start = ++r->p, *w = start;

	while (r->p < r->end && *r->p != '"') {
		if ((unsigned char)*r->p < 0x20)
			return false;
		if (*r->p == '\\') {
			r->p++;
			if (!read_escape(r, &w))
				return false;
		} else {
			*w++ = *r->p++;
		}
	}
	if (r->p >= r->end)
		return false;
	r->p++;
	*w = '\0'; /* at or before the closing quote: nothing still to read is overwritten */
	n->s = start;
	n->len = (uint32_t)(w - start);
	n->kind = JSON_STRING;
	return true;
}

static bool read_number(struct reader *r, struct json_node *n)
{
	bool negative = r->p < r->end && *r->p == '-';
	int64_t v = 0;

	r->p += negative;
	if (r->p >= r->end || *r->p < '0' || *r->p > '9')
		return false;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		int digit = *r->p++ - '0';

		v = v > (INT64_MAX - digit) / 10 ? INT64_MAX : v * 10 + digit;
	}
	/* Fractions and exponents: read, not kept (the trees' numbers are integers). */
	while (r->p < r->end && strchr("0123456789.eE+-", *r->p))
		r->p++;
	n->num = negative ? -v : v;
	n->kind = JSON_NUMBER;
	return true;
}

static bool read_value(struct reader *r);

/* The members or elements of the object or array whose node is at index at. */
static bool read_children(struct reader *r, uint32_t at, bool object)
{
	char close = object ? '}' : ']';
	uint32_t count = 0;

	r->p++;
	skip_blanks(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		return true;
	}
	for (;;) {
		skip_blanks(r);
		if (object) {
			uint32_t key;

			if (r->p >= r->end || *r->p != '"' ||
			    (key = add_node(r, JSON_STRING)) == UINT32_MAX ||
			    !read_string(r, &r->d->nodes[key]))
				return false;
			r->d->nodes[key].skip = 1;
			skip_blanks(r);
			if (r->p >= r->end || *r->p != ':')
				return false;
			r->p++;
		}
		if (!read_value(r))
			return false;
		count++;
		skip_blanks(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == close) {
			r->p++;
			r->d->nodes[at].count = count;
			return true;
		}
		return false;
	}
}

static bool read_literal(struct reader *r, const char *word, enum json_kind kind, int64_t num)
{
	size_t n = strlen(word);
	uint32_t at;

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0 ||
	    (at = add_node(r, kind)) == UINT32_MAX)
		return false;
	r->p += n;
	r->d->nodes[at].num = num;
	r->d->nodes[at].skip = 1;
	return true;
}

static bool read_value(struct reader *r)
{
	uint32_t at;
	bool ok;

	skip_blanks(r);
	if (r->p >= r->end)
		return false;
	switch (*r->p) {
	case 'n':
		return read_literal(r, "null", JSON_NULL, 0);
	case 't':
		return read_literal(r, "true", JSON_BOOL, 1);
	case 'f':
		return read_literal(r, "false", JSON_BOOL, 0);
	default:
		break;
	}
	if ((at = add_node(r, JSON_NULL)) == UINT32_MAX)
		return false;
	if (*r->p == '"') {
		ok = read_string(r, &r->d->nodes[at]);
	} else if (*r->p == '{' || *r->p == '[') {
		if (++r->depth > r->max_depth)
			return false;
		r->d->nodes[at].kind = *r->p == '{' ? JSON_OBJECT : JSON_ARRAY;
		ok = read_children(r, at, *r->p == '{');
		r->depth--;
	} else {
		ok = read_number(r, &r->d->nodes[at]);
	}
	/* nodes may have moved while the children were added: index, not pointer */
	r->d->nodes[at].skip = r->d->n - at;
	return ok;
}

bool json_read(struct json_doc *d, char *text, size_t len, int max_depth, bool *oom)
{
	struct reader r = { .d = d, .p = text, .end = text + len, .max_depth = max_depth };
	bool ok;

	memset(d, 0, sizeof(*d));
	ok = read_value(&r);
	skip_blanks(&r);
	*oom = r.oom;
	return ok && r.p == r.end;
}

void json_free(struct json_doc *d)
{
	free(d->nodes);
	memset(d, 0, sizeof(*d));
}

const struct json_node *json_field(const struct json_node *obj, const char *key)
{
	const struct json_node *c;

	if (!obj || obj->kind != JSON_OBJECT)
		return NULL;
	c = obj + 1;
	for (uint32_t i = 0; i < obj->count; i++) {
		const struct json_node *value = c + 1;

		if (strcmp(c->s, key) == 0)
			return value;
		c = value + value->skip;
	}
	return NULL;
}

const struct json_node *json_at(const struct json_node *arr, size_t i)
{
	const struct json_node *c;

	if (!arr || arr->kind != JSON_ARRAY || i >= arr->count)
		return NULL;
	c = arr + 1;
	while (i--)
		c += c->skip;
	return c;
}

size_t json_len(const struct json_node *arr)
{
	return arr && arr->kind == JSON_ARRAY ? arr->count : 0;
}

const struct json_node *json_first(const struct json_node *obj, const char **key)
{
	if (!obj || obj->kind != JSON_OBJECT || obj->count == 0)
		return NULL;
	*key = obj[1].s;
	return obj + 2;
}

bool json_str_is(const struct json_node *n, const char *s)
{
	return n && n->kind == JSON_STRING && strcmp(n->s, s) == 0;
}
