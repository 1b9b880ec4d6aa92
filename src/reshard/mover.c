/*
 * reshard/mover: bucket moves run on the loop (see reshard/mover.h and shard/move.h).
 *
 * A move is always in one step and one phase of it; it has at most one query out (busy), and
 * its step changes only in set_step(), which checks the transition against shard/move's table.
 * A poll timer per move advances it; a query's answer advances it at once. Clients held by a
 * move are kept in its array and resumed (their first message read again, against the map in
 * force then) when the move leaves the hold, whichever way.
 */
#include "reshard/mover.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/shard.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/list.h"
#include "core/log.h"
#include "core/lsn.h"
#include "ev/loop.h"
#include "ev/pgquery.h"
#include "reshard/movecoord.h"
#include "reshard/reshard.h"
#include "reshard/shardmaps.h"
#include "shard/key.h"
#include "shard/map.h"
#include "shard/mapfile.h"
#include "shard/move.h"
#include "topo/topology.h"

#define MOVER_POLL 0.2            /* seconds between progress polls */
#define HOLD_POLL 0.02            /* the same during the hold, when clients wait */
#define QUERY_TIMEOUT 60.0        /* a connect or one query (a slot's creation waits for xacts) */
#define CATCHUP_LAG (1024 * 1024) /* bytes behind at which the hold starts */
#define DELETE_BATCH 5000
#define COUNT_EVERY 2.0 /* seconds between counts of the rows copied so far */
#define ERROR_MAX 600
/*
 * Seconds a rollback tries a failed step on the source again: a switchover or failover there
 * takes that long to show a new primary, and the old one to come back as a replica.
 */
#define ROLLBACK_RETRY 30.0

/* Walk a list whose nodes stay where they are during the walk. */
#define for_each_node(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

struct move {
	struct list_node node;
	struct movers *ms;
	int id;
	char set[64], from[64], to[64];
	char dbname[128]; /* the database on both shards */
	struct move_range ranges[MOVE_RANGES_MAX];
	int n_ranges;
	char buckets[256];
	char key[64];
	struct move_spec spec;
	enum move_step step;
	int phase;
	char name[64];           /* publication, subscription and slot */
	char conninfo[2][2048];  /* source, target: pgmux's logins */
	char primary[2][64];     /* the source's and target's primary members at the start */
	char sub_conninfo[2048]; /* the subscription's login to the source */
	struct pgquery *src, *dst;
	/*
	 * Rollback after the source's primary changed: the member the slots were made on, which
	 * no longer is the primary (src follows the new one, where the publication is).
	 */
	char slot_conninfo[2048];
	struct pgquery *slot_q;
	char suboid[16];   /* the subscription's oid on the target: names its tables' slots */
	bool sync_dropped; /* rollback: those slots dropped */
	char **tables;
	int n_tables;
	char *src_columns;
	char *src_sequences;
	char warning[400]; /* what the check found worth saying, not worth refusing */
	bool busy;         /* a query is out */
	bool abort_asked;  /* MOVE ABORT came while a query was out: after its answer */
	bool ticking;      /* the poll timer runs (not at an end: done, failed...) */
	bool recovered;    /* read from the state file at start */
	bool fetching_tables, tables_read; /* a recovered move reading its tables again */
	bool created;                      /* the publication may exist: rollback has work */
	uint64_t started_us, hold_us, drained_us, wait_until_us, counted_us;
	uint64_t retry_since_us; /* rollback: when a step on the source first failed */
	bool retry_logged;
	uint64_t target_lsn;
	int64_t rows, lag;
	int table; /* clean-up and rollback: the table being deleted from */
	char error[ERROR_MAX];
	struct evloop_timer timer;
	struct client **held;
	int n_held, cap_held;
	/* coordinated through etcd (reshard/movecoord.h) */
	bool coordinated;         /* the section's map is in etcd */
	uint64_t next_version;    /* the map version the switch writes */
	int confirmed, instances; /* instances that confirmed the hold, of those registered */
	bool state_in_etcd;       /* its state is under the map key (reshard_coord_save) */
};

struct movers {
	struct reshard *rs;
	struct list_node moves;
	int next_id;
};

static void advance(struct move *m);
static void save_state(struct move *m);

/* ---- steps ---- */

static void set_step(struct move *m, enum move_step to, const char *why)
{
	ASSERT(move_step_allowed(m->step, to));
	log_info("move %d (%s buckets %s, %s -> %s): %s -> %s%s%s", m->id, m->set, m->buckets,
		 m->from, m->to, move_step_name(m->step), move_step_name(to), why ? ": " : "",
		 why ? why : "");
	m->step = to;
	m->phase = 0;
	m->table = 0;
	m->wait_until_us = 0;
	m->retry_since_us = 0;
	m->retry_logged = false;
	save_state(m);
}

/* Held clients go on: each reads its message again against the map in force now. */
static void release_held(struct move *m)
{
	int n = m->n_held;

	if (n)
		log_info("move %d: %d held unit(s) of work go on", m->id, n);
	m->n_held = 0;
	for (int i = 0; i < n; i++)
		client_shard_resume(m->held[i]);
}

