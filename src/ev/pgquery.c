/*
 * pgquery: a libpq connection driven by libev, for small queries pgmux runs itself.
 *
 * Invariants: at most one query is in flight (the head of the queue, `sent`); the io watcher
 * watches the libpq socket in the direction libpq asks for, and is stopped whenever there is no
 * socket; callbacks run only from watcher callbacks (a failure found while submitting is
 * delivered by a zero timer), and the queue is consistent before each one runs.
 */
#include "ev/pgquery.h"

#include <ev.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/list.h"
#include "core/log.h"
#include "ev/loop.h"

enum pq_state { PQS_IDLE, PQS_CONNECTING, PQS_READY };

struct request {
	struct list_node node;
	char *sql;
	char *param;
	pgquery_done_fn fn;
	void *arg;
};

struct pgquery {
	struct evloop *loop;
	char *conninfo;
	double timeout;
	PGconn *pg;
	enum pq_state state;
	bool sent;               /* the head request was sent and is being answered */
	PGresult *result;        /* first result of the request in flight */
	ev_io io;
	int io_fd, io_events;
	ev_timer timer;          /* connect / query deadline */
	ev_timer kick;           /* deliver failures and start work from the loop */
	struct list_node queue;  /* struct request, FIFO */
};

static void free_request(struct request *r)
{
	free(r->sql);
	free(r->param);
	free(r);
}

static void watch(struct pgquery *q, int fd, int events)
{
	if (q->io_fd == fd && q->io_events == events)
		return;
	if (q->io_fd >= 0)
		ev_io_stop(q->loop->ev, &q->io);
	q->io_fd = fd;
	q->io_events = events;
	if (fd >= 0 && events) {
		ev_io_set(&q->io, fd, events);
		ev_io_start(q->loop->ev, &q->io);
	} else {
		q->io_fd = -1;
	}
}

static void drop_connection(struct pgquery *q)
{
	watch(q, -1, 0);
	ev_timer_stop(q->loop->ev, &q->timer);
	if (q->result) {
		PQclear(q->result);
		q->result = NULL;
	}
	if (q->pg) {
		PQfinish(q->pg);
		q->pg = NULL;
	}
	q->state = PQS_IDLE;
	q->sent = false;
}

/* Pop the head request and tell its owner. */
static void finish_head(struct pgquery *q, enum pgquery_outcome outcome, int ncols,
			const char *const *values, const char *error)
{
	struct request *r;

	if (list_empty(&q->queue))
		return;
	r = list_entry(q->queue.next, struct request, node);
	list_del(&r->node);
	q->sent = false;
	if (r->fn)
		r->fn(r->arg, outcome, ncols, values, error);
	free_request(r);
}

/* The connection failed: drop it and fail every queued request with why. */
static void fail_all(struct pgquery *q, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection failed");
	/* libpq messages end with a newline; keep log lines whole. */
	msg[strcspn(msg, "\n")] = '\0';
	drop_connection(q);
	while (!list_empty(&q->queue))
		finish_head(q, PGQUERY_ERROR, 0, NULL, msg);
}

static void arm_timer(struct pgquery *q)
{
	ev_timer_stop(q->loop->ev, &q->timer);
	if (q->timeout > 0) {
		ev_timer_set(&q->timer, q->timeout, 0);
		ev_timer_start(q->loop->ev, &q->timer);
	}
}

static void step(struct pgquery *q);

/* Send the head request when connected and nothing is in flight. */
static void send_next(struct pgquery *q)
{
	struct request *r;
	const char *params[1];
	int flush;

	if (q->state != PQS_READY || q->sent || list_empty(&q->queue))
		return;
	r = list_entry(q->queue.next, struct request, node);
	params[0] = r->param;
	if (!PQsendQueryParams(q->pg, r->sql, r->param ? 1 : 0, NULL, params, NULL, NULL, 0)) {
		fail_all(q, PQerrorMessage(q->pg));
		return;
	}
	q->sent = true;
	arm_timer(q);
	flush = PQflush(q->pg);
	if (flush < 0) {
		fail_all(q, PQerrorMessage(q->pg));
		return;
	}
	watch(q, PQsocket(q->pg), EV_READ | (flush ? EV_WRITE : 0));
}

static void start_connect(struct pgquery *q)
{
	q->pg = PQconnectStart(q->conninfo);
	if (!q->pg || PQstatus(q->pg) == CONNECTION_BAD) {
		fail_all(q, q->pg ? PQerrorMessage(q->pg) : "out of memory");
		return;
	}
	q->state = PQS_CONNECTING;
	arm_timer(q);
	/* As libpq asks: poll after the socket is writable first. */
	watch(q, PQsocket(q->pg), EV_WRITE);
}

