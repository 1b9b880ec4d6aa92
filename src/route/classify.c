/*
 * classify: read/write classification of SQL text (see route/classify.h).
 *
 * Two layers. A lexer turns bytes into tokens the way PostgreSQL's scanner delimits them:
 * comments (-- to end of line, nested slash-star), '...' literals with '' escapes, E'...' with
 * backslash escapes, dollar quotes ($$...$$, $tag$...$tag$), "quoted identifiers" and parameters
 * ($1). Keywords inside any of these never count. Above it, each statement is read from its
 * first keyword (the "head"), then the rest is scanned once for what turns a read into a write:
 * INSERT/UPDATE/DELETE/MERGE after '(' (or at the top of a WITH), FOR [NO KEY] UPDATE / [KEY]
 * SHARE, SELECT ... INTO, calls of write functions.
 *
 * Invariants:
 * - Never reads outside sql[0..len); needs no NUL; no allocation; the only globals are constant
 *   tables. Recursion (EXPLAIN, DECLARE) is bounded by MAX_NESTING.
 * - Statements end at a ';' outside parentheses and BEGIN ATOMIC bodies (where psql splits too:
 *   CREATE RULE ... DO (a; b) is one statement). Every statement is consumed up to that ';'
 *   whatever its head did, so counting never depends on how well a statement was understood.
 * - Only the comments before the first token can carry a hint; a hint anywhere else is text.
 * - Anything not recognised as a read is ROUTE_WRITE.
 * - standard_conforming_strings is assumed on (the default since PostgreSQL 9.1): in '...' a
 *   backslash is an ordinary character.
 */
#include "route/classify.h"
#include "route/sqlscan.h"

#include <string.h>

/* EXPLAIN DECLARE ... FOR EXPLAIN ... is not SQL; this bound only protects the stack. */
#define MAX_NESTING 4
/* Longest word in keywords[]. */
#define MAX_KEYWORD 11

/*
 * Defaults for write_functions: functions that change data or state, or whose answer only makes
 * sense on the primary (currval/lastval need the nextval of the same session; WAL positions and
 * transaction ids are not assigned on a standby).
 */
/* One line per family of functions: make format leaves the list as written. */
/* clang-format off */
const char *const classify_default_write_functions[] = {
	"nextval", "setval", "currval", "lastval",
	"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
	"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
	"pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
	"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
	"lo_create", "lo_creat", "lo_import", "lo_export", "lo_unlink", "lo_put", "lo_from_bytea",
	"lo_truncate", "lo_truncate64", "lowrite",
	"pg_notify", "set_config",
	"txid_current", "pg_current_xact_id",
	"pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
	"pg_switch_wal", "pg_create_restore_point", "pg_logical_emit_message",
	"pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
	"pg_drop_replication_slot", "pg_replication_slot_advance",
	"pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes",
	"dblink_exec",
};
/* clang-format on */
const size_t classify_n_default_write_functions = sizeof(classify_default_write_functions) /
						  sizeof(classify_default_write_functions[0]);

/* Calls that leave state in the server session, whatever write_functions says. */
static const struct {
	const char *name;
	const char *reason;
} pin_functions[] = {
	{ "pg_advisory_lock", "session advisory lock" },
	{ "pg_advisory_lock_shared", "session advisory lock" },
	{ "pg_try_advisory_lock", "session advisory lock" },
	{ "pg_try_advisory_lock_shared", "session advisory lock" },
	{ "dblink_connect", "dblink connection" },
	{ "dblink_connect_u", "dblink connection" },
};

/* ---- lexer ---------------------------------------------------------------------------------- */

enum tok_type {
	TOK_END,    /* end of input */
	TOK_SEMI,   /* ';' */
	TOK_WORD,   /* keyword or unquoted identifier */
	TOK_QIDENT, /* "quoted identifier": s/len cover the text between the quotes */
	TOK_STRING, /* any literal string, dollar quote included */
	TOK_NUMBER,
	TOK_LPAREN,
	TOK_RPAREN,
	TOK_DOT,
	TOK_COMMA,
	TOK_OTHER, /* operator character, parameter, ... */
};

