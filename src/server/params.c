/*
 * params: tracked server parameters and session settings (see server/params.h).
 */
#include "server/params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/build.h"

static const char *const names[PARAM_COUNT] = {
	[PARAM_CLIENT_ENCODING] = "client_encoding",
	[PARAM_DATESTYLE] = "DateStyle",
	[PARAM_TIMEZONE] = "TimeZone",
	[PARAM_INTERVALSTYLE] = "IntervalStyle",
	[PARAM_STANDARD_CONFORMING_STRINGS] = "standard_conforming_strings",
	[PARAM_APPLICATION_NAME] = "application_name",
};

int param_lookup(const char *name)
{
	for (int i = 0; i < PARAM_COUNT; i++)
		if (strcasecmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *param_get(const struct param_set *ps, enum tracked_param p)
{
	return ps->set & (1u << p) ? ps->buf + ps->off[p] : NULL;
}

bool param_store(struct param_set *ps, enum tracked_param p, const char *value)
{
	size_t size = strlen(value) + 1, pos = 0;
	const char *cur = param_get(ps, p);
	uint16_t off[PARAM_COUNT] = { 0 };
	char *buf;

	if (size > PARAM_VALUE_MAX)
		return false;
	if (cur && strcmp(cur, value) == 0)
		return true;
	for (int i = 0; i < PARAM_COUNT; i++) {
		if (i != (int)p && (ps->set & (1u << i)))
			size += strlen(ps->buf + ps->off[i]) + 1;
	}
	buf = malloc(size);
	if (!buf)
		return false;
	/* Copy in index order, putting value in p's place. */
	for (int i = 0; i < PARAM_COUNT; i++) {
		const char *v = i == (int)p ? value : param_get(ps, (enum tracked_param)i);
		size_t n;

		if (!v)
			continue;
		n = strlen(v) + 1;
		memcpy(buf + pos, v, n);
		off[i] = (uint16_t)pos;
		pos += n;
	}
	free(ps->buf);
	ps->buf = buf;
	ps->set |= (uint8_t)(1u << p);
	memcpy(ps->off, off, sizeof(off));
	return true;
}

void param_set_free(struct param_set *ps)
{
	free(ps->buf);
	memset(ps, 0, sizeof(*ps));
}

/* Quote value as a SQL literal; false if it does not fit. */
static bool append_literal(char *buf, size_t len, size_t *pos, const char *value)
{
	if (*pos + 1 >= len)
		return false;
	buf[(*pos)++] = '\'';
	for (const char *s = value; *s; s++) {
		if (*pos + 3 >= len)
			return false;
		if (*s == '\'')
			buf[(*pos)++] = '\'';
		buf[(*pos)++] = *s;
	}
	buf[(*pos)++] = '\'';
	buf[*pos] = '\0';
	return true;
}

int param_diff_sql(const struct param_set *want, const struct param_set *have, char *buf,
		   size_t len)
{
	size_t pos = 0;
	int n = 0;

	buf[0] = '\0';
	for (int i = 0; i < PARAM_COUNT; i++) {
		int w;

		const char *w_value = param_get(want, (enum tracked_param)i);
		const char *h_value = param_get(have, (enum tracked_param)i);

		if (!w_value || (h_value && strcmp(w_value, h_value) == 0))
			continue;
		w = snprintf(buf + pos, len - pos, "SET %s=", names[i]);
		if (w < 0 || (size_t)w >= len - pos)
			return -1;
		pos += (size_t)w;
		if (!append_literal(buf, len, &pos, w_value) || pos + 2 >= len)
			return -1;
		buf[pos++] = ';';
		buf[pos] = '\0';
		n++;
	}
	return n;
}

static struct setting *settings_find(const struct settings *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->items[i].name, name) == 0)
			return &s->items[i];
	return NULL;
}

static bool put(struct settings *s, const char *name, const char *value, bool raw)
{
	struct setting *e = settings_find(s, name);
	char *v = strdup(value);

	if (!v)
		return false;
	if (e) {
		free(e->value);
		e->value = v;
		e->raw = raw;
		return true;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		struct setting *items = realloc(s->items, cap * sizeof(*items));

		if (!items) {
			free(v);
			return false;
		}
		s->items = items;
		s->cap = cap;
	}
	e = &s->items[s->n];
	e->name = strdup(name);
	if (!e->name) {
		free(v);
		return false;
	}
	e->value = v;
	e->raw = raw;
	s->n++;
	return true;
}

bool settings_put(struct settings *s, const char *name, const char *value)
{
	return put(s, name, value, false);
}

bool settings_put_raw(struct settings *s, const char *name, const char *value)
{
	return put(s, name, value, true);
}

void settings_remove(struct settings *s, const char *name)
{
	struct setting *e = settings_find(s, name);

	if (!e)
		return;
	free(e->name);
	free(e->value);
	*e = s->items[--s->n];
}

void settings_clear(struct settings *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].name);
		free(s->items[i].value);
	}
	s->n = 0;
}

