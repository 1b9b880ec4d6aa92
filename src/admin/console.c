/*
 * admin/console: the admin console's commands (plugged in by admin_register()): who may run
 * what, what each command does to the worker, and the two commands that answer only later
 * (PAUSE, WAIT_CLOSE).
 *
 * Every query gets exactly one answer ending in ReadyForQuery 'I', errors included, and answers
 * leave in the order the queries came. A waiting command keeps its client in a struct
 * admin_wait; queries the client sends meanwhile are queued on the wait (up to a bound) and
 * run, in order, once it finishes. The socket is still read while a command waits, so a client
 * that goes away is noticed at once. admin_tick() finishes waits whose condition holds;
 * admin_forget_client() drops them.
 *
 * State: each worker's admin state (its waits, the start of the statistics window, the
 * resharding state it works on) hangs off worker->admin, made by admin_register() and freed by
 * admin_destroy().
 *
 * Boundaries: the client and the worker reach this file only through the console_ops table
 * admin_register() lends the clients (with the worker as its argument); replies leave through
 * the client module (client_send_bytes()), never through ev/ directly.
 *
 * Waits name their database rather than point at it: a RELOAD may free a struct database while
 * a PAUSE waits on it.
 */
#include "admin/admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/parse.h"
#include "admin/shards.h"
#include "admin/show.h"
#include "client/client.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/list.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "reshard/mover.h"
#include "server/server.h"
#include "worker/worker.h"

/* What one waiting client may queue behind its command before it is disconnected. */
#define QUEUE_MAX_QUERIES 1000
#define QUEUE_MAX_BYTES (1024 * 1024)

struct queued_query {
	struct list_node node;
	char sql[];
};

struct admin_wait {
	struct list_node node; /* on its admin_state's waits or draining list */
	struct client *c;
	enum admin_verb verb;        /* ADMIN_PAUSE or ADMIN_WAIT_CLOSE */
	char dbname[ADMIN_NAME_MAX]; /* "" = every database */
	struct list_node queued;     /* struct queued_query, FIFO */
	size_t n_queued, queued_bytes;
	bool gone; /* the client went away while its queue was being run */
};

struct admin_state {
	struct worker *w;
	struct reshard *rs;        /* the shard maps and bucket moves (MOVE, SHOW SHARDS, MOVES) */
	uint64_t stats_since_us;   /* when the averages' snapshot was taken */
	struct list_node waits;    /* waits whose condition is not met yet */
	struct list_node draining; /* finished waits whose queued queries are running */
	bool ticking;              /* admin_tick() is running: do not re-enter */
};

/*
 * An ErrorResponse and ReadyForQuery that need no allocation, for when building a reply ran out
 * of memory: 'E', length 41, fields S V C M and the terminator, then 'Z', length 5, 'I'.
 */
static const char oom_reply[] = "E\0\0\0\x29"
				"SERROR\0"
				"VERROR\0"
				"C53200\0"
				"Mout of memory\0"
				"\0"
				"Z\0\0\0\x05"
				"I";

/* True if dbname is the admin console's name. */
static bool admin_is_console_db(const char *dbname)
{
	return strcmp(dbname, "pgmux") == 0 || strcmp(dbname, "pgbouncer") == 0;
}

/* Free the console's state (at exit, after every client is closed). */
static void admin_destroy(void *arg)
{
	struct worker *w = arg;

	/* Waits belong to clients, which are all closed (and forgotten here) before this. */
	free(w->admin);
	w->admin = NULL;
}

/* The client's wait on list head, or NULL. */
static struct admin_wait *wait_on(struct list_node *head, const struct client *c)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, head) {
		struct admin_wait *wt = list_entry(pos, struct admin_wait, node);

		if (wt->c == c)
			return wt;
	}
	return NULL;
}

static void free_queued(struct list_node *head)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, head) {
		list_del(pos);
		free(list_entry(pos, struct queued_query, node));
	}
}

