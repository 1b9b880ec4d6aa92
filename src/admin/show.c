/*
 * admin/show: the SHOW tables (see admin/show.h).
 *
 * Each table is declared once as a column list; rows are filled through a small row builder
 * that counts its values, so a row can never have more or fewer values than its header says
 * (checked by ASSERT). Values pgmux does not track (clients' cancel-request queues, DNS zones)
 * are constants: 0, an empty string or no rows, as PgBouncer prints them when the feature is
 * unused. SHOW DNS_HOSTS reads the resolver's cache through the worker.
 *
 * A [databases] entry is only read through database.entry while the database is in the
 * config (!removed): a removed database's entry belonged to the previous config.
 */
#include "admin/show.h"
#include "admin/rows.h"
#include "admin/sockets.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/cancel.h"
#include "client/client.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/histogram.h"
#include "core/list.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "server/server.h"
#include "topo/handover.h"
#include "topo/topology.h"
#include "worker/worker.h"

#ifndef PGMUX_VERSION
#define PGMUX_VERSION "unknown"
#endif

/* --- SHOW HELP, VERSION --- */

static void show_help(struct msgbuf *mb)
{
	static const char detail[] =
		"\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION|TOPOLOGY|ROUTES\n"
		"\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
		"\tSHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|LATENCY|STATE|DNS_HOSTS|DNS_ZONES\n"
		"\tSHOW PEERS|PEER_POOLS\n"
		"\tSHOW SHARDS\n"
		"\tSHOW SHARD FOR <key> [IN <db>]\n"
		"\tSHOW ROUTE [IN <db>] FOR <statement>\n"
		"\tSHOW MOVES\n"
		"\tMOVE BUCKETS <shards> <a>-<b>[,...] TO <shard>\n"
		"\tMOVE ABORT <id>\n"
		"\tMOVE CLEANUP <id>\n"
		"\tSET key = value\n"
		"\tRELOAD\n"
		"\tPAUSE [<db>]\n"
		"\tRESUME [<db>]\n"
		"\tDISABLE <db>\n"
		"\tENABLE <db>\n"
		"\tRECONNECT [<db>]\n"
		"\tKILL <db>\n"
		"\tKILL_CLIENT <ptr of SHOW CLIENTS>\n"
		"\tWAIT_CLOSE [<db>]\n"
		"\tSHUTDOWN [WAIT_FOR_CLIENTS|WAIT_FOR_SERVERS]";
	size_t start = mb_begin(mb, 'N');

	mb_put_u8(mb, 'S');
	mb_put_cstring(mb, "NOTICE");
	mb_put_u8(mb, 'V');
	mb_put_cstring(mb, "NOTICE");
	mb_put_u8(mb, 'C');
	mb_put_cstring(mb, "00000");
	mb_put_u8(mb, 'M');
	mb_put_cstring(mb, "Console usage");
	mb_put_u8(mb, 'D');
	mb_put_cstring(mb, detail);
	mb_put_u8(mb, 0);
	mb_end(mb, start);
}

static void show_version(struct msgbuf *mb)
{
	static const struct column cols[] = { { "version", OID_TEXT } };
	struct row r;

	HEADER(mb, cols);
	ROW(&r, cols);
	put_str(&r, "pgmux " PGMUX_VERSION);
	row_end(mb, &r);
}

/*
 * SHOW STATE: PgBouncer's pause mode as yes/no columns. pgmux has no SUSPEND, so "suspended"
 * is always no; "paused" is a PAUSE of everything (PAUSE db shows in SHOW DATABASES).
 */
static void show_state(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "active", OID_TEXT },
		{ "paused", OID_TEXT },
		{ "suspended", OID_TEXT },
	};
	struct row r;

	HEADER(mb, cols);
	ROW(&r, cols);
	put_str(&r, w->pools.paused ? "no" : "yes");
	put_str(&r, w->pools.paused ? "yes" : "no");
	put_str(&r, "no");
	row_end(mb, &r);
}

/* --- SHOW DNS_HOSTS, DNS_ZONES: the resolver's cache (ev/dns.c) --- */

static const struct column dns_host_cols[] = {
	{ "hostname", OID_TEXT },
	{ "ttl", OID_INT8 },
	{ "addrs", OID_TEXT },
};

static void dns_host_row(void *arg, const char *name, const char *addr, double ttl)
{
	struct row r;

	ROW(&r, dns_host_cols);
	put_str(&r, name);
	put_uint(&r, (uint64_t)ttl);
	put_str(&r, addr);
	row_end(arg, &r);
}

