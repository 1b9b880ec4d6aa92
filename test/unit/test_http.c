/* link: src/ev/http.c src/ev/conn.c src/ev/loop.c src/ev/dns.c src/ev/tls.c src/core/clock.c src/core/log.c src/proto/pkt.c src/proto/build.c */
/*
 * Unit tests for ev/http: real requests over loopback to a small HTTP server that runs in a
 * thread of the test (one more thread per connection), with the client driven by a real evloop.
 *
 * The server answers by path: /ok and /missing with a small body, /slow never (it waits for the
 * client to give up), /big announces a body over the cap, /chunked sends one without announcing
 * it, /exact sends exactly the cap, /redirect answers 302. It remembers the last request's path
 * and Authorization header. For POST and streams: /echo answers with the request's body and
 * content type, /lines streams numbered lines in pieces that split them, /endless streams lines
 * until the client goes, /noline streams bytes that never end a line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ev/http.h"
#include "ev/loop.h"

/* ---- the server ---- */

static struct {
	int lfd, port;
	int stop[2];
	pthread_t thread;
	pthread_mutex_t mu;
	char last_path[256];
	char last_auth[256];
	char last_type[256];
	int n_requests;
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER };

static bool send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void send_response(int fd, const char *status, const char *body)
{
	char head[256];

	snprintf(head, sizeof(head),
		 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n",
		 status, strlen(body));
	if (send_all(fd, head, strlen(head)))
		send_all(fd, body, strlen(body));
}

/* A body of n 'x' bytes, announced (Content-Length) or not (chunked). */
static void send_big(int fd, size_t n, bool announce)
{
	static char chunk[65536];
	char head[256];

	memset(chunk, 'x', sizeof(chunk));
	if (announce)
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 n);
	else
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			 "Connection: close\r\n\r\n");
	if (!send_all(fd, head, strlen(head)))
		return;
	while (n) {
		size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
		char size[32];

		snprintf(size, sizeof(size), "%zx\r\n", k);
		if (!announce && !send_all(fd, size, strlen(size)))
			return;
		if (!send_all(fd, chunk, k) || (!announce && !send_all(fd, "\r\n", 2)))
			return;
		n -= k;
	}
	if (!announce)
		send_all(fd, "0\r\n\r\n", 5);
}

