/* link: src/route/router.c */
/*
 * Unit tests for the router's policy: the role a unit of work needs (classification, hints,
 * transaction state) and the member that serves it (weights, balancing modes, read_from,
 * read_fallback, read_your_writes, no primary), and where a waiting unit goes when its cluster
 * changes. Whether a member is usable is the topology's business; here it is this file's simple
 * stand-in, so the policy is tested alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "route/router.h"
#include "topo/topology.h"

/* Stand-ins for topology.c: usable = a replica with weight, replayed far enough. */
bool topo_replica_usable(const struct member *m, uint64_t min_lsn)
{
	return m->role == ROLE_REPLICA && m->weight > 0 && m->lsn >= min_lsn;
}

static bool draining;

bool topo_primary_draining(const struct cluster *cl)
{
	(void)cl;
	return draining;
}

static struct cluster_entry entry;
static struct cluster cl;

/* Member 0 the primary, 1 and 2 replicas of weight 1, all replayed to 100. */
static int setup(void **state)
{
	(void)state;
	memset(&entry, 0, sizeof(entry));
	memset(&cl, 0, sizeof(cl));
	draining = false;
	entry.read_from = READ_FROM_REPLICAS;
	entry.load_balance = LB_ROUND_ROBIN;
	entry.read_fallback = FALLBACK_PRIMARY;
	cl.entry = &entry;
	cl.n_members = 3;
	cl.primary = 0;
	for (int i = 0; i < 3; i++) {
		cl.members[i].idx = i;
		cl.members[i].cl = &cl;
		cl.members[i].role = i == 0 ? ROLE_PRIMARY : ROLE_REPLICA;
		cl.members[i].weight = 1;
		cl.members[i].lsn = 100;
	}
	return 0;
}

/* n reads picked: where they went in counts[member], why in whys[enum route_why]. */
static void count_picks(int n, uint64_t min_lsn, int *counts, int *whys)
{
	for (int i = 0; i < n; i++) {
		enum route_why why;
		int t = router_pick(&cl, WANT_REPLICA, min_lsn, &why);

		assert_true(t >= 0 && t < 3);
		counts[t]++;
		whys[why]++;
	}
}

