/*
 * conn: sockets, input framing, output queues and back-pressure (see ev/conn.h).
 *
 * Invariants: in_pos <= in_end <= in_cap and out_pos <= out_end <= out_cap; a buffer pointer is
 * NULL exactly when the conn holds no bytes in it; a conn is on the dirty list only while it has
 * output and no write watcher running.
 */
#include "ev/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "ev/dns.h"
#include "ev/loop.h"
#include "ev/tls.h"

void conn_process_input(struct conn *c);
void conn_report_failure(struct conn *c);
void conn_flush(struct conn *c);

/* Output beyond this stops the peer from reading; resuming waits until it is all written. */
#define OUT_HIGH_WATER(c) (4u * (c)->loop->buf_size)

static bool over_high_water(const struct conn *c)
{
	return c && conn_pending_output(c) > OUT_HIGH_WATER(c);
}

enum conn_tls_phase {
	TLS_PHASE_NONE = 0,
	TLS_PHASE_ASKING,    /* outgoing: SSLRequest sent, waiting for 'S' or 'N' */
	TLS_PHASE_HANDSHAKE, /* handshake running; nothing else is read or written */
};

static void on_readable(struct ev_loop *ev, ev_io *w, int revents);
static void on_writable(struct ev_loop *ev, ev_io *w, int revents);
static void update_read_watcher(struct conn *c);
static void unthrottle(struct conn *c);

/*
 * The I/O table: >0 bytes, 0 would block, IO_ERROR, IO_EOF. A TLS session may need the other
 * direction to make progress (the wants flags are set and the watcher started).
 */
#define IO_ERROR TLS_IO_ERROR
#define IO_EOF TLS_IO_EOF

struct conn_io {
	long (*read)(struct conn *c, void *buf, size_t len);
	long (*write)(struct conn *c, const void *buf, size_t len);
};

static long plain_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n = recv(c->fd, buf, len, 0);

	if (n > 0)
		return (long)n;
	if (n == 0)
		return IO_EOF;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : IO_ERROR;
}

static long plain_write(struct conn *c, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n > 0 ? (long)n : 0;
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : IO_ERROR;
}

static long tls_read(struct conn *c, void *buf, size_t len)
{
	bool wants_write;
	long n = tls_conn_read(c, buf, len, &wants_write);

	if (n == 0 && wants_write) {
		c->tls_read_wants_write = true;
		ev_io_start(c->loop->ev, c->wio);
	}
	return n;
}

static long tls_write(struct conn *c, const void *buf, size_t len)
{
	bool wants_read;
	long n = tls_conn_write(c, buf, len, &wants_read);

	if (n == 0 && wants_read) {
		c->tls_write_wants_read = true;
		ev_io_start(c->loop->ev, c->rio);
	}
	return n;
}

static const struct conn_io plain_io = { plain_read, plain_write };
static const struct conn_io tls_io = { tls_read, tls_write };

static const struct conn_io *io_of(const struct conn *c)
{
	return c->tls ? &tls_io : &plain_io;
}

const char *conn_error(const struct conn *c)
{
	return c->error;
}

void conn_set_error(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(c->error);
	c->error = msg;
}

void conn_init(struct conn *c, struct evloop *loop, const struct conn_ops *ops, void *owner)
{
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->ops = ops;
	c->owner = owner;
	c->fd = -1;
	c->max_packet = UINT32_MAX;
	list_init(&c->resume_node);
	list_init(&c->failed_node);
	list_init(&c->dirty_node);
}

static bool make_watchers(struct conn *c)
{
	ev_io *r = calloc(1, sizeof(ev_io)), *w = calloc(1, sizeof(ev_io));

	if (!r || !w) {
		free(r);
		free(w);
		return false;
	}
	ev_io_init(r, on_readable, c->fd, EV_READ);
	ev_io_init(w, on_writable, c->fd, EV_WRITE);
	r->data = w->data = c;
	c->rio = r;
	c->wio = w;
	return true;
}

/* A TCP option at a nonzero value; 0 leaves the operating system's. */
static void set_tcp_option(int fd, int level, int name, int value, const char *key)
{
	if (value > 0 && setsockopt(fd, level, name, &value, sizeof(value)) < 0)
		log_debug("%s: setsockopt failed: %s", key, strerror(errno));
}

