/*
 * httpd: the small HTTP/1.1 server for pgmux's own endpoints (see ev/httpd.h).
 *
 * A connection is in one of three states: READING (waiting for, or receiving, a request),
 * WRITING (a response is being sent; the socket is not read) and LINGER (the last response is
 * out, the write side shut, and what the client still sends is read and dropped for a moment so
 * that closing does not reset the connection before the client has read the answer). Each state
 * has its deadline in the connection's timer. Closed connections are parked on the loop and
 * freed after the callback that closed them.
 */
#include "ev/httpd.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/list.h"
#include "core/log.h"
#include "ev/httpparse.h"
#include "ev/loop.h"

#define MAX_LISTEN_FDS 4
#define LINGER_TIMEOUT 1.0
#define ACCEPTS_PER_WAKEUP 32

enum hconn_state { HCONN_READING, HCONN_WRITING, HCONN_LINGER };

struct hconn {
	struct list_node node;
	struct httpd *h;
	int fd;
	enum hconn_state state;
	ev_io io;
	ev_timer timer;
	double since;         /* when it entered its state (loop time) */
	bool request_started; /* READING: a byte of the next request came */
	bool keep_alive;      /* WRITING: read the next request afterwards */
	char head[256];       /* status line and headers of the response being written */
	size_t head_len;
	char *body; /* malloc'd; NULL for none or HEAD */
	size_t body_len;
	size_t out_off; /* bytes of head + body written */
	size_t in_len;
	char in[HTTPD_MAX_REQUEST]; /* last: not cleared when a connection is set up */
};

struct httpd {
	struct evloop *loop;
	httpd_handler_fn fn;
	void *arg;
	int n_listen;
	ev_io listen_io[MAX_LISTEN_FDS];
	struct list_node conns;
	struct httpd_stats stats;
};

static void on_io(struct ev_loop *ev, ev_io *w, int revents);
static void on_timer(struct ev_loop *ev, ev_timer *w, int revents);
static void serve(struct hconn *c);

/* ---- connections ---- */

static void free_conn(void *obj)
{
	struct hconn *c = obj;

	free(c->body);
	free(c);
}

static void conn_close(struct hconn *c)
{
	struct httpd *h = c->h;

	ev_io_stop(h->loop->ev, &c->io);
	ev_timer_stop(h->loop->ev, &c->timer);
	close(c->fd);
	list_del(&c->node);
	h->stats.conns--;
	evloop_park(h->loop, c, free_conn);
}

