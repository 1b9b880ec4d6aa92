/*
 * dealloc: a small scanner for DEALLOCATE and DISCARD ALL (see route/dealloc.h).
 *
 * Identifiers follow PostgreSQL's rules: unquoted ones are lower-cased (ASCII), quoted ones
 * keep their case and read "" as one quote. Anything it does not understand is DEALLOC_NONE,
 * so the caller leaves the statement to the server.
 */
#include "route/dealloc.h"
#include "route/sqlscan.h"

#include <stdbool.h>
#include <string.h>

struct token {
	char text[DEALLOC_NAME_MAX];
	bool quoted;
};

static bool ident_start(unsigned char ch)
{
	return ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || ch == '_' || ch >= 0x80;
}

static bool ident_char(unsigned char ch)
{
	return ident_start(ch) || (ch >= '0' && ch <= '9') || ch == '$';
}

/* A quoted identifier ("" is a quote); false if unterminated, empty or too long. */
static bool quoted_ident(struct sql_scan *s, struct token *t)
{
	size_t n = 0;

	for (s->p++; s->p < s->end; s->p++) {
		if (*s->p == '"') {
			if (s->end - s->p < 2 || s->p[1] != '"') {
				s->p++;
				t->text[n] = '\0';
				t->quoted = true;
				return n > 0;
			}
			s->p++;
		}
		if (n + 1 >= sizeof(t->text))
			return false;
		t->text[n++] = *s->p;
	}
	return false;
}

/* The next identifier or keyword; false if there is none (or one PostgreSQL would truncate). */
static bool next_token(struct sql_scan *s, struct token *t)
{
	size_t n = 0;

	sqlscan_skip_space(s);
	if (s->p < s->end && *s->p == '"')
		return quoted_ident(s, t);
	if (s->p >= s->end || !ident_start((unsigned char)*s->p))
		return false;
	while (s->p < s->end && ident_char((unsigned char)*s->p)) {
		char ch = *s->p++;

		if (n + 1 >= sizeof(t->text))
			return false;
		t->text[n++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 'a' - 'A') : ch;
	}
	t->text[n] = '\0';
	t->quoted = false;
	return true;
}

static bool is_keyword(const struct token *t, const char *kw)
{
	return !t->quoted && strcmp(t->text, kw) == 0;
}

/* Nothing but blanks, comments and one ';' left. */
static bool at_end(struct sql_scan *s)
{
	sqlscan_skip_space(s);
	if (s->p < s->end && *s->p == ';') {
		s->p++;
		sqlscan_skip_space(s);
	}
	return s->p == s->end;
}

static enum dealloc_kind done(struct dealloc_stmt *out, enum dealloc_kind kind)
{
	out->kind = kind;
	if (kind != DEALLOC_NAME)
		out->name[0] = '\0';
	return kind;
}

/* After DEALLOCATE: [PREPARE] name | [PREPARE] ALL. */
static enum dealloc_kind parse_deallocate(struct sql_scan *s, struct dealloc_stmt *out)
{
	struct token t;

	if (!next_token(s, &t))
		return done(out, DEALLOC_NONE);
	if (is_keyword(&t, "prepare")) {
		struct sql_scan save = *s;
		struct token next;

		/* PREPARE is also a name of its own: DEALLOCATE prepare. */
		if (next_token(s, &next))
			t = next;
		else
			*s = save;
	}
	if (!at_end(s))
		return done(out, DEALLOC_NONE);
	if (is_keyword(&t, "all"))
		return done(out, DEALLOC_ALL);
	memcpy(out->name, t.text, sizeof(out->name));
	return done(out, DEALLOC_NAME);
}

enum dealloc_kind dealloc_parse(const char *sql, size_t len, struct dealloc_stmt *out)
{
	struct sql_scan s = { sql, sql + len };
	struct token verb, what;

	memset(out, 0, sizeof(*out));
	if (!next_token(&s, &verb) || verb.quoted)
		return done(out, DEALLOC_NONE);
	if (is_keyword(&verb, "deallocate"))
		return parse_deallocate(&s, out);
	if (is_keyword(&verb, "discard") && next_token(&s, &what) && is_keyword(&what, "all") &&
	    at_end(&s))
		return done(out, DEALLOC_DISCARD_ALL);
	return done(out, DEALLOC_NONE);
}