/* clang-format off */
enum kw {
	K_NONE, /* not a word, or a word the classifier has no use for */
	K_OR, K_TO, K_END, K_FOR, K_KEY, K_SET, K_CASE, K_COPY, K_FROM, K_HOLD, K_INTO, K_ONLY,
	K_READ, K_SHOW, K_TEMP, K_WITH, K_WORK, K_ABORT, K_BEGIN, K_LOCAL, K_MERGE, K_PGMUX, K_RESET,
	K_ROUTE, K_SHARE, K_START, K_TABLE, K_WRITE, K_ATOMIC, K_COMMIT, K_CREATE, K_DELETE, K_GLOBAL,
	K_INSERT, K_LISTEN, K_SELECT, K_UPDATE, K_VALUES, K_ANALYSE, K_ANALYZE, K_DECLARE, K_DEFAULT,
	K_DISCARD, K_EXPLAIN, K_PG_TEMP, K_PREPARE, K_PROGRAM, K_RELEASE, K_REPLACE, K_SESSION,
	K_VERBOSE, K_PREPARED, K_ROLLBACK, K_UNLISTEN, K_SAVEPOINT, K_TEMPORARY, K_TRANSACTION,
};
/* clang-format on */

#define KW(w)                                                                                      \
	{                                                                                          \
		w, sizeof(w) - 1, w[0]                                                             \
	}

/* clang-format off */
/* Sorted by length, then bytes (see kw_first); same order as enum kw. */
static const struct {
	const char *name;
	size_t len;
	char first; /* name[0], kept here to reject without following the pointer */
} keywords[] = {
	{ NULL, 0, 0 },
	KW("or"), KW("to"), KW("end"), KW("for"), KW("key"), KW("set"), KW("case"), KW("copy"),
	KW("from"), KW("hold"), KW("into"), KW("only"), KW("read"), KW("show"), KW("temp"),
	KW("with"), KW("work"), KW("abort"), KW("begin"), KW("local"), KW("merge"), KW("pgmux"),
	KW("reset"), KW("route"), KW("share"), KW("start"), KW("table"), KW("write"), KW("atomic"),
	KW("commit"), KW("create"), KW("delete"), KW("global"), KW("insert"), KW("listen"),
	KW("select"), KW("update"), KW("values"), KW("analyse"), KW("analyze"), KW("declare"),
	KW("default"), KW("discard"), KW("explain"), KW("pg_temp"), KW("prepare"), KW("program"),
	KW("release"), KW("replace"), KW("session"), KW("verbose"), KW("prepared"), KW("rollback"),
	KW("unlisten"), KW("savepoint"), KW("temporary"), KW("transaction"),
};
/* clang-format on */

/* kw_first[n] .. kw_first[n + 1]: the keywords[] entries of length n. Follows the table above. */
static const unsigned char kw_first[MAX_KEYWORD + 2] = { 1,  1,  1,  3,  7,  18, 29,
							 39, 52, 55, 57, 57, 58 };

/* Case-insensitive comparison of s[0..n) with the lower-case word w, like strcmp. */
static int word_cmp(const char *s, size_t n, const char *w)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (w[i] == '\0')
			return 1; /* s is longer (and may hold a NUL byte: never compare past w's end) */
		c = c >= 'A' && c <= 'Z' ? c | 0x20 : c;
		if (c != (unsigned char)w[i])
			return (int)c - (unsigned char)w[i];
	}
	return w[n] == '\0' ? 0 : -1;
}

/*
 * Keywords are looked up once per word, at lexing, so the reader compares integers. Length
 * first: most identifiers are rejected without looking at a character, and the few keywords of
 * one length are told apart by their first letter.
 */
static enum kw keyword(const char *s, size_t n)
{
	unsigned char c0;

	if (n > MAX_KEYWORD)
		return K_NONE;
	c0 = (unsigned char)s[0] |
	     0x20; /* keywords start with a letter; a false match is checked below */
	for (size_t i = kw_first[n]; i < kw_first[n + 1]; i++)
		if ((unsigned char)keywords[i].first == c0 && word_cmp(s, n, keywords[i].name) == 0)
			return (enum kw)i;
	return K_NONE;
}

struct tok {
	enum tok_type type;
	enum kw kw; /* TOK_WORD: which keyword, if any */
	const char *s;
	size_t len;
};

struct lex {
	const char *p, *end;
	int depth; /* parentheses open in the current statement */
};

/* Character classes, one table lookup per byte on the hot path. */
enum {
	C_SPACE = 1,
	C_DIGIT = 2,
	C_START =
		4, /* may start an identifier: letters, '_', bytes >= 0x80 (any multibyte letter) */
	C_IDENT = 8, /* may continue one: also digits and '$' */
};

