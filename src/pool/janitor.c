/*
 * janitor: the pool's part of the periodic sweep (worker/janitor.c runs it): server idle time,
 * lifetime and connect timeout, the servers of a process that handed its clients over, and
 * min_pool_size.
 */
#include <stdlib.h>

#include "core/clock.h"
#include "pool/pool.h"
#include "server/server.h"

static void check_servers(struct pool *p, uint64_t now)
{
	struct list_node *n, *t;
	const struct config *cfg = pool_cfg(p);
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
		if (*p->ps->shutting_down &&
		    (!pool_shares_servers(p) || (!p->n_active_clients && !p->n_waiting_clients)))
			server_close(s, "shutting down: no client left that could use it");
		else if (clock_exceeded(now, s->connect_time_us, cfg->server_lifetime) &&
			 total > min)
			server_close(s, "server_lifetime");
		else if (clock_exceeded(now, s->request_time_us, cfg->server_idle_timeout) &&
			 total > min)
			server_close(s, "server_idle_timeout");
	}
	list_for_each_safe(n, t, &p->login_servers) {
		struct server *s = list_entry(n, struct server, node);

		if (clock_exceeded(now, s->connect_time_us, cfg->server_connect_timeout)) {
			pool_server_login_failed(s, "08006", "server connect timeout");
			server_close(s, "server_connect_timeout");
		}
	}
}

void pool_sweep(struct pool *p, uint64_t now)
{
	check_servers(p, now);
	pool_launch_needed(p);
}
