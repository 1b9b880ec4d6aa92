/*
 * pool: the worker's databases and pools, and the one owner of every client's and server's
 * lifecycle: states change, and clients and servers are linked and unlinked, only through the
 * verbs declared here.
 *
 * A pool serves one (database, user) pair. It lends its servers to clients, queues clients FIFO
 * when none is free, opens servers up to its limits (pool size, reserve, max_db_connections,
 * max_user_connections) and takes them back when the pooling mode says a unit of work ended.
 * Every client and server is on exactly one list, the one of its state.
 *
 * The client, pool and server modules reach one another only these ways (tools/callgraph.py
 * fails the build on a call outside them):
 *   client -> pool    the verbs below (pool_client_*, pool_request_server, pool_release_server,
 *                     pool_retarget, ...) and questions (pool_shares_servers, ...)
 *   server -> pool    the verbs below (pool_server_launched, which chooses where it connects,
 *                     _connected, _login_done, _login_failed, _ready, _closing,
 *                     pool_server_fenced) and pool/address.h's (_host_failed, _address_known)
 *   pool -> client    the events of pool/events.h, through the client module's table
 *   server -> client  the events of server/events.h, through the client module's table
 *   pool -> server    server_launch, server_close, server_send_internal_query, and the resets
 *                     of what a released server keeps (respq_reset, settings_clear, ...)
 *   client -> server  relaying, settings and server/prepared.h's verbs
 * Types cross freely (the pool keeps clients and servers on its lists); calls upwards do not.
 * The pool never touches a socket: a client pairs its conn with its server's (back-pressure) when
 * the pool links them, and unpairs it when they part.
 */
#ifndef PGMUX_POOL_POOL_H
#define PGMUX_POOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/list.h"
#include "pool/stats.h"
#include "server/params.h"
#include "server/pstmt.h"
#include "server/server.h"
#include "topo/topology.h"

struct client;
struct dns;
struct evloop;
struct pool_events;
struct scram_derived_cache;
struct server_events;
struct tls_ctx;

/* A [databases] entry in force, kept across reloads by name. */
struct database {
	struct list_node node;
	char name[64];
	struct db_entry *entry;    /* borrowed from the worker's current config */
	bool from_wildcard;        /* created on demand from the "*" entry */
	bool removed;              /* gone from the config: no new clients */
	bool paused;               /* PAUSE db */
	bool disabled;             /* DISABLE db: new clients refused */
	int n_servers;             /* server connections over all its pools */
	int check_servers;         /* pool_check_all's own sum of the same */
	struct stats stats_prev;   /* for averages */
	struct cluster *cluster;   /* cluster= entries: where its members are; NULL = host= */
	int next_host;             /* host= lists: where the next server connection goes */
	int hosts_failed;          /* connections that failed since one logged in */
	struct route_stats routes; /* where its units of work went (SHOW ROUTES) */
	/*
	 * A sharded database (shards=): the databases of its shards, by their index in the
	 * [shards.NAME] section (checked against the config in force when used); how its units
	 * found their shard.
	 */
	struct database **shard_dbs;
	int n_shard_dbs;
	int fanouts_running; /* reads being sent to every shard (fanout_limit) */
	struct shard_stats shard_stats;
};

struct pool_user {
	struct list_node node;
	char name[64];
	int n_servers;     /* for max_user_connections */
	int check_servers; /* pool_check_all's own sum of the same */
	/*
	 * A cleartext password a client proved against a SCRAM-only auth_file secret: the only way to
	 * log in to a SCRAM server as that user without pass-through. "" when none.
	 */
	char proven_password[128];
	/*
	 * SCRAM pass-through: the ClientKey a client proved against the auth_file's SCRAM secret and
	 * that secret's ServerKey, so server logins need no plaintext. Valid when scram_keys_set.
	 */
	bool scram_keys_set;
	uint8_t scram_client_key[32];
	uint8_t scram_server_key[32];
	/* An md5 or plaintext secret auth_query found for this user (not in auth_file). "" if none. */
	char queried_secret[128];
	/*
	 * Keys derived for SCRAM logins to servers, per salt and count: a repeat login skips PBKDF2.
	 * The first server login that derives keys makes it (server/login.c); NULL until then.
	 */
	struct scram_derived_cache *server_scram_keys;
};

