/*
 * shard/keyfind: the shard key in hints, pgmux settings and SQL statements (see keyfind.h).
 *
 * The hint and SET scanners delimit tokens as PostgreSQL 15's scanner does (blanks are space,
 * tab, newline, carriage return and form feed; -- and nested slash-star comments count as
 * blanks) and read only what they describe: anything else is "not mine".
 *
 * keyfind_sql hands the string to libpg_query, the server's own grammar, and reads the parse
 * tree from its JSON form. Two things about that form shape the code below:
 * - A node is an object with one member named after its type ({"A_Const": {...}}), except
 *   where the tree holds a struct rather than a node (a set operation's larg and rarg).
 * - libpg_query 15's JSON drops the value of an integer constant that is zero or negative
 *   ("ival": {}), so such a constant is read back from the query text at its location; when
 *   that text is anything but [-]digits the constant gives no key rather than a guessed one.
 */
#include "shard/keyfind.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>

#include "shard/json.h"

/*
 * Nesting the JSON reader accepts (it recurses once per level). A statement nested deeper than
 * this is NO_KEY; each level of an expression is about two levels of JSON.
 */
#define JSON_DEPTH 1000

/* ---- Lexing shared by the hint and SET scanners ---------------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 'a' - 'A') : c;
}

/* The first character of an identifier, and the following ones (PostgreSQL's ident_start/cont). */
static bool is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c & 0x80);
}

static bool is_ident_cont(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* s[0..n) is the word w (lower case), whatever the case of s. */
static bool word_eq(const char *s, size_t n, const char *w)
{
	if (strlen(w) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != w[i])
			return false;
	return true;
}

/* p is just past the opening slash-star; comments nest. Returns the end of the comment. */
static const char *skip_block_comment(const char *p, const char *end, const char **body_end)
{
	int nest = 1;

	while (end - p >= 2) {
		if (p[0] == '/' && p[1] == '*') {
			nest++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			p += 2;
			if (--nest == 0) {
				*body_end = p - 2;
				return p;
			}
		} else {
			p++;
		}
	}
	*body_end = end; /* unterminated: the server will refuse the string */
	return end;
}

/*
 * If a comment starts at p, its body into [*body, *body_end) and the position after it;
 * otherwise NULL.
 */
static const char *comment_at(const char *p, const char *end, const char **body,
			      const char **body_end)
{
	if (end - p < 2)
		return NULL;
	if (p[0] == '-' && p[1] == '-') {
		*body = p + 2;
		*body_end = memchr(*body, '\n', (size_t)(end - *body));
		if (!*body_end)
			*body_end = end;
		return *body_end;
	}
	if (p[0] == '/' && p[1] == '*') {
		*body = p + 2;
		return skip_block_comment(*body, end, body_end);
	}
	return NULL;
}

static const char *skip_space(const char *p, const char *end)
{
	const char *body, *body_end, *next;

	for (;;) {
		while (p < end && is_space(*p))
			p++;
		next = comment_at(p, end, &body, &body_end);
		if (!next)
			return p;
		p = next;
	}
}

/* ---- Hint comments ----------------------------------------------------------------------- */

static bool is_separator(char c)
{
	return is_space(c) || c == ',';
}

/*
 * A hint's value at p: '...' (what lies between the quotes) or up to a separator. false for an
 * empty unquoted value or an unclosed quote.
 */
static bool hint_value(const char *p, const char *end, const char **value, size_t *len,
		       const char **next)
{
	const char *q;

	if (p < end && *p == '\'') {
		q = memchr(p + 1, '\'', (size_t)(end - p - 1));
		if (!q)
			return false;
		*value = p + 1;
		*len = (size_t)(q - p - 1);
		*next = q + 1;
		return true;
	}
	for (q = p; q < end && !is_separator(*q); q++)
		;
	*value = p;
	*len = (size_t)(q - p);
	*next = q;
	return q > p;
}

/* The identifier at p (possibly empty): its end. */
static const char *ident_end(const char *p, const char *end)
{
	while (p < end && is_ident_cont(*p))
		p++;
	return p;
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && is_space(*p))
		p++;
	return p;
}

/*
 * One item of a comment at p: "pgmux" ':' name ['=' value], blanks allowed around ':' and '='.
 * Fills h for a shard hint. Returns where the item ends: after its value, or, for an item that
 * is not a shard hint, after its last word, so that a following "pgmux:" starts a new item.
 */
