/*
 * http: asynchronous HTTP(S) GET requests through libcurl's multi-socket interface, driven by
 * the libev loop. Used to poll Patroni's REST API. Any number of requests run at once on one
 * client; connections are kept open and reused between requests to the same server.
 *
 * A response is collected in memory up to HTTP_MAX_BODY bytes (more is an error). Redirects are
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
	double timeout;        /* seconds for the whole request (connect included); <= 0: none */
	const char *username;  /* HTTP basic auth; NULL or "" = none */
	const char *password;
	const char *ca_file;   /* NULL/"" = system CAs */
	const char *cert_file; /* client certificate for https; NULL/"" = none */
	const char *key_file;
	bool verify;           /* verify the server certificate and host name (default true) */
};

/*
 * A request is done. status: the HTTP status (0 when no response came). body: the response,
 * NUL-terminated, len bytes ("" when error is set); it and error are valid only during the call.
 * error: NULL when the transfer worked, whatever the status; else a short text ("response too
 * large", "Connection refused", "Operation timed out after ..."). Called from the loop, never
 * from inside http_get(). The callback may start and cancel requests, but must not free the
 * client.
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
