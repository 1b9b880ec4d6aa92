/*
 * hba: parse pg_hba.conf-style text into a rule table and match connections against it.
 *
 * Invariants: rules keep the file's order (first match wins); every string is owned by the
 * rule set; a file with any line we cannot honour exactly produces no rule set at all, so a
 * rule is never silently widened or narrowed, and a typo never half-applies on RELOAD.
 */
#include "auth/hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_FIELDS 16 /* type database user address mask method + options */
#define MAX_ITEMS 64  /* names in one comma list */
#define TOKEN_MAX 256

enum conn_type { CT_LOCAL, CT_HOST, CT_HOSTSSL, CT_HOSTNOSSL };

/* One name of a database or user list. */
struct item {
	char *name;
	bool quoted; /* literal: "all" in quotes is a role named all */
};

struct list {
	struct item *items;
	int n;
};

struct rule {
	int line;
	enum conn_type type;
	struct list dbs, users;
	bool any_addr; /* "all", or a local rule */
	int family;
	uint8_t addr[16], mask[16];
	enum hba_method method;
	enum hba_clientcert clientcert;
};

struct hba {
	struct rule *rules;
	size_t n, cap;
	int refs; /* holders: each config that carries the rule set */
};

/* A token of a line and whether a comma joined it to the next one. */
struct token {
	char text[TOKEN_MAX];
	bool quoted;
	bool comma_after;
};

struct field {
	struct token *tok;
	int n;
};

