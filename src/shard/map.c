/*
 * shard/map: building, planning and checking shard maps (see map.h).
 *
 * Shares are whole buckets: a shard's quota is its weight's share of the buckets, rounded by
 * largest remainder so the quotas add up exactly. A first map gives each shard its quota as
 * one run, in order. A plan keeps runs whole where it can: each shard above its quota gives up
 * the excess from its highest runs, cutting a run at its end, or at its start when the buckets
 * just below are given up too or belong to a shard that takes buckets (so the pieces join);
 * then each stretch of given-up buckets goes to the shard just below it, or just above it, while
 * that one still lacks buckets, and otherwise to the shard that lacks the most.
 */
#include "shard/map.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

static bool power_of_two(uint32_t n)
{
	return n && !(n & (n - 1));
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

bool shard_map_name_ok(const char *name)
{
	size_t len = strlen(name);

	for (size_t k = 0; k < len; k++)
		if (!name_char(name[k]))
			return false;
	return len > 0 && len < SHARD_NAME_MAX;
}

/* Names non-empty, short enough, of name_char()s and distinct; weights positive and finite. */
static bool check_shards(const char *const *names, const double *weights, int n, char *err,
			 size_t errlen)
{
	if (n < 1 || n > SHARD_MAX)
		return fail(err, errlen, "a shard map needs 1 to %d shards, not %d", SHARD_MAX, n);
	for (int i = 0; i < n; i++) {
		size_t len = strlen(names[i]);

		if (len == 0 || len >= SHARD_NAME_MAX)
			return fail(err, errlen, "shard %d: a name of 1 to %d bytes", i + 1,
				    SHARD_NAME_MAX - 1);
		if (!shard_map_name_ok(names[i]))
			return fail(err, errlen,
				    "shard %s: a name holds only letters, digits, _ and -",
				    names[i]);
		if (!(weights[i] > 0) || !isfinite(weights[i]))
			return fail(err, errlen, "shard %s: weight must be a positive number",
				    names[i]);
		for (int j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return fail(err, errlen, "shard %s is named twice", names[i]);
	}
	return true;
}

/* Each shard's share of n_buckets by weight, in whole buckets adding up to n_buckets. */
static void quotas(uint32_t n_buckets, const double *weights, int n, uint32_t *quota)
{
	double total = 0, *rest = malloc((size_t)n * sizeof(*rest));
	uint32_t given = 0;

	for (int i = 0; i < n; i++)
		total += weights[i];
	for (int i = 0; i < n; i++) {
		double exact = n_buckets * (weights[i] / total);

		quota[i] = (uint32_t)exact; /* exact >= 0: truncation is the floor */
		if (rest)
			rest[i] = exact - quota[i];
		given += quota[i];
	}
	/* The buckets rounding left over go to the largest remainders (the lower index on a tie). */
	while (given < n_buckets) {
		int best = 0;

		for (int i = 1; rest && i < n; i++)
			if (rest[i] > rest[best])
				best = i;
		quota[best]++;
		if (rest)
			rest[best] = -1;
		given++;
	}
	free(rest);
}

static struct shard_map *map_alloc(uint32_t n_buckets, uint64_t seed, const char *const *names,
				   const double *weights, int n)
{
	struct shard_map *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->n_buckets = n_buckets;
	m->seed = seed;
	m->n_shards = n;
	m->names = calloc((size_t)n, sizeof(*m->names));
	m->weights = calloc((size_t)n, sizeof(*m->weights));
	m->owner = calloc(n_buckets, sizeof(*m->owner));
	if (!m->names || !m->weights || !m->owner) {
		shard_map_free(m);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		snprintf(m->names[i], SHARD_NAME_MAX, "%s", names[i]);
		m->weights[i] = weights[i];
	}
	return m;
}

struct shard_map *shard_map_create(uint32_t n_buckets, uint64_t seed, const char *const *names,
				   const double *weights, int n, char *err, size_t errlen)
{
	struct shard_map *m;
	uint32_t *quota, b = 0;

	if (!power_of_two(n_buckets) || n_buckets > 65536) {
		fail(err, errlen, "buckets must be a power of two up to 65536, not %u", n_buckets);
		return NULL;
	}
	if (!check_shards(names, weights, n, err, errlen))
		return NULL;
	m = map_alloc(n_buckets, seed, names, weights, n);
	quota = calloc((size_t)n, sizeof(*quota));
	if (!m || !quota) {
		fail(err, errlen, "out of memory");
		shard_map_free(m);
		m = NULL;
	} else {
		quotas(n_buckets, weights, n, quota);
		for (int i = 0; i < n; i++)
			for (uint32_t k = 0; k < quota[i]; k++)
				m->owner[b++] = (uint16_t)i;
		m->version = 1;
		m->checksum = shard_map_checksum(m);
	}
	free(quota);
	return m;
}

/* The new index of each old shard (by name), -1 for a shard the new list leaves out. */
static void match_names(const struct shard_map *old, const char *const *names, int n, int *to_new)
{
	for (int j = 0; j < old->n_shards; j++) {
		to_new[j] = -1;
		for (int i = 0; i < n; i++)
			if (strcmp(old->names[j], names[i]) == 0)
				to_new[j] = i;
	}
}

/* The end of the run of had[] values that starts at lo. */
static uint32_t run_end(const int *had, uint32_t n_buckets, uint32_t lo)
{
	uint32_t hi = lo;

	while (hi + 1 < n_buckets && had[hi + 1] == had[lo])
		hi++;
	return hi;
}

/*
 * Mark in freed[] the buckets that change hands: those of shards that are gone, and each
 * shard's excess (give[s]), taken from its highest runs. Each run gives its part at its start
 * when the bucket below is given up too or belongs to a shard that wants buckets, so that the
 * pieces join into longer runs, and at its end otherwise.
 */
static void give_up(const int *had, uint32_t n_buckets, uint32_t *give, const uint32_t *want,
		    uint32_t *take, bool *freed)
{
	/* How much each run gives (take[start of run]): highest runs first. */
	for (uint32_t hi = n_buckets; hi-- > 0;) {
		uint32_t lo = hi;
		int s = had[hi];

		while (lo > 0 && had[lo - 1] == s)
			lo--;
		take[lo] = 0;
		if (s >= 0 && give[s]) {
			take[lo] = give[s] < hi - lo + 1 ? give[s] : hi - lo + 1;
			give[s] -= take[lo];
		}
		hi = lo;
	}
	for (uint32_t lo = 0; lo < n_buckets;) {
		uint32_t hi = run_end(had, n_buckets, lo), t = had[lo] < 0 ? hi - lo + 1 : take[lo];
		bool at_start = lo > 0 &&
				(freed[lo - 1] || (had[lo - 1] >= 0 && want[had[lo - 1]]));
		uint32_t first = at_start ? lo : hi + 1 - t;

		for (uint32_t k = 0; k < t; k++)
			freed[first + k] = true;
		lo = hi + 1;
	}
}

/* The shard that lacks the most buckets (the lowest index on a tie). */
static int neediest(const uint32_t *want, int n)
{
	int best = 0;

	for (int i = 1; i < n; i++)
		if (want[i] > want[best])
			best = i;
	return best;
}

/*
 * Give the freed buckets lo..end-1 out: to the shard just below while it wants more, else
 * from the top to the shard just above while that one does, else to the neediest. The
 * buckets around the stretch are already placed; want[] counts down.
 */
static void hand_out(struct shard_map *m, uint32_t lo, uint32_t end, uint32_t *want)
{
	while (lo < end) {
		int below = lo > 0 ? m->owner[lo - 1] : -1;
		int above = end < m->n_buckets ? m->owner[end] : -1;
		uint32_t k;

		if (below >= 0 && want[below]) {
			k = want[below] < end - lo ? want[below] : end - lo;
			want[below] -= k;
			for (; k; k--)
				m->owner[lo++] = (uint16_t)below;
		} else if (above >= 0 && want[above]) {
			k = want[above] < end - lo ? want[above] : end - lo;
			want[above] -= k;
			for (; k; k--)
				m->owner[--end] = (uint16_t)above;
		} else {
			/* a new lower neighbour: the next round gives it what it lacks */
			int s = neediest(want, m->n_shards);

			want[s]--;
			m->owner[lo++] = (uint16_t)s;
		}
	}
}

/*
 * Fill m->owner from had[] (each bucket's shard by new index, -1 for a shard that is gone) so
 * that every shard ends with its quota, moving only buckets of shards above it (or gone) to
 * shards below it.
 */
static bool rebalance(struct shard_map *m, const int *had, const uint32_t *quota)
{
	uint32_t n = m->n_buckets, *count = calloc((size_t)m->n_shards, sizeof(*count));
	uint32_t *give = calloc((size_t)m->n_shards, sizeof(*give)),
		 *take = calloc(n, sizeof(*take));
	bool *freed = calloc(n, sizeof(*freed)), ok = count && give && take && freed;

	if (ok) {
		for (uint32_t b = 0; b < n; b++)
			if (had[b] >= 0)
				count[had[b]]++;
		/* count becomes want: what each shard lacks */
		for (int i = 0; i < m->n_shards; i++) {
			give[i] = count[i] > quota[i] ? count[i] - quota[i] : 0;
			count[i] = count[i] < quota[i] ? quota[i] - count[i] : 0;
		}
		give_up(had, n, give, count, take, freed);
		for (uint32_t b = 0; b < n; b++)
			if (!freed[b])
				m->owner[b] = (uint16_t)had[b];
		for (uint32_t lo = 0; lo < n; lo++) {
			uint32_t end = lo;

			if (!freed[lo])
				continue;
			while (end < n && freed[end])
				end++;
			hand_out(m, lo, end, count);
			lo = end; /* not freed, or n */
		}
	}
	free(count);
	free(give);
	free(take);
	free(freed);
	return ok;
}

bool shard_map_key_ok(const char *key)
{
	size_t len = strlen(key);

	if (len == 0 || len > SHARD_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			return false;
	return true;
}

static bool add_override(struct shard_map *m, const char *key, int shard)
{
	struct shard_override *o;
	char *copy = strdup(key);

	o = copy ? realloc(m->overrides, (size_t)(m->n_overrides + 1) * sizeof(*o)) : NULL;
	if (!o) {
		free(copy);
		return false;
	}
	m->overrides = o;
	o[m->n_overrides++] = (struct shard_override){ copy, shard };
	return true;
}

/* Note in err (after what it holds) an override dropped with its shard. */
static void note_dropped(char *err, size_t errlen, const struct shard_override *o,
			 const char *shard)
{
	size_t used = strlen(err);

	if (used + 1 >= errlen)
		return;
	snprintf(err + used, errlen - used, "%s%s (on %s)",
		 used ? ", " : "dropped the overrides of shards left out: ", o->key, shard);
}

/* Copy old's overrides into m with their shards' new indexes, dropping (noted in err) the rest. */
static bool carry_overrides(struct shard_map *m, const struct shard_map *old, const int *to_new,
			    char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	for (int i = 0; i < old->n_overrides; i++) {
		const struct shard_override *o = &old->overrides[i];

		if (to_new[o->shard] < 0)
			note_dropped(err, errlen, o, old->names[o->shard]);
		else if (!add_override(m, o->key, to_new[o->shard]))
			return false;
	}
	return true;
}

struct shard_map *shard_map_plan(const struct shard_map *old, const char *const *names,
				 const double *weights, int n, struct shard_move **moves,
				 size_t *n_moves, char *err, size_t errlen)
{
	struct shard_map *m = NULL;
	int *to_new = NULL, *had = NULL;
	uint32_t *quota = NULL;
	size_t k = 0;

	*moves = NULL;
	*n_moves = 0;
	if (!check_shards(names, weights, n, err, errlen))
		return NULL;
	m = map_alloc(old->n_buckets, old->seed, names, weights, n);
	to_new = calloc((size_t)old->n_shards, sizeof(*to_new));
	had = calloc(old->n_buckets, sizeof(*had));
	quota = calloc((size_t)n, sizeof(*quota));
	*moves = calloc(old->n_buckets, sizeof(**moves));
	if (m && to_new && had && quota && *moves) {
		match_names(old, names, n, to_new);
		for (uint32_t b = 0; b < old->n_buckets; b++)
			had[b] = to_new[old->owner[b]];
		quotas(old->n_buckets, weights, n, quota);
	}
	if (!m || !to_new || !had || !quota || !*moves || !rebalance(m, had, quota) ||
	    !carry_overrides(m, old, to_new, err, errlen)) {
		fail(err, errlen, "out of memory");
		shard_map_free(m);
		m = NULL;
		free(*moves);
		*moves = NULL;
		goto done;
	}
	for (uint32_t b = 0; b < old->n_buckets; b++)
		if (had[b] != m->owner[b])
			(*moves)[k++] = (struct shard_move){ b, old->owner[b], m->owner[b] };
	*n_moves = k;
	m->version = old->version + 1;
	m->checksum = shard_map_checksum(m);
done:
	free(to_new);
	free(had);
	free(quota);
	return m;
}

int shard_map_override_index(const struct shard_map *m, const char *key)
{
	for (int i = 0; i < m->n_overrides; i++)
		if (strcmp(m->overrides[i].key, key) == 0)
			return i;
	return -1;
}

/* next, built from m (ok: whole), as m's next version; NULL (freed, err says) if not built. */
static struct shard_map *next_version(const struct shard_map *m, struct shard_map *next, bool ok,
				      char *err, size_t errlen)
{
	if (!next || !ok) {
		fail(err, errlen, "out of memory");
		shard_map_free(next);
		return NULL;
	}
	next->version = m->version + 1;
	next->checksum = shard_map_checksum(next);
	return next;
}

struct shard_map *shard_map_set_override(const struct shard_map *m, const char *key, int shard,
					 char *err, size_t errlen)
{
	const char *names[SHARD_MAX];
	struct shard_map *next;
	int at = shard_map_override_index(m, key);
	bool ok = true;

	if (shard < -1 || shard >= m->n_shards) {
		fail(err, errlen, "no shard %d in a map of %d", shard, m->n_shards);
		return NULL;
	}
	if (!shard_map_key_ok(key)) {
		fail(err, errlen, "an override key is 1 to %d bytes without control characters",
		     SHARD_KEY_MAX);
		return NULL;
	}
	if (shard < 0 && at < 0) {
		fail(err, errlen, "key %s has no override to remove", key);
		return NULL;
	}
	for (int i = 0; i < m->n_shards; i++)
		names[i] = m->names[i];
	next = map_alloc(m->n_buckets, m->seed, names, m->weights, m->n_shards);
	if (next) {
		memcpy(next->owner, m->owner, m->n_buckets * sizeof(*m->owner));
		for (int i = 0; ok && i < m->n_overrides; i++)
			if (i != at)
				ok = add_override(next, m->overrides[i].key, m->overrides[i].shard);
			else if (shard >= 0)
				ok = add_override(next, key, shard);
		if (ok && at < 0)
			ok = add_override(next, key, shard);
	}
	return next_version(m, next, ok, err, errlen);
}

struct shard_map *shard_map_give(const struct shard_map *m, shard_bucket_pred moving, void *arg,
				 const char *to, char *err, size_t errlen)
{
	const char *names[SHARD_MAX];
	double weights[SHARD_MAX];
	struct shard_map *next;
	int n = m->n_shards, k = -1;
	bool ok = true;

	for (int i = 0; i < n; i++) {
		names[i] = m->names[i];
		weights[i] = m->weights[i];
		if (strcmp(m->names[i], to) == 0)
			k = i;
	}
	if (k < 0 && !shard_map_name_ok(to)) {
		fail(err, errlen, "%s cannot be a shard's name", to);
		return NULL;
	}
	if (k < 0 && n == SHARD_MAX) {
		fail(err, errlen, "a map holds at most %d shards", SHARD_MAX);
		return NULL;
	}
	if (k < 0) {
		/* Growing: the new shard comes last, with the weight a plan gives by default. */
		k = n;
		names[n] = to;
		weights[n++] = 1;
	}
	next = map_alloc(m->n_buckets, m->seed, names, weights, n);
	for (uint32_t b = 0; next && b < m->n_buckets; b++)
		next->owner[b] = moving(b, arg) ? (uint16_t)k : m->owner[b];
	for (int i = 0; next && ok && i < m->n_overrides; i++)
		ok = add_override(next, m->overrides[i].key, m->overrides[i].shard);
	return next_version(m, next, ok, err, errlen);
}

static int by_key_then_index(const void *a, const void *b)
{
	const struct shard_override *const *x = a, *const *y = b;
	int c = strcmp((*x)->key, (*y)->key);

	return c ? c : (*x > *y) - (*x < *y);
}

int shard_map_override_twice(const struct shard_map *m)
{
	const struct shard_override **sorted;
	int twice = -1;

	if (m->n_overrides < 2)
		return -1;
	sorted = malloc((size_t)m->n_overrides * sizeof(*sorted));
	if (!sorted) { /* the slow way rather than a wrong answer */
		for (int i = 1; i < m->n_overrides; i++)
			for (int j = 0; j < i; j++)
				if (strcmp(m->overrides[i].key, m->overrides[j].key) == 0)
					return i;
		return -1;
	}
	for (int i = 0; i < m->n_overrides; i++)
		sorted[i] = &m->overrides[i];
	qsort(sorted, (size_t)m->n_overrides, sizeof(*sorted), by_key_then_index);
	for (int i = 1; i < m->n_overrides && twice < 0; i++)
		if (strcmp(sorted[i]->key, sorted[i - 1]->key) == 0)
			twice = (int)(sorted[i] - m->overrides);
	free(sorted);
	return twice;
}

/* FNV-1a, 64 bits. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* An integer as little-endian bytes, so the checksum is the same on every machine. */
static uint64_t fnv_u64(uint64_t h, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++)
		h = fnv(h, &(uint8_t){ (uint8_t)(v >> (8 * i)) }, 1);
	return h;
}

uint64_t shard_map_checksum(const struct shard_map *m)
{
	uint64_t h = 0xcbf29ce484222325ull;

	h = fnv_u64(h, m->n_buckets, 4);
	h = fnv_u64(h, m->seed, 8);
	h = fnv_u64(h, (uint64_t)m->n_shards, 4);
	for (int i = 0; i < m->n_shards; i++)
		h = fnv(h, m->names[i], strlen(m->names[i]) + 1);
	for (uint32_t b = 0; b < m->n_buckets; b++)
		h = fnv_u64(h, m->owner[b], 2);
	/* the weights as IEEE 754 bits: the next plan depends on them */
	for (int i = 0; i < m->n_shards; i++) {
		uint64_t bits;

		memcpy(&bits, &m->weights[i], sizeof(bits));
		h = fnv_u64(h, bits, 8);
	}
	h = fnv_u64(h, (uint64_t)m->n_overrides, 4);
	for (int i = 0; i < m->n_overrides; i++) {
		h = fnv(h, m->overrides[i].key, strlen(m->overrides[i].key) + 1);
		h = fnv_u64(h, (uint64_t)m->overrides[i].shard, 2);
	}
	return h;
}

static bool check_overrides(const struct shard_map *m, char *err, size_t errlen)
{
	int twice;

	if (m->n_overrides < 0 || (m->n_overrides && !m->overrides))
		return fail(err, errlen, "a map with %d overrides but no list", m->n_overrides);
	for (int i = 0; i < m->n_overrides; i++) {
		const struct shard_override *o = &m->overrides[i];

		if (!o->key || !shard_map_key_ok(o->key))
			return fail(
				err, errlen,
				"override %d: a key is 1 to %d bytes without control characters",
				i + 1, SHARD_KEY_MAX);
		if (o->shard < 0 || o->shard >= m->n_shards)
			return fail(err, errlen, "override %s names shard %d, but there are %d",
				    o->key, o->shard, m->n_shards);
	}
	twice = shard_map_override_twice(m);
	if (twice >= 0)
		return fail(err, errlen, "override %s is set twice", m->overrides[twice].key);
	return true;
}

bool shard_map_validate(const struct shard_map *m, char *err, size_t errlen)
{
	const char *names[SHARD_MAX];

	if (!power_of_two(m->n_buckets) || m->n_buckets > 65536)
		return fail(err, errlen, "buckets must be a power of two up to 65536, not %u",
			    m->n_buckets);
	if (m->n_shards < 1 || m->n_shards > SHARD_MAX)
		return fail(err, errlen, "a shard map needs 1 to %d shards, not %d", SHARD_MAX,
			    m->n_shards);
	if (m->version == 0)
		return fail(err, errlen, "a map's version starts at 1");
	for (int i = 0; i < m->n_shards; i++)
		names[i] = m->names[i];
	if (!check_shards(names, m->weights, m->n_shards, err, errlen))
		return false;
	for (uint32_t b = 0; b < m->n_buckets; b++)
		if (m->owner[b] >= m->n_shards)
			return fail(err, errlen, "bucket %u names shard %u, but there are %d", b,
				    m->owner[b], m->n_shards);
	if (!check_overrides(m, err, errlen))
		return false;
	if (shard_map_checksum(m) != m->checksum)
		return fail(err, errlen, "checksum mismatch: the map was changed or damaged");
	return true;
}

void shard_map_counts(const struct shard_map *m, uint32_t *counts)
{
	memset(counts, 0, (size_t)m->n_shards * sizeof(*counts));
	for (uint32_t b = 0; b < m->n_buckets; b++)
		counts[m->owner[b]]++;
}

void shard_map_free(struct shard_map *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n_overrides; i++)
		free(m->overrides[i].key);
	free(m->overrides);
	free(m->names);
	free(m->weights);
	free(m->owner);
	free(m);
}
