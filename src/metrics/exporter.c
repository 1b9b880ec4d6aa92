/*
 * metrics/exporter: the worker's state written as Prometheus metrics (see metrics/exporter.h).
 *
 * One scrape walks the pools once and the databases once: per-database sums are collected in
 * a table sorted by database, so the cost grows with the number of pools, not with its square.
 */
#include "metrics/exporter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/histogram.h"
#include "core/list.h"
#include "ev/httpd.h"
#include "metrics/prom.h"
#include "pool/pool.h"
#include "topo/handover.h"
#include "topo/topology.h"
#include "worker/worker.h"

/* A live database and the sum of its pools' stats. */
struct db_sum {
	const struct database *db;
	struct stats stats;
};

static int cmp_db_sum(const void *a, const void *b)
{
	const struct database *x = ((const struct db_sum *)a)->db,
			      *y = ((const struct db_sum *)b)->db;

	return x < y ? -1 : x > y;
}

static bool db_is_live(const struct database *db)
{
	return !db->removed && db->entry;
}

/* The live databases with their pools' stats summed, sorted by address; NULL when none. */
static struct db_sum *sum_databases(struct worker *w, size_t *n)
{
	struct list_node *pos, *tmp;
	struct db_sum *sums;
	size_t count = 0;

	list_for_each_safe(pos, tmp, &w->pools.databases)
		count++;
	*n = 0;
	sums = count ? calloc(count, sizeof(*sums)) : NULL;
	if (!sums)
		return NULL;
	list_for_each_safe(pos, tmp, &w->pools.databases) {
		const struct database *db = list_entry(pos, struct database, node);

		if (db_is_live(db))
			sums[(*n)++].db = db;
	}
	qsort(sums, *n, sizeof(*sums), cmp_db_sum);
	list_for_each_safe(pos, tmp, &w->pools.all) {
		const struct pool *p = list_entry(pos, struct pool, node);
		struct db_sum key = { .db = p->db }, *s;

		s = bsearch(&key, sums, *n, sizeof(*sums), cmp_db_sum);
		if (s)
			stats_add(&s->stats, &p->stats);
	}
	return sums;
}

static void db_labels(struct prom_labels *l, const struct database *db)
{
	prom_labels_init(l);
	prom_label(l, "database", db->name);
}

/* The labels of a pool's series: database and user. */
static void pool_labels(struct prom_labels *l, const struct pool *p)
{
	prom_labels_init(l);
	prom_label(l, "database", p->db->name);
	prom_label(l, "user", p->user->name);
}

/* ---- process, config, lists ---- */

static void gauge(struct prom_out *o, const char *name, const char *help, uint64_t v)
{
	prom_family(o, name, "gauge", help);
	prom_u64(o, name, NULL, v);
}

static void write_process(struct worker *w, struct prom_out *o)
{
	struct prom_labels l;

	gauge(o, "pgbouncer_up", "1: the pooler answered (always 1 when served by pgmux itself)",
	      1);
	prom_labels_init(&l);
	prom_label(&l, "version", "pgmux " PGMUX_VERSION);
	prom_family(o, "pgbouncer_version_info", "gauge", "The pooler's version, as SHOW VERSION");
	prom_u64(o, "pgbouncer_version_info", &l, 1);
	gauge(o, "pgbouncer_config_max_client_connections", "max_client_conn",
	      (uint64_t)w->cfg->max_client_conn);
	gauge(o, "pgbouncer_config_max_user_connections", "max_user_connections (0 = no limit)",
	      (uint64_t)w->cfg->max_user_connections);
	prom_family(o, "pgmux_start_time_seconds", "gauge", "When pgmux started, in Unix seconds");
	prom_seconds(o, "pgmux_start_time_seconds", NULL, w->start_time_us);
	gauge(o, "pgmux_shutting_down", "1 once SIGTERM, SIGINT or SHUTDOWN was received",
	      w->shutting_down ? 1 : 0);
	gauge(o, "pgmux_client_connections", "Client connections, every state",
	      (uint64_t)w->clients.n);
	prom_family(o, "pgmux_reloads_total", "counter", "Configuration reloads by result");
	prom_labels_init(&l);
	prom_label(&l, "result", "ok");
	prom_u64(o, "pgmux_reloads_total", &l, w->reloads_ok);
	prom_labels_init(&l);
	prom_label(&l, "result", "failed");
	prom_u64(o, "pgmux_reloads_total", &l, w->reloads_failed);
}