static const unsigned char cclass[256] = {
	[' '] = C_SPACE,
	['\t'] = C_SPACE,
	['\n'] = C_SPACE,
	['\r'] = C_SPACE,
	['\f'] = C_SPACE,
	['\v'] = C_SPACE,
	['0' ... '9'] = C_DIGIT | C_IDENT,
	['a' ... 'z'] = C_START | C_IDENT,
	['A' ... 'Z'] = C_START | C_IDENT,
	['_'] = C_START | C_IDENT,
	['$'] = C_IDENT,
	[0x80 ... 0xff] = C_START | C_IDENT,
};

static bool is_space(unsigned char c)
{
	return cclass[c] & C_SPACE;
}

static bool is_digit(unsigned char c)
{
	return cclass[c] & C_DIGIT;
}

static bool is_ident_start(unsigned char c)
{
	return cclass[c] & C_START;
}

static bool is_ident_char(unsigned char c)
{
	return cclass[c] & C_IDENT;
}

static bool word_eq(const char *s, size_t n, const char *w)
{
	return word_cmp(s, n, w) == 0;
}

static const char *trim_space(const char *p, const char *end)
{
	while (p < end && is_space((unsigned char)*p))
		p++;
	return p;
}

/* Text of a hint comment: optional spaces, "pgmux", ':', a route word, optional spaces. */
static enum route_hint hint_value(const char *s, size_t n)
{
	if (word_eq(s, n, "primary"))
		return ROUTE_HINT_PRIMARY;
	if (word_eq(s, n, "replica"))
		return ROUTE_HINT_REPLICA;
	if (word_eq(s, n, "auto"))
		return ROUTE_HINT_AUTO;
	return ROUTE_HINT_NONE;
}

static enum route_hint parse_hint_comment(const char *p, const char *end)
{
	const char *w;

	while (end > p && is_space((unsigned char)end[-1]))
		end--;
	p = trim_space(p, end);
	if (end - p < 5 || !word_eq(p, 5, "pgmux"))
		return ROUTE_HINT_NONE;
	p = trim_space(p + 5, end);
	if (p == end || *p != ':')
		return ROUTE_HINT_NONE;
	w = trim_space(p + 1, end);
	return hint_value(w, (size_t)(end - w));
}

/* Skip whitespace and comments; hint (if not NULL) takes the first hint comment seen. */
static void skip_space(struct lex *lx, enum route_hint *hint)
{
	const char *p = lx->p, *end = lx->end, *body, *body_end;

	for (;;) {
		p = trim_space(p, end);
		if (end - p < 2)
			break;
		if (p[0] == '-' && p[1] == '-') {
			body = p + 2;
			body_end = memchr(body, '\n', (size_t)(end - body));
			p = body_end ? body_end : end;
			body_end = p;
		} else if (p[0] == '/' && p[1] == '*') {
			body = p + 2;
			p = sqlscan_comment_end(body, end, &body_end);
		} else {
			break;
		}
		if (hint && *hint == ROUTE_HINT_NONE)
			*hint = parse_hint_comment(body, body_end);
	}
	lx->p = p;
}

/* p is past the opening quote of '...'; backslash escapes only in E'...'. */
static const char *skip_string(const char *p, const char *end, bool backslash)
{
	while (p < end) {
		if (*p == '\\' && backslash) {
			p += end - p >= 2 ? 2 : 1;
		} else if (*p == '\'') {
			if (end - p < 2 || p[1] != '\'')
				return p + 1;
			p += 2; /* '' is a quote inside the literal */
		} else {
			p++;
		}
	}
	return end;
}

/* p is past the opening '"'; "" is a quote inside the name. Returns the closing quote or end. */
static const char *skip_qident(const char *p, const char *end)
{
	while (p < end) {
		if (*p == '"') {
			if (end - p < 2 || p[1] != '"')
				return p;
			p += 2;
		} else {
			p++;
		}
	}
	return end;
}

/*
 * p is at '$'. A dollar quote opens with $tag$ (tag: identifier without '$', may be empty) and
 * ends at the same delimiter; $1 is a parameter. Anything else is a lone operator character.
 */
