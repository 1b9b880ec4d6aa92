/*
 * patroni: Patroni's GET /cluster JSON into struct patroni_cluster (see topo/patroni.h).
 *
 * The body comes from the network: nothing in it is trusted. The JSON is parsed strictly (no
 * trailing garbage, valid UTF-8, bounded nesting); every field pgmux reads is type-checked, and a
 * field of the wrong type fails the whole parse rather than being guessed at, so a body pgmux
 * does not understand never becomes a topology. Fields pgmux does not read are not looked at.
 *
 * Strings that identify something (member name, host, api_url, switchover "from") are kept
 * whole or not at all: a cut host name would be a different host. Descriptive strings (state)
 * are cut to fit.
 */
#include "topo/patroni.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* How a looked-up field turned out. */
enum field {
	FIELD_ABSENT, /* missing, or JSON null (Patroni writes null for an unknown api_url) */
	FIELD_OK,
	FIELD_BAD, /* present with the wrong type */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* obj[key] when it has type t. json-c hands JSON null back as a NULL object. */
static enum field get_typed(struct json_object *obj, const char *key, enum json_type t,
			    struct json_object **v)
{
	if (!json_object_object_get_ex(obj, key, v) || !*v)
		return FIELD_ABSENT;
	return json_object_is_type(*v, t) ? FIELD_OK : FIELD_BAD;
}

/*
 * A string field as a C string. A string holding a NUL byte (JSON "\u0000") counts as the wrong
 * type: read as a C string it would silently mean its prefix.
 */
static enum field get_string(struct json_object *obj, const char *key, const char **s, size_t *len)
{
	struct json_object *v;
	enum field f = get_typed(obj, key, json_type_string, &v);