static const char *hint_item(const char *p, const char *end, struct keyfind_hint *h)
{
	const char *name, *q = ident_end(p, end), *resume = q, *value, *next;
	enum keyfind_hint_kind kind = KEYFIND_HINT_NONE;
	size_t value_len;

	if (!word_eq(p, (size_t)(q - p), "pgmux"))
		goto skip;
	q = skip_blanks(q, end);
	if (q == end || *q != ':')
		goto skip;
	name = skip_blanks(q + 1, end);
	resume = q = ident_end(name, end);
	if (word_eq(name, (size_t)(q - name), "shard_key"))
		kind = KEYFIND_HINT_KEY;
	else if (word_eq(name, (size_t)(q - name), "shard"))
		kind = KEYFIND_HINT_SHARD;
	q = skip_blanks(q, end);
	if (q == end || *q != '=')
		goto skip;
	resume = q + 1;
	if (!hint_value(skip_blanks(q + 1, end), end, &value, &value_len, &next))
		goto skip;
	if (kind != KEYFIND_HINT_NONE) {
		h->kind = kind;
		h->value = value;
		h->value_len = value_len;
	}
	return next;
skip:
	/* Not a shard hint (another pgmux: word, or text): on to the next separator. */
	while (resume < end && !is_separator(*resume))
		resume++;
	return resume;
}

static bool hint_in_comment(const char *p, const char *end, struct keyfind_hint *h)
{
	while (p < end) {
		if (is_separator(*p)) {
			p++;
			continue;
		}
		p = hint_item(p, end, h);
		if (h->kind != KEYFIND_HINT_NONE)
			return true;
	}
	return false;
}

bool keyfind_hint(const char *sql, size_t len, struct keyfind_hint *h)
{
	const char *p = sql, *end = sql + len, *body, *body_end, *next;

	memset(h, 0, sizeof(*h));
	for (;;) {
		while (p < end && is_space(*p))
			p++;
		next = comment_at(p, end, &body, &body_end);
		if (!next)
			return false;
		if (hint_in_comment(body, body_end, h))
			return true;
		p = next;
	}
}

/* ---- SET pgmux.shard_key / pgmux.shard ----------------------------------------------------- */

/* The word (identifier or keyword) at p, if any: its end, or p. */
static const char *word_end(const char *p, const char *end)
{
	if (p == end || !is_ident_start(*p))
		return p;
	while (p < end && is_ident_cont(*p))
		p++;
	return p;
}

/* The keyword w at *p (then *p moves past it and the blanks after). */
static bool keyword(const char **p, const char *end, const char *w)
{
	const char *q = word_end(*p, end);

	if (!word_eq(*p, (size_t)(q - *p), w))
		return false;
	*p = skip_space(q, end);
	return true;
}

/* One part of a name: a word matching w in any case, or "w" exactly. */
static bool name_part(const char **p, const char *end, const char *w)
{
	size_t n = strlen(w);
	const char *q;

	if (*p < end && **p == '"') {
		q = *p + 1;
		if ((size_t)(end - q) < n + 1 || memcmp(q, w, n) != 0 || q[n] != '"')
			return false;
		q += n + 1;
		if (q < end && *q == '"') /* "" inside: a longer name */
			return false;
	} else {
		q = word_end(*p, end);
		if (!word_eq(*p, (size_t)(q - *p), w))
			return false;
	}
	*p = skip_space(q, end);
	return true;
}

static bool setting_name(const char **p, const char *end, enum keyfind_setting *what)
{
	const char *q;

	if (!name_part(p, end, "pgmux") || *p == end || **p != '.')
		return false;
	*p = skip_space(*p + 1, end);
	q = *p;
	if (name_part(p, end, "shard_key")) {
		*what = KEYFIND_SET_KEY;
		return true;
	}
	*p = q;
	if (name_part(p, end, "shard")) {
		*what = KEYFIND_SET_SHARD;
		return true;
	}
	return false;
}

/* $tag$ at p: its length (2 for $$), or 0. */
static size_t dollar_tag(const char *p, const char *end)
{
	const char *q = p + 1;

	if (p == end || *p != '$')
		return 0;
	if (q < end && is_ident_start(*q))
		while (q < end && is_ident_cont(*q) && *q != '$')
			q++;
	return q < end && *q == '$' ? (size_t)(q + 1 - p) : 0;
}

/* A number as the scanner reads one, with an optional sign glued to it. */
static const char *number_end(const char *p, const char *end)
{
	const char *digits;

	if (p < end && (*p == '-' || *p == '+'))
		p++;
	digits = p;
	while (p < end && is_digit(*p))
		p++;
	if (p < end && *p == '.')
		for (p++; p < end && is_digit(*p); p++)
			;
	if (p == digits || (p - digits == 1 && *digits == '.'))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		const char *e = p + 1;

		if (e < end && (*e == '-' || *e == '+'))
			e++;
		if (e < end && is_digit(*e)) {
			while (e < end && is_digit(*e))
				e++;
			p = e;
		}
	}
	/* 123abc is not one token: refuse rather than guess. */
	return p < end && is_ident_cont(*p) ? NULL : p;
}