/* --- replies --- */

/* Finish a reply with ReadyForQuery and queue it to the client; mb is freed. */
static void send_reply(struct client *c, struct msgbuf *mb)
{
	build_ready(mb, 'I');
	if (mb->failed) {
		log_error("C-%" PRIu64 " admin %s@%s: out of memory building a reply", c->id,
			  c->user, c->addr);
		client_send_bytes(c, oom_reply, sizeof(oom_reply) - 1);
	} else {
		client_send_bytes(c, mb->data, mb->len);
	}
	mb_free(mb);
}

static void reply_done(struct client *c, enum admin_verb verb)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_command_complete(&mb, admin_verb_tag(verb));
	send_reply(c, &mb);
}

static void reply_error(struct client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	struct msgbuf mb;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mb_init(&mb);
	build_error(&mb, "ERROR", sqlstate, "%s", msg);
	send_reply(c, &mb);
}

/* --- what the waiting commands wait for --- */

static bool pool_matches(const struct pool *p, const char *dbname)
{
	return dbname[0] == '\0' || strcmp(p->db->name, dbname) == 0;
}

/* PAUSE is done when no server of the database(s) is lent to a client. */
static bool pause_done(struct worker *w, const char *dbname)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools.all) {
		struct pool *p = list_entry(pos, struct pool, node);

		if (pool_matches(p, dbname) && p->n_active > 0)
			return false;
	}
	return true;
}

static bool list_has_closing_server(const struct list_node *head)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, head) {
		if (list_entry(pos, struct server, node)->close_when_released)
			return true;
	}
	return false;
}

/* WAIT_CLOSE is done when no server of the database(s) still waits to be closed. */
static bool wait_close_done(struct worker *w, const char *dbname)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools.all) {
		struct pool *p = list_entry(pos, struct pool, node);

		if (!pool_matches(p, dbname))
			continue;
		if (list_has_closing_server(&p->active_servers) ||
		    list_has_closing_server(&p->idle_servers) ||
		    list_has_closing_server(&p->reset_servers) ||
		    list_has_closing_server(&p->login_servers))
			return false;
	}
	return true;
}

/* Any struct database by its exact name, including ones a RELOAD removed that still have users. */
static struct database *find_database(struct worker *w, const char *name)
{
	struct list_node *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools.databases) {
		struct database *db = list_entry(pos, struct database, node);

		if (strcmp(db->name, name) == 0)
			return db;
	}
	return NULL;
}

/*
 * The database a command names: one in use (also one a RELOAD removed that still drains), else
 * a [databases] entry of exactly that name, made now so that its paused and disabled flags have
 * a home. A name served by the "*" entry exists only once a client has used it.
 */
static struct database *resolve_database(struct worker *w, const char *name)
{
	struct database *db = find_database(w, name);
	const struct db_entry *e;

	if (db)
		return db;
	e = config_find_db(w->cfg, name);
	if (!e || strcmp(e->name, name) != 0)
		return NULL;
	return database_lookup(&w->pools, name);
}

/* --- the commands --- */

static void run_query(struct admin_state *st, struct client *c, const char *sql);

/* Keep c waiting on wt (allocated by the caller) until admin_tick() finds its condition met. */
static void start_wait(struct admin_state *st, struct admin_wait *wt, struct client *c,
		       enum admin_verb verb, const char *dbname)
{
	wt->c = c;
	wt->verb = verb;
	snprintf(wt->dbname, sizeof(wt->dbname), "%s", dbname);
	list_init(&wt->queued);
	wt->n_queued = wt->queued_bytes = 0;
	wt->gone = false;
	list_add_tail(&st->waits, &wt->node);
	log_info("C-%" PRIu64 " admin %s@%s: %s%s%s waits for servers to be %s", c->id, c->user,
		 c->addr, admin_verb_tag(verb), dbname[0] ? " " : "", dbname,
		 verb == ADMIN_PAUSE ? "released" : "closed");
}

