/*
 * config/config.c: reading pgmux.ini into a struct config, checking it, and the key-by-key
 * access that admin SHOW CONFIG / SET need.
 *
 * inih splits the file into sections and "name = value" lines; everything else is ours. The
 * file is read through our own line reader so that:
 *   - error messages carry the line number ("FILE:LINE: key: what is wrong");
 *   - leading blanks are dropped, so an indented line is an ordinary line (as in PgBouncer)
 *     and never an inih continuation line that would silently extend the previous value;
 *   - ';' and '#' start a comment only at the start of a line (as in PgBouncer): the value is
 *     taken from the whole line we kept, so inih's inline comments cannot cut a password or a
 *     query short, and lines longer than inih's line buffer keep their whole value.
 *
 * Invariants: a load fills a fresh struct and either returns it valid and complete or frees
 * it; strings in a struct config are never NULL; only the first error is reported.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config/config.h"

#include "auth/hba.h"
#include "auth/userlist.h"
#include "shard/etcd.h"
#include "shard/map.h"
#include "shard/mapfile.h"

/* PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes. */
#define NAME_MAX_LEN 63
#define ENTRY_KEY_MAX 64

#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))

/* Where errors go, and how they are prefixed. */
struct report {
	char *buf;
	size_t len;
	const char *path; /* NULL: the value did not come from a file (admin SET) */
	bool failed;
};

/* The line each setting came from, so whole-config checks can point at the culprit. */
struct origins {
	int *keys;       /* per config_keys[] row; 0 = default */
	int *dbs;        /* per cfg->dbs[] */
	int *users;      /* per cfg->users[] */
	int *clusters;   /* per cfg->clusters[]: the section's header line */
	int *shard_sets; /* per cfg->shard_sets[]: the section's header line */
	int *peers;      /* per cfg->peers[] */
	int n_dbs;       /* entries read from the file; the shard entries added come after them */
};

struct parse_state {
	struct config *cfg;
	struct report *report;
	struct origins origins;
	FILE *file;
	char *line; /* the current line as read, whole */
	size_t line_cap;
	char *text; /* the current line without its leading blanks */
	int lineno;
	int fail_line; /* the line of the first error the handler reported */
};

union value {
	int i;
	bool b;
	double d;
	char *s;
};

enum section {
	SECTION_NONE,
	SECTION_MAIN,
	SECTION_DATABASES,
	SECTION_USERS,
	SECTION_CLUSTER, /* [cluster.NAME] */
	SECTION_SHARDS,  /* [shards.NAME] */
	SECTION_PEERS,
	SECTION_UNKNOWN,
};

#define CLUSTER_PREFIX "cluster."
#define SHARDS_PREFIX "shards."
#define SHARD_LINE_PREFIX "shard."

/* --- errors --- */

static PRINTF_LIKE(4, 0) bool report_va(struct report *r, int line, const char *key,
					const char *fmt, va_list ap)
{
	size_t used = 0;
	int n = 0;

	if (r->failed || !r->buf || r->len == 0) {
		r->failed = true;
		return false;
	}
	r->failed = true;
	if (r->path && line > 0)
		n = snprintf(r->buf, r->len, "%s:%d: ", r->path, line);
	else if (r->path)
		n = snprintf(r->buf, r->len, "%s: ", r->path);
	if (n > 0)
		used = (size_t)n < r->len ? (size_t)n : r->len - 1;
	if (key) {
		n = snprintf(r->buf + used, r->len - used, "%s: ", key);
		if (n > 0)
			used += (size_t)n < r->len - used ? (size_t)n : r->len - used - 1;
	}
	vsnprintf(r->buf + used, r->len - used, fmt, ap);
	return false;
}

/* Record the first error; always returns false so callers can `return report_error(...)`. */
static PRINTF_LIKE(4, 5) bool report_error(struct report *r, int line, const char *key,
					   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_va(r, line, key, fmt, ap);
	va_end(ap);
	return false;
}

static PRINTF_LIKE(3, 4) bool parse_fail(struct parse_state *ps, const char *key, const char *fmt,
					 ...)
{
	va_list ap;

	if (ps->report->failed)
		return false;
	ps->fail_line = ps->lineno;
	va_start(ap, fmt);
	report_va(ps->report, ps->lineno, key, fmt, ap);
	va_end(ap);
	return false;
}

/* --- values --- */

static void *field_of(void *base, const struct config_key *key)
{
	return (char *)base + key->offset;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static bool check_range(const struct config_key *key, double v, const char *text, char *why,
			size_t whylen)
{
	if (v >= key->min_value && v <= key->max_value)
		return true;
	if (key->type == CFG_MODE)
		snprintf(why, whylen, "'%s' is out of range (0%o..0%o)", text,
			 (unsigned)key->min_value, (unsigned)key->max_value);
	else
		snprintf(why, whylen, "'%s' is out of range (%.15g..%.15g)", text, key->min_value,
			 key->max_value);
	return false;
}

static bool parse_int(const struct config_key *key, const char *text, int base, int *out, char *why,
		      size_t whylen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, base);
	if (*text == '\0' || *end != '\0' || isspace((unsigned char)*text)) {
		snprintf(why, whylen,
			 base == 8 ? "'%s' is not an octal mode like 0700"
				   : "'%s' is not an integer",
			 text);
		return false;
	}
	/* strtol clamps to LONG_MIN/LONG_MAX on overflow, which no key's range includes. */
	if (!check_range(key, (double)v, text, why, whylen))
		return false;
	*out = (int)v;
	return true;
}

static bool parse_bool(const char *text, bool *out, char *why, size_t whylen)
{
	static const char *const yes[] = { "1", "yes", "on", "true" };
	static const char *const no[] = { "0", "no", "off", "false" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	snprintf(why, whylen, "'%s' is not a boolean (use 1/0, yes/no, on/off, true/false)", text);
	return false;
}

/* Seconds: a plain decimal number; strtod's hex floats, inf and nan are typos here. */
static bool parse_seconds(const struct config_key *key, const char *text, double *out, char *why,
			  size_t whylen)
{
	char *end;
	double v;

	if (*text == '\0' || strspn(text, "0123456789.eE+-") != strlen(text))
		goto bad;
	v = strtod(text, &end);
	if (*end != '\0' || !isfinite(v))
		goto bad;
	if (!check_range(key, v, text, why, whylen))
		return false;
	*out = v;
	return true;
bad:
	snprintf(why, whylen, "'%s' is not a number of seconds", text);
	return false;
}

/* The name an alias of an enum value stands for, or text itself when it is no alias. */
static const char *enum_unalias(const struct config_key *key, const char *text)
{
	for (int i = 0; key->enum_aliases && key->enum_aliases[i]; i += 2) {
		if (strcasecmp(text, key->enum_aliases[i]) == 0)
			return key->enum_aliases[i + 1];
	}
	return text;
}

static bool parse_enum(const struct config_key *key, const char *text, int *out, char *why,
		       size_t whylen)
{
	const char *name = enum_unalias(key, text);
	size_t used;

	for (int i = 0; key->enum_names[i]; i++) {
		if (strcasecmp(name, key->enum_names[i]) == 0) {
			*out = i;
			return true;
		}
	}
	used = (size_t)snprintf(why, whylen, "'%s' is not one of:", text);
	for (int i = 0; key->enum_names[i] && used < whylen; i++)
		used += (size_t)snprintf(why + used, whylen - used, " %s", key->enum_names[i]);
	return false;
}

/* Bytes: a number with an optional unit (B, kB, MB, GB, TB; powers of 1024, as PostgreSQL). */
static bool parse_size(const struct config_key *key, const char *text, double *out, char *why,
		       size_t whylen)
{
	static const struct {
		const char *unit;
		double factor;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "kB", 1024.0 },
		{ "MB", 1048576.0 },
		{ "GB", 1073741824.0 },
		{ "TB", 1099511627776.0 },
	};
	char *end;
	double v;

	if (!isdigit((unsigned char)*text))
		goto bad;
	v = strtod(text, &end);
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) == 0) {
			v *= units[i].factor;
			if (!isfinite(v) || !check_range(key, v, text, why, whylen))
				return false;
			*out = v;
			return true;
		}
	}
bad:
	snprintf(why, whylen, "'%s' is not a size (a number with an optional unit: kB, MB, GB)",
		 text);
	return false;
}

