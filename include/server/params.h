/*
 * params: the server parameters a client can see and change, tracked per client and per server so
 * that, in transaction pooling, every client finds its own settings on whatever server it gets.
 */
#ifndef PGMUX_SERVER_PARAMS_H
#define PGMUX_SERVER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tracked_param {
	PARAM_CLIENT_ENCODING,
	PARAM_DATESTYLE,
	PARAM_TIMEZONE,
	PARAM_INTERVALSTYLE,
	PARAM_STANDARD_CONFORMING_STRINGS,
	PARAM_APPLICATION_NAME,
	PARAM_COUNT,
};

#define PARAM_VALUE_MAX 64

/*
 * The values set, back to back in one small allocation: every client and server has one, and
 * most values are a few bytes ("UTF8", "on"), so fixed arrays would cost far more memory.
 */
struct param_set {
	char *buf;                 /* each set value NUL-terminated; NULL when none is set */
	uint16_t off[PARAM_COUNT]; /* where value p starts in buf */
	uint8_t set;               /* bit p: value p is set */
};

/* Index of a tracked parameter by its name (case-insensitive), or -1. */
int param_lookup(const char *name);
/* Store value; false if it is too long to track (or out of memory): ps is unchanged. */
bool param_store(struct param_set *ps, enum tracked_param p, const char *value);
/* Value p, or NULL when it is not set. */
const char *param_get(const struct param_set *ps, enum tracked_param p);
void param_set_free(struct param_set *ps);
/*
 * Write "SET a='x';SET b='y';" for every parameter where want differs from have into buf.
 * Returns the number of parameters that differ (0: nothing to do).
 */
int param_diff_sql(const struct param_set *want, const struct param_set *have, char *buf,
		   size_t len);

/*
 * Session settings beyond the reported parameters (search_path, statement_timeout, role...): what
 * a client set (startup packet, SET, set_config) and what pgmux applied on a server. A value is
 * either SQL text from the client's SET, sent back as "SET name TO value", or raw (a startup
 * parameter, or what the server said the setting is), sent back through set_config().
 */
struct setting {
	char *name;
	char *value;
	bool raw;
};

struct settings {
	struct setting *items;
	size_t n, cap;
};

struct msgbuf;

bool settings_put(struct settings *s, const char *name, const char *value);
void settings_remove(struct settings *s, const char *name);
void settings_clear(struct settings *s);
void settings_free(struct settings *s);
bool settings_copy(struct settings *to, const struct settings *from);
/*
 * Is name a setting name PostgreSQL could have: identifiers ([A-Za-z_][A-Za-z0-9_$]*), dotted for
 * custom settings (myapp.tenant), under 64 bytes?
 */
bool settings_name_valid(const char *name);
/* A raw value, as the server itself shows it (startup parameters, current_setting()). */
bool settings_put_raw(struct settings *s, const char *name, const char *value);
/*
 * Append to out the statements that turn a server with have into one with want: RESET for names
 * only in have, SET for the rest that differ. Returns how many were appended.
 */
int settings_diff_sql(const struct settings *want, const struct settings *have, struct msgbuf *out);

/*
 * Append the NUL-terminated query that reads back a session's settings: those pg_settings lists
 * as set in the session, and the custom (dotted) names of known and touched, which it does not.
 * Answer rows: name, value (raw).
 */
void settings_read_sql(struct msgbuf *out, const struct settings *known,
		       const struct settings *touched);

#endif
