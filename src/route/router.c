/*
 * router: role and member choice for routed databases (see route/router.h).
 *
 * When in doubt, the primary: a read there costs a little, a write on a replica fails.
 */
#include "route/router.h"

#include "config/config.h"
#include "topo/topology.h"

enum route_want router_want(const struct route_result *r, enum route_hint session_hint, bool txn,
			    bool txn_read_only, enum route_hint txn_hint, bool *hinted)
{
	*hinted = false;
	if (txn) {
		/* An explicit transaction stays where its BEGIN said, or on the primary. */
		if (txn_hint == ROUTE_HINT_REPLICA || txn_hint == ROUTE_HINT_PRIMARY) {
			*hinted = true;
			return txn_hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
		}
		if (r->hint == ROUTE_HINT_REPLICA || r->hint == ROUTE_HINT_PRIMARY) {
			*hinted = true;
			return r->hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
		}
		if (session_hint == ROUTE_HINT_REPLICA || session_hint == ROUTE_HINT_PRIMARY) {
			*hinted = true;
			return session_hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
		}
		return txn_read_only ? WANT_REPLICA : WANT_PRIMARY;
	}
	switch (r->cls) {
	case ROUTE_READ:
	case ROUTE_EMPTY:
	case ROUTE_WRITE:
		break;
	case ROUTE_TXN_BEGIN:
		/* A BEGIN that shares its string with other statements: its transaction decides. */
		if (r->hint == ROUTE_HINT_REPLICA || r->hint == ROUTE_HINT_PRIMARY) {
			*hinted = true;
			return r->hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
		}
		return r->read_only_txn && r->statements == 1 ? WANT_REPLICA : WANT_PRIMARY;
	default:
		/* Transaction control, settings, session state: the primary. */
		return WANT_PRIMARY;
	}
	if (r->hint == ROUTE_HINT_REPLICA || r->hint == ROUTE_HINT_PRIMARY) {
		*hinted = true;
		return r->hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
	}
	if (session_hint == ROUTE_HINT_REPLICA || session_hint == ROUTE_HINT_PRIMARY) {
		*hinted = true;
		return session_hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
	}
	return r->cls == ROUTE_WRITE ? WANT_PRIMARY : WANT_REPLICA;
}

/* Weight of a member as a read candidate (the primary counts with read_from = any). */
static int read_weight(const struct member *m)
{
	return m->weight > 0 ? m->weight : 0;
}

/* xorshift32 on the cluster's own state: the router keeps no hidden globals. */
static uint32_t next_random(struct cluster *cl)
{
	uint32_t x = cl->random_state ? cl->random_state : 2463534242u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	cl->random_state = x;
	return x;
}

static int pick_weighted(struct cluster *cl, const int *cand, int n)
{
	int total = 0, k;

	for (int i = 0; i < n; i++)
		total += read_weight(&cl->members[cand[i]]);
	if (total <= 0)
		return cand[0];
	if (cl->entry->load_balance == LB_RANDOM)
		k = (int)(next_random(cl) % (unsigned)total);
	else
		k = (int)(cl->rr_next++ % (unsigned)total);
	for (int i = 0; i < n; i++) {
		k -= read_weight(&cl->members[cand[i]]);
		if (k < 0)
			return cand[i];
	}
	return cand[n - 1];
}

/* Fewest busy server connections per unit of weight. */
static int pick_least_connections(struct cluster *cl, const int *cand, int n)
{
	int best = cand[0];

	for (int i = 1; i < n; i++) {
		const struct member *a = &cl->members[cand[i]], *b = &cl->members[best];

		if ((long long)a->n_busy * read_weight(b) < (long long)b->n_busy * read_weight(a))
			best = cand[i];
	}
	return best;
}

/* The confirmed primary's index, or TARGET_WAIT_PRIMARY (none, or drained for a switchover). */
static int primary_or_wait(const struct cluster *cl)
{
	return cl->primary >= 0 && !topo_primary_draining(cl) ? cl->primary : TARGET_WAIT_PRIMARY;
}

int router_pick(struct cluster *cl, enum route_want want, uint64_t min_lsn, enum route_why *why)
{
	const struct cluster_entry *e = cl->entry;
	int cand[TOPO_MAX_MEMBERS], n = 0;
	bool stale_only = false;

	if (want == WANT_PRIMARY) {
		*why = ROUTE_WHY_WRITE;
		return primary_or_wait(cl);
	}
	if (e->read_from == READ_FROM_PRIMARY) {
		*why = ROUTE_WHY_READ_PRIMARY;
		return primary_or_wait(cl);
	}
	for (int i = 0; i < cl->n_members; i++) {
		const struct member *m = &cl->members[i];

		if (topo_replica_usable(m, min_lsn))
			cand[n++] = i;
		else if (min_lsn && topo_replica_usable(m, 0))
			stale_only = true;
	}
	if (e->read_from == READ_FROM_ANY && cl->primary >= 0 &&
	    read_weight(&cl->members[cl->primary]) > 0)
		cand[n++] = cl->primary;
	if (n == 0) {
		if (stale_only) {
			/* Replicas are up but behind this client's write: only the primary has it. */
			*why = ROUTE_WHY_READ_RYW;
			return primary_or_wait(cl);
		}
		if (e->read_fallback == FALLBACK_ERROR) {
			*why = ROUTE_WHY_READ_REFUSED;
			return TARGET_REFUSED;
		}
		*why = ROUTE_WHY_READ_FALLBACK;
		return primary_or_wait(cl);
	}
	n = e->load_balance == LB_LEAST_CONNECTIONS ? pick_least_connections(cl, cand, n)
						    : pick_weighted(cl, cand, n);
	*why = n == cl->primary ? ROUTE_WHY_READ_PRIMARY : ROUTE_WHY_READ_REPLICA;
	return n;
}

/* Can target still serve a unit of work that wants want? */
static bool still_serves(const struct cluster *cl, int target, enum route_want want)
{
	if (target == TARGET_WAIT_PRIMARY)
		return topo_primary_draining(cl);
	if (want == WANT_PRIMARY)
		return target == cl->primary;
	return target == cl->primary || topo_replica_usable(&cl->members[target], 0);
}

int router_reroute(struct cluster *cl, int target, enum route_want want, uint64_t min_lsn)
{
	enum route_why why;

	if (still_serves(cl, target, want))
		return target;
	target = router_pick(cl, want, min_lsn, &why);
	return target == TARGET_REFUSED ? primary_or_wait(cl) : target;
}