/* Text to value under key's type and range. On success a CFG_STRING value is a new copy. */
static bool parse_value(const struct config_key *key, const char *text, union value *out, char *why,
			size_t whylen)
{
	switch (key->type) {
	case CFG_INT:
		return parse_int(key, text, 10, &out->i, why, whylen);
	case CFG_MODE:
		return parse_int(key, text, 8, &out->i, why, whylen);
	case CFG_BOOL:
		return parse_bool(text, &out->b, why, whylen);
	case CFG_DOUBLE:
		return parse_seconds(key, text, &out->d, why, whylen);
	case CFG_SIZE:
		return parse_size(key, text, &out->d, why, whylen);
	case CFG_ENUM:
		return parse_enum(key, text, &out->i, why, whylen);
	case CFG_STRING:
		out->s = strdup(text);
		if (!out->s)
			snprintf(why, whylen, "out of memory");
		return out->s != NULL;
	}
	snprintf(why, whylen, "key has an unknown type");
	return false;
}

/* Store v into the field; the field's old string, if any, is the caller's to free. */
static void put_value(void *base, const struct config_key *key, union value v)
{
	void *f = field_of(base, key);

	switch (key->type) {
	case CFG_INT:
	case CFG_MODE:
	case CFG_ENUM:
		*(int *)f = v.i;
		break;
	case CFG_BOOL:
		*(bool *)f = v.b;
		break;
	case CFG_DOUBLE:
	case CFG_SIZE:
		*(double *)f = v.d;
		break;
	case CFG_STRING:
		*(char **)f = v.s;
		break;
	}
}

static void replace_value(void *base, const struct config_key *key, union value v)
{
	if (key->type == CFG_STRING)
		free(*(char **)field_of(base, key));
	put_value(base, key, v);
}

static void free_strings(void *base, const struct config_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (keys[i].type == CFG_STRING)
			free(*(char **)field_of(base, &keys[i]));
	}
}

/*
 * Give every field of an entry or of the config its starting value: the row's default, or
 * "unset" (-1 / "") where the row has none. Returns false only when out of memory.
 */
static bool init_fields(void *base, const struct config_key *keys, size_t n)
{
	char why[128];
	union value v;

	for (size_t i = 0; i < n; i++) {
		const char *def = keys[i].default_value;

		if (def) {
			if (!parse_value(&keys[i], def, &v, why, sizeof(why)))
				return false;
		} else if (keys[i].type == CFG_STRING) {
			v.s = strdup("");
			if (!v.s)
				return false;
		} else if (keys[i].type == CFG_DOUBLE || keys[i].type == CFG_SIZE) {
			v.d = -1;
		} else if (keys[i].type == CFG_BOOL) {
			v.b = false;
		} else {
			v.i = -1;
		}
		put_value(base, &keys[i], v);
	}
	return true;
}