/* The value at *p into s: a literal, a number, a word, a "word", or DEFAULT (s->reset). */
static bool setting_value(const char **p, const char *end, struct keyfind_set *s)
{
	const char *q = *p, *v, *close;
	size_t tag;

	if (q == end)
		return false;
	if (*q == '\'' || *q == '"') {
		close = memchr(q + 1, *q, (size_t)(end - q - 1));
		/* A doubled quote inside would need unescaping: not ours to describe. */
		if (!close || (close + 1 < end && close[1] == *q) || (*q == '"' && close == q + 1))
			return false;
		v = q + 1;
		q = close + 1;
	} else if ((tag = dollar_tag(q, end)) != 0) {
		v = q + tag;
		for (close = v; (size_t)(end - close) >= tag && memcmp(close, q, tag) != 0; close++)
			;
		if ((size_t)(end - close) < tag)
			return false;
		q = close + tag;
	} else if (is_digit(*q) || *q == '.' || *q == '-' || *q == '+') {
		v = q;
		if (!(q = number_end(q, end)))
			return false;
		close = q;
	} else {
		v = q;
		q = close = word_end(q, end);
		if (q == v)
			return false;
		if (word_eq(v, (size_t)(q - v), "default")) {
			s->reset = true;
			*p = skip_space(q, end);
			return true;
		}
	}
	s->value = v;
	s->value_len = (size_t)(close - v);
	*p = skip_space(q, end);
	return true;
}

/* The end of the statement: an optional ';' and nothing after it but blanks and comments. */
static bool at_end(const char *p, const char *end)
{
	if (p < end && *p == ';')
		p = skip_space(p + 1, end);
	return p == end;
}

bool keyfind_set(const char *sql, size_t len, struct keyfind_set *s)
{
	const char *p = skip_space(sql, sql + len), *end = sql + len;

	memset(s, 0, sizeof(*s));
	if (keyword(&p, end, "reset")) {
		s->reset = true;
		return setting_name(&p, end, &s->what) && at_end(p, end);
	}
	if (!keyword(&p, end, "set"))
		return false;
	if (keyword(&p, end, "local"))
		s->local = true;
	else
		(void)keyword(&p, end, "session");
	if (!setting_name(&p, end, &s->what))
		return false;
	if (p < end && *p == '=')
		p = skip_space(p + 1, end);
	else if (!keyword(&p, end, "to"))
		return false;
	return setting_value(&p, end, s) && at_end(p, end);
}

/* ---- Statements, through libpg_query's parse tree -------------------------------------------- */

/* What one statement says about the key. */
enum answer { ANSWER_NEUTRAL, ANSWER_KEYED, ANSWER_NO_KEY };

struct walk {
	const char *sql; /* the parsed text, for constants' locations */
	size_t len;
	const char *column;
	size_t column_len;
	struct keyfind *out; /* values go to out->values */
	int cap;
	bool oom;
	bool too_many;
};

static const struct json_node *field(const struct json_node *o, const char *key)
{
	return json_field(o, key);
}

/* The body of node if it is a node of this type, else NULL. */
static const struct json_node *node_as(const struct json_node *node, const char *type)
{
	return json_field(node, type);
}

/* The type of a node, its body into *body; NULL if node is not a node. */
static const char *node_type(const struct json_node *node, const struct json_node **body)
{
	const char *type = NULL;

	*body = json_first(node, &type);
	return *body ? type : NULL;
}

static bool str_is(const struct json_node *o, const char *s)
{
	return json_str_is(o, s);
}

static bool is_string(const struct json_node *o)
{
	return o && o->kind == JSON_STRING;
}

/* The sval of a {"String": {"sval": ...}} node, or NULL. */
static const struct json_node *string_node(const struct json_node *node)
{
	const struct json_node *v = field(node_as(node, "String"), "sval");

	return is_string(v) ? v : NULL;
}

static size_t list_len(const struct json_node *list)
{
	return json_len(list);
}

static const struct json_node *list_at(const struct json_node *list, size_t i)
{
	return json_at(list, i);
}

/*
 * A cast that keeps equality exact for key types: to int2/int4/int8, text, varchar or uuid, no
 * type modifier (varchar(3) truncates), an array exactly when array. float8 or numeric would let
 * other values compare equal (2^53 + 1 = 2^53 as float8), so they are not in the list.
 */
static bool exact_cast(const struct json_node *type_name, bool array)
{
	static const char *const exact[] = { "int2", "int4", "int8", "text", "varchar", "uuid" };
	const struct json_node *names = field(type_name, "names"), *last;
	size_t n = list_len(names);

	if (n == 0 || n > 2 || field(type_name, "typmods") ||
	    !!field(type_name, "arrayBounds") != array)
		return false;
	if (n == 2 && !str_is(string_node(list_at(names, 0)), "pg_catalog"))
		return false;
	last = string_node(list_at(names, n - 1));
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (str_is(last, exact[i]))
			return true;
	return false;
}

/* node without the exact casts around it. */
static const struct json_node *uncast(const struct json_node *node)
{
	const struct json_node *b;

	while ((b = node_as(node, "TypeCast")) && exact_cast(field(b, "typeName"), false))
		node = field(b, "arg");
	return node;
}

/* A reference to the key column: the last field of a ColumnRef, under exact casts. */
static bool is_key_column(const struct walk *w, const struct json_node *node)
{
	const struct json_node *fields = field(node_as(uncast(node), "ColumnRef"), "fields");
	size_t n = list_len(fields);
	const struct json_node *name = n ? string_node(list_at(fields, n - 1)) : NULL;

	return name && (size_t)name->len == w->column_len &&
	       memcmp(name->s, w->column, w->column_len) == 0;
}

