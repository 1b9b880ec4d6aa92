/*
 * janitor: the periodic sweep of the worker's timer. Each module enforces its own timeouts
 * (client/timeouts.c: the clients'; pool/janitor.c: the servers' and min_pool_size); this file
 * runs them in order, gives up cancel requests PostgreSQL has not confirmed within
 * server_connect_timeout, resumes or holds accepting as client slots free or fill after a
 * reload, lets the admin console finish waiting commands (through struct console_ops), and
 * finishes a shutdown. In check builds (PGMUX_CHECKS) each run ends with pool_check_all(): the
 * pools' lists and counters must agree.
 */
#include "worker/worker.h"

#include "client/admit.h"
#include "client/cancel.h"
#include "client/timeouts.h"
#include "core/clock.h"
#include "core/log.h"
#include "pool/pool.h"

void worker_janitor(struct worker *w)
{
	uint64_t now = clock_now_us();
	struct list_node *n, *t;

	client_sweep_logins(&w->clients, now);
	/* A reload may have changed max_client_conn. */
	admit_update_accepting(&w->clients);
	/* PostgreSQL answers a cancel at once; one stuck longer than a connect may take is lost. */
	cancel_expire(&w->clients,
		      w->cfg->server_connect_timeout > 0 ? w->cfg->server_connect_timeout : 15);
	list_for_each_safe(n, t, &w->pools.all) {
		struct pool *p = list_entry(n, struct pool, node);

		client_sweep_pool(&w->clients, p, now);
		pool_sweep(p, now);
	}
	if (w->clients.console)
		w->clients.console->tick(w->clients.console_arg);
#if PGMUX_CHECKS
	/* Check builds: every list against its counter, every object against its list. */
	ASSERT(pool_check_all(&w->pools));
#endif
	if (w->shutting_down && w->clients.n == 0)
		worker_exit(w);
}