struct ctx {
	const char *name;
	int line;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static bool fail(struct ctx *cx, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!cx->err || cx->errlen == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(cx->err, cx->errlen, "%s:%d: %s", cx->name, cx->line, msg);
	return false;
}

const char *hba_method_name(enum hba_method m)
{
	switch (m) {
	case HBA_TRUST:
		return "trust";
	case HBA_REJECT:
		return "reject";
	case HBA_MD5:
		return "md5";
	case HBA_SCRAM_SHA_256:
		return "scram-sha-256";
	case HBA_PASSWORD:
		return "password";
	case HBA_CERT:
		return "cert";
	}
	return "unknown";
}

static void free_list(struct list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

struct hba *hba_ref(struct hba *h)
{
	if (h)
		h->refs++;
	return h;
}

void hba_free(struct hba *h)
{
	if (!h || --h->refs > 0)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free_list(&h->rules[i].dbs);
		free_list(&h->rules[i].users);
	}
	free(h->rules);
	free(h);
}

size_t hba_count(const struct hba *h)
{
	return h ? h->n : 0;
}

/* ---- tokenizer ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/*
 * Split one line (without its newline) into tokens. '#' outside quotes starts a comment. A
 * comma ends a token and joins it to the next one, even across blanks ("a, b" is one list).
 */
static bool tokenize(struct ctx *cx, const char *p, const char *end, struct token *toks, int *ntok)
{
	int n = 0;

	for (;;) {
		while (p < end && is_space(*p))
			p++;
		if (p >= end || *p == '#')
			break;
		if (n >= MAX_FIELDS * 4)
			return fail(cx, "too many tokens on one line");
		struct token *t = &toks[n];
		size_t len = 0;
		bool in_quote = false;

		t->quoted = false;
		t->comma_after = false;
		while (p < end) {
			char ch = *p;

			if (in_quote) {
				if (ch == '"') {
					in_quote = false;
					p++;
					continue;
				}
			} else if (ch == '"') {
				in_quote = true;
				t->quoted = true;
				p++;
				continue;
			} else if (is_space(ch) || ch == ',' || ch == '#') {
				break;
			}
			if (len + 1 >= sizeof(t->text))
				return fail(cx, "token too long");
			t->text[len++] = ch;
			p++;
		}
		if (in_quote)
			return fail(cx, "unterminated quoted string");
		t->text[len] = '\0';
		if (p < end && *p == ',') {
			t->comma_after = true;
			p++;
		}
		n++;
	}
	*ntok = n;
	return true;
}

/* Group tokens into fields: a field is a run of tokens joined by commas. */
static bool group_fields(struct ctx *cx, struct token *toks, int ntok, struct field *fields,
			 int *nfields)
{
	int nf = 0;

	for (int i = 0; i < ntok;) {
		if (nf >= MAX_FIELDS)
			return fail(cx, "too many fields");
		fields[nf].tok = &toks[i];
		fields[nf].n = 0;
		do {
			fields[nf].n++;
		} while (toks[i++].comma_after && i < ntok);
		if (toks[i - 1].comma_after)
			return fail(cx, "end of line after a comma");
		nf++;
	}
	*nfields = nf;
	return true;
}

/* ---- fields ---- */

static bool is_kw(const struct token *t, const char *kw)
{
	return !t->quoted && strcmp(t->text, kw) == 0;
}

static bool single(struct ctx *cx, const struct field *f, const char *what)
{
	if (f->n != 1)
		return fail(cx, "%s must be a single value, not a list", what);
	return true;
}

static bool take_list(struct ctx *cx, const struct field *f, bool is_db, struct list *out)
{
	out->items = calloc((size_t)f->n, sizeof(*out->items));
	if (!out->items)
		return fail(cx, "out of memory");
	if (f->n > MAX_ITEMS)
		return fail(cx, "list too long");
	for (int i = 0; i < f->n; i++) {
		const struct token *t = &f->tok[i];

		if (t->text[0] == '\0')
			return fail(cx, "empty %s name", is_db ? "database" : "user");
		if (!t->quoted && t->text[0] == '@')
			return fail(cx, "included files (\"%s\") are not supported", t->text);
		if (!t->quoted && t->text[0] == '+')
			return fail(cx, "group membership (\"%s\") is not supported", t->text);
		if (!t->quoted && t->text[0] == '/')
			return fail(cx, "regular expressions (\"%s\") are not supported", t->text);
		if (is_db && is_kw(t, "samerole"))
			return fail(cx, "\"samerole\" is not supported");
		if (is_db && is_kw(t, "samegroup"))
			return fail(cx, "\"samegroup\" is not supported");
		out->items[i].name = strdup(t->text);
		if (!out->items[i].name)
			return fail(cx, "out of memory");
		out->items[i].quoted = t->quoted;
		out->n++;
	}
	return true;
}

static bool parse_ip(const char *s, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

static void mask_from_bits(int bits, uint8_t mask[16])
{
	memset(mask, 0, 16);
	for (int i = 0; i < bits; i++)
		mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

/* The address field (and the mask field, when the address has no "/len"). *used = fields taken. */
static bool take_address(struct ctx *cx, struct rule *r, const struct field *f, int nleft,
			 int *used)
{
	const struct token *t = &f[0].tok[0];
	char buf[TOKEN_MAX];
	char *slash;
	int alen;

	*used = 1;
	if (!single(cx, &f[0], "the address"))
		return false;
	if (is_kw(t, "all")) {
		r->any_addr = true;
		return true;
	}
	if (is_kw(t, "samehost") || is_kw(t, "samenet"))
		return fail(cx, "\"%s\" is not supported", t->text);
	snprintf(buf, sizeof(buf), "%s", t->text);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (!parse_ip(buf, &r->family, r->addr))
		return fail(cx, "invalid IP address \"%s\" (host names are not supported)", buf);
	alen = r->family == AF_INET ? 32 : 128;
	if (slash) {
		char *endp;
		long bits = strtol(slash + 1, &endp, 10);

		if (slash[1] == '\0' || *endp != '\0' || bits < 0 || bits > alen)
			return fail(cx, "invalid CIDR mask in address \"%s\"", t->text);
		mask_from_bits((int)bits, r->mask);
	} else {
		int mfam;

		if (nleft < 2 || !single(cx, &f[1], "the mask"))
			return fail(cx, "IP address \"%s\" needs a CIDR mask or a mask field", buf);
		if (!parse_ip(f[1].tok[0].text, &mfam, r->mask) || mfam != r->family)
			return fail(cx, "invalid IP mask \"%s\"", f[1].tok[0].text);
		/* A mask must be contiguous ones followed by zeros. */
		bool zero_seen = false;
		for (int i = 0; i < alen; i++) {
			bool bit = r->mask[i / 8] & (0x80 >> (i % 8));
			if (bit && zero_seen)
				return fail(cx, "invalid IP mask \"%s\"", f[1].tok[0].text);
			zero_seen = zero_seen || !bit;
		}
		*used = 2;
	}
	for (int i = 0; i < 16; i++)
		r->addr[i] &= r->mask[i];
	return true;
}

static bool take_method(struct ctx *cx, const struct field *f, enum hba_method *m)
{
	static const struct {
		const char *name;
		enum hba_method m;
	} methods[] = {
		{ "trust", HBA_TRUST },       { "reject", HBA_REJECT },
		{ "md5", HBA_MD5 },           { "scram-sha-256", HBA_SCRAM_SHA_256 },
		{ "password", HBA_PASSWORD }, { "cert", HBA_CERT },
	};

	if (!single(cx, f, "the authentication method"))
		return false;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (is_kw(&f->tok[0], methods[i].name)) {
			*m = methods[i].m;
			return true;
		}
	}
	return fail(cx, "unsupported authentication method \"%s\"", f->tok[0].text);
}

/*
 * One name=value option after the method. Only clientcert is honoured; every other option
 * PostgreSQL knows changes what a rule admits (map=, clientname=, radius and ldap settings...),
 * so accepting and ignoring it would silently widen the rule.
 */
static bool take_option(struct ctx *cx, const struct field *f, struct rule *r)
{
	const char *text = f->tok[0].text, *eq = strchr(text, '='), *value;

	if (f->n != 1 || !eq)
		return fail(cx, "authentication option not in name=value format: %s", text);
	value = eq + 1;
	if ((size_t)(eq - text) != strlen("clientcert") || strncmp(text, "clientcert", 10) != 0)
		return fail(cx, "authentication option \"%.*s\" is not supported", (int)(eq - text),
			    text);
	if (r->type != CT_HOSTSSL)
		return fail(cx, "clientcert can only be configured for \"hostssl\" rows");
	if (strcmp(value, "verify-full") == 0) {
		r->clientcert = HBA_CLIENTCERT_VERIFY_FULL;
		return true;
	}
	if (strcmp(value, "verify-ca") == 0) {
		if (r->method == HBA_CERT)
			return fail(cx,
				    "clientcert only accepts \"verify-full\" when using \"cert\" "
				    "authentication");
		r->clientcert = HBA_CLIENTCERT_VERIFY_CA;
		return true;
	}
	return fail(cx, "invalid value for clientcert: \"%s\" (verify-ca or verify-full)", value);
}

static bool parse_rule(struct ctx *cx, struct field *f, int nf, struct rule *r)
{
	static const char *const types[] = { "local", "host", "hostssl", "hostnossl" };
	int i = 0, used;

	if (!single(cx, &f[0], "the connection type"))
		return false;
	r->type = (enum conn_type) - 1;
	for (int t = 0; t < 4; t++)
		if (is_kw(&f[0].tok[0], types[t]))
			r->type = (enum conn_type)t;
	if ((int)r->type < 0)
		return fail(cx, "invalid connection type \"%s\"", f[0].tok[0].text);
	i = 1;
	if (nf - i < 1)
		return fail(cx, "end of line before the database field");
	if (!take_list(cx, &f[i++], true, &r->dbs))
		return false;
	if (nf - i < 1)
		return fail(cx, "end of line before the user field");
	if (!take_list(cx, &f[i++], false, &r->users))
		return false;
	if (r->type == CT_LOCAL) {
		r->any_addr = true;
	} else {
		if (nf - i < 1)
			return fail(cx, "end of line before the address field");
		if (!take_address(cx, r, &f[i], nf - i, &used))
			return false;
		i += used;
	}
	if (nf - i < 1)
		return fail(cx, "end of line before the authentication method");
	if (!take_method(cx, &f[i++], &r->method))
		return false;
	for (; i < nf; i++)
		if (!take_option(cx, &f[i], r))
			return false;
	/* cert authentication is certificate validation with the name checked. */
	if (r->method == HBA_CERT)
		r->clientcert = HBA_CLIENTCERT_VERIFY_FULL;
	return true;
}

struct hba *hba_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	struct ctx cx = { .name = name, .err = err, .errlen = errlen };
	struct hba *h = calloc(1, sizeof(*h));
	const char *p = text, *end = text + len;
	struct token toks[MAX_FIELDS * 4]; /* 16 KiB */
	struct field fields[MAX_FIELDS];

	if (err && errlen)
		err[0] = '\0';
	if (!h) {
		fail(&cx, "out of memory");
		return NULL;
	}
	h->refs = 1;
	if (memchr(text, '\0', len)) {
		fail(&cx, "NUL byte in file");
		goto bad;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		int ntok = 0, nf = 0;

		cx.line++;
		if (!tokenize(&cx, p, eol, toks, &ntok) ||
		    !group_fields(&cx, toks, ntok, fields, &nf))
			goto bad;
		p = nl ? nl + 1 : end;
		if (nf == 0)
			continue;
		if (h->n == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 16;
			struct rule *nr = realloc(h->rules, cap * sizeof(*nr));

			if (!nr) {
				fail(&cx, "out of memory");
				goto bad;
			}
			h->rules = nr;
			h->cap = cap;
		}
		struct rule *r = &h->rules[h->n++];

		memset(r, 0, sizeof(*r));
		r->line = cx.line;
		if (!parse_rule(&cx, fields, nf, r))
			goto bad;
	}
	return h;
bad:
	hba_free(h);
	return NULL;
}

struct hba *hba_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct hba *h;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (!nb) {
				free(buf);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		size_t got = fread(buf + len, 1, cap - len, f);

		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	h = hba_parse(buf ? buf : "", len, path, err, errlen);
	free(buf);
	return h;
}

/* ---- matching ---- */

static bool list_has(const struct list *l, const char *name, const char *user, bool is_db)
{
	for (int i = 0; i < l->n; i++) {
		const struct item *it = &l->items[i];

		if (!it->quoted) {
			if (strcmp(it->name, "all") == 0)
				return true;
			if (is_db && strcmp(it->name, "sameuser") == 0) {
				if (strcmp(name, user) == 0)
					return true;
				continue;
			}
			if (is_db && strcmp(it->name, "replication") == 0)
				continue;
		}
		if (strcmp(it->name, name) == 0)
			return true;
	}
	return false;
}

static bool addr_matches(const struct rule *r, const struct hba_client *c)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	int family = c->family;

