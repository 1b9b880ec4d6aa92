/*
 * handover: switchovers and failovers of one cluster, and the write pause each caused (see
 * topo/handover.h for the definitions). One step per look at the cluster: first the pending
 * change's old primary is judged, then the confirmed primary is compared with the last one.
 */
#include "topo/handover.h"

#include <stdio.h>
#include <string.h>

void handover_init(struct handover *h)
{
	memset(h, 0, sizeof(*h));
}

const char *handover_subject(const struct handover *h)
{
	return h->pending ? h->change.from : h->last;
}

uint64_t handover_count(const struct handover *h)
{
	return h->switchovers + h->failovers;
}

const char *handover_kind_name(enum handover_kind k)
{
	return k == HANDOVER_SWITCHOVER ? "switchover" : "failover";
}

/* The pending change is a kind now: count it and hand it out. */
static void decide(struct handover *h, enum handover_kind kind, struct handover_change *out, int *n)
{
	h->recent_pause_us[handover_count(h) % HANDOVER_RECENT] = h->change.pause_us;
	h->last_pause_us = h->change.pause_us;
	if (kind == HANDOVER_SWITCHOVER)
		h->switchovers++;
	else
		h->failovers++;
	h->change.kind = kind;
	out[(*n)++] = h->change;
	h->pending = false;
}

/* Does Patroni announce a switchover away from member? */
static bool scheduled_from(const struct handover_view *v, const char *member)
{
	return v->scheduled && (!v->scheduled_from || !v->scheduled_from[0] ||
				strcmp(v->scheduled_from, member) == 0);
}

/* The old primary of the pending change, as the view shows it. */
static void judge_pending(struct handover *h, const struct handover_view *v, uint64_t now_us,
			  struct handover_change *out, int *n)
{
	if (v->old == HANDOVER_OLD_REPLICA)
		decide(h, HANDOVER_SWITCHOVER, out, n);
	else if (v->old == HANDOVER_OLD_GONE ||
		 (now_us > h->confirmed_us &&
		  now_us - h->confirmed_us >= HANDOVER_DEMOTE_WINDOW_US))
		decide(h, HANDOVER_FAILOVER, out, n);
}

/* The last primary is the confirmed one: writes go to it unless it is drained. */
static void same_primary(struct handover *h, const struct handover_view *v, uint64_t now_us)
{
	if (!v->draining) {
		/* Back without a change (or never gone): a pause that is no handover. */
		h->stopped = false;
		h->planned = false;
		return;
	}
	if (!h->stopped) {
		h->stopped = true;
		h->stopped_us = v->drain_since_us < now_us ? v->drain_since_us : now_us;
	}
	h->planned = true;
}

/* A new primary: a change from the last one, decided now if the evidence is already there. */
static void new_primary(struct handover *h, const struct handover_view *v, uint64_t now_us,
			bool view_shows_last, struct handover_change *out, int *n)
{
	struct handover_change *c = &h->change;

	/* The previous change's old primary was not seen again before this one. */
	if (h->pending)
		decide(h, HANDOVER_FAILOVER, out, n);
	memset(c, 0, sizeof(*c));
	snprintf(c->from, sizeof(c->from), "%s", h->last);
	snprintf(c->to, sizeof(c->to), "%s", v->primary);
	c->pause_us = h->stopped && now_us > h->stopped_us ? now_us - h->stopped_us : 0;
	h->pending = true;
	h->confirmed_us = now_us;
	if (h->planned || scheduled_from(v, h->last))
		decide(h, HANDOVER_SWITCHOVER, out, n);
	else if (view_shows_last && v->old == HANDOVER_OLD_REPLICA)
		decide(h, HANDOVER_SWITCHOVER, out, n);
	else if (view_shows_last && v->old == HANDOVER_OLD_GONE)
		decide(h, HANDOVER_FAILOVER, out, n);
	snprintf(h->last, sizeof(h->last), "%s", v->primary);
	h->stopped = false;
	h->planned = false;
}

int handover_step(struct handover *h, const struct handover_view *v, uint64_t now_us,
		  struct handover_change out[2])
{
	/* v->old describes the last primary only when no change was pending as the view was made. */
	bool view_shows_last = !h->pending;
	int n = 0;

	if (h->pending)
		judge_pending(h, v, now_us, out, &n);
	if (!h->last[0]) {
		if (v->primary)
			snprintf(h->last, sizeof(h->last), "%s", v->primary);
		return n;
	}
	if (!v->primary) {
		if (!h->stopped) {
			h->stopped = true;
			h->stopped_us = now_us;
		}
		h->planned = h->planned || scheduled_from(v, h->last);
		return n;
	}
	if (strcmp(v->primary, h->last) == 0)
		same_primary(h, v, now_us);
	else
		new_primary(h, v, now_us, view_shows_last, out, &n);
	return n;
}
