/*
 * userlist: parse PgBouncer-style auth_file text into a sorted, de-duplicated table.
 *
 * Invariants: after parsing, entries are sorted by user name with no duplicates (the later
 * line won), so lookups are a binary search; every string is owned by the list and secrets are
 * wiped when it is freed; a file that has any malformed line produces no list at all, so a typo
 * never half-applies on RELOAD.
 */
#include "auth/userlist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct userlist_entry {
	char *user;
	char *secret;
	size_t line; /* breaks ties so that the later line of a duplicate wins */
};

struct userlist {
	struct userlist_entry *entries;
	size_t count;
	size_t cap;
	int refs; /* holders: each config that carries the list */
};

/* Where the parser is, for "NAME:LINE: message" errors. */
struct parse_ctx {
	const char *name;
	size_t line;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static bool parse_error(struct parse_ctx *ctx,
							      const char *fmt, ...)
{
	if (ctx->errlen == 0)
		return false;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ctx->err, ctx->errlen, "%s:%zu: %s", ctx->name, ctx->line, msg);
	return false;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && is_blank(*p))
		p++;
	return p;
}

/*
 * Parse one quoted field starting at *pp (which points at the opening quote) and return it as
 * a new string with "" turned into ", advancing *pp past the closing quote. NULL on an
 * unterminated field, on allocation failure (both reported into ctx), or when a character
 * other than a blank follows the closing quote.
 */
static char *parse_quoted(struct parse_ctx *ctx, const char **pp, const char *end)
{
	const char *p = *pp + 1;
	char *out = malloc((size_t)(end - p) + 1);
	if (!out) {
		parse_error(ctx, "out of memory");
		return NULL;
	}
	size_t n = 0;
	for (;;) {
		if (p >= end) {
			parse_error(ctx, "unterminated quoted field");
			break;
		}
		if (*p == '"' && p + 1 < end && p[1] == '"') {
			out[n++] = '"';
			p += 2;
		} else if (*p == '"') {
			p++;
			if (p < end && !is_blank(*p)) {
				parse_error(ctx, "unexpected character after closing quote");
				break;
			}
			out[n] = '\0';
			*pp = p;
			return out;
		} else {
			out[n++] = *p++;
		}
	}
	OPENSSL_cleanse(out, n);
	free(out);
	return NULL;
}

static void entry_wipe(struct userlist_entry *e)
{
	free(e->user);
	if (e->secret) {
		OPENSSL_cleanse(e->secret, strlen(e->secret));
		free(e->secret);
	}
}

/* Append an entry; on failure the strings are wiped and freed. */
static bool add_entry(struct parse_ctx *ctx, struct userlist *ul, char *user, char *secret)
{
	struct userlist_entry e = { user, secret, ctx->line };
	if (ul->count == ul->cap) {
		size_t cap = ul->cap ? ul->cap * 2 : 16;
		struct userlist_entry *grown = realloc(ul->entries, cap * sizeof(*grown));
		if (!grown) {
			entry_wipe(&e);
			return parse_error(ctx, "out of memory");
		}
		ul->entries = grown;
		ul->cap = cap;
	}
	ul->entries[ul->count++] = e;
	return true;
}

/* Parse the line [p, end) (no '\n'), adding its entry to ul when it has one. */
static bool parse_line(struct parse_ctx *ctx, struct userlist *ul, const char *p, const char *end)
{
	p = skip_blanks(p, end);
	if (p == end || *p == ';' || *p == '#')
		return true;
	if (*p != '"')
		return parse_error(ctx, "expected a double-quoted user name");

	char *user = parse_quoted(ctx, &p, end);
	if (!user)
		return false;
	if (user[0] == '\0') {
		free(user);
		return parse_error(ctx, "empty user name");
	}
	p = skip_blanks(p, end);
	if (p == end || *p != '"') {
		free(user);
		return parse_error(ctx, "expected a double-quoted password after the user name");
	}
	char *secret = parse_quoted(ctx, &p, end);
	if (!secret) {
		free(user);
		return false;
	}
	/* Anything after the second field is ignored, as in PgBouncer's format. */
	return add_entry(ctx, ul, user, secret);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct userlist_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);
	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Sort by name and keep only the last line of each run of duplicates. */
static void sort_and_dedupe(struct userlist *ul)
{
	if (ul->count == 0)
		return;
	qsort(ul->entries, ul->count, sizeof(*ul->entries), entry_cmp);
	size_t kept = 0;
	for (size_t i = 0; i < ul->count; i++) {
		bool superseded = i + 1 < ul->count &&
				  strcmp(ul->entries[i].user, ul->entries[i + 1].user) == 0;
		if (superseded)
			entry_wipe(&ul->entries[i]);
		else
			ul->entries[kept++] = ul->entries[i];
	}
	ul->count = kept;
}

struct userlist *userlist_parse(const char *text, size_t len, const char *name, char *err,
				size_t errlen)
{
	struct parse_ctx ctx = { name, 0, err, errlen };
	struct userlist *ul = calloc(1, sizeof(*ul));
	if (!ul) {
		parse_error(&ctx, "out of memory");
		return NULL;
	}
	ul->refs = 1;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		ctx.line++;
		if (memchr(p, '\0', (size_t)(eol - p))) {
			parse_error(&ctx, "NUL byte in line");
			goto fail;
		}
		if (!parse_line(&ctx, ul, p, eol))
			goto fail;
		p = nl ? nl + 1 : end;
	}
	sort_and_dedupe(ul);
	return ul;
fail:
	userlist_free(ul);
	return NULL;
}

/* Read the whole file into a new buffer; false with errno set on failure. */
static bool read_file(FILE *f, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	while (b) {
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		char *grown = malloc(cap * 2);
		if (grown)
			memcpy(grown, b, n);
		/* Copy rather than realloc so the old buffer, which holds secrets, can be wiped. */
		OPENSSL_cleanse(b, n);
		free(b);
		b = grown;
		cap *= 2;
	}
	if (!b) {
		errno = ENOMEM;
		return false;
	}
	if (ferror(f)) {
		int saved = errno;
		OPENSSL_cleanse(b, n);
		free(b);
		errno = saved ? saved : EIO;
		return false;
	}
	*buf = b;
	*len = n;
	return true;
}

struct userlist *userlist_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0;
	bool ok = read_file(f, &buf, &len);
	int saved = errno;
	fclose(f);
	if (!ok) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(saved));
		return NULL;
	}
	struct userlist *ul = userlist_parse(buf, len, path, err, errlen);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return ul;
}

static int find_cmp(const void *key, const void *elem)
{
	const struct userlist_entry *e = elem;
	return strcmp(key, e->user);
}

const char *userlist_find(const struct userlist *ul, const char *user)
{
	if (ul->count == 0)
		return NULL;
	const struct userlist_entry *e = bsearch(user, ul->entries, ul->count, sizeof(*ul->entries),
						 find_cmp);
	return e ? e->secret : NULL;
}

size_t userlist_count(const struct userlist *ul)
{
	return ul->count;
}

struct userlist *userlist_ref(struct userlist *ul)
{
	if (ul)
		ul->refs++;
	return ul;
}

void userlist_free(struct userlist *ul)
{
	if (!ul || --ul->refs > 0)
		return;
	for (size_t i = 0; i < ul->count; i++)
		entry_wipe(&ul->entries[i]);
	free(ul->entries);
	free(ul);
}
