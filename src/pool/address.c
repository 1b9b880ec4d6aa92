/*
 * address: where a pool's servers connect (see pool/address.h).
 */
#include "pool/address.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "pool/pool.h"
#include "server/server.h"
#include "topo/topology.h"

/*
 * The idx-th host (from 0) of a comma-separated list into buf, spaces trimmed; returns how many
 * hosts the list has (at least 1: an empty list is one empty host).
 */
static int host_at(const char *list, int idx, char *buf, size_t len)
{
	int n = 0;

	*buf = '\0';
	for (const char *p = list;; n++) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);

		if (n == idx) {
			while (l && *p == ' ')
				p++, l--;
			while (l && p[l - 1] == ' ')
				l--;
			snprintf(buf, len, "%.*s", (int)l, p);
		}
		if (!end)
			return n + 1;
		p = end + 1;
	}
}

void pool_choose_address(struct server *s)
{
	struct database *db = s->pool->db;
	const struct db_entry *e = db->entry;
	const char *list = e && *e->host ? e->host : "127.0.0.1";
	int n;

	if (db->cluster) {
		const struct member *m = &db->cluster->members[s->member];

		snprintf(s->host, sizeof(s->host), "%s", m->host);
		s->port = m->port;
		s->primary_epoch = m->primary_epoch;
		return;
	}
	s->port = e && e->port > 0 ? e->port : 5432;
	n = host_at(list, 0, s->host, sizeof(s->host));
	s->host_idx = db->next_host % n;
	host_at(list, s->host_idx, s->host, sizeof(s->host));
	if (!e || e->load_balance_hosts == HOST_BALANCE_ROUND_ROBIN)
		db->next_host = s->host_idx + 1;
}

bool pool_server_host_failed(struct server *s)
{
	struct database *db = s->pool->db;
	char unused[2];

	if (db->cluster)
		return false;
	if (db->next_host == s->host_idx)
		db->next_host = s->host_idx + 1;
	db->hosts_failed++;
	return db->hosts_failed <
	       host_at(db->entry ? db->entry->host : "", 0, unused, sizeof(unused));
}

/* Is o, another server of s's host (same member or host of the list), on an older address? */
static bool on_old_address(const struct server *o, const struct server *s)
{
	return o != s && o->member == s->member && o->host_idx == s->host_idx && o->salen &&
	       !server_same_address(o, s);
}

void pool_server_address_known(struct server *s)
{
	struct list_node *pn, *pt, *n, *t;

	list_for_each_safe(pn, pt, &s->pool->ps->all) {
		struct pool *p = list_entry(pn, struct pool, node);
		struct list_node *busy[] = { &p->active_servers, &p->login_servers,
					     &p->reset_servers };

		if (p->db != s->pool->db)
			continue;
		list_for_each_safe(n, t, &p->idle_servers) {
			struct server *o = list_entry(n, struct server, node);

			if (on_old_address(o, s))
				server_close(o, "server address changed");
		}
		for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++)
			list_for_each_safe(n, t, busy[i]) {
				struct server *o = list_entry(n, struct server, node);

				if (on_old_address(o, s) && !o->close_when_released) {
					server_log(LOG_LVL_INFO, o,
						   "server address changed: closing when released");
					o->close_when_released = true;
				}
			}
	}
}
