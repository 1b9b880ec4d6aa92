/*
 * admin/shards: SHOW SHARDS, SHOW SHARD FOR, SHOW ROUTE FOR and SHOW MOVES (see admin/shards.h).
 * Read from the resharding state: the config in force and the topology it is lent, the maps in
 * force, the moves.
 */
#include "admin/shards.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/rows.h"
#include "client/route.h"
#include "client/shard.h"
#include "config/config.h"
#include "proto/build.h"
#include "reshard/mover.h"
#include "reshard/reshard.h"
#include "reshard/shardmaps.h"
#include "shard/map.h"
#include "topo/topology.h"

/* The buckets shard k of set holds in its map. */
static uint32_t buckets_of(const struct loaded_shard_map *l, int k, double *weight)
{
	uint32_t *counts = calloc((size_t)l->map->n_shards, sizeof(*counts));
	uint32_t n = 0;

	*weight = 0;
	if (!counts)
		return 0;
	shard_map_counts(l->map, counts);
	for (int i = 0; i < l->map->n_shards; i++) {
		if (l->shard_of[i] == k) {
			n = counts[i];
			*weight = l->map->weights[i];
		}
	}
	free(counts);
	return n;
}

static const char *primary_of(struct reshard *rs, const char *cluster)
{
	const struct cluster *cl = topo_find(rs->topo, cluster);

	return cl && cl->primary >= 0 ? cl->members[cl->primary].name : NULL;
}

static void show_shards(struct reshard *rs, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "database", OID_TEXT },     { "shard", OID_TEXT },
		{ "cluster", OID_TEXT },      { "primary", OID_TEXT },
		{ "weight", OID_TEXT },       { "buckets", OID_INT8 },
		{ "share", OID_TEXT },        { "map_version", OID_INT8 },
		{ "map_checksum", OID_TEXT }, { "map_source", OID_TEXT },
		{ "map_state", OID_TEXT },    { "key", OID_TEXT },
		{ "key_type", OID_TEXT },
	};
	const struct config *cfg = *rs->cfg;
	struct row r;

	HEADER(mb, cols);
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct shards_entry *set = cfg->dbs[i].shards[0]
							 ? config_find_shards(cfg,
									      cfg->dbs[i].shards)
							 : NULL;

		const struct loaded_shard_map *l = set ? reshard_shard_map(rs, set) : NULL;
		char state[200];

		if (set)
			reshard_shard_map_state(rs, set, state, sizeof(state));
		for (int k = 0; set && k < set->n_shards; k++) {
			const struct shard_map *m = l ? l->map : NULL;
			double weight = 0;
			uint32_t n = l ? buckets_of(l, k, &weight) : 0;
			char w_text[32], share[32], sum[24];

			snprintf(w_text, sizeof(w_text), "%g", weight);
			snprintf(share, sizeof(share), "%.4f", m ? (double)n / m->n_buckets : 0.0);
			snprintf(sum, sizeof(sum), "%016" PRIx64, m ? m->checksum : 0);
			ROW(&r, cols);
			put_str(&r, cfg->dbs[i].name);
			put_str(&r, set->shards[k].name);
			put_str(&r, set->shards[k].cluster);
			put_str(&r, primary_of(rs, set->shards[k].cluster));
			put_str(&r, w_text);
			put_uint(&r, n);
			put_str(&r, share);
			put_uint(&r, m ? m->version : 0);
			put_str(&r, m ? sum : NULL);
			put_str(&r, set->map);
			put_str(&r, state);
			put_str(&r, set->key);
			put_str(&r, set->key_type == SHARD_KIND_INT    ? "int"
				    : set->key_type == SHARD_KIND_TEXT ? "text"
								       : "uuid");
			row_end(mb, &r);
		}
	}
	build_command_complete(mb, "SHOW");
}

/*
 * The entry a SHOW SHARD or SHOW ROUTE is about: the one named, else the only sharded one (for
 * SHOW ROUTE: the only routed or sharded one).
 */
static const struct db_entry *entry_for(const struct config *cfg, const char *name, bool routed_too,
					char *err, size_t errlen)
{
	const struct db_entry *found = NULL;
	int n = 0;

	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *e = &cfg->dbs[i];
		bool fits = e->shards[0] || (routed_too && e->cluster[0] && !e->shard_parent[0]);

		if (*name ? strcmp(e->name, name) == 0 : fits) {
			found = e;
			n++;
		}
	}
	if (*name && !found)
		snprintf(err, errlen, "no such database: %s", name);
	else if (*name && !found->shards[0] && !(routed_too && found->cluster[0]))
		snprintf(err, errlen, "database %s is not %s", name,
			 routed_too ? "routed or sharded" : "sharded");
	else if (n == 0)
		snprintf(err, errlen, "no database is %s",
			 routed_too ? "routed or sharded" : "sharded");
	else if (n > 1)
		snprintf(err, errlen, "several databases are %s: add IN database",
			 routed_too ? "routed or sharded" : "sharded");
	else
		return found;
	return NULL;
}

