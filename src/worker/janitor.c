/*
 * janitor: the periodic sweep of the worker's timer. Each module enforces its own timeouts
 * (client/timeouts.c: the clients'; pool/janitor.c: the servers' and min_pool_size); this file
 * runs them in order, gives up cancel requests PostgreSQL has not confirmed within
 * server_connect_timeout, resumes or holds accepting as client slots free or fill after a
 * reload, lets the admin console finish waiting commands (through w->console), and finishes a
 * shutdown. In check builds (PGMUX_CHECKS) each run ends with pool_check_worker(): the pools'
 * lists and counters must agree.
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

	client_sweep_logins(w, now);
	/* A reload may have changed max_client_conn. */
	admit_update_accepting(w);
	/* PostgreSQL answers a cancel at once; one stuck longer than a connect may take is lost. */
	cancel_expire(w, w->cfg->server_connect_timeout > 0 ? w->cfg->server_connect_timeout : 15);
	list_for_each_safe(n, t, &w->pools.all) {
		struct pool *p = list_entry(n, struct pool, node);

		client_sweep_pool(w, p, now);
		pool_sweep(p, now);
	}
	if (w->console)
		w->console->tick(w);
#if PGMUX_CHECKS
	/* Check builds: every list against its counter, every object against its list. */
	ASSERT(pool_check_all(&w->pools));
#endif
	if (w->shutting_down && w->n_clients == 0)
		worker_exit(w);
}