static const char *lex_dollar(const char *p, const char *end, enum tok_type *type)
{
	const char *q = p + 1, *close;
	size_t dlen;

	*type = TOK_OTHER;
	if (q < end && is_digit((unsigned char)*q)) {
		while (q < end && is_digit((unsigned char)*q))
			q++;
		return q;
	}
	if (q < end && is_ident_start((unsigned char)*q))
		while (q < end && is_ident_char((unsigned char)*q) && *q != '$')
			q++;
	if (q >= end || *q != '$')
		return p + 1;
	dlen = (size_t)(q + 1 - p);
	*type = TOK_STRING;
	close = memmem(q + 1, (size_t)(end - q - 1), p, dlen);
	return close ? close + dlen : end;
}

static const char *lex_punct(struct lex *lx, const char *p, enum tok_type *type)
{
	switch (*p) {
	case '(':
		lx->depth++;
		*type = TOK_LPAREN;
		break;
	case ')':
		/* Unbalanced ')' is a syntax error; keep depth sane so later checks still work. */
		if (lx->depth > 0)
			lx->depth--;
		*type = TOK_RPAREN;
		break;
	case ';':
		*type = TOK_SEMI;
		break;
	case '.':
		*type = TOK_DOT;
		break;
	case ',':
		*type = TOK_COMMA;
		break;
	default:
		*type = TOK_OTHER;
		break;
	}
	return p + 1;
}

static void lex_next(struct lex *lx, struct tok *t, enum route_hint *hint)
{
	const char *p, *end = lx->end;
	unsigned char c;

	skip_space(lx, hint);
	p = t->s = lx->p;
	t->kw = K_NONE;
	if (p >= end) {
		t->type = TOK_END;
		t->len = 0;
		return;
	}
	c = (unsigned char)*p;
	if ((c | 0x20) == 'e' && end - p >= 2 && p[1] == '\'') {
		t->type = TOK_STRING;
		p = skip_string(p + 2, end, true);
	} else if (c == '\'') {
		t->type = TOK_STRING;
		p = skip_string(p + 1, end, false);
	} else if (c == '"') {
		t->type = TOK_QIDENT;
		t->s = p + 1;
		p = skip_qident(p + 1, end);
		t->len = (size_t)(p - t->s);
		lx->p = p < end ? p + 1 : end;
		return;
	} else if (c == '$') {
		p = lex_dollar(p, end, &t->type);
	} else if (is_ident_start(c)) {
		t->type = TOK_WORD;
		while (p < end && is_ident_char((unsigned char)*p))
			p++;
		t->kw = keyword(t->s, (size_t)(p - t->s));
	} else if (is_digit(c) || (c == '.' && end - p >= 2 && is_digit((unsigned char)p[1]))) {
		t->type = TOK_NUMBER;
		while (p < end && (is_ident_char((unsigned char)*p) || *p == '.') && *p != '$')
			p++;
	} else {
		p = lex_punct(lx, p, &t->type);
	}
	t->len = (size_t)(p - t->s);
	lx->p = p;
}

/* ---- statement reader ----------------------------------------------------------------------- */

struct cur {
	struct lex lx;
	struct tok t, prev;
	const struct classify_config *cfg;
	int atomic;  /* inside CREATE FUNCTION ... BEGIN ATOMIC: ';' does not end the statement */
	int nesting; /* EXPLAIN / DECLARE levels */
};

static bool tok_is(const struct tok *t, enum kw k)
{
	return t->kw == k;
}

static bool at_end(const struct cur *c)
{
	/* Like psql: ';' inside parentheses (CREATE RULE ... DO (a; b)) or BEGIN ATOMIC stays inside. */
	return c->t.type == TOK_END ||
	       (c->t.type == TOK_SEMI && c->atomic == 0 && c->lx.depth == 0);
}

static void advance(struct cur *c)
{
	if (at_end(c))
		return;
	c->prev = c->t;
	lex_next(&c->lx, &c->t, NULL);
}

static bool accept(struct cur *c, enum kw k)
{
	if (!tok_is(&c->t, k))
		return false;
	advance(c);
	return true;
}

static void skip_to_end(struct cur *c)
{
	while (!at_end(c))
		advance(c);
}