static bool show_shard_for(struct reshard *rs, const struct admin_cmd *cmd, struct msgbuf *mb,
			   char *err, size_t errlen)
{
	static const struct column cols[] = {
		{ "database", OID_TEXT },  { "key", OID_TEXT },   { "hash", OID_INT8 },
		{ "bucket", OID_INT8 },    { "shard", OID_TEXT }, { "cluster", OID_TEXT },
		{ "placed_by", OID_TEXT },
	};
	const struct config *cfg = *rs->cfg;
	const struct db_entry *e = entry_for(cfg, cmd->arg, false, err, errlen);
	const struct shards_entry *set;
	struct shard_key_place place;
	struct row r;

	set = e ? config_find_shards(cfg, e->shards) : NULL;
	if (!e || !client_shard_of_key(cfg, e, reshard_shard_map(rs, set), cmd->value, &place, err,
				       errlen))
		return false;
	HEADER(mb, cols);
	ROW(&r, cols);
	put_str(&r, e->name);
	put_str(&r, cmd->value);
	put_int(&r, (int64_t)place.hash); /* signed, as PostgreSQL's hash*extended() prints it */
	put_uint(&r, place.bucket);
	put_str(&r, set->shards[place.shard].name);
	put_str(&r, set->shards[place.shard].cluster);
	put_str(&r, place.by_override ? "override" : "bucket");
	row_end(mb, &r);
	build_command_complete(mb, "SHOW");
	return true;
}

static bool show_route_for(struct reshard *rs, const struct admin_cmd *cmd, struct msgbuf *mb,
			   char *err, size_t errlen)
{
	static const struct column cols[] = {
		{ "database", OID_TEXT }, { "shard", OID_TEXT },  { "found_by", OID_TEXT },
		{ "role", OID_TEXT },     { "member", OID_TEXT }, { "refused", OID_TEXT },
	};
	const struct config *cfg = *rs->cfg;
	const struct db_entry *e = entry_for(cfg, cmd->arg, true, err, errlen);
	const char *sql = cmd->value, *cluster_name;
	struct shard_explain ex = { .shard = -1 };
	const char *member;
	struct cluster *cl;
	bool primary;
	struct row r;

	if (!e)
		return false;
	cluster_name = e->cluster;
	if (e->shards[0]) {
		client_shard_explain(cfg, e,
				     reshard_shard_map(rs, config_find_shards(cfg, e->shards)), sql,
				     strlen(sql), &ex);
		cluster_name =
			ex.shard >= 0 ? config_find_shards(cfg, e->shards)->shards[ex.shard].cluster
				      : NULL;
	}
	cl = cluster_name ? topo_find(rs->topo, cluster_name) : NULL;
	member = client_route_for(e, cl, sql, strlen(sql), &primary);
	HEADER(mb, cols);
	ROW(&r, cols);
	put_str(&r, e->name);
	put_str(&r,
		ex.shard >= 0 ? config_find_shards(cfg, e->shards)->shards[ex.shard].name : NULL);
	put_str(&r, e->shards[0] ? ex.found_by : NULL);
	put_str(&r, primary ? "primary" : "replica");
	put_str(&r, member);
	put_str(&r, ex.refusal[0] ? ex.refusal : NULL);
	row_end(mb, &r);
	build_command_complete(mb, "SHOW");
	return true;
}

/* ---- SHOW MOVES ---- */

static const struct column move_cols[] = {
	{ "id", OID_INT4 },        { "shards", OID_TEXT },    { "buckets", OID_TEXT },
	{ "from", OID_TEXT },      { "to", OID_TEXT },        { "step", OID_TEXT },
	{ "rows", OID_INT8 },      { "lag_bytes", OID_INT8 }, { "held", OID_INT4 },
	{ "started", OID_TEXT },   { "error", OID_TEXT },     { "warning", OID_TEXT },
	{ "confirmed", OID_TEXT },
};

static void move_row(void *arg, const struct move_view *v)
{
	struct msgbuf *mb = arg;
	struct row r;
	char confirmed[32]; /* the row points at it until row_end */

	row_start(&r, (int)ARRAY_LEN(move_cols));
	put_int(&r, v->id);
	put_str(&r, v->set);
	put_str(&r, v->buckets);
	put_str(&r, v->from);
	put_str(&r, v->to);
	put_str(&r, v->step);
	put_int(&r, v->rows);
	if (v->lag >= 0)
		put_int(&r, v->lag);
	else
		put_str(&r, NULL);
	put_int(&r, v->held);
	put_time(&r, v->started_us);
	put_str(&r, v->error[0] ? v->error : NULL);
	put_str(&r, v->warning[0] ? v->warning : NULL);
	/* a move coordinated through etcd: other instances that confirmed its hold, of how many */
	if (v->instances >= 0) {
		snprintf(confirmed, sizeof(confirmed), "%d/%d", v->confirmed, v->instances);
		put_str(&r, confirmed);
	} else {
		put_str(&r, NULL);
	}
	row_end(mb, &r);
}

static void show_moves(struct reshard *rs, struct msgbuf *mb)
{
	put_header(mb, move_cols, (int)ARRAY_LEN(move_cols));
	reshard_moves_each(rs, move_row, mb);
	build_command_complete(mb, "SHOW");
}

bool admin_show_sharding(struct reshard *rs, const struct admin_cmd *cmd, struct msgbuf *mb,
			 const char **sqlstate, char *err, size_t errlen)
{
	bool ok = true;

	switch (cmd->show) {
	case ADMIN_SHOW_SHARDS:
		show_shards(rs, mb);
		break;
	case ADMIN_SHOW_SHARD:
		ok = show_shard_for(rs, cmd, mb, err, errlen);
		break;
	case ADMIN_SHOW_ROUTE:
		ok = show_route_for(rs, cmd, mb, err, errlen);
		break;
	case ADMIN_SHOW_MOVES:
		show_moves(rs, mb);
		break;
	default:
		snprintf(err, errlen, "not a sharding command");
		ok = false;
		break;
	}
	*sqlstate = "22023";
	return ok;
}
