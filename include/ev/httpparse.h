/*
 * httpparse: the request line and headers of an HTTP/1.x request, parsed from bytes (for
 * ev/httpd). Pure: fed a buffer, never a socket, so it can be unit-tested and fuzzed; no I/O, no
 * allocation. Only what a GET server needs is kept: method, path without its query, whether the
 * connection stays open; a request announcing a body is refused.
 */
#ifndef PGMUX_EV_HTTPPARSE_H
#define PGMUX_EV_HTTPPARSE_H

#include <stdbool.h>
#include <stddef.h>

/* A request line and the headers that matter, parsed (see httpparse_request). */
struct http_request {
	char method[8];
	char path[256];  /* without the query string */
	bool keep_alive; /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
	size_t length;   /* bytes of the request, its blank line included */
};

enum httpparse_result {
	HTTPPARSE_INCOMPLETE, /* no blank line yet: read more */
	HTTPPARSE_OK,
	HTTPPARSE_BAD, /* not HTTP/1.x, a body announced, a path too long: 400 */
};

/* Parse the request at the start of buf (len bytes). Pure: no I/O, no allocation. */
enum httpparse_result httpparse_request(const char *buf, size_t len, struct http_request *req);

#endif