static const struct config_key *find_in(const struct config_key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* The name of an enum key's value, or "unknown" for a value outside the list. */
static const char *enum_name(const struct config_key *key, int value)
{
	for (int i = 0; key->enum_names[i]; i++) {
		if (i == value)
			return key->enum_names[i];
	}
	return "unknown";
}

/* --- the struct --- */

const struct config_key *config_find_key(const char *name)
{
	return find_in(config_keys, config_key_count, name);
}

struct config *config_new_default(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->config_file = strdup("");
	if (!cfg->config_file || !init_fields(cfg, config_keys, config_key_count)) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

static void free_db(struct db_entry *db)
{
	free(db->name);
	free(db->shard_parent);
	free_strings(db, config_db_keys, config_db_key_count);
}

void config_shard_map_unref(struct loaded_shard_map *l)
{
	if (l && --l->refs == 0) {
		shard_map_free(l->map);
		free(l->shard_of);
		free(l);
	}
}

static void free_shard_set(struct shards_entry *set)
{
	free(set->name);
	free_strings(set, config_shards_keys, config_shards_key_count);
	for (int i = 0; i < set->n_shards; i++) {
		free(set->shards[i].name);
		free(set->shards[i].cluster);
	}
	free(set->shards);
	config_shard_map_unref(set->loaded);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->config_file);
	hba_free(cfg->hba);
	userlist_free(cfg->userlist);
	free_strings(cfg, config_keys, config_key_count);
	for (int i = 0; i < cfg->n_dbs; i++)
		free_db(&cfg->dbs[i]);
	free(cfg->dbs);
	for (int i = 0; i < cfg->n_users; i++)
		free(cfg->users[i].name);
	free(cfg->users);
	for (int i = 0; i < cfg->n_clusters; i++) {
		free(cfg->clusters[i].name);
		free_strings(&cfg->clusters[i], config_cluster_keys, config_cluster_key_count);
	}
	free(cfg->clusters);
	for (int i = 0; i < cfg->n_shard_sets; i++)
		free_shard_set(&cfg->shard_sets[i]);
	free(cfg->shard_sets);
	for (int i = 0; i < cfg->n_peers; i++)
		free_strings(&cfg->peers[i], config_peer_keys, config_peer_key_count);
	free(cfg->peers);
	for (int i = 0; i < cfg->n_warnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	free(cfg);
}

/*
 * Point every string field of dst (a byte copy of src) at a copy of src's. Out of memory: the
 * fields not copied are NULL, so freeing dst frees only its own, and false.
 */
static bool copy_strings(void *dst, const void *src, const struct config_key *keys, size_t n)
{
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		char **d = field_of(dst, &keys[i]);

		if (keys[i].type != CFG_STRING)
			continue;
		*d = ok ? strdup(*(char *const *)((const char *)src + keys[i].offset)) : NULL;
		ok = ok && *d;
	}
	return ok;
}

static bool clone_dbs(struct config *c, const struct config *src)
{
	c->dbs = calloc((size_t)src->n_dbs + 1, sizeof(*c->dbs));
	if (!c->dbs)
		return false;
	for (int i = 0; i < src->n_dbs; i++) {
		struct db_entry *db = &c->dbs[i];

		*db = src->dbs[i];
		db->name = strdup(src->dbs[i].name);
		db->shard_parent = strdup(src->dbs[i].shard_parent);
		if (!copy_strings(db, &src->dbs[i], config_db_keys, config_db_key_count) ||
		    !db->name || !db->shard_parent) {
			free_db(db);
			return false;
		}
		c->n_dbs++;
	}
	return true;
}

static bool clone_users(struct config *c, const struct config *src)
{
	c->users = calloc((size_t)src->n_users + 1, sizeof(*c->users));
	if (!c->users)
		return false;
	for (int i = 0; i < src->n_users; i++) {
		c->users[i] = src->users[i];
		c->users[i].name = strdup(src->users[i].name);
		if (!c->users[i].name)
			return false;
		c->n_users++;
	}
	return true;
}

static bool clone_clusters(struct config *c, const struct config *src)
{
	c->clusters = calloc((size_t)src->n_clusters + 1, sizeof(*c->clusters));
	if (!c->clusters)
		return false;
	for (int i = 0; i < src->n_clusters; i++) {
		struct cluster_entry *cl = &c->clusters[i];

		*cl = src->clusters[i];
		cl->name = strdup(src->clusters[i].name);
		if (!copy_strings(cl, &src->clusters[i], config_cluster_keys,
				  config_cluster_key_count) ||
		    !cl->name) {
			free(cl->name);
			free_strings(cl, config_cluster_keys, config_cluster_key_count);
			return false;
		}
		c->n_clusters++;
	}
	return true;
}

static bool clone_shard_set(struct shards_entry *set, const struct shards_entry *src)
{
	*set = *src;
	set->name = strdup(src->name);
	set->shards = calloc((size_t)src->n_shards + 1, sizeof(*set->shards));
	set->n_shards = 0;
	set->loaded = src->loaded;
	if (set->loaded)
		set->loaded->refs++;
	if (!copy_strings(set, src, config_shards_keys, config_shards_key_count) || !set->name ||
	    !set->shards)
		return false;
	for (int i = 0; i < src->n_shards; i++) {
		struct shard_entry *sh = &set->shards[set->n_shards++];

		sh->name = strdup(src->shards[i].name);
		sh->cluster = strdup(src->shards[i].cluster);
		if (!sh->name || !sh->cluster)
			return false;
	}
	return true;
}

static bool clone_shard_sets(struct config *c, const struct config *src)
{
	c->shard_sets = calloc((size_t)src->n_shard_sets + 1, sizeof(*c->shard_sets));
	if (!c->shard_sets)
		return false;
	for (int i = 0; i < src->n_shard_sets; i++) {
		/* Counted first: a half-copied section is freed with the clone. */
		c->n_shard_sets++;
		if (!clone_shard_set(&c->shard_sets[i], &src->shard_sets[i]))
			return false;
	}
	return true;
}

static bool clone_peers(struct config *c, const struct config *src)
{
	c->peers = calloc((size_t)src->n_peers + 1, sizeof(*c->peers));
	if (!c->peers)
		return false;
	for (int i = 0; i < src->n_peers; i++) {
		c->peers[i] = src->peers[i];
		if (!copy_strings(&c->peers[i], &src->peers[i], config_peer_keys,
				  config_peer_key_count)) {
			free_strings(&c->peers[i], config_peer_keys, config_peer_key_count);
			return false;
		}
		c->n_peers++;
	}
	return true;
}

struct config *config_clone(const struct config *src)
{
	struct config *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	/* Scalars by value; every pointer is made the clone's own below, or NULL until then. */
	*c = *src;
	c->dbs = NULL;
	c->users = NULL;
	c->clusters = NULL;
	c->shard_sets = NULL;
	c->peers = NULL;
	c->n_dbs = c->n_users = c->n_clusters = c->n_shard_sets = c->n_peers = 0;
	c->warnings = NULL;
	c->n_warnings = 0;
	c->hba = hba_ref(src->hba);
	c->userlist = userlist_ref(src->userlist);
	c->config_file = strdup(src->config_file);
	if (!copy_strings(c, src, config_keys, config_key_count) || !c->config_file ||
	    !clone_dbs(c, src) || !clone_users(c, src) || !clone_clusters(c, src) ||
	    !clone_shard_sets(c, src) || !clone_peers(c, src)) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* --- entry strings: libpq style "key=value key2='quoted \' value'" --- */

/*
 * Copy one value starting at *pp into out (which has room for the rest of the string) and
 * advance *pp past it. A backslash takes the next character literally, as in libpq.
 */
static bool read_entry_value(const char **pp, char *out, const char **why)
{
	const char *p = *pp;
	bool quoted = *p == '\'';

	if (quoted)
		p++;
	while (*p && (quoted ? *p != '\'' : !isspace((unsigned char)*p))) {
		if (*p == '\\' && p[1])
			p++;
		*out++ = *p++;
	}
	*out = '\0';
	if (quoted) {
		if (*p != '\'') {
			*why = "unterminated quoted value";
			return false;
		}
		p++;
	}
	*pp = p;
	return true;
}

static bool apply_entry_pair(struct parse_state *ps, const char *entry, void *base,
			     const struct config_key *keys, size_t n, const char *name,
			     const char *text)
{
	const struct config_key *key = find_in(keys, n, name);
	char why[160];
	union value v;

	if (!key)
		return parse_fail(ps, entry, "unknown key '%s'", name);
	if (!parse_value(key, text, &v, why, sizeof(why)))
		return parse_fail(ps, entry, "%s: %s", key->name, why);
	replace_value(base, key, v);
	return true;
}

enum pair_result { PAIR_OK, PAIR_END, PAIR_BAD };

/*
 * Read the next "key=value" at *pp into name and value (value has room for the whole rest
 * of the string). On PAIR_BAD, why says what is wrong (it may point into name).
 */
static enum pair_result next_pair(const char *start, const char **pp, char *name, size_t namelen,
				  char *value, char *why, size_t whylen)
{
	const char *p = *pp + strspn(*pp, " \t");
	const char *err = NULL;
	size_t len = strcspn(p, "= \t");

	if (*p == '\0')
		return PAIR_END;
	if (len == 0 || len >= namelen) {
		/* Not the rest of the entry: it may hold a password. */
		snprintf(why, whylen, "expected key=value at character %d of the entry",
			 (int)(p - start) + 1);
		return PAIR_BAD;
	}
	memcpy(name, p, len);
	name[len] = '\0';
	p += len;
	p += strspn(p, " \t");
	if (*p != '=') {
		snprintf(why, whylen, "expected '=' after '%s'", name);
		return PAIR_BAD;
	}
	p++;
	p += strspn(p, " \t");
	if (!read_entry_value(&p, value, &err)) {
		snprintf(why, whylen, "%s: %s", name, err);
		return PAIR_BAD;
	}
	*pp = p;
	return PAIR_OK;
}

/* Parse a whole entry string into base; a key given twice keeps its last value, as libpq. */
static bool parse_entry(struct parse_state *ps, const char *entry, void *base,
			const struct config_key *keys, size_t n, const char *s)
{
	const char *start = s;
	char *value = malloc(strlen(s) + 1);
	char name[ENTRY_KEY_MAX], why[256];
	enum pair_result r;
	bool ok = true;

	if (!value)
		return parse_fail(ps, entry, "out of memory");
	while (ok && (r = next_pair(start, &s, name, sizeof(name), value, why, sizeof(why))) !=
			     PAIR_END) {
		if (r == PAIR_BAD)
			ok = parse_fail(ps, entry, "%s", why);
		else
			ok = apply_entry_pair(ps, entry, base, keys, n, name, value);
	}
	free(value);
	return ok;
}

static bool check_entry_name(struct parse_state *ps, const char *kind, const char *name)
{
	if (*name == '\0')
		return parse_fail(ps, "(empty)", "%s name is empty", kind);
	if (strlen(name) > NAME_MAX_LEN)
		return parse_fail(ps, name, "%s name is longer than %d bytes", kind, NAME_MAX_LEN);
	return true;
}

/* Make room for element n of the array *arrp points to; false when out of memory. */
static bool grow(void *arrp, size_t size, int n)
{
	void **arr = arrp;
	void *p = realloc(*arr, (size_t)(n + 1) * size);

	if (!p)
		return false;
	*arr = p;
	return true;
}

static bool add_db(struct parse_state *ps, const char *name, const char *value)
{
	struct config *cfg = ps->cfg;
	struct db_entry db = { 0 };

	if (!check_entry_name(ps, "database", name))
		return false;
	for (int i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return parse_fail(ps, name, "duplicate database (first defined at line %d)",
					  ps->origins.dbs[i]);
	}
	db.name = strdup(name);
	if (!db.name || !init_fields(&db, config_db_keys, config_db_key_count) ||
	    !grow(&cfg->dbs, sizeof(*cfg->dbs), cfg->n_dbs) ||
	    !grow(&ps->origins.dbs, sizeof(int), cfg->n_dbs)) {
		free_db(&db);
		return parse_fail(ps, name, "out of memory");
	}
	db.shard_index = -1;
	db.shard_parent = strdup("");
	if (!db.shard_parent) {
		free_db(&db);
		return parse_fail(ps, name, "out of memory");
	}
	if (!parse_entry(ps, name, &db, config_db_keys, config_db_key_count, value)) {
		free_db(&db);
		return false;
	}
	ps->origins.dbs[cfg->n_dbs] = ps->lineno;
	ps->origins.n_dbs = cfg->n_dbs + 1;
	cfg->dbs[cfg->n_dbs++] = db;
	return true;
}

static bool add_user(struct parse_state *ps, const char *name, const char *value)
{
	struct config *cfg = ps->cfg;
	struct user_entry user = { 0 };

	if (!check_entry_name(ps, "user", name))
		return false;
	for (int i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0)
			return parse_fail(ps, name, "duplicate user (first defined at line %d)",
					  ps->origins.users[i]);
	}
	user.name = strdup(name);
	if (!user.name || !init_fields(&user, config_user_keys, config_user_key_count) ||
	    !grow(&cfg->users, sizeof(*cfg->users), cfg->n_users) ||
	    !grow(&ps->origins.users, sizeof(int), cfg->n_users)) {
		free(user.name);
		return parse_fail(ps, name, "out of memory");
	}
	if (!parse_entry(ps, name, &user, config_user_keys, config_user_key_count, value)) {
		free(user.name);
		return false;
	}
	ps->origins.users[cfg->n_users] = ps->lineno;
	cfg->users[cfg->n_users++] = user;
	return true;
}

/* --- [peers] --- */

/* A peer's name is its peer_id: a number, 1..16383 as peer_id itself (0 means no peering). */
static bool parse_peer_id(const char *name, int *id)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*name))
		return false;
	v = strtol(name, &end, 10);
	if (*end || v < 1 || v > 16383)
		return false;
	*id = (int)v;
	return true;
}