static void tune_tcp(int fd, const struct evloop_tcp *tcp)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tcp->keepalive) {
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		set_tcp_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, tcp->keepidle, "tcp_keepidle");
		set_tcp_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, tcp->keepintvl, "tcp_keepintvl");
		set_tcp_option(fd, IPPROTO_TCP, TCP_KEEPCNT, tcp->keepcnt, "tcp_keepcnt");
	}
	set_tcp_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, tcp->user_timeout, "tcp_user_timeout");
}

static void tune_socket(struct conn *c, int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (!c->is_unix)
		tune_tcp(fd, &c->loop->tcp);
}

bool conn_attach(struct conn *c, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	c->fd = fd;
	c->is_unix = getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX;
	tune_socket(c, fd);
	if (!make_watchers(c)) {
		c->fd = -1;
		return false;
	}
	/* The peer asks and pgmux answers: answers it does not read must stop its asking. */
	c->reader_paces = true;
	c->want_read = true;
	update_read_watcher(c);
	return true;
}

int conn_attach_pair(struct conn *c)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (!conn_attach(c, sv[0])) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	/* pgmux reads its own other end's answers whatever it still has to write to it. */
	c->reader_paces = false;
	return sv[1];
}

void conn_drop_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

bool conn_connect(struct conn *c, const struct sockaddr *addr, socklen_t len, int *errnum)
{
	int fd = socket(addr->sa_family, SOCK_STREAM, 0);

	if (fd < 0) {
		*errnum = errno;
		return false;
	}
	c->is_unix = addr->sa_family == AF_UNIX;
	tune_socket(c, fd);
	if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
		*errnum = errno;
		close(fd);
		return false;
	}
	c->fd = fd;
	if (!make_watchers(c)) {
		*errnum = ENOMEM;
		close(fd);
		c->fd = -1;
		return false;
	}
	/* Completion shows as writability. */
	c->connecting = true;
	ev_io_start(c->loop->ev, c->wio);
	return true;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

bool conn_connect_name(struct conn *c, struct dns *d, const char *host, int port, int *errnum)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char err[256];

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		len = sizeof(struct sockaddr_in6);
	} else {
		switch (dns_lookup(d, host, c, &ss, &len, err, sizeof(err))) {
		case DNS_FOUND:
			break;
		case DNS_FAILED:
			conn_set_error(c, "%s", err);
			*errnum = 0;
			return false;
		case DNS_WAITING:
			c->dns_port = port;
			return true;
		}
	}
	set_port(&ss, port);
	return conn_connect(c, (struct sockaddr *)&ss, len, errnum);
}

void conn_dns_done(struct conn *c, const struct sockaddr *addr, socklen_t len, const char *err)
{
	struct sockaddr_storage ss;
	int errnum = 0;

	if (err) {
		conn_set_error(c, "%s", err);
		c->ops->on_connected(c->owner, c, false, 0);
		return;
	}
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, addr, len);
	set_port(&ss, c->dns_port);
	if (!conn_connect(c, (struct sockaddr *)&ss, len, &errnum))
		c->ops->on_connected(c->owner, c, false, errnum);
}

bool conn_peer_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof(*ss);
	return c->fd >= 0 && getpeername(c->fd, (struct sockaddr *)ss, len) == 0;
}

static void fail(struct conn *c, enum conn_close_reason why)
{
	if (c->failed || c->fd < 0)
		return;
	c->failed = true;
	c->fail_reason = why;
	ev_io_stop(c->loop->ev, c->rio);
	ev_io_stop(c->loop->ev, c->wio);
	list_del(&c->dirty_node);
	list_del(&c->resume_node);
	list_add_tail(&c->loop->failed_list, &c->failed_node);
}

static void release_in(struct conn *c)
{
	if (c->in && c->in_pos == c->in_end && c->in_cap == c->loop->buf_size) {
		evloop_put_buf(c->loop, c->in);
		c->in = NULL;
		c->in_cap = c->in_pos = c->in_end = 0;
	} else if (c->in && c->in_pos == c->in_end) {
		/* An oversized buffer grown for one large message is not worth keeping. */
		free(c->in);
		c->loop->bufs_in_use--;
		c->in = NULL;
		c->in_cap = c->in_pos = c->in_end = 0;
	}
}