/* Hold the connection until the client closes it (or 10 s pass). */
static void wait_for_close(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[256];

	while (poll(&p, 1, 10000) > 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Read the request head; false when the client sent something else (a TLS hello) or closed. */
static bool read_request(int fd, char *req, size_t size)
{
	size_t len = 0;

	while (len < size - 1) {
		ssize_t n = read(fd, req + len, size - 1 - len);

		if (n <= 0)
			return false;
		if (len == 0 && req[0] == 0x16)
			return false;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n"))
			return true;
	}
	return false;
}

/* The value of header name (with its ": "), or NULL. */
static const char *header(const char *req, const char *name)
{
	for (const char *line = strstr(req, "\r\n"); line; line = strstr(line + 2, "\r\n"))
		if (!strncasecmp(line + 2, name, strlen(name)))
			return line + 2 + strlen(name);
	return NULL;
}

static void remember(const char *req)
{
	const char *path = strchr(req, ' '), *auth = header(req, "Authorization: ");
	const char *type = header(req, "Content-Type: ");

	pthread_mutex_lock(&srv.mu);
	srv.n_requests++;
	srv.last_path[0] = srv.last_auth[0] = srv.last_type[0] = '\0';
	if (path)
		sscanf(path + 1, "%255s", srv.last_path);
	if (auth)
		snprintf(srv.last_auth, sizeof(srv.last_auth), "%.*s", (int)strcspn(auth, "\r"),
			 auth);
	if (type)
		snprintf(srv.last_type, sizeof(srv.last_type), "%.*s", (int)strcspn(type, "\r"),
			 type);
	pthread_mutex_unlock(&srv.mu);
}

/* Answer with the request's body (Content-Length bytes, some read with the head already). */
static void echo(int fd, char *req, size_t size)
{
	const char *cl = header(req, "Content-Length: ");
	char *body = strstr(req, "\r\n\r\n") + 4;
	size_t want = cl ? strtoul(cl, NULL, 10) : 0, have = strlen(body);

	while (have < want && body + have < req + size - 1) {
		ssize_t n = read(fd, body + have, (size_t)(req + size - 1 - (body + have)));

		if (n <= 0)
			return;
		have += (size_t)n;
		body[have] = '\0';
	}
	send_response(fd, "200 OK", body);
}

static bool send_chunk(int fd, const char *data, size_t n)
{
	char size[32];

	snprintf(size, sizeof(size), "%zx\r\n", n);
	return send_all(fd, size, strlen(size)) && send_all(fd, data, n) && send_all(fd, "\r\n", 2);
}

static const char chunked_head[] =
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

/* Lines "line N\n" for N in 0..99, cut into pieces of 7 bytes with a pause now and then. */
static void send_lines(int fd)
{
	char all[2000];
	size_t len = 0;

	for (int i = 0; i < 100; i++)
		len += (size_t)snprintf(all + len, sizeof(all) - len, "line %d\n", i);
	if (!send_all(fd, chunked_head, strlen(chunked_head)))
		return;
	for (size_t at = 0; at < len; at += 7) {
		if (!send_chunk(fd, all + at, len - at < 7 ? len - at : 7))
			return;
		if (at % 70 == 0)
			usleep(1000);
	}
	send_all(fd, "0\r\n\r\n", 5);
}

/* 100-byte lines (or, line false, bytes with no newline at all) until the client goes. */
static void send_endless(int fd, bool line)
{
	char piece[100];

	memset(piece, 'y', sizeof(piece));
	if (line)
		piece[sizeof(piece) - 1] = '\n';
	if (!send_all(fd, chunked_head, strlen(chunked_head)))
		return;
	while (send_chunk(fd, piece, sizeof(piece)))
		;
}

static const char redirect[] =
	"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[8192];

	if (read_request(fd, req, sizeof(req))) {
		remember(req);
		if (!strncmp(req, "GET /ok ", 8))
			send_response(fd, "200 OK", "{\"members\": []}");
		else if (!strncmp(req, "GET /slow ", 10))
			wait_for_close(fd);
		else if (!strncmp(req, "GET /big ", 9))
			send_big(fd, HTTP_MAX_BODY + 1, true);
		else if (!strncmp(req, "GET /chunked ", 13))
			send_big(fd, 2 * HTTP_MAX_BODY, false);
		else if (!strncmp(req, "GET /exact ", 11))
			send_big(fd, HTTP_MAX_BODY, true);
		else if (!strncmp(req, "GET /redirect ", 14))
			send_all(fd, redirect, strlen(redirect));
		else if (!strncmp(req, "POST /echo ", 11))
			echo(fd, req, sizeof(req));
		else if (!strncmp(req, "POST /lines ", 12) || !strncmp(req, "GET /lines ", 11))
			send_lines(fd);
		else if (!strncmp(req, "POST /endless ", 14))
			send_endless(fd, true);
		else if (!strncmp(req, "POST /noline ", 13))
			send_endless(fd, false);
		else
			send_response(fd, "404 Not Found", "no such thing");
	}
	close(fd);
	return NULL;
}

/* What the server saw last (copied under its lock: it runs in other threads). */
static void server_saw(char *path, char *auth)
{
	pthread_mutex_lock(&srv.mu);
	strcpy(path, srv.last_path);
	strcpy(auth, srv.last_auth);
	pthread_mutex_unlock(&srv.mu);
}

static void server_saw_type(char *type)
{
	pthread_mutex_lock(&srv.mu);
	strcpy(type, srv.last_type);
	pthread_mutex_unlock(&srv.mu);
}

static void *serve(void *arg)
{
	struct pollfd p[2] = { { .fd = srv.lfd, .events = POLLIN },
			       { .fd = srv.stop[0], .events = POLLIN } };

	while (poll(p, 2, -1) > 0 && !p[1].revents) {
		int fd = accept(srv.lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			continue;
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) != 0)
			close(fd);
		else
			pthread_detach(t);
	}
	return NULL;
}