/*
 * A pool's share of one member of its database's cluster (slot 0 for a host= database): pool
 * sizes apply per member, and waiters queue for a member.
 */
struct pool_node {
	int n_servers; /* every state but CLOSING */
	int n_pending; /* logging in or being reset: will serve a waiter soon */
	int n_waiting; /* clients waiting for this member */
	uint64_t last_login_failure_us;
	uint64_t failing_since_us; /* first failed login since the last that succeeded; 0 = none */
	uint64_t last_failed_attempt_us; /* when the attempt that failed last began */
};

/*
 * The pool module's part of a worker (w->pools): its databases, users and pools, the clients not
 * in a pool (logging in, the admin console's), what its servers share; and what the worker lends
 * it. The pool module reads nothing else of the worker, and the worker nothing of the servers.
 */
struct pools {
	struct list_node databases;
	struct list_node users;
	struct list_node all;               /* every pool */
	struct list_node login_clients;     /* LOGIN (no pool yet) and admin clients */
	struct list_node servers_elsewhere; /* after a takeover: the previous process's servers */
	bool paused;                        /* PAUSE without a database */
	struct pstmt_registry pstmts;       /* prepared statements shared by clients and servers */
	struct server_env servers;          /* what server_launch needs; its slots are lent */
	/* lent by the worker */
	const struct pool_events *events; /* what the pool tells a client (the client module's) */
	struct topo *topo;
	struct config *const *cfg; /* the worker's slot: the config in force */
	const bool *shutting_down; /* the worker's flag: no min_pool_size any more */
};

/*
 * What the worker lends its pools and, through them, their servers (pools_open). The slots are
 * the worker's own, never copies: RELOAD and admin SET replace what they point to.
 */
struct pools_lent {
	struct evloop *loop;
	const struct pool_events *pool_events;     /* what a pool tells a client */
	const struct server_events *server_events; /* what a server tells its client */
	struct topo *topo;
	struct config *const *cfg;
	struct dns *const *dns;
	struct tls_ctx *const *server_tls; /* NULL inside: TLS towards servers is off */
	const bool *shutting_down;
};

struct pool {
	struct list_node node;
	struct pools *ps;
	struct database *db;
	struct pool_user *user;
	enum pool_mode mode; /* effective, set when the config in force changes */

	/* clients */
	struct list_node active_clients;  /* IDLE and ACTIVE: logged in, not waiting */
	struct list_node waiting_clients; /* WAITING and WAITING_LOGIN, FIFO */
	/* servers */
	struct list_node idle_servers; /* LIFO: recently used first, so old ones can expire */
	struct list_node active_servers;
	struct list_node login_servers; /* CONNECTING and LOGIN */
	struct list_node reset_servers; /* RESET and CANCEL_WAIT */

	int n_active_clients, n_waiting_clients;
	int n_idle, n_active, n_login, n_reset;
	int n_waiting_primary; /* waiting for a cluster to confirm a primary */
	struct pool_node nodes[TOPO_MAX_MEMBERS];

	/* what the first server told at login: the parameters new clients are shown */
	bool welcome_ready;
	char welcome_version[32];
	struct welcome_params {
		int n;
		char names[24][48];
		char values[24][PARAM_VALUE_MAX];
	} welcome;
	struct param_set defaults;

	uint64_t last_login_failure_us; /* server_login_retry back-off */
	char last_login_error[256];
	char last_login_sqlstate[6];
	int last_login_member; /* the member that error came from */
	int reported_servers;  /* after a takeover: its servers as last told to the new process */
	struct stats stats;
	struct latency latency; /* its histograms: /metrics per pool, SHOW LATENCY per database */
};

/*
 * Lifecycle verbs: the only way a client's or a server's state changes, or a client and a server
 * are linked or unlinked. Each says what happened; the pool moves the object to the list of its
 * new state, keeps the counters right, checks the move against its table of legal transitions
 * (ASSERT) and logs it with its cause (noise level).
 */

/* A new client connection: LOGIN, on ps's list of clients logging in. */
void pool_client_accepted(struct pools *ps, struct client *c);

