/*
 * worker: the process's one event loop and everything it owns; configuration changes and
 * shutdown. A config in force is never changed in place: RELOAD loads the file into a fresh
 * config, admin SET changes a validated clone, and both go through worker_apply(), which
 * rebuilds what the change needs and swaps the new config in whole, or changes nothing.
 * Databases keep their pools across it, so nobody is disconnected.
 */
#include "worker/worker.h"

#include <stdlib.h>
#include <string.h>

#include "client/cancel.h"
#include "client/client.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "ev/dns.h"
#include "ev/httpd.h"
#include "ev/listen.h"
#include "ev/takeover.h"
#include "ev/tls.h"
#include "pool/pool.h"
#include "topo/handover.h"

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

static void worker_apply_loop_settings(struct worker *w, const struct config *cfg);

/* How much a change to an entry matters to its existing server connections. */
static bool entry_target_changed(const struct db_entry *a, const struct db_entry *b)
{
	return strcmp(a->host, b->host) || a->port != b->port || strcmp(a->dbname, b->dbname) ||
	       strcmp(a->user, b->user) || strcmp(a->password, b->password) ||
	       strcmp(a->client_encoding, b->client_encoding) ||
	       strcmp(a->datestyle, b->datestyle) || strcmp(a->timezone, b->timezone) ||
	       strcmp(a->application_name, b->application_name) ||
	       strcmp(a->connect_query, b->connect_query) || strcmp(a->cluster, b->cluster);
}

static void apply_restart_only_keys(struct config *newcfg, const struct config *old)
{
	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *k = &config_keys[i];
		char a[256], b[256];

		if (k->reloadable)
			continue;
		config_format_value(old, k, a, sizeof(a));
		config_format_value(newcfg, k, b, sizeof(b));
		if (strcmp(a, b) != 0) {
			char shown_a[256], shown_b[256];

			config_show_value(old, k, shown_a, sizeof(shown_a));
			config_show_value(newcfg, k, shown_b, sizeof(shown_b));
			log_warning(
				"config: %s changed from '%s' to '%s': needs a restart, keeping '%s'",
				k->name, shown_a, shown_b, shown_a);
			config_set_value(newcfg, k->name, a, b, sizeof(b));
		}
	}
}

/*
 * Swap newcfg in (with the auth_file's users it carries): databases, clusters and pools follow
 * it, and what `what` names is rebuilt.
 */
static void apply_config(struct worker *w, struct config *newcfg, unsigned what)
{
	struct list_node *n, *t;
	struct config *old = w->cfg;

	apply_restart_only_keys(newcfg, old);
	if (!topo_apply_config(&w->topo, newcfg))
		log_warning("out of memory applying clusters: some may not follow the new config");
	list_for_each_safe(n, t, &w->pools.databases) {
		struct database *db = list_entry(n, struct database, node);
		const struct db_entry *e = config_find_db(newcfg, db->name);
		bool was_wildcard = db->from_wildcard;

		if (!e || (strcmp(e->name, db->name) != 0) != was_wildcard) {
			/* Gone (or now served by a different entry): let it drain. */
			if (!e) {
				/* Every SET applies the config too: say it once. */
				if (!db->removed)
					log_info("database %s removed from config", db->name);
				db->removed = true;
				pool_reconnect(&w->pools, db);
				db->entry = NULL;
				continue;
			}
		}
		if (db->entry && entry_target_changed(db->entry, e)) {
			log_info("database %s changed: reconnecting its servers", db->name);
			pool_reconnect(&w->pools, db);
		}
		db->entry = (struct db_entry *)e;
		db->from_wildcard = strcmp(e->name, db->name) != 0;
		db->removed = false;
	}
	w->cfg = newcfg;
	if (w->resharding)
		w->resharding->config_changed(w->resharding_arg);
	pool_config_changed(&w->pools);
	if (what & CONFIG_APPLY_LOG) {
		log_set_verbose(newcfg->verbose);
		if (strcmp(old->logfile, newcfg->logfile) != 0 && !log_reopen(newcfg->logfile))
			log_warning("could not open logfile %s", newcfg->logfile);
	}
	if (what & CONFIG_APPLY_LOOP)
		worker_apply_loop_settings(w, newcfg);
	config_free(old);
	/* Larger pools may serve waiting clients now. */
	pool_kick(&w->pools, NULL);
}

/* A side whose key and certificate do not pair yet: why, and what happens meanwhile. */
static void note_pending(enum tls_side side, const char *why, char *err, size_t errlen)
{
	const char *name = side == TLS_SIDE_CLIENTS ? "client" : "server";
	size_t used = strlen(err);

	snprintf(
		err + used, errlen - used,
		"%schange pending until %s_tls_key_file and %s_tls_cert_file form a pair (%s); new %s "
		"connections keep the running TLS settings until then",
		used ? "; " : "", name, name, why, name);
}