static void release_out(struct conn *c)
{
	if (!c->out || c->out_pos != c->out_end)
		return;
	if (c->out_cap == c->loop->buf_size) {
		evloop_put_buf(c->loop, c->out);
	} else {
		free(c->out);
		c->loop->bufs_in_use--;
	}
	c->out = NULL;
	c->out_cap = c->out_pos = c->out_end = 0;
}

static bool out_reserve(struct conn *c, size_t n)
{
	size_t used, cap;
	uint8_t *p;

	if (!c->out) {
		if (n <= c->loop->buf_size) {
			c->out = evloop_get_buf(c->loop);
			if (!c->out)
				return false;
			c->out_cap = c->loop->buf_size;
		}
	}
	if (c->out && c->out_end + n <= c->out_cap)
		return true;
	used = c->out ? c->out_end - c->out_pos : 0;
	if (c->out && c->out_pos > 0 && used + n <= c->out_cap) {
		memmove(c->out, c->out + c->out_pos, used);
		c->out_pos = 0;
		c->out_end = (uint32_t)used;
		return true;
	}
	cap = c->out_cap ? c->out_cap : c->loop->buf_size;
	while (cap < used + n)
		cap *= 2;
	if (cap > UINT32_MAX / 2)
		return false;
	p = malloc(cap);
	if (!p)
		return false;
	if (c->out) {
		memcpy(p, c->out + c->out_pos, used);
		if (c->out_cap == c->loop->buf_size) {
			evloop_put_buf(c->loop, c->out);
			c->loop->bufs_in_use++;
		} else {
			free(c->out);
		}
	} else {
		c->loop->bufs_in_use++;
	}
	c->out = p;
	c->out_cap = (uint32_t)cap;
	c->out_pos = 0;
	c->out_end = (uint32_t)used;
	return true;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (!conn_can_write(c) || !len)
		return;
	if (!out_reserve(c, len)) {
		log_error("out of memory queueing %zu bytes", len);
		fail(c, CONN_IO_ERROR);
		return;
	}
	memcpy(c->out + c->out_end, data, len);
	c->out_end += (uint32_t)len;
	if (list_empty(&c->dirty_node) && !ev_is_active((ev_io *)c->wio) && !c->connecting &&
	    c->tls_phase == TLS_PHASE_NONE)
		list_add_tail(&c->loop->dirty_list, &c->dirty_node);
}

void conn_link(struct conn *a, struct conn *b)
{
	a->peer = b;
	b->peer = a;
}

void conn_unlink(struct conn *c)
{
	if (c->peer) {
		/* A side held back by this peer's full queue must not stay throttled forever. */
		if (c->peer->throttled)
			unthrottle(c->peer);
		if (c->throttled)
			unthrottle(c);
		c->peer->peer = NULL;
		c->peer = NULL;
	}
}

/*
 * Whether c must not take input now: its peer's queue is over the mark, or its own is and c's
 * reader paces it. An outgoing (server) connection never waits for its own queue: a server
 * stops reading while its answers cannot be written, so pgmux must keep reading them.
 */
static bool must_hold_input(const struct conn *c)
{
	return over_high_water(c->peer) || (c->reader_paces && over_high_water(c));
}

static void unthrottle(struct conn *c)
{
	c->throttled = false;
	update_read_watcher(c);
	/* Input may already be buffered behind the throttle. */
	if (c->fd >= 0 && !c->failed && conn_buffered_input(c) && list_empty(&c->resume_node))
		list_add_tail(&c->loop->resume_list, &c->resume_node);
}

static bool read_allowed(const struct conn *c)
{
	return c->fd >= 0 && c->want_read && !c->stopped && !c->throttled && !c->failed &&
	       !c->closing && !c->connecting && c->tls_phase == TLS_PHASE_NONE;
}

static void update_read_watcher(struct conn *c)
{
	bool on = read_allowed(c);

	/* During a handshake (or while a TLS write waits for input) the TLS code owns the watcher. */
	if (!c->rio || c->tls_phase != TLS_PHASE_NONE || c->tls_write_wants_read)
		return;
	if (on && !ev_is_active((ev_io *)c->rio)) {
		ev_io_start(c->loop->ev, c->rio);
		/* Decrypted input already inside OpenSSL would never wake the socket watcher. */
		if (tls_conn_pending(c) || c->tls_pre)
			ev_feed_event(c->loop->ev, c->rio, EV_READ);
	} else if (!on && ev_is_active((ev_io *)c->rio)) {
		ev_io_stop(c->loop->ev, c->rio);
	}
}

