/*
 * pool: the worker, its databases and pools, and the only functions that change a client's or a
 * server's state.
 *
 * A pool serves one (database, user) pair. It lends its servers to clients, queues clients FIFO
 * when none is free, opens servers up to its limits (pool size, reserve, max_db_connections,
 * max_user_connections) and takes them back when the pooling mode says a unit of work ended.
 * Every client and server is on exactly one list, the one of its state.
 */
#ifndef PGMUX_POOL_POOL_H
#define PGMUX_POOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "config/config.h"
#include "core/list.h"
#include "ev/loop.h"
#include "ev/tls.h"
#include "pool/stats.h"
#include "route/router.h"
#include "server/params.h"
#include "server/prepared.h"
#include "server/server.h"
#include "topo/topology.h"

struct authquery;
struct userlist;

/* A [databases] entry in force, kept across reloads by name. */
struct database {
	struct list_node node;
	char name[64];
	struct db_entry *entry;       /* borrowed from the worker's current config */
	bool from_wildcard;           /* created on demand from the "*" entry */
	bool removed;                 /* gone from the config: no new clients */
	bool paused;                  /* PAUSE db */
	bool disabled;                /* DISABLE db: new clients refused */
	int n_servers;                /* server connections over all its pools */
	struct stats stats_prev;      /* for averages */
	struct cluster *cluster;      /* cluster= entries: where its members are; NULL = host= */
	int next_host;                /* host= lists: where the next server connection goes */
	int hosts_failed;             /* connections that failed since one logged in */
	struct route_stats routes;    /* where its units of work went (SHOW ROUTES) */
};

struct pool_user {
	struct list_node node;
	char name[64];
	int n_servers;                /* for max_user_connections */
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
};

/*
 * A pool's share of one member of its database's cluster (slot 0 for a host= database): pool
 * sizes apply per member, and waiters queue for a member.
 */
struct pool_node {
	int n_servers;                /* every state but CLOSING */
	int n_pending;                /* logging in or being reset: will serve a waiter soon */
	int n_waiting;                /* clients waiting for this member */
	uint64_t last_login_failure_us;
	uint64_t failing_since_us;    /* first failed login since the last that succeeded; 0 = none */
	uint64_t last_failed_attempt_us; /* when the attempt that failed last began */
};

struct pool {
	struct list_node node;
	struct worker *w;
	struct database *db;
	struct pool_user *user;
	enum pool_mode mode;               /* effective, set when the config in force changes */

	/* clients */
	struct list_node active_clients;   /* IDLE and ACTIVE: logged in, not waiting */
	struct list_node waiting_clients;  /* WAITING and WAITING_LOGIN, FIFO */
	/* servers */
	struct list_node idle_servers;     /* LIFO: recently used first, so old ones can expire */
	struct list_node active_servers;
	struct list_node login_servers;    /* CONNECTING and LOGIN */
	struct list_node reset_servers;    /* RESET and CANCEL_WAIT */

	int n_active_clients, n_waiting_clients;
	int n_idle, n_active, n_login, n_reset;
	int n_waiting_primary;             /* waiting for a cluster to confirm a primary */
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

	uint64_t last_login_failure_us;   /* server_login_retry back-off */
	char last_login_error[256];
	char last_login_sqlstate[6];
	int last_login_member;            /* the member that error came from */
	struct stats stats;
};

/* A CancelRequest being delivered to a backend on its own short connection. */
struct cancel_req {
	struct list_node node;
	struct worker *w;
	struct server *server;            /* NULL once the server closed */
	uint32_t pid, key;                /* the backend's key, copied at creation */
	uint64_t start_us;
	struct conn conn;
};

/*
 * The admin console as the modules below it see it: admin/ registers its table at startup
 * (admin_register()), and client and pool code call through it, so they never include admin/.
 * See admin/admin.h for what each entry does.
 */
struct console_ops {
	bool (*is_console_db)(const char *dbname);
	void (*handle_query)(struct client *c, const char *sql);
	void (*forget_client)(struct client *c);
	/* After a server is released and on every janitor run: finish waiting PAUSE/WAIT_CLOSE. */
	void (*tick)(struct worker *w);
	/* At exit, after every client is closed. */
	void (*destroy)(struct worker *w);
};

/* One pgmux process's state; every object is reachable from here. */
struct worker {
	struct evloop loop;
	struct config *cfg;
	struct userlist *userlist;
	struct list_node databases;
	struct list_node users;
	struct list_node pools;
	struct list_node login_clients;   /* LOGIN (no pool yet) and admin clients */
	struct list_node cancel_reqs;     /* cancel requests on their way to a backend */
	struct topo topo;                 /* the clusters; pools follow it (pool_follow_topology) */
	int n_clients;                    /* every client connection, for max_client_conn */
	uint64_t next_client_id, next_server_id;
	bool paused;                      /* PAUSE without a database */
	bool shutting_down;               /* SIGTERM/SHUTDOWN: no new clients */
	bool safe_shutdown;               /* SIGINT: close clients as their transactions end */
	uint64_t start_time_us;
	struct evloop_timer janitor;
	void *listeners;                  /* ev/listen.c's state */
	const struct console_ops *console; /* the admin console's entry points; NULL = none */
	void *admin;                      /* the admin console's state (admin/console.c) */
	struct authquery *authquery;      /* auth_query's cache and connections (auth/) */
	struct stats totals_prev;
	struct pstmt_registry pstmts;     /* prepared statements shared by clients and servers */
	struct tls_ctx *client_tls;       /* accepting TLS from clients; NULL = client TLS off */
	struct tls_ctx *server_tls;       /* TLS towards servers; NULL = server TLS off */
	struct dns *dns;                  /* asynchronous resolver and cache (ev/dns.c) */
};