static struct admin_wait *new_wait(struct client *c)
{
	struct admin_wait *wt = calloc(1, sizeof(*wt));

	if (!wt)
		reply_error(c, "53200", "out of memory");
	return wt;
}

static void cmd_pause(struct admin_state *st, struct client *c, const char *dbname)
{
	struct worker *w = st->w;
	struct admin_wait *wt;
	struct database *db = NULL;

	if (dbname[0]) {
		db = resolve_database(w, dbname);
		if (!db) {
			reply_error(c, "3D000", "no such database: %s", dbname);
			return;
		}
		if (db->paused) {
			reply_error(c, "55000", "database %s is already paused", dbname);
			return;
		}
	} else if (w->pools.paused) {
		reply_error(c, "55000", "pgmux is already paused");
		return;
	}
	/* Allocate first: running out of memory must not leave the pause half-made. */
	wt = new_wait(c);
	if (!wt)
		return;
	if (db)
		db->paused = true;
	else
		w->pools.paused = true;
	if (pause_done(w, dbname)) {
		free(wt);
		reply_done(c, ADMIN_PAUSE);
		return;
	}
	start_wait(st, wt, c, ADMIN_PAUSE, dbname);
}

static void cmd_resume(struct worker *w, struct client *c, const char *dbname)
{
	struct database *db = NULL;

	if (dbname[0]) {
		db = resolve_database(w, dbname);
		if (!db) {
			reply_error(c, "3D000", "no such database: %s", dbname);
			return;
		}
		if (!db->paused) {
			reply_error(c, "55000", "database %s is not paused", dbname);
			return;
		}
		db->paused = false;
	} else {
		if (!w->pools.paused) {
			reply_error(c, "55000", "pgmux is not paused");
			return;
		}
		w->pools.paused = false;
	}
	reply_done(c, ADMIN_RESUME);
	pool_kick(&w->pools, db);
}

static void cmd_wait_close(struct admin_state *st, struct client *c, const char *dbname)
{
	struct worker *w = st->w;
	struct admin_wait *wt;

	if (dbname[0] && !resolve_database(w, dbname)) {
		reply_error(c, "3D000", "no such database: %s", dbname);
		return;
	}
	if (wait_close_done(w, dbname)) {
		reply_done(c, ADMIN_WAIT_CLOSE);
		return;
	}
	wt = new_wait(c);
	if (wt)
		start_wait(st, wt, c, ADMIN_WAIT_CLOSE, dbname);
}

/* RECONNECT, KILL, DISABLE, ENABLE: the database must exist (RECONNECT: or be omitted). */
static void cmd_database(struct worker *w, struct client *c, enum admin_verb verb,
			 const char *dbname)
{
	struct database *db = NULL;

	if (dbname[0]) {
		db = resolve_database(w, dbname);
		if (!db) {
			reply_error(c, "3D000", "no such database: %s", dbname);
			return;
		}
	}
	ASSERT(db || verb == ADMIN_RECONNECT); /* the parser requires a name for the others */
	switch (verb) {
	case ADMIN_RECONNECT:
		pool_reconnect(&w->pools, db);
		break;
	case ADMIN_KILL:
		/* As in PgBouncer, new clients of a killed database wait until RESUME. */
		db->paused = true;
		pool_kill_database(&w->pools, db);
		break;
	case ADMIN_DISABLE:
		db->disabled = true;
		break;
	case ADMIN_ENABLE:
		db->disabled = false;
		pool_kick(&w->pools, db);
		break;
	default:
		ASSERT(!"not a database command");
		break;
	}
	reply_done(c, verb);
}

/* The SET went through with something to say about it (a NOTICE before the command tag). */
static void reply_done_notice(struct client *c, enum admin_verb verb, const char *notice)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_notice(&mb, "00000", "%s", notice);
	build_command_complete(&mb, admin_verb_tag(verb));
	send_reply(c, &mb);
}

