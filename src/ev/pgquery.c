/*
 * pgquery: a libpq connection driven by libev, for small queries pgmux runs itself.
 *
 * Invariants: at most one query is in flight (the head of the queue, `sent`); the io watcher
 * watches the libpq socket in the direction libpq asks for, and is stopped whenever there is no
 * socket; callbacks run only from watcher callbacks (a failure found while submitting is
 * delivered by a zero timer), and the queue is consistent before each one runs.
 *
 * Authentication guard: while libpq waits for the server's answer to the startup packet, every
 * readable event first peeks at what the server sent (through libpq's own TLS session when there
 * is one) and refuses a request that require_auth or scram_max_iterations does not allow;
 * libpq then reads the same bytes and answers only what was allowed. A message that has not
 * arrived whole is looked at again shortly, before libpq may read any of it, and a server that
 * sends anything after a request before it was answered is refused (libpq would answer a second
 * request from its buffer). What remains open is a second request that arrives in the instant
 * between the look and libpq's read: a server must send it unasked, which none does.
 */
#include "ev/pgquery.h"

#include <ev.h>
#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/list.h"
#include "core/log.h"
#include "ev/loop.h"
#include "ev/tls.h"

/* Authentication requests (PostgreSQL's AuthenticationXXX codes) and require_auth's names. */
enum {
	AUTH_REQ_OK = 0,
	AUTH_REQ_PASSWORD = 3,
	AUTH_REQ_MD5 = 5,
	AUTH_REQ_SASL = 10,
	AUTH_REQ_SASL_CONTINUE = 11,
	AUTH_REQ_SASL_FINAL = 12,
};
enum {
	GUARD_NONE = 1 << 0,
	GUARD_PASSWORD = 1 << 1,
	GUARD_MD5 = 1 << 2,
	GUARD_SCRAM = 1 << 3,
};

/* How long to wait before looking again at a request that has not arrived whole (s). */
#define GUARD_RETRY 0.005
/* Authentication messages are small; a SCRAM server-first message is about 100 bytes. */
#define GUARD_PEEK 2048

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
	char *conninfo;       /* as given (pgquery_conninfo()) */
	char *libpq_conninfo; /* less pgquery's own options */
	unsigned allowed;     /* GUARD_* methods the server may ask for; 0 = no guard */
	int max_iterations;   /* SCRAM; 0 = no bound */
	bool auth_asked;      /* this connection's server asked for a password */
	double timeout;
	PGconn *pg;
	enum pq_state state;
	bool sent;        /* the head request was sent and is being answered */
	PGresult *result; /* first result of the request in flight */
	ev_io io;
	int io_fd, io_events;
	ev_timer timer;         /* connect / query deadline */
	ev_timer kick;          /* deliver failures and start work from the loop */
	struct list_node queue; /* struct request, FIFO */
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
		finish_head(q, PGQUERY_LOST, 0, NULL, msg);
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
	q->auth_asked = false;
	q->pg = PQconnectStart(q->libpq_conninfo);
	if (!q->pg || PQstatus(q->pg) == CONNECTION_BAD) {
		fail_all(q, q->pg ? PQerrorMessage(q->pg) : "out of memory");
		return;
	}
	q->state = PQS_CONNECTING;
	arm_timer(q);
	/* As libpq asks: poll after the socket is writable first. */
	watch(q, PQsocket(q->pg), EV_WRITE);
}

