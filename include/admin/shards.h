/*
 * admin/shards: the admin console's views of sharded databases: SHOW SHARDS (each shard with its
 * cluster, weight, buckets, share of the keys and the map in force), SHOW SHARD FOR key (where
 * one key lives) and SHOW ROUTE FOR statement (where a statement would go, and why). Reading
 * only: nothing here changes a client, server or pool.
 */
#ifndef PGMUX_ADMIN_SHARDS_H
#define PGMUX_ADMIN_SHARDS_H

#include <stdbool.h>
#include <stddef.h>

#include "admin/parse.h"

struct worker;
struct msgbuf;

/*
 * Append the answer to cmd (ADMIN_SHOW_SHARDS, _SHARD or _ROUTE) to mb, with its CommandComplete.
 * false: nothing appended; err holds the message and *sqlstate its SQLSTATE (a database that is
 * not sharded, a key that is not one).
 */
bool admin_show_sharding(struct worker *w, const struct admin_cmd *cmd, struct msgbuf *mb,
			 const char **sqlstate, char *err, size_t errlen);

/* SHOW MOVES: each bucket move with its step and progress, rows only (no CommandComplete). */
void admin_show_moves(struct worker *w, struct msgbuf *mb);

#endif
