/*
 * timeouts: the clients' timeouts, enforced at the worker's janitor ticks (worker/janitor.c):
 * startup and login, query wait (and the server's login error for clients that waited through
 * server_login_retry), primary_wait_timeout, query, idle transaction, client idle, and the
 * closing of clients at a safe shutdown.
 */
#include "client/timeouts.h"

#include "client/cancel.h"
#include "client/client.h"
#include "client/clients.h"
#include "client/route.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/pool.h"
#include "server/server.h"

static void check_waiting(struct clients *cs, struct pool *p, uint64_t now)
{
	struct list_node *n, *t;
	const struct config *cfg = clients_cfg(cs);
	char why[600];

	list_for_each_safe(n, t, &p->waiting_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_WAITING_LOGIN && pool_login_retry_exhausted(c))
			client_close(c, p->last_login_sqlstate, "%s", p->last_login_error);
		else if (pool_cluster_unusable(c, why, sizeof(why)))
			/* Every member fails its checks, for server_login_retry at least: say why now. */
			client_close(c, "08006", "%s", why);
		else if (c->state == CLIENT_WAITING && pool_login_retry_exhausted(c))
			client_fail_unit(c, p->last_login_sqlstate, "%s", p->last_login_error);
		else if (c->state == CLIENT_WAITING_LOGIN &&
			 clock_exceeded(now, c->connect_time_us, cfg->query_wait_timeout))
			client_close(c, "08P01",
				     "query_wait_timeout: no server connection available%s%s",
				     *p->last_login_error ? ": " : "", p->last_login_error);
		else if (c->state == CLIENT_WAITING && c->target == TARGET_WAIT_PRIMARY &&
			 clock_exceeded(now, c->wait_start_us,
					p->db->cluster->entry->primary_wait_timeout)) {
			p->db->routes.primary_wait_timeouts++;
			client_fail_unit(c, "57P03",
					 "no primary in cluster %s for %g s: writes cannot run now",
					 p->db->cluster->name,
					 p->db->cluster->entry->primary_wait_timeout);
		} else if (c->state == CLIENT_WAITING &&
			   clock_exceeded(now, c->wait_start_us, cfg->query_wait_timeout))
			client_close(c, "08P01",
				     "query_wait_timeout: no server connection available in time");
	}
}

static void check_active(struct clients *cs, struct pool *p, uint64_t now)
{
	struct list_node *n, *t;
	const struct config *cfg = clients_cfg(cs);

	list_for_each_safe(n, t, &p->active_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->server && c->query_running &&
		    clock_exceeded(now, c->query_start_us, cfg->query_timeout)) {
			cancel_server_query(c->cs, c->server);
			c->server->close_when_released = true;
			client_close(c, "57014", "query_timeout: query ran longer than %g s",
				     cfg->query_timeout);
		} else if (c->server && !c->query_running && c->tx_status != 'I' &&
			   clock_exceeded(now, c->request_time_us, cfg->idle_transaction_timeout)) {
			c->server->close_when_released = true;
			client_close(c, "25P03", "idle transaction timeout");
		} else if (client_fast_close_due(c)) {
			/* Marked while the client sat between transactions: nothing else would come. */
			client_fast_close(c);
		} else if (!c->server &&
			   clock_exceeded(now, c->request_time_us, cfg->client_idle_timeout)) {
			client_close(c, "08P01", "client_idle_timeout: client was idle too long");
		} else if (*cs->safe_shutdown && !c->query_running && c->tx_status == 'I' &&
			   c->pending_ready == 0) {
			client_close(c, "57P01", "pgmux is shutting down");
		} else if (*cs->safe_shutdown) {
			client_close_after_transaction(c);
		}
	}
}

void client_sweep_pool(struct clients *cs, struct pool *p, uint64_t now)
{
	check_waiting(cs, p, now);
	check_active(cs, p, now);
}

/*
 * No startup packet within client_startup_timeout: a client that says nothing must not hold its
 * slot for the whole client_login_timeout. Closed without an error message, as PostgreSQL does:
 * the client may be in the middle of a TLS handshake, where plain text would be noise.
 */
static void close_silent_client(struct client *c)
{
	if (clients_cfg(c->cs)->log_pooler_errors)
		client_log(LOG_LVL_INFO, c,
			   "closing: no startup packet within client_startup_timeout");
	client_close(c, NULL, "client_startup_timeout");
}

void client_sweep_logins(struct clients *cs, uint64_t now)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &cs->pools->login_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_LOGIN && c->conn.startup &&
		    clock_exceeded(now, c->connect_time_us,
				   clients_cfg(cs)->client_startup_timeout))
			close_silent_client(c);
		else if (c->state == CLIENT_LOGIN &&
			 clock_exceeded(now, c->connect_time_us,
					clients_cfg(cs)->client_login_timeout))
			client_close(c, "08P01", "client_login_timeout");
		else if (c->admin && *cs->safe_shutdown)
			client_close(c, "57P01", "pgmux is shutting down");
	}
}