/* A loopback TCP socket on a free port; listening or not. */
static int loopback_socket(bool listening, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || (listening && listen(fd, 64) < 0) ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* ---- the client side ---- */

static struct evloop loop;
static struct http *h;

/*
 * Results live in static storage: should a test fail with a request still running, its late
 * callback writes somewhere harmless rather than into a dead stack frame.
 */
struct result {
	int calls;
	int status;
	char body[64];
	size_t len;
	bool body_nul; /* body[len] was a NUL */
	char last_byte;
	char error[256];
	bool has_error;
	double at; /* seconds since the request started */
};

static int pending; /* callbacks still expected before the loop stops */
static double started;
static bool guard_fired;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record(struct result *res, int status, const char *body, size_t len, const char *error)
{
	res->calls++;
	res->status = status;
	res->len = len;
	snprintf(res->body, sizeof(res->body), "%s", body);
	res->body_nul = body[len] == '\0';
	res->last_byte = len ? body[len - 1] : 0;
	res->has_error = error != NULL;
	snprintf(res->error, sizeof(res->error), "%s", error ? error : "");
	res->at = now() - started;
}

static void done(void *arg, int status, const char *body, size_t len, const char *error)
{
	record(arg, status, body, len, error);
	if (--pending == 0)
		evloop_break(&loop);
}

static void on_guard(void *arg)
{
	guard_fired = true;
	evloop_break(&loop);
}

/* Run the loop until `expect` callbacks came or max seconds passed. */
static void run(int expect, double max)
{
	struct evloop_timer guard = { 0 };

	pending = expect;
	guard_fired = false;
	assert_true(evloop_timer_start(&loop, &guard, max, on_guard, NULL));
	evloop_run(&loop);
	evloop_timer_stop(&loop, &guard);
}

static const struct http_opts plain = { .timeout = 5, .verify = true };

static void url(char *buf, size_t size, const char *path)
{
	snprintf(buf, size, "http://127.0.0.1:%d%s", srv.port, path);
}

static void get_with(const char *path, const struct http_opts *o, http_done_fn fn,
		     struct result *res)
{
	char u[128];

	url(u, sizeof(u), path);
	memset(res, 0, sizeof(*res));
	started = now();
	assert_true(http_get(h, u, o, fn, res));
	/* Never from inside http_get(). */
	assert_int_equal(res->calls, 0);
}

static void get(const char *path, const struct http_opts *o, struct result *res)
{
	get_with(path, o, done, res);
}

static void test_ok(void **state)
{
	char path[256], auth[256];
	static struct result res;

	get("/ok", &plain, &res);
	run(1, 5);
	assert_false(guard_fired);
	assert_int_equal(res.calls, 1);
	assert_false(res.has_error);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body, "{\"members\": []}");
	assert_int_equal(res.len, 15);
	assert_true(res.body_nul);
	server_saw(path, auth);
	assert_string_equal(path, "/ok");
	assert_string_equal(auth, "");
}

static void test_not_found(void **state)
{
	static struct result res;

	get("/missing", &plain, &res);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_false(res.has_error);
	assert_int_equal(res.status, 404);
	assert_string_equal(res.body, "no such thing");
}

static void test_basic_auth(void **state)
{
	char path[256], auth[256];
	struct http_opts o = plain;
	static struct result res;

	o.username = "patroni";
	o.password = "s3cret";
	get("/ok", &o, &res);
	run(1, 5);
	assert_int_equal(res.status, 200);
	server_saw(path, auth);
	assert_string_equal(auth, "Basic cGF0cm9uaTpzM2NyZXQ=");

	/* An empty user name means no authentication at all. */
	o.username = "";
	get("/ok", &o, &res);
	run(1, 5);
	assert_int_equal(res.status, 200);
	server_saw(path, auth);
	assert_string_equal(auth, "");
}