static bool add_peer(struct parse_state *ps, const char *name, const char *value)
{
	struct config *cfg = ps->cfg;
	struct peer_entry peer = { 0 };

	if (!parse_peer_id(name, &peer.id))
		return parse_fail(ps, name, "a [peers] entry is named by its peer_id, 1 to 16383");
	for (int i = 0; i < cfg->n_peers; i++) {
		if (cfg->peers[i].id == peer.id)
			return parse_fail(ps, name, "duplicate peer (first defined at line %d)",
					  ps->origins.peers[i]);
	}
	if (!init_fields(&peer, config_peer_keys, config_peer_key_count) ||
	    !grow(&cfg->peers, sizeof(*cfg->peers), cfg->n_peers) ||
	    !grow(&ps->origins.peers, sizeof(int), cfg->n_peers)) {
		free_strings(&peer, config_peer_keys, config_peer_key_count);
		return parse_fail(ps, name, "out of memory");
	}
	if (!parse_entry(ps, name, &peer, config_peer_keys, config_peer_key_count, value)) {
		free_strings(&peer, config_peer_keys, config_peer_key_count);
		return false;
	}
	ps->origins.peers[cfg->n_peers] = ps->lineno;
	cfg->peers[cfg->n_peers++] = peer;
	return true;
}

/* --- [cluster.NAME] sections --- */

static struct cluster_entry *cluster_get(struct parse_state *ps, const char *name)
{
	struct config *cfg = ps->cfg;
	struct cluster_entry cl = { 0 };

	for (int i = 0; i < cfg->n_clusters; i++) {
		if (strcmp(cfg->clusters[i].name, name) == 0)
			return &cfg->clusters[i];
	}
	if (!check_entry_name(ps, "cluster", name))
		return NULL;
	cl.name = strdup(name);
	if (!cl.name || !init_fields(&cl, config_cluster_keys, config_cluster_key_count) ||
	    !grow(&cfg->clusters, sizeof(*cfg->clusters), cfg->n_clusters) ||
	    !grow(&ps->origins.clusters, sizeof(int), cfg->n_clusters)) {
		free(cl.name);
		free_strings(&cl, config_cluster_keys, config_cluster_key_count);
		parse_fail(ps, name, "out of memory");
		return NULL;
	}
	ps->origins.clusters[cfg->n_clusters] = ps->lineno;
	cfg->clusters[cfg->n_clusters] = cl;
	return &cfg->clusters[cfg->n_clusters++];
}

static bool set_cluster_key(struct parse_state *ps, const char *cluster, const char *name,
			    const char *value)
{
	struct cluster_entry *cl = cluster_get(ps, cluster);
	const struct config_key *key;
	char why[160];
	union value v;

	if (!cl)
		return false;
	key = find_in(config_cluster_keys, config_cluster_key_count, name);
	if (!key)
		return parse_fail(ps, name, "unknown key in [cluster.%s]", cluster);
	if (!parse_value(key, value, &v, why, sizeof(why)))
		return parse_fail(ps, key->name, "%s", why);
	replace_value(cl, key, v);
	cl->set_mask |= 1ULL << (key - config_cluster_keys);
	return true;
}

/* --- [shards.NAME] sections --- */

/* The value of a shard.NAME line: "cluster=NAME". */
static const struct config_key shard_line_keys[] = {
	{ .name = "cluster",
	  .type = CFG_STRING,
	  .offset = offsetof(struct shard_entry, cluster),
	  .default_value = "",
	  .help = "the [cluster.NAME] that serves the shard" },
};

static struct shards_entry *shard_set_get(struct parse_state *ps, const char *name)
{
	struct config *cfg = ps->cfg;
	struct shards_entry set = { 0 };

	for (int i = 0; i < cfg->n_shard_sets; i++) {
		if (strcmp(cfg->shard_sets[i].name, name) == 0)
			return &cfg->shard_sets[i];
	}
	if (!check_entry_name(ps, "shards", name))
		return NULL;
	set.name = strdup(name);
	if (!set.name || !init_fields(&set, config_shards_keys, config_shards_key_count) ||
	    !grow(&cfg->shard_sets, sizeof(*cfg->shard_sets), cfg->n_shard_sets) ||
	    !grow(&ps->origins.shard_sets, sizeof(int), cfg->n_shard_sets)) {
		free_shard_set(&set);
		parse_fail(ps, name, "out of memory");
		return NULL;
	}
	ps->origins.shard_sets[cfg->n_shard_sets] = ps->lineno;
	cfg->shard_sets[cfg->n_shard_sets] = set;
	return &cfg->shard_sets[cfg->n_shard_sets++];
}

/* shard.NAME = cluster=CLUSTER */
static bool add_shard_line(struct parse_state *ps, struct shards_entry *set, const char *name,
			   const char *value)
{
	const char *shard = name + strlen(SHARD_LINE_PREFIX);
	struct shard_entry sh = { 0 };

	if (!check_entry_name(ps, "shard", shard))
		return false;
	if (strchr(shard, '.') || strchr(shard, ' '))
		return parse_fail(ps, name, "a shard's name may not hold '.' or blanks");
	for (int i = 0; i < set->n_shards; i++) {
		if (strcmp(set->shards[i].name, shard) == 0)
			return parse_fail(ps, name, "shard %s is defined twice in [shards.%s]",
					  shard, set->name);
	}
	sh.name = strdup(shard);
	sh.cluster = strdup("");
	if (!sh.name || !sh.cluster || !grow(&set->shards, sizeof(*set->shards), set->n_shards)) {
		free(sh.name);
		free(sh.cluster);
		return parse_fail(ps, name, "out of memory");
	}
	if (!parse_entry(ps, name, &sh, shard_line_keys, 1, value) || !sh.cluster[0]) {
		free(sh.name);
		if (!ps->report->failed)
			parse_fail(ps, name, "give the shard's cluster: %s = cluster=NAME", name);
		free(sh.cluster);
		return false;
	}
	set->shards[set->n_shards++] = sh;
	return true;
}

static bool set_shards_key(struct parse_state *ps, const char *set_name, const char *name,
			   const char *value)
{
	struct shards_entry *set = shard_set_get(ps, set_name);
	const struct config_key *key;
	char why[160];
	union value v;

	if (!set)
		return false;
	if (strncasecmp(name, SHARD_LINE_PREFIX, strlen(SHARD_LINE_PREFIX)) == 0)
		return add_shard_line(ps, set, name, value);
	key = find_in(config_shards_keys, config_shards_key_count, name);
	if (!key)
		return parse_fail(ps, name,
				  "unknown key in [shards.%s] (expected key, key_type, "
				  "buckets, seed, map, no_shard_key, fanout_limit, etcd_outage, "
				  "move_hold_timeout, move_user, move_password or shard.NAME)",
				  set_name);
	if (!parse_value(key, value, &v, why, sizeof(why)))
		return parse_fail(ps, key->name, "%s", why);
	replace_value(set, key, v);
	set->set_mask |= 1ULL << (key - config_shards_keys);
	return true;
}

const char *config_show_value(const struct config *cfg, const struct config_key *key, char *buf,
			      size_t buflen)
{
	config_format_value(cfg, key, buf, buflen);
	if (key->secret && buf[0] != '\0')
		snprintf(buf, buflen, "********");
	return buf;
}

/* Keys the section left unset take the [pgmux] value of the same name. */
static bool resolve_cluster(const struct config *cfg, struct cluster_entry *cl)
{
	char text[1024], why[160];
	union value v;

	for (size_t i = 0; i < config_cluster_key_count; i++) {
		const struct config_key *key = &config_cluster_keys[i];
		const struct config_key *main_key = config_find_key(key->name);

		if ((cl->set_mask & (1ULL << i)) || !main_key)
			continue;
		config_format_value(cfg, main_key, text, sizeof(text));
		if (!parse_value(key, text, &v, why, sizeof(why)))
			return false;
		replace_value(cl, key, v);
	}
	return true;
}

/* --- the [pgmux] section --- */

static bool set_main_key(struct parse_state *ps, const char *name, const char *value)
{
	const struct config_key *key = config_find_key(name);
	char why[160];
	union value v;

	if (!key)
		return parse_fail(ps, name, "unknown key");
	if (!parse_value(key, value, &v, why, sizeof(why)))
		return parse_fail(ps, key->name, "%s", why);
	/* A key given twice keeps its last value, as in PgBouncer. */
	replace_value(ps->cfg, key, v);
	ps->origins.keys[key - config_keys] = ps->lineno;
	return true;
}