/* SHOW LISTS: pgmux keeps no free lists, so the free_ counts are 0. */
static void write_lists(struct worker *w, struct prom_out *o, size_t n_live_dbs)
{
	struct list_node *pos, *tmp;
	uint64_t users = 0, pools = 0, servers = 0, login = 0;

	list_for_each_safe(pos, tmp, &w->pools.users)
		users++;
	list_for_each_safe(pos, tmp, &w->pools.all) {
		const struct pool *p = list_entry(pos, struct pool, node);

		pools++;
		servers += (uint64_t)(p->n_idle + p->n_active + p->n_login + p->n_reset);
	}
	list_for_each_safe(pos, tmp, &w->pools.login_clients)
		login++;
	gauge(o, "pgbouncer_databases", "Databases (SHOW LISTS databases)", n_live_dbs);
	gauge(o, "pgbouncer_users", "Users with pools (SHOW LISTS users)", users);
	gauge(o, "pgbouncer_pools", "Pools (SHOW LISTS pools)", pools);
	gauge(o, "pgbouncer_free_clients", "Unused client slots kept for reuse (none in pgmux)", 0);
	gauge(o, "pgbouncer_used_clients", "Client connections (SHOW LISTS used_clients)",
	      (uint64_t)w->clients.n);
	gauge(o, "pgbouncer_login_clients", "Clients logging in, and admin console clients", login);
	gauge(o, "pgbouncer_free_servers", "Unused server slots kept for reuse (none in pgmux)", 0);
	gauge(o, "pgbouncer_used_servers", "Server connections (SHOW LISTS used_servers)", servers);
}

/* ---- SHOW DATABASES ---- */

struct db_gauge {
	const char *name, *help;
};

static const struct db_gauge db_gauges[] = {
	{ "pgbouncer_databases_pool_size", "Server connections per pool (pool_size)" },
	{ "pgbouncer_databases_reserve_pool", "Extra connections allowed (reserve_pool)" },
	{ "pgbouncer_databases_max_connections", "max_db_connections (0 = no limit)" },
	{ "pgbouncer_databases_current_connections", "Server connections of the database" },
	{ "pgbouncer_databases_paused", "1 while the database is paused" },
	{ "pgbouncer_databases_disabled", "1 while the database is disabled" },
};

static int cmp_db_name(const void *a, const void *b)
{
	return strcmp((*(const struct database *const *)a)->name,
		      (*(const struct database *const *)b)->name);
}

/*
 * The live database of every config entry (NULL: none yet), found through a table sorted by
 * name: a thousand entries cost a thousand lookups, not a million comparisons.
 */
static const struct database **live_dbs_of_entries(struct worker *w)
{
	const struct config *cfg = w->cfg;
	const struct database **by_name, **of_entry;
	struct list_node *pos, *tmp;
	size_t n = 0;

	list_for_each_safe(pos, tmp, &w->pools.databases)
		n++;
	by_name = calloc(n + 1, sizeof(*by_name));
	of_entry = calloc((size_t)cfg->n_dbs + 1, sizeof(*of_entry));
	if (!by_name || !of_entry) {
		free(by_name);
		free(of_entry);
		return NULL;
	}
	n = 0;
	list_for_each_safe(pos, tmp, &w->pools.databases) {
		const struct database *db = list_entry(pos, struct database, node);

		if (db_is_live(db))
			by_name[n++] = db;
	}
	qsort(by_name, n, sizeof(*by_name), cmp_db_name);
	for (int i = 0; i < cfg->n_dbs; i++) {
		struct database key;
		const struct database *keyp = &key, **found;

		snprintf(key.name, sizeof(key.name), "%s", cfg->dbs[i].name);
		found = bsearch(&keyp, by_name, n, sizeof(*by_name), cmp_db_name);
		of_entry[i] = found ? *found : NULL;
	}
	free(by_name);
	return of_entry;
}

static void database_entry_labels(struct prom_labels *l, const struct config *cfg, const char *name,
				  const struct db_entry *e)
{
	prom_labels_init(l);
	prom_label(l, "name", name);
	prom_label(l, "host", e->host);
	prom_label_int(l, "port", e->port);
	prom_label(l, "database", e->dbname[0] ? e->dbname : name);
	prom_label(l, "force_user", e->user);
	prom_label(l, "pool_mode",
		   pool_mode_name(e->pool_mode == POOL_MODE_INHERIT ? cfg->pool_mode
								    : e->pool_mode));
}

