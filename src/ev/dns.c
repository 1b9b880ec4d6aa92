/*
 * dns: c-ares lookups driven by libev, and the answer cache (see ev/dns.h).
 *
 * c-ares tells us which sockets it wants watched (sock_state_cb) and when it next needs the
 * clock (ares_timeout); one ev_io per socket and one ev_timer feed ares_process_fd().
 *
 * Invariants: an entry is pending exactly while one c-ares query for it runs; its waiters list
 * is empty unless it is pending; every waiter's conn points back at it (conn->dns_wait).
 * Entries are freed only by dns_free: the set of names is the set of configured hosts.
 */
#include "ev/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/list.h"
#include "core/log.h"
#include "ev/conn.h"
#include "ev/loop.h"

struct dns_sock {
	ev_io io;
	struct dns *d;
	struct dns_sock *next;
};

struct dns_entry {
	struct list_node node;
	struct dns *d;
	char *name;
	bool pending;
	bool ok;
	struct sockaddr_storage addr;
	socklen_t len;
	char err[200];
	uint64_t expires_us;
	struct list_node waiters;
};

struct dns_wait {
	struct list_node node;
	struct conn *c;
};

struct dns {
	struct evloop *loop;
	ares_channel channel;
	ev_timer timer;
	struct dns_sock *socks;
	struct list_node entries;
	double max_ttl, nxdomain_ttl;
	bool destroying;
	struct dns_entry *starting; /* the entry whose lookup is being started */
};

static void update_timer(struct dns *d)
{
	struct timeval tv, *t = ares_timeout(d->channel, NULL, &tv);

	ev_timer_stop(d->loop->ev, &d->timer);
	if (t) {
		ev_timer_set(&d->timer, (double)t->tv_sec + (double)t->tv_usec / 1e6, 0.);
		ev_timer_start(d->loop->ev, &d->timer);
	}
}

static void on_sock(struct ev_loop *ev, ev_io *w, int revents)
{
	struct dns_sock *s = (struct dns_sock *)w;
	struct dns *d = s->d;
	int fd = w->fd;

	ares_process_fd(d->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
			(revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	update_timer(d);
}

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct dns *d = w->data;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	update_timer(d);
}

/* c-ares opens, changes or closes interest in one of its sockets. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;

	for (pp = &d->socks; *pp && (*pp)->io.fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (!readable && !writable) {
		if (s) {
			ev_io_stop(d->loop->ev, &s->io);
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			log_error("dns: out of memory watching a socket");
			return;
		}
		s->d = d;
		s->next = d->socks;
		d->socks = s;
		ev_io_init(&s->io, on_sock, fd, 0);
	}
	ev_io_stop(d->loop->ev, &s->io);
	ev_io_set(&s->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(d->loop->ev, &s->io);
}

static bool set_servers(struct dns *d, const char *servers, char *err, size_t errlen);

struct dns *dns_new(struct evloop *loop, const char *servers, char *err, size_t errlen)
{
	struct dns *d = calloc(1, sizeof(*d));
	struct ares_options opts = { 0 };
	int rc;

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(d);
		return NULL;
	}
	opts.sock_state_cb = sock_state;
	opts.sock_state_cb_data = d;
	rc = ares_init_options(&d->channel, &opts, ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		free(d);
		return NULL;
	}
	d->loop = loop;
	d->max_ttl = d->nxdomain_ttl = 15;
	list_init(&d->entries);
	ev_init(&d->timer, on_timer);
	d->timer.data = d;
	if (!set_servers(d, servers, err, errlen)) {
		dns_free(d);
		return NULL;
	}
	return d;
}

/* Ask these servers instead of the system's ("" = keep the system's). */
static bool set_servers(struct dns *d, const char *servers, char *err, size_t errlen)
{
	int rc;

	if (!servers || !*servers)
		return true;
	rc = ares_set_servers_ports_csv(d->channel, servers);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns_servers \"%s\": %s", servers, ares_strerror(rc));
		return false;
	}
	return true;
}

void dns_set_ttls(struct dns *d, double max_ttl, double nxdomain_ttl)
{
	d->max_ttl = max_ttl;
	d->nxdomain_ttl = nxdomain_ttl;
}

