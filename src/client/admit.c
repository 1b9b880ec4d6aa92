/*
 * client/admit: which client connections pgmux holds.
 *
 * Every accepted socket counts toward max_client_conn from accept, whether or not it has said
 * anything yet: each holds a descriptor and memory, and the descriptor budget main.c checks at
 * startup (max_client_conn plus the servers) must stay true. Not counting silent connections
 * would only move the problem to a second limit that silent connections can fill. What keeps
 * silent or slow connections from holding the slots is client_startup_timeout (they are cut
 * after a few seconds), max_client_conn_per_addr (one source cannot take them all), and
 * CLIENT_ADMIN_RESERVE slots that only the admin console's admins may use, so that operators can
 * look at a full pgmux.
 *
 * When every slot, the reserve included, is taken, accepting is put on hold: newcomers wait in
 * the kernel's backlog instead of being accepted, held and refused; accepting resumes as soon as
 * a slot frees.
 *
 * Invariant: each TCP client is counted once in the entry of its source address (c->addr_slot)
 * from admit_accepted() to admit_released(); an entry is freed when its count reaches zero, so
 * the table holds at most cs->n entries.
 */
#include "client/admit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/clients.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "ev/listen.h"

struct client_addr {
	struct client_addr *next;
	int n;         /* connections from this address */
	char host[64]; /* c->addr without its port */
};

/* How often at most the log says that accepting is on hold. */
#define FULL_LOG_INTERVAL_US (10 * 1000000ULL)

static int hard_limit(const struct clients *cs)
{
	return clients_cfg(cs)->max_client_conn + CLIENT_ADMIN_RESERVE;
}

void admit_update_accepting(struct clients *cs)
{
	bool full = cs->n >= hard_limit(cs);

	uint64_t now;

	if (!*cs->listeners || !listen_hold(*cs->listeners, full))
		return;
	if (!full) {
		log_debug("a client slot is free: accepting again");
		return;
	}
	/* Under a flood the hold comes and goes with every slot: say so now and then, not each time. */
	now = clock_now_us();
	if (cs->accept_hold_logged_us && now - cs->accept_hold_logged_us < FULL_LOG_INTERVAL_US)
		return;
	cs->accept_hold_logged_us = now;
	log_warning(
		"%d client connections (max_client_conn %d + %d for admins): not accepting until "
		"one closes",
		cs->n, clients_cfg(cs)->max_client_conn, CLIENT_ADMIN_RESERVE);
}

/* The source address of a TCP client, "ip" or "[ipv6]", into host. */
static void host_of(const struct client *c, char host[64])
{
	const char *colon = strrchr(c->addr, ':');
	size_t n = colon ? (size_t)(colon - c->addr) : strlen(c->addr);

	if (n > 63)
		n = 63;
	memcpy(host, c->addr, n);
	host[n] = '\0';
}

/*
 * FNV-1a. Unkeyed: a chain is never longer than the connections held (entries go with their last
 * connection), so crafted addresses cost no more than a scan of the clients would.
 */
static unsigned bucket_of(const char *host)
{
	uint32_t h = 2166136261u;

	for (const char *p = host; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % CLIENT_ADDR_BUCKETS;
}

/* The entry of host, made (with n = 0) if there is none; NULL when out of memory. */
static struct client_addr *addr_entry(struct clients *cs, const char *host)
{
	struct client_addr **head = &cs->addrs[bucket_of(host)], *e;

	for (e = *head; e; e = e->next)
		if (strcmp(e->host, host) == 0)
			return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->host, sizeof(e->host), "%s", host);
	e->next = *head;
	*head = e;
	return e;
}

static void addr_entry_drop(struct clients *cs, struct client_addr *e)
{
	struct client_addr **pp = &cs->addrs[bucket_of(e->host)];

	if (--e->n > 0)
		return;
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	free(e);
}

bool admit_accepted(struct client *c)
{
	struct clients *cs = c->cs;
	int limit = clients_cfg(cs)->max_client_conn_per_addr;
	char host[64];
	struct client_addr *e;

	admit_update_accepting(cs);
	if (c->conn.is_unix || limit <= 0)
		return true;
	host_of(c, host);
	/* Out of memory: the connection is not turned away for pgmux's own trouble. */
	if (!(e = addr_entry(cs, host)))
		return true;
	e->n++;
	c->addr_slot = e;
	return e->n <= limit;
}

void admit_released(struct client *c)
{
	if (c->addr_slot) {
		addr_entry_drop(c->cs, c->addr_slot);
		c->addr_slot = NULL;
	}
	admit_update_accepting(c->cs);
}

bool admit_login(const struct client *c, bool admin)
{
	const struct clients *cs = c->cs;

	return cs->n <= clients_cfg(cs)->max_client_conn || (admin && cs->n <= hard_limit(cs));
}
