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
	while (s->p < s->end &&
	       (isalnum((unsigned char)*s->p) || *s->p == '_' || *s->p == '.' || *s->p == '$')) {
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
			return done(out,
				    rest(&s, tail, sizeof(tail)) ? SET_UNKNOWN : SET_RESET_ALL);
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

/* A custom (dotted) setting name: pg_settings does not list these, so callers ask by name. */
static void note_name(struct setstmt_changes *out, const char *name)
{
	if (!strchr(name, '.'))
		return;
	for (int i = 0; i < out->n_names; i++)
		if (strcmp(out->names[i], name) == 0)
			return;
	if (out->n_names == SETSTMT_MAX_NAMES) {
		out->unnamed = true;
		return;
	}
	snprintf(out->names[out->n_names++], SET_NAME_MAX, "%s", name);
}

/* set_config( 'name' ...: the name when it is a literal; else the change is unnamed. */
static void set_config_call(struct setstmt_changes *out, const char *p, const char *end)
{
	struct sql_scan s = { p, end };
	char name[SET_NAME_MAX];
	size_t n = 0;

	sqlscan_skip_space(&s);
	if (s.p < s.end && *s.p == '(')
		s.p++;
	sqlscan_skip_space(&s);
	if (s.p >= s.end || *s.p != '\'') {
		out->unnamed = true;
		return;
	}
	for (s.p++; s.p < s.end && *s.p != '\'' && n + 1 < sizeof(name); s.p++)
		name[n++] = (char)tolower((unsigned char)*s.p);
	name[n] = '\0';
	if (s.p >= s.end || *s.p != '\'' || n == 0) {
		out->unnamed = true;
		return;
	}
	note_name(out, name);
}

/* Every set_config( call in sql, in any case. (Quotes and comments are not told apart.) */
static void find_set_config(const char *sql, size_t len, struct setstmt_changes *out)
{
	static const char needle[] = "set_config";
	const size_t n = sizeof(needle) - 1;

	for (size_t i = 0; i + n <= len; i++) {
		if ((sql[i] | 0x20) != 's' || strncasecmp(sql + i, needle, n) != 0)
			continue;
		out->any = true;
		set_config_call(out, sql + i + n, sql + len);
	}
}

void setstmt_scan_changes(const char *sql, size_t len, struct setstmt_changes *out)
{
	struct set_stmt st;
	const char *end = sql + len;

	out->any = out->unnamed = false;
	out->n_names = 0;
	find_set_config(sql, len, out);
	/* Every real statement starts at the beginning or after a ';' (a ';' in a literal only
	 * costs a false alarm). */
	for (const char *p = sql;;) {
		const char *semi;

		st.name[0] = '\0';
		switch (setstmt_parse(p, (size_t)(end - p), &st)) {
		case SET_NONE:
		case SET_LOCAL:
			break;
		default:
			/* SET_UNKNOWN too: the name is read before what follows it is found wanting. */
			out->any = true;
			note_name(out, st.name);
			break;
		}
		if (!(semi = memchr(p, ';', (size_t)(end - p))))
			return;
		p = semi + 1;
	}
}