/* --- reading the file through inih --- */

static enum section section_of(const char *name)
{
	size_t len;

	while (isspace((unsigned char)*name))
		name++;
	len = strlen(name);
	while (len > 0 && isspace((unsigned char)name[len - 1]))
		len--;
	if (len == 0)
		return SECTION_NONE;
	if ((len == 5 && strncasecmp(name, "pgmux", len) == 0) ||
	    (len == 9 && strncasecmp(name, "pgbouncer", len) == 0))
		return SECTION_MAIN;
	if (len == 9 && strncasecmp(name, "databases", len) == 0)
		return SECTION_DATABASES;
	if (len == 5 && strncasecmp(name, "users", len) == 0)
		return SECTION_USERS;
	if (len == 5 && strncasecmp(name, "peers", len) == 0)
		return SECTION_PEERS;
	if (len > strlen(CLUSTER_PREFIX) &&
	    strncasecmp(name, CLUSTER_PREFIX, strlen(CLUSTER_PREFIX)) == 0)
		return SECTION_CLUSTER;
	if (len > strlen(SHARDS_PREFIX) &&
	    strncasecmp(name, SHARDS_PREFIX, strlen(SHARDS_PREFIX)) == 0)
		return SECTION_SHARDS;
	return SECTION_UNKNOWN;
}

/*
 * The value as written on the line, up to its end: inih has already split the name at the
 * first '=' or ':', so the same split on our whole copy of the line finds the same name.
 */
static const char *whole_value(struct parse_state *ps, const char *inih_value)
{
	char *sep = strpbrk(ps->text, "=:");

	return sep ? trim(sep + 1) : inih_value;
}

static int on_pair(void *user, const char *section, const char *name, const char *inih_value)
{
	struct parse_state *ps = user;
	const char *value = whole_value(ps, inih_value);

	if (ps->report->failed)
		return 0;
	switch (section_of(section)) {
	case SECTION_MAIN:
		return set_main_key(ps, name, value);
	case SECTION_DATABASES:
		return add_db(ps, name, value);
	case SECTION_USERS:
		return add_user(ps, name, value);
	case SECTION_PEERS:
		return add_peer(ps, name, value);
	case SECTION_CLUSTER: {
		char cluster[NAME_MAX_LEN + 2];
		const char *start = section + strspn(section, " \t") + strlen(CLUSTER_PREFIX);

		snprintf(cluster, sizeof(cluster), "%.*s", (int)strcspn(start, " \t"), start);
		return set_cluster_key(ps, cluster, name, value);
	}
	case SECTION_SHARDS: {
		char set[NAME_MAX_LEN + 2];
		const char *start = section + strspn(section, " \t") + strlen(SHARDS_PREFIX);

		snprintf(set, sizeof(set), "%.*s", (int)strcspn(start, " \t"), start);
		return set_shards_key(ps, set, name, value);
	}
	case SECTION_NONE:
		return parse_fail(ps, name, "key outside any section (start with [pgmux])");
	case SECTION_UNKNOWN:
		break;
	}
	return parse_fail(ps, name,
			  "unknown section [%s] (expected pgmux, pgbouncer, databases, "
			  "users, peers, cluster.NAME or shards.NAME)",
			  section);
}

/*
 * inih's fgets-style reader. We keep the whole line for whole_value() and hand inih a copy
 * without leading blanks, cut to its buffer if need be (only the value can be that long, and
 * that is re-read from our copy). Each line ends in '\n' so inih never joins two lines.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	size_t len, room = num > 2 ? (size_t)num - 2 : 0;

	if (getline(&ps->line, &ps->line_cap, ps->file) < 0)
		return NULL;
	ps->lineno++;
	ps->text = ps->line;
	if (ps->lineno == 1 && strncmp(ps->text, "\xEF\xBB\xBF", 3) == 0)
		ps->text += 3;
	while (isspace((unsigned char)*ps->text))
		ps->text++;
	len = strlen(ps->text);
	if (len > room)
		len = room;
	memcpy(str, ps->text, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* --- whole-config checks --- */

static int origin_of_key(const struct origins *o, const char *name)
{
	const struct config_key *key = config_find_key(name);

	return o && o->keys && key ? o->keys[key - config_keys] : 0;
}

/* The line to blame for a conflict between two keys: the later of the two set in the file. */
static int origin_of_pair(const struct origins *o, const char *a, const char *b)
{
	int la = origin_of_key(o, a), lb = origin_of_key(o, b);

	return la > lb ? la : lb;
}

static bool validate_main(const struct config *cfg, struct report *r, const struct origins *o)
{
	unsigned methods;

	if (!config_server_auth_methods(cfg->server_auth_methods, &methods))
		return report_error(
			r, origin_of_key(o, "server_auth_methods"), "server_auth_methods",
			"\"%s\": give auto, or a list of scram-sha-256, md5, password, none",
			cfg->server_auth_methods);
	if (cfg->listen_addr[0] == '\0' && cfg->unix_socket_dir[0] == '\0')
		return report_error(
			r, origin_of_pair(o, "listen_addr", "unix_socket_dir"), "listen_addr",
			"nothing to listen on: listen_addr and unix_socket_dir are both "
			"empty");
	/*
	 * verify-ca checks no host name: with the system's CAs any certificate a public CA signed
	 * for anyone would do. libpq refuses verify-ca without a root certificate file too.
	 */
	if (cfg->server_tls_sslmode == SSLMODE_VERIFY_CA && cfg->server_tls_ca_file[0] == '\0')
		return report_error(
			r, origin_of_key(o, "server_tls_sslmode"), "server_tls_sslmode",
			"verify-ca needs server_tls_ca_file (the CA that signs the servers' "
			"certificates); use verify-full to check host names against the "
			"system's CAs");
	return true;
}

/* The line of cfg->dbs[i], 0 for an entry the file did not hold (a shard's). */
static int db_origin(const struct origins *o, int i)
{
	return o && o->dbs && i < o->n_dbs ? o->dbs[i] : 0;
}

static bool validate_db(const struct config *cfg, const struct db_entry *db, int line,
			struct report *r)
{
	/* With auth_type any the client's user name is not trusted, so it cannot log in. */
	if (cfg->auth_type == AUTH_ANY && db->user[0] == '\0')
		return report_error(r, line, db->name,
				    "auth_type = any needs user= in every "
				    "database entry");
	if (db->cluster[0] && !config_find_cluster(cfg, db->cluster))
		return report_error(r, line, db->name, "cluster=%s: no [cluster.%s] section",
				    db->cluster, db->cluster);
	if (db->cluster[0] && db->host[0])
		return report_error(r, line, db->name, "give either cluster= or host=, not both");
	if (db->shards[0] && !config_find_shards(cfg, db->shards))
		return report_error(r, line, db->name, "shards=%s: no [shards.%s] section",
				    db->shards, db->shards);
	if (db->shards[0] && (db->host[0] || db->cluster[0]))
		return report_error(r, line, db->name,
				    "a sharded database takes its servers from "
				    "its shards' clusters: give shards= without host= or cluster=");
	return true;
}

static bool is_power_of_two(int n)
{
	return n > 0 && !(n & (n - 1));
}

static bool validate_shard_set(const struct config *cfg, const struct shards_entry *set, int line,
			       struct report *r)
{
	bool default_known = strcmp(set->no_shard_key, "error") == 0 ||
			     strcmp(set->no_shard_key, "all") == 0;

	if (!set->key[0])
		return report_error(r, line, set->name, "[shards.%s] needs key = the key column",
				    set->name);
	if (set->n_shards == 0)
		return report_error(r, line, set->name,
				    "[shards.%s] names no shard: add lines "
				    "shard.NAME = cluster=CLUSTER",
				    set->name);
	if (!is_power_of_two(set->buckets))
		return report_error(r, line, set->name, "buckets = %d: must be a power of two",
				    set->buckets);
	if (!set->map[0])
		return report_error(
			r, line, set->name,
			"[shards.%s] needs map = FILE; create the "
			"first one with: pgmux --shard-map create --buckets %d --seed %d "
			"SHARD... -o FILE",
			set->name, set->buckets, set->seed);
	if (config_shard_map_in_etcd(set)) {
		struct etcd_source src;
		char why[300];

		if (!shard_etcd_parse_source(set->map, &src, why, sizeof(why)))
			return report_error(r, line, set->name, "map = %s: %s", set->map, why);
	}
	for (int i = 0; i < set->n_shards; i++) {
		const struct shard_entry *sh = &set->shards[i];

		if (!config_find_cluster(cfg, sh->cluster))
			return report_error(r, line, set->name,
					    "shard.%s: cluster=%s: no [cluster.%s] "
					    "section",
					    sh->name, sh->cluster, sh->cluster);
		default_known = default_known || strcmp(set->no_shard_key, sh->name) == 0;
	}
	if (!default_known)
		return report_error(r, line, set->name,
				    "no_shard_key = %s: give error, all, or the "
				    "name of one of the section's shards",
				    set->no_shard_key);
	return true;
}

