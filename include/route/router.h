/*
 * router: where a unit of work of a routed database goes — the role it needs (from the SQL's
 * classification, hints and the transaction it is in) and then the member of the cluster that
 * serves it (confirmed primary; a usable replica by load_balance and weights; read_from,
 * read_fallback and read_your_writes applied). Every decision is counted in route_stats.
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

/* Counted per database; SHOW ROUTES prints them. */
struct route_stats {
	uint64_t reads_replica;  /* reads a replica served */
	uint64_t reads_primary;  /* reads sent to the primary by read_from (primary or any) */
	uint64_t reads_fallback; /* no replica usable: read_fallback = primary */
	uint64_t reads_ryw;      /* no replica had replayed the client's last write yet */
	uint64_t reads_refused;  /* no replica usable: read_fallback = error */
	uint64_t writes;         /* units that needed the primary */
	uint64_t hinted;         /* units whose role a hint chose */
	uint64_t primary_waits;  /* units that waited for a confirmed primary */
	uint64_t primary_wait_timeouts;
};

/* The target a client waits for when its cluster has no confirmed primary. */
#define TARGET_WAIT_PRIMARY (-1)
/* No member may serve it: a read with read_fallback = error and no usable replica. */
#define TARGET_REFUSED (-2)

/*
 * The role a unit of work needs. r: the classification of its first statement. session_hint:
 * the client's SET pgmux.route (ROUTE_HINT_NONE / AUTO = classify). txn: the unit continues an
 * explicit transaction whose BEGIN was deferred; txn_read_only: that BEGIN said READ ONLY;
 * txn_hint: the hint on that BEGIN. *hinted tells whether a hint decided. Pure.
 */
enum route_want router_want(const struct route_result *r, enum route_hint session_hint, bool txn,
			    bool txn_read_only, enum route_hint txn_hint, bool *hinted);

/*
 * The member index that serves want now, TARGET_WAIT_PRIMARY or TARGET_REFUSED. min_lsn: with
 * read_your_writes, the client's last write (0 = none). Counts the decision in st when count.
 */
int router_pick(struct cluster *cl, enum route_want want, uint64_t min_lsn, struct route_stats *st,
		bool count);

/*
 * A unit of work waiting for target (a member, or TARGET_WAIT_PRIMARY) after its cluster changed:
 * where it waits now. target itself while it can still serve want (a primary still primary, a
 * replica still usable, no primary to wait for yet); else a new pick (not counted: re-routing a
 * waiter is no new decision), the primary or TARGET_WAIT_PRIMARY rather than TARGET_REFUSED.
 */
int router_reroute(struct cluster *cl, int target, enum route_want want, uint64_t min_lsn,
		   struct route_stats *st);

#endif
