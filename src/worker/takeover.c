/*
 * worker/takeover: the worker's side of a zero-downtime upgrade (see worker/takeover.h).
 *
 * Invariants: the old process stops accepting only in on_done, which ev/takeover calls after the
 * new process confirmed; the new process runs its loop (and so accepts anything) only after the
 * old one answered DONE. Every received descriptor is adopted or closed.
 */
#include "worker/takeover.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "client/handoff.h"
#include "config/config.h"
#include "core/log.h"
#include "ev/takeover.h"
#include "pool/pool.h"
#include "worker/worker.h"

/* Seconds between looks for clients that became idle, after a takeover. */
#define HANDOFF_INTERVAL 0.02

bool worker_takeover_path(const struct config *cfg, char *buf, size_t len)
{
	int n;

	if (*cfg->takeover_socket)
		n = snprintf(buf, len, "%s", cfg->takeover_socket);
	else if (*cfg->unix_socket_dir)
		n = snprintf(buf, len, "%s/.s.PGSQL.%d.takeover", cfg->unix_socket_dir,
			     cfg->listen_port);
	else
		return false;
	return n > 0 && (size_t)n < len;
}

static void add_sock(struct takeover_offer *o, int kind, int fd, int family, bool owned,
		     const char *addr)
{
	struct takeover_sock *s = &o->socks[o->n];

	s->kind = (uint8_t)kind;
	s->flags = owned ? TAKEOVER_F_OWNED : 0;
	s->family = (uint16_t)family;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	o->fds[o->n++] = fd;
}

static bool on_offer(void *arg, struct takeover_offer *out, char *why, size_t whylen)
{
	struct worker *w = arg;
	struct listen_socket ls[TAKEOVER_MAX_SOCKETS];
	int fds[TAKEOVER_MAX_SOCKETS], n;

	if (w->shutting_down || !w->listeners) {
		snprintf(why, whylen, "pgmux pid %d is shutting down", (int)getpid());
		return false;
	}
	/* The hold and the switch of a move are this process's: they cannot follow the sockets. */
	if (w->resharding && w->resharding->moves_active(w->resharding_arg)) {
		snprintf(why, whylen,
			 "pgmux pid %d is moving buckets (SHOW MOVES): let the move "
			 "reach done, or MOVE ABORT it, then take over",
			 (int)getpid());
		return false;
	}
	n = listen_sockets(w->listeners, ls, TAKEOVER_MAX_SOCKETS - 1);
	for (int i = 0; i < n; i++)
		add_sock(out, TAKEOVER_CLIENTS, ls[i].fd, ls[i].family, ls[i].owned, ls[i].addr);
	n = httpd_listen_fds(w->metrics_httpd, fds, TAKEOVER_MAX_SOCKETS - 1 - out->n);
	for (int i = 0; i < n; i++)
		add_sock(out, TAKEOVER_METRICS, fds[i], AF_UNSPEC, false, w->cfg->metrics_listen);
	add_sock(out, TAKEOVER_CONTROL, takeover_server_fd(w->takeover), AF_UNIX, true,
		 takeover_server_path(w->takeover));
	return true;
}

/* Old side: our server counts that changed, so that the new process counts them too. */
static bool report_servers(struct worker *w)
{
	struct list_node *n;
	int count;

	for (n = w->pools.all.next; n != &w->pools.all; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		int r;

		if (!pool_servers_to_report(p, &count))
			continue;
		r = takeover_pass_servers(w->takeover, p->db->name, p->user->name, count);
		if (r < 0)
			return false;
		if (r > 0)
			pool_servers_reported(p, count);
	}
	return true;
}

/* client_pass_fn over the takeover connection. */
static int pass_client(void *arg, int fd, const uint8_t *rec, size_t len)
{
	return takeover_pass_client(arg, fd, rec, len);
}

