/*
 * admin/parse: the admin console's command grammar (see admin/parse.h).
 *
 *   command  := SHOW item
 *             | SHOW SHARD FOR value [IN name]
 *             | SHOW ROUTE [IN name] FOR statement   (the rest of the text)
 *             | (PAUSE | RESUME | RECONNECT | WAIT_CLOSE) [name]
 *             | (KILL | DISABLE | ENABLE) name
 *             | KILL_CLIENT word
 *             | MOVE BUCKETS name buckets TO name | MOVE (CLEANUP | ABORT) word
 *             | RELOAD
 *             | SHUTDOWN [WAIT_FOR_CLIENTS | WAIT_FOR_SERVERS]
 *             | SET word ('=' | TO) value
 *   name     := word | "quoted identifier"     (a "" inside quotes is one ")
 *   value    := 'quoted string' | text up to ';' or the end, trimmed
 *   word     := [A-Za-z0-9_.$-]+
 *   buckets  := [0-9,-]+   ("0-99,200": checked by the caller against the map)
 *
 * followed by at most one ';'. Whitespace, "-- line" and C-style comments separate tokens.
 * A cursor walks the NUL-terminated text once; nothing is allocated and nothing is kept.
 */
#include "admin/parse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct cursor {
	const char *p;
	char *err;
	size_t errlen;
};

static const struct {
	const char *name;
	enum admin_verb verb;
} verbs[] = {
	{ "SHOW", ADMIN_SHOW },     { "PAUSE", ADMIN_PAUSE },
	{ "RESUME", ADMIN_RESUME }, { "RECONNECT", ADMIN_RECONNECT },
	{ "KILL", ADMIN_KILL },     { "DISABLE", ADMIN_DISABLE },
	{ "ENABLE", ADMIN_ENABLE }, { "WAIT_CLOSE", ADMIN_WAIT_CLOSE },
	{ "RELOAD", ADMIN_RELOAD }, { "SHUTDOWN", ADMIN_SHUTDOWN },
	{ "SET", ADMIN_SET },       { "KILL_CLIENT", ADMIN_KILL_CLIENT },
	{ "MOVE", ADMIN_MOVE },
};

/* Index = enum admin_show value. */
static const char *const show_names[] = {
	[ADMIN_SHOW_HELP] = "HELP",
	[ADMIN_SHOW_VERSION] = "VERSION",
	[ADMIN_SHOW_CONFIG] = "CONFIG",
	[ADMIN_SHOW_DATABASES] = "DATABASES",
	[ADMIN_SHOW_POOLS] = "POOLS",
	[ADMIN_SHOW_CLIENTS] = "CLIENTS",
	[ADMIN_SHOW_SERVERS] = "SERVERS",
	[ADMIN_SHOW_STATS] = "STATS",
	[ADMIN_SHOW_STATS_TOTALS] = "STATS_TOTALS",
	[ADMIN_SHOW_STATS_AVERAGES] = "STATS_AVERAGES",
	[ADMIN_SHOW_TOTALS] = "TOTALS",
	[ADMIN_SHOW_LISTS] = "LISTS",
	[ADMIN_SHOW_USERS] = "USERS",
	[ADMIN_SHOW_MEM] = "MEM",
	[ADMIN_SHOW_TOPOLOGY] = "TOPOLOGY",
	[ADMIN_SHOW_ROUTES] = "ROUTES",
	[ADMIN_SHOW_SHARDS] = "SHARDS",
	[ADMIN_SHOW_SHARD] = "SHARD",
	[ADMIN_SHOW_ROUTE] = "ROUTE",
	[ADMIN_SHOW_LATENCY] = "LATENCY",
	[ADMIN_SHOW_STATE] = "STATE",
	[ADMIN_SHOW_DNS_HOSTS] = "DNS_HOSTS",
	[ADMIN_SHOW_DNS_ZONES] = "DNS_ZONES",
	[ADMIN_SHOW_SOCKETS] = "SOCKETS",
	[ADMIN_SHOW_ACTIVE_SOCKETS] = "ACTIVE_SOCKETS",
	[ADMIN_SHOW_MOVES] = "MOVES",
	[ADMIN_SHOW_PEERS] = "PEERS",
	[ADMIN_SHOW_PEER_POOLS] = "PEER_POOLS",
};

/* PgBouncer commands and SHOW items that have no meaning here: a clearer error than "invalid". */
static const char *const unsupported_verbs[] = { "SUSPEND", "SELECT" };
static const char *const unsupported_shows[] = { "FDS" };