static void database_values(struct worker *w, const struct db_entry *e, const struct database *db,
			    int64_t v[6])
{
	v[0] = config_db_pool_size(w->cfg, e);
	v[1] = config_db_reserve_pool(w->cfg, e);
	v[2] = config_db_max_connections(w->cfg, e);
	v[3] = db ? db->n_servers : 0;
	v[4] = db && db->paused;
	v[5] = db && db->disabled;
}

/* One family at a time, as the format wants a family's samples together. */
static void write_databases(struct worker *w, struct prom_out *o)
{
	const struct config *cfg = w->cfg;
	const struct database **live = live_dbs_of_entries(w);

	if (!live) {
		o->failed = true;
		return;
	}
	for (size_t g = 0; g < sizeof(db_gauges) / sizeof(db_gauges[0]); g++) {
		struct list_node *pos, *tmp;
		struct prom_labels l;
		int64_t v[6];

		prom_family(o, db_gauges[g].name, "gauge", db_gauges[g].help);
		for (int i = 0; i < cfg->n_dbs; i++) {
			const struct db_entry *e = &cfg->dbs[i];

			if (strcmp(e->name, "*") == 0)
				continue;
			database_entry_labels(&l, cfg, e->name, e);
			database_values(w, e, live[i], v);
			prom_i64(o, db_gauges[g].name, &l, v[g]);
		}
		list_for_each_safe(pos, tmp, &w->pools.databases) {
			const struct database *db = list_entry(pos, struct database, node);

			if (!db->from_wildcard || !db_is_live(db))
				continue;
			database_entry_labels(&l, cfg, db->name, db->entry);
			database_values(w, db->entry, db, v);
			prom_i64(o, db_gauges[g].name, &l, v[g]);
		}
	}
	free(live);
}

/* ---- SHOW STATS and the histograms ---- */

enum stat_kind { STAT_COUNT, STAT_US };

struct stat_field {
	const char *name, *help;
	enum stat_kind kind;
	size_t offset;
};

static const struct stat_field stat_fields[] = {
	{ "pgbouncer_stats_queries_pooled_total", "Queries pooled (total_query_count)", STAT_COUNT,
	  offsetof(struct stats, query_count) },
	{ "pgbouncer_stats_queries_duration_seconds_total",
	  "Seconds with a server linked, running queries (total_query_time)", STAT_US,
	  offsetof(struct stats, query_time_us) },
	{ "pgbouncer_stats_sql_transactions_pooled_total", "Transactions pooled (total_xact_count)",
	  STAT_COUNT, offsetof(struct stats, xact_count) },
	{ "pgbouncer_stats_server_in_transaction_seconds_total",
	  "Seconds with a server linked in a transaction (total_xact_time)", STAT_US,
	  offsetof(struct stats, xact_time_us) },
	{ "pgbouncer_stats_client_wait_seconds_total",
	  "Seconds clients waited for a server (total_wait_time)", STAT_US,
	  offsetof(struct stats, wait_time_us) },
	{ "pgbouncer_stats_received_bytes_total", "Bytes received from clients (total_received)",
	  STAT_COUNT, offsetof(struct stats, bytes_received) },
	{ "pgbouncer_stats_sent_bytes_total", "Bytes sent to clients (total_sent)", STAT_COUNT,
	  offsetof(struct stats, bytes_sent) },
	{ "pgmux_server_assignments_total", "Server connections lent to clients", STAT_COUNT,
	  offsetof(struct stats, server_assignment_count) },
};

static void write_stats(const struct db_sum *sums, size_t n, struct prom_out *o)
{
	for (size_t f = 0; f < sizeof(stat_fields) / sizeof(stat_fields[0]); f++) {
		const struct stat_field *sf = &stat_fields[f];

		prom_family(o, sf->name, "counter", sf->help);
		for (size_t i = 0; i < n; i++) {
			uint64_t v = *(const uint64_t *)((const char *)&sums[i].stats + sf->offset);
			struct prom_labels l;

			db_labels(&l, sums[i].db);
			if (sf->kind == STAT_US)
				prom_seconds(o, sf->name, &l, v);
			else
				prom_u64(o, sf->name, &l, v);
		}
	}
}

struct latency_field {
	const char *name, *help;
	size_t offset;
	bool by_role;       /* routed databases: one series per role instead */
	size_t role_offset; /* of the histograms [LATENCY_ROLES] in struct role_latency */
};