void dns_free(struct dns *d)
{
	struct list_node *n, *t;

	if (!d)
		return;
	d->destroying = true;
	/* Pending callbacks run now with ARES_EDESTRUCTION and touch nothing. */
	ares_destroy(d->channel);
	ev_timer_stop(d->loop->ev, &d->timer);
	while (d->socks) {
		struct dns_sock *s = d->socks;

		ev_io_stop(d->loop->ev, &s->io);
		d->socks = s->next;
		free(s);
	}
	list_for_each_safe(n, t, &d->entries) {
		struct dns_entry *e = list_entry(n, struct dns_entry, node);
		struct list_node *wn, *wt;

		list_for_each_safe(wn, wt, &e->waiters) {
			struct dns_wait *w = list_entry(wn, struct dns_wait, node);

			w->c->dns_wait = NULL;
			list_del(wn);
			free(w);
		}
		list_del(n);
		free(e->name);
		free(e);
	}
	ares_library_cleanup();
	free(d);
}

/* The first IPv4 address, else the first address of any family. */
static const struct ares_addrinfo_node *pick(const struct ares_addrinfo *res)
{
	const struct ares_addrinfo_node *n;

	for (n = res ? res->nodes : NULL; n; n = n->ai_next)
		if (n->ai_family == AF_INET)
			return n;
	return res ? res->nodes : NULL;
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_entry *e = arg;
	struct dns *d = e->d;
	const struct ares_addrinfo_node *node;
	struct list_node waiters, *n;
	double ttl;
	char old[INET6_ADDRSTRLEN] = "", now[INET6_ADDRSTRLEN] = "";

	if (status == ARES_EDESTRUCTION || d->destroying) {
		if (res)
			ares_freeaddrinfo(res);
		return;
	}
	e->pending = false;
	node = status == ARES_SUCCESS ? pick(res) : NULL;
	if (node && node->ai_addrlen <= sizeof(e->addr)) {
		if (e->ok && e->len)
			inet_ntop(e->addr.ss_family,
				  e->addr.ss_family == AF_INET
					  ? (void *)&((struct sockaddr_in *)&e->addr)->sin_addr
					  : (void *)&((struct sockaddr_in6 *)&e->addr)->sin6_addr,
				  old, sizeof(old));
		memset(&e->addr, 0, sizeof(e->addr));
		memcpy(&e->addr, node->ai_addr, node->ai_addrlen);
		e->len = node->ai_addrlen;
		e->ok = true;
		e->err[0] = '\0';
		inet_ntop(e->addr.ss_family,
			  e->addr.ss_family == AF_INET
				  ? (void *)&((struct sockaddr_in *)&e->addr)->sin_addr
				  : (void *)&((struct sockaddr_in6 *)&e->addr)->sin6_addr,
			  now, sizeof(now));
		ttl = node->ai_ttl > 0 && node->ai_ttl < d->max_ttl ? node->ai_ttl : d->max_ttl;
		e->expires_us = clock_now_us() + (uint64_t)(ttl * 1e6);
		if (*old && strcmp(old, now) != 0)
			log_info("dns: %s moved from %s to %s", e->name, old, now);
		else
			log_debug("dns: %s is %s (for %.0fs)", e->name, now, ttl);
	} else {
		e->ok = false;
		snprintf(e->err, sizeof(e->err), "could not resolve host \"%s\": %s", e->name,
			 status == ARES_SUCCESS ? "no address" : ares_strerror(status));
		e->expires_us = clock_now_us() + (uint64_t)(d->nxdomain_ttl * 1e6);
		log_warning("dns: %s", e->err);
	}
	if (res)
		ares_freeaddrinfo(res);
	/* Answered inside ares_getaddrinfo (hosts file): dns_lookup hands it out itself. */
	if (d->starting == e)
		return;
	/* Hand the answer out one waiter at a time: a waiter's callback may close others. */
	list_init(&waiters);
	while (!list_empty(&e->waiters)) {
		n = list_first(&e->waiters);
		list_del(n);
		list_add_tail(&waiters, n);
	}
	while (!list_empty(&waiters)) {
		struct dns_wait *w;

		n = list_first(&waiters);
		w = list_entry(n, struct dns_wait, node);
		list_del(n);
		w->c->dns_wait = NULL;
		conn_dns_done(w->c, e->ok ? (struct sockaddr *)&e->addr : NULL, e->len,
			      e->ok ? NULL : e->err);
		free(w);
	}
}