static void show_dns_hosts(struct worker *w, struct msgbuf *mb)
{
	HEADER(mb, dns_host_cols);
	worker_for_each_dns_host(w, dns_host_row, mb);
}

/* PgBouncer's zone list, for its zone-transfer mode: pgmux has none, so no rows. */
static void show_dns_zones(struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "zonename", OID_TEXT },
		{ "serial", OID_INT8 },
		{ "count", OID_INT4 },
	};

	HEADER(mb, cols);
}

/* --- SHOW CONFIG --- */

static void show_config(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "key", OID_TEXT },
		{ "value", OID_TEXT },
		{ "default", OID_TEXT },
		{ "changeable", OID_TEXT },
	};
	char value[1024];
	struct row r;

	HEADER(mb, cols);
	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *key = &config_keys[i];

		ROW(&r, cols);
		put_str(&r, key->name);
		put_str(&r, config_show_value(w->cfg, key, value, sizeof(value)));
		put_str(&r, key->default_value);
		put_str(&r, key->reloadable ? "yes" : "no");
		row_end(mb, &r);
	}
}

/* --- SHOW DATABASES, USERS --- */

/*
 * Call fn for every database a client can name: each [databases] entry in file order (with its
 * struct database if it was used already, else NULL) and then those made from the "*" entry.
 * Databases a RELOAD removed are left out, as PgBouncer leaves them out.
 */
typedef void (*db_visit_fn)(struct worker *w, const char *name, const struct db_entry *e,
			    const struct database *db, void *arg);

static const struct database *find_live_db(struct worker *w, const char *name)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools.databases) {
		const struct database *db = list_entry(pos, struct database, node);

		if (!db->removed && db->entry && strcmp(db->name, name) == 0)
			return db;
	}
	return NULL;
}

static void for_each_database(struct worker *w, db_visit_fn fn, void *arg)
{
	const struct config *cfg = w->cfg;
	struct list_node *pos, *tmp;

	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *e = &cfg->dbs[i];

		if (strcmp(e->name, "*") != 0)
			fn(w, e->name, e, find_live_db(w, e->name), arg);
	}
	list_for_each_safe(pos, tmp, &w->pools.databases) {
		const struct database *db = list_entry(pos, struct database, node);

		if (db->from_wildcard && !db->removed && db->entry)
			fn(w, db->name, db->entry, db, arg);
	}
}

static const struct column database_cols[] = {
	{ "name", OID_TEXT },
	{ "host", OID_TEXT },
	{ "port", OID_INT4 },
	{ "database", OID_TEXT },
	{ "force_user", OID_TEXT },
	{ "pool_size", OID_INT4 },
	{ "min_pool_size", OID_INT4 },
	{ "reserve_pool", OID_INT4 },
	{ "pool_mode", OID_TEXT },
	{ "max_connections", OID_INT4 },
	{ "current_connections", OID_INT4 },
	{ "paused", OID_INT4 },
	{ "disabled", OID_INT4 },
};

static void database_row(struct worker *w, const char *name, const struct db_entry *e,
			 const struct database *db, void *arg)
{
	const struct config *cfg = w->cfg;
	struct msgbuf *mb = arg;
	struct row r;

	ROW(&r, database_cols);
	put_str(&r, name);
	put_str(&r, e->host[0] ? e->host : NULL);
	put_int(&r, e->port);
	/* A "*" entry without dbname= connects to the database of the name the client used. */
	put_str(&r, e->dbname[0] ? e->dbname : name);
	put_str(&r, e->user[0] ? e->user : NULL);
	put_int(&r, config_db_pool_size(cfg, e));
	put_int(&r, config_db_min_pool_size(cfg, e));
	put_int(&r, config_db_reserve_pool(cfg, e));
	put_str(&r, e->pool_mode == POOL_MODE_INHERIT ? NULL : pool_mode_name(e->pool_mode));
	put_int(&r, config_db_max_connections(cfg, e));
	put_int(&r, db ? db->n_servers : 0);
	put_int(&r, db && db->paused ? 1 : 0);
	put_int(&r, db && db->disabled ? 1 : 0);
	row_end(mb, &r);
}

static void show_databases(struct worker *w, struct msgbuf *mb)
{
	HEADER(mb, database_cols);
	for_each_database(w, database_row, mb);
}

static const struct column user_cols[] = {
	{ "name", OID_TEXT },
	{ "pool_mode", OID_TEXT },
};

