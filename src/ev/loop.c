/*
 * loop: libev glue, deferred work and the I/O buffer pool (see ev/loop.h).
 */
#include "ev/loop.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "ev/conn.h"

/* Internal to the ev layer: implemented in conn.c. */
void conn_process_input(struct conn *c);
void conn_report_failure(struct conn *c);
void conn_flush(struct conn *c);

struct parked {
	struct list_node node;
	void *obj;
	evloop_free_fn fn;
};

struct signal_watcher {
	struct list_node node;
	ev_signal w;
	evloop_signal_fn fn;
	void *arg;
};

/*
 * libev calls this wherever it would run pending callbacks (after it polled and updated its time,
 * and before prepare watchers): the cached clock is set before any callback of the iteration.
 */
static void invoke_pending(struct ev_loop *ev)
{
	clock_set_now_us((uint64_t)(ev_now(ev) * 1e6));
	ev_invoke_pending(ev);
}

static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents)
{
	evloop_run_deferred(w->data);
}

bool evloop_init(struct evloop *l, uint32_t buf_size)
{
	ev_prepare *p;

	l->ev = ev_default_loop(EVFLAG_AUTO);
	if (!l->ev)
		return false;
	ev_set_invoke_pending_cb(l->ev, invoke_pending);
	clock_set_now_us((uint64_t)(ev_now(l->ev) * 1e6));
	list_init(&l->resume_list);
	list_init(&l->failed_list);
	list_init(&l->dirty_list);
	list_init(&l->park_list);
	list_init(&l->signals);
	l->buf_size = buf_size;
	l->max_free_bufs = 1024;
	l->free_bufs = calloc(l->max_free_bufs, sizeof(void *));
	p = calloc(1, sizeof(*p));
	if (!l->free_bufs || !p)
		return false;
	ev_prepare_init(p, on_prepare);
	p->data = l;
	ev_prepare_start(l->ev, p);
	l->prepare_watcher = p;
	return true;
}

void evloop_destroy(struct evloop *l)
{
	struct list_node *n, *t;

	evloop_run_deferred(l);
	list_for_each_safe(n, t, &l->signals) {
		struct signal_watcher *s = list_entry(n, struct signal_watcher, node);

		ev_signal_stop(l->ev, &s->w);
		list_del(n);
		free(s);
	}
	for (size_t i = 0; i < l->n_free_bufs; i++)
		free(l->free_bufs[i]);
	free(l->free_bufs);
	if (l->prepare_watcher) {
		ev_prepare_stop(l->ev, l->prepare_watcher);
		free(l->prepare_watcher);
	}
}

void evloop_run(struct evloop *l)
{
	ev_run(l->ev, 0);
}

void evloop_break(struct evloop *l)
{
	ev_break(l->ev, EVBREAK_ALL);
}

void evloop_park(struct evloop *l, void *obj, evloop_free_fn fn)
{
	struct parked *p = malloc(sizeof(*p));

	if (!p) {
		/* Out of memory: leaking obj is safer than freeing it under a running callback. */
		log_error("out of memory parking an object");
		return;
	}
	p->obj = obj;
	p->fn = fn;
	list_add_tail(&l->park_list, &p->node);
}

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct evloop_timer *t = w->data;

	t->fn(t->arg);
}

bool evloop_timer_start(struct evloop *l, struct evloop_timer *t, double interval,
			evloop_timer_fn fn, void *arg)
{
	ev_timer *w = calloc(1, sizeof(*w));

	if (!w)
		return false;
	t->watcher = w;
	t->fn = fn;
	t->arg = arg;
	ev_timer_init(w, on_timer, interval, interval);
	w->data = t;
	ev_timer_start(l->ev, w);
	return true;
}

void evloop_timer_stop(struct evloop *l, struct evloop_timer *t)
{
	if (!t->watcher)
		return;
	ev_timer_stop(l->ev, t->watcher);
	free(t->watcher);
	t->watcher = NULL;
}

static void on_signal(struct ev_loop *ev, ev_signal *w, int revents)
{
	struct signal_watcher *s = w->data;

	s->fn(s->arg, w->signum);
}

bool evloop_signal(struct evloop *l, int signum, evloop_signal_fn fn, void *arg)
{
	struct signal_watcher *s = calloc(1, sizeof(*s));

	if (!s)
		return false;
	s->fn = fn;
	s->arg = arg;
	ev_signal_init(&s->w, on_signal, signum);
	s->w.data = s;
	ev_signal_start(l->ev, &s->w);
	list_add_tail(&l->signals, &s->node);
	return true;
}

uint8_t *evloop_get_buf(struct evloop *l)
{
	l->bufs_in_use++;
	if (l->n_free_bufs)
		return l->free_bufs[--l->n_free_bufs];
	return malloc(l->buf_size);
}

void evloop_put_buf(struct evloop *l, uint8_t *buf)
{
	l->bufs_in_use--;
	if (l->n_free_bufs < l->max_free_bufs)
		l->free_bufs[l->n_free_bufs++] = buf;
	else
		free(buf);
}

void evloop_set_buf_size(struct evloop *l, uint32_t buf_size)
{
	if (buf_size == l->buf_size)
		return;
	for (size_t i = 0; i < l->n_free_bufs; i++)
		free(l->free_bufs[i]);
	l->n_free_bufs = 0;
	l->buf_size = buf_size;
}

void evloop_set_tcp(struct evloop *l, const struct evloop_tcp *tcp)
{
	l->tcp = *tcp;
}

void evloop_run_deferred(struct evloop *l)
{
	struct list_node *n;

	/* Each step may queue more work for the others; run until everything is settled. */
	for (;;) {
		if ((n = list_first(&l->resume_list))) {
			struct conn *c = list_entry(n, struct conn, resume_node);

			list_del(n);
			conn_process_input(c);
		} else if ((n = list_first(&l->failed_list))) {
			struct conn *c = list_entry(n, struct conn, failed_node);

			list_del(n);
			conn_report_failure(c);
		} else if ((n = list_first(&l->dirty_list))) {
			struct conn *c = list_entry(n, struct conn, dirty_node);

			list_del(n);
			conn_flush(c);
		} else if ((n = list_first(&l->park_list))) {
			struct parked *p = list_entry(n, struct parked, node);

			list_del(n);
			p->fn(p->obj);
			free(p);
		} else {
			break;
		}
	}
}

void evloop_library_version(char *buf, size_t len)
{
	snprintf(buf, len, "libev %d.%d", ev_version_major(), ev_version_minor());
}