/*
 * Rebuild the TLS contexts from cfg's client_tls and server_tls keys (certificates re-read) and
 * apply its DNS cache lifetimes, as RELOAD does. allow_unpaired: a side whose key and
 * certificate do not pair is left running as it is (TLS_APPLY_PENDING) instead of failing the
 * whole; err then says which side waits and why. TLS_APPLY_FAILED (err says why): a context
 * cannot be built and nothing changed. Connections already encrypted keep the context they
 * started with.
 */
static enum tls_apply worker_apply_tls_dns(struct worker *w, const struct config *cfg,
					   bool allow_unpaired, char *err, size_t errlen)
{
	static const enum tls_side sides[2] = { TLS_SIDE_CLIENTS, TLS_SIDE_SERVERS };
	struct tls_ctx **running[2] = { &w->client_tls, &w->server_tls };
	struct tls_ctx *built[2] = { NULL, NULL };
	enum tls_build res[2];
	char why[2][512];

	for (int i = 0; i < 2; i++) {
		struct tls_settings ts;

		worker_tls_settings(cfg, sides[i], &ts);
		res[i] = tls_build_side(&ts, sides[i], &built[i], why[i], sizeof(why[i]));
		if (res[i] == TLS_BUILD_FAILED ||
		    (res[i] == TLS_BUILD_UNPAIRED && !allow_unpaired)) {
			/* All or nothing: a side built already is not applied either. */
			snprintf(err, errlen, "%s", why[i]);
			tls_ctx_free(built[0]);
			return TLS_APPLY_FAILED;
		}
	}
	dns_set_ttls(w->dns, cfg->dns_max_ttl, cfg->dns_nxdomain_ttl);
	*err = '\0';
	for (int i = 0; i < 2; i++) {
		if (res[i] == TLS_BUILD_UNPAIRED) {
			/* Half of a new pair: the running context stays until the other half comes. */
			note_pending(sides[i], why[i], err, errlen);
			continue;
		}
		tls_ctx_free(*running[i]);
		*running[i] = built[i];
	}
	return *err ? TLS_APPLY_PENDING : TLS_APPLY_DONE;
}

/*
 * A database in use keeps its cluster: its servers and waiting clients are counted against that
 * cluster's members. False (err says which) when newcfg would move one.
 */
static bool clusters_kept(struct worker *w, const struct config *newcfg, char *err, size_t errlen)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &w->pools.databases) {
		const struct database *db = list_entry(n, struct database, node);
		const struct db_entry *e = config_find_db(newcfg, db->name);
		const char *now = db->cluster ? db->cluster->name : "";

		if (db->removed || !e || strcmp(now, e->cluster) == 0)
			continue;
		snprintf(err, errlen,
			 "database %s: changing cluster= (from \"%s\" to \"%s\") needs a "
			 "restart",
			 db->name, now, e->cluster);
		return false;
	}
	return true;
}

void worker_log_config_warnings(const struct config *cfg)
{
	for (int i = 0; i < cfg->n_warnings; i++)
		log_warning("%s", cfg->warnings[i]);
}

enum worker_apply_result worker_apply(struct worker *w, struct config *newcfg, unsigned what,
				      bool allow_unpaired, char *err, size_t errlen)
{
	enum worker_apply_result res = WORKER_APPLIED;

	*err = '\0';
	if (!clusters_kept(w, newcfg, err, errlen))
		goto failed;
	/* Certificates are read again; files that do not build keep the running contexts. */
	if (what & (CONFIG_APPLY_TLS | CONFIG_APPLY_DNS)) {
		switch (worker_apply_tls_dns(w, newcfg, allow_unpaired, err, errlen)) {
		case TLS_APPLY_DONE:
			break;
		case TLS_APPLY_PENDING:
			res = WORKER_APPLIED_TLS_PENDING;
			break;
		case TLS_APPLY_FAILED:
			goto failed;
		}
	}
	apply_config(w, newcfg, what);
	return res;
failed:
	config_free(newcfg);
	return WORKER_APPLY_FAILED;
}

bool worker_reload(struct worker *w, char *err, size_t errlen)
{
	struct config *newcfg = config_load(w->cfg->config_file, err, errlen);

	if (!newcfg ||
	    worker_apply(w, newcfg, CONFIG_APPLY_ALL, false, err, errlen) == WORKER_APPLY_FAILED) {
		log_error("reload failed, keeping the old config: %s", err);
		w->reloads_failed++;
		return false;
	}
	worker_log_config_warnings(w->cfg);
	log_info("config reloaded");
	w->reloads_ok++;
	return true;
}

void worker_shutdown(struct worker *w, bool safe)
{
	if (w->shutting_down && !safe) {
		log_info("second shutdown request: exiting now");
		evloop_break(&w->loop);
		return;
	}
	if (w->shutting_down && safe && w->safe_shutdown) {
		log_info("second shutdown request: exiting now");
		evloop_break(&w->loop);
		return;
	}
	log_info(safe ? "safe shutdown: waiting for running transactions"
		      : "shutdown: waiting for clients to leave");
	w->shutting_down = true;
	w->safe_shutdown = w->safe_shutdown || safe;
	listen_close(w->listeners);
	w->listeners = NULL;
	worker_janitor(w);
}