/*
 * Client c (c->pool set) is authenticated. When the pool knows its servers' parameters it becomes
 * IDLE and client_finish_login() is called back before this returns; else it waits
 * (WAITING_LOGIN) for the pool's first server, which is launched now.
 */
void pool_client_logged_in(struct client *c);
/* c (with its pool) came from the previous pgmux process, already logged in: idle at once. */
void pool_client_adopted(struct client *c);

/*
 * Old process after a takeover: p's server count when it changed since pool_servers_reported
 * last said it was told (*n set, true), so that the new process counts them against
 * max_db_connections and max_user_connections; false when it did not change.
 */
bool pool_servers_to_report(const struct pool *p, int *n);
void pool_servers_reported(struct pool *p, int n);

/*
 * New process: the previous one holds n servers of database db for user. Its servers count
 * against this process's max_db_connections and max_user_connections until it reports fewer
 * or exits (pool_servers_elsewhere_clear).
 */
void pool_servers_elsewhere(struct pools *ps, const char *db, const char *user, int n);
void pool_servers_elsewhere_clear(struct pools *ps);

/* Client c (no pool) is authenticated for the admin console: IDLE, still on the login list. */
void pool_console_client_logged_in(struct client *c);

/*
 * c, IDLE and holding no server, goes on in pool to (another shard's pool of its sharded
 * database): its next unit of work is served there. Its state stays IDLE.
 */
void pool_client_move(struct client *c, struct pool *to);

/* The unit of work of c was refused: if c was waiting for a server it leaves the queue (IDLE). */
void pool_drop_request(struct client *c);

/*
 * c's server died before answering and c's request goes elsewhere: unlink them without releasing
 * the server (nothing is reset), c becomes IDLE and the server is closed with reason. Calls back
 * the client module through server_close only for the server's side (c is no longer linked).
 * The client unpairs its conn first (client_unlink_for_replay).
 */
void pool_unlink_for_replay(struct client *c, const char *reason);

/* c (already released from its server) is closing: off its list, CLOSING for good. */
void pool_client_closing(struct client *c);

/* A new server connection of s->pool starts connecting: CONNECTING, counted against the limits. */
void pool_server_launched(struct server *s);

/* s reached its backend (TCP and TLS up): LOGIN. The pool's connect latency is counted here. */
void pool_server_connected(struct server *s);

/*
 * s finished logging in (ReadyForQuery; the pool counts its login latency): its member takes
 * logins again, clients waiting to log in may proceed. s runs the database's connect_query
 * (RESET) or is ready at once (see pool_server_ready(), which may link it to a waiting client
 * before this returns).
 */
void pool_server_login_done(struct server *s);

/*
 * s is closing (called by server_close only): forgotten by the cancel requests on their way to
 * its backend, off its pool's lists and counters, CLOSING for good.
 */
void pool_server_closing(struct server *s);

/*
 * Check the pool's bookkeeping: every list's length against its counter, each object's state
 * against the list it is on, the links between active clients and servers, the per-member and
 * waiting counts. Logs the first inconsistency (error level) and returns false; true when sound.
 */
bool pool_check(const struct pool *p);

/* pool_check() for every pool of ps, plus its login list and its databases' and users' counts. */
bool pool_check_all(const struct pools *ps);

/* Empty lists, nothing lent yet (the unit tests fill in what they lend; the worker: pools_open). */
void pools_init(struct pools *ps);

/* pool/pools.c: the pools' lifecycle as the worker sees it. */

/* Empty pools with what the worker lends them, and an empty statement registry. */
void pools_open(struct pools *ps, const struct pools_lent *lent);

/*
 * At exit, once every client is closed: close every server (the loop frees them at its next
 * deferred run), then free the pools, databases, users and the statement registry
 * (pools_free, after that run: a server's end still tells the registry what it held).
 */
void pools_close_servers(struct pools *ps, const char *why);
void pools_free(struct pools *ps);

/* How many of p's servers wait for a cancel to finish before they can be reset. */
int pool_cancel_waiting(const struct pool *p);

/* How long the longest-waiting client of p has waited, in microseconds (0: none waits). */
uint64_t pool_longest_wait_us(const struct pool *p, uint64_t now);

