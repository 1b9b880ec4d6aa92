/*
 * setstmt: a small scanner for SET / RESET / DISCARD ALL (see route/setstmt.h).
 *
 * Only single statements of the common forms are understood; anything else that mentions
 * settings is SET_UNKNOWN, so the caller can fall back to resetting the server.
 */
#include "route/setstmt.h"
#include "route/sqlscan.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Read a keyword or identifier (letters, digits, _, $, and dots for qualified names). */
static bool word(struct sql_scan *s, char *out, size_t outlen)
{
	size_t n = 0;

	sqlscan_skip_space(s);
	if (s->p < s->end && *s->p == '"') {
		s->p++;
		while (s->p < s->end && *s->p != '"' && n + 1 < outlen)
			out[n++] = *s->p++;
		if (s->p >= s->end || *s->p != '"')
			return false;
		s->p++;
		out[n] = '\0';
		return n > 0;
	}
	while (s->p < s->end && (isalnum((unsigned char)*s->p) || *s->p == '_' || *s->p == '.' || *s->p == '$')) {
		if (n + 1 >= outlen)
			return false;
		out[n++] = (char)tolower((unsigned char)*s->p++);
	}
	out[n] = '\0';
	return n > 0;
}

static bool keyword(struct sql_scan *s, const char *kw)
{
	struct sql_scan save = *s;
	char w[32];

	if (word(s, w, sizeof(w)) && strcmp(w, kw) == 0)
		return true;
	*s = save;
	return false;
}

/* The rest of the statement, trimmed, without a final ';'. False if another statement follows. */
static bool rest(struct sql_scan *s, char *out, size_t outlen)
{
	const char *start, *end;
	char quote = 0;

	sqlscan_skip_space(s);
	start = s->p;
	for (const char *q = start; q < s->end; q++) {
		if (quote) {
			if (*q == quote)
				quote = 0;
		} else if (*q == '\'' || *q == '"') {
			quote = *q;
		} else if (*q == ';') {
			struct sql_scan after = { q + 1, s->end };

			sqlscan_skip_space(&after);
			if (after.p != after.end)
				return false;
			end = q;
			goto found;
		}
	}
	if (quote)
		return false;
	end = s->end;
found:
	while (end > start && (isspace((unsigned char)end[-1]) || end[-1] == '\0'))
		end--;
	if (end == start || (size_t)(end - start) >= outlen)
		return false;
	memcpy(out, start, (size_t)(end - start));
	out[end - start] = '\0';
	return true;
}

static enum set_kind done(struct set_stmt *out, enum set_kind kind)
{
	out->kind = kind;
	return kind;
}

static enum set_kind parse_set(struct sql_scan *s, struct set_stmt *out)
{
	if (keyword(s, "local"))
		return done(out, SET_LOCAL);
	keyword(s, "session");
	if (keyword(s, "transaction") || keyword(s, "characteristics") || keyword(s, "constraints"))
		return done(out, SET_NONE);
	if (keyword(s, "time")) {
		if (!keyword(s, "zone"))
			return done(out, SET_UNKNOWN);
		strcpy(out->name, "timezone");
	} else if (keyword(s, "authorization")) {
		strcpy(out->name, "session_authorization");
	} else if (!word(s, out->name, sizeof(out->name))) {
		return done(out, SET_UNKNOWN);
	} else if (!strcmp(out->name, "role") || !strcmp(out->name, "names")) {
		if (!strcmp(out->name, "names"))
			strcpy(out->name, "client_encoding");
	} else {
		sqlscan_skip_space(s);
		if (s->p < s->end && *s->p == '=')
			s->p++;
		else if (!keyword(s, "to"))
			return done(out, SET_UNKNOWN);
	}
	if (!rest(s, out->value, sizeof(out->value)))
		return done(out, SET_UNKNOWN);
	if (!strcasecmp(out->value, "default"))
		return done(out, SET_RESET);
	if (strncasecmp(out->value, "from current", 12) == 0)
		return done(out, SET_UNKNOWN);
	return done(out, SET_VALUE);
}

enum set_kind setstmt_parse(const char *sql, size_t len, struct set_stmt *out)
{
	struct sql_scan s = { sql, sql + len };
	char verb[16], tail[8];

	memset(out, 0, sizeof(*out));
	if (!word(&s, verb, sizeof(verb)))
		return done(out, SET_NONE);
	if (!strcmp(verb, "set"))
		return parse_set(&s, out);
	if (!strcmp(verb, "reset")) {
		if (keyword(&s, "all"))
			return done(out, rest(&s, tail, sizeof(tail)) ? SET_UNKNOWN : SET_RESET_ALL);
		if (keyword(&s, "session")) {
			if (!keyword(&s, "authorization"))
				return done(out, SET_UNKNOWN);
			strcpy(out->name, "session_authorization");
		} else if (keyword(&s, "time")) {
			if (!keyword(&s, "zone"))
				return done(out, SET_UNKNOWN);
			strcpy(out->name, "timezone");
		} else if (!word(&s, out->name, sizeof(out->name))) {
			return done(out, SET_UNKNOWN);
		}
		return done(out, rest(&s, tail, sizeof(tail)) ? SET_UNKNOWN : SET_RESET);
	}
	if (!strcmp(verb, "discard")) {
		if (keyword(&s, "all") && !rest(&s, tail, sizeof(tail)))
			return done(out, SET_RESET_ALL);
		return done(out, SET_NONE);
	}
	return done(out, SET_NONE);
}

/* Does "set_config" appear in sql, in any case? (Quotes and comments are not told apart.) */
static bool mentions_set_config(const char *sql, size_t len)
{
	static const char needle[] = "set_config";
	const size_t n = sizeof(needle) - 1;

	for (size_t i = 0; i + n <= len; i++)
		if ((sql[i] | 0x20) == 's' && strncasecmp(sql + i, needle, n) == 0)
			return true;
	return false;
}

bool setstmt_may_change_settings(const char *sql, size_t len)
{
	struct set_stmt st;

	if (mentions_set_config(sql, len))
		return true;
	/* Every real statement starts after a ';'; a ';' inside a literal only costs a false alarm. */
	for (const char *p = memchr(sql, ';', len); p; p = memchr(p, ';', (size_t)(sql + len - p))) {
		p++;
		if (setstmt_parse(p, (size_t)(sql + len - p), &st) != SET_NONE)
			return true;
	}
	return false;
}