/* The server's pending input, not consumed (libpq reads it next); 0 when none yet. */
static size_t peek_input(struct pgquery *q, uint8_t *buf, size_t len)
{
	SSL *ssl = PQsslInUse(q->pg) ? PQsslStruct(q->pg, "OpenSSL") : NULL;
	ssize_t n;

	if (ssl) {
		int r = SSL_peek(ssl, buf, (int)len);

		/* A would-block leaves an error on the queue that libpq must not take for its own. */
		ERR_clear_error();
		return r > 0 ? (size_t)r : 0;
	}
	n = recv(PQsocket(q->pg), buf, len, MSG_PEEK | MSG_DONTWAIT);
	return n > 0 ? (size_t)n : 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The i= of a SCRAM server-first message; -1 when it has none or a bad one. */
static long scram_iterations(const uint8_t *data, size_t len)
{
	long n = -1;

	for (size_t i = 0; i + 2 < len; i++) {
		if ((i == 0 || data[i - 1] == ',') && data[i] == 'i' && data[i + 1] == '=') {
			n = 0;
			for (i += 2; i < len && data[i] >= '0' && data[i] <= '9' && n <= 100000000;
			     i++)
				n = n * 10 + (data[i] - '0');
			return n > 0 ? n : -1;
		}
	}
	return n;
}

enum guard_verdict { GUARD_PASS, GUARD_WAIT, GUARD_REFUSE };

/* One authentication request (its code and data) against the rules; why says what was refused. */
static enum guard_verdict judge_request(struct pgquery *q, uint32_t code, const uint8_t *data,
					size_t len, char *why, size_t whylen)
{
	unsigned method = 0;
	const char *name = "";
	long iterations;

	switch (code) {
	case AUTH_REQ_OK:
		if (q->auth_asked)
			return GUARD_PASS;
		method = GUARD_NONE, name = "none";
		break;
	case AUTH_REQ_PASSWORD:
		method = GUARD_PASSWORD, name = "password";
		break;
	case AUTH_REQ_MD5:
		method = GUARD_MD5, name = "md5";
		break;
	case AUTH_REQ_SASL:
		method = GUARD_SCRAM, name = "scram-sha-256";
		break;
	case AUTH_REQ_SASL_CONTINUE:
		iterations = scram_iterations(data, len);
		if (q->max_iterations > 0 && (iterations < 0 || iterations > q->max_iterations)) {
			snprintf(why, whylen,
				 "server asks for %ld SCRAM iterations, more than the %d "
				 "allowed (server_scram_max_iterations)",
				 iterations, q->max_iterations);
			return GUARD_REFUSE;
		}
		return GUARD_PASS;
	case AUTH_REQ_SASL_FINAL:
		return GUARD_PASS;
	default:
		snprintf(why, whylen,
			 "server asked for authentication method %u, which pgmux does not "
			 "use",
			 code);
		return GUARD_REFUSE;
	}
	q->auth_asked = q->auth_asked || code != AUTH_REQ_OK;
	if (q->allowed & method)
		return GUARD_PASS;
	snprintf(why, whylen,
		 "server asked for %s authentication, which server_auth_methods does not "
		 "allow here",
		 name);
	return GUARD_REFUSE;
}

/* Does the request with this code wait for an answer from us (libpq)? */
static bool answer_owed(uint32_t code)
{
	return code == AUTH_REQ_PASSWORD || code == AUTH_REQ_MD5 || code == AUTH_REQ_SASL ||
	       code == AUTH_REQ_SASL_CONTINUE;
}

/*
 * Look at every message the server has sent so far, before libpq reads it. GUARD_WAIT: a
 * message has not arrived whole; libpq must not read it yet, so that it only ever takes whole
 * messages and the next look starts at a message boundary.
 */
static enum guard_verdict guard_input(struct pgquery *q, char *why, size_t whylen)
{
	uint8_t buf[GUARD_PEEK];
	size_t n = peek_input(q, buf, sizeof(buf)), at = 0;
	bool owed = false;

	while (at < n) {
		uint32_t len;
		enum guard_verdict v;

		/*
		 * A server waits for the answer to its request: anything more now could be a second
		 * request that libpq would take and answer in the same call, unseen.
		 */
		if (owed) {
			snprintf(why, whylen,
				 "server sent more before its authentication request was "
				 "answered");
			return GUARD_REFUSE;
		}
		if (n - at < 5)
			return GUARD_WAIT;
		len = be32(buf + at + 1);
		if (len < 4 || (buf[at] == 'R' && (len < 8 || len > sizeof(buf) - 1)))
			return GUARD_PASS; /* malformed: libpq refuses it itself */
		if (n - at < 1 + (size_t)len) {
			if (1 + (size_t)len <= sizeof(buf))
				return GUARD_WAIT;
			/* Too long to look at whole: an error ends the login anyway, nothing else may. */
			if (buf[at] == 'E')
				return GUARD_PASS;
			snprintf(why, whylen, "server sent a %u byte message before authentication",
				 len);
			return GUARD_REFUSE;
		}
		if (buf[at] == 'R') {
			uint32_t code = be32(buf + at + 5);

			v = judge_request(q, code, buf + at + 9, len - 8, why, whylen);
			if (v != GUARD_PASS)
				return v;
			owed = answer_owed(code);
		}
		at += 1 + len;
	}
	return GUARD_PASS;
}

static void poll_connect(struct pgquery *q)
{
	char why[200];

	if (q->allowed && PQstatus(q->pg) == CONNECTION_AWAITING_RESPONSE) {
		switch (guard_input(q, why, sizeof(why))) {
		case GUARD_REFUSE:
			fail_all(q, why);
			return;
		case GUARD_WAIT:
			/* Not whole yet: do not let libpq read it; look again shortly. */
			watch(q, -1, 0);
			ev_timer_stop(q->loop->ev, &q->kick);
			ev_timer_set(&q->kick, GUARD_RETRY, 0);
			ev_timer_start(q->loop->ev, &q->kick);
			return;
		case GUARD_PASS:
			break;
		}
	}
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
	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		/* A command that returns no rows (CREATE, DROP, ...) succeeded. */
		finish_head(q, PGQUERY_NO_ROW, 0, NULL, NULL);
	} else if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : "no result");
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