	if (r->any_addr)
		return true;
	memcpy(a, c->addr, 16);
	/* An IPv4 client seen through an IPv6 socket matches IPv4 rules. */
	if (family == AF_INET6 && r->family == AF_INET && memcmp(a, v4mapped, 12) == 0) {
		memmove(a, a + 12, 4);
		memset(a + 4, 0, 12);
		family = AF_INET;
	}
	if (family != r->family)
		return false;
	for (int i = 0; i < 16; i++)
		if ((a[i] & r->mask[i]) != r->addr[i])
			return false;
	return true;
}

bool hba_match(const struct hba *h, const struct hba_client *c, struct hba_verdict *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; h && i < h->n; i++) {
		const struct rule *r = &h->rules[i];

		switch (r->type) {
		case CT_LOCAL:
			if (!c->is_unix)
				continue;
			break;
		case CT_HOST:
			if (c->is_unix)
				continue;
			break;
		case CT_HOSTSSL:
			if (c->is_unix || !c->tls)
				continue;
			break;
		case CT_HOSTNOSSL:
			if (c->is_unix || c->tls)
				continue;
			break;
		}
		if (!c->is_unix && !addr_matches(r, c))
			continue;
		if (!list_has(&r->dbs, c->database, c->user, true) ||
		    !list_has(&r->users, c->user, c->user, false))
			continue;
		out->method = r->method;
		out->line = r->line;
		out->clientcert = r->clientcert;
		return true;
	}
	return false;
}