static const struct latency_field latency_fields[] = {
	{ "pgmux_client_wait_seconds",
	  "Time a client waited for a server, per server assignment (0 when one was free)",
	  offsetof(struct latency, wait) },
	{ "pgmux_query_duration_seconds", "Query time with a server linked, per query",
	  offsetof(struct latency, query), true, offsetof(struct role_latency, query) },
	{ "pgmux_transaction_duration_seconds",
	  "Transaction time with a server linked, per transaction", offsetof(struct latency, xact),
	  true, offsetof(struct role_latency, xact) },
	{ "pgmux_server_connect_seconds", "Time from opening a server connection to TCP/TLS up",
	  offsetof(struct latency, connect) },
	{ "pgmux_server_login_seconds",
	  "Time from opening a server connection to the end of its login (connect included)",
	  offsetof(struct latency, login) },
};

/*
 * A routed database's pool's series of lf, one per role of the server that ran the work (they
 * add up to the pool's total, which is then not written: a sum over roles gives it).
 */
static void write_role_latency(const struct latency_field *lf, const struct pool *p,
			       struct prom_out *o)
{
	static const char *const roles[LATENCY_ROLES] = { "primary", "replica" };
	const struct histogram *hs = (const struct histogram *)((const char *)p->latency.by_role +
								lf->role_offset);

	for (int r = 0; r < LATENCY_ROLES; r++) {
		struct prom_labels l;

		if (hs[r].count == 0)
			continue;
		pool_labels(&l, p);
		prom_label(&l, "role", roles[r]);
		prom_histogram(o, lf->name, &l, &hs[r]);
	}
}

static void write_latency(struct worker *w, struct prom_out *o)
{
	for (size_t f = 0; f < sizeof(latency_fields) / sizeof(latency_fields[0]); f++) {
		const struct latency_field *lf = &latency_fields[f];
		struct list_node *pos, *tmp;

		prom_family(o, lf->name, "histogram", lf->help);
		list_for_each_safe(pos, tmp, &w->pools.all) {
			const struct pool *p = list_entry(pos, struct pool, node);
			const struct histogram *h =
				(const struct histogram *)((const char *)&p->latency + lf->offset);
			struct prom_labels l;

			/* A pool without such events yet has no series (a scrape stays small). */
			if (h->count == 0)
				continue;
			if (lf->by_role && p->latency.by_role) {
				write_role_latency(lf, p, o);
				continue;
			}
			pool_labels(&l, p);
			prom_histogram(o, lf->name, &l, h);
		}
	}
}

/* ---- SHOW POOLS ---- */

enum pool_value {
	PV_CL_ACTIVE,
	PV_CL_WAITING,
	PV_SV_ACTIVE,
	PV_SV_IDLE,
	PV_SV_USED,
	PV_SV_TESTED,
	PV_SV_LOGIN,
	PV_MAXWAIT,
	PV_COUNT
};

static const struct db_gauge pool_gauges[PV_COUNT] = {
	[PV_CL_ACTIVE] = { "pgbouncer_pools_client_active_connections",
			   "Clients logged in and not waiting (cl_active)" },
	[PV_CL_WAITING] = { "pgbouncer_pools_client_waiting_connections",
			    "Clients waiting for a server (cl_waiting)" },
	[PV_SV_ACTIVE] = { "pgbouncer_pools_server_active_connections",
			   "Servers linked to a client (sv_active)" },
	[PV_SV_IDLE] = { "pgbouncer_pools_server_idle_connections",
			 "Servers idle and ready (sv_idle)" },
	[PV_SV_USED] = { "pgbouncer_pools_server_used_connections",
			 "Servers waiting for a check (sv_used; pgmux checks on use: 0)" },
	[PV_SV_TESTED] = { "pgbouncer_pools_server_testing_connections",
			   "Servers being reset or checked (sv_tested)" },
	[PV_SV_LOGIN] = { "pgbouncer_pools_server_login_connections",
			  "Servers connecting or logging in (sv_login)" },
	[PV_MAXWAIT] = { "pgbouncer_pools_client_maxwait_seconds",
			 "How long the oldest waiting client has waited (maxwait)" },
};

