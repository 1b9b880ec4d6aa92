/*
 * handover: the primary changes of one cluster — the confirmed primary was member A, now it is
 * member B — told apart as switchovers and failovers, with the write pause each caused.
 *
 * Definitions (doc/metrics.md says the same to users):
 * - A primary change: B is confirmed and the last confirmed primary was A, A != B. A primary that
 *   comes back after a pause (A, none, A: a restart in place, a failed check) is no change.
 * - The write pause: from the moment pgmux stopped sending writes to A (A stopped being the
 *   confirmed primary: lost, fenced or demoted; or a scheduled switchover from A started to
 *   drain it) to the moment B was confirmed. 0 when both happened in the same step.
 * - A switchover: A was demoted — seen as a replica (in recovery) by the time B is confirmed or
 *   within HANDOVER_DEMOTE_WINDOW_US after — or a switchover from A was scheduled when writes
 *   to A stopped. A failover: A was lost — no longer listed, or not seen as a replica within the
 *   window, or another primary change came first.
 *
 * A change whose kind is not known yet (A not seen again) is pending; it is counted, logged and
 * its pause taken in once its kind is decided. Pure: fed a view of its cluster after every change
 * and on a timer, with the loop's clock passed in; no I/O, no logging, no allocation.
 *
 * Invariants: switchovers + failovers = the changes decided, and the last HANDOVER_RECENT of
 * their pauses are in recent_pause_us[seq % HANDOVER_RECENT] (seq counting from 0).
 */
#ifndef PGMUX_TOPO_HANDOVER_H
#define PGMUX_TOPO_HANDOVER_H

#include <stdbool.h>
#include <stdint.h>

/* How long after B's confirmation A may take to show up as a replica (Patroni restarting it). */
#define HANDOVER_DEMOTE_WINDOW_US (30ULL * 1000000)
/* Pauses kept for whoever turns them into a histogram (metrics) between two reads. */
#define HANDOVER_RECENT 64

enum handover_kind {
	HANDOVER_SWITCHOVER, /* the old primary was demoted, or the switchover was scheduled */
	HANDOVER_FAILOVER,   /* the old primary was lost */
};

/* What is known of the old primary (the member handover_subject() names). */
enum handover_old {
	HANDOVER_OLD_OTHER,   /* listed, but not a replica now: unreachable, restarting, fenced */
	HANDOVER_OLD_REPLICA, /* healthy and in recovery: demoted */
	HANDOVER_OLD_GONE,    /* no longer listed (or no such member) */
};

/* The cluster as one step sees it. */
struct handover_view {
	const char *primary;        /* the confirmed primary's name; NULL when there is none */
	bool draining;              /* writes are held back from it for a scheduled switchover */
	uint64_t drain_since_us;    /* since when (loop clock), when draining */
	bool scheduled;             /* Patroni announces a scheduled switchover */
	const char *scheduled_from; /* from that member; "" = from the leader, whoever it is */
	enum handover_old old;      /* the state of the member handover_subject() named */
};

struct handover_change {
	enum handover_kind kind;
	char from[64], to[64];
	uint64_t pause_us;
};

struct handover {
	char last[64];       /* the last confirmed primary; "" before the first */
	bool stopped;        /* writes to last are held back (it is not usable for them) */
	uint64_t stopped_us; /* since when */
	bool planned;        /* a switchover from last was scheduled when they stopped */

	bool pending;                  /* a change whose kind is not decided yet */
	struct handover_change change; /* that change (kind not meaningful yet) */
	uint64_t confirmed_us;         /* when its new primary was confirmed */

	uint64_t switchovers, failovers;
	uint64_t last_pause_us; /* the pause of the last change decided; 0 before the first */
	uint64_t recent_pause_us[HANDOVER_RECENT];
};

/* A handover with no primary seen yet. */
void handover_init(struct handover *h);

/*
 * The member whose state the next step's view must carry in view->old: the old primary of the
 * pending change, else the last confirmed primary. "" when there is none yet. Borrowed from h.
 */
const char *handover_subject(const struct handover *h);

/*
 * Take in the cluster's state at now_us (loop clock). Returns how many changes got their kind
 * decided in this step (0, 1 or 2: a pending change ended by a new one, then the new one), each
 * written to out[] in the order they happened, already counted in h.
 */
int handover_step(struct handover *h, const struct handover_view *v, uint64_t now_us,
		  struct handover_change out[2]);

/* The number of changes decided so far (the sequence number of the next one). */
uint64_t handover_count(const struct handover *h);

/* "switchover" or "failover" (static strings). */
const char *handover_kind_name(enum handover_kind k);

#endif
