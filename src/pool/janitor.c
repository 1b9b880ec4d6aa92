/*
 * janitor: the periodic sweep that enforces every timeout (startup, login, query wait, idle
 * transaction, query, client idle, server idle/lifetime/connect), passes the server's error to
 * clients that waited through failed server logins for server_login_retry, keeps min_pool_size,
 * retries server logins after server_login_retry, gives up cancel requests PostgreSQL has not
 * confirmed within server_connect_timeout, lets the admin console finish waiting commands
 * (through w->console), resumes or holds accepting as client slots free or fill after a reload,
 * and finishes a safe shutdown. In check builds (PGMUX_CHECKS) each run ends with
 * pool_check_worker(): the pools' lists and counters must agree.
 */
#include <stdlib.h>

#include "client/admit.h"
#include "client/route.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/pool.h"
#include "worker/worker.h"

static bool exceeded(uint64_t now, uint64_t since, double timeout)
{
	return timeout > 0 && since && now > since && now - since >= (uint64_t)(timeout * 1e6);
}

static void check_waiting(struct pool *p, uint64_t now)
{
	struct list_node *n, *t;
	const struct config *cfg = p->w->cfg;
	char why[600];

	list_for_each_safe(n, t, &p->waiting_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_WAITING_LOGIN && pool_login_retry_exhausted(c))
			client_close(c, p->last_login_sqlstate, "%s", p->last_login_error);
		else if (c->state == CLIENT_WAITING_LOGIN && p->db->cluster &&
			 topo_cluster_unusable(p->db->cluster, c->wait_start_us,
					       cfg->server_login_retry, why, sizeof(why)))
			/* Every member fails its checks, for server_login_retry at least: say why now. */
			client_close(c, "08006", "%s", why);
		else if (c->state == CLIENT_WAITING && pool_login_retry_exhausted(c))
			client_fail_unit(c, p->last_login_sqlstate, "%s", p->last_login_error);
		else if (c->state == CLIENT_WAITING_LOGIN &&
			 exceeded(now, c->connect_time_us, cfg->query_wait_timeout))
			client_close(c, "08P01",
				     "query_wait_timeout: no server connection available%s%s",
				     *p->last_login_error ? ": " : "", p->last_login_error);
		else if (c->state == CLIENT_WAITING && c->target == TARGET_WAIT_PRIMARY &&
			 exceeded(now, c->wait_start_us,
				  p->db->cluster->entry->primary_wait_timeout)) {
			p->db->routes.primary_wait_timeouts++;
			client_fail_unit(c, "57P03",
					 "no primary in cluster %s for %g s: writes cannot run now",
					 p->db->cluster->name,
					 p->db->cluster->entry->primary_wait_timeout);
		} else if (c->state == CLIENT_WAITING &&
			   exceeded(now, c->wait_start_us, cfg->query_wait_timeout))
			client_close(c, "08P01",
				     "query_wait_timeout: no server connection available in time");
	}
}

static void check_active(struct pool *p, uint64_t now)
{
	struct list_node *n, *t;
	const struct config *cfg = p->w->cfg;

	list_for_each_safe(n, t, &p->active_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->server && c->query_running &&
		    exceeded(now, c->query_start_us, cfg->query_timeout)) {
			server_cancel_query(c->server);
			c->server->close_when_released = true;
			client_close(c, "57014", "query_timeout: query ran longer than %g s",
				     cfg->query_timeout);
		} else if (c->server && !c->query_running && c->tx_status != 'I' &&
			   exceeded(now, c->request_time_us, cfg->idle_transaction_timeout)) {
			c->server->close_when_released = true;
			client_close(c, "25P03", "idle transaction timeout");
		} else if (client_fast_close_due(c)) {
			/* Marked while the client sat between transactions: nothing else would come. */
			client_fast_close(c);
		} else if (!c->server &&
			   exceeded(now, c->request_time_us, cfg->client_idle_timeout)) {
			client_close(c, "08P01", "client_idle_timeout: client was idle too long");
		} else if (p->w->safe_shutdown && !c->query_running && c->tx_status == 'I' &&
			   c->pending_ready == 0) {
			client_close(c, "57P01", "pgmux is shutting down");
		} else if (p->w->safe_shutdown) {
			client_close_after_transaction(c);
		}
	}
}