static void test_refused(void **state)
{
	struct http_opts o = plain;
	static struct result res;
	char u[128];
	int port, fd = loopback_socket(false, &port);

	/* Bound but not listening: nobody accepts on this port while we hold it. */
	assert_true(fd >= 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/ok", port);
	o.timeout = 10;
	memset(&res, 0, sizeof(res));
	started = now();
	assert_true(http_get(h, u, &o, done, &res));
	assert_int_equal(res.calls, 0);
	run(1, 10);
	close(fd);
	assert_int_equal(res.calls, 1);
	assert_true(res.has_error);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.body, "");
	assert_int_equal(res.len, 0);
	print_message("refused after %.3f s: %s\n", res.at, res.error);
	assert_non_null(strcasestr(res.error, "refused"));
	assert_true(res.at < 1.0);
}

static void test_timeout(void **state)
{
	struct http_opts o = plain;
	static struct result res;

	o.timeout = 0.3;
	get("/slow", &o, &res);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_true(res.has_error);
	print_message("timed out after %.3f s: %s\n", res.at, res.error);
	assert_non_null(strcasestr(res.error, "timed out"));
	assert_true(res.at >= 0.25 && res.at < 1.0);
}

static void test_too_large(void **state)
{
	static struct result res;

	/* Announced: refused from the headers. */
	get("/big", &plain, &res);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_string_equal(res.error, "response too large");
	assert_int_equal(res.len, 0);

	/* Not announced: refused when the bytes pass the cap. */
	get("/chunked", &plain, &res);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_string_equal(res.error, "response too large");

	/* Exactly the cap is fine, and still NUL-terminated. */
	get("/exact", &plain, &res);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_false(res.has_error);
	assert_int_equal(res.len, HTTP_MAX_BODY);
	assert_true(res.body_nul);
	assert_int_equal(res.last_byte, 'x');
}

static void test_no_redirect(void **state)
{
	char path[256], auth[256];
	static struct result res;

	get("/redirect", &plain, &res);
	run(1, 5);
	assert_false(res.has_error);
	assert_int_equal(res.status, 302);
	/* Give a followed redirect time to reach the server: it must not. */
	run(1, 0.2);
	server_saw(path, auth);
	assert_string_equal(path, "/redirect");
}

/* A name, resolved by libcurl (to ::1 and 127.0.0.1 maybe: only the latter listens). */
static void test_localhost(void **state)
{
	static struct result res;
	char u[128];

	snprintf(u, sizeof(u), "http://localhost:%d/ok", srv.port);
	memset(&res, 0, sizeof(res));
	assert_true(http_get(h, u, &plain, done, &res));
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.status, 200);
}

static void test_bad_urls(void **state)
{
	static struct result res;

	/* Only http and https: a file: URL is refused through the callback. */
	memset(&res, 0, sizeof(res));
	assert_true(http_get(h, "file:///etc/hostname", &plain, done, &res));
	assert_int_equal(res.calls, 0);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_true(res.has_error);
	print_message("file: %s\n", res.error);

	/* https to a server that speaks plain HTTP: a TLS error, not a hang. */
	{
		char u[128];

		snprintf(u, sizeof(u), "https://127.0.0.1:%d/ok", srv.port);
		memset(&res, 0, sizeof(res));
		assert_true(http_get(h, u, &plain, done, &res));
		assert_int_equal(res.calls, 0);
		run(1, 5);
		assert_false(guard_fired);
		assert_true(res.has_error);
		print_message("https: %s\n", res.error);
	}
}