bool pgquery_conninfo_add(char *out, size_t outlen, const char *key, const char *value)
{
	size_t start = strlen(out), n = start;

	if (n + strlen(key) + 3 >= outlen)
		return false;
	n += (size_t)snprintf(out + n, outlen - n, " %s='", key);
	for (const char *v = value; *v; v++) {
		if (n + 3 >= outlen) {
			out[start] = '\0';
			return false;
		}
		if (*v == '\'' || *v == '\\')
			out[n++] = '\\';
		out[n++] = *v;
	}
	if (n + 2 >= outlen) {
		out[start] = '\0';
		return false;
	}
	out[n++] = '\'';
	out[n] = '\0';
	return true;
}

bool pgquery_conninfo_policy(char *out, size_t outlen, const struct pgquery_policy *p)
{
	static const char *const modes[] = { "disable", "allow",     "prefer",
					     "require", "verify-ca", "verify-full" };
	const char *ca = p->ca_file;
	char iterations[16];
	bool ok;

	if (p->sslmode < TLS_DISABLE || p->sslmode > TLS_VERIFY_FULL)
		return false;
	ok = pgquery_conninfo_add(out, outlen, "sslmode", modes[p->sslmode]);
	/* pgmux's own connections check against the system's CAs without a file: libpq 15 needs
	 * the file named. Without verification no root file is read (libpq's default would be). */
	if (!*ca && p->sslmode >= TLS_VERIFY_CA)
		ca = X509_get_default_cert_file();
	if (ok && *ca && p->sslmode >= TLS_VERIFY_CA)
		ok = pgquery_conninfo_add(out, outlen, "sslrootcert", ca);
	if (ok && *p->cert_file)
		ok = pgquery_conninfo_add(out, outlen, "sslcert", p->cert_file);
	if (ok && *p->key_file)
		ok = pgquery_conninfo_add(out, outlen, "sslkey", p->key_file);
	if (ok && *p->host_name && p->sslmode == TLS_VERIFY_FULL)
		ok = pgquery_conninfo_add(out, outlen, "host", p->host_name);
	if (ok && *p->require_auth)
		ok = pgquery_conninfo_add(out, outlen, "require_auth", p->require_auth);
	snprintf(iterations, sizeof(iterations), "%d", p->scram_max_iterations);
	if (ok && p->scram_max_iterations > 0)
		ok = pgquery_conninfo_add(out, outlen, "scram_max_iterations", iterations);
	return ok;
}

/*
 * Take " key='value'" out of conninfo (as pgquery_conninfo_add() wrote it) into value; false
 * when it is not there. Only pgquery's own keys are taken, which libpq never sees.
 */
static bool take_option(char *conninfo, const char *key, char *value, size_t len)
{
	char pattern[64];
	char *start, *p;
	size_t n = 0;

	snprintf(pattern, sizeof(pattern), " %s='", key);
	start = strstr(conninfo, pattern);
	if (!start)
		return false;
	for (p = start + strlen(pattern); *p && *p != '\''; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (n + 1 < len)
			value[n++] = *p;
	}
	value[n] = '\0';
	if (*p == '\'')
		p++;
	memmove(start, p, strlen(p) + 1);
	return true;
}

/* require_auth's list as GUARD_* bits; an unknown name allows nothing more. */
static unsigned guard_methods(const char *list)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = { { "none", GUARD_NONE },
		      { "password", GUARD_PASSWORD },
		      { "md5", GUARD_MD5 },
		      { "scram-sha-256", GUARD_SCRAM } };
	unsigned bits = 0;

	while (*list) {
		size_t len = strcspn(list, ",");

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (len == strlen(names[i].name) && strncmp(list, names[i].name, len) == 0)
				bits |= names[i].bit;
		}
		list += len;
		list += strspn(list, ",");
	}
	return bits;
}

/* The conninfo for libpq and the guard's rules, from what the caller gave. */
static bool take_own_options(struct pgquery *q)
{
	char value[128];

	q->libpq_conninfo = strdup(q->conninfo);
	if (!q->libpq_conninfo)
		return false;
	if (take_option(q->libpq_conninfo, "require_auth", value, sizeof(value))) {
		q->allowed = guard_methods(value);
		/* Nothing allowed must still mean a guard that refuses everything. */
		if (!q->allowed)
			q->allowed = 1u << 30;
	}
	if (take_option(q->libpq_conninfo, "scram_max_iterations", value, sizeof(value))) {
		q->max_iterations = atoi(value);
		if (!q->allowed)
			q->allowed = GUARD_NONE | GUARD_PASSWORD | GUARD_MD5 | GUARD_SCRAM;
	}
	return true;
}

struct pgquery *pgquery_new(struct evloop *loop, const char *conninfo, double timeout)
{
	struct pgquery *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->conninfo = strdup(conninfo);
	if (!q->conninfo || !take_own_options(q)) {
		free(q->conninfo);
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
	free(q->libpq_conninfo);
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