/* Old side: every client that may go now, to the new process (see client/handoff.h). */
static void hand_over_idle_clients(void *arg)
{
	struct worker *w = arg;
	int sent;

	if (!report_servers(w) ||
	    (sent = clients_hand_over_idle(&w->clients, pass_client, w->takeover)) < 0) {
		evloop_timer_stop(&w->loop, &w->handoff_timer);
		return;
	}
	if (sent)
		log_debug("takeover: %d idle clients handed over, %d left here", sent,
			  w->clients.n);
}

/* The new process accepts: stop, and shut down as on SIGTERM (clients stay until they leave). */
static void on_done(void *arg, long new_pid)
{
	struct worker *w = arg;

	listen_release(w->listeners);
	w->listeners = NULL;
	httpd_close(w->metrics_httpd);
	w->metrics_httpd = NULL;
	w->handed_over = true;
	log_info("handed the listening sockets over to pid %ld: serving the %d clients here until "
		 "they leave",
		 new_pid, w->clients.n);
	worker_shutdown(w, false);
	/*
	 * Our server counts go now, ahead of DONE, so that the new process counts them before it
	 * serves anyone. Idle clients in pools that share servers follow the sockets, the others
	 * as they become idle, with any change of the counts: every HANDOFF_INTERVAL, from the
	 * first tick on (after DONE, which the new process must read first).
	 */
	report_servers(w);
	if (!evloop_timer_start(&w->loop, &w->handoff_timer, HANDOFF_INTERVAL,
				hand_over_idle_clients, w))
		log_warning("takeover: no timer to hand over clients later: they stay here");
}

bool worker_takeover_listen(struct worker *w, char *err, size_t errlen)
{
	char path[108];

	if (!worker_takeover_path(w->cfg, path, sizeof(path)))
		return true;
	w->takeover = takeover_listen(&w->loop, path, -1, on_offer, on_done, w, err, errlen);
	return w->takeover != NULL;
}

/* What came with the offer, sorted by kind; descriptors not used are closed here. */
struct received {
	struct listen_socket clients[TAKEOVER_MAX_SOCKETS];
	int n_clients;
	int metrics[TAKEOVER_MAX_SOCKETS];
	int n_metrics;
	char metrics_addr[TAKEOVER_ADDR_MAX];
	int control;
	char control_path[TAKEOVER_ADDR_MAX];
};

static void sort_offer(const struct takeover_offer *o, struct received *r)
{
	memset(r, 0, sizeof(*r));
	r->control = -1;
	for (int i = 0; i < o->n; i++) {
		const struct takeover_sock *s = &o->socks[i];

		if (s->kind == TAKEOVER_CLIENTS) {
			struct listen_socket *l = &r->clients[r->n_clients++];

			l->fd = o->fds[i];
			l->family = s->family;
			l->owned = s->flags & TAKEOVER_F_OWNED;
			snprintf(l->addr, sizeof(l->addr), "%s", s->addr);
		} else if (s->kind == TAKEOVER_METRICS) {
			r->metrics[r->n_metrics++] = o->fds[i];
			snprintf(r->metrics_addr, sizeof(r->metrics_addr), "%s", s->addr);
		} else if (s->kind == TAKEOVER_CONTROL && r->control < 0) {
			r->control = o->fds[i];
			snprintf(r->control_path, sizeof(r->control_path), "%s", s->addr);
		} else {
			close(o->fds[i]);
		}
	}
}

static void close_received(struct received *r)
{
	for (int i = 0; i < r->n_clients; i++)
		close(r->clients[i].fd);
	for (int i = 0; i < r->n_metrics; i++)
		close(r->metrics[i]);
	if (r->control >= 0)
		close(r->control);
	r->n_clients = r->n_metrics = 0;
	r->control = -1;
}

/*
 * The metrics listener: the old one's when metrics_listen did not change, else bound anew
 * (a changed address that the old process still holds fails here, before anything changed).
 */