static bool make_room(struct conn *c, uint32_t len);

bool conn_unread(struct conn *c, const void *data, uint32_t len)
{
	uint32_t used;

	if (c->fd < 0 || c->failed || c->fwd_left || c->skip_left)
		return false;
	if (len == 0)
		return true; /* nothing was used yet */
	if (!c->in) {
		c->in = evloop_get_buf(c->loop);
		if (!c->in)
			return false;
		c->in_cap = c->loop->buf_size;
		c->in_pos = c->in_end = 0;
	}
	used = c->in_end - c->in_pos;
	if (!make_room(c, used + len))
		return false;
	memmove(c->in + c->in_pos + len, c->in + c->in_pos, used);
	memcpy(c->in + c->in_pos, data, len);
	c->in_end = c->in_pos + used + len;
	return true;
}

void conn_resume(struct conn *c)
{
	c->want_read = true;
	c->stopped = false;
	update_read_watcher(c);
	if (c->fd >= 0 && !c->failed && list_empty(&c->resume_node))
		list_add_tail(&c->loop->resume_list, &c->resume_node);
}

static void free_buffers(struct conn *c)
{
	if (c->in) {
		c->in_pos = c->in_end;
		release_in(c);
	}
	if (c->out) {
		c->out_pos = c->out_end;
		release_out(c);
	}
}

void conn_close(struct conn *c)
{
	if (c->peer)
		conn_unlink(c);
	list_del(&c->resume_node);
	list_del(&c->failed_node);
	list_del(&c->dirty_node);
	if (c->rio) {
		ev_io_stop(c->loop->ev, c->rio);
		ev_io_stop(c->loop->ev, c->wio);
		free(c->rio);
		free(c->wio);
		c->rio = c->wio = NULL;
	}
	dns_wait_cancel(c->dns_wait);
	tls_conn_free(c);
	c->tls = false;
	c->tls_phase = TLS_PHASE_NONE;
	c->tls_read_wants_write = c->tls_write_wants_read = false;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free_buffers(c);
	free(c->error);
	c->error = NULL;
}

int conn_release_fd(struct conn *c)
{
	int fd = c->fd;

	if (fd < 0 || c->tls || c->tls_phase != TLS_PHASE_NONE || c->failed || c->closing ||
	    conn_buffered_input(c) || conn_pending_output(c) || c->fwd_left || c->skip_left)
		return -1;
	c->fd = -1;
	conn_close(c);
	return fd;
}

void conn_close_with(struct conn *c, const void *data, size_t len)
{
	if (c->fd >= 0 && !c->failed && !conn_pending_output(c) && c->tls_phase == TLS_PHASE_NONE)
		(void)io_of(c)->write(c, data, len);
	conn_close(c);
}

void conn_close_after_flush(struct conn *c)
{
	if (c->fd < 0 || c->closing)
		return;
	c->closing = true;
	if (c->peer)
		conn_unlink(c);
	update_read_watcher(c);
	list_del(&c->resume_node);
	if (c->failed) {
		/* A malformed message breaks only the input side: the owner's error still goes out. */
		if (c->fail_reason != CONN_BAD_PACKET)
			return;
		c->failed = false;
		/* Not reported yet, if the owner closes first: the flush reports the close instead. */
		list_del(&c->failed_node);
	}
	if (!conn_pending_output(c)) {
		fail(c, CONN_FLUSHED);
		return;
	}
	if (list_empty(&c->dirty_node) && !ev_is_active((ev_io *)c->wio) && !c->connecting &&
	    c->tls_phase == TLS_PHASE_NONE)
		list_add_tail(&c->loop->dirty_list, &c->dirty_node);
}

void conn_report_failure(struct conn *c)
{
	enum conn_close_reason why = c->fail_reason;

	if (c->fd < 0)
		return;
	c->ops->on_closed(c->owner, c, why);
}

/* c's queue drained: c and its peer may take input again unless the other queue is full. */
static void unthrottle_drained(struct conn *c)
{
	if (c->throttled && !must_hold_input(c))
		unthrottle(c);
	if (c->peer && c->peer->throttled && !must_hold_input(c->peer))
		unthrottle(c->peer);
}

