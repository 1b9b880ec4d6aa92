/*
 * http: asynchronous HTTP(S) requests through libcurl's multi-socket interface, driven by the
 * libev loop. Used to poll Patroni's REST API (GET) and to read and watch etcd's v3 JSON gateway
 * (POST, and a streamed POST whose response never ends). Any number of requests run at once on
 * one client; connections are kept open and reused between requests to the same server.
 *
 * A response is collected in memory up to a cap (HTTP_MAX_BODY unless the request sets its own;
 * more is an error). A streamed response is handed to its owner as it arrives and only the part
 * the owner has not consumed yet is kept, up to the same cap, so an endless stream holds bounded
 * memory. Redirects are
 * not followed, only http:// and https:// URLs are accepted, proxies named in the environment are
 * not used, and no signal is ever raised or handled. libcurl resolves host names itself, in a
 * helper thread of its own, so a slow DNS server does not stall the loop.
 */
#ifndef PGMUX_EV_HTTP_H
#define PGMUX_EV_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct evloop;
struct http; /* one client: a CURLM handle + its libev watchers */

#define HTTP_MAX_BODY (1024 * 1024)

struct http_opts {
	double timeout;       /* seconds for the whole request (connect included); <= 0: none */
	const char *username; /* HTTP basic auth; NULL or "" = none */
	const char *password;
	const char *ca_file;   /* NULL/"" = system CAs */
	const char *cert_file; /* client certificate for https; NULL/"" = none */
	const char *key_file;
	bool verify;     /* verify the server certificate and host name (default true) */
	size_t max_body; /* bytes a response (a stream: its unconsumed part) may reach;
				  0 = HTTP_MAX_BODY; a stream's should pass 16 KB, the most
				  libcurl hands over at once */
};

/*
 * A request is done. status: the HTTP status (0 when no response came). body: the response,
 * NUL-terminated, len bytes ("" when error is set); it and error are valid only during the call.
 * error: NULL when the transfer worked, whatever the status; else a short text ("response too
 * large", "Connection refused", "Operation timed out after ..."). Called from the loop, never
 * from inside http_get() or its siblings. The callback may start and cancel requests, but must
 * not free the client. For a stream, body is always "" (its bytes went to the data callback)
 * and error NULL means the server ended the response.
 */
typedef void (*http_done_fn)(void *arg, int status, const char *body, size_t len,
			     const char *error);

/* A client on loop; the caller owns it. NULL on failure (out of memory, libcurl init). */
struct http *http_new(struct evloop *loop);

/*
 * Start GET url with o (copied: nothing is borrowed past the call). fn(arg, ...) is called
 * exactly once, later, unless the request is cancelled. False: it could not be started (out of
 * memory, or this libcurl lacks an option, e.g. TLS) and fn will not be called. A malformed or
 * unsupported URL is reported through fn.
 */
bool http_get(struct http *h, const char *url, const struct http_opts *o, http_done_fn fn,
	      void *arg);

/* As http_get(), but POST body[0..len) (copied) as application/json. */
bool http_post(struct http *h, const char *url, const char *body, size_t len,
	       const struct http_opts *o, http_done_fn fn, void *arg);

/*
 * Bytes of a streamed response arrived. data[0..len) is everything not consumed yet, oldest
 * first, NUL-terminated; status is the HTTP status. Return how many leading bytes are consumed
 * (at most len): the rest is offered again, with what follows, next time. Called from the loop,
 * never from inside http_stream(); it may start and cancel requests, its own included (then
 * nothing more is called for it), but must not free the client.
 */
typedef size_t (*http_data_fn)(void *arg, int status, const char *data, size_t len);

/*
 * POST body[0..len) (copied; NULL/0: a GET) and hand the response to data(arg, ...) as it
 * arrives, for responses that do not end (etcd's watch). o->timeout bounds connecting only, and
 * TCP keepalive notices a peer that vanished silently. When the unconsumed bytes would pass
 * max_body, the request ends with "response too large". done(arg, ...) is called once at the
 * end, after the last data call, unless the request is cancelled. False: not started (as
 * http_get()).
 */
bool http_stream(struct http *h, const char *url, const char *body, size_t len,
		 const struct http_opts *o, http_data_fn data, http_done_fn done, void *arg);

/* Drop every request made with arg: its callback will never be called. */
void http_cancel(struct http *h, void *arg);

/*
 * Cancel every request (no callback is called) and free h. loop_alive false: the loop is
 * already destroyed (at exit), so watchers are only freed, not stopped. NULL is fine.
 */
void http_free(struct http *h, bool loop_alive);

/* "libcurl VERSION" of the libcurl linked at run time, into buf (--version). */
void http_library_version(char *buf, size_t len);

#endif