	if (f != FIELD_OK)
		return f;
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return memchr(*s, '\0', *len) ? FIELD_BAD : FIELD_OK;
}

/* An integer field within [min, max]; out of range counts as the wrong type. */
static enum field get_int(struct json_object *obj, const char *key, long long min, long long max,
			  long long *out)
{
	struct json_object *v;
	enum field f = get_typed(obj, key, json_type_int, &v);
	int64_t n;

	if (f != FIELD_OK)
		return f;
	/* json-c clamps numbers beyond int64 to its limits, which the range check then refuses. */
	n = json_object_get_int64(v);
	if (n < min || n > max)
		return FIELD_BAD;
	*out = n;
	return FIELD_OK;
}

/* Copy s whole into dst; false (dst left "") when it does not fit. */
static bool copy_whole(char *dst, size_t size, const char *s, size_t len)
{
	dst[0] = '\0';
	if (len >= size)
		return false;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return true;
}

/* Copy as much of s as fits, never splitting a UTF-8 character (log lines stay valid UTF-8). */
static void copy_cut(char *dst, size_t size, const char *s, size_t len)
{
	if (len >= size) {
		len = size - 1;
		/* s[len] is the first byte left out: if it continues a character, drop its start. */
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

static enum patroni_role role_from_name(const char *s)
{
	if (!strcmp(s, "leader"))
		return PATRONI_ROLE_LEADER;
	if (!strcmp(s, "standby_leader"))
		return PATRONI_ROLE_STANDBY_LEADER;
	if (!strcmp(s, "replica"))
		return PATRONI_ROLE_REPLICA;
	if (!strcmp(s, "sync_standby"))
		return PATRONI_ROLE_SYNC_STANDBY;
	/* Later Patroni versions add roles (quorum_standby): not ours to interpret. */
	return PATRONI_ROLE_OTHER;
}

const char *patroni_role_name(enum patroni_role r)
{
	switch (r) {
	case PATRONI_ROLE_LEADER:
		return "leader";
	case PATRONI_ROLE_STANDBY_LEADER:
		return "standby_leader";
	case PATRONI_ROLE_REPLICA:
		return "replica";
	case PATRONI_ROLE_SYNC_STANDBY:
		return "sync_standby";
	case PATRONI_ROLE_OTHER:
		break;
	}
	return "other";
}

/*
 * Whether a tag value is set. Patroni 3.0 only lists these tags when their value is truthy in
 * Python's sense; later versions read them as booleans ("false", "off", "no", "0" are false).
 * Taking both, a YAML string "false" is not a set tag.
 */
static bool tag_set(struct json_object *tags, const char *key)
{
	static const char *const false_words[] = { "false", "off", "no", "0", "" };
	struct json_object *v;

	if (!json_object_object_get_ex(tags, key, &v) || !v)
		return false;
	switch (json_object_get_type(v)) {
	case json_type_boolean:
		return json_object_get_boolean(v);
	case json_type_int:
		return json_object_get_int64(v) != 0;
	case json_type_double:
		return json_object_get_double(v) != 0;
	case json_type_string:
		for (size_t i = 0; i < sizeof(false_words) / sizeof(false_words[0]); i++)
			if (!strcasecmp(json_object_get_string(v), false_words[i]))
				return false;
		return true;
	default:
		return false;
	}
}

/* lag: a byte count, or "unknown" when Patroni has no WAL position for the member. */
static enum field get_lag(struct json_object *m, long long *lag)
{
	const char *s;
	size_t len;
	enum field f = get_int(m, "lag", 0, LLONG_MAX, lag);

	if (f != FIELD_BAD)
		return f;
	if (get_string(m, "lag", &s, &len) == FIELD_OK && !strcmp(s, "unknown")) {
		*lag = -1;
		return FIELD_OK;
	}
	return FIELD_BAD;
}

/* Whether a member's name and host let it be kept. */
enum identity {
	ID_KEEP,
	ID_SKIP, /* missing, empty or too long to hold whole */
	ID_BAD,  /* not a string */
};

/* name and host, both needed and kept whole (*which names a bad one). */
static enum identity member_identity(struct json_object *m, struct patroni_member *pm,
				     const char **which)
{
	const char *s;
	size_t len;
	enum field f;

	*which = "name";
	f = get_string(m, "name", &s, &len);
	if (f == FIELD_BAD)
		return ID_BAD;
	if (f == FIELD_ABSENT || !len || !copy_whole(pm->name, sizeof(pm->name), s, len))
		return ID_SKIP;
	*which = "host";
	f = get_string(m, "host", &s, &len);
	if (f == FIELD_BAD)
		return ID_BAD;
	if (f == FIELD_ABSENT || !len || !copy_whole(pm->host, sizeof(pm->host), s, len))
		return ID_SKIP;
	return ID_KEEP;
}

/* Name the field that is wrong; returns false for the caller to pass on. */
static bool wrong(const char **which, const char *field)
{
	*which = field;
	return false;
}

/* port, timeline and lag. False: one has the wrong type or range (*which names it). */
static bool member_numbers(struct json_object *m, struct patroni_member *pm, const char **which)
{
	long long n;
	enum field f;

	f = get_int(m, "port", 1, 65535, &n);
	if (f == FIELD_BAD)
		return wrong(which, "port");
	pm->port = f == FIELD_OK ? (int)n : 5432;
	/* Timelines start at 1; a stopped member has none. */
	f = get_int(m, "timeline", 0, INT_MAX, &n);
	if (f == FIELD_BAD)
		return wrong(which, "timeline");
	pm->timeline = f == FIELD_OK ? (int)n : -1;
	/* The leader has no lag: it is what the others lag behind. */
	pm->lag = -1;
	if (get_lag(m, &pm->lag) == FIELD_BAD)
		return wrong(which, "lag");
	return true;
}

/* role, state, api_url and tags. False: one has the wrong type (*which names it). */
static bool member_strings(struct json_object *m, struct patroni_member *pm, const char **which)
{
	struct json_object *tags;
	const char *s;
	size_t len;
	enum field f;

	f = get_string(m, "role", &s, &len);
	if (f == FIELD_BAD)
		return wrong(which, "role");
	pm->role = f == FIELD_OK ? role_from_name(s) : PATRONI_ROLE_OTHER;

	f = get_string(m, "state", &s, &len);
	if (f == FIELD_BAD)
		return wrong(which, "state");
	if (f == FIELD_OK)
		copy_cut(pm->state, sizeof(pm->state), s, len);

	f = get_string(m, "api_url", &s, &len);
	if (f == FIELD_BAD)
		return wrong(which, "api_url");
	/* A URL too long to hold is left unknown rather than cut into another URL. */
	if (f == FIELD_OK)
		copy_whole(pm->api_url, sizeof(pm->api_url), s, len);

	f = get_typed(m, "tags", json_type_object, &tags);
	if (f == FIELD_BAD)
		return wrong(which, "tags");
	if (f == FIELD_OK) {
		pm->noloadbalance = tag_set(tags, "noloadbalance");
		pm->nofailover = tag_set(tags, "nofailover");
	}
	return true;
}

static bool parse_members(struct json_object *members, struct patroni_cluster *out, char *err,
			  size_t errlen)
{
	size_t n = json_object_array_length(members);

	for (size_t i = 0; i < n && out->n_members < PATRONI_MAX_MEMBERS; i++) {
		struct json_object *m = json_object_array_get_idx(members, i);
		struct patroni_member *pm = &out->members[out->n_members];
		const char *which = NULL;

		if (!m || !json_object_is_type(m, json_type_object)) {
			set_err(err, errlen, "member %zu is not an object", i);
			return false;
		}
		memset(pm, 0, sizeof(*pm));
		switch (member_identity(m, pm, &which)) {
		case ID_BAD:
			set_err(err, errlen, "member %zu: bad %s", i, which);
			return false;
		case ID_SKIP:
			continue;
		case ID_KEEP:
			break;
		}
		if (!member_numbers(m, pm, &which) || !member_strings(m, pm, &which)) {
			/* Index only: the name is network input and err goes to the log. */
			set_err(err, errlen, "member %zu: bad %s", i, which);
			return false;
		}
		out->n_members++;
	}
	/* The slot after the last kept member may hold a skipped one's leftovers. */
	if (out->n_members < PATRONI_MAX_MEMBERS)
		memset(&out->members[out->n_members], 0, sizeof(out->members[0]));
	return true;
}

/* n decimal digits at *p. */
static bool digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return false;
		*v = *v * 10 + (**p - '0');
	}
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static long long days_since_epoch(int y, int m, int d)
{
	/* Count years from March, so that the leap day is the last day of its year. */
	long long yy = m <= 2 ? y - 1 : y;
	long long era = (yy >= 0 ? yy : yy - 399) / 400;
	long long yoe = yy - era * 400;
	long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	/* 719468: days from 0000-03-01 to 1970-01-01. */
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : mdays[m - 1];
}

/* "+HH:MM", "+HHMM", "+HH:MM:SS" (Python writes seconds when the offset has them) or "Z". */
static bool parse_offset(const char **p, int *offset)
{
	int sign, hh, mm = 0, ss = 0;

	*offset = 0;
	if (expect(p, 'Z'))
		return true;
	if (**p != '+' && **p != '-')
		return false;
	sign = *(*p)++ == '-' ? -1 : 1;
	if (!digits(p, 2, &hh))
		return false;
	if (**p) {
		bool colon = expect(p, ':');

		if (!digits(p, 2, &mm) || (colon && expect(p, ':') && !digits(p, 2, &ss)))
			return false;
	}
	if (hh > 23 || mm > 59 || ss > 59)
		return false;
	*offset = sign * (hh * 3600 + mm * 60 + ss);
	return true;
}

/*
 * "YYYY-MM-DDTHH:MM[:SS[.ffffff]]<offset>" (what Python's isoformat() writes for an aware time)
 * to unix seconds. An offset is required: without one the instant is not known.
 */
static bool parse_iso8601(const char *s, double *out)
{
	const char *p = s;
	int y, mo, d, h, mi, sec = 0, offset;
	double frac = 0;

	if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
	    !digits(&p, 2, &d) || (!expect(&p, 'T') && !expect(&p, ' ')) || !digits(&p, 2, &h) ||
	    !expect(&p, ':') || !digits(&p, 2, &mi))
		return false;
	if (expect(&p, ':')) {
		if (!digits(&p, 2, &sec))
			return false;
		if (expect(&p, '.') || expect(&p, ',')) {
			double scale = 0.1;

			if (*p < '0' || *p > '9')
				return false;
			for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
				frac += (*p - '0') * scale;
		}
	}
	if (!parse_offset(&p, &offset) || *p)
		return false;
	/* 60: a leap second, which unix time folds into the next one. */
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return false;
	*out = (double)(days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset) +
	       frac;
	return true;
}

/*
 * scheduled_switchover: {"at": ..., "from": ..., "to": ...}. A switchover whose time cannot be
 * read is still reported as scheduled (at 0): that one is coming is worth knowing on its own.
 */
static bool parse_switchover(struct json_object *root, struct patroni_cluster *out, char *err,
			     size_t errlen)
{
	struct json_object *sw;
	const char *s;
	size_t len;
	enum field f = get_typed(root, "scheduled_switchover", json_type_object, &sw);

	if (f == FIELD_ABSENT)
		return true;
	if (f == FIELD_BAD) {
		set_err(err, errlen, "scheduled_switchover is not an object");
		return false;
	}
	out->switchover_scheduled = true;
	if (get_string(sw, "at", &s, &len) == FIELD_OK && !parse_iso8601(s, &out->switchover_at))
		out->switchover_at = 0;
	f = get_string(sw, "from", &s, &len);
	if (f == FIELD_BAD) {
		set_err(err, errlen, "scheduled_switchover: from is not a string");
		return false;
	}
	if (f == FIELD_OK)
		copy_whole(out->switchover_from, sizeof(out->switchover_from), s, len);
	return true;
}

static bool parse_root(struct json_object *root, struct patroni_cluster *out, char *err,
		       size_t errlen)
{
	struct json_object *members;

	if (!root || !json_object_is_type(root, json_type_object)) {
		set_err(err, errlen, "not a JSON object");
		return false;
	}
	switch (get_typed(root, "members", json_type_array, &members)) {
	case FIELD_ABSENT:
		set_err(err, errlen, "no \"members\"");
		return false;
	case FIELD_BAD:
		set_err(err, errlen, "\"members\" is not an array");
		return false;
	case FIELD_OK:
		break;
	}
	return parse_members(members, out, err, errlen) && parse_switchover(root, out, err, errlen);
}

/* The whole body as one JSON value; NULL with err set when it is not. */
static struct json_object *parse_json(const char *json, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;

	if (len > INT_MAX) {
		set_err(err, errlen, "body too large");
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	/* Strict: trailing bytes after the value are an error too, not silently ignored. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, json, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/*
		 * The tokenizer cannot tell a bare number ended without being told the input did: a
		 * NUL byte says so. Anything else still open is then cut short.
		 */
		root = json_tokener_parse_ex(tok, "", 1);
		if (json_tokener_get_error(tok) != json_tokener_success)
			set_err(err, errlen, "truncated JSON");
		else if (!root || !json_object_is_type(root, json_type_object))
			set_err(err, errlen, "not a JSON object");
		json_object_put(root);
		json_tokener_free(tok);
		return NULL;
	}
	if (jerr == json_tokener_success && json_tokener_get_parse_end(tok) < len) {
		set_err(err, errlen, "trailing data after the JSON value");
		json_object_put(root);
		root = NULL;
	} else if (jerr != json_tokener_success) {
		set_err(err, errlen, "bad JSON at byte %zu: %s", json_tokener_get_parse_end(tok),
			json_tokener_error_desc(jerr));
	} else if (!root) {
		set_err(err, errlen, "not a JSON object");
	}
	json_tokener_free(tok);
	return root;
}

bool patroni_parse_cluster(const char *json, size_t len, struct patroni_cluster *out, char *err,
			   size_t errlen)
{
	struct json_object *root;
	bool ok;

	memset(out, 0, sizeof(*out));
	set_err(err, errlen, "%s", "");
	if (!json || !len) {
		set_err(err, errlen, "empty body");
		return false;
	}
	root = parse_json(json, len, err, errlen);
	if (!root)
		return false;
	ok = parse_root(root, out, err, errlen);
	json_object_put(root);
	if (!ok)
		memset(out, 0, sizeof(*out));
	return ok;
}