/* Enter state with a deadline of timeout seconds from now, watching events. */
static void conn_enter(struct hconn *c, enum hconn_state state, double timeout, int events)
{
	struct ev_loop *ev = c->h->loop->ev;

	c->state = state;
	c->since = ev_now(ev);
	ev_io_stop(ev, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(ev, &c->io);
	ev_timer_stop(ev, &c->timer);
	ev_timer_set(&c->timer, timeout, 0);
	ev_timer_start(ev, &c->timer);
}

/* The request that started now must be complete within HTTPD_REQUEST_TIMEOUT. */
static void request_started(struct hconn *c)
{
	struct ev_loop *ev = c->h->loop->ev;
	double left = ev_timer_remaining(ev, &c->timer);

	c->request_started = true;
	if (left > HTTPD_REQUEST_TIMEOUT) {
		ev_timer_stop(ev, &c->timer);
		ev_timer_set(&c->timer, HTTPD_REQUEST_TIMEOUT, 0);
		ev_timer_start(ev, &c->timer);
	}
}

static void start_reading(struct hconn *c)
{
	c->request_started = c->in_len > 0;
	conn_enter(c, HCONN_READING, c->in_len ? HTTPD_REQUEST_TIMEOUT : HTTPD_IDLE_TIMEOUT,
		   EV_READ);
}

/* The last response is out: stop sending, drop what still comes, close soon. */
static void start_linger(struct hconn *c)
{
	shutdown(c->fd, SHUT_WR);
	conn_enter(c, HCONN_LINGER, LINGER_TIMEOUT, EV_READ);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

/* Write as much of the response as the socket takes. False when the connection was closed. */
static bool flush(struct hconn *c)
{
	while (c->out_off < c->head_len + c->body_len) {
		struct iovec iov[2];
		struct msghdr msg = { .msg_iov = iov };
		ssize_t n;

		if (c->out_off < c->head_len) {
			iov[0].iov_base = c->head + c->out_off;
			iov[0].iov_len = c->head_len - c->out_off;
			iov[1].iov_base = c->body;
			iov[1].iov_len = c->body_len;
			msg.msg_iovlen = c->body_len ? 2 : 1;
		} else {
			iov[0].iov_base = c->body + (c->out_off - c->head_len);
			iov[0].iov_len = c->head_len + c->body_len - c->out_off;
			msg.msg_iovlen = 1;
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_close(c);
			return false;
		}
		c->out_off += (size_t)n;
	}
	/* Done: the next request, or the end. */
	free(c->body);
	c->body = NULL;
	c->body_len = c->head_len = c->out_off = 0;
	if (!c->keep_alive) {
		start_linger(c);
		return false;
	}
	start_reading(c);
	return true;
}

/*
 * Send a response (body taken over); keep_alive: serve further requests on this connection.
 * Returns whether the connection can go on serving right away (false: closed, lingering, or
 * waiting for the socket to take the rest).
 */
static bool respond(struct hconn *c, int status, const char *type, char *body, size_t len,
		    bool head_only, bool keep_alive)
{
	int n;

	c->h->stats.requests++;
	n = snprintf(c->head, sizeof(c->head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
		     status, status_text(status), type ? type : "text/plain; charset=utf-8", len,
		     status == 405 ? "Allow: GET, HEAD\r\n" : "",
		     keep_alive ? "" : "Connection: close\r\n");
	c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
	if (head_only) {
		free(body);
		body = NULL;
		len = 0;
	}
	c->body = body;
	c->body_len = len;
	c->out_off = 0;
	c->keep_alive = keep_alive;
	conn_enter(c, HCONN_WRITING, HTTPD_WRITE_TIMEOUT, EV_WRITE);
	if (!flush(c))
		return false;
	return c->state == HCONN_READING;
}

static bool respond_text(struct hconn *c, int status, const char *text, bool keep_alive)
{
	char *body = strdup(text);

	return respond(c, status, NULL, body, body ? strlen(text) : 0, false, keep_alive);
}

/* Answer the complete requests in the buffer, in order, while the socket takes the answers. */
static void serve(struct hconn *c)
{
	while (c->state == HCONN_READING && c->in_len > 0) {
		struct http_request req;
		struct httpd_reply reply = { 0 };
		enum httpparse_result r = httpparse_request(c->in, c->in_len, &req);
		bool head, go_on;

		if (r == HTTPPARSE_INCOMPLETE && c->in_len < sizeof(c->in))
			return;
		if (r != HTTPPARSE_OK) {
			c->h->stats.rejected++;
			c->in_len = 0;
			respond_text(c, r == HTTPPARSE_BAD ? 400 : 431,
				     r == HTTPPARSE_BAD ? "bad request\n"
							: "request headers too large\n",
				     false);
			return;
		}
		memmove(c->in, c->in + req.length, c->in_len - req.length);
		c->in_len -= req.length;
		head = strcmp(req.method, "HEAD") == 0;
		if (!head && strcmp(req.method, "GET") != 0) {
			c->h->stats.rejected++;
			c->in_len = 0;
			respond_text(c, 405, "only GET and HEAD\n", false);
			return;
		}
		c->h->fn(c->h->arg, req.path, &reply);
		go_on = respond(c, reply.status ? reply.status : 500, reply.content_type,
				reply.body, reply.len, head, req.keep_alive);
		if (!go_on)
			return;
	}
}

static void on_readable(struct hconn *c)
{
	char drop[4096];
	ssize_t n;

	if (c->state == HCONN_LINGER) {
		n = recv(c->fd, drop, sizeof(drop), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_close(c);
		return;
	}
	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	if (!c->request_started)
		request_started(c);
	c->in_len += (size_t)n;
	serve(c);
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents)
{
	struct hconn *c = w->data;

	if (c->state == HCONN_WRITING) {
		if (flush(c) && c->state == HCONN_READING)
			serve(c);
		return;
	}
	on_readable(c);
}

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct hconn *c = w->data;

	if (c->state != HCONN_LINGER && (c->state == HCONN_WRITING || c->request_started))
		c->h->stats.timeouts++;
	conn_close(c);
}

/*
 * All connections taken: close the one that has waited longest for a request (idle or still
 * dribbling one in), else the oldest writer. A prompt scraper is never the victim: it is newest.
 */
static void evict_one(struct httpd *h)
{
	struct hconn *victim = NULL;
	struct list_node *n, *t;

	list_for_each_safe(n, t, &h->conns) {
		struct hconn *c = list_entry(n, struct hconn, node);
		bool c_reading = c->state != HCONN_WRITING;

		if (!victim || (c_reading && victim->state == HCONN_WRITING) ||
		    ((c_reading == (victim->state != HCONN_WRITING)) && c->since < victim->since))
			victim = c;
	}
	if (victim) {
		h->stats.evicted++;
		conn_close(victim);
	}
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents)
{
	struct httpd *h = w->data;

	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct hconn *c;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_warning("metrics endpoint: out of file descriptors");
			return;
		}
		if (h->stats.conns >= HTTPD_MAX_CONNS)
			evict_one(h);
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		memset(c, 0, offsetof(struct hconn, in));
		c->h = h;
		c->fd = fd;
		ev_io_init(&c->io, on_io, fd, EV_READ);
		c->io.data = c;
		ev_timer_init(&c->timer, on_timer, HTTPD_IDLE_TIMEOUT, 0);
		c->timer.data = c;
		list_add_tail(&h->conns, &c->node);
		h->stats.conns++;
		start_reading(c);
	}
}

/* ---- listening ---- */

/* "host:port", "[v6]:port", "*:port" -> host (NULL for every address) and port text. */
static bool split_addr(const char *addr, char *host, size_t hostlen, const char **port)
{
	const char *colon;
	size_t n;

	if (*addr == '[') {
		const char *close_br = strchr(addr, ']');

		if (!close_br || close_br[1] != ':')
			return false;
		n = (size_t)(close_br - addr - 1);
		addr++;
		colon = close_br + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return false;
		n = (size_t)(colon - addr);
	}
	if (n >= hostlen || !colon[1])
		return false;
	memcpy(host, addr, n);
	host[n] = '\0';
	*port = colon + 1;
	return true;
}

struct httpd *httpd_open(struct evloop *loop, const char *addr, httpd_handler_fn fn, void *arg,
			 char *err, size_t errlen)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char host[256];
	const char *port;
	struct httpd *h;
	int rc, one = 1;

	if (!split_addr(addr, host, sizeof(host), &port)) {
		snprintf(err, errlen, "metrics_listen %s: expected host:port", addr);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = loop;
	h->fn = fn;
	h->arg = arg;
	list_init(&h->conns);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(*host && strcmp(host, "*") != 0 ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", addr, gai_strerror(rc));
		free(h);
		return NULL;
	}
	for (ai = res; ai && h->n_listen < MAX_LISTEN_FDS; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
			snprintf(err, errlen, "metrics_listen: could not listen on %s: %s", addr,
				 strerror(errno));
			close(fd);
			freeaddrinfo(res);
			httpd_close(h);
			return NULL;
		}
		ev_io_init(&h->listen_io[h->n_listen], on_accept, fd, EV_READ);
		h->listen_io[h->n_listen].data = h;
		ev_io_start(loop->ev, &h->listen_io[h->n_listen]);
		h->n_listen++;
	}
	freeaddrinfo(res);
	if (h->n_listen == 0) {
		snprintf(err, errlen, "metrics_listen %s: no address to listen on", addr);
		httpd_close(h);
		return NULL;
	}
	return h;
}

