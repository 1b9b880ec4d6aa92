/*
 * Unit tests for topo/handover: which primary changes count and as what kind (a demoted old
 * primary, one lost, one not seen within the window, a scheduled switchover, a change that ends
 * another still pending), the write pause each caused (from the loss, from the start of a drain,
 * not from a drain called off), pauses that are no change (restart in place), and the ring of
 * recent pauses.
 */
/* link: src/topo/handover.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "topo/handover.h"

#define MS 1000ULL
#define S 1000000ULL

enum { OTHER = HANDOVER_OLD_OTHER, REPLICA = HANDOVER_OLD_REPLICA, GONE = HANDOVER_OLD_GONE };

/* One look at the cluster; the steps of a scenario, and what each must decide. */
struct step {
	uint64_t at_us;
	const char *primary; /* NULL: no confirmed primary */
	int old;             /* the state of handover_subject() */
	bool draining;
	uint64_t drain_since_us;
	const char *scheduled_from; /* NULL: nothing scheduled */
	int decided;                /* changes decided in this step */
	const char *kind;           /* of the last one decided ("" none) */
	const char *from, *to;
	uint64_t pause_us;
};

static void run(const struct step *steps, size_t n, struct handover *h)
{
	handover_init(h);
	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		struct handover_view v = {
			.primary = s->primary,
			.draining = s->draining,
			.drain_since_us = s->drain_since_us,
			.scheduled = s->scheduled_from != NULL,
			.scheduled_from = s->scheduled_from,
			.old = (enum handover_old)s->old,
		};
		struct handover_change out[2];
		int got = handover_step(h, &v, s->at_us, out);

		assert_int_equal(got, s->decided);
		if (got == 0)
			continue;
		assert_string_equal(handover_kind_name(out[got - 1].kind), s->kind);
		assert_string_equal(out[got - 1].from, s->from);
		assert_string_equal(out[got - 1].to, s->to);
		assert_int_equal(out[got - 1].pause_us, s->pause_us);
	}
}

#define RUN(steps, h) run(steps, sizeof(steps) / sizeof(steps[0]), h)

static void test_first_primary_and_restart_in_place_are_no_change(void **state)
{
	static const struct step steps[] = {
		{ .at_us = 0, .primary = NULL },
		{ .at_us = 1 * S, .primary = "pg1" },
		{ .at_us = 2 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 5 * S, .primary = "pg1", .old = OTHER },
		{ .at_us = 6 * S, .primary = "pg1", .old = OTHER },
	};
	struct handover h;

	RUN(steps, &h);
	assert_int_equal(handover_count(&h), 0);
	assert_string_equal(h.last, "pg1");
	assert_false(h.stopped);
	assert_string_equal(handover_subject(&h), "pg1");
}

/* Patroni's switchover: the old primary is down when the new one is confirmed, back later. */
static void test_switchover_decided_when_old_primary_returns_as_replica(void **state)
{
	static const struct step steps[] = {
		{ .at_us = 0, .primary = "pg1" },
		{ .at_us = 1 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 1 * S + 400 * MS, .primary = NULL, .old = OTHER },
		{ .at_us = 1 * S + 420 * MS, .primary = "pg2", .old = OTHER },
		{ .at_us = 2 * S, .primary = "pg2", .old = OTHER },
		{ .at_us = 4 * S,
		  .primary = "pg2",
		  .old = REPLICA,
		  .decided = 1,
		  .kind = "switchover",
		  .from = "pg1",
		  .to = "pg2",
		  .pause_us = 420 * MS },
		{ .at_us = 5 * S, .primary = "pg2", .old = REPLICA },
	};
	struct handover h;

	RUN(steps, &h);
	assert_int_equal(h.switchovers, 1);
	assert_int_equal(h.failovers, 0);
	assert_int_equal(h.last_pause_us, 420 * MS);
	assert_int_equal(h.recent_pause_us[0], 420 * MS);
	assert_false(h.pending);
	assert_string_equal(handover_subject(&h), "pg2");
}

static void test_old_primary_already_replica_or_gone_decides_at_once(void **state)
{
	static const struct step demoted[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 10 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 10 * S + 250 * MS,
		  .primary = "b",
		  .old = REPLICA,
		  .decided = 1,
		  .kind = "switchover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 250 * MS },
	};
	static const struct step lost[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 10 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 11 * S, .primary = NULL, .old = GONE },
		{ .at_us = 12 * S + 500 * MS,
		  .primary = "b",
		  .old = GONE,
		  .decided = 1,
		  .kind = "failover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 2500 * MS },
	};
	/* Dropped and replaced in one look: writes never waited. */
	static const struct step direct[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 3 * S,
		  .primary = "b",
		  .old = REPLICA,
		  .decided = 1,
		  .kind = "switchover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 0 },
	};
	struct handover h;

	RUN(demoted, &h);
	RUN(lost, &h);
	assert_int_equal(h.failovers, 1);
	RUN(direct, &h);
}

static void test_failover_when_old_primary_not_seen_within_window(void **state)
{
	static const struct step steps[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 1 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 3 * S, .primary = "b", .old = OTHER },
		{ .at_us = 3 * S + HANDOVER_DEMOTE_WINDOW_US - 1, .primary = "b", .old = OTHER },
		{ .at_us = 3 * S + HANDOVER_DEMOTE_WINDOW_US,
		  .primary = "b",
		  .old = OTHER,
		  .decided = 1,
		  .kind = "failover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 2 * S },
		/* Back as a replica too late: the change is told already. */
		{ .at_us = 40 * S, .primary = "b", .old = REPLICA },
	};
	struct handover h;

	RUN(steps, &h);
	assert_int_equal(h.failovers, 1);
	assert_int_equal(h.switchovers, 0);
}

