/*
 * reshard: online resharding, the module's state (struct reshard). It keeps the shard map in
 * force for each [shards.NAME] section (shardmaps.h: a map file read with the config, or a map
 * in etcd read and watched), runs bucket moves between shards (mover.h) and coordinates them
 * through etcd with every pgmux that reads the same map key (movecoord.h).
 *
 * The worker runs the loop and owns what the moves work with, but knows nothing of them:
 * main.c lends the module the worker's slots (below) and attaches it to the worker through
 * struct worker_resharding_ops (a config put in force, a takeover's question, leaving etcd at
 * exit, the end). Clients ask about maps and moves through struct shard_moves_ops
 * (client/clients.h), which reshard_init lends them; the admin console calls the verbs of
 * mover.h and shardmaps.h. The slots are the worker's own, never copies: RELOAD and admin SET
 * replace what they point to, and a move always sees the config in force.
 */
#ifndef PGMUX_RESHARD_RESHARD_H
#define PGMUX_RESHARD_RESHARD_H

#include <stdbool.h>
#include <stddef.h>

struct clients;
struct config;
struct evloop;
struct movecoords;
struct movers;
struct pools;
struct shard_maps;
struct topo;

struct reshard {
	struct shard_maps *shard_maps; /* maps read and watched in etcd (shardmaps.c); NULL none */
	struct movers *movers;         /* bucket moves between shards (mover.c); NULL = none yet */
	struct movecoords *movecoord;  /* moves coordinated through etcd (movecoord.c); NULL none */
	/* lent by the worker */
	struct evloop *loop; /* the requests to etcd and the moves' queries run on it */
	/* the worker's slot: the config in force, replaced at every RELOAD and admin SET */
	struct config *const *cfg;
	struct topo *topo; /* the clusters: where each shard's primary is, for a move's logins */
	/* the clients, lent the module's struct shard_moves_ops by reshard_init */
	struct clients *clients;
	/* the pools, whose clients a hold waits for: handed to the client module as they are */
	struct pools *pools;
	/*
	 * Put newcfg in force, as RELOAD does but rebuilding nothing else (a move's switch of a map
	 * file: the config in force with the next map). Takes newcfg in every case: it becomes the
	 * config in force, or is freed. false (err says why): the config in force stays.
	 */
	bool (*apply)(void *arg, struct config *newcfg, char *err, size_t errlen);
	void *apply_arg;
};

/*
 * Start rs, whose slots lent by the worker the caller filled in: no map, move or coordination
 * yet, and the clients are lent the module's struct shard_moves_ops from now on (arg: rs).
 * Nothing is read before reshard_apply_config.
 */
void reshard_init(struct reshard *rs);

/*
 * Follow the config in force (at start, and after every change of it): the maps in etcd are
 * read and watched anew, the sections mapped there registered in etcd (reshard_maps_apply,
 * then reshard_coord_apply). Requests go out from the loop: nothing is called back before this
 * returns. Problems (out of memory) are logged.
 */
void reshard_apply_config(struct reshard *rs);

/*
 * At exit, before the loop is destroyed: the coordination, the moves, then the maps, each with
 * its requests stopped and its held clients released.
 */
void reshard_free(struct reshard *rs);

#endif