static void note_error(struct move *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void coord_abort(struct move *m);

static void note_error(struct move *m, const char *fmt, ...)
{
	size_t used = strlen(m->error);
	va_list ap;

	if (used && used + 3 < sizeof(m->error)) {
		strcpy(m->error + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(m->error + used, sizeof(m->error) - used, fmt, ap);
	va_end(ap);
}

/* The step failed (or was aborted): roll back before the switch, stay done after it. */
static void fail(struct move *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct move *m, const char *fmt, ...)
{
	char why[ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warning("move %d: %s failed: %s", m->id, move_step_name(m->step), why);
	note_error(m, "%s: %s", move_step_name(m->step), why);
	coord_abort(m);
	set_step(m, move_step_on_failure(m->step), why);
	release_held(m);
}

/* ---- connections ---- */

static const struct shards_entry *section_of(const struct move *m)
{
	return config_find_shards(*m->ms->rs->cfg, m->set);
}

static int shard_index(const struct shards_entry *set, const char *name)
{
	for (int k = 0; k < set->n_shards; k++) {
		if (strcmp(set->shards[k].name, name) == 0)
			return k;
	}
	return -1;
}

/*
 * The logins to shard's primary: pgmux's own (with its TLS and authentication rules), and the
 * one the subscription on the target uses to reach the source (plain libpq options only).
 */
static bool build_conninfo(struct move *m, const char *shard, char *out, size_t len, char *sub,
			   size_t sublen, char *err, size_t errlen)
{
	struct reshard *rs = m->ms->rs;
	const struct shards_entry *set = section_of(m);
	const struct config *cfg = *rs->cfg;
	int k = set ? shard_index(set, shard) : -1;
	struct cluster *cl = k >= 0 ? topo_find(rs->topo, set->shards[k].cluster) : NULL;
	const struct member *mb;
	char port[16], require_auth[64];
	const char *addr, *user, *password;
	struct pgquery_policy policy = {
		.sslmode = cfg->server_tls_sslmode,
		.ca_file = cfg->server_tls_ca_file,
		.cert_file = cfg->server_tls_cert_file,
		.key_file = cfg->server_tls_key_file,
		.require_auth = require_auth,
		.scram_max_iterations = cfg->server_scram_max_iterations,
	};

	if (!cl || cl->primary < 0) {
		snprintf(err, errlen, "shard %s has no primary now", shard);
		return false;
	}
	mb = &cl->members[cl->primary];
	addr = mb->check_addr[0] ? mb->check_addr : mb->host;
	user = set->move_user[0] ? set->move_user : cl->check_user;
	password = set->move_user[0] ? set->move_password : cl->check_password;
	policy.host_name = mb->host;
	config_server_require_auth(cfg, require_auth, sizeof(require_auth));
	snprintf(port, sizeof(port), "%d", mb->port);
	out[0] = sub[0] = '\0';
	if (!pgquery_conninfo_add(sub, sublen, addr[0] == '/' ? "host" : "hostaddr", addr) ||
	    !pgquery_conninfo_add(sub, sublen, "port", port) ||
	    !pgquery_conninfo_add(sub, sublen, "user", user) ||
	    !pgquery_conninfo_add(sub, sublen, "dbname", m->dbname) ||
	    (password[0] && !pgquery_conninfo_add(sub, sublen, "password", password)) ||
	    /*
	     * The subscription's libpq runs on the target's host, where pgmux's certificate files
	     * are not: it gets encryption when pgmux requires it, not pgmux's verification.
	     */
	    !pgquery_conninfo_add(sub, sublen, "sslmode",
				  cfg->server_tls_sslmode >= SSLMODE_REQUIRE ? "require"
									     : "prefer") ||
	    snprintf(out, len, "%s", sub) >= (int)len ||
	    !pgquery_conninfo_add(out, len, "application_name", "pgmux move") ||
	    !pgquery_conninfo_policy(out, len, &policy)) {
		snprintf(err, errlen, "connection string too long");
		return false;
	}
	return true;
}

/* The name of shard's primary member now, into out ("" when it has none). */
static void primary_of(struct move *m, const char *shard, char *out, size_t len)
{
	struct reshard *rs = m->ms->rs;
	const struct shards_entry *set = section_of(m);
	int k = set ? shard_index(set, shard) : -1;
	struct cluster *cl = k >= 0 ? topo_find(rs->topo, set->shards[k].cluster) : NULL;

	snprintf(out, len, "%s", cl && cl->primary >= 0 ? cl->members[cl->primary].name : "");
}

/*
 * Both shards still have the primary they had at the start: a logical slot stays on the
 * member it was made on, and the subscription names that member's address. false: it failed.
 */
static bool same_primaries(struct move *m)
{
	const char *shards[2] = { m->from, m->to };
	char now[64];

	for (int i = 0; i < 2; i++) {
		primary_of(m, shards[i], now, sizeof(now));
		/* None confirmed now (a health check failed): the queries themselves will tell. */
		if (now[0] && strcmp(now, m->primary[i]) != 0) {
			fail(m,
			     "the primary of shard %s changed (from %s to %s): the replication slot "
			     "and the subscription stay with the old one",
			     shards[i], m->primary[i], now);
			return false;
		}
	}
	return true;
}

/* Has a shard's primary changed since the connections were made (they reach the old one)? */
static bool primaries_moved(struct move *m)
{
	const char *shards[2] = { m->from, m->to };
	char now[64];

	for (int i = 0; i < 2; i++) {
		primary_of(m, shards[i], now, sizeof(now));
		if (now[0] && m->primary[i][0] && strcmp(now, m->primary[i]) != 0)
			return true;
	}
	return false;
}

/* Both shards' conninfos, and their primaries now (the move fails if one changes). */
static bool build_conninfos(struct move *m, char *err, size_t errlen)
{
	char sub_unused[2048];

	if (!build_conninfo(m, m->from, m->conninfo[0], sizeof(m->conninfo[0]), m->sub_conninfo,
			    sizeof(m->sub_conninfo), err, errlen) ||
	    !build_conninfo(m, m->to, m->conninfo[1], sizeof(m->conninfo[1]), sub_unused,
			    sizeof(sub_unused), err, errlen)) {
		m->conninfo[0][0] = '\0';
		return false;
	}
	primary_of(m, m->from, m->primary[0], sizeof(m->primary[0]));
	primary_of(m, m->to, m->primary[1], sizeof(m->primary[1]));
	return true;
}

static void on_query(void *arg, enum pgquery_outcome outcome, int ncols, const char *const *values,
		     const char *error);

/* The answer the move waits for comes to on_query; false when it could not be sent. */
static bool submit(struct move *m, struct pgquery *q, const char *sql, const char *param)
{
	if (!sql || !pgquery_submit(q, sql, param, on_query, m)) {
		fail(m, "out of memory");
		return false;
	}
	m->busy = true;
	return true;
}

/* Send sql (malloc'd, freed here). */
static void send_owned(struct move *m, struct pgquery *q, char *sql)
{
	submit(m, q, sql, NULL);
	free(sql);
}

static void poll_later(struct move *m)
{
	double delay = m->step == MOVE_HOLD ? HOLD_POLL : MOVER_POLL;

	m->wait_until_us = clock_now_us() + (uint64_t)(delay * 1e6);
}

/* ---- the switch ---- */

/* Write text to path as a whole: aside, flushed, then renamed over it. */
static bool write_map_file(const char *path, const char *text, char *err, size_t errlen)
{
	char tmp[4096];
	size_t len = strlen(text), done = 0;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.move.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "%.300s: %s", tmp, strerror(errno));
		return false;
	}
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done < len || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "writing %.300s: %s", path, strerror(errno));
		if (done < len)
			close(fd);
		unlink(tmp);
		return false;
	}
	return true;
}

/* A state line: "move NAME BUCKETS FROM TO STEP". */
static void state_line(const struct move *m, char *buf, size_t len)
{
	snprintf(buf, len, "move %s %s %s %s %s", m->name, m->buckets, m->from, m->to,
		 move_step_name(m->step));
}

/* Nothing exists on a shard before the copy: a move still checking is not kept, nor one over. */
static bool state_kept(const struct move *m)
{
	return m->step != MOVE_CHECK && m->step != MOVE_CLEANED && m->step != MOVE_FAILED;
}

/*
 * A move of a section whose map is in etcd keeps its state there, beside its record but under
 * no lease (reshard/movecoord.h), so that the coordinator started again finds it.
 */
static void save_state_in_etcd(struct move *m)
{
	char line[512];

	if (!state_kept(m)) {
		if (m->state_in_etcd)
			reshard_coord_save(m->ms->rs, m->set, m->name, NULL);
		m->state_in_etcd = false;
		return;
	}
	state_line(m, line, sizeof(line));
	m->state_in_etcd = reshard_coord_save(m->ms->rs, m->set, m->name, line);
}

/*
 * The moves of m's section that are not over, in "<map file>.moves", so that a pgmux started
 * again finds them: one line each, "move NAME BUCKETS FROM TO STEP". Written aside and
 * renamed, as the map is; removed when no move is left. Failing to write it is logged: the
 * move goes on, and a restart would not know of it.
 */
static void save_state(struct move *m)
{
	const struct shards_entry *set = section_of(m);
	char path[4096], line[512], err[400];
	struct list_node *n;
	size_t len = 0, cap = 0;
	char *text = NULL;
	bool ok = true;

	if (!set)
		return;
	if (config_shard_map_in_etcd(set)) {
		save_state_in_etcd(m);
		return;
	}
	snprintf(path, sizeof(path), "%s.moves", set->map);
	for_each_node(n, &m->ms->moves)
	{
		const struct move *o = list_entry(n, struct move, node);
		int w;

		if (strcmp(o->set, m->set) != 0 || !state_kept(o))
			continue;
		state_line(o, line, sizeof(line) - 1);
		strcat(line, "\n");
		w = (int)strlen(line);
		if (len + (size_t)w + 1 > cap) {
			char *t = realloc(text, cap = cap * 2 + sizeof(line) * 4);

			if (!t) {
				ok = false;
				break;
			}
			text = t;
		}
		memcpy(text + len, line, (size_t)w + 1);
		len += (size_t)w;
	}
	if (ok && !text) {
		if (unlink(path) != 0 && errno != ENOENT)
			log_warning("shards.%s: cannot remove %s: %s", m->set, path,
				    strerror(errno));
	} else if (!ok || !write_map_file(path, text, err, sizeof(err))) {
		log_warning("shards.%s: the moves' state is not saved (%s): a restart would not "
			    "know of move %d",
			    m->set, ok ? err : "out of memory", m->id);
	}
	free(text);
}

/*
 * The next map version with the moving buckets on the target, written over the map file and
 * put in force the way RELOAD does (a clone of the config in force with the new map).
 */