static void check_servers(struct pool *p, uint64_t now)
{
	struct list_node *n, *t;
	const struct config *cfg = p->w->cfg;
	int min = pool_min_size(p);

	list_for_each_safe(n, t, &p->idle_servers) {
		struct server *s = list_entry(n, struct server, node);
		int total = p->nodes[s->member].n_servers;

		/*
		 * Shutting down (after a takeover: its clients went to the new process), no new
		 * client will come: an idle server is of use only to a pool that shares servers
		 * among clients it still has. The others close, so that the new process's pools
		 * grow as this one's shrink (it counts ours against max_db_connections).
		 */
		if (p->w->shutting_down &&
		    (!pool_shares_servers(p) || (!p->n_active_clients && !p->n_waiting_clients)))
			server_close(s, "shutting down: no client left that could use it");
		else if (exceeded(now, s->connect_time_us, cfg->server_lifetime) && total > min)
			server_close(s, "server_lifetime");
		else if (exceeded(now, s->request_time_us, cfg->server_idle_timeout) && total > min)
			server_close(s, "server_idle_timeout");
	}
	list_for_each_safe(n, t, &p->login_servers) {
		struct server *s = list_entry(n, struct server, node);

		if (exceeded(now, s->connect_time_us, cfg->server_connect_timeout)) {
			pool_server_login_failed(s, "08006", "server connect timeout");
			server_close(s, "server_connect_timeout");
		}
	}
}

/*
 * No startup packet within client_startup_timeout: a client that says nothing must not hold its
 * slot for the whole client_login_timeout. Closed without an error message, as PostgreSQL does:
 * the client may be in the middle of a TLS handshake, where plain text would be noise.
 */
static void close_silent_client(struct client *c)
{
	if (c->w->cfg->log_pooler_errors)
		client_log(LOG_LVL_INFO, c,
			   "closing: no startup packet within client_startup_timeout");
	client_close(c, NULL, "client_startup_timeout");
}

static void check_login_clients(struct worker *w, uint64_t now)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &w->login_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_LOGIN && c->conn.startup &&
		    exceeded(now, c->connect_time_us, w->cfg->client_startup_timeout))
			close_silent_client(c);
		else if (c->state == CLIENT_LOGIN &&
			 exceeded(now, c->connect_time_us, w->cfg->client_login_timeout))
			client_close(c, "08P01", "client_login_timeout");
		else if (c->admin && w->safe_shutdown)
			client_close(c, "57P01", "pgmux is shutting down");
	}
}

void pool_janitor(struct worker *w)
{
	uint64_t now = clock_now_us();
	struct list_node *n, *t;

	check_login_clients(w, now);
	/* A reload may have changed max_client_conn. */
	admit_update_accepting(w);
	/* PostgreSQL answers a cancel at once; one stuck longer than a connect may take is lost. */
	cancel_expire(w, w->cfg->server_connect_timeout > 0 ? w->cfg->server_connect_timeout : 15);
	list_for_each_safe(n, t, &w->pools) {
		struct pool *p = list_entry(n, struct pool, node);

		check_waiting(p, now);
		check_active(p, now);
		check_servers(p, now);
		pool_launch_needed(p);
	}
	if (w->console)
		w->console->tick(w);
#if PGMUX_CHECKS
	/* Check builds: every list against its counter, every object against its list. */
	ASSERT(pool_check_worker(w));
#endif
	if (w->shutting_down && w->n_clients == 0)
		worker_exit(w);
}