/* Every pool's values at once; the families are then written one after the other. */
static void write_pools(struct worker *w, struct prom_out *o)
{
	uint64_t now = clock_now_us();

	for (int g = 0; g < PV_COUNT; g++) {
		struct list_node *pos, *tmp;

		prom_family(o, pool_gauges[g].name, "gauge", pool_gauges[g].help);
		list_for_each_safe(pos, tmp, &w->pools.all) {
			const struct pool *p = list_entry(pos, struct pool, node);
			struct prom_labels l;
			int64_t v = 0;

			pool_labels(&l, p);
			switch (g) {
			case PV_CL_ACTIVE:
				v = p->n_active_clients;
				break;
			case PV_CL_WAITING:
				v = p->n_waiting_clients;
				break;
			case PV_SV_ACTIVE:
				v = p->n_active;
				break;
			case PV_SV_IDLE:
				v = p->n_idle;
				break;
			case PV_SV_USED:
				v = 0;
				break;
			case PV_SV_TESTED:
				v = p->n_reset - pool_cancel_waiting(p);
				break;
			case PV_SV_LOGIN:
				v = p->n_login;
				break;
			case PV_MAXWAIT:
				prom_seconds(o, pool_gauges[g].name, &l,
					     pool_longest_wait_us(p, now));
				continue;
			}
			prom_i64(o, pool_gauges[g].name, &l, v);
		}
	}
}

/* ---- routing and shards ---- */

struct counter_field {
	const char *label;
	size_t offset;
};

static const struct counter_field route_fields[] = {
	{ "read_replica", offsetof(struct route_stats, reads_replica) },
	{ "read_primary", offsetof(struct route_stats, reads_primary) },
	{ "read_fallback_primary", offsetof(struct route_stats, reads_fallback) },
	{ "read_your_writes_primary", offsetof(struct route_stats, reads_ryw) },
	{ "read_refused", offsetof(struct route_stats, reads_refused) },
	{ "write", offsetof(struct route_stats, writes) },
};

static const struct counter_field shard_fields[] = {
	{ "hint", offsetof(struct shard_stats, by_hint) },
	{ "setting", offsetof(struct shard_stats, by_setting) },
	{ "sql", offsetof(struct shard_stats, by_sql) },
	{ "default", offsetof(struct shard_stats, by_default) },
	{ "stayed", offsetof(struct shard_stats, stayed) },
	{ "fanned_out", offsetof(struct shard_stats, fanned_out) },
	{ "copy_split", offsetof(struct shard_stats, copy_split) },
	{ "refused_no_key", offsetof(struct shard_stats, no_key) },
	{ "refused_cross_shard", offsetof(struct shard_stats, cross_shard) },
};

static uint64_t field_at(const void *base, size_t offset)
{
	return *(const uint64_t *)((const char *)base + offset);
}

/* Databases routed through a cluster, or sharded: the only ones with these counters. */
static void write_routing(const struct db_sum *sums, size_t n, struct prom_out *o)
{
	static const char *const single[][3] = {
		{ "pgmux_route_hinted_total", "Units of work whose role a hint chose", "hinted" },
		{ "pgmux_primary_waits_total", "Units that waited for a confirmed primary",
		  "primary_waits" },
		{ "pgmux_primary_wait_timeouts_total",
		  "Units that gave up waiting for a confirmed primary", "primary_wait_timeouts" },
	};
	static const size_t single_off[] = { offsetof(struct route_stats, hinted),
					     offsetof(struct route_stats, primary_waits),
					     offsetof(struct route_stats, primary_wait_timeouts) };
	struct prom_labels l;

	prom_family(o, "pgmux_route_decisions_total", "counter",
		    "Units of work by where the router sent them and why");
	for (size_t i = 0; i < n; i++) {
		if (!sums[i].db->cluster)
			continue;
		for (size_t f = 0; f < sizeof(route_fields) / sizeof(route_fields[0]); f++) {
			db_labels(&l, sums[i].db);
			prom_label(&l, "decision", route_fields[f].label);
			prom_u64(o, "pgmux_route_decisions_total", &l,
				 field_at(&sums[i].db->routes, route_fields[f].offset));
		}
	}
	for (size_t k = 0; k < 3; k++) {
		prom_family(o, single[k][0], "counter", single[k][1]);
		for (size_t i = 0; i < n; i++) {
			if (!sums[i].db->cluster)
				continue;
			db_labels(&l, sums[i].db);
			prom_u64(o, single[k][0], &l, field_at(&sums[i].db->routes, single_off[k]));
		}
	}
	prom_family(
		o, "pgmux_shard_units_total", "counter",
		"Units of work of a sharded database by how they found their shard, or why refused");
	for (size_t i = 0; i < n; i++) {
		if (!sums[i].db->entry->shards[0])
			continue;
		for (size_t f = 0; f < sizeof(shard_fields) / sizeof(shard_fields[0]); f++) {
			db_labels(&l, sums[i].db);
			prom_label(&l, "found_by", shard_fields[f].label);
			prom_u64(o, "pgmux_shard_units_total", &l,
				 field_at(&sums[i].db->shard_stats, shard_fields[f].offset));
		}
	}
}

