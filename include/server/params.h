/*
 * params: the server parameters a client can see and change, tracked per client and per server so
 * that, in transaction pooling, every client finds its own settings on whatever server it gets.
 */
#ifndef PGMUX_SERVER_PARAMS_H
#define PGMUX_SERVER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

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

struct param_set {
	char value[PARAM_COUNT][PARAM_VALUE_MAX];
	bool set[PARAM_COUNT];
};

/* Index of a tracked parameter by its name (case-insensitive), or -1. */
int param_lookup(const char *name);
const char *param_name(enum tracked_param p);
/* Store value; false if it is too long to track. */
bool param_store(struct param_set *ps, enum tracked_param p, const char *value);
/*
 * Write "SET a='x';SET b='y';" for every parameter where want differs from have into buf.
 * Returns the number of parameters that differ (0: nothing to do).
 */
int param_diff_sql(const struct param_set *want, const struct param_set *have, char *buf, size_t len);

#endif