/*
 * SET: change the key on a clone of the config in force, validate the clone whole as a file
 * load would (so [cluster.NAME] sections that inherit the key follow it), and put it in force
 * through the path RELOAD takes, rebuilding what the key's row names. A bad value, or contexts
 * that cannot be built from it, change nothing. A TLS key and certificate are set one at a time,
 * so a SET that leaves them unpaired is kept: that side's running context stays until the SET
 * of the other half, and the NOTICE says so.
 */
static void cmd_set(struct worker *w, struct client *c, const char *name, const char *value)
{
	const struct config_key *key = config_find_key(name);
	struct config *newcfg;
	char old[256], err[1024];

	if (!key) {
		reply_error(c, "42704", "unknown configuration key: %s", name);
		return;
	}
	if (!key->reloadable) {
		reply_error(c, "55P02", "%s cannot be changed while pgmux runs: it needs a restart",
			    key->name);
		return;
	}
	newcfg = config_clone(w->cfg);
	if (!newcfg) {
		reply_error(c, "53200", "out of memory");
		return;
	}
	if (!config_set_value(newcfg, key->name, value, err, sizeof(err)) ||
	    !config_validate(newcfg, err, sizeof(err))) {
		config_free(newcfg);
		reply_error(c, "22023", "%s", err);
		return;
	}
	config_show_value(w->cfg, key, old, sizeof(old));
	switch (worker_apply(w, newcfg, key->apply, true, err, sizeof(err))) {
	case WORKER_APPLIED:
		reply_done(c, ADMIN_SET);
		break;
	case WORKER_APPLIED_TLS_PENDING:
		log_info("SET %s: %s", key->name, err);
		reply_done_notice(c, ADMIN_SET, err);
		break;
	case WORKER_APPLY_FAILED:
		log_warning("SET %s refused, keeping '%s': %s", key->name, old, err);
		reply_error(c, "F0000", "%s", err);
		break;
	}
}

static void cmd_reload(struct worker *w, struct client *c)
{
	char err[512];

	if (!worker_reload(w, err, sizeof(err))) {
		reply_error(c, "F0000", "%s", err);
		return;
	}
	reply_done(c, ADMIN_RELOAD);
}

/* MOVE BUCKETS (answers with the new move's id, SHOW MOVES follows it), MOVE ABORT, CLEANUP. */
static void cmd_move(struct reshard *rs, struct client *c, const struct admin_cmd *cmd)
{
	const char *sqlstate = "22023";
	char err[600], *end;
	long id = 0;
	bool ok;

	if (cmd->verb == ADMIN_MOVE) {
		int started;

		ok = reshard_move_start(rs, cmd->arg, cmd->value, cmd->target, &started, &sqlstate,
					err, sizeof(err));
		if (ok) {
			snprintf(err, sizeof(err), "move %d started: see SHOW MOVES", started);
			reply_done_notice(c, ADMIN_MOVE, err);
			return;
		}
	} else {
		id = strtol(cmd->arg, &end, 10);
		if (*end || id <= 0 || id > 1000000000) {
			reply_error(c, "22023", "not a move id: %s", cmd->arg);
			return;
		}
		ok = cmd->verb == ADMIN_MOVE_ABORT
			     ? reshard_move_abort(rs, (int)id, err, sizeof(err))
			     : reshard_move_cleanup(rs, (int)id, err, sizeof(err));
		sqlstate = "55000";
	}
	if (ok)
		reply_done(c, ADMIN_MOVE);
	else
		reply_error(c, sqlstate, "%s", err);
}

/* The client in list head whose ptr (as SHOW CLIENTS prints it, "%p") is id; NULL if none. */
static struct client *client_in_list(struct list_node *head, const char *id)
{
	struct list_node *pos, *tmp;
	char ptr[32];