static void user_row(struct msgbuf *mb, const struct config *cfg, const char *name)
{
	const struct user_entry *u = config_find_user(cfg, name);
	struct row r;

	ROW(&r, user_cols);
	put_str(&r, name);
	put_str(&r, u && u->pool_mode != POOL_MODE_INHERIT ? pool_mode_name(u->pool_mode) : NULL);
	row_end(mb, &r);
}

static bool user_is_known(struct worker *w, const char *name)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools.users) {
		if (strcmp(list_entry(pos, struct pool_user, node)->name, name) == 0)
			return true;
	}
	return false;
}

/* Users with pools, then [users] entries that have none yet. */
static void show_users(struct worker *w, struct msgbuf *mb)
{
	struct list_node *pos, *tmp;

	HEADER(mb, user_cols);
	list_for_each_safe(pos, tmp, &w->pools.users)
		user_row(mb, w->cfg, list_entry(pos, struct pool_user, node)->name);
	for (int i = 0; i < w->cfg->n_users; i++) {
		if (!user_is_known(w, w->cfg->users[i].name))
			user_row(mb, w->cfg, w->cfg->users[i].name);
	}
}

/* --- SHOW POOLS --- */

static void show_pools(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "database", OID_TEXT },
		{ "user", OID_TEXT },
		{ "cl_active", OID_INT4 },
		{ "cl_waiting", OID_INT4 },
		{ "cl_active_cancel_req", OID_INT4 },
		{ "cl_waiting_cancel_req", OID_INT4 },
		{ "sv_active", OID_INT4 },
		{ "sv_active_cancel", OID_INT4 },
		{ "sv_being_canceled", OID_INT4 },
		{ "sv_idle", OID_INT4 },
		{ "sv_used", OID_INT4 },
		{ "sv_tested", OID_INT4 },
		{ "sv_login", OID_INT4 },
		{ "maxwait", OID_INT4 },
		{ "maxwait_us", OID_INT4 },
		{ "pool_mode", OID_TEXT },
	};
	uint64_t now = clock_now_us();
	struct list_node *pos, *tmp;
	struct row r;

	HEADER(mb, cols);
	list_for_each_safe(pos, tmp, &w->pools.all) {
		struct pool *p = list_entry(pos, struct pool, node);
		uint64_t waited = pool_longest_wait_us(p, now);
		int canceling = pool_cancel_waiting(p), tested = p->n_reset - canceling;

		ROW(&r, cols);
		put_str(&r, p->db->name);
		put_str(&r, p->user->name);
		put_int(&r, p->n_active_clients);
		put_int(&r, p->n_waiting_clients);
		put_int(&r, 0);
		put_int(&r, 0);
		put_int(&r, p->n_active);
		put_int(&r, 0);
		put_int(&r, canceling);
		put_int(&r, p->n_idle);
		put_int(&r, 0);
		put_int(&r, tested);
		put_int(&r, p->n_login);
		put_uint(&r, waited / 1000000);
		put_uint(&r, waited % 1000000);
		put_str(&r, pool_mode_name(pool_mode(p)));
		row_end(mb, &r);
	}
}

/* --- SHOW STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS --- */

struct averages {
	uint64_t xact_count, query_count; /* per second */
	uint64_t recv, sent;              /* bytes per second */
	uint64_t xact_time, query_time;   /* microseconds per transaction, per query */
	uint64_t wait_time;               /* microseconds per server assignment */
};

static void db_totals(struct worker *w, const struct database *db, struct stats *sum)
{
	struct list_node *pos, *tmp;

	memset(sum, 0, sizeof(*sum));
	list_for_each_safe(pos, tmp, &w->pools.all) {
		struct pool *p = list_entry(pos, struct pool, node);

		if (!db || p->db == db)
			stats_add(sum, &p->stats);
	}
}

/* Counters only grow, except when a pool goes away with its counts: never go negative. */
static uint64_t delta(uint64_t cur, uint64_t prev)
{
	return cur > prev ? cur - prev : 0;
}

static void averages(const struct stats *cur, const struct stats *prev, uint64_t window_us,
		     struct averages *a)
{
	double secs = window_us < 1000000 ? 1.0 : (double)window_us / 1e6;
	uint64_t xacts = delta(cur->xact_count, prev->xact_count);
	uint64_t queries = delta(cur->query_count, prev->query_count);
	uint64_t assigns = delta(cur->server_assignment_count, prev->server_assignment_count);