/* What the rest of a statement revealed. */
struct body {
	bool dml;           /* INSERT/UPDATE/DELETE/MERGE as a sub-statement (or WITH's main one) */
	bool lock;          /* FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE */
	bool into;          /* SELECT ... INTO new_table */
	bool temp;          /* INTO TEMP, or an object created in pg_temp */
	bool write_fn;      /* a call of a write function */
	bool copy_from;     /* COPY ... FROM */
	bool copy_to;       /* COPY ... TO */
	bool program;       /* COPY ... PROGRAM: runs a command on the server */
	const char *pin_fn; /* reason, when a pinning function is called */
};

static bool is_dml_word(const struct tok *t)
{
	return tok_is(t, K_INSERT) || tok_is(t, K_UPDATE) || tok_is(t, K_DELETE) ||
	       tok_is(t, K_MERGE);
}

/* A function name as written: quoted names keep their case, as in PostgreSQL. */
static bool name_is(const struct tok *t, const char *name)
{
	if (t->type == TOK_QIDENT)
		return strlen(name) == t->len && memcmp(t->s, name, t->len) == 0;
	return t->type == TOK_WORD && word_eq(t->s, t->len, name);
}

/* name is the token before '(' (the last part of a qualified name). */
static void note_call(const struct cur *c, const struct tok *name, struct body *b)
{
	const struct classify_config *cfg = c->cfg;
	const char *const *list = classify_default_write_functions;
	size_t n = classify_n_default_write_functions;

	if (name->type != TOK_WORD && name->type != TOK_QIDENT)
		return;
	if (cfg && cfg->write_functions) {
		list = cfg->write_functions;
		n = cfg->n_write_functions;
	}
	for (size_t i = 0; i < n && !b->write_fn; i++)
		if (name_is(name, list[i]))
			b->write_fn = true;
	for (size_t i = 0; i < sizeof(pin_functions) / sizeof(pin_functions[0]) && !b->pin_fn; i++)
		if (name_is(name, pin_functions[i].name))
			b->pin_fn = pin_functions[i].reason;
}

/* BEGIN ATOMIC bodies hold ';'-separated statements and CASE ... END; psql counts the same way. */
static void track_atomic(struct cur *c)
{
	if (tok_is(&c->t, K_ATOMIC) && tok_is(&c->prev, K_BEGIN))
		c->atomic++;
	else if (c->atomic > 0 && tok_is(&c->t, K_CASE))
		c->atomic++;
	else if (c->atomic > 0 && tok_is(&c->t, K_END))
		c->atomic--;
}

static void note_word(struct cur *c, enum kw v, int base, struct body *b)
{
	const struct tok *t = &c->t, *pv = &c->prev;
	bool top = c->lx.depth == base;

	if (is_dml_word(t) && (pv->type == TOK_LPAREN || (v == K_WITH && top)))
		b->dml = true;
	if ((tok_is(t, K_UPDATE) || tok_is(t, K_SHARE)) && (tok_is(pv, K_FOR) || tok_is(pv, K_KEY)))
		b->lock = true;
	if (top && tok_is(t, K_INTO))
		b->into = true;
	if ((v == K_SELECT || v == K_WITH) && (tok_is(t, K_TEMP) || tok_is(t, K_TEMPORARY)) &&
	    tok_is(pv, K_INTO))
		b->temp = true;
	if (v == K_CREATE)
		track_atomic(c);
	if (v == K_COPY && top && !b->copy_from && !b->copy_to) {
		b->copy_from = tok_is(t, K_FROM);
		b->copy_to = tok_is(t, K_TO);
	}
	if (v == K_COPY && top && tok_is(t, K_PROGRAM))
		b->program = true;
}

/* Scan to the end of the statement; base is the parenthesis depth of the statement's verb. */
static void scan_body(struct cur *c, enum kw v, int base, struct body *b)
{
	for (; !at_end(c); advance(c)) {
		switch (c->t.type) {
		case TOK_LPAREN:
			note_call(c, &c->prev, b);
			break;
		case TOK_DOT:
			if (v == K_CREATE && tok_is(&c->prev, K_PG_TEMP))
				b->temp = true;
			break;
		case TOK_WORD:
			note_word(c, v, base, b);
			break;
		default:
			break;
		}
	}
}

/* ---- statements ----------------------------------------------------------------------------- */

struct stmt {
	enum route_class cls;
	enum kw verb;
	bool read_only;
	bool set_local;
	enum route_hint hint;
	const char *pin_reason;
};

static void classify_stmt(struct cur *c, struct stmt *r);

static void pin(struct stmt *r, const char *reason)
{
	r->cls = ROUTE_SESSION_PIN;
	r->pin_reason = reason;
}