void settings_free(struct settings *s)
{
	settings_clear(s);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

bool settings_copy(struct settings *to, const struct settings *from)
{
	settings_clear(to);
	for (size_t i = 0; i < from->n; i++)
		if (!put(to, from->items[i].name, from->items[i].value, from->items[i].raw))
			return false;
	return true;
}

static void put_text(struct msgbuf *out, const char *a, const char *b, const char *c, const char *d)
{
	mb_put_bytes(out, a, strlen(a));
	mb_put_bytes(out, b, strlen(b));
	mb_put_bytes(out, c, strlen(c));
	mb_put_bytes(out, d, strlen(d));
}

/*
 * text as an E'...' literal: it reads the same whatever standard_conforming_strings the client
 * chose for the session.
 */
static void put_literal(struct msgbuf *out, const char *text)
{
	mb_put_bytes(out, "E'", 2);
	for (const char *t = text; *t; t++) {
		if (*t == '\'' || *t == '\\')
			mb_put_u8(out, (uint8_t)*t);
		mb_put_u8(out, (uint8_t)*t);
	}
	mb_put_u8(out, '\'');
}

/* name as a quoted identifier: "a""b" (names are checked at intake; this keeps SQL SQL anyway). */
static void put_ident(struct msgbuf *out, const char *name)
{
	mb_put_u8(out, '"');
	for (const char *n = name; *n; n++) {
		if (*n == '"')
			mb_put_u8(out, '"');
		mb_put_u8(out, (uint8_t)*n);
	}
	mb_put_u8(out, '"');
}

bool settings_name_valid(const char *name)
{
	bool part_start = true;

	if (!*name || strlen(name) >= 64)
		return false;
	for (const char *n = name; *n; n++) {
		unsigned char ch = (unsigned char)*n;

		if (ch == '.') {
			if (part_start)
				return false;
			part_start = true;
			continue;
		}
		if (!(isalpha(ch) || ch == '_' || (!part_start && (isdigit(ch) || ch == '$'))))
			return false;
		part_start = false;
	}
	return !part_start;
}

static void put_set(struct msgbuf *out, const struct setting *e)
{
	static const char call[] = "SELECT pg_catalog.set_config(";

	if (!e->raw) {
		mb_put_bytes(out, "SET ", 4);
		put_ident(out, e->name);
		put_text(out, " TO ", e->value, ";", "");
		return;
	}
	/* set_config parses the value as the server would a startup option (lists included). */
	mb_put_bytes(out, call, sizeof(call) - 1);
	put_literal(out, e->name);
	mb_put_u8(out, ',');
	put_literal(out, e->value);
	mb_put_bytes(out, ",false);", 8);
}

/* Each custom (dotted) name in set, as ",(E'name')" rows of a VALUES list. */
static void put_custom_names(struct msgbuf *out, const struct settings *set, bool *first)
{
	for (size_t i = 0; i < set->n; i++) {
		if (!strchr(set->items[i].name, '.'))
			continue;
		mb_put_bytes(out, *first ? "(" : ",(", *first ? 1 : 2);
		put_literal(out, set->items[i].name);
		mb_put_u8(out, ')');
		*first = false;
	}
}

void settings_read_sql(struct msgbuf *out, const struct settings *known,
		       const struct settings *touched)
{
	/* SET and set_config() make source 'session'; so do pgmux's own SETs for the client. */
	static const char listed[] = "SELECT name, pg_catalog.current_setting(name) "
				     "FROM pg_catalog.pg_settings WHERE source = 'session'";
	/* Custom settings pg_settings does not list: "" is what a reset one reads. */
	static const char custom[] = " UNION ALL SELECT n, v FROM (SELECT n, "
				     "pg_catalog.current_setting(n, true) AS v FROM (VALUES ";
	static const char custom_end[] = ") AS t(n)) AS c WHERE v <> ''";
	size_t mark;
	bool first = true;

	mb_put_bytes(out, listed, sizeof(listed) - 1);
	mark = out->len;
	mb_put_bytes(out, custom, sizeof(custom) - 1);
	put_custom_names(out, known, &first);
	put_custom_names(out, touched, &first);
	if (first)
		out->len = mark; /* no custom names */
	else
		mb_put_bytes(out, custom_end, sizeof(custom_end) - 1);
	mb_put_u8(out, 0);
}

int settings_diff_sql(const struct settings *want, const struct settings *have, struct msgbuf *out)
{
	int n = 0;

	for (size_t i = 0; i < have->n; i++) {
		if (!settings_find(want, have->items[i].name)) {
			mb_put_bytes(out, "RESET ", 6);
			put_ident(out, have->items[i].name);
			mb_put_u8(out, ';');
			n++;
		}
	}
	for (size_t i = 0; i < want->n; i++) {
		const struct setting *h = settings_find(have, want->items[i].name);

		if (h && h->raw == want->items[i].raw &&
		    strcmp(h->value, want->items[i].value) == 0)
			continue;
		put_set(out, &want->items[i]);
		n++;
	}
	return n;
}