	list_for_each_safe(pos, tmp, head) {
		struct client *c = list_entry(pos, struct client, node);

		snprintf(ptr, sizeof(ptr), "%p", (void *)c);
		if (strcmp(ptr, id) == 0)
			return c;
	}
	return NULL;
}

/*
 * The client SHOW CLIENTS lists with this ptr. The id is compared as text with every client's,
 * never turned back into a pointer: the text comes from whoever runs the console.
 */
static struct client *find_client(struct worker *w, const char *id)
{
	struct list_node *pos, *tmp;
	struct client *found = client_in_list(&w->pools.login_clients, id);

	list_for_each_safe(pos, tmp, &w->pools.all) {
		struct pool *p = list_entry(pos, struct pool, node);

		if (!found)
			found = client_in_list(&p->active_clients, id);
		if (!found)
			found = client_in_list(&p->waiting_clients, id);
	}
	return found;
}

/* KILL_CLIENT id: close that one client with an error, whatever it is doing. */
static void cmd_kill_client(struct worker *w, struct client *c, const char *id)
{
	struct client *victim = find_client(w, id);

	if (!victim || victim->state == CLIENT_CLOSING) {
		reply_error(c, "42704", "no such client: %s", id);
		return;
	}
	/* Answer first: the console may be killing itself. */
	reply_done(c, ADMIN_KILL_CLIENT);
	client_close(victim, "57P01", "client killed by the admin console");
}

/* SHUTDOWN [WAIT_FOR_CLIENTS | WAIT_FOR_SERVERS]: as SIGTERM or as SIGINT. */
static void cmd_shutdown(struct worker *w, struct client *c, enum admin_shutdown_mode mode)
{
	/*
	 * Answer first, so the client learns that the command was taken; then let this console
	 * go, as PgBouncer does, so that it does not hold the exit up itself. The order matters:
	 * with the client closed first, the worker could exit before the answer is written.
	 */
	reply_done(c, ADMIN_SHUTDOWN);
	worker_shutdown(w, mode == ADMIN_SHUTDOWN_WAIT_FOR_SERVERS);
	client_close(c, "57P01", "pgmux is shutting down");
}

static void run_query(struct admin_state *st, struct client *c, const char *sql)
{
	struct worker *w = st->w;
	struct admin_cmd cmd;
	char err[256];
	struct msgbuf mb;

	switch (admin_parse(sql, &cmd, err, sizeof(err))) {
	case ADMIN_PARSE_OK:
		break;
	case ADMIN_PARSE_SYNTAX:
		reply_error(c, "42601", "%s", err);
		return;
	case ADMIN_PARSE_UNSUPPORTED:
		reply_error(c, "0A000", "%s", err);
		return;
	}
	if (cmd.verb != ADMIN_SHOW && cmd.verb != ADMIN_EMPTY && !c->admin_can_write) {
		reply_error(c, "42501", "admin access needed");
		return;
	}
	if (cmd.verb != ADMIN_SHOW && cmd.verb != ADMIN_EMPTY)
		log_info("C-%" PRIu64 " admin %s@%s: %s%s%s", c->id, c->user, c->addr,
			 admin_verb_tag(cmd.verb), cmd.arg[0] ? " " : "", cmd.arg);
	else
		log_debug("C-%" PRIu64 " admin %s@%s: %s", c->id, c->user, c->addr, sql);

	switch (cmd.verb) {
	case ADMIN_EMPTY:
		mb_init(&mb);
		build_empty_query(&mb);
		send_reply(c, &mb);
		break;
	case ADMIN_SHOW:
		mb_init(&mb);
		if (cmd.show == ADMIN_SHOW_SHARDS || cmd.show == ADMIN_SHOW_SHARD ||
		    cmd.show == ADMIN_SHOW_ROUTE || cmd.show == ADMIN_SHOW_MOVES) {
			const char *sqlstate;

			if (!admin_show_sharding(st->rs, &cmd, &mb, &sqlstate, err, sizeof(err))) {
				mb_free(&mb);
				reply_error(c, sqlstate, "%s", err);
				break;
			}
		} else {
			admin_show(w, cmd.show, st->stats_since_us, &mb);
		}
		send_reply(c, &mb);
		break;
	case ADMIN_PAUSE:
		cmd_pause(st, c, cmd.arg);
		break;
	case ADMIN_RESUME:
		cmd_resume(w, c, cmd.arg);
		break;
	case ADMIN_WAIT_CLOSE:
		cmd_wait_close(st, c, cmd.arg);
		break;
	case ADMIN_RECONNECT:
	case ADMIN_KILL:
	case ADMIN_DISABLE:
	case ADMIN_ENABLE:
		cmd_database(w, c, cmd.verb, cmd.arg);
		break;
	case ADMIN_SET:
		cmd_set(w, c, cmd.arg, cmd.value);
		break;
	case ADMIN_RELOAD:
		cmd_reload(w, c);
		break;
	case ADMIN_KILL_CLIENT:
		cmd_kill_client(w, c, cmd.arg);
		break;
	case ADMIN_SHUTDOWN:
		cmd_shutdown(w, c, cmd.shutdown);
		break;
	case ADMIN_MOVE:
	case ADMIN_MOVE_ABORT:
	case ADMIN_MOVE_CLEANUP:
		cmd_move(st->rs, c, &cmd);
		break;
	}
}