static enum admin_parse_status fail(struct cursor *cur, enum admin_parse_status st, const char *fmt,
				    ...) __attribute__((format(printf, 3, 4)));

static enum admin_parse_status fail(struct cursor *cur, enum admin_parse_status st, const char *fmt,
				    ...)
{
	va_list ap;

	if (cur->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(cur->err, cur->errlen, fmt, ap);
		va_end(ap);
	}
	return st;
}

static void skip_space(struct cursor *cur)
{
	for (;;) {
		while (isspace((unsigned char)*cur->p))
			cur->p++;
		if (cur->p[0] == '-' && cur->p[1] == '-') {
			while (*cur->p && *cur->p != '\n')
				cur->p++;
		} else if (cur->p[0] == '/' && cur->p[1] == '*') {
			const char *end = strstr(cur->p + 2, "*/");

			/* An unterminated comment runs to the end, as in PostgreSQL's lexer. */
			cur->p = end ? end + 2 : cur->p + strlen(cur->p);
		} else {
			return;
		}
	}
}

static bool is_word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == '$' || ch == '-';
}

/* Length of the word at the cursor (0: none); the cursor does not move. */
static size_t word_len(const struct cursor *cur)
{
	size_t n = 0;

	/* "--" starts a comment even right after a word. */
	while (is_word_char(cur->p[n]) && !(cur->p[n] == '-' && cur->p[n + 1] == '-'))
		n++;
	return n;
}

/* If the next word is kw (case-insensitive), consume it. */
static bool accept_keyword(struct cursor *cur, const char *kw)
{
	size_t n = word_len(cur);

	if (n != strlen(kw) || strncasecmp(cur->p, kw, n) != 0)
		return false;
	cur->p += n;
	skip_space(cur);
	return true;
}

/* At the end: nothing left but one optional ';' and whitespace. */
static bool at_end(struct cursor *cur)
{
	const char *save = cur->p;

	if (*cur->p == ';') {
		cur->p++;
		skip_space(cur);
	}
	if (*cur->p == '\0')
		return true;
	cur->p = save;
	return false;
}

/*
 * A name into out (outlen bytes): a word or a "quoted identifier". Returns false with err set
 * when a name is malformed or too long; *found tells whether there was one at all.
 */
static bool read_name(struct cursor *cur, const char *what, char *out, size_t outlen, bool *found,
		      enum admin_parse_status *st)
{
	size_t n = 0;

	*found = false;
	out[0] = '\0';
	if (*cur->p == '"') {
		const char *p = cur->p + 1;

		for (;;) {
			if (*p == '\0') {
				*st = fail(cur, ADMIN_PARSE_SYNTAX,
					   "invalid command: unterminated quoted %s", what);
				return false;
			}
			if (*p == '"') {
				if (p[1] != '"')
					break;
				p++;
			}
			if (n + 1 >= outlen) {
				*st = fail(cur, ADMIN_PARSE_SYNTAX,
					   "invalid command: %s is too long", what);
				return false;
			}
			out[n++] = *p++;
		}
		out[n] = '\0';
		if (n == 0) {
			*st = fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: empty %s", what);
			return false;
		}
		cur->p = p + 1;
	} else {
		n = word_len(cur);
		if (n == 0)
			return true;
		if (n >= outlen) {
			*st = fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: %s is too long",
				   what);
			return false;
		}
		memcpy(out, cur->p, n);
		out[n] = '\0';
		cur->p += n;
	}
	*found = true;
	skip_space(cur);
	return true;
}

static enum admin_parse_status parse_value(struct cursor *cur, struct admin_cmd *cmd);

/* IN name: the database a SHOW SHARD or SHOW ROUTE is about. */
static enum admin_parse_status parse_in_database(struct cursor *cur, struct admin_cmd *cmd)
{
	enum admin_parse_status st = ADMIN_PARSE_OK;
	bool found;

	if (!accept_keyword(cur, "IN"))
		return ADMIN_PARSE_OK;
	if (!read_name(cur, "database name", cmd->arg, sizeof(cmd->arg), &found, &st))
		return st;
	if (!found)
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: IN needs a database name");
	return ADMIN_PARSE_OK;
}

/* SHOW SHARD FOR key [IN name] */
static enum admin_parse_status parse_show_shard(struct cursor *cur, struct admin_cmd *cmd)
{
	enum admin_parse_status st;
	const char *start = cur->p;
	size_t n;

