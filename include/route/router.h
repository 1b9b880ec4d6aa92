/*
 * router: where a unit of work of a routed database goes — the role it needs (from the SQL's
 * classification, hints and the transaction it is in) and then the member of the cluster that
 * serves it (confirmed primary; a usable replica by load_balance and weights; read_from,
 * read_fallback and read_your_writes applied), and why: what the caller counts (SHOW ROUTES).
 */
#ifndef PGMUX_ROUTE_ROUTER_H
#define PGMUX_ROUTE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "route/classify.h"

struct cluster;

enum route_want {
	WANT_PRIMARY,
	WANT_REPLICA,
};

/* Why router_pick chose its target. */
enum route_why {
	ROUTE_WHY_WRITE,         /* the unit needs the primary */
	ROUTE_WHY_READ_REPLICA,  /* a replica serves the read */
	ROUTE_WHY_READ_PRIMARY,  /* read_from sent the read to the primary (primary, or any) */
	ROUTE_WHY_READ_RYW,      /* no replica has replayed the client's last write yet */
	ROUTE_WHY_READ_FALLBACK, /* no replica usable: read_fallback = primary */
	ROUTE_WHY_READ_REFUSED,  /* no replica usable: read_fallback = error */
};

/*
 * The role a unit of work needs. r: the classification of its first statement. session_hint:
 * the client's SET pgmux.route (ROUTE_HINT_NONE / AUTO = classify). txn: the unit continues an
 * explicit transaction whose BEGIN was deferred; txn_read_only: that BEGIN said READ ONLY;
 * txn_hint: the hint on that BEGIN. *hinted tells whether a hint decided. Pure.
 */
enum route_want router_want(const struct route_result *r, enum route_hint session_hint, bool txn,
			    bool txn_read_only, enum route_hint txn_hint, bool *hinted);

/*
 * The member index that serves want now, TARGET_WAIT_PRIMARY or TARGET_REFUSED (topo/topology.h);
 * *why says which rule decided. min_lsn: with read_your_writes, the client's last write (0 =
 * none).
 */
int router_pick(struct cluster *cl, enum route_want want, uint64_t min_lsn, enum route_why *why);

/*
 * A unit of work waiting for target (a member, or TARGET_WAIT_PRIMARY) after its cluster changed:
 * where it waits now. target itself while it can still serve want (a primary still primary, a
 * replica still usable, no primary to wait for yet); else a new pick, the primary or
 * TARGET_WAIT_PRIMARY rather than TARGET_REFUSED. Re-routing a waiter is no new decision: there
 * is no why to count.
 */
int router_reroute(struct cluster *cl, int target, enum route_want want, uint64_t min_lsn);

#endif