static char *copy_text(struct walk *w, const char *s, size_t n)
{
	char *t = malloc(n + 1);

	if (!t) {
		w->oom = true;
		return NULL;
	}
	memcpy(t, s, n);
	t[n] = '\0';
	return t;
}

/*
 * An integer constant whose value the JSON left out (zero or negative), read back from the
 * text: [-][blanks]digits at its location, within int4 and not positive, or NULL.
 */
static char *dropped_int(struct walk *w, const struct json_node *a_const, size_t *len)
{
	const struct json_node *loc = field(a_const, "location");
	int64_t at = loc ? loc->num : -1;
	const char *p, *end = w->sql + w->len, *digits;
	bool negative;
	int64_t magnitude = 0;
	char buf[16];

	if (at < 0 || (uint64_t)at >= w->len)
		return NULL;
	p = w->sql + at;
	negative = *p == '-';
	if (negative)
		for (p++; p < end && is_space(*p); p++)
			;
	for (digits = p; p < end && is_digit(*p) && magnitude <= INT32_MAX; p++)
		magnitude = magnitude * 10 + (*p - '0');
	if (p == digits || (p < end && is_digit(*p)) || magnitude > INT32_MAX ||
	    (magnitude && !negative))
		return NULL;
	*len = (size_t)snprintf(buf, sizeof(buf), "%lld", (long long)-magnitude);
	return copy_text(w, buf, *len);
}

/* The text of an A_Const that can be a key (integer, numeric, string), or NULL. */
static char *const_text(struct walk *w, const struct json_node *a_const, size_t *len)
{
	const struct json_node *v;
	char buf[16];

	if ((v = field(a_const, "ival"))) {
		if (!(v = field(v, "ival")))
			return dropped_int(w, a_const, len);
		*len = (size_t)snprintf(buf, sizeof(buf), "%d", (int)v->num);
		return copy_text(w, buf, *len);
	}
	if ((v = field(field(a_const, "fval"), "fval")) ||
	    (v = field(field(a_const, "sval"), "sval"))) {
		if (!is_string(v))
			return NULL;
		*len = (size_t)v->len;
		return copy_text(w, v->s, *len);
	}
	return NULL; /* NULL, a boolean, a bit string */
}

/* A number's text: an optional '-', then a digit or '.'. */
static bool is_number(const char *text)
{
	text += *text == '-';
	return is_digit(*text) || *text == '.';
}

/* "-" prefixed to a number's text, or its own "-" taken away; NULL if text is not a number. */
static char *negate(struct walk *w, char *text, size_t *len)
{
	char *t;

	if (!is_number(text)) {
		free(text);
		return NULL;
	}
	if (text[0] == '-') {
		memmove(text, text + 1, *len); /* the NUL too */
		(*len)--;
		return text;
	}
	t = malloc(*len + 2);
	if (!t)
		w->oom = true;
	else {
		t[0] = '-';
		memcpy(t + 1, text, *len + 1);
		(*len)++;
	}
	free(text);
	return t;
}

/*
 * The literal text of a value node: a constant, a prefix + or - applied to one, or an exact cast
 * of those. Owned by the caller; NULL if node is no such value (or out of memory: w->oom).
 */
static char *literal_of(struct walk *w, const struct json_node *node, size_t *len)
{
	const struct json_node *b, *name;
	char *text;

	node = uncast(node);
	if ((b = node_as(node, "A_Const")))
		return const_text(w, b, len);
	b = node_as(node, "A_Expr");
	if (!b || field(b, "lexpr") || !str_is(field(b, "kind"), "AEXPR_OP") ||
	    list_len(field(b, "name")) != 1)
		return NULL;
	name = string_node(list_at(field(b, "name"), 0));
	if (!str_is(name, "-") && !str_is(name, "+"))
		return NULL;
	text = literal_of(w, field(b, "rexpr"), len);
	if (!text)
		return NULL;
	if (str_is(name, "-"))
		return negate(w, text, len);
	if (is_number(text))
		return text;
	free(text);
	return NULL;
}

static bool add_value(struct walk *w, int param, char *literal, size_t len)
{
	struct keyfind *kf = w->out;

	if (kf->n_values == KEYFIND_MAX_VALUES) {
		w->too_many = true;
		free(literal);
		return false;
	}
	if (kf->n_values == w->cap) {
		int cap = w->cap ? w->cap * 2 : 4;
		struct keyfind_value *v = realloc(kf->values, (size_t)cap * sizeof(*v));

		if (!v) {
			w->oom = true;
			free(literal);
			return false;
		}
		kf->values = v;
		w->cap = cap;
	}
	kf->values[kf->n_values++] = (struct keyfind_value){ param, literal, len };
	return true;
}

/* Forget the values added since mark. */
static void drop_values(struct walk *w, int mark)
{
	while (w->out->n_values > mark)
		free(w->out->values[--w->out->n_values].literal);
}