/* A scheduled switchover: the pause starts with the drain, and the kind is known at once. */
static void test_scheduled_switchover_pause_starts_at_drain(void **state)
{
	static const struct step steps[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 9 * S, .primary = "a", .scheduled_from = "a" },
		{ .at_us = 10 * S + 40 * MS,
		  .primary = "a",
		  .draining = true,
		  .drain_since_us = 10 * S,
		  .scheduled_from = "a" },
		{ .at_us = 11 * S, .primary = NULL, .old = OTHER, .scheduled_from = "a" },
		/* Patroni no longer announces it once done; the old primary is still down. */
		{ .at_us = 11 * S + 300 * MS,
		  .primary = "b",
		  .old = OTHER,
		  .decided = 1,
		  .kind = "switchover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 1300 * MS },
	};
	struct handover h;

	RUN(steps, &h);
	assert_int_equal(h.switchovers, 1);
}

/* A drain called off resumes writes: a later loss starts a new pause. */
static void test_drain_called_off_is_no_pause(void **state)
{
	static const struct step steps[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 10 * S,
		  .primary = "a",
		  .draining = true,
		  .drain_since_us = 10 * S,
		  .scheduled_from = "" },
		{ .at_us = 12 * S, .primary = "a" },
		{ .at_us = 20 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 21 * S, .primary = "b", .old = OTHER },
		{ .at_us = 22 * S,
		  .primary = "b",
		  .old = GONE,
		  .decided = 1,
		  .kind = "failover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 1 * S },
	};
	struct handover h;

	RUN(steps, &h);
}

/* A second change before the first's old primary was seen: the first was a failover. */
static void test_change_before_pending_decided(void **state)
{
	static const struct step steps[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 1 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 2 * S, .primary = "b", .old = OTHER },
		{ .at_us = 3 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 3 * S + 500 * MS,
		  .primary = "c",
		  .old = OTHER,
		  .decided = 1,
		  .kind = "failover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 1 * S },
		/* Now the subject is b: the old state given is b's. */
		{ .at_us = 4 * S,
		  .primary = "c",
		  .old = REPLICA,
		  .decided = 1,
		  .kind = "switchover",
		  .from = "b",
		  .to = "c",
		  .pause_us = 500 * MS },
	};
	/* The pending one's old primary shows up as a replica in the same look as the next change:
	 * that first change was a switchover; the next waits for its own old primary. */
	static const struct step both[] = {
		{ .at_us = 0, .primary = "a" },
		{ .at_us = 1 * S, .primary = NULL, .old = OTHER },
		{ .at_us = 2 * S, .primary = "b", .old = OTHER },
		{ .at_us = 3 * S,
		  .primary = "c",
		  .old = REPLICA,
		  .decided = 1,
		  .kind = "switchover",
		  .from = "a",
		  .to = "b",
		  .pause_us = 1 * S },
	};
	struct handover h;

	RUN(steps, &h);
	assert_int_equal(h.failovers, 1);
	assert_int_equal(h.switchovers, 1);
	assert_int_equal(h.last_pause_us, 500 * MS);
	RUN(both, &h);
	assert_true(h.pending);
	assert_string_equal(handover_subject(&h), "b");
	assert_string_equal(h.last, "c");
}

/* Many changes: the recent pauses wrap around, each at its sequence number. */
static void test_recent_pauses_ring(void **state)
{
	const char *names[] = { "a", "b" };
	struct handover h;
	uint64_t t = 0;

	handover_init(&h);
	for (int i = 0; i < HANDOVER_RECENT + 6; i++) {
		struct handover_view lost = { .primary = NULL, .old = HANDOVER_OLD_OTHER };
		struct handover_view next = { .primary = names[(i + 1) % 2],
					      .old = HANDOVER_OLD_REPLICA };
		struct handover_view first = { .primary = names[0] };
		struct handover_change out[2];

		if (i == 0)
			assert_int_equal(handover_step(&h, &first, t, out), 0);
		assert_int_equal(handover_step(&h, &lost, t += S, out), 0);
		assert_int_equal(handover_step(&h, &next, t += (uint64_t)(i + 1) * MS, out), 1);
		assert_int_equal(out[0].pause_us, (uint64_t)(i + 1) * MS);
	}
	assert_int_equal(handover_count(&h), HANDOVER_RECENT + 6);
	for (uint64_t seq = 6; seq < HANDOVER_RECENT + 6; seq++)
		assert_int_equal(h.recent_pause_us[seq % HANDOVER_RECENT], (seq + 1) * MS);
	assert_int_equal(h.last_pause_us, (HANDOVER_RECENT + 6) * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_primary_and_restart_in_place_are_no_change),
		cmocka_unit_test(test_switchover_decided_when_old_primary_returns_as_replica),
		cmocka_unit_test(test_old_primary_already_replica_or_gone_decides_at_once),
		cmocka_unit_test(test_failover_when_old_primary_not_seen_within_window),
		cmocka_unit_test(test_scheduled_switchover_pause_starts_at_drain),
		cmocka_unit_test(test_drain_called_off_is_no_pause),
		cmocka_unit_test(test_change_before_pending_decided),
		cmocka_unit_test(test_recent_pauses_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
