/*
 * httpd: a small HTTP/1.1 server on the event loop, for pgmux's own endpoints (/metrics,
 * /health, /ready). GET and HEAD only, no request bodies; keep-alive and pipelined requests are
 * served in order.
 *
 * Bounded against slow or hostile clients: at most HTTPD_MAX_CONNS connections (a newcomer when
 * all are taken evicts the one that has waited longest for its request, so a flood of idle or
 * dribbling connections cannot lock scrapers out), request headers of at most HTTPD_MAX_REQUEST
 * bytes in a fixed per-connection buffer (more is answered 431), a deadline for a request once
 * its first byte came and for writing a response, and no reading while a response is being
 * written (back-pressure: memory per connection is its buffer plus one response). Never blocks
 * the loop: sockets are non-blocking, accepting is bounded per wake-up.
 *
 * Independent of pgmux's other listeners: shutting those down leaves this one serving.
 */
#ifndef PGMUX_EV_HTTPD_H
#define PGMUX_EV_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct httpd;

#define HTTPD_MAX_CONNS 16
#define HTTPD_MAX_REQUEST 8192    /* request line and headers */
#define HTTPD_REQUEST_TIMEOUT 5.0 /* seconds from a request's first byte to its end */
#define HTTPD_IDLE_TIMEOUT 30.0   /* seconds a connection may wait for a request */
#define HTTPD_WRITE_TIMEOUT 10.0  /* seconds to write a response */

/* What the handler answers. body is malloc'd and taken over by httpd (NULL: empty body). */
struct httpd_reply {
	int status;               /* 200, 404, 503 ... */
	const char *content_type; /* a static string; NULL = text/plain; charset=utf-8 */
	char *body;
	size_t len;
};

/*
 * Called for every GET or HEAD (path without its query string); fills reply. Runs on the loop:
 * it must not block. It may not close the httpd.
 */
typedef void (*httpd_handler_fn)(void *arg, const char *path, struct httpd_reply *reply);

/* What the server has done since it opened, for its own metrics. */
struct httpd_stats {
	uint64_t requests; /* answered, any status */
	uint64_t rejected; /* malformed, too large or a method other than GET and HEAD */
	uint64_t timeouts; /* closed by a deadline */
	uint64_t evicted;  /* closed to make room for a newcomer */
	int conns;         /* open now */
};

/*
 * Listen on addr ("host:port", "[v6addr]:port", "*:port" for every address) and serve requests
 * with fn(arg, ...). NULL (and err) when addr is malformed or cannot be bound.
 */
struct httpd *httpd_open(struct evloop *loop, const char *addr, httpd_handler_fn fn, void *arg,
			 char *err, size_t errlen);

/*
 * Serve on n listening sockets handed over by another pgmux process (ev/takeover.h): the
 * descriptors are taken over, or closed on failure (NULL and err).
 */
struct httpd *httpd_adopt(struct evloop *loop, const int *fds, int n, httpd_handler_fn fn,
			  void *arg, char *err, size_t errlen);

/* The listening descriptors (still owned by h), at most max; returns how many. */
int httpd_listen_fds(const struct httpd *h, int *fds, int max);

void httpd_get_stats(const struct httpd *h, struct httpd_stats *out);

/* Close the listener and every connection (responses in flight are dropped). NULL is a no-op. */
void httpd_close(struct httpd *h);

#endif