	a->xact_count = (uint64_t)((double)xacts / secs);
	a->query_count = (uint64_t)((double)queries / secs);
	a->recv = (uint64_t)((double)delta(cur->bytes_received, prev->bytes_received) / secs);
	a->sent = (uint64_t)((double)delta(cur->bytes_sent, prev->bytes_sent) / secs);
	a->xact_time = xacts ? delta(cur->xact_time_us, prev->xact_time_us) / xacts : 0;
	a->query_time = queries ? delta(cur->query_time_us, prev->query_time_us) / queries : 0;
	a->wait_time = assigns ? delta(cur->wait_time_us, prev->wait_time_us) / assigns : 0;
}

static void put_totals(struct row *r, const struct stats *s)
{
	put_uint(r, s->xact_count);
	put_uint(r, s->query_count);
	put_uint(r, s->bytes_received);
	put_uint(r, s->bytes_sent);
	put_uint(r, s->xact_time_us);
	put_uint(r, s->query_time_us);
	put_uint(r, s->wait_time_us);
}

static void put_averages(struct row *r, const struct averages *a)
{
	put_uint(r, a->xact_count);
	put_uint(r, a->query_count);
	put_uint(r, a->recv);
	put_uint(r, a->sent);
	put_uint(r, a->xact_time);
	put_uint(r, a->query_time);
	put_uint(r, a->wait_time);
}

static const struct column stats_cols[] = {
	{ "database", OID_TEXT },
	{ "total_xact_count", OID_INT8 },
	{ "total_query_count", OID_INT8 },
	{ "total_received", OID_INT8 },
	{ "total_sent", OID_INT8 },
	{ "total_xact_time", OID_INT8 },
	{ "total_query_time", OID_INT8 },
	{ "total_wait_time", OID_INT8 },
	{ "avg_xact_count", OID_INT8 },
	{ "avg_query_count", OID_INT8 },
	{ "avg_recv", OID_INT8 },
	{ "avg_sent", OID_INT8 },
	{ "avg_xact_time", OID_INT8 },
	{ "avg_query_time", OID_INT8 },
	{ "avg_wait_time", OID_INT8 },
	/*
	 * PgBouncer's name for total_query_count before 1.8, which tools of that time still
	 * read (Debian's prometheus-pgbouncer-exporter); last, so positions stay PgBouncer's.
	 */
	{ "total_requests", OID_INT8 },
};

/* STATS_TOTALS and STATS_AVERAGES share their column names. */
static const struct column stats_part_cols[] = {
	{ "database", OID_TEXT },       { "xact_count", OID_INT8 }, { "query_count", OID_INT8 },
	{ "bytes_received", OID_INT8 }, { "bytes_sent", OID_INT8 }, { "xact_time", OID_INT8 },
	{ "query_time", OID_INT8 },     { "wait_time", OID_INT8 },
};

struct stats_walk {
	struct msgbuf *mb;
	enum admin_show what;
	uint64_t window_us;
};

static void stats_row(struct worker *w, const char *name, const struct db_entry *e,
		      const struct database *db, void *arg)
{
	static const struct stats zero;
	struct stats_walk *sw = arg;
	struct stats sum;
	struct averages avg;
	struct row r;

	if (db)
		db_totals(w, db, &sum);
	else
		sum = zero;
	averages(&sum, db ? &db->stats_prev : &zero, sw->window_us, &avg);
	if (sw->what == ADMIN_SHOW_STATS)
		ROW(&r, stats_cols);
	else
		ROW(&r, stats_part_cols);
	put_str(&r, name);
	if (sw->what != ADMIN_SHOW_STATS_AVERAGES)
		put_totals(&r, &sum);
	if (sw->what != ADMIN_SHOW_STATS_TOTALS)
		put_averages(&r, &avg);
	if (sw->what == ADMIN_SHOW_STATS)
		put_uint(&r, sum.query_count);
	row_end(sw->mb, &r);
}

static void show_stats(struct worker *w, enum admin_show what, uint64_t stats_since_us,
		       struct msgbuf *mb)
{
	struct stats_walk sw = {
		.mb = mb,
		.what = what,
		.window_us = since(clock_now_us(), stats_since_us),
	};

	if (what == ADMIN_SHOW_STATS)
		HEADER(mb, stats_cols);
	else
		HEADER(mb, stats_part_cols);
	for_each_database(w, stats_row, &sw);
}