/* Pinning calls win over everything; temp objects pin; a read with any write sign is a write. */
static void settle(struct stmt *r, const struct body *b)
{
	if (b->pin_fn)
		pin(r, b->pin_fn);
	else if (b->temp && (r->cls == ROUTE_WRITE || b->into))
		pin(r, "temporary table");
	else if (r->cls == ROUTE_READ &&
		 (b->dml || b->lock || b->into || b->write_fn || b->program))
		r->cls = ROUTE_WRITE;
}

static void query(struct cur *c, enum kw v, int base, struct stmt *r)
{
	struct body b = { 0 };

	scan_body(c, v, base, &b);
	r->cls = ROUTE_READ;
	settle(r, &b);
}

static void other(struct cur *c, enum kw v, int base, struct stmt *r)
{
	struct body b = { 0 };

	scan_body(c, v, base, &b);
	r->cls = ROUTE_WRITE;
	settle(r, &b);
}

static void copy(struct cur *c, int base, struct stmt *r)
{
	struct body b = { 0 };

	scan_body(c, K_COPY, base, &b);
	r->cls = b.copy_to ? ROUTE_READ : ROUTE_WRITE;
	settle(r, &b);
}

static void create(struct cur *c, int base, struct stmt *r)
{
	struct body b = { 0 };

	if (accept(c, K_OR))
		accept(c, K_REPLACE);
	if (!accept(c, K_GLOBAL))
		accept(c, K_LOCAL);
	if (tok_is(&c->t, K_TEMP) || tok_is(&c->t, K_TEMPORARY))
		b.temp = true;
	scan_body(c, K_CREATE, base, &b);
	r->cls = ROUTE_WRITE;
	settle(r, &b);
}

/* Transaction modes: the last READ ONLY / READ WRITE wins, as in PostgreSQL. */
static void txn_begin(struct cur *c, struct stmt *r)
{
	r->cls = ROUTE_TXN_BEGIN;
	for (; !at_end(c); advance(c)) {
		if (tok_is(&c->t, K_ONLY) && tok_is(&c->prev, K_READ))
			r->read_only = true;
		else if (tok_is(&c->t, K_WRITE) && tok_is(&c->prev, K_READ))
			r->read_only = false;
	}
}

static void txn_finish(struct cur *c, enum kw v, struct stmt *r)
{
	r->cls = ROUTE_TXN_END;
	if (v == K_COMMIT || v == K_ROLLBACK) {
		if (tok_is(&c->t, K_PREPARED)) {
			r->cls =
				ROUTE_WRITE; /* two-phase commit of a prepared transaction: not ours */
			return;
		}
	}
	if (v == K_ROLLBACK) {
		if (!accept(c, K_WORK))
			accept(c, K_TRANSACTION);
		if (tok_is(&c->t, K_TO))
			r->cls = ROUTE_TXN_OTHER;
	}
}

/* pgmux.route as a setting name (not quoted: "pgmux.route" quoted is still ours too). */
static bool route_setting(struct cur *c)
{
	struct cur save = *c;

	if (c->t.type == TOK_QIDENT && c->t.len == 11 && memcmp(c->t.s, "pgmux.route", 11) == 0) {
		advance(c);
		return true;
	}
	if (accept(c, K_PGMUX) && c->t.type == TOK_DOT) {
		advance(c);
		if (accept(c, K_ROUTE))
			return true;
	}
	*c = save;
	return false;
}

static enum route_hint route_value(struct cur *c)
{
	const struct tok *t = &c->t;
	enum route_hint h = ROUTE_HINT_INVALID;

	if (t->type == TOK_OTHER && t->len == 1 && *t->s == '=')
		advance(c);
	else if (!accept(c, K_TO))
		return ROUTE_HINT_INVALID;
	if (tok_is(t, K_DEFAULT))
		h = ROUTE_HINT_AUTO;
	else if (t->type == TOK_WORD)
		h = hint_value(t->s, t->len);
	else if (t->type == TOK_STRING && t->len >= 2 && *t->s == '\'')
		h = hint_value(t->s + 1, t->len - 2);
	if (h == ROUTE_HINT_NONE)
		h = ROUTE_HINT_INVALID;
	advance(c);
	return at_end(c) ? h : ROUTE_HINT_INVALID;
}