static void poll_connect(struct pgquery *q)
{
	switch (PQconnectPoll(q->pg)) {
	case PGRES_POLLING_READING:
		watch(q, PQsocket(q->pg), EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		watch(q, PQsocket(q->pg), EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		ev_timer_stop(q->loop->ev, &q->timer);
		q->state = PQS_READY;
		PQsetnonblocking(q->pg, 1);
		watch(q, PQsocket(q->pg), EV_READ);
		send_next(q);
		return;
	default:
		fail_all(q, PQerrorMessage(q->pg));
		return;
	}
}

/* Input on a ready connection: collect results; deliver when the request is complete. */
static void read_results(struct pgquery *q)
{
	PGresult *res;

	if (!PQconsumeInput(q->pg)) {
		fail_all(q, PQerrorMessage(q->pg));
		return;
	}
	if (!q->sent) {
		/* Nothing asked: the server is telling us it goes away (or a notice). */
		if (PQstatus(q->pg) == CONNECTION_BAD)
			fail_all(q, PQerrorMessage(q->pg));
		return;
	}
	while (!PQisBusy(q->pg)) {
		res = PQgetResult(q->pg);
		if (!res)
			break;
		if (!q->result)
			q->result = res;
		else
			PQclear(res);
	}
	if (PQisBusy(q->pg))
		return;
	/* Complete: the last PQgetResult() returned NULL. */
	ev_timer_stop(q->loop->ev, &q->timer);
	res = q->result;
	q->result = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s",
			 res ? PQresultErrorMessage(res) : "no result");
		msg[strcspn(msg, "\n")] = '\0';
		finish_head(q, PGQUERY_ERROR, 0, NULL, msg);
	} else if (PQntuples(res) == 0) {
		finish_head(q, PGQUERY_NO_ROW, PQnfields(res), NULL, NULL);
	} else {
		int n = PQnfields(res);
		const char *values[16];

		if (n > 16)
			n = 16;
		for (int i = 0; i < n; i++)
			values[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
		finish_head(q, PGQUERY_ROW, n, values, NULL);
	}
	if (res)
		PQclear(res);
	send_next(q);
}

static void step(struct pgquery *q)
{
	switch (q->state) {
	case PQS_IDLE:
		if (!list_empty(&q->queue))
			start_connect(q);
		return;
	case PQS_CONNECTING:
		poll_connect(q);
		return;
	case PQS_READY:
		if (q->io_events & EV_WRITE) {
			int flush = PQflush(q->pg);

			if (flush < 0) {
				fail_all(q, PQerrorMessage(q->pg));
				return;
			}
			if (flush == 0)
				watch(q, PQsocket(q->pg), EV_READ);
		}
		read_results(q);
		/* Woken by a submit (or the connection is still fine after input): send what waits. */
		if (q->state == PQS_READY)
			send_next(q);
		return;
	}
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents)
{
	step(w->data);
}

static void on_timeout(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct pgquery *q = w->data;

	fail_all(q, q->state == PQS_CONNECTING ? "timeout while connecting" : "query timeout");
}

static void on_kick(struct ev_loop *ev, ev_timer *w, int revents)
{
	step(w->data);
}

struct pgquery *pgquery_new(struct evloop *loop, const char *conninfo, double timeout)
{
	struct pgquery *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->conninfo = strdup(conninfo);
	if (!q->conninfo) {
		free(q);
		return NULL;
	}
	q->loop = loop;
	q->timeout = timeout;
	q->io_fd = -1;
	list_init(&q->queue);
	ev_io_init(&q->io, on_io, 0, EV_READ);
	q->io.data = q;
	ev_timer_init(&q->timer, on_timeout, 0, 0);
	q->timer.data = q;
	ev_timer_init(&q->kick, on_kick, 0, 0);
	q->kick.data = q;
	return q;
}

const char *pgquery_conninfo(const struct pgquery *q)
{
	return q->conninfo;
}

bool pgquery_submit(struct pgquery *q, const char *sql, const char *param, pgquery_done_fn fn,
		    void *arg)
{
	struct request *r = calloc(1, sizeof(*r));

	if (!r)
		return false;
	r->sql = strdup(sql);
	r->param = param ? strdup(param) : NULL;
	if (!r->sql || (param && !r->param)) {
		free_request(r);
		return false;
	}
	r->fn = fn;
	r->arg = arg;
	list_add_tail(&q->queue, &r->node);
	/* Start from the loop, so that no callback runs inside this call. */
	if (q->state == PQS_IDLE || (q->state == PQS_READY && !q->sent)) {
		ev_timer_stop(q->loop->ev, &q->kick);
		ev_timer_set(&q->kick, 0, 0);
		ev_timer_start(q->loop->ev, &q->kick);
	}
	return true;
}

bool pgquery_withdraw(struct pgquery *q, pgquery_done_fn fn, void *arg)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &q->queue) {
		struct request *r = list_entry(n, struct request, node);

		/* The head is on the wire once sent: its answer must still be read. */
		if (q->sent && n == q->queue.next)
			continue;
		if (r->fn == fn && r->arg == arg) {
			list_del(&r->node);
			free_request(r);
			return true;
		}
	}
	return false;
}

void pgquery_free(struct pgquery *q, bool loop_alive)
{
	if (!q)
		return;
	if (loop_alive) {
		drop_connection(q);
		ev_timer_stop(q->loop->ev, &q->kick);
	} else {
		if (q->result)
			PQclear(q->result);
		if (q->pg)
			PQfinish(q->pg);
	}
	while (!list_empty(&q->queue)) {
		struct request *r = list_entry(q->queue.next, struct request, node);

		list_del(&r->node);
		free_request(r);
	}
	free(q->conninfo);
	free(q);
}

void pgquery_library_version(char *buf, size_t len)
{
	int v = PQlibVersion();

	/* From PostgreSQL 10 on the number is major * 10000 + minor. */
	if (v >= 100000)
		snprintf(buf, len, "libpq %d.%d", v / 10000, v % 10000);
	else
		snprintf(buf, len, "libpq %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
}
