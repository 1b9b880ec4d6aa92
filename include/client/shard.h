/*
 * client/shard: which shard serves a unit of work of a client of a sharded database (shards=).
 *
 * A client connects to the sharded database but is always in the pool of one of its shards:
 * at login the shard its startup options name (or the first), then, at the start of each unit
 * of work, the shard that owns the unit's key. The key is looked for in this order: a leading
 * comment (pgmux:shard_key= or pgmux:shard=), SET LOCAL then SET pgmux.shard_key / pgmux.shard
 * (answered by pgmux), the pgmux.shard_key startup option, and the statement itself (WHERE key =,
 * IN lists, INSERT rows, Bind parameters). A unit that touches no table stays where the client
 * is; a unit whose keys fall on several shards is refused, as is one without a key unless
 * no_shard_key names a shard. A transaction stays on the shard its first keyed statement chose.
 */
#ifndef PGMUX_CLIENT_SHARD_H
#define PGMUX_CLIENT_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"

struct database;
struct config;
struct db_entry;
struct loaded_shard_map;
struct pools;

/*
 * The database of shard k of the sharded database db (its shards' entries are "DB.SHARD"), or
 * NULL when the config in force has no such shard.
 */
struct database *client_shard_database(struct clients *cs, struct database *db, int k);

/*
 * At login, c (authenticated, no pool yet) connects to the sharded database db: the database of
 * the shard it starts on, from its startup options (pgmux.shard_key, pgmux.shard) or else the
 * first shard. NULL: c was closed with an error (a bad key or shard name).
 */
struct database *client_shard_login(struct client *c, struct database *db);

/*
 * An idle client of a sharded database starts a unit of work with this message: answer its SET
 * pgmux.shard_key, or find the unit's shard and move c to that shard's pool (pool_client_move).
 * CONN_FORWARD: go on routing in c->pool. Anything else: handled here (refused, answered, or
 * CONN_NEED_WHOLE).
 */
enum conn_action client_shard_unit(struct client *c, const struct pkt_header *hdr,
				   const uint8_t *whole);

/*
 * A client of a sharded database in a transaction on its shard sends more: a statement whose
 * key is on another shard is refused, and the transaction ends (its server is closed, which
 * rolls it back) so that nothing of it is applied; the client's transaction is then failed, as
 * on a server. CONN_FORWARD: it belongs here.
 */
enum conn_action client_shard_linked(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole);

/*
 * The shard (index in its [shards.NAME] section) of a key given as text, in map, for keys of
 * key_type (enum shard_key_kind); -1 with why: not a key of that type.
 */
int client_shard_of_text(const struct loaded_shard_map *map, int key_type, const char *text,
			 size_t len, char *why, size_t whylen);

/* The startup option pgmux.shard_key or pgmux.shard: kept for login; false: not one of them. */
bool client_take_shard_option(struct client *c, const char *name, const char *value);

/* Where SHOW ROUTE FOR says a statement goes (no Bind: a parameter is no key). */
struct shard_explain {
	int shard;         /* index in the [shards.NAME] section; -1: none */
	char found_by[64]; /* "key", "hint: key", "no key: no_shard_key", ... */
	char refusal[400]; /* why a client would be refused; "" when it would not */
};

/* Where a unit of work of home (a sharded entry) made of sql would go. false: not sharded. */
bool client_shard_explain(const struct config *cfg, const struct db_entry *home,
			  const struct loaded_shard_map *map, const char *sql, size_t len,
			  struct shard_explain *out);

/* Where one key value lives (SHOW SHARD FOR). */
struct shard_key_place {
	uint64_t hash; /* PostgreSQL's hash of the key with the map's seed */
	uint32_t bucket;
	int shard;        /* index in the [shards.NAME] section */
	bool by_override; /* the map's override list placed it, not its bucket */
};

/* The place of key (its text form) in home's map; false with err: not sharded, a bad key. */
bool client_shard_of_key(const struct config *cfg, const struct db_entry *home,
			 const struct loaded_shard_map *map, const char *text,
			 struct shard_key_place *out, char *err, size_t errlen);

/*
 * A read sent to every shard (no_shard_key = all) runs shard after shard; these keep the client
 * from hearing each shard's answer whole. client_fanout_message: a message of the current
 * shard's answer: CONN_CONSUME drops it (a CommandComplete, counted; a description the client
 * already has), CONN_FORWARD relays it. client_fanout_on_ready: the shard sent ReadyForQuery;
 * true: another shard follows, so it is not relayed (and client_fanout_next is called once the
 * server is released); false: the total CommandComplete was queued, relay it.
 */
enum conn_action client_fanout_message(struct client *c, const struct pkt_header *hdr,
				       const uint8_t *whole);
bool client_fanout_on_ready(struct client *c);
/* The request goes back in front of the client's input, for the next shard. */
void client_fanout_next(struct client *c);
/* Has a read going to every shard been answered by some shard already? */
bool client_fanout_midway(const struct client *c);

/* A unit held by a bucket move (reshard/mover.h) goes on: its first message is read again. */
void client_shard_resume(struct client *c);

/*
 * What a bucket move's hold waits for: the units of work on shard from of section set (in
 * cfg, the config in force) that began before started_us, when the move started (their keys
 * were never looked at), or that touch buckets it copies; linked to a server, or queued for one.
 */
int client_units_running(struct pools *pools, const struct config *cfg, const char *set,
			 const char *from, uint64_t started_us);

/* Free what the client holds for sharding (at close). */
void client_shard_free(struct client *c);

#endif