/*
 * Answer one simple-protocol Query (sql is the query text) from an admin client: writes the whole
 * response, ending with ReadyForQuery, to the client's connection, unless the command must wait
 * (PAUSE, WAIT_CLOSE), in which case admin_tick() finishes it later.
 */
static void admin_handle_query(void *arg, struct client *c, const char *sql)
{
	struct admin_state *st = ((struct worker *)arg)->admin;
	struct admin_wait *wt;

	ASSERT(c->admin);
	wt = wait_on(&st->waits, c);
	if (!wt)
		wt = wait_on(&st->draining, c);
	if (wt) {
		/* A query sent behind a waiting one: it runs when the wait is over. */
		size_t len = strlen(sql);
		struct queued_query *q;

		if (wt->n_queued >= QUEUE_MAX_QUERIES || wt->queued_bytes + len > QUEUE_MAX_BYTES) {
			client_close(c, "54000", "too many commands sent while %s waits",
				     admin_verb_tag(wt->verb));
			return;
		}
		q = malloc(sizeof(*q) + len + 1);
		if (!q) {
			client_close(c, "53200", "out of memory");
			return;
		}
		memcpy(q->sql, sql, len + 1);
		list_add_tail(&wt->queued, &q->node);
		wt->n_queued++;
		wt->queued_bytes += len;
		return;
	}
	run_query(st, c, sql);
}

/*
 * Answer a wait whose condition holds (or whose PAUSE was undone), then run the queries queued
 * behind it until one of them has to wait in turn.
 */
static void finish_wait(struct admin_state *st, struct admin_wait *wt)
{
	struct client *c = wt->c;
	struct worker *w = st->w;

	list_del(&wt->node);
	list_add_tail(&st->draining, &wt->node);

	if (wt->verb == ADMIN_PAUSE) {
		struct database *db = wt->dbname[0] ? find_database(w, wt->dbname) : NULL;
		bool still_paused = wt->dbname[0] ? (!db || db->paused) : w->pools.paused;

		if (still_paused)
			reply_done(c, ADMIN_PAUSE);
		else
			reply_error(c, "57014", "PAUSE canceled by RESUME");
	} else {
		reply_done(c, wt->verb);
	}

	while (!wt->gone && !list_empty(&wt->queued)) {
		struct admin_wait *next = wait_on(&st->waits, c);
		struct queued_query *q;

		if (next) {
			/* The rest came before anything queued on the new wait: put it in front. */
			while (!list_empty(&wt->queued)) {
				struct list_node *last = wt->queued.prev;

				list_del(last);
				list_add_head(&next->queued, last);
			}
			next->n_queued += wt->n_queued;
			next->queued_bytes += wt->queued_bytes;
			break;
		}
		q = list_entry(wt->queued.next, struct queued_query, node);
		list_del(&q->node);
		wt->n_queued--;
		wt->queued_bytes -= strlen(q->sql);
		run_query(st, c, q->sql);
		free(q);
	}
	list_del(&wt->node);
	free_queued(&wt->queued);
	free(wt);
}