static bool validate_cluster(const struct cluster_entry *cl, int line, struct report *r)
{
	if (!cl->patroni[0] == !cl->hosts[0])
		return report_error(
			r, line, cl->name,
			"[cluster.%s] needs exactly one of patroni = URLs or hosts = host:port list",
			cl->name);
	return true;
}

static bool validate_peer(const struct peer_entry *peer, int line, struct report *r)
{
	char name[16];

	snprintf(name, sizeof(name), "%d", peer->id);
	if (!peer->host[0])
		return report_error(r, line, name,
				    "a [peers] entry needs host= (an address, a name, "
				    "or a unix socket directory)");
	return true;
}

/* Checks that involve more than one value; o may be NULL (no file to point into). */
static bool validate_config(const struct config *cfg, struct report *r, const struct origins *o)
{
	if (!validate_main(cfg, r, o))
		return false;
	for (int i = 0; i < cfg->n_peers; i++) {
		if (!validate_peer(&cfg->peers[i], o && o->peers ? o->peers[i] : 0, r))
			return false;
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		if (!validate_db(cfg, &cfg->dbs[i], db_origin(o, i), r))
			return false;
	}
	for (int i = 0; i < cfg->n_shard_sets; i++) {
		if (!validate_shard_set(cfg, &cfg->shard_sets[i],
					o && o->shard_sets ? o->shard_sets[i] : 0, r))
			return false;
	}
	for (int i = 0; i < cfg->n_clusters; i++) {
		if (!validate_cluster(&cfg->clusters[i], o && o->clusters ? o->clusters[i] : 0, r))
			return false;
	}
	return true;
}

/* --- sharded databases: one entry per shard, and the maps --- */

static PRINTF_LIKE(5, 6) void add_warning(struct config *cfg, const char *path, int line,
					  const char *key, const char *fmt, ...);

static void drop_shard_entries(struct config *cfg)
{
	int kept = 0;

	for (int i = 0; i < cfg->n_dbs; i++) {
		if (cfg->dbs[i].shard_parent[0])
			free_db(&cfg->dbs[i]);
		else
			cfg->dbs[kept++] = cfg->dbs[i];
	}
	cfg->n_dbs = kept;
}

/* The entry for one shard of a sharded entry: the parent's settings, the shard's cluster. */
static bool add_shard_entry(struct config *cfg, int parent, const struct shard_entry *sh, int index)
{
	struct db_entry *db;
	char name[2 * NAME_MAX_LEN + 2];

	if (!grow(&cfg->dbs, sizeof(*cfg->dbs), cfg->n_dbs))
		return false;
	db = &cfg->dbs[cfg->n_dbs];
	*db = cfg->dbs[parent];
	snprintf(name, sizeof(name), "%s.%s", db->name, sh->name);
	db->name = strdup(name);
	db->shard_parent = strdup(cfg->dbs[parent].name);
	db->shard_index = index;
	if (!copy_strings(db, &cfg->dbs[parent], config_db_keys, config_db_key_count) ||
	    !db->name || !db->shard_parent) {
		free_db(db);
		return false;
	}
	free(db->cluster);
	free(db->shards);
	db->cluster = strdup(sh->cluster);
	db->shards = strdup("");
	if (!db->cluster || !db->shards) {
		free_db(db);
		return false;
	}
	cfg->n_dbs++;
	return true;
}

/*
 * Each sharded entry gets one entry per shard, "ENTRY.SHARD", with its settings and the
 * shard's cluster: the pools, limits and SHOW lines of a shard are those of an ordinary routed
 * database. Made again on every validation, so a clone never carries stale ones.
 */
static bool add_shard_entries(struct config *cfg, struct report *r, const struct origins *o)
{
	int n = cfg->n_dbs;

	for (int i = 0; i < n; i++) {
		const struct shards_entry *set;

		if (!cfg->dbs[i].shards[0])
			continue;
		set = config_find_shards(cfg, cfg->dbs[i].shards);
		for (int k = 0; k < set->n_shards; k++) {
			const char *parent = cfg->dbs[i].name;

			if (strlen(parent) + 1 + strlen(set->shards[k].name) > NAME_MAX_LEN)
				return report_error(r, db_origin(o, i), parent,
						    "database %s.%s (its "
						    "shard %s) would be longer than %d bytes",
						    parent, set->shards[k].name,
						    set->shards[k].name, NAME_MAX_LEN);
			for (int j = 0; j < n; j++) {
				if (strncmp(cfg->dbs[j].name, parent, strlen(parent)) == 0 &&
				    cfg->dbs[j].name[strlen(parent)] == '.' &&
				    strcmp(cfg->dbs[j].name + strlen(parent) + 1,
					   set->shards[k].name) == 0)
					return report_error(r, db_origin(o, j), cfg->dbs[j].name,
							    "the name of shard %s of database %s: "
							    "rename one of them",
							    set->shards[k].name, parent);
			}
			if (!add_shard_entry(cfg, i, &set->shards[k], k))
				return report_error(r, 0, parent, "out of memory");
		}
	}
	return true;
}

static char *read_whole_file(const char *path, size_t *len, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;

	*len = 0;
	if (!f) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		char *bigger;
		size_t got;

		if (*len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			bigger = realloc(text, cap);
			if (!bigger) {
				snprintf(why, whylen, "%s: out of memory", path);
				break;
			}
			text = bigger;
		}
		got = fread(text + *len, 1, cap - *len - 1, f);
		*len += got;
		if (got == 0) {
			if (ferror(f))
				snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
			else {
				text[*len] = '\0';
				fclose(f);
				return text;
			}
			break;
		}
	}
	free(text);
	fclose(f);
	return NULL;
}

/* Does the map fit the section: same buckets and seed, only shards the section names? */
static bool map_fits(const struct shards_entry *set, struct loaded_shard_map *l, char *why,
		     size_t whylen)
{
	const struct shard_map *m = l->map;

	if (m->n_buckets != (uint32_t)set->buckets || m->seed != (uint64_t)set->seed) {
		snprintf(why, whylen,
			 "the map has %u buckets and seed %llu, the section says "
			 "buckets = %d, seed = %d",
			 m->n_buckets, (unsigned long long)m->seed, set->buckets, set->seed);
		return false;
	}
	for (int i = 0; i < m->n_shards; i++) {
		l->shard_of[i] = -1;
		for (int k = 0; k < set->n_shards; k++) {
			if (strcmp(m->names[i], set->shards[k].name) == 0)
				l->shard_of[i] = k;
		}
		if (l->shard_of[i] < 0) {
			snprintf(why, whylen,
				 "the map gives buckets to shard %s, which the section "
				 "does not name (add shard.%s = cluster=...)",
				 m->names[i], m->names[i]);
			return false;
		}
	}
	return true;
}

bool config_shard_map_in_etcd(const struct shards_entry *set)
{
	return strncmp(set->map, "etcd:", 5) == 0;
}

struct loaded_shard_map *config_shard_map_from_text(const struct shards_entry *set,
						    const char *text, size_t len, char *why,
						    size_t whylen)
{
	struct loaded_shard_map *l = calloc(1, sizeof(*l));

	if (!l) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	l->refs = 1;
	l->map = shard_map_parse(text, len, why, whylen);
	if (l->map && !(l->shard_of = calloc((size_t)l->map->n_shards, sizeof(*l->shard_of))))
		snprintf(why, whylen, "out of memory");
	if (!l->shard_of || !map_fits(set, l, why, whylen)) {
		config_shard_map_unref(l);
		return NULL;
	}
	return l;
}

static struct loaded_shard_map *load_shard_map(const struct shards_entry *set, char *why,
					       size_t whylen)
{
	struct loaded_shard_map *l;
	char parse_why[256];
	size_t len;
	char *text = read_whole_file(set->map, &len, why, whylen);

	if (!text)
		return NULL;
	l = config_shard_map_from_text(set, text, len, parse_why, sizeof(parse_why));
	free(text);
	if (!l)
		snprintf(why, whylen, "%s: %s", set->map, parse_why);
	return l;
}