/* ---- topology ---- */

enum member_value {
	MV_ROLE,
	MV_HEALTHY,
	MV_TIMELINE,
	MV_LAG_BYTES,
	MV_LAG_SECONDS,
	MV_BANNED,
	MV_SERVERS,
	MV_COUNT
};

static const struct db_gauge member_gauges[MV_COUNT] = {
	[MV_ROLE] = { "pgmux_cluster_member_role",
		      "1 for the member's role as the router trusts it (primary, replica, unknown)" },
	[MV_HEALTHY] = { "pgmux_cluster_member_healthy", "1 when the last health check passed" },
	[MV_TIMELINE] = { "pgmux_cluster_member_timeline", "The member's timeline (-1 unknown)" },
	[MV_LAG_BYTES] = { "pgmux_cluster_member_lag_bytes",
			   "Bytes of WAL behind the primary (-1 unknown)" },
	[MV_LAG_SECONDS] = { "pgmux_cluster_member_lag_seconds",
			     "Replay staleness in seconds (-1 unknown)" },
	[MV_BANNED] = { "pgmux_cluster_member_banned", "1 while the member is banned from reads" },
	[MV_SERVERS] = { "pgmux_cluster_member_server_connections",
			 "pgmux's server connections to the member, over all pools" },
};

static void member_labels(struct prom_labels *l, const struct cluster *cl, const struct member *m)
{
	prom_labels_init(l);
	prom_label(l, "cluster", cl->name);
	prom_label(l, "member", m->name);
}

static void write_member_value(struct prom_out *o, int g, const struct cluster *cl,
			       const struct member *m, uint64_t now)
{
	struct prom_labels l;

	member_labels(&l, cl, m);
	switch (g) {
	case MV_ROLE:
		prom_label(&l, "role", member_role_name(m->role));
		prom_u64(o, member_gauges[g].name, &l, 1);
		break;
	case MV_HEALTHY:
		prom_u64(o, member_gauges[g].name, &l, m->checked && m->healthy);
		break;
	case MV_TIMELINE:
		prom_i64(o, member_gauges[g].name, &l, m->timeline);
		break;
	case MV_LAG_BYTES:
		prom_i64(o, member_gauges[g].name, &l, m->lag_bytes);
		break;
	case MV_LAG_SECONDS:
		if (m->lag_ms < 0)
			prom_i64(o, member_gauges[g].name, &l, -1);
		else
			prom_seconds(o, member_gauges[g].name, &l, (uint64_t)(m->lag_ms * 1000));
		break;
	case MV_BANNED:
		prom_u64(o, member_gauges[g].name, &l, m->banned_until_us > now);
		break;
	case MV_SERVERS:
		prom_i64(o, member_gauges[g].name, &l, m->n_servers);
		break;
	}
}

static void cluster_labels(struct prom_labels *l, const struct cluster *cl)
{
	prom_labels_init(l);
	prom_label(l, "cluster", cl->name);
}

/* The write pauses of one cluster's primary changes, as a histogram. */
struct write_pauses {
	struct list_node node;
	const struct cluster *cl; /* clusters live until exit (a removed one is kept, marked) */
	uint64_t taken;           /* the handover's changes already in h */
	struct histogram h;
};

/*
 * The histogram of cl's write pauses, brought up to date with the changes its handover decided
 * since the last scrape (only the last HANDOVER_RECENT of them if more: a cluster flapping faster
 * than it is scraped; its counters still count every change). NULL when out of memory.
 */
static const struct histogram *write_pauses_of(struct exporter *x, const struct cluster *cl)
{
	const struct handover *ho = &cl->handover;
	struct write_pauses *wp = NULL;
	struct list_node *n, *t;
	uint64_t count = handover_count(ho);

	list_for_each_safe(n, t, &x->write_pauses) {
		if (list_entry(n, struct write_pauses, node)->cl == cl)
			wp = list_entry(n, struct write_pauses, node);
	}
	if (!wp) {
		if (!(wp = calloc(1, sizeof(*wp))))
			return NULL;
		wp->cl = cl;
		list_add_tail(&x->write_pauses, &wp->node);
	}
	if (count - wp->taken > HANDOVER_RECENT)
		wp->taken = count - HANDOVER_RECENT;
	for (; wp->taken < count; wp->taken++)
		histogram_observe(&wp->h, ho->recent_pause_us[wp->taken % HANDOVER_RECENT]);
	return &wp->h;
}