/* A value node (literal or $n) added to the values; false if node is neither. */
static bool value_of(struct walk *w, const struct json_node *node)
{
	const struct json_node *param = field(node_as(uncast(node), "ParamRef"), "number");
	char *literal;
	size_t len = 0;

	if (param) {
		int n = (int)param->num;

		return n > 0 && add_value(w, n, NULL, 0);
	}
	literal = literal_of(w, node, &len);
	return literal && add_value(w, 0, literal, len);
}

/* Every element of list a value: all added, or none. */
static bool values_of(struct walk *w, const struct json_node *list)
{
	int mark = w->out->n_values;
	size_t n = list_len(list);

	for (size_t i = 0; i < n; i++) {
		if (!value_of(w, list_at(list, i))) {
			drop_values(w, mark);
			return false;
		}
	}
	return n > 0;
}

/* = or OPERATOR(pg_catalog.=) */
static bool is_equals(const struct json_node *a_expr)
{
	const struct json_node *name = field(a_expr, "name");
	size_t n = list_len(name);

	return (n == 1 || (n == 2 && str_is(string_node(list_at(name, 0)), "pg_catalog"))) &&
	       str_is(string_node(list_at(name, n - 1)), "=");
}

/* The elements of ARRAY[...] or ARRAY[...]::type[] (an exact type). */
static const struct json_node *array_elements(const struct json_node *node)
{
	const struct json_node *b = node_as(node, "TypeCast");

	if (b) {
		if (!exact_cast(field(b, "typeName"), true))
			return NULL;
		node = field(b, "arg");
	}
	return field(node_as(node, "A_ArrayExpr"), "elements");
}

/*
 * Does the condition pin the key column to values (added to w)? Only AND descends: under OR or
 * NOT a predicate does not restrict every row, and subqueries are other statements' business.
 */
static bool pins_key(struct walk *w, const struct json_node *cond)
{
	const struct json_node *b = node_as(cond, "BoolExpr"), *l, *r;
	bool any = false;

	if (b) {
		const struct json_node *args = field(b, "args");

		if (!str_is(field(b, "boolop"), "AND_EXPR"))
			return false;
		for (size_t i = 0; i < list_len(args); i++)
			any |= pins_key(w, list_at(args, i));
		return any;
	}
	b = node_as(cond, "A_Expr");
	if (!b || !is_equals(b))
		return false;
	l = field(b, "lexpr");
	r = field(b, "rexpr");
	if (str_is(field(b, "kind"), "AEXPR_OP")) {
		if (is_key_column(w, l))
			return value_of(w, r);
		return is_key_column(w, r) && value_of(w, l);
	}
	if (str_is(field(b, "kind"), "AEXPR_IN"))
		return is_key_column(w, l) && values_of(w, field(node_as(r, "List"), "items"));
	if (str_is(field(b, "kind"), "AEXPR_OP_ANY"))
		return is_key_column(w, l) && values_of(w, array_elements(r));
	return false;
}

static enum answer where_answer(struct walk *w, const struct json_node *where)
{
	return where && pins_key(w, where) ? ANSWER_KEYED : ANSWER_NO_KEY;
}

/* A WITH holding INSERT, UPDATE, DELETE or MERGE (which need not touch the keyed rows). */
static bool modifying_with(const struct json_node *with)
{
	const struct json_node *ctes = field(with, "ctes");

	for (size_t i = 0; i < list_len(ctes); i++)
		if (!node_as(field(node_as(list_at(ctes, i), "CommonTableExpr"), "ctequery"),
			     "SelectStmt"))
			return true;
	return false;
}

/* A constant, a parameter, or a cast of one: reads no table. */
static bool is_plain(const struct json_node *node)
{
	const struct json_node *b;

	while ((b = node_as(node, "TypeCast")))
		node = field(b, "arg");
	return node_as(node, "A_Const") || node_as(node, "ParamRef");
}

/* SELECT of constants alone, or VALUES of constants: touches no table. */
static bool reads_no_table(const struct json_node *sel)
{
	static const char *const clauses[] = { "fromClause",   "whereClause",  "groupClause",
					       "havingClause", "withClause",   "lockingClause",
					       "intoClause",   "windowClause", "distinctClause" };
	const struct json_node *targets = field(sel, "targetList"),
			       *rows = field(sel, "valuesLists");

	for (size_t i = 0; i < sizeof(clauses) / sizeof(clauses[0]); i++)
		if (field(sel, clauses[i]))
			return false;
	for (size_t i = 0; i < list_len(targets); i++)
		if (!is_plain(field(node_as(list_at(targets, i), "ResTarget"), "val")))
			return false;
	for (size_t i = 0; i < list_len(rows); i++) {
		const struct json_node *items = field(node_as(list_at(rows, i), "List"), "items");

		for (size_t j = 0; j < list_len(items); j++)
			if (!is_plain(list_at(items, j)))
				return false;
	}
	return true;
}

