/*
 * worker/shardmaps: the shard map in force for each [shards.NAME] section. A map file is read
 * with the config (config/config.c), so RELOAD swaps settings and map together; a map kept in
 * etcd (map = etcd:URL) is read and watched here, and the last good version stays in force when
 * etcd cannot be reached or offers a map that is not valid.
 */
#ifndef PGMUX_WORKER_SHARDMAPS_H
#define PGMUX_WORKER_SHARDMAPS_H

#include <stddef.h>

struct worker;
struct shards_entry;
struct loaded_shard_map;

/* The map in force for set (of w's config in force); NULL: none yet (etcd not read). Borrowed. */
const struct loaded_shard_map *worker_shard_map(struct worker *w, const struct shards_entry *set);

/* Where set's map comes from and how that goes, for SHOW SHARDS ("file", ...), into buf. */
const char *worker_shard_map_state(struct worker *w, const struct shards_entry *set, char *buf,
				   size_t len);

#endif