/* Switchovers and failovers, and the write pauses they caused (topo/handover.h). */
static void write_handovers(struct exporter *x, struct prom_out *o)
{
	struct worker *w = x->w;
	static const enum handover_kind kinds[] = { HANDOVER_SWITCHOVER, HANDOVER_FAILOVER };
	struct list_node *pos, *tmp;
	struct prom_labels l;

	prom_family(
		o, "pgmux_cluster_primary_changes_total", "counter",
		"Confirmed primary moved to another member: switchover (old primary demoted, or "
		"scheduled) or failover (old primary lost)");
	list_for_each_safe(pos, tmp, &w->topo.clusters) {
		const struct cluster *cl = list_entry(pos, struct cluster, node);

		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			cluster_labels(&l, cl);
			prom_label(&l, "kind", handover_kind_name(kinds[k]));
			prom_u64(o, "pgmux_cluster_primary_changes_total", &l,
				 kinds[k] == HANDOVER_SWITCHOVER ? cl->handover.switchovers
								 : cl->handover.failovers);
		}
	}
	prom_family(o, "pgmux_cluster_write_pause_seconds", "histogram",
		    "Per primary change: from when writes stopped going to the old primary to when "
		    "the new one was confirmed");
	list_for_each_safe(pos, tmp, &w->topo.clusters) {
		const struct cluster *cl = list_entry(pos, struct cluster, node);
		const struct histogram *h = write_pauses_of(x, cl);

		if (!h) {
			o->failed = true;
			return;
		}
		cluster_labels(&l, cl);
		prom_histogram(o, "pgmux_cluster_write_pause_seconds", &l, h);
	}
	prom_family(o, "pgmux_cluster_last_write_pause_seconds", "gauge",
		    "The write pause of the last primary change (0 before the first)");
	list_for_each_safe(pos, tmp, &w->topo.clusters) {
		const struct cluster *cl = list_entry(pos, struct cluster, node);

		cluster_labels(&l, cl);
		prom_seconds(o, "pgmux_cluster_last_write_pause_seconds", &l,
			     cl->handover.last_pause_us);
	}
}

static void write_topology(struct exporter *x, struct prom_out *o)
{
	struct worker *w = x->w;
	uint64_t now = clock_now_us();
	struct list_node *pos, *tmp;
	struct prom_labels l;

	prom_family(o, "pgmux_cluster_has_primary", "gauge",
		    "1 while the cluster has a confirmed primary");
	list_for_each_safe(pos, tmp, &w->topo.clusters) {
		const struct cluster *cl = list_entry(pos, struct cluster, node);

		prom_labels_init(&l);
		prom_label(&l, "cluster", cl->name);
		prom_u64(o, "pgmux_cluster_has_primary", &l, cl->primary >= 0);
	}
	prom_family(o, "pgmux_cluster_changes_total", "counter",
		    "Changes of the cluster's topology the router and pools saw (its version)");
	list_for_each_safe(pos, tmp, &w->topo.clusters) {
		const struct cluster *cl = list_entry(pos, struct cluster, node);

		prom_labels_init(&l);
		prom_label(&l, "cluster", cl->name);
		prom_u64(o, "pgmux_cluster_changes_total", &l, cl->version);
	}
	write_handovers(x, o);
	for (int g = 0; g < MV_COUNT; g++) {
		prom_family(o, member_gauges[g].name, "gauge", member_gauges[g].help);
		list_for_each_safe(pos, tmp, &w->topo.clusters) {
			const struct cluster *cl = list_entry(pos, struct cluster, node);

			for (int i = 0; i < cl->n_members; i++)
				if (cl->members[i].listed)
					write_member_value(o, g, cl, &cl->members[i], now);
		}
	}
}

/* ---- the endpoint itself ---- */