static void set_stmt(struct cur *c, enum kw v, struct stmt *r)
{
	r->cls = ROUTE_SET;
	if (v == K_SET) {
		r->set_local = accept(c, K_LOCAL);
		if (!r->set_local)
			accept(c, K_SESSION);
	}
	if (v == K_DISCARD || !route_setting(c))
		return;
	r->cls = ROUTE_HINT_SET;
	r->hint = v == K_RESET ? (at_end(c) ? ROUTE_HINT_AUTO : ROUTE_HINT_INVALID)
			       : route_value(c);
}

static void prepare(struct cur *c, struct stmt *r)
{
	struct cur save = *c;

	/* PREPARE TRANSACTION 'gid' ends the transaction; PREPARE name AS ... is session state. */
	if (accept(c, K_TRANSACTION) && c->t.type == TOK_STRING) {
		r->cls = ROUTE_TXN_END;
		return;
	}
	*c = save;
	pin(r, "PREPARE");
}

static void declare(struct cur *c, struct stmt *r)
{
	bool hold = false;

	for (; !at_end(c) && !tok_is(&c->t, K_FOR); advance(c))
		if (tok_is(&c->t, K_HOLD) && tok_is(&c->prev, K_WITH))
			hold = true;
	if (accept(c, K_FOR))
		classify_stmt(c, r);
	else
		r->cls = ROUTE_WRITE;
	if (hold)
		pin(r, "DECLARE ... WITH HOLD");
}

static bool is_false(const struct tok *t)
{
	const char *s = t->s;
	size_t n = t->len;

	if (t->type == TOK_STRING && n >= 2 && *s == '\'') {
		s++;
		n -= 2;
	} else if (t->type != TOK_WORD && t->type != TOK_NUMBER) {
		return false;
	}
	return word_eq(s, n, "false") || word_eq(s, n, "off") || word_eq(s, n, "no") ||
	       word_eq(s, n, "0");
}

/* EXPLAIN ( option [value], ... ): true when ANALYZE is on. c is at '('. */
static bool explain_options(struct cur *c)
{
	int depth = c->lx.depth;
	bool analyze = false;

	advance(c);
	while (!at_end(c) && !(c->t.type == TOK_RPAREN && c->lx.depth == depth - 1)) {
		if ((tok_is(&c->t, K_ANALYZE) || tok_is(&c->t, K_ANALYSE)) &&
		    c->lx.depth == depth) {
			advance(c);
			analyze = !is_false(&c->t);
			continue;
		}
		advance(c);
	}
	advance(c);
	return analyze;
}

/* Without ANALYZE the statement is only planned, which a standby does for any DML. */
static void explain(struct cur *c, struct stmt *r)
{
	bool analyze = false;

	if (c->t.type == TOK_LPAREN) {
		analyze = explain_options(c);
	} else {
		for (;;) {
			if (accept(c, K_ANALYZE) || accept(c, K_ANALYSE))
				analyze = true;
			else if (!accept(c, K_VERBOSE))
				break;
		}
	}
	classify_stmt(c, r);
	if (analyze)
		return;
	switch (r->verb) {
	case K_SELECT:
	case K_VALUES:
	case K_TABLE:
	case K_WITH:
	case K_INSERT:
	case K_UPDATE:
	case K_DELETE:
	case K_MERGE:
		r->cls = ROUTE_READ;
		r->pin_reason = NULL;
		break;
	default:
		break;
	}
}

static void dispatch(struct cur *c, enum kw v, int base, struct stmt *r)
{
	switch (v) {
	case K_SELECT:
	case K_VALUES:
	case K_TABLE:
	case K_WITH:
	case K_SHOW:
		query(c, v, base, r);
		break;
	case K_EXPLAIN:
		explain(c, r);
		break;
	case K_BEGIN:
		if (!accept(c, K_WORK))
			accept(c, K_TRANSACTION);
		txn_begin(c, r);
		break;
	case K_START:
		if (accept(c, K_TRANSACTION))
			txn_begin(c, r);
		else
			other(c, v, base, r);
		break;
	case K_COMMIT:
	case K_END:
	case K_ABORT:
	case K_ROLLBACK:
		txn_finish(c, v, r);
		break;
	case K_SAVEPOINT:
	case K_RELEASE:
		r->cls = ROUTE_TXN_OTHER;
		break;
	case K_SET:
	case K_RESET:
	case K_DISCARD:
		set_stmt(c, v, r);
		break;
	case K_LISTEN:
		pin(r, "LISTEN");
		break;
	case K_UNLISTEN:
		pin(r, "UNLISTEN");
		break;
	case K_PREPARE:
		prepare(c, r);
		break;
	case K_DECLARE:
		declare(c, r);
		break;
	case K_CREATE:
		create(c, base, r);
		break;
	case K_COPY:
		copy(c, base, r);
		break;
	default:
		other(c, v, base, r);
		break;
	}
}