static void show_totals(struct worker *w, uint64_t stats_since_us, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "name", OID_TEXT },
		{ "value", OID_INT8 },
	};
	uint64_t window = since(clock_now_us(), stats_since_us);
	struct stats sum;
	struct averages avg;
	struct row r;

	db_totals(w, NULL, &sum);
	averages(&sum, &w->totals_prev, window, &avg);
	const struct {
		const char *name;
		uint64_t value;
	} rows[] = {
		{ "total_xact_count", sum.xact_count },
		{ "total_query_count", sum.query_count },
		{ "total_received", sum.bytes_received },
		{ "total_sent", sum.bytes_sent },
		{ "total_xact_time", sum.xact_time_us },
		{ "total_query_time", sum.query_time_us },
		{ "total_wait_time", sum.wait_time_us },
		{ "avg_xact_count", avg.xact_count },
		{ "avg_query_count", avg.query_count },
		{ "avg_recv", avg.recv },
		{ "avg_sent", avg.sent },
		{ "avg_xact_time", avg.xact_time },
		{ "avg_query_time", avg.query_time },
		{ "avg_wait_time", avg.wait_time },
	};

	HEADER(mb, cols);
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		ROW(&r, cols);
		put_str(&r, rows[i].name);
		put_uint(&r, rows[i].value);
		row_end(mb, &r);
	}
}

void admin_stats_roll(struct worker *w)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools.databases) {
		struct database *db = list_entry(pos, struct database, node);

		db_totals(w, db, &db->stats_prev);
	}
	db_totals(w, NULL, &w->totals_prev);
}

/* --- SHOW LISTS, MEM --- */

static int list_count(const struct list_node *head)
{
	const struct list_node *n;
	int count = 0;

	for (n = head->next; n != head; n = n->next)
		count++;
	return count;
}

static void count_database(struct worker *w, const char *name, const struct db_entry *e,
			   const struct database *db, void *arg)
{
	(*(int *)arg)++;
}

struct object_counts {
	int databases, users, pools, servers, login_clients;
};

static void count_objects(struct worker *w, struct object_counts *oc)
{
	struct list_node *pos, *tmp;

	memset(oc, 0, sizeof(*oc));
	for_each_database(w, count_database, &oc->databases);
	oc->users = list_count(&w->pools.users);
	list_for_each_safe(pos, tmp, &w->pools.all) {
		struct pool *p = list_entry(pos, struct pool, node);

		oc->pools++;
		oc->servers += p->n_idle + p->n_active + p->n_login + p->n_reset;
	}
	list_for_each_safe(pos, tmp, &w->pools.login_clients) {
		if (list_entry(pos, struct client, node)->state == CLIENT_LOGIN)
			oc->login_clients++;
	}
}

static void show_lists(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "list", OID_TEXT },
		{ "items", OID_INT4 },
	};
	struct object_counts oc;
	struct row r;

	count_objects(w, &oc);
	const struct {
		const char *name;
		int items;
	} rows[] = {
		{ "databases", oc.databases },
		{ "users", oc.users },
		{ "pools", oc.pools },
		{ "free_clients", 0 },
		{ "used_clients", w->clients.n },
		{ "login_clients", oc.login_clients },
		{ "free_servers", 0 },
		{ "used_servers", oc.servers },
		{ "dns_names", 0 },
		{ "dns_zones", 0 },
		{ "dns_queries", 0 },
		{ "dns_pending", 0 },
	};

	HEADER(mb, cols);
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		ROW(&r, cols);
		put_str(&r, rows[i].name);
		put_int(&r, rows[i].items);
		row_end(mb, &r);
	}
}

/* Objects are allocated one by one and freed at once (no free lists), except I/O buffers. */
static void show_mem(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "name", OID_TEXT }, { "size", OID_INT4 },     { "used", OID_INT4 },
		{ "free", OID_INT4 }, { "memtotal", OID_INT8 },
	};
	struct object_counts oc;
	struct row r;

	count_objects(w, &oc);
	const struct {
		const char *name;
		size_t size, used, free;
	} rows[] = {
		{ "user_cache", sizeof(struct pool_user), (size_t)oc.users, 0 },
		{ "db_cache", sizeof(struct database), (size_t)oc.databases, 0 },
		{ "pool_cache", sizeof(struct pool), (size_t)oc.pools, 0 },
		{ "server_cache", sizeof(struct server), (size_t)oc.servers, 0 },
		{ "client_cache", sizeof(struct client), (size_t)w->clients.n, 0 },
		{ "iobuf_cache", w->loop.buf_size, w->loop.bufs_in_use, w->loop.n_free_bufs },
	};

	HEADER(mb, cols);
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		ROW(&r, cols);
		put_str(&r, rows[i].name);
		put_uint(&r, rows[i].size);
		put_uint(&r, rows[i].used);
		put_uint(&r, rows[i].free);
		put_uint(&r, (uint64_t)rows[i].size * (rows[i].used + rows[i].free));
		row_end(mb, &r);
	}
}

