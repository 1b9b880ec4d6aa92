/*
 * worker/shardmaps: the shard map in force per [shards.NAME] section (see worker/shardmaps.h).
 */
#include "worker/shardmaps.h"

#include <stdio.h>

#include "config/config.h"
#include "worker/worker.h"

const struct loaded_shard_map *worker_shard_map(struct worker *w, const struct shards_entry *set)
{
	(void)w;
	return set->loaded;
}

const char *worker_shard_map_state(struct worker *w, const struct shards_entry *set, char *buf,
				   size_t len)
{
	(void)w;
	snprintf(buf, len, "%s", config_shard_map_in_etcd(set) ? "etcd: not read" : "file");
	return buf;
}