void conn_flush(struct conn *c)
{
	if (c->fd < 0 || c->failed || c->connecting || c->tls_phase != TLS_PHASE_NONE)
		return;
	while (conn_pending_output(c)) {
		long n = io_of(c)->write(c, c->out + c->out_pos, c->out_end - c->out_pos);

		if (n > 0) {
			c->out_pos += (uint32_t)n;
			c->bytes_out += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			if (!c->tls_write_wants_read)
				ev_io_start(c->loop->ev, c->wio);
			return;
		}
		fail(c, CONN_IO_ERROR);
		return;
	}
	release_out(c);
	ev_io_stop(c->loop->ev, c->wio);
	unthrottle_drained(c);
	if (c->closing)
		fail(c, CONN_FLUSHED);
}

/* The connection (and TLS, when asked for) is up: hand it to the owner. */
static void connect_finished(struct conn *c)
{
	c->connecting = false;
	c->tls_phase = TLS_PHASE_NONE;
	ev_io_stop(c->loop->ev, c->wio);
	c->want_read = true;
	update_read_watcher(c);
	if (conn_pending_output(c) && list_empty(&c->dirty_node))
		list_add_tail(&c->loop->dirty_list, &c->dirty_node);
	c->ops->on_connected(c->owner, c, true, 0);
}

/* An outgoing connection failed in its TLS phase (conn_error() says why). */
static void connect_failed_tls(struct conn *c)
{
	c->connecting = false;
	c->tls_phase = TLS_PHASE_NONE;
	ev_io_stop(c->loop->ev, c->rio);
	ev_io_stop(c->loop->ev, c->wio);
	c->ops->on_connected(c->owner, c, false, EPROTO);
}

bool conn_use_tls(struct conn *c, struct tls_ctx *t, const char *host)
{
	if (!tls_conn_new(c, t, false, false, host))
		return false;
	c->tls_mode = tls_ctx_mode(t);
	return true;
}

/* Drive the handshake one step; called from watcher callbacks (or at its start). */
static void handshake_step(struct conn *c)
{
	bool outgoing = c->connecting;
	char desc[96];

	switch (tls_conn_handshake(c)) {
	case TLS_STEP_DONE:
		c->tls = true;
		ev_io_stop(c->loop->ev, c->rio);
		ev_io_stop(c->loop->ev, c->wio);
		if (log_enabled(LOG_LVL_DEBUG)) {
			tls_conn_describe(c, desc, sizeof(desc));
			log_debug("fd %d: TLS established (%s)", c->fd, desc);
		}
		if (outgoing) {
			connect_finished(c);
			return;
		}
		c->tls_phase = TLS_PHASE_NONE;
		update_read_watcher(c);
		if (conn_pending_output(c) && list_empty(&c->dirty_node))
			list_add_tail(&c->loop->dirty_list, &c->dirty_node);
		return;
	case TLS_STEP_WANT_READ:
		ev_io_stop(c->loop->ev, c->wio);
		ev_io_start(c->loop->ev, c->rio);
		return;
	case TLS_STEP_WANT_WRITE:
		ev_io_stop(c->loop->ev, c->rio);
		ev_io_start(c->loop->ev, c->wio);
		return;
	case TLS_STEP_FAILED:
		if (outgoing) {
			connect_failed_tls(c);
			return;
		}
		conn_peer_name(c, desc, sizeof(desc));
		log_info("TLS handshake with client %s failed: %s", desc,
			 c->error ? c->error : "unknown error");
		c->tls_phase = TLS_PHASE_NONE;
		fail(c, CONN_IO_ERROR);
		return;
	}
}