struct httpd *httpd_adopt(struct evloop *loop, const int *fds, int n, httpd_handler_fn fn,
			  void *arg, char *err, size_t errlen)
{
	struct httpd *h = n <= MAX_LISTEN_FDS ? calloc(1, sizeof(*h)) : NULL;

	if (!h) {
		snprintf(err, errlen,
			 "metrics_listen: %d sockets handed over: out of memory or too many", n);
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return NULL;
	}
	h->loop = loop;
	h->fn = fn;
	h->arg = arg;
	list_init(&h->conns);
	for (int i = 0; i < n; i++) {
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
		ev_io_init(&h->listen_io[i], on_accept, fds[i], EV_READ);
		h->listen_io[i].data = h;
		ev_io_start(loop->ev, &h->listen_io[i]);
	}
	h->n_listen = n;
	return h;
}

int httpd_listen_fds(const struct httpd *h, int *fds, int max)
{
	int n = 0;

	for (; h && n < h->n_listen && n < max; n++)
		fds[n] = h->listen_io[n].fd;
	return n;
}

void httpd_get_stats(const struct httpd *h, struct httpd_stats *out)
{
	*out = h->stats;
}

void httpd_close(struct httpd *h)
{
	struct list_node *n, *t;

	if (!h)
		return;
	for (int i = 0; i < h->n_listen; i++) {
		ev_io_stop(h->loop->ev, &h->listen_io[i]);
		close(h->listen_io[i].fd);
	}
	list_for_each_safe(n, t, &h->conns)
		conn_close(list_entry(n, struct hconn, node));
	evloop_run_deferred(h->loop); /* the parked connections */
	free(h);
}
