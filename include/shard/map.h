/*
 * shard/map: the shard map, which bucket (shard/bucket.h) lives on which shard. The map is
 * explicit and versioned, never recomputed from the shard count: placing a key reads its
 * bucket's entry, and changing the shards is a plan from one map to the next that moves as few
 * buckets as the new weights require.
 *
 * Invariants of a valid map: n_buckets is a power of two; every bucket names a shard in
 * 0..n_shards-1; the checksum covers the bucket count, the seed, the shard names and every
 * bucket's shard, so two pgmux processes with the same version and checksum place every key
 * alike. Planning never moves a bucket between two shards that both keep at least their share.
 *
 * Pure: no I/O; maps are plain allocations the caller frees with shard_map_free().
 */
#ifndef PGMUX_SHARD_MAP_H
#define PGMUX_SHARD_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_MAX 1024          /* shards in one map */
#define SHARD_NAME_MAX 64       /* bytes of a shard's name, NUL included */

struct shard_map {
	uint64_t version;
	uint64_t checksum;                   /* shard_map_checksum() when built */
	uint64_t seed;                       /* of the bucket hash */
	uint32_t n_buckets;
	int n_shards;
	char (*names)[SHARD_NAME_MAX];       /* [n_shards] */
	double *weights;                     /* [n_shards], > 0 */
	uint16_t *owner;                     /* [n_buckets]: the shard of each bucket */
};

/* One bucket that changes shard between two maps. */
struct shard_move {
	uint32_t bucket;
	int from, to;                        /* shard indexes in the old and the new map */
};

/*
 * A first map (version 1): n shards with these names and weights, each getting its weighted
 * share of the buckets (within one bucket), interleaved. NULL (err says why) for a bucket count
 * that is not a power of two, a bad weight or name, or out of memory.
 */
struct shard_map *shard_map_create(uint32_t n_buckets, uint64_t seed, const char *const *names,
				   const double *weights, int n, char *err, size_t errlen);

/*
 * The next map (version + 1) for a new list of shards: a shard is matched by name, so an old
 * name keeps its buckets; a new name starts with none; a name left out gives all of its
 * buckets up. Buckets move only from shards above their new weighted share to shards below
 * it, so adding a shard takes about n_buckets / (N + 1) buckets from the others, evenly by
 * weight, and moves none between old shards. *moves receives the buckets that change shard
 * (from in old's indexes, to in the new map's), *n_moves their number; the caller frees both.
 */
struct shard_map *shard_map_plan(const struct shard_map *old, const char *const *names,
				 const double *weights, int n, struct shard_move **moves,
				 size_t *n_moves, char *err, size_t errlen);

/* The checksum of a map's content (not its version). */
uint64_t shard_map_checksum(const struct shard_map *m);

/* Does m hold its invariants, with its checksum? false (err says why) if not. */
bool shard_map_validate(const struct shard_map *m, char *err, size_t errlen);

/* The buckets each shard holds, into counts[n_shards]. */
void shard_map_counts(const struct shard_map *m, uint32_t *counts);

/* The shard of a hash (shard/bucket.h), as an index into names. */
static inline int shard_map_shard_of(const struct shard_map *m, uint64_t hash)
{
	return m->owner[hash & (uint64_t)(m->n_buckets - 1)];
}

void shard_map_free(struct shard_map *m);

#endif
