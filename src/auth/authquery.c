/*
 * authquery: cache and waiters in front of ev/pgquery for auth_query.
 *
 * Invariants: an entry is either pending (a query queued or running, waiters queued, no secret)
 * or answered (secret, "none" or "failed", an expiry); answered entries past their expiry are
 * dropped on the next lookup; there are at most MAX_ANSWERED answered entries, the oldest going
 * first, and at most MAX_PENDING pending ones, beyond which lookups are refused (a spray of
 * unknown names then costs a bounded queue, not an unbounded one); a pending entry whose waiters
 * all left before its query was sent is dropped with its query. Negative answers (no such user,
 * or the query failed) are kept NEGATIVE_TTL seconds, so that repeating a name costs nothing
 * while a role created moments later is soon seen. Every secret is wiped before it is freed.
 * One pgquery connection per distinct conninfo.
 *
 * State: the owner (a worker) holds a struct authquery pointer, NULL until the first lookup
 * makes it; authquery_destroy() frees it and closes its connections.
 */
#include "auth/authquery.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/list.h"
#include "core/log.h"
#include "ev/loop.h"
#include "ev/pgquery.h"

#define MAX_ANSWERED 10000
#define MAX_PENDING 256
#define NEGATIVE_TTL 5.0

struct waiter {
	struct list_node node;
	authquery_fn fn;
	void *arg;
};

struct target {
	struct list_node node;
	struct authquery *aq;
	struct pgquery *q;
};

struct entry {
	struct list_node node;
	struct target *target;
	char *user;
	char *secret; /* NULL: no such user; "": the user has no password */
	bool pending;
	bool failed;         /* answered: the query failed (secret NULL) */
	uint64_t expires_us; /* while pending: when the query started */
	struct list_node waiters;
};

struct authquery {
	struct list_node targets;
	struct list_node entries;
	size_t n_pending, n_answered;
	double ttl;
};

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static void free_entry(struct entry *e)
{
	list_del(&e->node);
	if (e->pending)
		e->target->aq->n_pending--;
	else
		e->target->aq->n_answered--;
	while (!list_empty(&e->waiters)) {
		struct waiter *w = list_entry(e->waiters.next, struct waiter, node);

		list_del(&w->node);
		free(w);
	}
	wipe_free(e->secret);
	free(e->user);
	free(e);
}

void authquery_destroy(struct authquery **aqp)
{
	struct authquery *aq = *aqp;

	if (!aq)
		return;
	/* Waiters belong to clients, which are all closed (and cancelled) before this. */
	while (!list_empty(&aq->entries))
		free_entry(list_entry(aq->entries.next, struct entry, node));
	while (!list_empty(&aq->targets)) {
		struct target *t = list_entry(aq->targets.next, struct target, node);

		list_del(&t->node);
		pgquery_free(t->q, true);
		free(t);
	}
	free(aq);
	*aqp = NULL;
}

static struct authquery *state_of(struct authquery **aqp)
{
	struct authquery *aq = *aqp;

	if (aq)
		return aq;
	aq = calloc(1, sizeof(*aq));
	if (!aq)
		return NULL;
	list_init(&aq->targets);
	list_init(&aq->entries);
	*aqp = aq;
	return aq;
}

static struct target *target_for(struct authquery *aq, struct evloop *loop, const char *conninfo,
				 double timeout)
{
	struct list_node *n, *t;
	struct target *tg;

	list_for_each_safe(n, t, &aq->targets) {
		tg = list_entry(n, struct target, node);
		if (strcmp(pgquery_conninfo(tg->q), conninfo) == 0)
			return tg;
	}
	tg = calloc(1, sizeof(*tg));
	if (!tg)
		return NULL;
	tg->aq = aq;
	tg->q = pgquery_new(loop, conninfo, timeout);
	if (!tg->q) {
		free(tg);
		return NULL;
	}
	list_add_tail(&aq->targets, &tg->node);
	return tg;
}

/*
 * An answer for an entry: wake its waiters, head first. The entry stays pending until all are
 * woken, so a callback's own lookup can neither evict it nor miss it (a lookup of the same user
 * joins the queue and is woken here too), and a cancel simply unlinks its waiter.
 */
