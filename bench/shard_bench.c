/*
 * shard_bench: what the shard map gives and costs, run by `make bench-shards` in a few seconds.
 *
 *   balance   keys per shard, max / mean, for 2..64 equal shards over 1M sequential ids (1..1M)
 *             and 1M random int64 ids, 16384 buckets (goal: at most 1.02)
 *   movement  adding a shard to N: the fraction of 1M keys that change shard against the ideal
 *             1/(N+1), and the keys that move between two old shards (must be 0)
 *   cost      ns per key for the bucket hash plus the map lookup, int8, text of 8-20 bytes and
 *             uuid keys, best of 5 runs over 1M keys
 *
 * Exits 1 when a key moves between old shards or a plan fails, so the figures can be trusted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shard/bucket.h"
#include "shard/map.h"

#define KEYS 1000000
#define BUCKETS 16384
#define RUNS 5
#define BALANCE_GOAL 1.02

static const char *const NAMES[] = {
	"s0",  "s1",  "s2",  "s3",  "s4",  "s5",  "s6",  "s7",  "s8",  "s9",  "s10", "s11", "s12",
	"s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25",
	"s26", "s27", "s28", "s29", "s30", "s31", "s32", "s33", "s34", "s35", "s36", "s37", "s38",
	"s39", "s40", "s41", "s42", "s43", "s44", "s45", "s46", "s47", "s48", "s49", "s50", "s51",
	"s52", "s53", "s54", "s55", "s56", "s57", "s58", "s59", "s60", "s61", "s62", "s63",
};
static double ones[64];

/* xorshift64: reproducible random keys. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct shard_map *create(int n)
{
	char err[200];
	struct shard_map *m = shard_map_create(BUCKETS, 0, NAMES, ones, n, err, sizeof(err));

	if (!m) {
		fprintf(stderr, "shard_bench: %s\n", err);
		exit(1);
	}
	return m;
}

static double max_over_mean(const struct shard_map *m, const int64_t *keys)
{
	static uint32_t on[64];
	uint32_t max = 0;

	memset(on, 0, sizeof(on));
	for (int i = 0; i < KEYS; i++)
		on[shard_map_shard_of(m, bucket_hash_int8(keys[i], m->seed))]++;
	for (int s = 0; s < m->n_shards; s++)
		max = on[s] > max ? on[s] : max;
	return max / ((double)KEYS / m->n_shards);
}

static void balance(const int64_t *sequential, const int64_t *random)
{
	static const int shards[] = { 2, 3, 5, 8, 16, 64 };

	printf("balance: keys per shard, max/mean (goal <= %.2f), %d buckets\n", BALANCE_GOAL,
	       BUCKETS);
	printf("  %6s  %14s  %14s\n", "shards", "1M sequential", "1M random");
	for (size_t i = 0; i < sizeof(shards) / sizeof(shards[0]); i++) {
		struct shard_map *m = create(shards[i]);
		double seq = max_over_mean(m, sequential), rnd = max_over_mean(m, random);

		printf("  %6d  %9.4f %-4s  %9.4f %-4s\n", shards[i], seq,
		       seq <= BALANCE_GOAL ? "ok" : "over", rnd, rnd <= BALANCE_GOAL ? "ok" : "over");
		shard_map_free(m);
	}
}

static int movement(const int64_t *keys)
{
	static const int from[] = { 2, 4, 8, 16 };
	int status = 0;

	printf("\nmovement: adding one shard, 1M sequential keys\n");
	printf("  %9s  %9s  %9s  %21s  %5s\n", "shards", "moved", "ideal", "between old shards",
	       "runs");
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		int n = from[i], runs = 0;
		struct shard_map *old = create(n), *m;
		struct shard_move *moves;
		size_t n_moves;
		char err[200];
		long moved = 0, between_old = 0;

		m = shard_map_plan(old, NAMES, ones, n + 1, &moves, &n_moves, err, sizeof(err));
		if (!m) {
			fprintf(stderr, "shard_bench: %s\n", err);
			exit(1);
		}
		for (int k = 0; k < KEYS; k++) {
			uint64_t h = bucket_hash_int8(keys[k], 0);
			int a = shard_map_shard_of(old, h), b = shard_map_shard_of(m, h);

			moved += a != b;
			between_old += a != b && b != n;
		}
		for (uint32_t b = 0; b < m->n_buckets; b++)
			runs += b == 0 || m->owner[b] != m->owner[b - 1];
		printf("  %3d -> %-3d  %9.4f  %9.4f  %21ld  %5d\n", n, n + 1, (double)moved / KEYS,
		       1.0 / (n + 1), between_old, runs);
		if (between_old)
			status = 1;
		free(moves);
		shard_map_free(m);
		shard_map_free(old);
	}
	return status;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

enum key_type { INT8, TEXT, UUID };

/* ns per key for hash + lookup over all keys of one type, best of RUNS. */
static double cost(const struct shard_map *m, enum key_type type, const int64_t *ints,
		   const char *texts, const uint32_t *text_at, const uint8_t *uuids)
{
	double best = 1e18;
	volatile uint32_t sink = 0;

	for (int run = 0; run < RUNS; run++) {
		double t0 = now_ns();
		uint32_t acc = 0;

		for (int k = 0; k < KEYS; k++) {
			uint64_t h = type == INT8 ? bucket_hash_int8(ints[k], 0)
				     : type == TEXT
					     ? bucket_hash_text(texts + text_at[k],
								text_at[k + 1] - text_at[k], 0)
					     : bucket_hash_uuid(uuids + 16 * (size_t)k, 0);

			acc += (uint32_t)shard_map_shard_of(m, h);
		}
		double ns = (now_ns() - t0) / KEYS;

		sink += acc;
		if (ns < best)
			best = ns;
	}
	(void)sink;
	return best;
}