/* --- SHOW TOPOLOGY, ROUTES --- */

static void topology_row(struct msgbuf *mb, const struct cluster *cl, const struct member *m,
			 uint64_t now)
{
	static const struct column cols[] = {
		{ "cluster", OID_TEXT },
		{ "member", OID_TEXT },
		{ "host", OID_TEXT },
		{ "port", OID_INT4 },
		{ "role", OID_TEXT },
		{ "state", OID_TEXT },
		{ "timeline", OID_INT4 },
		{ "lag_bytes", OID_INT8 },
		{ "lag_ms", OID_INT8 },
		{ "healthy", OID_INT4 },
		{ "banned_until", OID_TEXT },
		{ "source", OID_TEXT },
		{ "servers", OID_INT4 },
		{ "last_error", OID_TEXT },
		/* the cluster's, on each of its members' rows */
		{ "switchovers", OID_INT8 },
		{ "failovers", OID_INT8 },
		{ "last_write_pause_ms", OID_INT8 },
	};
	uint64_t wall = (uint64_t)time(NULL) * 1000000;
	struct row r;

	if (!cl) {
		HEADER(mb, cols);
		return;
	}
	ROW(&r, cols);
	put_str(&r, cl->name);
	put_str(&r, m->name);
	put_str(&r, m->host);
	put_int(&r, m->port);
	put_str(&r, member_role_name(m->role));
	if (cl->primary == m->idx && topo_primary_draining(cl))
		put_str(&r, "draining"); /* a scheduled switchover is due */
	else
		put_str(&r, m->state[0] ? m->state : (m->listed ? "listed" : "unlisted"));
	if (m->timeline >= 0)
		put_int(&r, m->timeline);
	else
		put_str(&r, NULL);
	if (m->lag_bytes >= 0)
		put_int(&r, m->lag_bytes);
	else
		put_str(&r, NULL);
	if (m->lag_ms >= 0 && m->in_recovery == 1)
		put_int(&r, (int64_t)m->lag_ms);
	else if (m->in_recovery == 0)
		put_int(&r, 0);
	else
		put_str(&r, NULL);
	put_int(&r, m->healthy ? 1 : 0);
	if (m->banned_until_us > now)
		put_time(&r, wall + (m->banned_until_us - now));
	else
		put_str(&r, NULL);
	put_str(&r, cl->entry->patroni[0] ? "patroni+check" : "check");
	put_int(&r, m->n_servers);
	put_str(&r, m->last_error[0] ? m->last_error : NULL);
	put_uint(&r, cl->handover.switchovers);
	put_uint(&r, cl->handover.failovers);
	if (handover_count(&cl->handover))
		put_uint(&r, cl->handover.last_pause_us / 1000);
	else
		put_str(&r, NULL);
	row_end(mb, &r);
}

static void show_topology(struct worker *w, struct msgbuf *mb)
{
	uint64_t now = clock_now_us();
	struct list_node *n, *t;

	topology_row(mb, NULL, NULL, now);
	list_for_each_safe(n, t, &w->topo.clusters) {
		struct cluster *cl = list_entry(n, struct cluster, node);

		if (cl->removed)
			continue;
		for (int i = 0; i < cl->n_members; i++) {
			if (cl->members[i].listed || cl->members[i].n_servers)
				topology_row(mb, cl, &cl->members[i], now);
		}
	}
}