bool conn_start_tls_server(struct conn *c, struct tls_ctx *t, const void *plain, size_t plain_len,
			   bool direct)
{
	if (c->fd < 0 || c->failed || c->ssl || !t) {
		conn_set_error(c, "TLS cannot start on this connection");
		return false;
	}
	/* The answer to SSLRequest goes out before any TLS record. */
	if (plain_len &&
	    (conn_pending_output(c) || plain_write(c, plain, plain_len) != (long)plain_len)) {
		conn_set_error(c, "could not answer the SSL request");
		return false;
	}
	if (!tls_conn_new(c, t, true, direct, NULL))
		return false;
	if (direct && conn_buffered_input(c)) {
		uint32_t n = c->in_end - c->in_pos;

		c->tls_pre = malloc(n);
		if (!c->tls_pre) {
			conn_set_error(c, "out of memory");
			return false;
		}
		memcpy(c->tls_pre, c->in + c->in_pos, n);
		c->tls_pre_len = n;
		c->tls_pre_pos = 0;
		c->in_pos = c->in_end;
	}
	c->tls_phase = TLS_PHASE_HANDSHAKE;
	list_del(&c->dirty_node);
	handshake_step(c);
	return true;
}

bool conn_tls_server_end_point(const struct conn *c, uint8_t out[64], size_t *len)
{
	return c->tls && tls_conn_end_point(c, out, len);
}

bool conn_tls_peer_name(const struct conn *c, char *buf, size_t len)
{
	return c->tls && tls_conn_peer_name(c, buf, len);
}

bool conn_tls_describe(const struct conn *c, char *buf, size_t len)
{
	if (!c->tls || !c->ssl) {
		snprintf(buf, len, "%s", "");
		return false;
	}
	tls_conn_describe(c, buf, len);
	return true;
}

bool conn_tls_verified(const struct conn *c)
{
	/* The handshake fails unless the certificate verified, so finishing it is the proof. */
	return c->tls && c->ssl && c->tls_mode >= TLS_VERIFY_CA;
}

/* Outgoing: TCP is up; ask the server for TLS. */
static void send_ssl_request(struct conn *c)
{
	static const uint8_t ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

	if (plain_write(c, ssl_request, sizeof(ssl_request)) != (long)sizeof(ssl_request)) {
		conn_set_error(c, "could not send SSLRequest: %s", strerror(errno));
		connect_failed_tls(c);
		return;
	}
	c->tls_phase = TLS_PHASE_ASKING;
	ev_io_stop(c->loop->ev, c->wio);
	ev_io_start(c->loop->ev, c->rio);
}

/* Outgoing: the server's one-byte answer to SSLRequest. */
static void read_ssl_answer(struct conn *c)
{
	uint8_t b;
	ssize_t n = recv(c->fd, &b, 1, 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_set_error(c, "server closed the connection during the SSL request");
		connect_failed_tls(c);
		return;
	}
	if (b == 'S') {
		c->tls_phase = TLS_PHASE_HANDSHAKE;
		handshake_step(c);
		return;
	}
	if (b == 'N' && c->tls_mode < TLS_REQUIRE) {
		/* prefer / allow: go on in plain text. */
		tls_conn_free(c);
		connect_finished(c);
		return;
	}
	if (b == 'N')
		conn_set_error(c,
			       "server does not support TLS, and server_tls_sslmode requires it");
	else
		conn_set_error(c, "unexpected answer to SSLRequest from server");
	connect_failed_tls(c);
}

static void on_connect_done(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	ev_io_stop(c->loop->ev, c->wio);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		c->connecting = false;
		c->ops->on_connected(c->owner, c, false, err);
		return;
	}
	if (c->ssl && !c->is_unix) {
		send_ssl_request(c);
		return;
	}
	if (c->ssl)
		tls_conn_free(c); /* PostgreSQL has no TLS on unix sockets */
	connect_finished(c);
}

static void do_read(struct conn *c);

static void on_writable(struct ev_loop *ev, ev_io *w, int revents)
{
	struct conn *c = w->data;

	if (c->tls_phase == TLS_PHASE_HANDSHAKE) {
		handshake_step(c);
		return;
	}
	if (c->connecting) {
		on_connect_done(c);
		return;
	}
	ev_io_stop(ev, w);
	if (c->tls_read_wants_write) {
		c->tls_read_wants_write = false;
		do_read(c);
		if (c->fd < 0 || c->failed)
			return;
	}
	conn_flush(c);
}

/* Keep a copy of n bytes of input about to be used (forwarded or consumed) in the tap. */
static void tap_copy(struct conn *c, uint32_t n)
{
	if (!c->tap || c->tap_overflow)
		return;
	if (c->tap->len + n > c->tap_limit)
		c->tap_overflow = true;
	else
		mb_put_bytes(c->tap, c->in + c->in_pos, n);
}

