/*
 * reshard/shardmaps: the shard map in force for each [shards.NAME] section. A map file is read
 * with the config (config/config.c), so RELOAD swaps settings and map together; a map kept in
 * etcd (map = etcd:URL,.../KEY) is read and watched here, and the last good version stays in
 * force when etcd cannot be reached, the key is deleted, or etcd offers a map that is not valid
 * (does not parse, fails its checksum, does not fit the section, or has a lower version than
 * the map in force with another checksum).
 *
 * Each etcd section is read (range) when a config is put in force, then watched from the
 * revision read on; a broken watch or an unreachable etcd is retried on the next endpoint after
 * a back-off of 0.5 s doubling to 5 s, and read again before it is watched again. Every state
 * hangs off struct reshard (rs->shard_maps); each section is independent of the others.
 */
#ifndef PGMUX_RESHARD_SHARDMAPS_H
#define PGMUX_RESHARD_SHARDMAPS_H

#include <stddef.h>
#include <stdint.h>

struct reshard;
struct shards_entry;
struct loaded_shard_map;

/*
 * Follow *rs->cfg (at start and after every change of the config in force): each etcd section
 * is read and watched anew; a map in force for a section of the same name and source stays in
 * force if it still fits the section. Requests go out from the loop: nothing is called back
 * before this returns. Problems (out of memory) are logged.
 */
void reshard_maps_apply(struct reshard *rs);

/* Stop every request and free every map and state (at exit, before the loop is destroyed). */
void reshard_maps_free(struct reshard *rs);

/*
 * The map in force for set (of the config in force); NULL: none yet (etcd not read, or nothing
 * valid there). Borrowed: valid until the loop runs again.
 */
const struct loaded_shard_map *reshard_shard_map(struct reshard *rs,
						 const struct shards_entry *set);

/*
 * etcd's mod_revision of the map in force for set (0: none, or a map file): what a move's
 * compare-and-swap expects, and how far this instance has followed the key.
 */
int64_t reshard_shard_map_revision(struct reshard *rs, const struct shards_entry *set);

/* Where set's map comes from and how that goes, for SHOW SHARDS ("file", ...), into buf. */
const char *reshard_shard_map_state(struct reshard *rs, const struct shards_entry *set, char *buf,
				    size_t len);

#endif