bool dns_is_name(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return host[0] != '/' && inet_pton(AF_INET, host, buf) != 1 &&
	       inet_pton(AF_INET6, host, buf) != 1;
}

static struct dns_entry *find_entry(struct dns *d, const char *name)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &d->entries) {
		struct dns_entry *e = list_entry(n, struct dns_entry, node);

		if (strcasecmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

enum dns_answer dns_lookup(struct dns *d, const char *name, struct conn *c,
			   struct sockaddr_storage *addr, socklen_t *len, char *err, size_t errlen)
{
	struct dns_entry *e = find_entry(d, name);
	struct dns_wait *w;
	uint64_t now = clock_now_us();

	if (e && !e->pending && now < e->expires_us) {
		if (e->ok) {
			memcpy(addr, &e->addr, sizeof(*addr));
			*len = e->len;
			return DNS_FOUND;
		}
		snprintf(err, errlen, "%s", e->err);
		return DNS_FAILED;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->name = strdup(name))) {
			free(e);
			snprintf(err, errlen, "could not resolve host \"%s\": out of memory", name);
			return DNS_FAILED;
		}
		e->d = d;
		list_init(&e->waiters);
		list_add_tail(&d->entries, &e->node);
	}
	if (!e->pending) {
		struct ares_addrinfo_hints hints = { 0 };

		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		e->pending = true;
		d->starting = e;
		ares_getaddrinfo(d->channel, name, NULL, &hints, on_answer, e);
		d->starting = NULL;
		update_timer(d);
		if (!e->pending) {
			/* Answered at once (hosts file, or a failure before any packet was sent). */
			if (e->ok) {
				memcpy(addr, &e->addr, sizeof(*addr));
				*len = e->len;
				return DNS_FOUND;
			}
			snprintf(err, errlen, "%s", e->err);
			return DNS_FAILED;
		}
	}
	if (!c)
		return DNS_WAITING; /* the answer is cached when it comes; ask again later */
	w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "could not resolve host \"%s\": out of memory", name);
		return DNS_FAILED;
	}
	w->c = c;
	c->dns_wait = w;
	list_add_tail(&e->waiters, &w->node);
	return DNS_WAITING;
}

void dns_wait_cancel(struct dns_wait *w)
{
	if (!w)
		return;
	w->c->dns_wait = NULL;
	list_del(&w->node);
	free(w);
}

/* An entry's address as text ("" when it has none). */
static void entry_addr(const struct dns_entry *e, char *buf, size_t len)
{
	const void *a = NULL;

	buf[0] = '\0';
	if (e->pending || !e->ok)
		return;
	if (e->addr.ss_family == AF_INET)
		a = &((const struct sockaddr_in *)&e->addr)->sin_addr;
	else if (e->addr.ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)&e->addr)->sin6_addr;
	if (!a || !inet_ntop(e->addr.ss_family, a, buf, (socklen_t)len))
		buf[0] = '\0';
}

void dns_for_each_host(const struct dns *d, dns_host_fn fn, void *arg)
{
	const struct list_node *n;
	uint64_t now = clock_now_us();
	char addr[INET6_ADDRSTRLEN];

	if (!d)
		return;
	for (n = d->entries.next; n != &d->entries; n = n->next) {
		const struct dns_entry *e = list_entry(n, struct dns_entry, node);
		struct dns_host h = {
			.name = e->name, .addr = addr, .pending = e->pending, .ok = e->ok
		};

		entry_addr(e, addr, sizeof(addr));
		if (!e->pending && e->expires_us > now)
			h.ttl = (double)(e->expires_us - now) / 1e6;
		fn(arg, &h);
	}
}

void dns_library_version(char *buf, size_t len)
{
	snprintf(buf, len, "c-ares %s", ares_version(NULL));
}