/* Append forwarded bytes to the peer's queue (process_messages throttles when it is full). */
static void forward(struct conn *c, uint32_t n)
{
	struct conn *peer = c->peer;

	tap_copy(c, n);
	if (peer) {
		conn_write(peer, c->in + c->in_pos, n);
	} else {
		/* Nobody to forward to (peer just went away): the bytes have no reader. */
		log_debug("dropping %u bytes with no peer", n);
	}
	c->in_pos += n;
}

/* Make room so that a message of len bytes starting at in_pos fits in the buffer. */
static bool make_room(struct conn *c, uint32_t len)
{
	uint32_t used = c->in_end - c->in_pos;

	if (c->in_pos + len <= c->in_cap)
		return true;
	if (len <= c->in_cap) {
		memmove(c->in, c->in + c->in_pos, used);
		c->in_pos = 0;
		c->in_end = used;
		return true;
	}
	uint8_t *p = malloc(len);

	if (!p)
		return false;
	memcpy(p, c->in + c->in_pos, used);
	if (c->in_cap == c->loop->buf_size) {
		evloop_put_buf(c->loop, c->in);
		c->loop->bufs_in_use++;
	} else {
		free(c->in);
	}
	c->in = p;
	c->in_cap = len;
	c->in_pos = 0;
	c->in_end = used;
	return true;
}

/*
 * Stop taking input from c while a queue its messages fill is full, whatever wrote the bytes:
 * forwarded, rewritten or answered by pgmux itself. Checked before every message, so a batch
 * already read adds at most one message's worth beyond the mark.
 */
static bool throttle_if_full(struct conn *c)
{
	/* conn_process_input stops the read watcher afterwards. */
	if (!c->throttled && must_hold_input(c))
		c->throttled = true;
	return c->throttled;
}

/* Run the owner over the buffered messages. Returns false if c must not be touched anymore. */
static bool process_messages(struct conn *c)
{
	while (c->in_pos < c->in_end && !c->stopped && !c->failed && !c->closing &&
	       c->tls_phase == TLS_PHASE_NONE && !throttle_if_full(c)) {
		uint32_t avail = c->in_end - c->in_pos;
		struct pkt_header hdr;
		enum pkt_peek peek;
		enum conn_action act;

		if (c->fwd_left) {
			uint32_t n = avail < c->fwd_left ? avail : c->fwd_left;

			c->fwd_left -= n;
			forward(c, n);
			continue;
		}
		if (c->skip_left) {
			uint32_t n = avail < c->skip_left ? avail : c->skip_left;

			c->skip_left -= n;
			c->in_pos += n;
			continue;
		}
		if (c->startup && !c->ssl && c->in[c->in_pos] == (uint8_t)CONN_TLS_HELLO) {
			/* A TLS ClientHello where a startup packet belongs: the owner decides. */
			hdr.type = CONN_TLS_HELLO;
			hdr.len = 0;
			act = c->ops->on_packet(c->owner, c, &hdr, NULL);
			if (act == CONN_NEED_WHOLE) /* length 0: it is whole already */
				act = c->ops->on_packet(c->owner, c, &hdr, c->in + c->in_pos);
			if (act == CONN_CLOSED)
				return false;
			if (!c->ssl)
				fail(c, CONN_BAD_PACKET);
			return true;
		}
		peek = c->startup ? pkt_peek_startup(c->in + c->in_pos, avail, &hdr)
				  : pkt_peek_header(c->in + c->in_pos, avail, &hdr);
		if (peek == PKT_PEEK_SHORT)
			break;
		if (peek == PKT_PEEK_BAD || hdr.len > c->max_packet) {
			fail(c, CONN_BAD_PACKET);
			return true;
		}
		act = c->ops->on_packet(c->owner, c, &hdr, NULL);
		if (act == CONN_NEED_WHOLE) {
			if (avail < hdr.len) {
				if (!make_room(c, hdr.len)) {
					log_error("out of memory buffering a %u byte message",
						  hdr.len);
					fail(c, CONN_IO_ERROR);
				}
				break;
			}
			act = c->ops->on_packet(c->owner, c, &hdr, c->in + c->in_pos);
			ASSERT(act != CONN_NEED_WHOLE);
		}
		switch (act) {
		case CONN_FORWARD:
			c->fwd_left = hdr.len;
			break;
		case CONN_CONSUME:
			if (hdr.len <= avail) {
				tap_copy(c, hdr.len);
				c->in_pos += hdr.len;
			} else {
				if (c->tap)
					c->tap_overflow = true;
				c->in_pos = c->in_end;
				c->skip_left = hdr.len - avail;
			}
			break;
		case CONN_STOP:
			c->stopped = true;
			break;
		case CONN_CLOSED:
			return false;
		case CONN_NEED_WHOLE:
			break;
		}
	}
	return true;
}