/* c is at the statement's first token; on return it is at the ';' or end that closes it. */
static void classify_stmt(struct cur *c, struct stmt *r)
{
	enum kw v;
	int base;

	memset(r, 0, sizeof(*r));
	r->cls = ROUTE_WRITE;
	if (++c->nesting > MAX_NESTING) {
		skip_to_end(c);
		c->nesting--;
		return;
	}
	/* (SELECT ...) UNION (SELECT ...): the verb is inside the first parentheses. */
	while (c->t.type == TOK_LPAREN)
		advance(c);
	base = c->lx.depth;
	v = r->verb = c->t.kw;
	advance(c);
	dispatch(c, v, base, r);
	skip_to_end(c);
	c->nesting--;
}

/* ---- query strings -------------------------------------------------------------------------- */

static void merge(struct route_result *out, const struct stmt *r)
{
	if (out->statements == 1) {
		out->cls = r->cls;
		out->read_only_txn = r->read_only;
		out->set_local = r->set_local;
		out->pin_reason = r->pin_reason;
		if (r->cls == ROUTE_HINT_SET)
			out->hint = r->hint;
		return;
	}
	out->read_only_txn = out->set_local = false;
	if (!out->pin_reason)
		out->pin_reason = r->pin_reason;
	if (out->pin_reason)
		out->cls = ROUTE_SESSION_PIN;
	else if (out->cls != ROUTE_READ || r->cls != ROUTE_READ)
		out->cls = ROUTE_WRITE;
}

void classify_sql(const char *sql, size_t len, const struct classify_config *cfg,
		  struct route_result *out)
{
	struct cur c = { .lx = { sql, sql + len, 0 }, .cfg = cfg };
	enum route_hint comment_hint = ROUTE_HINT_NONE;

	memset(out, 0, sizeof(*out));
	out->cls = ROUTE_EMPTY;
	if (!sql) /* (NULL, 0): an empty query; NULL + 0 is not valid C arithmetic */
		c.lx.p = c.lx.end = "";
	/* Only comments before the first token can carry a hint. */
	lex_next(&c.lx, &c.t, &comment_hint);
	out->hint = comment_hint;
	for (;;) {
		struct stmt r;

		while (c.t.type == TOK_SEMI) {
			/* A new statement starts with no open parenthesis, whatever the last one left. */
			c.lx.depth = 0;
			c.atomic = 0;
			lex_next(&c.lx, &c.t, NULL);
		}
		if (c.t.type == TOK_END)
			break;
		c.prev = (struct tok){ .type = TOK_SEMI, .kw = K_NONE, .s = c.t.s };
		classify_stmt(&c, &r);
		out->statements++;
		merge(out, &r);
	}
	/* A routing SET is only honoured alone: among other statements, keep the comment's hint. */
	if (out->statements > 1)
		out->hint = comment_hint;
}

const char *route_class_name(enum route_class cls)
{
	switch (cls) {
	case ROUTE_EMPTY:
		return "empty";
	case ROUTE_READ:
		return "read";
	case ROUTE_WRITE:
		return "write";
	case ROUTE_TXN_BEGIN:
		return "txn_begin";
	case ROUTE_TXN_END:
		return "txn_end";
	case ROUTE_TXN_OTHER:
		return "txn_other";
	case ROUTE_SESSION_PIN:
		return "session_pin";
	case ROUTE_SET:
		return "set";
	case ROUTE_HINT_SET:
		return "hint_set";
	}
	return "?";
}

const char *route_hint_name(enum route_hint hint)
{
	switch (hint) {
	case ROUTE_HINT_NONE:
		return "none";
	case ROUTE_HINT_PRIMARY:
		return "primary";
	case ROUTE_HINT_REPLICA:
		return "replica";
	case ROUTE_HINT_AUTO:
		return "auto";
	case ROUTE_HINT_INVALID:
		return "invalid";
	}
	return "?";
}
