/*
 * pool/pools: the pools' lifecycle as the worker sees it: opened with what the worker lends them,
 * their servers closed and everything freed at exit. Between the two, pool.c's verbs run them.
 *
 * The pools own what their servers share (the statement registry, struct server_env), so the
 * worker lends slots and never reaches a server itself.
 */
#include "pool/pool.h"

#include <openssl/crypto.h>
#include <stdlib.h>

#include "server/login.h"

void pools_open(struct pools *ps, const struct pools_lent *lent)
{
	pools_init(ps);
	pstmt_registry_init(&ps->pstmts);
	ps->servers = (struct server_env){
		.loop = lent->loop,
		.pstmts = &ps->pstmts,
		.events = lent->server_events,
		.tls = lent->server_tls,
		.cfg = lent->cfg,
		.dns = lent->dns,
	};
	ps->events = lent->pool_events;
	ps->topo = lent->topo;
	ps->cfg = lent->cfg;
	ps->shutting_down = lent->shutting_down;
}

void pools_close_servers(struct pools *ps, const char *why)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);
		struct list_node *lists[] = { &p->idle_servers, &p->active_servers,
					      &p->login_servers, &p->reset_servers };
		struct list_node *sn, *st;

		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			list_for_each_safe(sn, st, lists[i])
				server_close(list_entry(sn, struct server, node), why);
	}
}

static void free_user(struct pool_user *u)
{
	OPENSSL_cleanse(u->proven_password, sizeof(u->proven_password));
	OPENSSL_cleanse(u->scram_client_key, sizeof(u->scram_client_key));
	OPENSSL_cleanse(u->scram_server_key, sizeof(u->scram_server_key));
	OPENSSL_cleanse(u->queried_secret, sizeof(u->queried_secret));
	server_login_forget_user(u);
	free(u);
}

void pools_free(struct pools *ps)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);

		list_del(n);
		param_set_free(&p->defaults);
		free(p->latency.by_role);
		free(p);
	}
	list_for_each_safe(n, t, &ps->databases) {
		struct database *db = list_entry(n, struct database, node);

		list_del(n);
		free(db->shard_dbs);
		free(db);
	}
	list_for_each_safe(n, t, &ps->users) {
		list_del(n);
		free_user(list_entry(n, struct pool_user, node));
	}
	pstmt_registry_destroy(&ps->pstmts);
}