static void test_cancel(void **state)
{
	static struct result a, b;

	get("/ok", &plain, &a);
	get("/slow", &plain, &b);
	http_cancel(h, &a);
	http_cancel(h, &b);
	/* Nothing is expected: the guard ends the run, and no callback may have come. */
	run(1, 0.5);
	assert_true(guard_fired);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);
}

/* ---- callbacks that start and cancel requests ---- */

static struct result first, second, victim;

/* Whichever of first and victim is told first cancels the other. */
static void cancel_other(void *arg, int status, const char *body, size_t len, const char *error)
{
	record(arg, status, body, len, error);
	http_cancel(h, arg == &first ? &victim : &first);
	if (--pending == 0)
		evloop_break(&loop);
}

/* Two requests that fail at once (often in the same pass): only one may be told. */
static void test_cancel_from_callback(void **state)
{
	char u[128];
	int port, fd = loopback_socket(false, &port);

	assert_true(fd >= 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", port);
	memset(&first, 0, sizeof(first));
	memset(&victim, 0, sizeof(victim));
	started = now();
	assert_true(http_get(h, u, &plain, cancel_other, &first));
	assert_true(http_get(h, u, &plain, cancel_other, &victim));
	run(1, 5);
	/* Give a wrongly kept request the chance to be told. */
	run(1, 0.3);
	close(fd);
	assert_int_equal(first.calls + victim.calls, 1);
	assert_true(first.has_error || victim.has_error);
}

/*
 * Two requests time out in the same pass of libcurl (the process sleeps past both deadlines), so
 * both wait on the finished list when the first owner is told and cancels the other.
 */
static void test_cancel_finished_from_callback(void **state)
{
	struct http_opts o = plain;

	o.timeout = 0.3;
	get_with("/slow", &o, cancel_other, &first);
	get_with("/slow", &o, cancel_other, &victim);
	/* Connect and send; the server then stays silent. */
	run(1, 0.1);
	assert_int_equal(first.calls + victim.calls, 0);
	usleep(500 * 1000);
	run(1, 5);
	run(1, 0.3);
	assert_int_equal(first.calls + victim.calls, 1);
	assert_non_null(strcasestr(first.calls ? first.error : victim.error, "timed out"));
}

static void chain(void *arg, int status, const char *body, size_t len, const char *error)
{
	char u[128];

	record(arg, status, body, len, error);
	/* Cancelling one's own arg while being told is harmless: this request is done already. */
	http_cancel(h, arg);
	/* Start another request and cancel a third from inside the callback. */
	url(u, sizeof(u), "/missing");
	assert_true(http_get(h, u, &plain, done, &second));
	url(u, sizeof(u), "/ok");
	assert_true(http_get(h, u, &plain, done, &victim));
	http_cancel(h, &victim);
}

static void test_request_from_callback(void **state)
{
	char u[128];

	memset(&first, 0, sizeof(first));
	memset(&second, 0, sizeof(second));
	memset(&victim, 0, sizeof(victim));
	url(u, sizeof(u), "/ok");
	assert_true(http_get(h, u, &plain, chain, &first));
	run(1, 5);
	run(1, 0.3);
	assert_int_equal(first.calls, 1);
	assert_int_equal(first.status, 200);
	assert_int_equal(second.calls, 1);
	assert_int_equal(second.status, 404);
	assert_int_equal(victim.calls, 0);
}

/* Many at once, some repeated to the same server (reused connections). */
static void test_many(void **state)
{
	static struct result res[20];

	for (int i = 0; i < 20; i++)
		get(i % 2 ? "/ok" : "/missing", &plain, &res[i]);
	run(20, 10);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(res[i].calls, 1);
		assert_int_equal(res[i].status, i % 2 ? 200 : 404);
	}
	for (int i = 0; i < 5; i++) {
		get("/ok", &plain, &res[0]);
		run(1, 5);
		assert_int_equal(res[0].status, 200);
	}
}

