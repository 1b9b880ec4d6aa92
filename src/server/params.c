/*
 * params: tracked server parameters (see server/params.h).
 */
#include "server/params.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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

const char *param_name(enum tracked_param p)
{
	return names[p];
}

bool param_store(struct param_set *ps, enum tracked_param p, const char *value)
{
	size_t n = strlen(value);

	if (n >= PARAM_VALUE_MAX)
		return false;
	memcpy(ps->value[p], value, n + 1);
	ps->set[p] = true;
	return true;
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

int param_diff_sql(const struct param_set *want, const struct param_set *have, char *buf, size_t len)
{
	size_t pos = 0;
	int n = 0;

	buf[0] = '\0';
	for (int i = 0; i < PARAM_COUNT; i++) {
		int w;

		if (!want->set[i] || (have->set[i] && strcmp(want->value[i], have->value[i]) == 0))
			continue;
		w = snprintf(buf + pos, len - pos, "SET %s=", names[i]);
		if (w < 0 || (size_t)w >= len - pos)
			return -1;
		pos += (size_t)w;
		if (!append_literal(buf, len, &pos, want->value[i]) || pos + 2 >= len)
			return -1;
		buf[pos++] = ';';
		buf[pos] = '\0';
		n++;
	}
	return n;
}