	if (!accept_keyword(cur, "FOR"))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: SHOW SHARD FOR key [IN database]");
	if (*cur->p == '\'') {
		st = parse_value(cur, cmd);
		if (st != ADMIN_PARSE_OK)
			return st;
	} else {
		start = cur->p;
		n = strcspn(start, " \t\r\n;");
		if (n == 0 || n >= sizeof(cmd->value))
			return fail(cur, ADMIN_PARSE_SYNTAX,
				    "invalid command: SHOW SHARD FOR needs a key");
		memcpy(cmd->value, start, n);
		cmd->value[n] = '\0';
		cur->p += n;
		skip_space(cur);
	}
	st = parse_in_database(cur, cmd);
	if (st == ADMIN_PARSE_OK && !at_end(cur))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: SHOW SHARD FOR key [IN database]");
	return st;
}

/* SHOW ROUTE [IN name] FOR statement: the statement is the rest of the text. */
static enum admin_parse_status parse_show_route(struct cursor *cur, struct admin_cmd *cmd)
{
	enum admin_parse_status st = parse_in_database(cur, cmd);
	size_t n;

	if (st != ADMIN_PARSE_OK)
		return st;
	if (!accept_keyword(cur, "FOR"))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: SHOW ROUTE [IN database] FOR statement");
	n = strlen(cur->p);
	while (n > 0 && (isspace((unsigned char)cur->p[n - 1]) || cur->p[n - 1] == ';'))
		n--;
	if (n == 0 || n >= sizeof(cmd->value))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: SHOW ROUTE FOR needs a "
			    "statement of at most %zu bytes",
			    sizeof(cmd->value) - 1);
	memcpy(cmd->value, cur->p, n);
	cmd->value[n] = '\0';
	cur->p += strlen(cur->p);
	return ADMIN_PARSE_OK;
}

static enum admin_parse_status parse_show(struct cursor *cur, struct admin_cmd *cmd)
{
	size_t n = word_len(cur);
	const char *item = cur->p;

	if (n == 0)
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: SHOW needs an item (try SHOW HELP)");
	for (size_t i = 0; i < ARRAY_LEN(show_names); i++) {
		if (strlen(show_names[i]) == n && strncasecmp(item, show_names[i], n) == 0) {
			cmd->show = (enum admin_show)i;
			cur->p += n;
			skip_space(cur);
			if (cmd->show == ADMIN_SHOW_SHARD)
				return parse_show_shard(cur, cmd);
			if (cmd->show == ADMIN_SHOW_ROUTE)
				return parse_show_route(cur, cmd);
			if (!at_end(cur))
				return fail(cur, ADMIN_PARSE_SYNTAX,
					    "invalid command: SHOW %s takes no arguments",
					    show_names[i]);
			return ADMIN_PARSE_OK;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(unsupported_shows); i++) {
		if (strlen(unsupported_shows[i]) == n &&
		    strncasecmp(item, unsupported_shows[i], n) == 0)
			return fail(cur, ADMIN_PARSE_UNSUPPORTED,
				    "SHOW %s is not supported by pgmux", unsupported_shows[i]);
	}
	return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: unknown SHOW item \"%.*s\"", (int)n,
		    item);
}

/* value := 'quoted string' | text up to ';' or the end, trimmed. */
static enum admin_parse_status parse_value(struct cursor *cur, struct admin_cmd *cmd)
{
	size_t n = 0;

	if (*cur->p == '\'') {
		const char *p = cur->p + 1;

		for (;;) {
			if (*p == '\0')
				return fail(cur, ADMIN_PARSE_SYNTAX,
					    "invalid command: unterminated quoted value");
			if (*p == '\'') {
				if (p[1] != '\'')
					break;
				p++;
			}
			if (n + 1 >= sizeof(cmd->value))
				return fail(cur, ADMIN_PARSE_SYNTAX,
					    "invalid command: value is too long");
			cmd->value[n++] = *p++;
		}
		cmd->value[n] = '\0';
		cur->p = p + 1;
		skip_space(cur);
		return ADMIN_PARSE_OK;
	}

	const char *start = cur->p, *end = strchr(start, ';');

	if (!end)
		end = start + strlen(start);
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	if (end == start)
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: SET needs a value");
	n = (size_t)(end - start);
	if (n >= sizeof(cmd->value))
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: value is too long");
	memcpy(cmd->value, start, n);
	cmd->value[n] = '\0';
	cur->p = end;
	skip_space(cur);
	return ADMIN_PARSE_OK;
}