/*
 * Read each section's map with the config, so that a RELOAD swaps settings and maps together
 * and a map that does not parse, or does not fit its section, refuses the whole load.
 */
static bool load_shard_maps(struct config *cfg, struct report *r, const struct origins *o)
{
	for (int i = 0; i < cfg->n_shard_sets; i++) {
		struct shards_entry *set = &cfg->shard_sets[i];
		char why[512];

		if (set->loaded || config_shard_map_in_etcd(set))
			continue;
		set->loaded = load_shard_map(set, why, sizeof(why));
		if (!set->loaded)
			return report_error(r, o && o->shard_sets ? o->shard_sets[i] : 0, "map",
					    "%s", why);
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *db = &cfg->dbs[i];
		const struct shards_entry *set = db->shards[0] ? config_find_shards(cfg, db->shards)
							       : NULL;
		const struct shard_map *m = set && set->loaded ? set->loaded->map : NULL;

		for (int k = 0; m && k < set->n_shards; k++) {
			bool has = false;

			for (int j = 0; j < m->n_shards; j++)
				has = has || set->loaded->shard_of[j] == k;
			if (!has)
				add_warning(
					cfg, cfg->config_file, db_origin(o, i), db->name,
					"shard %s holds no bucket in map version %llu: it serves "
					"no key until a new map gives it some",
					set->shards[k].name, (unsigned long long)m->version);
		}
	}
	return true;
}

/* --- warnings: accepted, but worth a line in the log --- */

static PRINTF_LIKE(5, 6) void add_warning(struct config *cfg, const char *path, int line,
					  const char *key, const char *fmt, ...)
{
	char text[512];
	size_t used = 0;
	char *copy;
	va_list ap;

	if (line > 0)
		used = (size_t)snprintf(text, sizeof(text), "%s:%d: %s: ", path, line, key);
	else
		used = (size_t)snprintf(text, sizeof(text), "%s: %s: ", path, key);
	if (used >= sizeof(text))
		used = sizeof(text) - 1;
	va_start(ap, fmt);
	vsnprintf(text + used, sizeof(text) - used, fmt, ap);
	va_end(ap);
	/* A warning lost to a lack of memory costs a log line, not the load. */
	copy = strdup(text);
	if (!copy || !grow(&cfg->warnings, sizeof(*cfg->warnings), cfg->n_warnings)) {
		free(copy);
		return;
	}
	cfg->warnings[cfg->n_warnings++] = copy;
}

/*
 * PgBouncer accepts a min_pool_size above the pool's size (the pool then stays at its size), and
 * a pgbouncer.ini must start unchanged: say so instead of refusing.
 */
static void warn_min_pool_sizes(struct config *cfg, const struct origins *o)
{
	const char *path = cfg->config_file;

	if (cfg->min_pool_size > cfg->default_pool_size)
		add_warning(cfg, path, origin_of_pair(o, "min_pool_size", "default_pool_size"),
			    "min_pool_size",
			    "%d is larger than default_pool_size (%d): pools keep "
			    "at most their size open",
			    cfg->min_pool_size, cfg->default_pool_size);
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *db = &cfg->dbs[i];
		int size = config_db_pool_size(cfg, db);
		int min = config_db_min_pool_size(cfg, db);

		if (db->shard_parent[0])
			continue; /* said once, for the sharded entry */

		/* Entries that merely inherit both were covered by the [pgmux] warning. */
		if (min > size && (db->min_pool_size >= 0 || db->pool_size >= 0))
			add_warning(
				cfg, path, db_origin(o, i), db->name,
				"min_pool_size (%d) is larger than pool_size (%d): the pool keeps "
				"at most %d open",
				min, size, size);
	}
}

/* Peering half set up starts, as in PgBouncer, but some cancel requests will not arrive. */
static void warn_peering(struct config *cfg, const struct origins *o)
{
	const char *path = cfg->config_file;

	if (cfg->so_reuseport && !cfg->peer_id)
		add_warning(cfg, path, origin_of_key(o, "so_reuseport"), "so_reuseport",
			    "set without peer_id: a cancel request the kernel hands to another "
			    "process sharing the port is lost");
	else if (cfg->peer_id && cfg->n_peers == 0)
		add_warning(
			cfg, path, origin_of_key(o, "peer_id"), "peer_id",
			"set without a [peers] section: cancel requests for other processes are "
			"dropped");
	else if (!cfg->peer_id && cfg->n_peers > 0)
		add_warning(cfg, path, o && o->peers ? o->peers[0] : 0, "peers",
			    "[peers] is not used without peer_id");
}

