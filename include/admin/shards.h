/*
 * admin/shards: the admin console's views of sharded databases: SHOW SHARDS (each shard with its
 * cluster, weight, buckets, share of the keys and the map in force), SHOW SHARD FOR key (where
 * one key lives), SHOW ROUTE FOR statement (where a statement would go, and why) and SHOW MOVES
 * (each bucket move with its step and progress). They read the resharding state (struct
 * reshard: the config in force and the topology it is lent, the maps in force, the moves), not
 * the worker's. Reading only: nothing here changes a client, server, pool or move.
 */
#ifndef PGMUX_ADMIN_SHARDS_H
#define PGMUX_ADMIN_SHARDS_H

#include <stdbool.h>
#include <stddef.h>

#include "admin/parse.h"

struct msgbuf;
struct reshard;

/*
 * Append the answer to cmd (ADMIN_SHOW_SHARDS, _SHARD, _ROUTE or _MOVES) to mb, with its
 * CommandComplete. false: nothing appended; err holds the message and *sqlstate its SQLSTATE (a
 * database that is not sharded, a key that is not one).
 */
bool admin_show_sharding(struct reshard *rs, const struct admin_cmd *cmd, struct msgbuf *mb,
			 const char **sqlstate, char *err, size_t errlen);

#endif