/* An aggregate or window function call anywhere in node (a FuncCall with OVER, *, or a known name). */
static bool has_aggregate(const struct json_node *node)
{
	static const char *const aggregates[] = { "count",
						  "sum",
						  "avg",
						  "min",
						  "max",
						  "array_agg",
						  "string_agg",
						  "bool_and",
						  "bool_or",
						  "every",
						  "bit_and",
						  "bit_or",
						  "bit_xor",
						  "json_agg",
						  "jsonb_agg",
						  "json_object_agg",
						  "jsonb_object_agg",
						  "xmlagg",
						  "stddev",
						  "stddev_pop",
						  "stddev_samp",
						  "variance",
						  "var_pop",
						  "var_samp",
						  "mode",
						  "percentile_cont",
						  "percentile_disc",
						  "range_agg",
						  "range_intersect_agg",
						  "corr",
						  "covar_pop",
						  "covar_samp",
						  "regr_count" };
	const struct json_node *call = node_as(node, "FuncCall");

	if (call) {
		const struct json_node *names = field(call, "funcname");
		const struct json_node *last = string_node(
			list_at(names, list_len(names) ? list_len(names) - 1 : 0));

		if (field(call, "over") || field(call, "agg_star") || field(call, "agg_distinct"))
			return true;
		for (size_t i = 0; last && i < sizeof(aggregates) / sizeof(aggregates[0]); i++)
			if (str_is(last, aggregates[i]))
				return true;
	}
	if (node && node->kind == JSON_ARRAY) {
		const struct json_node *e = node + 1;

		for (uint32_t i = 0; i < node->count; i++, e = json_next(e))
			if (has_aggregate(e))
				return true;
	} else if (node && node->kind == JSON_OBJECT) {
		const struct json_node *key = node + 1;

		for (uint32_t i = 0; i < node->count; i++, key = json_next(key + 1))
			if (has_aggregate(key + 1))
				return true;
	}
	return false;
}

/*
 * Why rows of one SELECT read from several shards could not simply be put one after the other
 * (what would have to be merged), or NULL when they can.
 */
static const char *merge_needed(const struct json_node *sel)
{
	static const struct {
		const char *clause, *why;
	} clauses[] = {
		{ "sortClause", "ORDER BY" },
		{ "limitCount", "LIMIT" },
		{ "limitOffset", "OFFSET" },
		{ "groupClause", "GROUP BY" },
		{ "havingClause", "HAVING" },
		{ "distinctClause", "DISTINCT" },
		{ "windowClause", "WINDOW" },
		{ "larg", "UNION, INTERSECT or EXCEPT" },
		{ "lockingClause", "FOR UPDATE or FOR SHARE" },
	};

	for (size_t i = 0; i < sizeof(clauses) / sizeof(clauses[0]); i++)
		if (field(sel, clauses[i].clause))
			return clauses[i].why;
	if (has_aggregate(field(sel, "targetList")))
		return "aggregates or window functions";
	return NULL;
}

/* sel is a SelectStmt's body (set operations' arms are bodies without the node wrapper). */
static enum answer select_answer(struct walk *w, const struct json_node *sel, bool *writes)
{
	enum answer l, r;

	if (!sel)
		return ANSWER_NO_KEY;
	if (modifying_with(field(sel, "withClause"))) {
		*writes = true;
		return ANSWER_NO_KEY;
	}
	if (field(sel, "intoClause")) { /* SELECT INTO creates a table */
		*writes = true;
		return ANSWER_NO_KEY;
	}
	if (field(sel, "lockingClause"))
		*writes = true;
	if (field(sel, "larg") || field(sel, "rarg")) {
		l = select_answer(w, field(sel, "larg"), writes);
		r = select_answer(w, field(sel, "rarg"), writes);
		if (l == ANSWER_NO_KEY || r == ANSWER_NO_KEY)
			return ANSWER_NO_KEY;
		return l == ANSWER_KEYED || r == ANSWER_KEYED ? ANSWER_KEYED : ANSWER_NEUTRAL;
	}
	if (reads_no_table(sel))
		return ANSWER_NEUTRAL;
	return where_answer(w, field(sel, "whereClause"));
}

/* The key column's position in an INSERT's column list, or -1. */
static int key_position(const struct walk *w, const struct json_node *cols)
{
	for (size_t i = 0; i < list_len(cols); i++) {
		const struct json_node *target = node_as(list_at(cols, i), "ResTarget");
		const struct json_node *name = field(target, "name");

		if (str_is(name, w->column) && !field(target, "indirection"))
			return (int)i;
	}
	return -1;
}

/* Each VALUES row's value at the key column's position. */
static enum answer insert_answer(struct walk *w, const struct json_node *ins)
{
	const struct json_node *rows = field(node_as(field(ins, "selectStmt"), "SelectStmt"),
					     "valuesLists");
	int pos = key_position(w, field(ins, "cols")), mark = w->out->n_values;