static void write_http(const struct httpd_stats *s, struct prom_out *o)
{
	prom_family(o, "pgmux_metrics_requests_total", "counter", "HTTP requests answered");
	prom_u64(o, "pgmux_metrics_requests_total", NULL, s->requests);
	prom_family(o, "pgmux_metrics_rejected_total", "counter",
		    "HTTP requests refused: malformed, too large, not GET or HEAD");
	prom_u64(o, "pgmux_metrics_rejected_total", NULL, s->rejected);
	prom_family(o, "pgmux_metrics_timeouts_total", "counter",
		    "HTTP connections closed for a request or response too slow");
	prom_u64(o, "pgmux_metrics_timeouts_total", NULL, s->timeouts);
	prom_family(o, "pgmux_metrics_evicted_total", "counter",
		    "HTTP connections closed to make room for a newcomer");
	prom_u64(o, "pgmux_metrics_evicted_total", NULL, s->evicted);
	gauge(o, "pgmux_metrics_connections", "HTTP connections open", (uint64_t)s->conns);
}

/* Write every metric of x's worker to o; http: the endpoint's own counters (NULL: none). */
static void metrics_render(struct exporter *x, const struct httpd_stats *http, struct prom_out *o)
{
	struct worker *w = x->w;
	size_t n = 0;
	struct db_sum *sums = sum_databases(w, &n);

	write_process(w, o);
	write_lists(w, o, n);
	write_databases(w, o);
	write_pools(w, o);
	write_stats(sums, n, o);
	write_latency(w, o);
	write_routing(sums, n, o);
	write_topology(x, o);
	if (http)
		write_http(http, o);
	free(sums);
}

/*
 * Is w ready for clients: listening (not shutting down), a configuration in force, and for
 * every database routed through a cluster a confirmed primary, unless the database is declared
 * read_only? When not, why says what is missing; when ready without a primary for such a
 * database, why names it ("ready (database reports: read-only, no primary needed)").
 */
static bool metrics_ready(struct worker *w, char *why, size_t len)
{
	const struct config *cfg = w->cfg;
	const struct db_entry *without = NULL; /* read_only, and its cluster has no primary */

	if (!cfg) {
		snprintf(why, len, "no configuration in force");
		return false;
	}
	if (w->shutting_down || !w->listeners) {
		snprintf(why, len, "not accepting clients: %s",
			 w->shutting_down ? "shutting down" : "not listening");
		return false;
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *e = &cfg->dbs[i];
		const struct cluster *cl;

		if (!e->cluster[0])
			continue;
		cl = topo_find(&w->topo, e->cluster);
		if (cl && cl->primary >= 0)
			continue;
		/* Its clients only read: replicas serve them, no primary needed. */
		if (e->read_only) {
			if (!without)
				without = e;
			continue;
		}
		snprintf(why, len, "database %s: cluster %s has no confirmed primary", e->name,
			 e->cluster);
		return false;
	}
	if (without)
		snprintf(why, len, "ready (database %s: read-only, no primary needed)",
			 without->name);
	else
		snprintf(why, len, "ready");
	return true;
}

static void reply_text(struct httpd_reply *reply, int status, const char *text)
{
	reply->status = status;
	reply->body = strdup(text);
	reply->len = reply->body ? strlen(text) : 0;
}

void exporter_init(struct exporter *x, struct worker *w)
{
	x->w = w;
	list_init(&x->write_pauses);
}

void exporter_free(struct exporter *x)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &x->write_pauses) {
		list_del(n);
		free(list_entry(n, struct write_pauses, node));
	}
}

void exporter_http(void *arg, const char *path, struct httpd_reply *reply)
{
	struct exporter *x = arg;
	struct worker *w = x->w;

	if (strcmp(path, "/metrics") == 0) {
		struct httpd_stats hs;
		struct prom_out o;

		if (!prom_init(&o, 64 * 1024)) {
			reply_text(reply, 500, "out of memory\n");
			return;
		}
		httpd_get_stats(w->metrics_httpd, &hs);
		metrics_render(x, &hs, &o);
		if (o.failed) {
			prom_free(&o);
			reply_text(reply, 500, "out of memory\n");
			return;
		}
		reply->status = 200;
		reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
		reply->body = prom_take(&o, &reply->len);
	} else if (strcmp(path, "/health") == 0) {
		reply_text(reply, 200, "ok\n");
	} else if (strcmp(path, "/ready") == 0) {
		char why[300], line[310];
		bool ready = metrics_ready(w, why, sizeof(why));

		snprintf(line, sizeof(line), "%s\n", why);
		reply_text(reply, ready ? 200 : 503, line);
	} else {
		reply_text(reply, 404, "not found: try /metrics, /health or /ready\n");
	}
}