static bool take_metrics(struct worker *w, struct received *r, httpd_handler_fn metrics,
			 void *metrics_arg, char *err, size_t errlen)
{
	const char *addr = w->cfg->metrics_listen;
	bool same = *addr && r->n_metrics > 0 && strcmp(addr, r->metrics_addr) == 0;

	if (!same) {
		for (int i = 0; i < r->n_metrics; i++)
			close(r->metrics[i]);
		r->n_metrics = 0;
		if (!*addr)
			return true;
		w->metrics_httpd = httpd_open(&w->loop, addr, metrics, metrics_arg, err, errlen);
	} else {
		w->metrics_httpd = httpd_adopt(&w->loop, r->metrics, r->n_metrics, metrics,
					       metrics_arg, err, errlen);
		r->n_metrics = 0;
	}
	return w->metrics_httpd != NULL;
}

/*
 * The takeover socket: the old one's when the path did not change, else bound anew (the old one
 * stays in r->control, for worker_takeover to remove once the takeover is done).
 */
static bool take_control(struct worker *w, struct received *r, char *err, size_t errlen)
{
	char path[108];
	int fd = -1;

	if (!worker_takeover_path(w->cfg, path, sizeof(path)))
		return true;
	if (r->control >= 0 && strcmp(path, r->control_path) == 0) {
		fd = r->control;
		r->control = -1;
	}
	w->takeover = takeover_listen(&w->loop, path, fd, on_offer, on_done, w, err, errlen);
	return w->takeover != NULL;
}

/* Client listeners: those handed over, whatever listen_addr says now (as with LISTEN_FDS). */
static bool take_clients(struct worker *w, struct received *r, listen_accept_fn accept, char *err,
			 size_t errlen)
{
	w->listeners = listen_adopt(&w->loop, r->clients, r->n_clients, accept, w, err, errlen);
	r->n_clients = 0;
	return w->listeners != NULL;
}

/* New side: a client the old process handed over. */
static void adopt_client(void *arg, int fd, const uint8_t *rec, size_t len)
{
	struct worker *w = arg;
	char why[200];

	if (!client_adopt(&w->clients, fd, rec, len, why, sizeof(why)))
		log_warning("takeover: a client handed over could not be taken: %s", why);
}

/* New side: the old process's servers count against our max_db/user_connections. */
static void count_servers_elsewhere(void *arg, const char *db, const char *user, int n)
{
	struct worker *w = arg;

	pool_servers_elsewhere(&w->pools, db, user, n);
}

static void old_process_gone(void *arg)
{
	struct worker *w = arg;

	pool_servers_elsewhere_clear(&w->pools);
}

static const struct takeover_receiver receiver = {
	.client = adopt_client,
	.servers = count_servers_elsewhere,
	.ended = old_process_gone,
};

bool worker_takeover(struct worker *w, const char *path, listen_accept_fn accept,
		     httpd_handler_fn metrics, void *metrics_arg, long *old_pid, char *err,
		     size_t errlen)
{
	struct takeover_offer offer;
	struct received r;
	int fd = takeover_begin(path, &offer, old_pid, err, errlen);

	if (fd < 0)
		return false;
	sort_offer(&offer, &r);
	for (int i = 0; i < r.n_clients; i++)
		log_info("takeover: listening socket %s from pid %ld", r.clients[i].addr, *old_pid);
	if (r.n_clients == 0) {
		snprintf(err, errlen, "pid %ld handed over no client listener", *old_pid);
		close_received(&r);
		close(fd);
		return false;
	}
	if (!take_clients(w, &r, accept, err, errlen) ||
	    !take_metrics(w, &r, metrics, metrics_arg, err, errlen) ||
	    !take_control(w, &r, err, errlen)) {
		close_received(&r);
		close(fd);
		return false;
	}
	if (!takeover_finish(fd, &receiver, w, err, errlen)) {
		close_received(&r);
		return false;
	}
	w->takeover_in = takeover_receive_clients(&w->loop, fd, *old_pid, &receiver, w);
	/* The old takeover socket, when the path changed: nobody listens on it any more. */
	if (r.control >= 0)
		takeover_discard(r.control, r.control_path);
	return true;
}