static void on_left_etcd(void *arg)
{
	struct worker *w = arg;

	evloop_break(&w->loop);
}

void worker_exit(struct worker *w)
{
	if (w->exiting)
		return;
	w->exiting = true;
	log_info("all clients gone, exiting");
	/* The instance's registrations in etcd go now, not when their leases expire. */
	if (!w->resharding || !w->resharding->leave(w->resharding_arg, on_left_etcd, w))
		evloop_break(&w->loop);
}

bool worker_init(struct worker *w, struct config *cfg)
{
	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	pools_open(&w->pools, &(struct pools_lent){
				      .loop = &w->loop,
				      .pool_events = &client_pool_events,
				      .server_events = &client_server_events,
				      .topo = &w->topo,
				      .cfg = &w->cfg,
				      .dns = &w->dns,
				      .server_tls = &w->server_tls,
				      .shutting_down = &w->shutting_down,
			      });
	clients_init(&w->clients);
	w->clients.loop = &w->loop;
	w->clients.pools = &w->pools;
	w->clients.cfg = &w->cfg;
	w->clients.tls = &w->client_tls;
	w->clients.dns = &w->dns;
	w->clients.listeners = &w->listeners;
	w->clients.shutting_down = &w->shutting_down;
	w->clients.safe_shutdown = &w->safe_shutdown;
	w->clients.handed_over = &w->handed_over;
	if (!evloop_init(&w->loop, (uint32_t)cfg->pkt_buf))
		return false;
	worker_apply_loop_settings(w, cfg);
	w->start_time_us = clock_now_us();
	return true;
}

/*
 * The loop's buffer size and new sockets' TCP options from cfg (at start and on a change):
 * connections open already keep their buffers and options.
 */
static void worker_apply_loop_settings(struct worker *w, const struct config *cfg)
{
	struct evloop_tcp tcp;

	evloop_set_buf_size(&w->loop, (uint32_t)cfg->pkt_buf);
	worker_tcp_settings(cfg, &tcp);
	evloop_set_tcp(&w->loop, &tcp);
}

static void close_pool_clients(struct pool *p)
{
	struct list_node *clients[] = { &p->active_clients, &p->waiting_clients };
	struct list_node *n, *t;

	for (size_t i = 0; i < 2; i++)
		list_for_each_safe(n, t, clients[i])
			client_close(list_entry(n, struct client, node), NULL, "pgmux exits");
}

void worker_destroy(struct worker *w)
{
	struct list_node *n, *t;

	httpd_close(w->metrics_httpd);
	w->metrics_httpd = NULL;
	/* After a handover the socket is the new process's: takeover_close leaves its file. */
	takeover_close(w->takeover, true);
	w->takeover = NULL;
	evloop_timer_stop(&w->loop, &w->handoff_timer);
	takeover_clients_close(w->takeover_in);
	pool_servers_elsewhere_clear(&w->pools);
	w->takeover_in = NULL;
	list_for_each_safe(n, t, &w->pools.login_clients)
		client_close(list_entry(n, struct client, node), NULL, "pgmux exits");
	list_for_each_safe(n, t, &w->pools.all)
		close_pool_clients(list_entry(n, struct pool, node));
	pools_close_servers(&w->pools, "pgmux exits");
	clients_free(&w->clients);
	evloop_run_deferred(&w->loop);
	if (w->clients.console)
		w->clients.console->destroy(w->clients.console_arg);
	pools_free(&w->pools);
	listen_close(w->listeners);
	w->listeners = NULL;
	evloop_timer_stop(&w->loop, &w->janitor);
	topo_free_all(&w->topo, true);
	if (w->resharding)
		w->resharding->destroy(w->resharding_arg);
	dns_free(w->dns); /* no server waits for a lookup any more */
	w->dns = NULL;
	evloop_destroy(&w->loop);
	config_free(w->cfg);
	w->cfg = NULL;
	tls_ctx_free(w->client_tls);
	tls_ctx_free(w->server_tls);
	w->client_tls = w->server_tls = NULL;
}

/* Relays ev/dns.c's visit in plain values, so that the admin console needs no ev/ header. */
struct dns_visit {
	worker_dns_host_fn fn;
	void *arg;
};

static void visit_dns_host(void *arg, const struct dns_host *h)
{
	struct dns_visit *v = arg;

	v->fn(v->arg, h->name, h->addr, h->ttl);
}

void worker_for_each_dns_host(struct worker *w, worker_dns_host_fn fn, void *arg)
{
	struct dns_visit v = { .fn = fn, .arg = arg };

	dns_for_each_host(w->dns, visit_dns_host, &v);
}