	if (pos < 0 || !rows || modifying_with(field(ins, "withClause")))
		return ANSWER_NO_KEY;
	for (size_t i = 0; i < list_len(rows); i++) {
		const struct json_node *items = field(node_as(list_at(rows, i), "List"), "items");

		if ((size_t)pos >= list_len(items) || !value_of(w, list_at(items, (size_t)pos))) {
			drop_values(w, mark);
			return ANSWER_NO_KEY;
		}
	}
	return ANSWER_KEYED;
}

/* An UPDATE's SET names the key column: the row would belong to another shard. */
static bool assigns_key(const struct walk *w, const struct json_node *targets)
{
	return key_position(w, targets) >= 0;
}

/* ANALYZE among EXPLAIN's options: the statement runs. */
static bool explain_runs(const struct json_node *options)
{
	for (size_t i = 0; i < list_len(options); i++)
		if (str_is(field(node_as(list_at(options, i), "DefElem"), "defname"), "analyze"))
			return true;
	return false;
}

/* "name" with its double quotes doubled, after out's text (bounded). */
static void append_ident(char *out, size_t cap, const char *name)
{
	size_t n = strlen(out);

	if (n + 1 >= cap)
		return;
	out[n++] = '"';
	for (; *name && n + 3 < cap; name++) {
		if (*name == '"')
			out[n++] = '"';
		out[n++] = *name;
	}
	out[n++] = '"';
	out[n] = '\0';
}

/* An option's value as text: a word or string, a number; "true" for an option without one. */
static const char *option_text(const struct json_node *arg, char *buf, size_t len)
{
	const struct json_node *v;

	if (!arg)
		return "true";
	if ((v = string_node(arg)))
		return v->s;
	if ((v = field(node_as(arg, "Integer"), "ival")) || node_as(arg, "Integer")) {
		snprintf(buf, len, "%lld", v ? (long long)v->num : 0LL);
		return buf;
	}
	if ((v = node_as(arg, "Boolean")))
		return field(v, "boolval") ? "true" : "false";
	return NULL;
}

/* HEADER's value as COPY reads it: 0, 1, 2 (MATCH); -1 unreadable. */
static int header_value(const char *v)
{
	static const char *const yes[] = { "true", "on", "1", "yes", "t", "y" };
	static const char *const no[] = { "false", "off", "0", "no", "f", "n" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return strcasecmp(v, "match") == 0 ? 2 : -1;
}

/* Take one of COPY's options; false: a value that cannot be read (why in c->unsplittable). */
static bool copy_option(struct keyfind_copy *c, const char *name, const char *v)
{
	static const struct {
		const char *name;
		size_t off, len;
	} strings[] = {
		{ "format", offsetof(struct keyfind_copy, format), sizeof(c->format) },
		{ "delimiter", offsetof(struct keyfind_copy, delimiter), sizeof(c->delimiter) },
		{ "quote", offsetof(struct keyfind_copy, quote), sizeof(c->quote) },
		{ "escape", offsetof(struct keyfind_copy, escape), sizeof(c->escape) },
		{ "null", offsetof(struct keyfind_copy, null_string), sizeof(c->null_string) },
	};

	c->null_given |= strcmp(name, "null") == 0;
	if (strcmp(name, "header") == 0) {
		c->header = header_value(v);
		return c->header >= 0;
	}
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		if (strcmp(name, strings[i].name) == 0) {
			char *to = (char *)c + strings[i].off;

			if (strlen(v) >= strings[i].len)
				return false;
			strcpy(to, v);
			if (i == 0)
				for (; *to; to++)
					*to = lower(*to);
			return true;
		}
	}
	return true; /* encoding, force_*, freeze, ...: the servers apply them */
}

/* Describe a COPY table [(columns)] FROM STDIN [options] for splitting by key. */
static void describe_copy(struct walk *w, const struct json_node *copy)
{
	struct keyfind_copy *c = &w->out->copy;
	const struct json_node *rel = field(copy, "relation"), *schema = field(rel, "schemaname");
	const struct json_node *cols = field(copy, "attlist"), *opts = field(copy, "options");

	if (!rel || !is_string(field(rel, "relname")) || field(copy, "filename") ||
	    field(copy, "is_program"))
		return;
	c->from_stdin = true;
	if (is_string(schema)) {
		append_ident(c->table, sizeof(c->table), schema->s);
		strcat(c->table, ".");
	}
	append_ident(c->table, sizeof(c->table), field(rel, "relname")->s);
	c->n_columns = (int)list_len(cols);
	c->key_column = -1;
	for (size_t i = 0; i < list_len(cols); i++)
		if (str_is(string_node(list_at(cols, i)), w->column))
			c->key_column = (int)i;
	for (size_t i = 0; i < list_len(opts) && !c->unsplittable; i++) {
		const struct json_node *d = node_as(list_at(opts, i), "DefElem");
		const struct json_node *name = field(d, "defname");
		char buf[24];
		const char *v = option_text(field(d, "arg"), buf, sizeof(buf));

		if (is_string(name) && (!v || !copy_option(c, name->s, v)))
			c->unsplittable = "an option value too long or of an unknown kind";
	}
}