static void clear_warnings(struct config *cfg)
{
	for (int i = 0; i < cfg->n_warnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	cfg->warnings = NULL;
	cfg->n_warnings = 0;
}

/*
 * Read the auth_hba_file rules and the auth_file's users when cfg has none loaded (a file load,
 * or a SET of their key), drop them when their key is "". They are loaded with the config, so
 * RELOAD and SET swap rules, users and settings together, and a file that cannot be read
 * leaves the config in force as it was.
 */
static bool load_auth_files(struct config *cfg, struct report *r, const struct origins *o)
{
	char why[512];

	if (!cfg->auth_hba_file[0]) {
		hba_free(cfg->hba);
		cfg->hba = NULL;
	} else if (!cfg->hba && !(cfg->hba = hba_load(cfg->auth_hba_file, why, sizeof(why)))) {
		return report_error(r, origin_of_key(o, "auth_hba_file"), "auth_hba_file", "%s",
				    why);
	}
	if (!cfg->auth_file[0]) {
		userlist_free(cfg->userlist);
		cfg->userlist = NULL;
	} else if (!cfg->userlist &&
		   !(cfg->userlist = userlist_load(cfg->auth_file, why, sizeof(why)))) {
		return report_error(r, origin_of_key(o, "auth_file"), "auth_file", "%s", why);
	}
	return true;
}

/*
 * Everything after the values are in, shared by a file load and an admin SET: resolve what
 * other sections decide, check the whole, write the warnings, read the auth files when cfg has
 * none loaded. o is NULL when no file is behind the values (admin SET).
 */
static bool finish_config(struct config *cfg, struct report *r, const struct origins *o)
{
	for (int i = 0; i < cfg->n_clusters; i++) {
		if (!resolve_cluster(cfg, &cfg->clusters[i]))
			return report_error(r, o && o->clusters ? o->clusters[i] : 0,
					    cfg->clusters[i].name, "out of memory");
	}
	drop_shard_entries(cfg);
	if (!validate_config(cfg, r, o) || !add_shard_entries(cfg, r, o))
		return false;
	clear_warnings(cfg);
	warn_min_pool_sizes(cfg, o);
	warn_peering(cfg, o);
	return load_shard_maps(cfg, r, o) && load_auth_files(cfg, r, o);
}

bool config_validate(struct config *cfg, char *err, size_t errlen)
{
	struct report report = { .buf = err, .len = errlen };

	if (err && errlen)
		err[0] = '\0';
	return finish_config(cfg, &report, NULL);
}

/* --- loading --- */

static void parse_file(struct parse_state *ps, const char *path)
{
	int rc;

	ps->file = fopen(path, "r");
	if (!ps->file) {
		report_error(ps->report, 0, NULL, "cannot open: %s", strerror(errno));
		return;
	}
	rc = ini_parse_stream(read_line, ps, on_pair, ps);
	if (ferror(ps->file))
		report_error(ps->report, 0, NULL, "read error: %s", strerror(errno));
	fclose(ps->file);
	free(ps->line);
	if (rc > 0 && (!ps->report->failed || rc < ps->fail_line)) {
		/* inih found a line that is neither "[section]" nor "name = value" first. */
		ps->report->failed = false;
		report_error(ps->report, rc, NULL,
			     "syntax error: expected [section], name = value, or a comment");
	} else if (rc == -2) {
		report_error(ps->report, 0, NULL, "out of memory");
	}
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct report report = { .buf = err, .len = errlen, .path = path };
	struct parse_state ps = { .report = &report };
	char *file = strdup(path);

	if (err && errlen)
		err[0] = '\0';
	ps.cfg = config_new_default();
	ps.origins.keys = calloc(config_key_count, sizeof(int));
	if (!file || !ps.cfg || !ps.origins.keys) {
		report_error(&report, 0, NULL, "out of memory");
		free(file);
	} else {
		free(ps.cfg->config_file);
		ps.cfg->config_file = file;
		parse_file(&ps, path);
	}
	if (!report.failed)
		finish_config(ps.cfg, &report, &ps.origins);
	free(ps.origins.keys);
	free(ps.origins.dbs);
	free(ps.origins.users);
	free(ps.origins.clusters);
	free(ps.origins.shard_sets);
	free(ps.origins.peers);
	if (report.failed) {
		config_free(ps.cfg);
		return NULL;
	}
	return ps.cfg;
}

/* --- key by key --- */

/* Bytes in the largest unit that divides them: 16MB, 512kB, 1000. */
static void format_size(double v, char *buf, size_t buflen)
{
	static const struct {
		const char *unit;
		double factor;
	} units[] = {
		{ "TB", 1099511627776.0 },
		{ "GB", 1073741824.0 },
		{ "MB", 1048576.0 },
		{ "kB", 1024.0 },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (v >= units[i].factor &&
		    (unsigned long long)v % (unsigned long long)units[i].factor == 0) {
			snprintf(buf, buflen, "%.0f%s", v / units[i].factor, units[i].unit);
			return;
		}
	}
	snprintf(buf, buflen, "%.0f", v);
}

const char *config_format_value(const struct config *cfg, const struct config_key *key, char *buf,
				size_t buflen)
{
	const void *f = (const char *)cfg + key->offset;

	switch (key->type) {
	case CFG_INT:
		snprintf(buf, buflen, "%d", *(const int *)f);
		break;
	case CFG_MODE:
		snprintf(buf, buflen, "0%03o", (unsigned)*(const int *)f);
		break;
	case CFG_BOOL:
		snprintf(buf, buflen, "%d", *(const bool *)f ? 1 : 0);
		break;
	case CFG_DOUBLE:
		/* 15 significant digits round-trip every value a person writes: 15, 0.5, 0.1. */
		snprintf(buf, buflen, "%.15g", *(const double *)f);
		break;
	case CFG_SIZE:
		format_size(*(const double *)f, buf, buflen);
		break;
	case CFG_STRING:
		snprintf(buf, buflen, "%s", *(char *const *)f);
		break;
	case CFG_ENUM:
		snprintf(buf, buflen, "%s", enum_name(key, *(const int *)f));
		break;
	}
	return buf;
}

bool config_set_value(struct config *cfg, const char *name, const char *value, char *err,
		      size_t errlen)
{
	struct report report = { .buf = err, .len = errlen };
	const struct config_key *key = config_find_key(name);
	char why[160];
	union value v;

	if (!key)
		return report_error(&report, 0, name, "unknown key");
	if (!parse_value(key, value, &v, why, sizeof(why)))
		return report_error(&report, 0, key->name, "%s", why);
	if (key->offset == offsetof(struct config, auth_hba_file)) {
		/* The rules came from the old file; config_validate() reads the new one. */
		hba_free(cfg->hba);
		cfg->hba = NULL;
	}
	if (key->offset == offsetof(struct config, auth_file)) {
		/* The same for the users (read again even when the name is the same: SET re-reads). */
		userlist_free(cfg->userlist);
		cfg->userlist = NULL;
	}
	replace_value(cfg, key, v);
	return true;
}

const struct db_entry *config_find_db(const struct config *cfg, const char *name)
{
	const struct db_entry *fallback = NULL;

	for (int i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
		if (strcmp(cfg->dbs[i].name, "*") == 0)
			fallback = &cfg->dbs[i];
	}
	return fallback;
}

const struct shards_entry *config_find_shards(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_shard_sets; i++) {
		if (strcmp(cfg->shard_sets[i].name, name) == 0)
			return &cfg->shard_sets[i];
	}
	return NULL;
}

const struct cluster_entry *config_find_cluster(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_clusters; i++) {
		if (strcmp(cfg->clusters[i].name, name) == 0)
			return &cfg->clusters[i];
	}
	return NULL;
}

const struct peer_entry *config_find_peer(const struct config *cfg, int id)
{
	for (int i = 0; i < cfg->n_peers; i++) {
		if (cfg->peers[i].id == id)
			return &cfg->peers[i];
	}
	return NULL;
}

int config_peer_pool_size(const struct config *cfg, const struct peer_entry *p)
{
	return p && p->pool_size > 0 ? p->pool_size : cfg->default_pool_size;
}

const struct user_entry *config_find_user(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0)
			return &cfg->users[i];
	}
	return NULL;
}

bool config_list_contains(const char *list, const char *name)
{
	size_t len = strlen(name);

	if (!list || len == 0)
		return false;
	while (*list) {
		size_t item = strcspn(list, ", \t");

		if (item == len && strncmp(list, name, len) == 0)
			return true;
		list += item;
		list += strspn(list, ", \t");
	}
	return false;
}

bool config_server_auth_methods(const char *list, unsigned *mask)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{ "scram-sha-256", SERVER_AUTH_SCRAM },
		{ "md5", SERVER_AUTH_MD5 },
		{ "password", SERVER_AUTH_PASSWORD },
		{ "none", SERVER_AUTH_NONE },
	};

	*mask = 0;
	if (strcmp(list, "auto") == 0) {
		*mask = SERVER_AUTH_SCRAM | SERVER_AUTH_MD5 | SERVER_AUTH_NONE |
			SERVER_AUTH_PASSWORD_IF_VERIFIED;
		return true;
	}
	list += strspn(list, ", \t");
	while (*list) {
		size_t item = strcspn(list, ", \t");
		size_t i;

		for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
			if (item == strlen(methods[i].name) &&
			    strncmp(list, methods[i].name, item) == 0)
				break;
		}
		if (i == sizeof(methods) / sizeof(methods[0]))
			return false;
		*mask |= methods[i].bit;
		list += item;
		list += strspn(list, ", \t");
	}
	return *mask != 0;
}

void config_server_require_auth(const struct config *cfg, char *out, size_t len)
{
	unsigned mask;

	if (!config_server_auth_methods(cfg->server_auth_methods, &mask))
		mask = 0;
	/* libpq verifies the certificate or fails under verify-ca/-full: then cleartext is safe. */
	if ((mask & SERVER_AUTH_PASSWORD_IF_VERIFIED) &&
	    cfg->server_tls_sslmode >= SSLMODE_VERIFY_CA)
		mask |= SERVER_AUTH_PASSWORD;
	snprintf(out, len, "%s%s%s%s", mask & SERVER_AUTH_SCRAM ? "scram-sha-256," : "",
		 mask & SERVER_AUTH_MD5 ? "md5," : "",
		 mask & SERVER_AUTH_PASSWORD ? "password," : "",
		 mask & SERVER_AUTH_NONE ? "none," : "");
	if (*out)
		out[strlen(out) - 1] = '\0';
}

/* --- effective values --- */

static int entry_or(int entry_value, int main_value)
{
	return entry_value >= 0 ? entry_value : main_value;
}

int config_db_pool_size(const struct config *cfg, const struct db_entry *e)
{
	return entry_or(e ? e->pool_size : -1, cfg->default_pool_size);
}

int config_db_min_pool_size(const struct config *cfg, const struct db_entry *e)
{
	return entry_or(e ? e->min_pool_size : -1, cfg->min_pool_size);
}

int config_db_reserve_pool(const struct config *cfg, const struct db_entry *e)
{
	return entry_or(e ? e->reserve_pool : -1, cfg->reserve_pool_size);
}

int config_db_max_connections(const struct config *cfg, const struct db_entry *e)
{
	return entry_or(e ? e->max_db_connections : -1, cfg->max_db_connections);
}

int config_user_max_connections(const struct config *cfg, const struct user_entry *u)
{
	return entry_or(u ? u->max_user_connections : -1, cfg->max_user_connections);
}

enum pool_mode config_pool_mode(const struct config *cfg, const struct db_entry *e,
				const struct user_entry *u)
{
	if (u && u->pool_mode != POOL_MODE_INHERIT)
		return (enum pool_mode)u->pool_mode;
	if (e && e->pool_mode != POOL_MODE_INHERIT)
		return (enum pool_mode)e->pool_mode;
	return (enum pool_mode)cfg->pool_mode;
}

const char *pool_mode_name(int mode)
{
	if (mode == POOL_MODE_INHERIT)
		return "inherit";
	return enum_name(config_find_key("pool_mode"), mode);
}
