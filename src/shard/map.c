/*
 * shard/map: building, planning and checking shard maps (see map.h).
 *
 * Shares are whole buckets: a shard's quota is its weight's share of the buckets, rounded by
 * largest remainder so the quotas add up exactly. Buckets are dealt out by smooth weighted
 * round robin, which gives each shard exactly its quota and spreads a shard's buckets over the
 * whole range instead of one run.
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

/* Names non-empty, short enough and distinct; weights positive and finite. */
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
		if (!(weights[i] > 0) || !isfinite(weights[i]))
			return fail(err, errlen, "shard %s: weight must be a positive number", names[i]);
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

/*
 * The next of `left` shards to receive a bucket under smooth weighted round robin by want:
 * each shard's credit grows by its want, the largest credit wins and pays the total back.
 */
static int deal(const uint32_t *want, int64_t *credit, int n, uint32_t total)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		if (!want[i])
			continue;
		credit[i] += want[i];
		if (best < 0 || credit[i] > credit[best])
			best = i;
	}
	credit[best] -= total;
	return best;
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
	uint32_t *quota;
	int64_t *credit;

	if (!power_of_two(n_buckets) || n_buckets > 65536) {
		fail(err, errlen, "buckets must be a power of two up to 65536, not %u", n_buckets);
		return NULL;
	}
	if (!check_shards(names, weights, n, err, errlen))
		return NULL;
	m = map_alloc(n_buckets, seed, names, weights, n);
	quota = calloc((size_t)n, sizeof(*quota));
	credit = calloc((size_t)n, sizeof(*credit));
	if (!m || !quota || !credit) {
		fail(err, errlen, "out of memory");
		shard_map_free(m);
		m = NULL;
	} else {
		quotas(n_buckets, weights, n, quota);
		for (uint32_t b = 0; b < n_buckets; b++)
			m->owner[b] = (uint16_t)deal(quota, credit, n, n_buckets);
		m->version = 1;
		m->checksum = shard_map_checksum(m);
	}
	free(quota);
	free(credit);
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

/*
 * Give up buckets above each shard's quota (its highest-numbered ones) and the buckets of
 * shards that are gone, then deal them to the shards below their quota. freed holds room for
 * n_buckets entries; want[i] ends as what shard i lacked.
 */
static void rebalance(struct shard_map *m, const int *had, const uint32_t *quota, uint32_t *want,
		      uint32_t *freed, int64_t *credit)
{
	uint32_t *count = want, n_freed = 0, total_want = 0;

	memset(count, 0, (size_t)m->n_shards * sizeof(*count));
	for (uint32_t b = 0; b < m->n_buckets; b++)
		if (had[b] >= 0)
			count[had[b]]++;
	for (uint32_t b = m->n_buckets; b-- > 0;) {
		int s = had[b];

		if (s < 0 || count[s] > quota[s]) {
			if (s >= 0)
				count[s]--;
			freed[n_freed++] = b;
		} else {
			m->owner[b] = (uint16_t)s;
		}
	}
	for (int i = 0; i < m->n_shards; i++) {
		want[i] = quota[i] - count[i];
		total_want += want[i];
	}
	/* freed is in descending order: deal from the lowest bucket up. */
	for (uint32_t k = n_freed; k-- > 0;)
		m->owner[freed[k]] = (uint16_t)deal(want, credit, m->n_shards, total_want);
}

struct shard_map *shard_map_plan(const struct shard_map *old, const char *const *names,
				 const double *weights, int n, struct shard_move **moves,
				 size_t *n_moves, char *err, size_t errlen)
{
	struct shard_map *m = NULL;
	int *to_new = NULL, *had = NULL;
	uint32_t *quota = NULL, *want = NULL, *freed = NULL;
	int64_t *credit = NULL;
	size_t k = 0;

	*moves = NULL;
	*n_moves = 0;
	if (!check_shards(names, weights, n, err, errlen))
		return NULL;
	m = map_alloc(old->n_buckets, old->seed, names, weights, n);
	to_new = calloc((size_t)old->n_shards, sizeof(*to_new));
	had = calloc(old->n_buckets, sizeof(*had));
	quota = calloc((size_t)n, sizeof(*quota));
	want = calloc((size_t)n, sizeof(*want));
	credit = calloc((size_t)n, sizeof(*credit));
	freed = calloc(old->n_buckets, sizeof(*freed));
	*moves = calloc(old->n_buckets, sizeof(**moves));
	if (!m || !to_new || !had || !quota || !want || !credit || !freed || !*moves) {
		fail(err, errlen, "out of memory");
		shard_map_free(m);
		m = NULL;
		free(*moves);
		*moves = NULL;
		goto done;
	}
	match_names(old, names, n, to_new);
	for (uint32_t b = 0; b < old->n_buckets; b++)
		had[b] = to_new[old->owner[b]];
	quotas(old->n_buckets, weights, n, quota);
	rebalance(m, had, quota, want, freed, credit);
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
	free(want);
	free(credit);
	free(freed);
	return m;
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
	return h;
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
	for (int i = 0; i < m->n_shards; i++)
		names[i] = m->names[i];
	if (!check_shards(names, m->weights, m->n_shards, err, errlen))
		return false;
	for (uint32_t b = 0; b < m->n_buckets; b++)
		if (m->owner[b] >= m->n_shards)
			return fail(err, errlen, "bucket %u names shard %u, but there are %d", b,
				    m->owner[b], m->n_shards);
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
	free(m->names);
	free(m->weights);
	free(m->owner);
	free(m);
}