static void show_routes(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "database", OID_TEXT },      { "cluster", OID_TEXT },
		{ "primary", OID_TEXT },       { "reads_replica", OID_INT8 },
		{ "reads_primary", OID_INT8 }, { "reads_fallback", OID_INT8 },
		{ "reads_ryw", OID_INT8 },     { "reads_refused", OID_INT8 },
		{ "writes", OID_INT8 },        { "hinted", OID_INT8 },
		{ "primary_waits", OID_INT8 }, { "primary_wait_timeouts", OID_INT8 },
		{ "shard_by_hint", OID_INT8 }, { "shard_by_setting", OID_INT8 },
		{ "shard_by_sql", OID_INT8 },  { "shard_by_default", OID_INT8 },
		{ "shard_stayed", OID_INT8 },  { "shard_no_key", OID_INT8 },
		{ "shard_cross", OID_INT8 },   { "shard_fanned_out", OID_INT8 },
	};
	struct list_node *n, *t;
	struct row r;

	HEADER(mb, cols);
	list_for_each_safe(n, t, &w->pools.databases) {
		const struct database *db = list_entry(n, struct database, node);
		const struct route_stats *st = &db->routes;
		const struct shard_stats *sh = &db->shard_stats;
		bool sharded = db->entry && db->entry->shards[0];

		/* Routed databases (a shard's too), and sharded ones: how their keys were found. */
		if ((!db->cluster && !sharded) || db->removed)
			continue;
		ROW(&r, cols);
		put_str(&r, db->name);
		put_str(&r, db->cluster ? db->cluster->name : NULL);
		put_str(&r, db->cluster && db->cluster->primary >= 0
				    ? db->cluster->members[db->cluster->primary].name
				    : NULL);
		put_uint(&r, st->reads_replica);
		put_uint(&r, st->reads_primary);
		put_uint(&r, st->reads_fallback);
		put_uint(&r, st->reads_ryw);
		put_uint(&r, st->reads_refused);
		put_uint(&r, st->writes);
		put_uint(&r, st->hinted);
		put_uint(&r, st->primary_waits);
		put_uint(&r, st->primary_wait_timeouts);
		put_uint(&r, sh->by_hint);
		put_uint(&r, sh->by_setting);
		put_uint(&r, sh->by_sql);
		put_uint(&r, sh->by_default);
		put_uint(&r, sh->stayed);
		put_uint(&r, sh->no_key);
		put_uint(&r, sh->cross_shard);
		put_uint(&r, sh->fanned_out);
		row_end(mb, &r);
	}
}

/* --- SHOW LATENCY: percentiles from the histograms /metrics exports --- */

static const struct column latency_cols[] = {
	{ "database", OID_TEXT },     { "query_count", OID_INT8 },  { "query_p50_us", OID_INT8 },
	{ "query_p95_us", OID_INT8 }, { "query_p99_us", OID_INT8 }, { "xact_count", OID_INT8 },
	{ "xact_p50_us", OID_INT8 },  { "xact_p95_us", OID_INT8 },  { "xact_p99_us", OID_INT8 },
	{ "wait_count", OID_INT8 },   { "wait_p50_us", OID_INT8 },  { "wait_p95_us", OID_INT8 },
	{ "wait_p99_us", OID_INT8 },  { "login_p99_us", OID_INT8 },
};

static void put_percentiles(struct row *r, const struct histogram *h)
{
	put_uint(r, h->count);
	put_uint(r, histogram_quantile(h, 0.50));
	put_uint(r, histogram_quantile(h, 0.95));
	put_uint(r, histogram_quantile(h, 0.99));
}

/* The histograms of db's pools added up (zero when db has none yet). */
static void database_latency(struct worker *w, const struct database *db, struct latency *sum)
{
	struct list_node *pos, *tmp;

	memset(sum, 0, sizeof(*sum));
	list_for_each_safe(pos, tmp, &w->pools.all) {
		const struct pool *p = list_entry(pos, struct pool, node);

		if (!db || p->db != db)
			continue;
		histogram_add(&sum->wait, &p->latency.wait);
		histogram_add(&sum->query, &p->latency.query);
		histogram_add(&sum->xact, &p->latency.xact);
		histogram_add(&sum->login, &p->latency.login);
	}
}

static void latency_row(struct worker *w, const char *name, const struct db_entry *e,
			const struct database *db, void *arg)
{
	struct latency sum, *lat = &sum;
	struct msgbuf *mb = arg;
	struct row r;

	database_latency(w, db, &sum);
	ROW(&r, latency_cols);
	put_str(&r, name);
	put_percentiles(&r, &lat->query);
	put_percentiles(&r, &lat->xact);
	put_percentiles(&r, &lat->wait);
	put_uint(&r, histogram_quantile(&lat->login, 0.99));
	row_end(mb, &r);
}

static void show_latency(struct worker *w, struct msgbuf *mb)
{
	HEADER(mb, latency_cols);
	for_each_database(w, latency_row, mb);
}

/* --- SHOW PEERS, PEER_POOLS: [peers] and the cancel requests sent to them (client/cancel.c) --- */