static void on_answer(void *arg, enum pgquery_outcome outcome, int ncols, const char *const *values,
		      const char *error)
{
	struct entry *e = arg;

	/* A user found without a password is "", not NULL: trust admits it, as PgBouncer. */
	if (outcome == PGQUERY_ROW && ncols < 2)
		error = "auth_query must return two columns (user name, secret)";
	else if (outcome == PGQUERY_ROW && !(e->secret = strdup(values[1] ? values[1] : "")))
		error = "out of memory";
	if (error)
		log_msg(LOG_LVL_WARNING, "auth_query for user \"%s\" failed: %s", e->user, error);
	/* held the start time while pending */
	e->failed = error != NULL;
	e->expires_us += (uint64_t)((e->secret ? e->target->aq->ttl : NEGATIVE_TTL) * 1e6);
	while (!list_empty(&e->waiters)) {
		struct waiter *w = list_entry(e->waiters.next, struct waiter, node);

		list_del(&w->node);
		w->fn(w->arg, error ? NULL : e->secret, error);
		free(w);
	}
	e->pending = false;
	e->target->aq->n_pending--;
	e->target->aq->n_answered++;
}

static void evict(struct authquery *aq, uint64_t now_us)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &aq->entries) {
		struct entry *e = list_entry(n, struct entry, node);

		/* Pending entries do not count: they must never push answered ones out. */
		if (!e->pending && (e->expires_us <= now_us || aq->n_answered > MAX_ANSWERED))
			free_entry(e);
	}
}

enum authquery_status authquery_lookup(struct authquery **aqp, struct evloop *loop,
				       const char *conninfo, const char *query, double ttl,
				       double timeout, const char *user, authquery_fn fn, void *arg,
				       char **secret_out)
{
	struct authquery *aq = state_of(aqp);
	uint64_t now_us = clock_now_us();
	struct list_node *n, *t;
	struct entry *e = NULL;
	struct target *tg;
	struct waiter *w;

	*secret_out = NULL;
	if (!aq)
		return AUTHQUERY_FAILED;
	aq->ttl = ttl;
	evict(aq, now_us);
	tg = target_for(aq, loop, conninfo, timeout);
	if (!tg)
		return AUTHQUERY_FAILED;
	list_for_each_safe(n, t, &aq->entries) {
		struct entry *x = list_entry(n, struct entry, node);

		if (x->target == tg && strcmp(x->user, user) == 0) {
			e = x;
			break;
		}
	}
	if (e && !e->pending) {
		if (e->failed)
			return AUTHQUERY_ERROR;
		if (e->secret && !(*secret_out = strdup(e->secret)))
			return AUTHQUERY_FAILED;
		return AUTHQUERY_CACHED;
	}
	if (!e && aq->n_pending >= MAX_PENDING)
		return AUTHQUERY_BUSY;
	w = calloc(1, sizeof(*w));
	if (!w)
		return AUTHQUERY_FAILED;
	w->fn = fn;
	w->arg = arg;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->user = strdup(user))) {
			free(e);
			free(w);
			return AUTHQUERY_FAILED;
		}
		e->target = tg;
		e->pending = true;
		list_init(&e->waiters);
		list_add_tail(&aq->entries, &e->node);
		aq->n_pending++;
		e->expires_us = now_us;
		if (!pgquery_submit(tg->q, query, user, on_answer, e)) {
			free(w);
			free_entry(e);
			return AUTHQUERY_FAILED;
		}
	}
	list_add_tail(&e->waiters, &w->node);
	return AUTHQUERY_WAIT;
}

void authquery_cancel(struct authquery *aq, void *arg)
{
	struct list_node *n, *t, *wn, *wt;

	if (!aq)
		return;
	list_for_each_safe(n, t, &aq->entries) {
		struct entry *e = list_entry(n, struct entry, node);

		list_for_each_safe(wn, wt, &e->waiters) {
			struct waiter *w = list_entry(wn, struct waiter, node);

			if (w->arg == arg) {
				list_del(wn);
				free(w);
			}
		}
		/* Nobody waits any more: a query not sent yet is not worth a round trip. */
		if (e->pending && list_empty(&e->waiters) &&
		    pgquery_withdraw(e->target->q, on_answer, e))
			free_entry(e);
	}
}