static void test_want(void **state)
{
	static const struct {
		enum route_class cls;
		enum route_hint hint, session, txn_hint;
		bool read_only, txn, txn_read_only;
		enum route_want want;
		bool hinted;
	} cases[] = {
		{ ROUTE_READ, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false,
		  false, WANT_REPLICA, false },
		{ ROUTE_EMPTY, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false,
		  false, WANT_REPLICA, false },
		{ ROUTE_WRITE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false,
		  false, WANT_PRIMARY, false },
		{ ROUTE_SET, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false, false,
		  WANT_PRIMARY, false },
		{ ROUTE_SESSION_PIN, ROUTE_HINT_REPLICA, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false,
		  false, false, WANT_PRIMARY, false },
		{ ROUTE_TXN_END, ROUTE_HINT_NONE, ROUTE_HINT_REPLICA, ROUTE_HINT_NONE, false, false,
		  false, WANT_PRIMARY, false },
		/* hints */
		{ ROUTE_READ, ROUTE_HINT_PRIMARY, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false,
		  false, WANT_PRIMARY, true },
		{ ROUTE_WRITE, ROUTE_HINT_REPLICA, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false,
		  false, WANT_REPLICA, true },
		{ ROUTE_READ, ROUTE_HINT_NONE, ROUTE_HINT_PRIMARY, ROUTE_HINT_NONE, false, false,
		  false, WANT_PRIMARY, true },
		{ ROUTE_READ, ROUTE_HINT_NONE, ROUTE_HINT_AUTO, ROUTE_HINT_NONE, false, false,
		  false, WANT_REPLICA, false },
		/* the comment beats the session setting */
		{ ROUTE_READ, ROUTE_HINT_REPLICA, ROUTE_HINT_PRIMARY, ROUTE_HINT_NONE, false, false,
		  false, WANT_REPLICA, true },
		/* a BEGIN in a string with other statements */
		{ ROUTE_TXN_BEGIN, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, true, false,
		  false, WANT_REPLICA, false },
		{ ROUTE_TXN_BEGIN, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, false,
		  false, WANT_PRIMARY, false },
		/* inside a deferred transaction: the transaction decides, not the statement */
		{ ROUTE_READ, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, true, false,
		  WANT_PRIMARY, false },
		{ ROUTE_WRITE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, true, true,
		  WANT_REPLICA, false },
		{ ROUTE_READ, ROUTE_HINT_NONE, ROUTE_HINT_NONE, ROUTE_HINT_REPLICA, false, true,
		  false, WANT_REPLICA, true },
		{ ROUTE_READ, ROUTE_HINT_REPLICA, ROUTE_HINT_NONE, ROUTE_HINT_NONE, false, true,
		  false, WANT_REPLICA, true },
		{ ROUTE_READ, ROUTE_HINT_NONE, ROUTE_HINT_REPLICA, ROUTE_HINT_NONE, false, true,
		  false, WANT_REPLICA, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct route_result r = { .cls = cases[i].cls,
					  .hint = cases[i].hint,
					  .read_only_txn = cases[i].read_only,
					  .statements = 1 };
		bool hinted;
		enum route_want w = router_want(&r, cases[i].session, cases[i].txn,
						cases[i].txn_read_only, cases[i].txn_hint, &hinted);

		if (w != cases[i].want || hinted != cases[i].hinted)
			fail_msg("case %zu: want %d hinted %d, expected %d %d", i, w, hinted,
				 cases[i].want, cases[i].hinted);
	}
}

static void test_writes_go_to_the_primary(void **state)
{
	enum route_why why;

	(void)state;
	assert_int_equal(router_pick(&cl, WANT_PRIMARY, 0, &why), 0);
	assert_int_equal(why, ROUTE_WHY_WRITE);
	cl.primary = -1;
	assert_int_equal(router_pick(&cl, WANT_PRIMARY, 0, &why), TARGET_WAIT_PRIMARY);
	assert_int_equal(why, ROUTE_WHY_WRITE);
	cl.primary = 0;
	draining = true; /* a scheduled switchover is near */
	assert_int_equal(router_pick(&cl, WANT_PRIMARY, 0, &why), TARGET_WAIT_PRIMARY);
}

static void test_round_robin_with_weights(void **state)
{
	int counts[3] = { 0 }, whys[ROUTE_WHY_READ_REFUSED + 1] = { 0 };

	(void)state;
	cl.members[1].weight = 3;
	count_picks(40, 0, counts, whys);
	assert_int_equal(counts[0], 0);
	assert_int_equal(counts[1], 30);
	assert_int_equal(counts[2], 10);
	assert_int_equal(whys[ROUTE_WHY_READ_REPLICA], 40);
}

static void test_random_and_least_connections(void **state)
{
	int counts[3] = { 0 }, whys[ROUTE_WHY_READ_REFUSED + 1] = { 0 };
	enum route_why why;

	(void)state;
	entry.load_balance = LB_RANDOM;
	count_picks(200, 0, counts, whys);
	assert_true(counts[1] > 50 && counts[2] > 50 && counts[0] == 0);
	entry.load_balance = LB_LEAST_CONNECTIONS;
	cl.members[1].n_busy = 3;
	cl.members[2].n_busy = 1;
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 0, &why), 2);
	/* per unit of weight: 3 busy on weight 4 is less loaded than 1 on weight 1 */
	cl.members[1].weight = 4;
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 0, &why), 1);
}