/* A client freed with requests in flight and sockets watched calls nobody and leaks nothing. */
static void test_free_busy(void **state)
{
	struct http *h2 = http_new(&loop);
	static struct result a, b;
	char u[128];

	assert_non_null(h2);
	url(u, sizeof(u), "/slow");
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_true(http_get(h2, u, &plain, done, &a));
	url(u, sizeof(u), "/ok");
	assert_true(http_get(h2, u, &plain, done, &b));
	run(1, 5);
	assert_int_equal(b.calls, 1);
	http_free(h2, true);
	run(1, 0.3);
	assert_int_equal(a.calls, 0);
	http_free(NULL, true);
}

/* ---- POST and streams ---- */

static void test_post(void **state)
{
	static struct result res;
	static const char body[] = "{\"key\":\"L2E=\"}";
	char u[128], type[256];

	url(u, sizeof(u), "/echo");
	memset(&res, 0, sizeof(res));
	/* Only len bytes are sent: the tail after them is not part of the body. */
	assert_true(http_post(h, u, "{\"key\":\"L2E=\"}TAIL", strlen(body), &plain, done, &res));
	assert_int_equal(res.calls, 0);
	run(1, 5);
	assert_int_equal(res.calls, 1);
	assert_false(res.has_error);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body, body);
	server_saw_type(type);
	assert_string_equal(type, "application/json");
}

/* What a stream's owner saw. */
struct stream_result {
	int data_calls, done_calls;
	int status;
	char lines[2000];    /* every whole line consumed, in order */
	size_t consumed;     /* bytes consumed in all */
	size_t most_offered; /* the largest len offered */
	size_t stop_after;   /* cancel once this many bytes were consumed; 0: never */
	bool after_done;     /* data came after done */
	bool has_error;
	char error[256];
};

static struct stream_result sres;

/* Consume whole lines only, so a line split across reads is offered again. */
static size_t take_lines(void *arg, int status, const char *data, size_t len)
{
	struct stream_result *sr = arg;
	const char *end = memrchr(data, '\n', len);
	size_t used = end ? (size_t)(end - data) + 1 : 0;
	size_t have = strlen(sr->lines);

	sr->data_calls++;
	sr->status = status;
	sr->after_done = sr->after_done || sr->done_calls;
	assert_int_equal(data[len], '\0');
	if (len > sr->most_offered)
		sr->most_offered = len;
	if (have + used < sizeof(sr->lines))
		memcpy(sr->lines + have, data, used), sr->lines[have + used] = '\0';
	sr->consumed += used;
	if (sr->stop_after && sr->consumed >= sr->stop_after) {
		http_cancel(h, sr);
		if (--pending == 0)
			evloop_break(&loop);
	}
	return used;
}

static void stream_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct stream_result *sr = arg;

	sr->done_calls++;
	sr->status = status;
	assert_int_equal(len, 0);
	sr->has_error = error != NULL;
	snprintf(sr->error, sizeof(sr->error), "%s", error ? error : "");
	if (--pending == 0)
		evloop_break(&loop);
}

static void stream(const char *path, const struct http_opts *o, size_t stop_after)
{
	char u[128];

	url(u, sizeof(u), path);
	memset(&sres, 0, sizeof(sres));
	sres.stop_after = stop_after;
	assert_true(http_stream(h, u, "{}", 2, o, take_lines, stream_done, &sres));
	assert_int_equal(sres.data_calls + sres.done_calls, 0);
}

/* Lines cut in pieces arrive whole and in order, all before done. */
static void test_stream_lines(void **state)
{
	char expect[2000];
	size_t len = 0;

	for (int i = 0; i < 100; i++)
		len += (size_t)snprintf(expect + len, sizeof(expect) - len, "line %d\n", i);
	stream("/lines", &plain, 0);
	run(1, 5);
	assert_int_equal(sres.done_calls, 1);
	assert_false(sres.has_error);
	assert_false(sres.after_done);
	assert_int_equal(sres.status, 200);
	assert_true(sres.data_calls >= 1);
	assert_string_equal(sres.lines, expect);
	assert_int_equal(sres.consumed, len);
}

