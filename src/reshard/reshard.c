/*
 * reshard: the module's state across its parts (see reshard/reshard.h), and the table through
 * which clients ask about shard maps and bucket moves (struct shard_moves_ops), which the module
 * lends them itself so that nobody else needs to know its functions.
 */
#include "reshard/reshard.h"

#include "client/clients.h"
#include "reshard/movecoord.h"
#include "reshard/mover.h"
#include "reshard/shardmaps.h"

/* The shard maps and bucket moves as the clients ask about them (client/clients.h). */
static const struct loaded_shard_map *moves_map(void *arg, const struct shards_entry *set)
{
	return reshard_shard_map(arg, set);
}

static enum move_cover moves_bucket(void *arg, const char *set, uint32_t bucket)
{
	struct reshard *rs = arg;

	/* The common case, asked for every key a unit of work names: no move at all. */
	if (!rs->movers && !rs->movecoord)
		return MOVE_COVER_NONE;
	return reshard_moves_bucket(rs, set, bucket);
}

static bool moves_fenced(void *arg, const struct shards_entry *set)
{
	struct reshard *rs = arg;

	return rs->movecoord && reshard_coord_fenced(rs, set);
}

static bool moves_hold_client(void *arg, struct client *c)
{
	return reshard_moves_hold_client(arg, c);
}

static void moves_forget_client(void *arg, struct client *c)
{
	reshard_moves_forget_client(arg, c);
}

static const struct shard_moves_ops shard_moves = {
	.map = moves_map,
	.bucket = moves_bucket,
	.fenced = moves_fenced,
	.hold_client = moves_hold_client,
	.forget_client = moves_forget_client,
};

void reshard_init(struct reshard *rs)
{
	rs->shard_maps = NULL;
	rs->movers = NULL;
	rs->movecoord = NULL;
	rs->clients->moves = &shard_moves;
	rs->clients->moves_arg = rs;
}

void reshard_apply_config(struct reshard *rs)
{
	reshard_maps_apply(rs);
	reshard_coord_apply(rs);
}

void reshard_free(struct reshard *rs)
{
	reshard_coord_free(rs);
	reshard_moves_free(rs);
	reshard_maps_free(rs);
}