/* Does map give the move's buckets to its target (all or none: a map is switched whole)? */
static bool switched(const struct move *m, const struct shard_map *map)
{
	return strcmp(map->names[map->owner[m->ranges[0].first]], m->to) == 0;
}

static bool moving_bucket(uint32_t bucket, void *arg)
{
	const struct move *m = arg;

	return move_ranges_contain(m->ranges, m->n_ranges, bucket);
}

/* The map after the move: now's next version, the moving buckets on the target. */
static struct shard_map *next_map(struct move *m, const struct shard_map *now, char *err,
				  size_t errlen)
{
	return shard_map_give(now, moving_bucket, m, m->to, err, errlen);
}

static bool switch_map(struct move *m, char *err, size_t errlen)
{
	struct reshard *rs = m->ms->rs;
	const struct shards_entry *set = section_of(m);
	const struct loaded_shard_map *now = set ? reshard_shard_map(rs, set) : NULL;
	struct loaded_shard_map *next = NULL;
	struct shard_map *nm = NULL;
	struct config *cfg;
	char *old = NULL, *text = NULL, why[300];
	bool ok = false, written = false;

	if (!now) {
		snprintf(err, errlen, "the section or its map is gone");
		return false;
	}
	/* The text in force, to put back should the switch fail after the file was written. */
	if (!(old = shard_map_format(now->map))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (!(nm = next_map(m, now->map, err, errlen)))
		goto out;
	if (!(text = shard_map_format(nm))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (!(next = config_shard_map_from_text(set, text, strlen(text), err, errlen)))
		goto out;
	if (!(written = write_map_file(set->map, text, err, errlen)))
		goto out;
	if (!(cfg = config_clone(*rs->cfg))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < cfg->n_shard_sets; i++) {
		if (strcmp(cfg->shard_sets[i].name, m->set) != 0)
			continue;
		config_shard_map_unref(cfg->shard_sets[i].loaded);
		cfg->shard_sets[i].loaded = next;
		next = NULL;
	}
	if (!rs->apply(rs->apply_arg, cfg, err, errlen))
		goto out;
	log_info("move %d: shard map version %" PRIu64 " in force: buckets %s on shard %s", m->id,
		 nm->version, m->buckets, m->to);
	ok = true;
out:
	/* Not in force: the file must not say otherwise, or a RELOAD would switch after the rollback. */
	if (!ok && written && !write_map_file(set->map, old, why, sizeof(why)))
		log_error(
			"move %d: %s holds the next map version, which is not in force and must not "
			"be: put the previous version back before any RELOAD (%s)",
			m->id, set->map, why);
	config_shard_map_unref(next);
	shard_map_free(nm);
	free(text);
	free(old);
	return ok;
}

/* ---- who still runs on the moving buckets ---- */

/*
 * Units of work on the source shard that touch the moving buckets (or began before the move
 * did, so their keys were never looked at): linked to a server, or queued for one.
 */
static int running_units(struct move *m)
{
	return client_units_running(m->ms->rs->pools, *m->ms->rs->cfg, m->set, m->from,
				    m->started_us);
}

/* ---- answers ---- */

static const char *val(int ncols, const char *const *values, int i)
{
	return i < ncols && values[i] ? values[i] : NULL;
}

static void on_check_source(struct move *m, int ncols, const char *const *v)
{
	const char *wal = val(ncols, v, 0), *tables = val(ncols, v, 1), *bad = val(ncols, v, 2);
	char why[300];

	if (!wal || strcmp(wal, "logical") != 0) {
		fail(m,
		     "wal_level is %s on shard %s: logical replication needs wal_level = logical",
		     wal ? wal : "unknown", m->from);
		return;
	}
	if (bad) {
		fail(m,
		     "on shard %s, the replica identity of %s does not cover %s: ALTER TABLE ... "
		     "REPLICA IDENTITY FULL, or a primary key (or replica identity index) that "
		     "includes it",
		     m->from, bad, m->key);
		return;
	}
	m->n_tables = move_split_tables(tables ? tables : "", &m->tables, why, sizeof(why));
	if (m->n_tables <= 0) {
		if (m->n_tables < 0)
			fail(m, "%s", why);
		else
			fail(m, "no table on shard %s has a column %s", m->from, m->key);
		m->n_tables = 0;
		return;
	}
	free(m->src_columns);
	free(m->src_sequences);
	m->src_columns = strdup(val(ncols, v, 3) ? val(ncols, v, 3) : "");
	m->src_sequences = strdup(val(ncols, v, 4) ? val(ncols, v, 4) : "");
	m->phase = 1;
}

static void on_answer(struct move *m, int ncols, const char *const *v)
{
	char why[ERROR_MAX];
	uint64_t lsn;

	switch (m->step) {
	case MOVE_CHECK:
		if (m->phase == 0) {
			on_check_source(m, ncols, v);
		} else if (m->phase == 1) {
			if (!m->src_columns || !m->src_sequences ||
			    !move_columns_match(m->src_columns, val(ncols, v, 0) ? v[0] : "", why,
						sizeof(why))) {
				fail(m, "%s",
				     m->src_columns && m->src_sequences ? why : "out of memory");
				break;
			}
			/*
			 * Rows inserted on the target after the switch take its sequences' values:
			 * said, not refused, since the application may not use these columns.
			 */
			if (move_sequences_clash(m->src_sequences, val(ncols, v, 1) ? v[1] : "",
						 m->warning, sizeof(m->warning)))
				log_warning(
					"move %d: %s: give each shard its own range, or use uuids "
					"(doc/sharding.md)",
					m->id, m->warning);
			m->phase = 2;
		} else if (strcmp(val(ncols, v, 0) ? v[0] : "", "0") != 0) {
			fail(m,
			     "shard %s already holds %s rows of these buckets: delete them first",
			     m->to, val(ncols, v, 0) ? v[0] : "some");
		} else {
			set_step(m, MOVE_COPY, NULL);
		}
		break;
	case MOVE_COPY:
		if (m->phase == 0) {
			m->phase = 1;
		} else if (m->phase == 1) {
			m->phase = 2;
		} else if (m->phase == 2) {
			if (val(ncols, v, 3))
				snprintf(m->suboid, sizeof(m->suboid), "%s", v[3]);
			/*
			 * Disabled by hand, it would copy nothing more and the move would wait for
			 * ever: the move fails instead (MOVE BUCKETS again, once the cause is gone).
			 */
			if (strcmp(val(ncols, v, 2) ? v[2] : "", "false") == 0) {
				fail(m, "the subscription %s was disabled on shard %s", m->name,
				     m->to);
				break;
			}
			/* tables still copying, all tables */
			bool copied = val(ncols, v, 0) && strcmp(v[0], "0") == 0 &&
				      val(ncols, v, 1) && strcmp(v[1], "0") != 0;

			/* Counting the rows reads them all: not at every poll. */
			if (copied) {
				m->phase = 4;
			} else if (clock_now_us() - m->counted_us >=
				   (uint64_t)(COUNT_EVERY * 1e6)) {
				m->phase = 3;
			} else {
				poll_later(m);
			}
		} else {
			m->counted_us = clock_now_us();
			m->rows = val(ncols, v, 0) ? strtoll(v[0], NULL, 10) : m->rows;
			if (m->phase == 4)
				set_step(m, MOVE_CATCHUP, NULL);
			else {
				m->phase = 2;
				poll_later(m);
			}
		}
		break;
	case MOVE_CATCHUP:
		if (m->phase == 1) {
			/* As in the copy: disabled, it would never catch up. */
			m->phase = 0;
			if (strcmp(val(ncols, v, 2) ? v[2] : "", "false") == 0)
				fail(m, "the subscription %s was disabled on shard %s", m->name,
				     m->to);
			else
				poll_later(m);
			break;
		}
		m->lag = val(ncols, v, 1) ? strtoll(v[1], NULL, 10) : -1;
		if (m->lag >= 0 && m->lag <= CATCHUP_LAG) {
			set_step(m, MOVE_HOLD, NULL);
			m->hold_us = clock_now_us();
		} else {
			m->phase = 1; /* behind: is the subscription still applying? */
		}
		break;
	case MOVE_HOLD:
		if (m->phase == 2) {
			if (!lsn_parse(val(ncols, v, 0), &lsn)) {
				fail(m, "unexpected WAL position on shard %s", m->from);
				break;
			}
			m->target_lsn = lsn;
			m->phase = 3;
			log_info(
				"move %d: no unit runs on the moving buckets; waiting for shard %s to "
				"apply shard %s's WAL up to %s",
				m->id, m->to, m->from, v[0]);
		} else if (m->phase == 3) {
			m->lag = val(ncols, v, 1) ? strtoll(v[1], NULL, 10) : -1;
			if (lsn_parse(val(ncols, v, 0), &lsn) && lsn >= m->target_lsn &&
			    m->coordinated)
				m->phase =
					4; /* the other instances' confirmations, then the switch */
			else if (lsn_parse(val(ncols, v, 0), &lsn) && lsn >= m->target_lsn)
				set_step(m, MOVE_SWITCH, NULL);
			else
				poll_later(m);
		}
		break;
	case MOVE_ROLLBACK:
		if (m->phase == 2 && m->suboid[0] && !m->sync_dropped) {
			m->sync_dropped = true; /* the tables' slots: then the subscription's */
			break;
		}
		if (m->phase != 4) {
			/* dropped with its slot: on to the slot (gone already), else see run_rollback */
			m->phase = m->phase == 0   ? 2
				   : m->phase == 1 ? 5
				   : m->phase == 5 ? 2
						   : m->phase + 1;
			break;
		}
		/* fall through */
	case MOVE_CLEANUP:
		if (m->phase == 4) {
			int64_t n = val(ncols, v, 0) ? strtoll(v[0], NULL, 10) : 0;

			if (m->step == MOVE_CLEANUP)
				m->rows += n;
			if (n == 0)
				m->table++;
		} else {
			m->phase++;
		}
		break;
	default:
		break;
	}
}

/*
 * Does the rollback's step run on the target (the subscription, the copied rows), and can the
 * target change hands (a cluster of several members)? A lone server that is down is not waited
 * for: the rollback notes what it left, for MOVE CLEANUP.
 */
static bool on_changing_target(const struct move *m)
{
	const struct shards_entry *set = section_of(m);
	int k = set ? shard_index(set, m->to) : -1;
	const struct cluster *cl = k >= 0 ? topo_find(m->ms->rs->topo, set->shards[k].cluster)
					  : NULL;

	return m->phase != 2 && m->phase != 3 && cl && cl->n_members > 1;
}

/* May a rollback step that failed be tried again (its shard changing hands)? */
static bool rollback_retry(struct move *m)
{
	uint64_t now = clock_now_us();

	if (!m->retry_since_us)
		m->retry_since_us = now;
	return now - m->retry_since_us < (uint64_t)(ROLLBACK_RETRY * 1e6);
}

static void on_query(void *arg, enum pgquery_outcome outcome, int ncols, const char *const *values,
		     const char *error)
{
	struct move *m = arg;

	m->busy = false;
	if (outcome == PGQUERY_LOST && m->step == MOVE_ROLLBACK && on_changing_target(m) &&
	    rollback_retry(m)) {
		/* The target unreachable (changing hands): on_tick follows its new primary. */
		if (!m->retry_logged)
			log_info("move %d: rollback on shard %s: %s; trying again for up to %g s",
				 m->id, m->to, error, ROLLBACK_RETRY);
		m->retry_logged = true;
		poll_later(m);
		advance(m);
		return;
	}
	/* Elsewhere a lost connection fails the query as any error does. */
	if (outcome == PGQUERY_LOST)
		outcome = PGQUERY_ERROR;
	if (m->fetching_tables) {
		char why[200];
		int n;

		m->fetching_tables = false;
		m->tables_read = true;
		n = outcome == PGQUERY_ROW
			    ? move_split_tables(val(ncols, values, 1) ? values[1] : "", &m->tables,
						why, sizeof(why))
			    : -1;
		m->n_tables = n > 0 ? n : 0;
		if (n < 0 && m->step == MOVE_ROLLBACK)
			note_error(m, "rollback: the tables could not be read: %s",
				   outcome == PGQUERY_ERROR ? error : why);
		else if (n < 0)
			fail(m, "the tables could not be read: %s",
			     outcome == PGQUERY_ERROR ? error : why);
		advance(m);
		return;
	}
	if (outcome == PGQUERY_ERROR) {
		if (m->step == MOVE_ROLLBACK && m->phase == 0) {
			/* Not with its slot (the source is lost, or the slot is gone): detach it. */
			log_info(
				"move %d: dropping subscription %s: %s; detaching it from its slot",
				m->id, m->name, error);
			m->phase = 1;
		} else if (m->step == MOVE_ROLLBACK && (m->phase == 2 || m->phase == 3) &&
			   rollback_retry(m)) {
			if (!m->retry_logged)
				log_info(
					"move %d: rollback on shard %s: %s; trying again for up to "
					"%g s",
					m->id, m->from, error, ROLLBACK_RETRY);
			m->retry_logged = true;
			poll_later(m);
		} else if (m->step == MOVE_CATCHUP && m->phase == 1) {
			/* The target away (restarting, changing hands): catching up waits for it. */
			m->phase = 0;
			poll_later(m);
		} else if (m->step == MOVE_ROLLBACK) {
			/* Roll back what can be: note what could not, and go on. */
			note_error(m, "rollback: %s", error);
			if (m->phase == 4)
				m->table = m->n_tables;
			else
				m->phase = m->phase == 1 || m->phase == 5 ? 2 : m->phase + 1;
		} else {
			fail(m, "%s", error);
		}
	} else if (outcome == PGQUERY_NO_ROW && m->step == MOVE_COPY && m->phase == 2) {
		fail(m, "the subscription %s is gone from shard %s", m->name, m->to);
	} else if (outcome == PGQUERY_NO_ROW && m->step == MOVE_CATCHUP && m->phase == 1) {
		fail(m, "the subscription %s is gone from shard %s", m->name, m->to);
	} else if (outcome == PGQUERY_NO_ROW && m->step == MOVE_CATCHUP) {
		fail(m, "the replication slot %s is gone from shard %s", m->name, m->from);
	} else if (outcome == PGQUERY_NO_ROW && m->step == MOVE_HOLD && m->phase == 3) {
		fail(m, "the replication slot %s is gone from shard %s", m->name, m->from);
	} else {
		on_answer(m, ncols, values);
	}
	advance(m);
}

/* ---- sending the next query ---- */

/*
 * A move found at start knows its buckets, not its tables: they are read again (the source's
 * tables with the key column) before rows are deleted. true: a query went out for them.
 */
static bool need_tables(struct move *m)
{
	if (m->tables || !m->recovered || m->tables_read)
		return false;
	m->fetching_tables = true;
	submit(m, m->src, move_sql_check_source, m->key);
	return true;
}

static void run_check(struct move *m)
{
	if (m->phase == 0)
		submit(m, m->src, move_sql_check_source, m->key);
	else if (m->phase == 1)
		submit(m, m->dst, move_sql_check_target, m->key);
	else
		send_owned(m, m->dst, move_sql_count_rows(m->tables, m->n_tables, &m->spec));
}

static void run_copy(struct move *m)
{
	if (m->phase == 0) {
		m->created = true; /* it may exist even if its answer is lost */
		send_owned(m, m->src,
			   move_sql_publication(m->name, m->tables, m->n_tables, &m->spec));
	} else if (m->phase == 1) {
		send_owned(m, m->dst, move_sql_subscription(m->name, m->sub_conninfo));
	} else if (m->phase == 2) {
		submit(m, m->dst, move_sql_copy_state, m->name);
	} else {
		send_owned(m, m->dst, move_sql_count_rows(m->tables, m->n_tables, &m->spec));
	}
}

/* ---- coordinated through etcd (reshard/movecoord.h) ---- */

/* The other instances are asked to hold too: the move's record, step hold. */
static bool coord_hold(struct move *m)
{
	struct reshard *rs = m->ms->rs;
	const struct shards_entry *set = section_of(m);
	const struct loaded_shard_map *l = set ? reshard_shard_map(rs, set) : NULL;
	char err[300];

	if (!l) {
		fail(m, "the section's map is gone");
		return false;
	}
	m->next_version = l->map->version + 1;
	if (!reshard_coord_hold(rs, m->set, m->name, m->buckets, m->from, m->to, m->next_version,
				err, sizeof(err))) {
		fail(m, "%s", err);
		return false;
	}
	return true;
}

/* Every other instance registered confirmed the hold: switch. */
static void coord_wait(struct move *m)
{
	reshard_coord_confirmed(m->ms->rs, m->set, m->name, &m->confirmed, &m->instances);
	if (m->instances < 0 || m->confirmed < m->instances) {
		poll_later(m);
		return;
	}
	log_info("move %d: %d other pgmux instance(s) confirmed the hold", m->id, m->instances);
	set_step(m, MOVE_SWITCH, NULL);
}

/* The move fails while its record may say hold: tell the other instances to release. */
static void coord_abort(struct move *m)
{
	if (m->coordinated && (m->step == MOVE_HOLD || m->step == MOVE_SWITCH))
		reshard_coord_end(m->ms->rs, m->set, m->name, false);
}

/* Has the coordinated switch gone out (its outcome may not be known)? Nothing rolls back then. */
static bool coord_switching(const struct move *m)
{
	return m->coordinated && m->step == MOVE_SWITCH && m->phase > 0;
}

static void on_coord_switch(void *arg, bool switched, const char *why)
{
	struct move *m = arg;

	m->busy = false;
	if (!switched && strstr(why, "did not answer")) {
		/*
		 * etcd may have taken it: whether it did shows in the map the watch brings. The move
		 * waits for either map and never rolls back meanwhile.
		 */
		log_warning("move %d: %s: waiting to see which map etcd holds", m->id, why);
		m->phase = 2;
	} else if (!switched) {
		m->phase = 0;
		fail(m, "%s", why);
	} else {
		m->phase = 2;
	}
	advance(m);
}

/* The next map text: the one in force with the moving buckets on the target. NULL: err says. */
static char *next_map_text(struct move *m, const struct loaded_shard_map *now, char *err,
			   size_t errlen)
{
	struct shard_map *nm = next_map(m, now->map, err, errlen);
	char *text = NULL;

	if (nm && nm->version != m->next_version) {
		snprintf(err, errlen, "the map in force changed during the hold");
	} else if (nm && !(text = shard_map_format(nm))) {
		snprintf(err, errlen, "out of memory");
	}
	shard_map_free(nm);
	return text;
}

/*
 * The switch of a coordinated move: the next map over the key in etcd if nobody wrote it since
 * it was read (phase 1: out); then (phase 2) the watch puts it in force here as everywhere, and
 * held units go on to it. A map etcd holds that is not the move's ends the move as failed.
 */
static void coord_switch(struct move *m)
{
	struct reshard *rs = m->ms->rs;
	const struct shards_entry *set = section_of(m);
	const struct loaded_shard_map *l = set ? reshard_shard_map(rs, set) : NULL;
	char err[ERROR_MAX], *text;

	if (!l) {
		if (m->phase == 0)
			fail(m, "the section's map is gone");
		else
			poll_later(m);
		return;
	}
	if (m->phase == 2) {
		if (l->map->version < m->next_version) {
			poll_later(m);
			return;
		}
		if (!switched(m, l->map)) {
			m->phase = 0;
			fail(m, "etcd holds map version %" PRIu64 ", not this move's",
			     l->map->version);
			return;
		}
		log_info("move %d: shard map version %" PRIu64 " in force from etcd: buckets %s on "
			 "shard %s; the hold lasted %.1f ms",
			 m->id, l->map->version, m->buckets, m->to,
			 (double)(clock_now_us() - m->hold_us) / 1000);
		set_step(m, MOVE_DONE, NULL);
		reshard_coord_end(rs, m->set, m->name, true);
		release_held(m);
		return;
	}
	if (!(text = next_map_text(m, l, err, sizeof(err)))) {
		fail(m, "%s", err);
		return;
	}
	m->phase = 1;
	m->busy = true;
	if (!reshard_coord_switch(rs, m->set, text, reshard_shard_map_revision(rs, set),
				  on_coord_switch, m)) {
		m->busy = false;
		m->phase = 0;
		fail(m, "the next map could not be sent to etcd");
	}
	free(text);
}

/* The section's move_hold_timeout, in force now (RELOAD may change it during a move). */
static double hold_timeout(const struct move *m)
{
	const struct shards_entry *set = section_of(m);

	return set ? set->move_hold_timeout : 10;
}

static void run_hold(struct move *m)
{
	uint64_t now = clock_now_us();
	double timeout = hold_timeout(m);

	if (now - m->hold_us > (uint64_t)(timeout * 1e6)) {
		if (m->phase == 4)
			fail(m,
			     "the hold lasted more than move_hold_timeout (%g s): %d of %d other "
			     "pgmux instances confirmed it",
			     timeout, m->confirmed, m->instances < 0 ? 0 : m->instances);
		else
			fail(m, "the hold lasted more than move_hold_timeout (%g s): %s", timeout,
			     m->phase < 2 ? "units of work on the moving buckets still running"
					  : "the target did not apply the source's last changes");
		return;
	}
	if (m->phase == 0 && m->coordinated && !coord_hold(m))
		return;
	if (m->phase == 0) {
		/* New units wait from now; units already running end on their own. */
		m->phase = 1;
	}
	if (m->phase == 4) {
		coord_wait(m);
		return;
	}
	if (m->phase == 1) {
		int n = running_units(m);

		if (n) {
			poll_later(m);
			return;
		}
		m->drained_us = now;
		m->phase = 2;
	}
	if (m->phase == 2)
		submit(m, m->src, move_sql_wal_position, NULL);
	else
		submit(m, m->src, move_sql_slot_position, m->name);
}

/* Rollback: subscription (and its slot), a detached subscription, the slot, the publication,
 * the rows copied to the target. */
static void run_rollback(struct move *m)
{
	if (!m->created) {
		set_step(m, MOVE_FAILED, NULL);
		return;
	}
	switch (m->phase) {
	case 0:
		send_owned(m, m->dst, move_sql_drop_subscription(m->name));
		break;
	case 1:
		send_owned(m, m->dst, move_sql_detach_subscription(m->name));
		break;
	case 2:
		if (m->suboid[0] && !m->sync_dropped)
			submit(m, m->slot_q ? m->slot_q : m->src, move_sql_drop_sync_slots,
			       m->suboid);
		else
			submit(m, m->slot_q ? m->slot_q : m->src, move_sql_drop_slot, m->name);
		break;
	case 3:
		send_owned(m, m->src, move_sql_drop_publication(m->name));
		break;
	case 4:
		if (need_tables(m))
			break;
		if (m->table >= m->n_tables) {
			set_step(m, MOVE_FAILED, m->error);
			break;
		}
		send_owned(m, m->dst,
			   move_sql_delete_batch(m->tables[m->table], &m->spec, DELETE_BATCH));
		break;
	default:
		/* after a detach: drop the subscription, now without its slot */
		send_owned(m, m->dst, move_sql_drop_subscription(m->name));
		break;
	}
}

static void run_cleanup(struct move *m)
{
	switch (m->phase) {
	case 0:
		send_owned(m, m->dst, move_sql_drop_subscription(m->name));
		break;
	case 1:
		m->phase = 2;
		/* fall through */
	case 2:
		submit(m, m->src, move_sql_drop_slot, m->name);
		break;
	case 3:
		send_owned(m, m->src, move_sql_drop_publication(m->name));
		break;
	default:
		if (need_tables(m))
			break;
		if (m->table >= m->n_tables) {
			log_info("move %d: clean-up deleted %" PRId64 " rows from shard %s", m->id,
				 m->rows, m->from);
			set_step(m, MOVE_CLEANED, NULL);
			break;
		}
		m->phase = 4;
		send_owned(m, m->src,
			   move_sql_delete_batch(m->tables[m->table], &m->spec, DELETE_BATCH));
		break;
	}
}

static bool ended(const struct move *m)
{
	return m->step == MOVE_DONE || m->step == MOVE_CLEANED || m->step == MOVE_FAILED;
}

/*
 * At an end (done, cleaned, failed) a move holds no connection and polls nothing; clean-up
 * wakes it again (false: out of memory). Never from inside a pgquery callback.
 */
static void close_shards(struct move *m)
{
	pgquery_free(m->src, true);
	pgquery_free(m->dst, true);
	pgquery_free(m->slot_q, true);
	m->src = m->dst = m->slot_q = NULL;
}

static void park(struct move *m)
{
	if (m->ticking)
		evloop_timer_stop(m->ms->rs->loop, &m->timer);
	m->ticking = false;
	close_shards(m);
}

static bool build_conninfos(struct move *m, char *err, size_t errlen);

/* The connections to both primaries; false while a shard has none known (err says). */
static bool open_shards(struct move *m, char *err, size_t errlen)
{
	struct evloop *loop = m->ms->rs->loop;

	if (m->src)
		return true;
	if (!m->conninfo[0][0] && !build_conninfos(m, err, errlen))
		return false;
	m->src = pgquery_new(loop, m->conninfo[0], QUERY_TIMEOUT);
	m->dst = pgquery_new(loop, m->conninfo[1], QUERY_TIMEOUT);
	if (m->slot_conninfo[0])
		m->slot_q = pgquery_new(loop, m->slot_conninfo, QUERY_TIMEOUT);
	if (!m->src || !m->dst || (m->slot_conninfo[0] && !m->slot_q)) {
		close_shards(m);
		snprintf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

static void on_tick(void *arg);

static bool start_ticking(struct move *m)
{
	if (!m->ticking)
		m->ticking = evloop_timer_start(m->ms->rs->loop, &m->timer, HOLD_POLL, on_tick, m);
	return m->ticking;
}

static bool wake(struct move *m, char *err, size_t errlen)
{
	if (!open_shards(m, err, errlen))
		return false;
	if (!start_ticking(m)) {
		snprintf(err, errlen, "out of memory");
		park(m);
		return false;
	}
	return true;
}

static void advance(struct move *m)
{
	char err[ERROR_MAX];

	if (m->busy)
		return;
	if (m->abort_asked) {
		m->abort_asked = false;
		if (move_step_on_failure(m->step) == MOVE_ROLLBACK && !coord_switching(m))
			fail(m, "aborted by MOVE ABORT");
	}
	if (ended(m))
		return; /* parked by the next tick: not from inside a query's callback */
	if (m->wait_until_us && clock_now_us() < m->wait_until_us)
		return;
	m->wait_until_us = 0;
	if (m->step <= MOVE_SWITCH && !coord_switching(m) && !same_primaries(m))
		return;
	/* on_tick reconnects to the new primaries first, outside any query's callback */
	if (m->step == MOVE_ROLLBACK && primaries_moved(m))
		return;
	switch (m->step) {
	case MOVE_CHECK:
		run_check(m);
		break;
	case MOVE_COPY:
		run_copy(m);
		break;
	case MOVE_CATCHUP:
		if (m->phase == 1)
			submit(m, m->dst, move_sql_copy_state, m->name);
		else
			submit(m, m->src, move_sql_slot_position, m->name);
		break;
	case MOVE_HOLD:
		run_hold(m);
		break;
	case MOVE_SWITCH:
		if (m->coordinated) {
			coord_switch(m);
			break;
		}
		if (!switch_map(m, err, sizeof(err))) {
			fail(m, "%s", err);
			break;
		}
		log_info("move %d: the hold lasted %.1f ms: running units ended after %.1f ms, the "
			 "target had applied the source's WAL %.1f ms later",
			 m->id, (double)(clock_now_us() - m->hold_us) / 1000,
			 (double)(m->drained_us - m->hold_us) / 1000,
			 (double)(clock_now_us() - m->drained_us) / 1000);
		set_step(m, MOVE_DONE, NULL);
		release_held(m);
		break;
	case MOVE_CLEANUP:
		run_cleanup(m);
		break;
	case MOVE_ROLLBACK:
		run_rollback(m);
		break;
	case MOVE_DONE:
	case MOVE_CLEANED:
	case MOVE_FAILED:
		break;
	}
}

/*
 * A rollback after a switchover or failover: the publication and the subscription are in the
 * catalogs, which the new primaries have; the slots stay on the member they were made on, which
 * a connection of its own reaches. Never from inside a query's callback (connections close).
 */
static void follow_primaries(struct move *m)
{
	char err[ERROR_MAX];

	if (!m->slot_conninfo[0])
		snprintf(m->slot_conninfo, sizeof(m->slot_conninfo), "%s", m->conninfo[0]);
	close_shards(m);
	m->conninfo[0][0] = '\0';
	if (!build_conninfos(m, err, sizeof(err)))
		return; /* open_shards tries again at the next tick */
	log_info("move %d: rolling back on the primaries now, %s (shard %s) and %s (shard %s)",
		 m->id, m->primary[0], m->from, m->primary[1], m->to);
}

static void on_tick(void *arg)
{
	struct move *m = arg;
	char err[ERROR_MAX];

	if (m->step == MOVE_ROLLBACK && !m->busy && primaries_moved(m))
		follow_primaries(m);
	if (ended(m) && !m->busy)
		park(m);
	else if (open_shards(m, err, sizeof(err)))
		advance(m);
	/* else: recovered at start, before the shards' primaries are known; the next tick tries */
}

/* ---- the console's verbs ---- */

static struct movers *movers_of(struct reshard *rs)
{
	if (!rs->movers && (rs->movers = calloc(1, sizeof(*rs->movers)))) {
		rs->movers->rs = rs;
		rs->movers->next_id = 1;
		list_init(&rs->movers->moves);
	}
	return rs->movers;
}

static struct move *find_move(struct reshard *rs, int id)
{
	struct list_node *n;

	if (!rs->movers)
		return NULL;
	for_each_node(n, &rs->movers->moves)
	{
		struct move *m = list_entry(n, struct move, node);

		if (m->id == id)
			return m;
	}
	return NULL;
}

/* Is a move of set that is not over using any of these buckets? */
static struct move *overlapping(struct reshard *rs, const char *set, const struct move_range *r,
				int n)
{
	struct list_node *ln;

	if (!rs->movers)
		return NULL;
	for_each_node(ln, &rs->movers->moves)
	{
		struct move *m = list_entry(ln, struct move, node);

		if (strcmp(m->set, set) != 0 || m->step == MOVE_FAILED || m->step == MOVE_CLEANED)
			continue;
		for (int i = 0; i < n; i++) {
			for (uint32_t b = r[i].first; b <= r[i].last; b++) {
				if (move_ranges_contain(m->ranges, m->n_ranges, b))
					return m;
			}
		}
	}
	return NULL;
}

/* The sharded database entry of set: its dbname is the one on every shard. */
static const struct db_entry *sharded_entry(const struct config *cfg, const char *set)
{
	for (int i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].shards, set) == 0)
			return &cfg->dbs[i];
	}
	return NULL;
}

/* What the section says of every move of it: the key, the database, the row filter. */
static void fill_from_section(struct move *m, const struct shards_entry *set,
			      const struct loaded_shard_map *l, const struct db_entry *e)
{
	snprintf(m->key, sizeof(m->key), "%s", set->key);
	snprintf(m->dbname, sizeof(m->dbname), "%s", e->dbname[0] ? e->dbname : e->name);
	m->spec = (struct move_spec){ .key_type = set->key_type,
				      .key = m->key,
				      .seed = l->map->seed,
				      .n_buckets = l->map->n_buckets,
				      .ranges = m->ranges,
				      .n_ranges = m->n_ranges };
	move_ranges_format(m->ranges, m->n_ranges, m->buckets, sizeof(m->buckets));
}

static bool check_request(struct reshard *rs, struct move *m, const char *buckets, char *err,
			  size_t errlen, const char **sqlstate)
{
	const struct config *cfg = *rs->cfg;
	const struct shards_entry *set = config_find_shards(cfg, m->set);
	const struct loaded_shard_map *l = set ? reshard_shard_map(rs, set) : NULL;
	const struct db_entry *e = set ? sharded_entry(cfg, m->set) : NULL;
	const struct move *other;
	int from = -1;

	*sqlstate = "22023";
	if (!set || !l || !e) {
		snprintf(err, errlen,
			 "no [shards.%s] section with a map in force and a database "
			 "sharded by it",
			 m->set);
		return false;
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *o = &cfg->dbs[i];
		const char *db = o->dbname[0] ? o->dbname : o->name,
			   *first = e->dbname[0] ? e->dbname : e->name;

		/* One map places the rows of every database split by it: a move moves one database. */
		if (strcmp(o->shards, m->set) == 0 && strcmp(db, first) != 0) {
			*sqlstate = "0A000";
			snprintf(err, errlen,
				 "databases %s and %s are both split by [shards.%s]: a move "
				 "copies the tables of one database",
				 e->name, o->name, m->set);
			return false;
		}
	}
	if (!move_parse_buckets(buckets, l->map->n_buckets, m->ranges, MOVE_RANGES_MAX,
				&m->n_ranges, err, errlen))
		return false;
	if (shard_index(set, m->to) < 0) {
		snprintf(err, errlen, "shard %s is not in [shards.%s]", m->to, m->set);
		return false;
	}
	/* Every bucket must be on one source shard, other than the target. */
	for (int i = 0; i < m->n_ranges; i++) {
		for (uint32_t b = m->ranges[i].first; b <= m->ranges[i].last; b++) {
			int k = l->map->owner[b];

			if (from >= 0 && k != from) {
				snprintf(err, errlen,
					 "the buckets are on several shards (%s, %s): move "
					 "them one shard at a time",
					 l->map->names[from], l->map->names[k]);
				return false;
			}
			from = k;
		}
	}
	/*
	 * An override's rows sit on its own shard whatever their bucket, but the row filter and
	 * the clean-up go by bucket: they would copy them away, or find them where they must not.
	 */
	for (int i = 0; i < l->map->n_overrides; i++) {
		const char *key = l->map->overrides[i].key;
		struct shard_key k;
		char why[120];
		uint32_t b;

		if (!shard_key_from_text((enum shard_key_type)set->key_type, key, strlen(key), &k,
					 why, sizeof(why)))
			continue;
		b = (uint32_t)(shard_key_hash(&k, l->map->seed) & (l->map->n_buckets - 1));
		if (move_ranges_contain(m->ranges, m->n_ranges, b)) {
			*sqlstate = "0A000";
			snprintf(
				err, errlen,
				"bucket %u holds key %s, which the map overrides: buckets "
				"of overridden keys cannot be moved yet (remove the override, or leave "
				"that bucket out)",
				b, key);
			return false;
		}
	}
	if (from >= 0 && strcmp(l->map->names[from], m->to) == 0) {
		snprintf(err, errlen, "the buckets are on shard %s already", m->to);
		return false;
	}
	if ((other = overlapping(rs, m->set, m->ranges, m->n_ranges))) {
		*sqlstate = "55006";
		snprintf(err, errlen, "move %d is moving some of these buckets", other->id);
		return false;
	}
	snprintf(m->from, sizeof(m->from), "%s", l->map->names[from]);
	fill_from_section(m, set, l, e);
	m->coordinated = config_shard_map_in_etcd(set);
	m->instances = -1;
	return true;
}

static void move_free(struct move *m)
{
	park(m);
	move_tables_free(m->tables, m->n_tables);
	free(m->src_columns);
	free(m->src_sequences);
	free(m->held);
	list_del(&m->node);
	free(m);
}

bool reshard_move_start(struct reshard *rs, const char *set, const char *buckets, const char *shard,
			int *id, const char **sqlstate, char *err, size_t errlen)
{
	struct movers *ms = movers_of(rs);
	struct move *m = ms ? calloc(1, sizeof(*m)) : NULL;

	*sqlstate = "53200";
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	m->ms = ms;
	list_init(&m->node);
	snprintf(m->set, sizeof(m->set), "%s", set);
	snprintf(m->to, sizeof(m->to), "%s", shard);
	if (!check_request(rs, m, buckets, err, errlen, sqlstate)) {
		free(m);
		return false;
	}
	*sqlstate = "57P03";
	if (!build_conninfos(m, err, errlen)) {
		free(m);
		return false;
	}
	if (m->coordinated && !reshard_coord_ready(rs, set)) {
		snprintf(
			err, errlen,
			"this pgmux is not registered under the map's key in etcd (it cannot reach "
			"it): the other instances could not be asked to hold");
		free(m);
		return false;
	}
	m->id = ms->next_id++;
	m->started_us = clock_now_us();
	m->lag = -1;
	move_object_name(m->name, sizeof(m->name), m->started_us, m->id);
	list_add_tail(&ms->moves, &m->node);
	if (!wake(m, err, errlen)) {
		*sqlstate = "53200";
		move_free(m);
		return false;
	}
	save_state(m);
	log_info("move %d: buckets %s of shards.%s from shard %s to shard %s (%s): started", m->id,
		 m->buckets, m->set, m->from, m->to, m->name);
	*id = m->id;
	return true;
}

bool reshard_move_abort(struct reshard *rs, int id, char *err, size_t errlen)
{
	struct move *m = find_move(rs, id);

	if (!m) {
		snprintf(err, errlen, "no move %d", id);
		return false;
	}
	if (coord_switching(m)) {
		snprintf(err, errlen, "move %d is switching: the next map went to etcd", id);
		return false;
	}
	if (move_step_on_failure(m->step) != MOVE_ROLLBACK) {
		snprintf(err, errlen, "move %d is %s: %s", id, move_step_name(m->step),
			 move_step_switched(m->step)
				 ? "the map has switched, only MOVE CLEANUP remains"
				 : "nothing to abort");
		return false;
	}
	if (m->busy) {
		/*
		 * The query out goes on on its server even if its connection closes (a subscription
		 * being created would be made after the rollback dropped it): wait for its answer.
		 */
		m->abort_asked = true;
		return true;
	}
	fail(m, "aborted by MOVE ABORT");
	advance(m);
	return true;
}

bool reshard_move_cleanup(struct reshard *rs, int id, char *err, size_t errlen)
{
	struct move *m = find_move(rs, id);

	if (!m) {
		snprintf(err, errlen, "no move %d", id);
		return false;
	}
	if (m->step != MOVE_DONE && !(m->step == MOVE_FAILED && m->created)) {
		snprintf(err, errlen,
			 "move %d is %s: clean-up follows the switch (step done) or a "
			 "failure",
			 id, move_step_name(m->step));
		return false;
	}
	m->error[0] = '\0';
	m->rows = 0;
	if (!wake(m, err, errlen))
		return false;
	/* After a failure, clean-up is the rollback again: what a lost shard kept is dropped. */
	set_step(m, m->step == MOVE_DONE ? MOVE_CLEANUP : MOVE_ROLLBACK, NULL);
	advance(m);
	return true;
}

/* ---- clients ---- */

enum move_cover reshard_moves_bucket(struct reshard *rs, const char *set, uint32_t bucket)
{
	struct list_node *n;
	bool sealed;

	/* Held for a move another pgmux coordinates (reshard/movecoord.h). */
	if (reshard_coord_holds(rs, set, bucket, &sealed))
		return sealed ? MOVE_COVER_SEALED : MOVE_COVER_HELD;
	if (!rs->movers)
		return MOVE_COVER_NONE;
	for_each_node(n, &rs->movers->moves)
	{
		struct move *m = list_entry(n, struct move, node);

		if (m->step > MOVE_SWITCH || strcmp(m->set, set) != 0 ||
		    !move_ranges_contain(m->ranges, m->n_ranges, bucket))
			continue;
		if (m->step == MOVE_SWITCH || (m->step == MOVE_HOLD && m->phase >= 2))
			return MOVE_COVER_SEALED;
		return m->step == MOVE_HOLD ? MOVE_COVER_HELD : MOVE_COVER_MOVING;
	}
	return MOVE_COVER_NONE;
}

bool reshard_moves_hold_client(struct reshard *rs, struct client *c)
{
	struct list_node *n;

	if (reshard_coord_hold_client(rs, c))
		return true;
	if (!rs->movers)
		return false;
	/* The newest holding move: a client waits for one move at a time. */
	for_each_node(n, &rs->movers->moves)
	{
		struct move *m = list_entry(n, struct move, node);

		if (!move_step_holds(m->step))
			continue;
		if (m->n_held == m->cap_held) {
			int cap = m->cap_held ? m->cap_held * 2 : 16;
			struct client **held = realloc(m->held, (size_t)cap * sizeof(*held));

			if (!held)
				return false;
			m->held = held;
			m->cap_held = cap;
		}
		m->held[m->n_held++] = c;
		return true;
	}
	return false;
}

void reshard_moves_forget_client(struct reshard *rs, struct client *c)
{
	struct list_node *n;

	reshard_coord_forget_client(rs, c);
	if (!rs->movers)
		return;
	for_each_node(n, &rs->movers->moves)
	{
		struct move *m = list_entry(n, struct move, node);

		for (int i = 0; i < m->n_held; i++) {
			if (m->held[i] == c)
				m->held[i--] = m->held[--m->n_held];
		}
	}
}

bool reshard_moves_active(struct reshard *rs)
{
	struct list_node *n;

	if (!rs->movers)
		return false;
	for_each_node(n, &rs->movers->moves)
	{
		if (!ended(list_entry(n, struct move, node)))
			return true;
	}
	return false;
}

void reshard_moves_each(struct reshard *rs, reshard_move_fn fn, void *arg)
{
	struct list_node *n;

	if (!rs->movers)
		return;
	for_each_node(n, &rs->movers->moves)
	{
		struct move *m = list_entry(n, struct move, node);
		struct move_view v = {
			.id = m->id,
			.set = m->set,
			.buckets = m->buckets,
			.from = m->from,
			.to = m->to,
			.step = move_step_name(m->step),
			.error = m->error,
			.warning = m->warning,
			.rows = m->rows,
			.lag = m->lag,
			.held = m->n_held,
			.confirmed = m->coordinated ? m->confirmed : -1,
			.instances = m->coordinated ? m->instances : -1,
			.started_us = m->started_us,
		};

		fn(arg, &v);
	}
}

/*
 * One line of a state file (or of a state in etcd, where: its place, for the log): the move it
 * names, rolled back or done by what the map says. NULL: none (logged).
 */
static struct move *recover_line(struct movers *ms, const struct shards_entry *set,
				 const struct loaded_shard_map *l, const struct db_entry *e,
				 const char *line, const char *where)
{
	char name[64], buckets[256], from[64], to[64], step[32], err[200];
	struct move *m;

	if (sscanf(line, "move %63s %255s %63s %63s %31s", name, buckets, from, to, step) != 5) {
		log_warning("shards.%s: %s: a line that is not a move: %.80s", set->name, where,
			    line);
		return NULL;
	}
	if (!(m = calloc(1, sizeof(*m))))
		return NULL;
	m->ms = ms;
	list_init(&m->node);
	snprintf(m->set, sizeof(m->set), "%s", set->name);
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->from, sizeof(m->from), "%s", from);
	snprintf(m->to, sizeof(m->to), "%s", to);
	if (!move_parse_buckets(buckets, l->map->n_buckets, m->ranges, MOVE_RANGES_MAX,
				&m->n_ranges, err, sizeof(err)) ||
	    shard_index(set, to) < 0 || m->n_ranges == 0) {
		log_warning("shards.%s: move %s in %s does not fit the map: left alone "
			    "(drop its subscription, publication and slot by hand)",
			    set->name, name, where);
		free(m);
		return NULL;
	}
	fill_from_section(m, set, l, e);
	m->id = ms->next_id++;
	m->started_us = clock_now_us();
	m->lag = -1;
	m->created = true;
	m->recovered = true;
	m->coordinated = config_shard_map_in_etcd(set);
	m->instances = -1;
	list_add_tail(&ms->moves, &m->node);
	/* The map is the truth: written means switched, whatever step the file had reached. */
	if (switched(m, l->map)) {
		m->step = MOVE_DONE;
		log_info("move %d (%s): found in %s, switched: MOVE CLEANUP %d remains", m->id,
			 name, where, m->id);
		return m;
	}
	m->step = MOVE_ROLLBACK;
	note_error(m, "pgmux restarted during step %s: rolled back", step);
	log_info("move %d (%s): found in %s in step %s before its switch: rolling back", m->id,
		 name, where, step);
	if (!start_ticking(m))
		log_error("move %d: out of memory: not rolled back", m->id);
	return m;
}