static enum admin_parse_status parse_set(struct cursor *cur, struct admin_cmd *cmd)
{
	size_t n = word_len(cur);
	enum admin_parse_status st;

	if (n == 0)
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: SET needs key = value");
	if (n >= sizeof(cmd->arg))
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: key is too long");
	memcpy(cmd->arg, cur->p, n);
	cmd->arg[n] = '\0';
	cur->p += n;
	skip_space(cur);
	if (*cur->p == '=') {
		cur->p++;
		skip_space(cur);
	} else if (!accept_keyword(cur, "TO")) {
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: SET needs key = value");
	}
	st = parse_value(cur, cmd);
	if (st != ADMIN_PARSE_OK)
		return st;
	if (!at_end(cur))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: unexpected text after the value");
	return ADMIN_PARSE_OK;
}

/* The optional or required database name of PAUSE, KILL and the others. */
static enum admin_parse_status parse_db_arg(struct cursor *cur, struct admin_cmd *cmd,
					    const char *verb, bool required)
{
	enum admin_parse_status st = ADMIN_PARSE_OK;
	bool found;

	if (!read_name(cur, "database name", cmd->arg, sizeof(cmd->arg), &found, &st))
		return st;
	if (!found) {
		if (!at_end(cur))
			return fail(cur, ADMIN_PARSE_SYNTAX,
				    "invalid command: bad database name after %s", verb);
		if (required)
			return fail(cur, ADMIN_PARSE_SYNTAX,
				    "invalid command: %s needs a database name", verb);
		return ADMIN_PARSE_OK;
	}
	if (!at_end(cur))
		return fail(cur, ADMIN_PARSE_SYNTAX, "invalid command: %s takes %s database name",
			    verb, required ? "one" : "at most one");
	return ADMIN_PARSE_OK;
}

/* KILL_CLIENT id: one word, checked against the clients by the caller. */
static enum admin_parse_status parse_client_id(struct cursor *cur, struct admin_cmd *cmd)
{
	size_t n = word_len(cur);

	if (n == 0 || n >= sizeof(cmd->arg))
		return fail(
			cur, ADMIN_PARSE_SYNTAX,
			"invalid command: KILL_CLIENT needs a client id (the ptr of SHOW CLIENTS)");
	memcpy(cmd->arg, cur->p, n);
	cmd->arg[n] = '\0';
	cur->p += n;
	skip_space(cur);
	if (!at_end(cur))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: KILL_CLIENT takes one client id");
	return ADMIN_PARSE_OK;
}

/* A word of n bytes at most into out, or false. */
static bool take_word(struct cursor *cur, char *out, size_t outlen, bool buckets)
{
	size_t n = 0;

	while (buckets ? (isdigit((unsigned char)cur->p[n]) || cur->p[n] == ',' || cur->p[n] == '-')
		       : is_word_char(cur->p[n]))
		n++;
	if (n == 0 || n >= outlen)
		return false;
	memcpy(out, cur->p, n);
	out[n] = '\0';
	cur->p += n;
	skip_space(cur);
	return true;
}

/* MOVE BUCKETS set buckets TO shard | MOVE CLEANUP id | MOVE ABORT id */
static enum admin_parse_status parse_move(struct cursor *cur, struct admin_cmd *cmd)
{
	enum admin_parse_status st;
	bool found, aborting = accept_keyword(cur, "ABORT");

	if (aborting || accept_keyword(cur, "CLEANUP")) {
		cmd->verb = aborting ? ADMIN_MOVE_ABORT : ADMIN_MOVE_CLEANUP;
		if (!take_word(cur, cmd->arg, sizeof(cmd->arg), false) || !at_end(cur))
			return fail(cur, ADMIN_PARSE_SYNTAX,
				    "invalid command: MOVE %s takes one move id",
				    cmd->verb == ADMIN_MOVE_ABORT ? "ABORT" : "CLEANUP");
		return ADMIN_PARSE_OK;
	}
	if (!accept_keyword(cur, "BUCKETS"))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: MOVE BUCKETS set buckets TO "
			    "shard, MOVE CLEANUP id or MOVE ABORT id");
	skip_space(cur);
	if (!read_name(cur, "shards section", cmd->arg, sizeof(cmd->arg), &found, &st))
		return st;
	skip_space(cur);
	if (!found || !take_word(cur, cmd->value, sizeof(cmd->value), true) ||
	    !accept_keyword(cur, "TO") ||
	    (skip_space(cur),
	     !read_name(cur, "shard", cmd->target, sizeof(cmd->target), &found, &st)) ||
	    !found || (skip_space(cur), !at_end(cur)))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: MOVE BUCKETS set buckets TO "
			    "shard (buckets as 0-99,200)");
	return ADMIN_PARSE_OK;
}