/* State changes: the only place they happen. They keep the lists and counters right. */
void client_set_state(struct client *c, enum client_state st);
void server_set_state(struct server *s, enum server_state st);

/*
 * Give up on cancel requests PostgreSQL has not confirmed (closed) within timeout seconds; their
 * servers are closed rather than reused, since the cancel may still land.
 */
void cancel_expire(struct worker *w, double timeout);

/* Find or create the pool for (db, user). NULL when out of memory. */
struct pool *pool_get(struct worker *w, struct database *db, const char *user);

/* The database named name (from the config or the "*" entry), or NULL. */
struct database *database_lookup(struct worker *w, const char *name);

/* A logged-in client wants a server: link one now, or queue it and open servers as allowed. */
void pool_request_server(struct client *c);

/* The unit of work ended: the client lets go of its server. */
void pool_release_server(struct client *c);

/*
 * A released server goes back into service: after the cancels on their way to it are done, and
 * after undoing what its last client left there (open transaction, settings, session state).
 */
void pool_recycle_server(struct server *s);

/* A server finished login or reset and is ready for work (hand it to a waiter, or idle it). */
void pool_server_ready(struct server *s);

/* A server finished logging in (before connect_query): its member takes logins again. */
void pool_server_logged_in(struct server *s);

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
 * Subscribe w's pools to its topology (at startup, once): when a cluster changes they close
 * servers of a demoted primary (idle ones now, busy ones when released), send waiting clients
 * where they can go now and open what those need. False: no room for another subscriber.
 */
bool pool_follow_topology(struct worker *w);

/* Is dbname the admin console's (false when no console is registered)? */
bool worker_is_console_db(const struct worker *w, const char *dbname);

/* New connection buffers take pkt_buf bytes (admin SET pkt_buf); buffers in use keep theirs. */
void worker_set_pkt_buf(struct worker *w, uint32_t pkt_buf);

/* A waiting client's target was decided again: move it to that member's queue. */
void pool_retarget(struct client *c, int target);

/* Forget a server that is closing (called by server_close). */
void pool_forget_server(struct server *s);

/* Open servers the pool needs (waiting clients, min_pool_size), within its limits. */
void pool_launch_needed(struct pool *p);

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
void pool_config_changed(struct worker *w);

/* Periodic checks: timeouts, lifetimes, min_pool_size. */
void pool_janitor(struct worker *w);

/* Close every server of a database (or all when db is NULL) once released (RECONNECT). */
void pool_reconnect(struct worker *w, struct database *db);

/* Drop every client and server of a database at once (KILL db). */
void pool_kill_database(struct worker *w, struct database *db);

/* Serve waiting clients of every pool of db (all when NULL) after RESUME/ENABLE. */
void pool_kick(struct worker *w, struct database *db);

/* Re-read the config file; false (and err) when it did not load: the old config stays. */
bool worker_reload(struct worker *w, char *err, size_t errlen);

/* How putting a new config in force went. */
enum worker_apply_result {
	WORKER_APPLIED,
	/*
	 * In force, except that a TLS side's key and certificate do not pair yet: that side keeps
	 * its running context until a later change pairs them; err says which side and why.
	 */
	WORKER_APPLIED_TLS_PENDING,
	WORKER_APPLY_FAILED, /* err says why; the running config and everything built from it stay */
};

/*
 * Put newcfg (loaded or cloned, and validated) in force: the one path of RELOAD and admin SET.
 * Rebuilds what `what` (enum config_apply) names: RELOAD passes CONFIG_APPLY_ALL, SET its key's
 * row's apply. Databases, clusters and pools always follow the new config, nobody is
 * disconnected. allow_unpaired: a TLS key and certificate that do not pair yet leave that side
 * pending (SET changes them one at a time) instead of failing. Takes newcfg in every case: it
 * becomes w->cfg, or is freed on failure. Does not call back into the caller.
 */
enum worker_apply_result worker_apply(struct worker *w, struct config *newcfg, unsigned what,
				     bool allow_unpaired, char *err, size_t errlen);

/* Log what a freshly loaded cfg accepted with a warning (at startup and on every reload). */
void worker_log_config_warnings(const struct config *cfg);

/*
 * The TLS settings of one side (client_tls_* or server_tls_* keys), for ev/tls. The strings are
 * borrowed from cfg.
 */
void worker_tls_settings(const struct config *cfg, enum tls_side side, struct tls_settings *out);

/* How applying the TLS and DNS keys of a config went. */
enum tls_apply {
	TLS_APPLY_DONE,
	/*
	 * Applied, except that a side's key and certificate do not form a pair yet (admin SET of one,
	 * then of the other): that side keeps its running context until a later apply pairs them.
	 */
	TLS_APPLY_PENDING,
	TLS_APPLY_FAILED, /* nothing changed */
};

/*
 * Rebuild the TLS contexts from cfg's client_tls and server_tls keys (certificates re-read) and
 * apply its DNS cache lifetimes, as RELOAD does. allow_unpaired: a side whose key and
 * certificate do not pair is left running as it is (TLS_APPLY_PENDING) instead of failing the
 * whole; err then says which side waits and why. TLS_APPLY_FAILED (err says why): a context
 * cannot be built and nothing changed. Connections already encrypted keep the context they
 * started with.
 */
enum tls_apply worker_apply_tls_dns(struct worker *w, const struct config *cfg, bool allow_unpaired,
				    char *err, size_t errlen);

/* Close and free everything the worker owns (at exit). */
void worker_destroy(struct worker *w);

/* SHUTDOWN/SIGTERM (safe=false: stop accepting, exit when clients are gone) and SIGINT (safe:
 * also close each client when its transaction ends). */
void worker_shutdown(struct worker *w, bool safe);

#endif