static bool wait_ready(struct admin_state *st, const struct admin_wait *wt)
{
	struct worker *w = st->w;

	if (wt->verb == ADMIN_WAIT_CLOSE)
		return wait_close_done(w, wt->dbname);
	if (wt->dbname[0]) {
		struct database *db = find_database(w, wt->dbname);

		if (!db || !db->paused)
			return true;
	} else if (!w->pools.paused) {
		return true;
	}
	return pause_done(w, wt->dbname);
}

/* Called periodically and after releases: completes waiting PAUSE / WAIT_CLOSE commands. */
static void admin_tick(void *arg)
{
	struct worker *w = arg;
	struct admin_state *st = w->admin;
	uint64_t now = clock_now_us();

	/* none: freed at exit (admin_destroy) */
	if (!st || st->ticking)
		return;
	st->ticking = true;
	if (now - st->stats_since_us >= ADMIN_STATS_PERIOD_US || now < st->stats_since_us) {
		admin_stats_roll(w);
		st->stats_since_us = now;
	}
	/*
	 * Finishing a wait runs queued commands, which may add or finish other waits: look again
	 * from the start after each one instead of holding an iterator across it.
	 */
	for (;;) {
		struct list_node *pos, *tmp;
		struct admin_wait *ready = NULL;

		list_for_each_safe(pos, tmp, &st->waits) {
			struct admin_wait *wt = list_entry(pos, struct admin_wait, node);

			if (wait_ready(st, wt)) {
				ready = wt;
				break;
			}
		}
		if (!ready)
			break;
		finish_wait(st, ready);
	}
	st->ticking = false;
}

/* An admin client is going away: forget any command it was waiting on. */
static void admin_forget_client(void *arg, struct client *c)
{
	struct admin_state *st = ((struct worker *)arg)->admin;
	struct admin_wait *wt;

	if (!st)
		return;
	while ((wt = wait_on(&st->waits, c)) != NULL) {
		log_info("C-%" PRIu64 " admin %s@%s: left while %s was waiting", c->id, c->user,
			 c->addr, admin_verb_tag(wt->verb));
		list_del(&wt->node);
		free_queued(&wt->queued);
		free(wt);
	}
	/* finish_wait() is running this client's queue: it frees the wait when it sees this. */
	wt = wait_on(&st->draining, c);
	if (wt) {
		wt->gone = true;
		/* Do not match this client again: its memory may be reused by a new one. */
		wt->c = NULL;
	}
}

static const struct console_ops console_ops = {
	.is_console_db = admin_is_console_db,
	.handle_query = admin_handle_query,
	.forget_client = admin_forget_client,
	.tick = admin_tick,
	.destroy = admin_destroy,
};

bool admin_register(struct worker *w, struct reshard *rs)
{
	struct admin_state *st = calloc(1, sizeof(*st));

	if (!st)
		return false;
	st->w = w;
	st->rs = rs;
	/* The snapshots start at zero, which is what the counters were when the worker started. */
	st->stats_since_us = w->start_time_us ? w->start_time_us : clock_now_us();
	list_init(&st->waits);
	list_init(&st->draining);
	w->admin = st;
	w->clients.console = &console_ops;
	w->clients.console_arg = w;
	return true;
}
