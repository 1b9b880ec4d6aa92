/*
 * worker: the owner of the process's one event loop and of everything on it: databases, pools,
 * clients, servers, topology, the admin console's state. It puts configurations in force
 * (RELOAD and admin SET share one apply path) and shuts the process down.
 *
 * Every mutable object is reachable from struct worker (no scattered globals; what main.c
 * attaches, through the hooks and handlers it attaches them with), so that one worker per core
 * is an incremental step later. The modules it runs see only their part of it, lent to them
 * (struct clients, struct pools): of the others, only the admin console and the metrics
 * exporter, which show it all, include this header. Online resharding (shard maps in etcd, bucket moves: reshard/) runs on the
 * worker's loop with the worker's slots, but the worker knows it only as a table of hooks
 * (struct worker_resharding_ops) that main.c attaches: it calls no function of reshard/, and
 * reshard/ none of the worker's.
 */
#ifndef PGMUX_WORKER_WORKER_H
#define PGMUX_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/clients.h"
#include "core/list.h"
#include "ev/loop.h"
#include "ev/tls.h"
#include "pool/pool.h"
#include "pool/stats.h"
#include "topo/topology.h"

struct client;
struct config;
struct dns;
struct httpd;
struct takeover_clients;
struct takeover_server;
struct tls_ctx;
struct worker;

/*
 * Online resharding as the worker sees it: hooks main.c attaches (arg: the module's state), so
 * that the worker tells the module what it must know without including or calling it.
 */
struct worker_resharding_ops {
	/* A config was put in force (w->cfg swapped, the pools not following yet); once at start. */
	void (*config_changed)(void *arg);
	/* Is a move under way? Its hold and switch are this process's: a takeover waits. */
	bool (*moves_active)(void *arg);
	/*
	 * At exit, no client left: leave what the instance is registered in (etcd), so that it
	 * goes at once rather than when its leases expire. left(left_arg) once that is done or
	 * timed out; false (left is not called): nothing to leave.
	 */
	bool (*leave)(void *arg, void (*left)(void *left_arg), void *left_arg);
	/* At exit, before the loop is destroyed: stop every request and move, free everything. */
	void (*destroy)(void *arg);
};

/* One pgmux process's state; every object is reachable from here. */
struct worker {
	struct evloop loop;
	struct config *cfg;
	struct pools pools; /* databases, users, pools, their servers, clients logging in */
	struct clients
		clients;    /* what every client shares, and what it is lent (client/clients.h) */
	struct topo topo;   /* the clusters; pools follow it (pool_follow_topology) */
	bool shutting_down; /* SIGTERM/SHUTDOWN: no new clients */
	/* Listening sockets handed to a new process (--takeover): serve our clients until they leave */
	bool handed_over;
	bool safe_shutdown; /* SIGINT: close clients as their transactions end */
	bool exiting;       /* no client left after a shutdown: leaving (worker_exit) */
	uint64_t start_time_us;
	struct evloop_timer janitor;
	void *listeners;                  /* ev/listen.c's state */
	struct takeover_server *takeover; /* the takeover socket (ev/takeover.c); NULL = none */
	/* Old process after a takeover: idle clients go to the new one at this timer's ticks. */
	struct evloop_timer handoff_timer;
	/* New process after a takeover: the clients the old one hands over arrive here. */
	struct takeover_clients *takeover_in;
	void *admin; /* the admin console's state (admin/console.c) */
	struct stats totals_prev;
	struct tls_ctx *client_tls;  /* accepting TLS from clients; NULL = client TLS off */
	struct tls_ctx *server_tls;  /* TLS towards servers; NULL = off */
	struct dns *dns;             /* asynchronous resolver and cache (ev/dns.c) */
	struct httpd *metrics_httpd; /* the metrics_listen endpoint (ev/httpd.c); NULL = off */
	uint64_t reloads_ok, reloads_failed; /* RELOAD, SIGHUP: configs put in force or refused */
	/* shard maps and bucket moves (reshard/), attached by main.c; NULL = none */
	const struct worker_resharding_ops *resharding;
	void *resharding_arg;
};

/*
 * An empty worker for cfg (owned by the worker from now on, with the auth_file's users it
 * carries): lists, the event loop, the statement registry, new sockets' settings. False when the
 * loop cannot start.
 */
bool worker_init(struct worker *w, struct config *cfg);

/*
 * Call fn for each name in the resolver's cache (SHOW DNS_HOSTS), read-only: name, its address in
 * text ("" while a lookup runs or after a failure), seconds until the answer expires. The strings
 * live until fn returns.
 */
typedef void (*worker_dns_host_fn)(void *arg, const char *name, const char *addr, double ttl);
void worker_for_each_dns_host(struct worker *w, worker_dns_host_fn fn, void *arg);

/*
 * The periodic sweep (the janitor timer's tick, and at a shutdown request): every module's
 * timeouts, cancel requests given up, accepting resumed, the console's waiting commands, and the
 * exit once a shutdown has no client left.
 */
void worker_janitor(struct worker *w);

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

/* The TCP options of new sockets, from the tcp_* keys. */
void worker_tcp_settings(const struct config *cfg, struct evloop_tcp *out);

/* Close and free everything the worker owns (at exit). */
void worker_destroy(struct worker *w);

/* SHUTDOWN/SIGTERM (safe=false: stop accepting, exit when clients are gone) and SIGINT (safe:
 * also close each client when its transaction ends). */
void worker_shutdown(struct worker *w, bool safe);

/* After a shutdown, no client left: leave what the instance is registered in, then exit. */
void worker_exit(struct worker *w);

#endif