/* A GET stream (no body) works the same. */
static void test_stream_get(void **state)
{
	char u[128];

	url(u, sizeof(u), "/lines");
	memset(&sres, 0, sizeof(sres));
	assert_true(http_stream(h, u, NULL, 0, &plain, take_lines, stream_done, &sres));
	run(1, 5);
	assert_int_equal(sres.done_calls, 1);
	assert_false(sres.has_error);
	assert_int_equal(sres.consumed, strlen(sres.lines));
	assert_non_null(strstr(sres.lines, "line 99\n"));
}

/*
 * An endless stream whose owner consumes it holds no more than the cap at any time, however
 * much passes; the owner's cancel from its data callback ends it with no done call.
 */
static void test_stream_endless_bounded(void **state)
{
	struct http_opts o = plain;

	/* Above libcurl's largest single write (16 KB), which arrives whole. */
	o.max_body = 65536;
	stream("/endless", &o, 20 * 1000 * 1000);
	run(1, 20);
	assert_false(guard_fired);
	assert_string_equal(sres.error, "");
	assert_true(sres.consumed >= 20 * 1000 * 1000);
	assert_true(sres.most_offered <= 65536);
	assert_int_equal(sres.done_calls, 0);
	/* Nothing more may come for a cancelled stream. */
	{
		int calls = sres.data_calls;

		run(1, 0.3);
		assert_int_equal(sres.data_calls, calls);
		assert_int_equal(sres.done_calls, 0);
	}
}

/* Bytes the owner cannot consume (no line ends) end the stream at the cap. */
static void test_stream_too_large(void **state)
{
	struct http_opts o = plain;

	o.max_body = 4096;
	stream("/noline", &o, 0);
	run(1, 5);
	assert_int_equal(sres.done_calls, 1);
	assert_string_equal(sres.error, "response too large");
	assert_int_equal(sres.consumed, 0);
	assert_true(sres.most_offered <= 4096);
}

/* A stream to nobody ends with the reason, and o->timeout bounds nothing but connecting. */
static void test_stream_refused(void **state)
{
	char u[128];
	int port, fd = loopback_socket(false, &port);

	assert_true(fd >= 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/watch", port);
	memset(&sres, 0, sizeof(sres));
	assert_true(http_stream(h, u, "{}", 2, &plain, take_lines, stream_done, &sres));
	run(1, 5);
	close(fd);
	assert_int_equal(sres.done_calls, 1);
	assert_int_equal(sres.data_calls, 0);
	assert_non_null(strcasestr(sres.error, "refused"));
}

static int setup(void **state)
{
	int port;

	signal(SIGPIPE, SIG_IGN);
	srv.lfd = loopback_socket(true, &port);
	if (srv.lfd < 0 || pipe(srv.stop) < 0)
		return -1;
	srv.port = port;
	if (pthread_create(&srv.thread, NULL, serve, NULL) != 0)
		return -1;
	if (!evloop_init(&loop, 16384))
		return -1;
	h = http_new(&loop);
	return h ? 0 : -1;
}

static int teardown(void **state)
{
	http_free(h, true);
	evloop_destroy(&loop);
	if (write(srv.stop[1], "x", 1) == 1)
		pthread_join(srv.thread, NULL);
	close(srv.lfd);
	close(srv.stop[0]);
	close(srv.stop[1]);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_no_redirect),
		cmocka_unit_test(test_localhost),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_cancel_from_callback),
		cmocka_unit_test(test_cancel_finished_from_callback),
		cmocka_unit_test(test_request_from_callback),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_free_busy),
		cmocka_unit_test(test_post),
		cmocka_unit_test(test_stream_lines),
		cmocka_unit_test(test_stream_get),
		cmocka_unit_test(test_stream_endless_bounded),
		cmocka_unit_test(test_stream_too_large),
		cmocka_unit_test(test_stream_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