/* SHUTDOWN [WAIT_FOR_CLIENTS | WAIT_FOR_SERVERS] */
static enum admin_parse_status parse_shutdown(struct cursor *cur, struct admin_cmd *cmd)
{
	if (accept_keyword(cur, "WAIT_FOR_SERVERS")) {
		cmd->shutdown = ADMIN_SHUTDOWN_WAIT_FOR_SERVERS;
		snprintf(cmd->arg, sizeof(cmd->arg), "WAIT_FOR_SERVERS");
	} else if (accept_keyword(cur, "WAIT_FOR_CLIENTS")) {
		snprintf(cmd->arg, sizeof(cmd->arg), "WAIT_FOR_CLIENTS");
	}
	if (!at_end(cur))
		return fail(cur, ADMIN_PARSE_SYNTAX,
			    "invalid command: SHUTDOWN [WAIT_FOR_CLIENTS | WAIT_FOR_SERVERS]");
	return ADMIN_PARSE_OK;
}

enum admin_parse_status admin_parse(const char *sql, struct admin_cmd *cmd, char *err,
				    size_t errlen)
{
	struct cursor cur = { .p = sql, .err = err, .errlen = errlen };
	const char *verb;
	size_t n;

	memset(cmd, 0, sizeof(*cmd));
	if (errlen > 0)
		err[0] = '\0';
	skip_space(&cur);
	if (at_end(&cur)) {
		cmd->verb = ADMIN_EMPTY;
		return ADMIN_PARSE_OK;
	}
	verb = cur.p;
	n = word_len(&cur);
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
		if (strlen(verbs[i].name) != n || strncasecmp(verb, verbs[i].name, n) != 0)
			continue;
		cmd->verb = verbs[i].verb;
		cur.p += n;
		skip_space(&cur);
		switch (cmd->verb) {
		case ADMIN_SHOW:
			return parse_show(&cur, cmd);
		case ADMIN_SET:
			return parse_set(&cur, cmd);
		case ADMIN_PAUSE:
		case ADMIN_RESUME:
		case ADMIN_RECONNECT:
		case ADMIN_WAIT_CLOSE:
			return parse_db_arg(&cur, cmd, verbs[i].name, false);
		case ADMIN_KILL:
		case ADMIN_DISABLE:
		case ADMIN_ENABLE:
			return parse_db_arg(&cur, cmd, verbs[i].name, true);
		case ADMIN_KILL_CLIENT:
			return parse_client_id(&cur, cmd);
		case ADMIN_MOVE:
		case ADMIN_MOVE_CLEANUP:
		case ADMIN_MOVE_ABORT:
			return parse_move(&cur, cmd);
		case ADMIN_SHUTDOWN:
			return parse_shutdown(&cur, cmd);
		case ADMIN_RELOAD:
		case ADMIN_EMPTY:
			if (!at_end(&cur))
				return fail(&cur, ADMIN_PARSE_SYNTAX,
					    "invalid command: %s takes no arguments",
					    verbs[i].name);
			return ADMIN_PARSE_OK;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(unsupported_verbs); i++) {
		if (strlen(unsupported_verbs[i]) == n &&
		    strncasecmp(verb, unsupported_verbs[i], n) == 0)
			return fail(&cur, ADMIN_PARSE_UNSUPPORTED, "%s is not supported by pgmux",
				    unsupported_verbs[i]);
	}
	return fail(&cur, ADMIN_PARSE_SYNTAX, "invalid command");
}

const char *admin_verb_tag(enum admin_verb verb)
{
	if (verb == ADMIN_MOVE_CLEANUP || verb == ADMIN_MOVE_ABORT)
		verb = ADMIN_MOVE;
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
		if (verbs[i].verb == verb)
			return verbs[i].name;
	}
	return "";
}

const char *admin_show_name(enum admin_show what)
{
	return (size_t)what < ARRAY_LEN(show_names) ? show_names[what] : "";
}
