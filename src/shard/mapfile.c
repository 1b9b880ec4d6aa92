/*
 * shard/mapfile: reading and writing the shard map's text (see mapfile.h, doc/shard-map.md).
 *
 * Parsing goes line by line into a struct parse that holds what was seen so far and the line
 * of each one-time directive; each directive is a row of a table (name, word count, handler).
 * The order rules are only those that meaning needs: `format` first (a later format may change
 * everything after it), `buckets` before any range, a shard before the ranges and overrides
 * that name it, and `checksum` last. Whole-map checks (every bucket covered, the checksum, no
 * key twice) run at the end and name the checksum's line, or the last line when it is missing.
 */
#include "shard/mapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION 1
#define NO_SHARD 0xffff
#define MAX_WORDS 5 /* the longest directive has 4 words; one more says there is too much */

/* A growing text buffer for shard_map_format(); oom sticks once an allocation failed. */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= b->cap - b->len) {
		size_t cap = (b->len + (size_t)n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		b->oom = true;
	else
		b->len += (size_t)n;
}

/* The shortest decimal form of w that reads back as the same double. */
static void put_weight(struct buf *b, double w)
{
	char text[64];

	for (int digits = 15; digits <= 17; digits++) {
		snprintf(text, sizeof(text), "%.*g", digits, w);
		if (strtod(text, NULL) == w)
			break;
	}
	put(b, "%s", text);
}

/* A key bare when it can be, else in single quotes with '' for a quote. */
static void put_key(struct buf *b, const char *key)
{
	if (key[0] && !strpbrk(key, " \t'#")) {
		put(b, "%s", key);
		return;
	}
	put(b, "'");
	for (const char *q; (q = strchr(key, '\'')); key = q + 1)
		put(b, "%.*s''", (int)(q - key), key);
	put(b, "%s'", key);
}

char *shard_map_format(const struct shard_map *m)
{
	struct buf b = { malloc(4096), 0, 4096, false };

	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	put(&b,
	    "# pgmux shard map: bucket -> shard. Change it with pgmux --shard-map (plan, override):\n"
	    "# the checksum covers every line, so a map edited by hand is refused.\n");
	put(&b, "format %d\nversion %" PRIu64 "\nbuckets %" PRIu32 "\nseed %" PRIu64 "\n",
	    FORMAT_VERSION, m->version, m->n_buckets, m->seed);
	for (int i = 0; i < m->n_shards; i++) {
		put(&b, "shard %s weight ", m->names[i]);
		put_weight(&b, m->weights[i]);
		put(&b, "\n");
	}
	for (uint32_t lo = 0, hi; lo < m->n_buckets; lo = hi + 1) {
		for (hi = lo; hi + 1 < m->n_buckets && m->owner[hi + 1] == m->owner[lo]; hi++)
			;
		if (hi == lo)
			put(&b, "range %" PRIu32 " %s\n", lo, m->names[m->owner[lo]]);
		else
			put(&b, "range %" PRIu32 "-%" PRIu32 " %s\n", lo, hi,
			    m->names[m->owner[lo]]);
	}
	for (int i = 0; i < m->n_overrides; i++) {
		put(&b, "override ");
		put_key(&b, m->overrides[i].key);
		put(&b, " %s\n", m->names[m->overrides[i].shard]);
	}
	put(&b, "checksum %016" PRIx64 "\n", m->checksum);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* What parsing has seen so far. */
struct parse {
	int line;
	char *err;
	size_t errlen;
	int seen[8]; /* line of each one-time directive (0: not yet) */
	uint64_t version, seed, checksum;
	uint32_t n_buckets, covered;
	uint16_t *owner; /* [n_buckets], NO_SHARD where no range yet */
	int n_shards;
	char (*names)[SHARD_NAME_MAX]; /* [SHARD_MAX] */
	double *weights;               /* [SHARD_MAX] */
	int n_overrides, cap_overrides;
	struct shard_override *overrides;
	int *override_lines; /* [cap_overrides] */
};

static bool fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "line N: " and the message into err; always false. */
static bool fail(struct parse *p, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->err, p->errlen, "line %d: ", p->line);

	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* A decimal number without sign that fits in 64 bits. */
static bool read_u64(const char *word, uint64_t *v)
{
	uint64_t n = 0;

	if (!*word)
		return false;
	for (; *word; word++) {
		if (*word < '0' || *word > '9' || n > (UINT64_MAX - (uint64_t)(*word - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*word - '0');
	}
	*v = n;
	return true;
}

static int shard_named(const struct parse *p, const char *name)
{
	for (int i = 0; i < p->n_shards; i++)
		if (strcmp(p->names[i], name) == 0)
			return i;
	return -1;
}

/* The index of a shard a range or override names; -1 (err set) when there is none. */
static int known_shard(struct parse *p, const char *name)
{
	int s = shard_named(p, name);

	if (s < 0)
		fail(p, "no shard named %s: declare it with a shard line before it is used", name);
	return s;
}

static bool do_format(struct parse *p, char **w)
{
	uint64_t v;

	if (!read_u64(w[0], &v) || v != FORMAT_VERSION)
		return fail(p, "format %s: this pgmux reads format %d only", w[0], FORMAT_VERSION);
	return true;
}

static bool do_version(struct parse *p, char **w)
{
	if (!read_u64(w[0], &p->version))
		return fail(p, "version %s: a whole number from 1", w[0]);
	if (p->version == 0)
		return fail(p, "version 0: versions start at 1");
	return true;
}

static bool do_buckets(struct parse *p, char **w)
{
	uint64_t n;

	if (!read_u64(w[0], &n) || n == 0 || n > 65536 || (n & (n - 1)))
		return fail(p, "buckets %s: a power of two up to 65536", w[0]);
	p->n_buckets = (uint32_t)n;
	p->owner = malloc(n * sizeof(*p->owner));
	if (!p->owner)
		return fail(p, "out of memory");
	memset(p->owner, 0xff, n * sizeof(*p->owner));
	return true;
}

static bool do_seed(struct parse *p, char **w)
{
	if (!read_u64(w[0], &p->seed))
		return fail(p, "seed %s: a whole number from 0 to 2^64-1", w[0]);
	return true;
}

static bool do_shard(struct parse *p, char **w)
{
	char *end;
	double weight;

	if (!shard_map_name_ok(w[0]))
		return fail(p, "shard %s: a name is 1 to %d letters, digits, _ or -", w[0],
			    SHARD_NAME_MAX - 1);
	if (shard_named(p, w[0]) >= 0)
		return fail(p, "shard %s is declared twice", w[0]);
	if (p->n_shards == SHARD_MAX)
		return fail(p, "more than %d shards", SHARD_MAX);
	if (strcmp(w[1], "weight") != 0)
		return fail(p, "shard %s %s: expected 'shard NAME weight W'", w[0], w[1]);
	errno = 0;
	weight = strtod(w[2], &end);
	if (*end || end == w[2] || errno || !isfinite(weight) || !(weight > 0))
		return fail(p, "shard %s weight %s: a weight is a positive number", w[0], w[2]);
	snprintf(p->names[p->n_shards], SHARD_NAME_MAX, "%s", w[0]);
	p->weights[p->n_shards++] = weight;
	return true;
}

static bool do_range(struct parse *p, char **w)
{
	uint64_t lo, hi;
	char *dash = strchr(w[0], '-');
	int s;

	if (!p->n_buckets)
		return fail(p, "a range before the buckets line");
	if (dash)
		*dash = '\0';
	if (!read_u64(w[0], &lo) || !read_u64(dash ? dash + 1 : w[0], &hi) || lo > hi)
		return fail(p, "range %s%s%s: expected FIRST-LAST (FIRST <= LAST) or one bucket",
			    w[0], dash ? "-" : "", dash ? dash + 1 : "");
	if (hi >= p->n_buckets)
		return fail(p, "bucket %" PRIu64 " is beyond the last bucket, %" PRIu32, hi,
			    p->n_buckets - 1);
	if ((s = known_shard(p, w[1])) < 0)
		return false;
	for (uint64_t b = lo; b <= hi; b++)
		if (p->owner[b] != NO_SHARD)
			return fail(p, "bucket %" PRIu64 " is already in another range", b);
	for (uint64_t b = lo; b <= hi; b++)
		p->owner[b] = (uint16_t)s;
	p->covered += (uint32_t)(hi - lo + 1);
	return true;
}

static bool do_override(struct parse *p, char **w)
{
	int s;

	if (!shard_map_key_ok(w[0]))
		return fail(p, "override key: 1 to %d bytes without control characters",
			    SHARD_KEY_MAX);
	if ((s = known_shard(p, w[1])) < 0)
		return false;
	if (p->n_overrides == p->cap_overrides) {
		int cap = p->cap_overrides ? p->cap_overrides * 2 : 16;
		struct shard_override *o = realloc(p->overrides, (size_t)cap * sizeof(*o));
		int *lines = o ? realloc(p->override_lines, (size_t)cap * sizeof(*lines)) : NULL;

		if (o)
			p->overrides = o;
		if (!lines)
			return fail(p, "out of memory");
		p->override_lines = lines;
		p->cap_overrides = cap;
	}
	p->overrides[p->n_overrides].key = strdup(w[0]);
	if (!p->overrides[p->n_overrides].key)
		return fail(p, "out of memory");
	p->overrides[p->n_overrides].shard = s;
	p->override_lines[p->n_overrides++] = p->line;
	return true;
}

static bool do_checksum(struct parse *p, char **w)
{
	char *end;

	errno = 0;
	p->checksum = strtoull(w[0], &end, 16);
	if (strlen(w[0]) != 16 || *end || errno || strspn(w[0], "0123456789abcdefABCDEF") != 16)
		return fail(p, "checksum %s: 16 hexadecimal digits", w[0]);
	return true;
}

static const struct directive {
	const char *name;
	int words; /* after the name */
	bool once; /* at most one line of it; its line kept in seen[] */
	bool (*apply)(struct parse *p, char **w);
} DIRECTIVES[] = {
	{ "format", 1, true, do_format },      { "version", 1, true, do_version },
	{ "buckets", 1, true, do_buckets },    { "seed", 1, true, do_seed },
	{ "shard", 3, false, do_shard },       { "range", 2, false, do_range },
	{ "override", 2, false, do_override }, { "checksum", 1, true, do_checksum },
};
#define N_DIRECTIVES (sizeof(DIRECTIVES) / sizeof(DIRECTIVES[0]))
#define FORMAT 0
#define CHECKSUM 7

/*
 * Split line (NUL-terminated, changed in place) into up to MAX_WORDS words; a word is a run
 * of non-blanks, or a single-quoted string with '' for a quote; `#` at a word's start ends
 * the line. The number of words, -1 (err set) when a quote is wrong.
 */
static int split(struct parse *p, char *line, char **w)
{
	int n = 0;

	for (char *s = line;;) {
		char *out;

		s += strspn(s, " \t");
		if (!*s || *s == '#' || n == MAX_WORDS)
			return n;
		if (*s != '\'') {
			w[n++] = s;
			s += strcspn(s, " \t'");
			if (*s == '\'')
				return fail(p,
					    "a quote inside a word: quote the whole key, as 'it''s'"),
				       -1;
			if (*s)
				*s++ = '\0';
			continue;
		}
		w[n++] = out = ++s;
		for (;; s++) {
			if (!*s)
				return fail(p, "a quoted key without its closing quote"), -1;
			if (*s == '\'' && s[1] != '\'')
				break;
			*out++ = *s;
			s += *s == '\'';
		}
		s++;
		if (*s && *s != ' ' && *s != '\t')
			return fail(p, "text right after a closing quote"), -1;
		*out = '\0';
	}
}

static bool parse_line(struct parse *p, char *line)
{
	char *w[MAX_WORDS];
	int n = split(p, line, w);
	size_t d;

	if (n <= 0)
		return n == 0;
	for (d = 0; d < N_DIRECTIVES && strcmp(w[0], DIRECTIVES[d].name) != 0; d++)
		;
	if (d == N_DIRECTIVES)
		return fail(p, "unknown directive %.40s", w[0]);
	if (p->seen[CHECKSUM])
		return fail(p, "%s after the checksum line: the checksum ends the map", w[0]);
	if (d != FORMAT && !p->seen[FORMAT])
		return fail(p, "%s before the format line: a map starts with 'format %d'", w[0],
			    FORMAT_VERSION);
	if (DIRECTIVES[d].once && p->seen[d])
		return fail(p, "%s again (first on line %d)", w[0], p->seen[d]);
	if (n - 1 != DIRECTIVES[d].words)
		return fail(p, "%s takes %d word%s after it, not %d", w[0], DIRECTIVES[d].words,
			    DIRECTIVES[d].words == 1 ? "" : "s", n - 1);
	if (DIRECTIVES[d].once)
		p->seen[d] = p->line;
	return DIRECTIVES[d].apply(p, w + 1);
}

/* The checks only the whole text allows, at the checksum's line (or the last line). */
static bool check_whole(struct parse *p)
{
	static const char *const required[] = { "format", "version", "buckets", "seed" };

	for (size_t d = 0; d < sizeof(required) / sizeof(required[0]); d++)
		if (!p->seen[d])
			return fail(p, "no %s line", required[d]);
	if (!p->n_shards)
		return fail(p, "no shard line");
	if (!p->seen[CHECKSUM])
		return fail(p, "no checksum line at the end: the map is incomplete or truncated");
	p->line = p->seen[CHECKSUM];
	if (p->covered != p->n_buckets) {
		uint32_t lo = 0, hi;

		while (p->owner[lo] != NO_SHARD)
			lo++;
		for (hi = lo; hi + 1 < p->n_buckets && p->owner[hi + 1] == NO_SHARD; hi++)
			;
		return fail(p, "buckets %" PRIu32 "-%" PRIu32 " are in no range", lo, hi);
	}
	return true;
}

/* Move what p gathered into a new map (p keeps nothing it must free twice). */
static struct shard_map *build(struct parse *p)
{
	struct shard_map *m = calloc(1, sizeof(*m));

	if (!m || !(m->names = calloc((size_t)p->n_shards, sizeof(*m->names))) ||
	    !(m->weights = calloc((size_t)p->n_shards, sizeof(*m->weights)))) {
		shard_map_free(m);
		fail(p, "out of memory");
		return NULL;
	}
	m->version = p->version;
	m->seed = p->seed;
	m->n_buckets = p->n_buckets;
	m->n_shards = p->n_shards;
	memcpy(m->names, p->names, (size_t)p->n_shards * sizeof(*m->names));
	memcpy(m->weights, p->weights, (size_t)p->n_shards * sizeof(*m->weights));
	m->owner = p->owner;
	m->n_overrides = p->n_overrides;
	m->overrides = p->overrides;
	p->owner = NULL;
	p->overrides = NULL;
	p->n_overrides = 0;
	m->checksum = p->checksum;
	return m;
}

/* The map's own checks, with the line to blame. */
static bool check_map(struct parse *p, const struct shard_map *m)
{
	int twice = shard_map_override_twice(m);
	uint64_t sum = shard_map_checksum(m);
	char why[256];

	if (twice >= 0) {
		p->line = p->override_lines[twice];
		return fail(p, "override %.100s is set twice", m->overrides[twice].key);
	}
	if (sum != m->checksum)
		return fail(p,
			    "checksum %016" PRIx64 " does not match the content (%016" PRIx64
			    "): the map was edited or damaged; make changes with pgmux --shard-map "
			    "plan or override, or restore the file",
			    m->checksum, sum);
	if (!shard_map_validate(m, why, sizeof(why)))
		return fail(p, "%s", why);
	return true;
}

static void parse_free(struct parse *p)
{
	for (int i = 0; i < p->n_overrides; i++)
		free(p->overrides[i].key);
	free(p->overrides);
	free(p->override_lines);
	free(p->owner);
	free(p->names);
	free(p->weights);
}

struct shard_map *shard_map_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct parse p = { .err = err, .errlen = errlen };
	struct shard_map *m = NULL;
	char *line = malloc(len + 1);
	bool ok;

	p.names = calloc(SHARD_MAX, sizeof(*p.names));
	p.weights = calloc(SHARD_MAX, sizeof(*p.weights));
	ok = line && p.names && p.weights;
	if (!ok)
		fail(&p, "out of memory");
	for (size_t at = 0; ok && at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = (nl ? (size_t)(nl - text) : len) - at;

		bool cr = n && text[at + n - 1] == '\r';

		p.line++;
		memcpy(line, text + at, n - cr);
		line[n - cr] = '\0';
		if (memchr(line, '\0', n - cr))
			ok = fail(&p, "a NUL byte: this is not a map file");
		else
			ok = parse_line(&p, line);
		at += n + 1;
	}
	if (ok && p.line == 0)
		p.line = 1;
	if (ok && check_whole(&p) && (m = build(&p)) && !check_map(&p, m)) {
		shard_map_free(m);
		m = NULL;
	}
	parse_free(&p);
	free(line);
	return m;
}