static void test_read_from(void **state)
{
	int counts[3] = { 0 }, whys[ROUTE_WHY_READ_REFUSED + 1] = { 0 };
	enum route_why why;

	(void)state;
	entry.read_from = READ_FROM_PRIMARY;
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 0, &why), 0);
	assert_int_equal(why, ROUTE_WHY_READ_PRIMARY);
	entry.read_from = READ_FROM_ANY;
	count_picks(30, 0, counts, whys);
	assert_int_equal(counts[0], 10);
	assert_int_equal(counts[1], 10);
	assert_int_equal(counts[2], 10);
	/* the primary's share of the reads is counted as read_from's, the rest as replicas' */
	assert_int_equal(whys[ROUTE_WHY_READ_PRIMARY], 10);
	assert_int_equal(whys[ROUTE_WHY_READ_REPLICA], 20);
}

static void test_fallback(void **state)
{
	enum route_why why;

	(void)state;
	cl.members[1].role = cl.members[2].role = ROLE_UNKNOWN;
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 0, &why), 0);
	assert_int_equal(why, ROUTE_WHY_READ_FALLBACK);
	entry.read_fallback = FALLBACK_ERROR;
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 0, &why), TARGET_REFUSED);
	assert_int_equal(why, ROUTE_WHY_READ_REFUSED);
}

static void test_read_your_writes(void **state)
{
	enum route_why why;

	(void)state;
	/* nobody has replayed 150 yet: the primary has the client's write */
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 150, &why), 0);
	assert_int_equal(why, ROUTE_WHY_READ_RYW);
	/* one replica has: it alone serves */
	cl.members[2].lsn = 160;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(router_pick(&cl, WANT_REPLICA, 150, &why), 2);
		assert_int_equal(why, ROUTE_WHY_READ_REPLICA);
	}
	/* even with read_fallback = error, a client that wrote can read its write */
	entry.read_fallback = FALLBACK_ERROR;
	cl.members[2].lsn = 100;
	assert_int_equal(router_pick(&cl, WANT_REPLICA, 150, &why), 0);
	assert_int_equal(why, ROUTE_WHY_READ_RYW);
}

static void test_reroute(void **state)
{
	(void)state;
	/* a member that still serves keeps its waiters */
	assert_int_equal(router_reroute(&cl, 1, WANT_REPLICA, 0), 1);
	assert_int_equal(router_reroute(&cl, 0, WANT_PRIMARY, 0), 0);
	/* a replica gone: the other replica */
	cl.members[1].role = ROLE_UNKNOWN;
	assert_int_equal(router_reroute(&cl, 1, WANT_REPLICA, 0), 2);
	/* a new primary: writes follow it */
	cl.members[0].role = ROLE_UNKNOWN;
	cl.members[2].role = ROLE_PRIMARY;
	cl.primary = 2;
	assert_int_equal(router_reroute(&cl, 0, WANT_PRIMARY, 0), 2);
	/* no replica left and read_fallback = error: the primary rather than a refusal */
	entry.read_fallback = FALLBACK_ERROR;
	assert_int_equal(router_reroute(&cl, 1, WANT_REPLICA, 0), 2);
	/* waiting for a primary: still while a switchover drains it, then the primary */
	draining = true;
	assert_int_equal(router_reroute(&cl, TARGET_WAIT_PRIMARY, WANT_PRIMARY, 0),
			 TARGET_WAIT_PRIMARY);
	draining = false;
	assert_int_equal(router_reroute(&cl, TARGET_WAIT_PRIMARY, WANT_PRIMARY, 0), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_want),
		cmocka_unit_test_setup(test_writes_go_to_the_primary, setup),
		cmocka_unit_test_setup(test_round_robin_with_weights, setup),
		cmocka_unit_test_setup(test_random_and_least_connections, setup),
		cmocka_unit_test_setup(test_read_from, setup),
		cmocka_unit_test_setup(test_fallback, setup),
		cmocka_unit_test_setup(test_read_your_writes, setup),
		cmocka_unit_test_setup(test_reroute, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