int main(void)
{
	int64_t *sequential = malloc(KEYS * sizeof(*sequential));
	int64_t *random = malloc(KEYS * sizeof(*random));
	char *texts = malloc((size_t)KEYS * 20);
	uint32_t *text_at = malloc((KEYS + 1) * sizeof(*text_at));
	uint8_t *uuids = malloc((size_t)KEYS * 16);
	uint64_t s = 0x9e3779b97f4a7c15ull;
	struct shard_map *m;
	int status;

	if (!sequential || !random || !texts || !text_at || !uuids) {
		fprintf(stderr, "shard_bench: out of memory\n");
		return 1;
	}
	for (int i = 0; i < 64; i++)
		ones[i] = 1;
	text_at[0] = 0;
	for (int k = 0; k < KEYS; k++) {
		int len = 8 + (int)(next_random(&s) % 13); /* 8..20 bytes */

		sequential[k] = k + 1;
		random[k] = (int64_t)next_random(&s);
		for (int j = 0; j < len; j++)
			texts[text_at[k] + (uint32_t)j] = (char)('a' + next_random(&s) % 26);
		text_at[k + 1] = text_at[k] + (uint32_t)len;
		for (int j = 0; j < 16; j += 8) {
			uint64_t r = next_random(&s);

			memcpy(uuids + 16 * (size_t)k + j, &r, 8);
		}
	}
	balance(sequential, random);
	status = movement(sequential);
	m = create(8);
	printf("\ncost: bucket hash + map lookup, ns per key (best of %d x 1M, 8 shards)\n", RUNS);
	printf("  int8 %6.1f   text(8-20 bytes) %6.1f   uuid %6.1f\n",
	       cost(m, INT8, random, texts, text_at, uuids),
	       cost(m, TEXT, random, texts, text_at, uuids),
	       cost(m, UUID, random, texts, text_at, uuids));
	shard_map_free(m);
	free(sequential);
	free(random);
	free(texts);
	free(text_at);
	free(uuids);
	return status;
}