void reshard_moves_recover(struct reshard *rs)
{
	const struct config *cfg = *rs->cfg;

	for (int i = 0; i < cfg->n_shard_sets; i++) {
		const struct shards_entry *set = &cfg->shard_sets[i];
		const struct loaded_shard_map *l = set->loaded;
		const struct db_entry *e = sharded_entry(cfg, set->name);
		struct movers *ms;
		char path[4096], line[512];
		FILE *f;

		if (config_shard_map_in_etcd(set) || !l || !e)
			continue;
		snprintf(path, sizeof(path), "%s.moves", set->map);
		if (!(f = fopen(path, "r")))
			continue;
		if ((ms = movers_of(rs))) {
			while (fgets(line, sizeof(line), f)) {
				if (line[0] != '#' && line[0] != '\n')
					recover_line(ms, set, l, e, line, path);
			}
		}
		fclose(f);
	}
}

enum move_adoption reshard_moves_adopt(struct reshard *rs, const char *set_name, const char *line,
				       const char *coordinator)
{
	const struct config *cfg = *rs->cfg;
	const struct shards_entry *set = config_find_shards(cfg, set_name);
	const struct loaded_shard_map *l = set ? reshard_shard_map(rs, set) : NULL;
	const struct db_entry *e = set ? sharded_entry(cfg, set->name) : NULL;
	struct movers *ms = movers_of(rs);
	char name[64], where[256];
	struct list_node *n;
	struct move *m;

	if (!l || !e || !ms)
		return MOVE_KNOWN;
	if (sscanf(line, "move %63s", name) != 1) {
		log_warning("shards.%s: a move's state in etcd that is not one: %.80s", set_name,
			    line);
		return MOVE_ADOPT_REFUSED;
	}
	for_each_node(n, &ms->moves)
	{
		if (strcmp(list_entry(n, struct move, node)->name, name) == 0)
			return MOVE_KNOWN; /* adopted already, or this process's own */
	}
	snprintf(where, sizeof(where), "etcd (left by %s)", coordinator);
	if (!(m = recover_line(ms, set, l, e, line, where)))
		return MOVE_ADOPT_REFUSED;
	save_state(m); /* this instance's now, should it be restarted in turn */
	return MOVE_ADOPTED;
}

void reshard_moves_free(struct reshard *rs)
{
	struct list_node *n;

	if (!rs->movers)
		return;
	while ((n = list_first(&rs->movers->moves)))
		move_free(list_entry(n, struct move, node));
	free(rs->movers);
	rs->movers = NULL;
}