/* Statements that touch no table: they go wherever the rest of the string goes. */
static bool is_neutral(const char *type)
{
	static const char *const neutral[] = {
		"TransactionStmt", "VariableSetStmt",    "VariableShowStmt", "DiscardStmt",
		"DeallocateStmt",  "ConstraintsSetStmt", "ListenStmt",       "UnlistenStmt",
		"NotifyStmt",      "FetchStmt",          "ClosePortalStmt",
	};

	for (size_t i = 0; i < sizeof(neutral) / sizeof(neutral[0]); i++)
		if (strcmp(type, neutral[i]) == 0)
			return true;
	return false;
}

static enum answer stmt_answer(struct walk *w, const struct json_node *stmt, bool *writes)
{
	const struct json_node *b = NULL;
	const char *type = node_type(stmt, &b);
	bool runs;
	enum answer a;

	if (!type) {
		*writes = true;
		return ANSWER_NO_KEY;
	}
	if (strcmp(type, "SelectStmt") == 0) {
		w->out->merge_needed = merge_needed(b);
		return select_answer(w, b, writes);
	}
	if (strcmp(type, "ExplainStmt") == 0) {
		runs = false;
		a = stmt_answer(w, field(b, "query"), &runs);
		*writes |= runs && explain_runs(field(b, "options"));
		return a;
	}
	if (strcmp(type, "DeclareCursorStmt") == 0)
		return stmt_answer(w, field(b, "query"), writes);
	if (is_neutral(type))
		return ANSWER_NEUTRAL;
	if (strcmp(type, "CopyStmt") == 0) {
		*writes |= field(b, "is_from") != NULL;
		if (field(b, "is_from") && w->out->n_statements == 1)
			describe_copy(w, b);
		return ANSWER_NO_KEY;
	}
	*writes = true;
	if (strcmp(type, "InsertStmt") == 0)
		return insert_answer(w, b);
	if (modifying_with(field(b, "withClause")))
		return ANSWER_NO_KEY;
	if (strcmp(type, "UpdateStmt") == 0)
		return assigns_key(w, field(b, "targetList"))
			       ? ANSWER_NO_KEY
			       : where_answer(w, field(b, "whereClause"));
	if (strcmp(type, "DeleteStmt") == 0)
		return where_answer(w, field(b, "whereClause"));
	return ANSWER_NO_KEY; /* MERGE, DDL, CALL, DO, PREPARE, EXECUTE, ... */
}

/* Walk every statement of the tree, filling kf. */
static void walk_tree(struct walk *w, const struct json_node *tree)
{
	const struct json_node *stmts = field(tree, "stmts");
	size_t n = list_len(stmts);
	bool keyed = false, no_key = false;

	w->out->n_statements = (int)n;
	for (size_t i = 0; i < n && !w->oom; i++) {
		bool writes = false;
		enum answer a = stmt_answer(w, field(list_at(stmts, i), "stmt"), &writes);

		w->out->writes |= writes;
		keyed |= a == ANSWER_KEYED;
		no_key |= a == ANSWER_NO_KEY;
	}
	if (keyed && !no_key && !w->too_many)
		w->out->status = KEYFIND_KEYED;
	w->out->neutral = !keyed && !no_key && !w->oom;
}

bool keyfind_sql(const char *sql, size_t len, const char *column, struct keyfind *out)
{
	struct walk w = { .column = column, .column_len = strlen(column), .out = out };
	const char *nul = memchr(sql, '\0', len);
	PgQueryParseResult r;
	struct json_doc doc;
	char *text;

	memset(out, 0, sizeof(*out));
	out->status = KEYFIND_NO_KEY;
	if (nul) /* a query string ends at its NUL, as the server reads it */
		len = (size_t)(nul - sql);
	if (len > KEYFIND_MAX_SQL) {
		out->writes = true;
		return true;
	}
	text = malloc(len + 1);
	if (!text)
		return false;
	memcpy(text, sql, len);
	text[len] = '\0';
	w.sql = text;
	w.len = len;
	r = pg_query_parse(text);
	if (r.error) {
		out->status = KEYFIND_PARSE_ERROR;
		out->writes = true;
	} else if (!r.parse_tree) {
		w.oom = true;
	} else if (json_read(&doc, r.parse_tree, strlen(r.parse_tree), JSON_DEPTH, &w.oom)) {
		walk_tree(&w, doc.nodes);
	} else if (!w.oom) {
		out->writes = true; /* deeper than JSON_DEPTH: not read, NO_KEY */
	}
	if (r.parse_tree && !r.error)
		json_free(&doc);
	pg_query_free_parse_result(r);
	free(text);
	if (out->status != KEYFIND_KEYED || w.oom) {
		drop_values(&w, 0);
		free(out->values);
		out->values = NULL;
	}
	if (w.oom) {
		memset(out, 0, sizeof(*out));
		out->status = KEYFIND_NO_KEY;
	}
	return !w.oom;
}

void keyfind_free(struct keyfind *kf)
{
	for (int i = 0; i < kf->n_values; i++)
		free(kf->values[i].literal);
	free(kf->values);
	memset(kf, 0, sizeof(*kf));
}