/* PgBouncer's four columns. */
static void show_peers(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "peer_id", OID_INT4 },
		{ "host", OID_TEXT },
		{ "port", OID_INT4 },
		{ "pool_size", OID_INT4 },
	};
	const struct config *cfg = w->cfg;
	struct row r;

	HEADER(mb, cols);
	for (int i = 0; i < cfg->n_peers; i++) {
		const struct peer_entry *e = &cfg->peers[i];

		ROW(&r, cols);
		put_int(&r, e->id);
		put_str(&r, e->host);
		put_int(&r, e->port);
		put_int(&r, config_peer_pool_size(cfg, e));
		row_end(mb, &r);
	}
}

/*
 * PgBouncer's columns, as pgmux has them: one connection per request, so a request on its way
 * (cl_active_cancel_req) is a connection being opened (sv_login) or one that carried its
 * request and waits for the peer to close it (sv_active_cancel). Then pgmux's own totals.
 */
static void show_peer_pools(struct worker *w, struct msgbuf *mb)
{
	static const struct column cols[] = {
		{ "peer_id", OID_INT4 },
		{ "cl_active_cancel_req", OID_INT4 },
		{ "cl_waiting_cancel_req", OID_INT4 },
		{ "sv_active_cancel", OID_INT4 },
		{ "sv_login", OID_INT4 },
		{ "forwarded", OID_INT8 },
		{ "failed", OID_INT8 },
		{ "dropped", OID_INT8 },
	};
	static const struct peer none;
	const struct config *cfg = w->cfg;
	struct row r;

	HEADER(mb, cols);
	for (int i = 0; i < cfg->n_peers; i++) {
		const struct peer *p = cancel_peer_find(&w->clients, cfg->peers[i].id);

		if (!p)
			p = &none;
		ROW(&r, cols);
		put_int(&r, cfg->peers[i].id);
		put_int(&r, p->n_login + p->n_active);
		put_int(&r, p->n_waiting);
		put_int(&r, p->n_active);
		put_int(&r, p->n_login);
		put_uint(&r, p->forwarded);
		put_uint(&r, p->failed);
		put_uint(&r, p->dropped);
		row_end(mb, &r);
	}
}

void admin_show(struct worker *w, enum admin_show what, uint64_t stats_since_us, struct msgbuf *mb)
{
	switch (what) {
	case ADMIN_SHOW_HELP:
		show_help(mb);
		break;
	case ADMIN_SHOW_VERSION:
		show_version(mb);
		break;
	case ADMIN_SHOW_CONFIG:
		show_config(w, mb);
		break;
	case ADMIN_SHOW_DATABASES:
		show_databases(w, mb);
		break;
	case ADMIN_SHOW_POOLS:
		show_pools(w, mb);
		break;
	case ADMIN_SHOW_CLIENTS:
	case ADMIN_SHOW_SERVERS:
	case ADMIN_SHOW_SOCKETS:
	case ADMIN_SHOW_ACTIVE_SOCKETS:
		admin_show_sockets(w, what, mb);
		break;
	case ADMIN_SHOW_STATS:
	case ADMIN_SHOW_STATS_TOTALS:
	case ADMIN_SHOW_STATS_AVERAGES:
		show_stats(w, what, stats_since_us, mb);
		break;
	case ADMIN_SHOW_TOTALS:
		show_totals(w, stats_since_us, mb);
		break;
	case ADMIN_SHOW_LISTS:
		show_lists(w, mb);
		break;
	case ADMIN_SHOW_USERS:
		show_users(w, mb);
		break;
	case ADMIN_SHOW_MEM:
		show_mem(w, mb);
		break;
	case ADMIN_SHOW_TOPOLOGY:
		show_topology(w, mb);
		break;
	case ADMIN_SHOW_ROUTES:
		show_routes(w, mb);
		break;
	case ADMIN_SHOW_LATENCY:
		show_latency(w, mb);
		break;
	case ADMIN_SHOW_STATE:
		show_state(w, mb);
		break;
	case ADMIN_SHOW_DNS_HOSTS:
		show_dns_hosts(w, mb);
		break;
	case ADMIN_SHOW_DNS_ZONES:
		show_dns_zones(mb);
		break;
	case ADMIN_SHOW_PEERS:
		show_peers(w, mb);
		break;
	case ADMIN_SHOW_PEER_POOLS:
		show_peer_pools(w, mb);
		break;
	case ADMIN_SHOW_SHARDS:
	case ADMIN_SHOW_SHARD:
	case ADMIN_SHOW_ROUTE:
	case ADMIN_SHOW_MOVES:
		break; /* admin_show_sharding(): they read the resharding state, and may fail */
	}
	build_command_complete(mb, "SHOW");
}