void conn_process_input(struct conn *c)
{
	if (c->fd < 0 || c->failed || c->tls_phase != TLS_PHASE_NONE)
		return;
	if (c->in && !process_messages(c))
		return;
	if (c->fd < 0)
		return;
	if (c->in && c->in_pos == c->in_end)
		c->in_pos = c->in_end = 0;
	release_in(c);
	update_read_watcher(c);
}

static void on_readable(struct ev_loop *ev, ev_io *w, int revents)
{
	struct conn *c = w->data;

	if (c->tls_phase == TLS_PHASE_ASKING) {
		read_ssl_answer(c);
		return;
	}
	if (c->tls_phase == TLS_PHASE_HANDSHAKE) {
		handshake_step(c);
		return;
	}
	if (c->tls_write_wants_read) {
		c->tls_write_wants_read = false;
		conn_flush(c);
		if (c->fd < 0 || c->failed)
			return;
		update_read_watcher(c);
	}
	if (!read_allowed(c))
		return;
	do_read(c);
}

static void do_read(struct conn *c)
{
	long n;

	if (!c->in) {
		c->in = evloop_get_buf(c->loop);
		if (!c->in) {
			fail(c, CONN_IO_ERROR);
			return;
		}
		c->in_cap = c->loop->buf_size;
		c->in_pos = c->in_end = 0;
	} else if (c->in_end == c->in_cap) {
		/* A partial message sits at the end: move it to the front to read the rest. */
		if (c->in_pos == 0) {
			fail(c, CONN_BAD_PACKET);
			return;
		}
		memmove(c->in, c->in + c->in_pos, c->in_end - c->in_pos);
		c->in_end -= c->in_pos;
		c->in_pos = 0;
	}
	n = io_of(c)->read(c, c->in + c->in_end, c->in_cap - c->in_end);
	if (n > 0) {
		c->in_end += (uint32_t)n;
		c->bytes_in += (uint64_t)n;
		conn_process_input(c);
		/* More decrypted bytes may wait inside OpenSSL: come back for them. */
		if (c->fd >= 0 && !c->failed && c->tls && read_allowed(c) && tls_conn_pending(c))
			ev_feed_event(c->loop->ev, c->rio, EV_READ);
		return;
	}
	if (n == 0) {
		release_in(c);
		return;
	}
	fail(c, n == IO_EOF ? CONN_EOF : CONN_IO_ERROR);
}

/* "ip:port", "[ipv6]:port" or "unix" for a socket address. */
static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%d", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%d", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "unix");
	}
}

void conn_buffer_state(const struct conn *c, struct conn_buffers *b)
{
	b->in_pos = c->in ? c->in_pos : 0;
	b->in_end = c->in ? c->in_end : 0;
	b->msg_left = c->fwd_left + c->skip_left;
	b->out_pos = c->out ? c->out_pos : 0;
	b->out_end = c->out ? c->out_end : 0;
}

void conn_peer_name(const struct conn *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (c->is_unix) {
		snprintf(buf, len, "unix");
		return;
	}
	if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "unknown");
		return;
	}
	format_addr(&ss, buf, len);
}

bool conn_local_name(const struct conn *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "%s", "");
		return false;
	}
	format_addr(&ss, buf, len);
	return true;
}

bool conn_peer_is_own_user(const struct conn *c)
{
#ifdef SO_PEERCRED
	struct ucred cred;
	socklen_t sl = sizeof(cred);

	if (c->fd < 0 || !c->is_unix ||
	    getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0 || sl != sizeof(cred))
		return false;
	return cred.uid == geteuid();
#else
	uid_t uid;
	gid_t gid;

	if (c->fd < 0 || !c->is_unix || getpeereid(c->fd, &uid, &gid) < 0)
		return false;
	return uid == geteuid();
#endif
}