/* Find or create the pool for (db, user). NULL when out of memory. */
struct pool *pool_get(struct pools *ps, struct database *db, const char *user);

/* The database named name (from the config or the "*" entry), or NULL. */
struct database *database_lookup(struct pools *ps, const char *name);

/* A logged-in client wants a server: link one now, or queue it and open servers as allowed. */
void pool_request_server(struct client *c);

/* The unit of work ended: the client lets go of its server (server_released: it unpairs). */
void pool_release_server(struct client *c);

/*
 * A released server goes back into service: after the cancels on their way to it are done, and
 * after undoing what its last client left there (open transaction, settings, session state).
 */
void pool_recycle_server(struct server *s);

/* A server finished login or reset and is ready for work (hand it to a waiter, or idle it). */
void pool_server_ready(struct server *s);

/*
 * s says it is a standby (in_hot_standby). True when its member is taken for its cluster's
 * primary (a demotion the topology has not seen yet): the topology hears it at once and checks
 * the member again, and s must not take writes (the caller closes it).
 */
bool pool_server_fenced(struct server *s);

/* A server login failed: remember the error, the member and the time, for server_login_retry. */
void pool_server_login_failed(struct server *s, const char *sqlstate, const char *message);

/*
 * Should waiting client c hear the server's error (last_login_sqlstate, last_login_error) now?
 * True once logins to the member it waits for (a client logging in: the pool's first server)
 * have failed for server_login_retry seconds without a success, and an attempt that began while
 * c waited failed too. The janitor then closes a client logging in with that error and fails a
 * logged-in client's unit of work with it (its session goes on).
 */
bool pool_login_retry_exhausted(const struct client *c);

/*
 * Is c logging in to a cluster none of whose members has passed its checks since c started
 * waiting, for server_login_retry at least? why then says what each member failed (the client's
 * error).
 */
bool pool_cluster_unusable(const struct client *c, char *why, size_t whylen);

/*
 * Subscribe the pools to their topology (at startup, once): when a cluster changes they close
 * servers of a demoted primary (idle ones now, busy ones when released), send waiting clients
 * where they can go now and open what those need. False: no room for another subscriber.
 */
bool pool_follow_topology(struct pools *ps);

/* A waiting client's target was decided again (the topology changed): it waits for target now. */
void pool_retarget(struct client *c, int target);

/* Open servers the pool needs (waiting clients, min_pool_size), within its limits. */
void pool_launch_needed(struct pool *p);

/* The config in force. */
static inline const struct config *pool_cfg(const struct pool *p)
{
	return *p->ps->cfg;
}

/*
 * A query (xact: a transaction) of c ended: it is counted with its time, from start_us to now, in
 * its pool's stats and histograms and, in a routed database, in those of the role of the member
 * that ran it.
 */
void pool_count_duration(const struct client *c, bool xact, uint64_t start_us, uint64_t now);

/* Effective settings of a pool. */
int pool_size(const struct pool *p);
int pool_min_size(const struct pool *p);
enum pool_mode pool_mode(const struct pool *p); /* for display; decisions ask the questions below */

/*
 * What the pool mode means for a unit of work. Session: a client keeps its server until it
 * leaves. Otherwise servers are shared: a client lets go of its server after each transaction
 * (transaction mode) or after each statement (statement mode, which refuses transaction blocks).
 */
bool pool_is_session(const struct pool *p);
bool pool_shares_servers(const struct pool *p);
bool pool_releases_per_transaction(const struct pool *p);
bool pool_releases_per_statement(const struct pool *p);

/* The config in force changed: pools take their effective settings from it again. */
void pool_config_changed(struct pools *ps);

/* The pool's part of the janitor's sweep (worker_janitor): server timeouts, min_pool_size. */
void pool_sweep(struct pool *p, uint64_t now);

/* Close every server of a database (or all when db is NULL) once released (RECONNECT). */
void pool_reconnect(struct pools *ps, struct database *db);

/* Drop every client and server of a database at once (KILL db). */
void pool_kill_database(struct pools *ps, struct database *db);

/* Serve waiting clients of every pool of db (all when NULL) after RESUME/ENABLE. */
void pool_kick(struct pools *ps, struct database *db);

#endif
