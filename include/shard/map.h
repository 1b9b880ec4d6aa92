/*
 * shard/map: the shard map, which bucket (shard/bucket.h) lives on which shard. The map is
 * explicit and versioned, never recomputed from the shard count: placing a key reads its
 * bucket's entry, and changing the shards is a plan from one map to the next that moves as few
 * buckets as the new weights require.
 *
 * Each shard holds its buckets in a few contiguous runs (one per shard in a first map), so the
 * map reads as a short list of ranges and a set of buckets to move is a range predicate in SQL.
 * A map may also name overrides: a shard key (its text) placed on a given shard whatever its
 * bucket, for a tenant too large to share a bucket; pgmux matches them, the map only keeps them.
 *
 * Invariants of a valid map: version >= 1; n_buckets is a power of two; every bucket names a shard in
 * 0..n_shards-1; shard names are 1 to 63 of [A-Za-z0-9_-], distinct; weights positive; every
 * override names a shard in range, its key is 1 to SHARD_KEY_MAX bytes without a control
 * character, and no key is set twice.
 * The checksum covers the bucket count, the seed, the shard names and weights, every bucket's
 * shard and the overrides in their order, so two pgmux processes with the same version and
 * checksum place every key alike. Planning never moves a bucket between two shards that both
 * keep at least their share.
 *
 * Pure: no I/O; maps are plain allocations the caller frees with shard_map_free().
 */
#ifndef PGMUX_SHARD_MAP_H
#define PGMUX_SHARD_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_MAX 1024     /* shards in one map */
#define SHARD_NAME_MAX 64  /* bytes of a shard's name, NUL included */
#define SHARD_KEY_MAX 1024 /* bytes of an override's key, NUL excluded */

struct shard_map {
	uint64_t version;
	uint64_t checksum; /* shard_map_checksum() when built */
	uint64_t seed;     /* of the bucket hash */
	uint32_t n_buckets;
	int n_shards;
	char (*names)[SHARD_NAME_MAX]; /* [n_shards] */
	double *weights;               /* [n_shards], > 0 */
	uint16_t *owner;               /* [n_buckets]: the shard of each bucket */
	int n_overrides;
	struct shard_override {
		char *key; /* malloc'd, NUL-terminated */
		int shard;
	} * overrides; /* [n_overrides] */
};

/* One bucket that changes shard between two maps. */
struct shard_move {
	uint32_t bucket;
	int from, to; /* shard indexes in the old and the new map */
};

/*
 * A first map (version 1, no overrides): n shards with these names and weights, each getting
 * its weighted share of the buckets (within one bucket) as one run, shard 0 first. NULL (err
 * says why) for a bucket count that is not a power of two, a bad weight or name, or out of
 * memory.
 */
struct shard_map *shard_map_create(uint32_t n_buckets, uint64_t seed, const char *const *names,
				   const double *weights, int n, char *err, size_t errlen);

/*
 * The next map (version + 1) for a new list of shards: a shard is matched by name, so an old
 * name keeps its buckets; a new name starts with none; a name left out gives all of its
 * buckets up. Buckets move only from shards above their new weighted share to shards below
 * it, so adding a shard takes about n_buckets / (N + 1) buckets from the others, evenly by
 * weight, and moves none between old shards. A shard gives up the end of its highest runs
 * (or the start of a run that follows buckets it gives up), and the buckets given up go out
 * in runs, so the new map stays a few ranges per shard.
 * *moves receives the buckets that change shard (from in old's indexes, to in the new map's),
 * *n_moves their number; the caller frees both. Overrides carry over to their shard's new
 * index; those of a shard left out are dropped: then the map is still returned and err says
 * which keys were dropped (err is "" otherwise). NULL (err says why) for bad shards or out of
 * memory.
 */
struct shard_map *shard_map_plan(const struct shard_map *old, const char *const *names,
				 const double *weights, int n, struct shard_move **moves,
				 size_t *n_moves, char *err, size_t errlen);

/*
 * The next map (version + 1) with key placed on shard (an index into names), or with key's
 * override removed when shard is -1. NULL (err says why) for an unknown shard, a key that
 * cannot be written (empty, too long, or holding a control character), removing a key that has no
 * override, or out of memory. A new key goes after the others; the caller frees the result.
 */
struct shard_map *shard_map_set_override(const struct shard_map *m, const char *key, int shard,
					 char *err, size_t errlen);

/* Does a bucket move (shard_map_give)? */
typedef bool (*shard_bucket_pred)(uint32_t bucket, void *arg);

/*
 * The next map (version + 1) with every bucket for which moving(bucket, arg) is true on shard
 * `to`: one of m's, or a new one (growing) added after m's shards with weight 1, which a later
 * plan may change. Overrides carry over. NULL (err says why) for a name that cannot be a
 * shard's, a map that has SHARD_MAX shards already, or out of memory.
 */
struct shard_map *shard_map_give(const struct shard_map *m, shard_bucket_pred moving, void *arg,
				 const char *to, char *err, size_t errlen);

/* Can name be a shard's name (1 to SHARD_NAME_MAX - 1 of [A-Za-z0-9_-])? */
bool shard_map_name_ok(const char *name);

/* Can key be an override's key (1 to SHARD_KEY_MAX bytes, no control character)? */
bool shard_map_key_ok(const char *key);

/* The index in m->overrides of key's override, -1 if it has none. */
int shard_map_override_index(const struct shard_map *m, const char *key);

/* The index of an override whose key an earlier one already has, -1 if no key is set twice. */
int shard_map_override_twice(const struct shard_map *m);

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
