/*
 * takeover: the takeover socket's I/O (see ev/takeover.h); messages are built and read by
 * ev/takeovermsg.c.
 *
 * Invariants: the old side holds at most one takeover connection, in one of two states (waiting
 * for HELLO, waiting for READY), each bounded by TAKEOVER_TIMEOUT; it calls done only after
 * READY, and a connection that ends any other way changes nothing. Descriptors received by the
 * new side are either all handed to the caller or all closed.
 */
#include "ev/takeover.h"

#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "ev/loop.h"

enum peer_state {
	PEER_NONE,
	PEER_WAIT_HELLO,
	PEER_WAIT_READY,
};

struct takeover_server {
	struct evloop *loop;
	ev_io listen_io;
	ev_io peer_io;
	ev_timer timer;
	enum peer_state state;
	long peer_pid;
	char path[108];
	takeover_offer_fn offer;
	takeover_done_fn done;
	void *arg;
	int pass_fd; /* after DONE: the connection clients are passed on; -1 none */
};

/* New side: the connection the old process passes its clients on. */
struct takeover_clients {
	struct evloop *loop;
	ev_io io;
	long old_pid;
	const struct takeover_receiver *ops;
	void *arg;
	uint8_t *buf;    /* TAKEOVER_PIECE_MSG_MAX bytes */
	uint8_t *record; /* the pieces of the record being received */
	size_t record_len, record_cap;
	bool record_bad; /* too long or out of memory: dropped at its CLIENT */
	unsigned long received;
};

static bool path_address(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "takeover socket path \"%s\" is empty or too long", path);
		return false;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return true;
}

static bool send_msg(int fd, const struct takeover_msg *m, const int *fds, int nfds)
{
	uint8_t buf[TAKEOVER_MSG_MAX];
	size_t len = takeovermsg_encode(m, buf, sizeof(buf));
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * TAKEOVER_MAX_SOCKETS)];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (len == 0)
		return false;
	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.space;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		ctl.h.cmsg_level = SOL_SOCKET;
		ctl.h.cmsg_type = SCM_RIGHTS;
		ctl.h.cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(&ctl.h), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len;
}

static void send_simple(int fd, int type, const char *reason)
{
	struct takeover_msg m = { .type = (uint8_t)type,
				  .version = TAKEOVER_VERSION,
				  .pid = (uint32_t)getpid() };

	if (reason)
		snprintf(m.reason, sizeof(m.reason), "%s", reason);
	(void)send_msg(fd, &m, NULL, 0);
}

/* ---- old side ---- */

static void end_peer(struct takeover_server *ts)
{
	if (ts->state == PEER_NONE)
		return;
	ev_io_stop(ts->loop->ev, &ts->peer_io);
	ev_timer_stop(ts->loop->ev, &ts->timer);
	close(ts->peer_io.fd);
	ts->state = PEER_NONE;
}

static void peer_failed(struct takeover_server *ts, const char *why)
{
	log_warning("takeover by pid %ld failed: %s; still accepting connections", ts->peer_pid,
		    why);
	end_peer(ts);
}

static void on_timeout(struct ev_loop *ev, ev_timer *t, int revents)
{
	peer_failed(t->data, "no answer in time");
}

/* Answer HELLO with the sockets; false (and why) when they are not offered. */
static bool offer_sockets(struct takeover_server *ts, const struct takeover_msg *m, char *why,
			  size_t whylen)
{
	struct takeover_offer offer = { 0 };
	struct takeover_msg out = { .type = TAKEOVER_SOCKETS,
				    .version = TAKEOVER_VERSION,
				    .pid = (uint32_t)getpid() };

	if (m->version != TAKEOVER_VERSION) {
		snprintf(why, whylen, "takeover protocol version %u, this process speaks %d",
			 (unsigned)m->version, TAKEOVER_VERSION);
		return false;
	}
	if (!ts->offer(ts->arg, &offer, why, whylen))
		return false;
	out.n_socks = offer.n;
	memcpy(out.socks, offer.socks, sizeof(out.socks[0]) * (size_t)offer.n);
	if (!send_msg(ts->peer_io.fd, &out, offer.fds, offer.n)) {
		snprintf(why, whylen, "could not send the sockets: %s", strerror(errno));
		return false;
	}
	log_info("takeover: pid %ld asked for the listening sockets: %d sent, waiting for it to "
		 "accept",
		 ts->peer_pid, offer.n);
	return true;
}

static void on_hello(struct takeover_server *ts, const struct takeover_msg *m)
{
	char why[TAKEOVER_REASON_MAX] = "";

	if (offer_sockets(ts, m, why, sizeof(why))) {
		ts->state = PEER_WAIT_READY;
		ev_timer_again(ts->loop->ev, &ts->timer);
		return;
	}
	send_simple(ts->peer_io.fd, TAKEOVER_REFUSE, why);
	peer_failed(ts, why);
}

static void on_ready(struct takeover_server *ts)
{
	int peer = ts->peer_io.fd;

	ev_io_stop(ts->loop->ev, &ts->peer_io);
	ev_timer_stop(ts->loop->ev, &ts->timer);
	ts->state = PEER_NONE;
	/* The takeover socket went with the others: the next takeover is the new process's. */
	ev_io_stop(ts->loop->ev, &ts->listen_io);
	close(ts->listen_io.fd);
	ts->listen_io.fd = -1;
	log_info("takeover: pid %ld accepts on the listening sockets: this process stops accepting",
		 ts->peer_pid);
	/*
	 * The connection stays: idle clients follow the sockets on it (takeover_pass_client), and
	 * what done reports (takeover_pass_servers) goes ahead of DONE, so the new process knows
	 * it before it serves anyone.
	 */
	ts->pass_fd = peer;
	ts->done(ts->arg, ts->peer_pid);
	send_simple(peer, TAKEOVER_DONE, NULL);
}

static void on_peer(struct ev_loop *ev, ev_io *w, int revents)
{
	struct takeover_server *ts = w->data;
	uint8_t buf[TAKEOVER_MSG_MAX];
	struct takeover_msg m;
	char err[128], why[200];
	ssize_t n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		peer_failed(ts, n == 0 ? "it closed the connection before it was ready"
				       : strerror(errno));
		return;
	}
	if (!takeovermsg_decode(buf, (size_t)n, &m, err, sizeof(err))) {
		peer_failed(ts, err);
		return;
	}
	if (ts->state == PEER_WAIT_HELLO && m.type == TAKEOVER_HELLO) {
		on_hello(ts, &m);
	} else if (ts->state == PEER_WAIT_READY && m.type == TAKEOVER_READY) {
		on_ready(ts);
	} else {
		snprintf(why, sizeof(why), "unexpected %s message", takeovermsg_type_name(m.type));
		peer_failed(ts, why);
	}
}

/* Only our own user (or root) may take our sockets. */
static bool peer_allowed(int fd, long *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*pid = (long)cred.pid;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents)
{
	struct takeover_server *ts = w->data;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	long pid = 0;

	if (fd < 0)
		return;
	if (!peer_allowed(fd, &pid)) {
		log_warning("takeover: refused a connection from pid %ld of another user", pid);
		send_simple(fd, TAKEOVER_REFUSE, "another user's process may not take over");
		close(fd);
		return;
	}
	if (ts->state != PEER_NONE) {
		log_warning("takeover: refused pid %ld: pid %ld is taking over already", pid,
			    ts->peer_pid);
		send_simple(fd, TAKEOVER_REFUSE, "another takeover is in progress");
		close(fd);
		return;
	}
	ts->peer_pid = pid;
	ts->state = PEER_WAIT_HELLO;
	ev_io_init(&ts->peer_io, on_peer, fd, EV_READ);
	ts->peer_io.data = ts;
	ev_io_start(ev, &ts->peer_io);
	ev_timer_again(ev, &ts->timer);
}

static int bind_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd;

	if (!path_address(path, &sun, err, errlen))
		return -1;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "takeover socket: %s", strerror(errno));
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 4) < 0) {
		snprintf(err, errlen, "could not listen on takeover socket %s: %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct takeover_server *takeover_listen(struct evloop *loop, const char *path, int fd,
					takeover_offer_fn offer, takeover_done_fn done, void *arg,
					char *err, size_t errlen)
{
	struct takeover_server *ts = calloc(1, sizeof(*ts));

	if (!ts) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (fd < 0 && (fd = bind_path(path, err, errlen)) < 0) {
		free(ts);
		return NULL;
	}
	ts->loop = loop;
	ts->offer = offer;
	ts->done = done;
	ts->arg = arg;
	ts->pass_fd = -1;
	snprintf(ts->path, sizeof(ts->path), "%s", path);
	ev_io_init(&ts->listen_io, on_accept, fd, EV_READ);
	ts->listen_io.data = ts;
	ev_io_start(loop->ev, &ts->listen_io);
	ev_init(&ts->timer, on_timeout);
	ts->timer.repeat = TAKEOVER_TIMEOUT;
	ts->timer.data = ts;
	return ts;
}

int takeover_server_fd(const struct takeover_server *ts)
{
	return ts->listen_io.fd;
}

const char *takeover_server_path(const struct takeover_server *ts)
{
	return ts->path;
}

void takeover_close(struct takeover_server *ts, bool remove_file)
{
	if (!ts)
		return;
	end_peer(ts);
	if (ts->pass_fd >= 0)
		close(ts->pass_fd);
	if (ts->listen_io.fd >= 0) {
		ev_io_stop(ts->loop->ev, &ts->listen_io);
		close(ts->listen_io.fd);
		if (remove_file)
			unlink(ts->path);
	}
	free(ts);
}

/*
 * One piece of a record on the pass connection, with fd when it is the last (CLIENT). Returns
 * the bytes sent, 0 when the connection's queue is full, -1 on any other failure.
 */
static ssize_t send_piece(int pass, int type, const uint8_t *piece, size_t len, int fd)
{
	struct takeover_msg m = { .type = (uint8_t)type,
				  .version = TAKEOVER_VERSION,
				  .pid = (uint32_t)getpid(),
				  .piece = piece,
				  .piece_len = len };
	uint8_t buf[TAKEOVER_PIECE_MSG_MAX];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t sent;

	if (!(iov.iov_len = takeovermsg_encode(&m, buf, sizeof(buf))))
		return -1;
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.space;
		mh.msg_controllen = sizeof(ctl.space);
		ctl.h.cmsg_level = SOL_SOCKET;
		ctl.h.cmsg_type = SCM_RIGHTS;
		ctl.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&ctl.h), &fd, sizeof(int));
	}
	sent = sendmsg(pass, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR))
		return 0;
	return sent == (ssize_t)iov.iov_len ? sent : -1;
}

static int pass_broken(struct takeover_server *ts, const char *why)
{
	log_warning("takeover: the connection clients are passed on failed (%s): the clients left "
		    "stay here until they leave",
		    why);
	close(ts->pass_fd);
	ts->pass_fd = -1;
	return -1;
}

int takeover_pass_client(struct takeover_server *ts, int fd, const uint8_t *rec, size_t len)
{
	size_t off = 0;

	if (!ts || ts->pass_fd < 0)
		return -1;
	if (len == 0 || len > TAKEOVER_RECORD_MAX)
		return 0;
	while (off < len) {
		size_t n = len - off < TAKEOVER_PIECE_MAX ? len - off : TAKEOVER_PIECE_MAX;
		bool last = off + n == len;
		ssize_t sent = send_piece(ts->pass_fd, last ? TAKEOVER_CLIENT : TAKEOVER_PART,
					  rec + off, n, last ? fd : -1);

		if (sent < 0)
			return pass_broken(ts, strerror(errno));
		if (sent == 0 && off == 0)
			return 0; /* nothing went: try again later */
		if (sent == 0) {
			/*
			 * Part of this record went: the rest must follow before anything else.
			 * The new process reads on, so waiting for room is short.
			 */
			struct pollfd pfd = { .fd = ts->pass_fd, .events = POLLOUT };

			if (poll(&pfd, 1, (int)(TAKEOVER_TIMEOUT * 1000)) != 1)
				return pass_broken(ts,
						   "no room to send the rest of a client's record");
			continue;
		}
		off += n;
	}
	return 1;
}

int takeover_pass_servers(struct takeover_server *ts, const char *db, const char *user, int n)
{
	struct takeover_msg m = { .type = TAKEOVER_SERVERS,
				  .version = TAKEOVER_VERSION,
				  .pid = (uint32_t)getpid(),
				  .n_servers = (uint32_t)n };
	uint8_t buf[TAKEOVER_MSG_MAX];
	size_t len;
	ssize_t sent;

	if (!ts || ts->pass_fd < 0)
		return -1;
	snprintf(m.db, sizeof(m.db), "%s", db);
	snprintf(m.user, sizeof(m.user), "%s", user);
	if (!(len = takeovermsg_encode(&m, buf, sizeof(buf))))
		return 0;
	sent = send(ts->pass_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent == (ssize_t)len)
		return 1;
	if (sent < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR))
		return 0;
	return pass_broken(ts, sent < 0 ? strerror(errno) : "short send");
}

/* ---- new side ---- */

void takeover_discard(int fd, const char *path)
{
	close(fd);
	if (*path)
		unlink(path);
}

/* Wait until fd is readable, at most TAKEOVER_TIMEOUT. */
static bool wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc;

	do
		rc = poll(&p, 1, (int)(TAKEOVER_TIMEOUT * 1000));
	while (rc < 0 && errno == EINTR);
	return rc > 0;
}

static void close_fds(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * Receive one message and the descriptors that came with it (at most TAKEOVER_MAX_SOCKETS,
 * close-on-exec); -1 and err on failure, else how many descriptors are in fds.
 */
static int recv_msg(int fd, struct takeover_msg *m, int *fds, char *err, size_t errlen)
{
	uint8_t buf[TAKEOVER_MSG_MAX];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * TAKEOVER_MAX_SOCKETS)];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.space,
			     .msg_controllen = sizeof(ctl.space) };
	struct cmsghdr *c;
	ssize_t n;
	int nfds = 0;

	if (!wait_readable(fd)) {
		snprintf(err, errlen, "no answer within %g s", TAKEOVER_TIMEOUT);
		return -1;
	}
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	/*
	 * A process that closes with our message unread in its queue (a refusal sent before our
	 * HELLO arrived) makes the kernel report the reset first, once: what it sent before
	 * closing is still queued behind that error.
	 */
	if (n < 0 && errno == ECONNRESET)
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	for (c = CMSG_FIRSTHDR(&mh); n >= 0 && c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			memcpy(fds + nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
			nfds += k;
		}
	}
	if (n <= 0 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		snprintf(err, errlen, "%s",
			 n < 0    ? strerror(errno)
			 : n == 0 ? "the running process closed the connection"
				  : "message or descriptors cut short");
		close_fds(fds, nfds);
		return -1;
	}
	if (!takeovermsg_decode(buf, (size_t)n, m, err, errlen)) {
		close_fds(fds, nfds);
		return -1;
	}
	return nfds;
}

int takeover_begin(const char *path, struct takeover_offer *got, long *old_pid, char *err,
		   size_t errlen)
{
	struct takeover_msg m = { .type = TAKEOVER_HELLO,
				  .version = TAKEOVER_VERSION,
				  .pid = (uint32_t)getpid() };
	struct sockaddr_un sun;
	int fd, nfds;

	memset(got, 0, sizeof(*got));
	if (!path_address(path, &sun, err, errlen))
		return -1;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		snprintf(err, errlen,
			 "could not connect to takeover socket %s: %s (is pgmux running?)", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* A refusal may have come and the connection closed before HELLO went out: read it. */
	if (!send_msg(fd, &m, NULL, 0) && errno != EPIPE) {
		snprintf(err, errlen, "takeover socket %s: could not send: %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	nfds = recv_msg(fd, &m, got->fds, err, errlen);
	if (nfds < 0) {
		close(fd);
		return -1;
	}
	if (m.type != TAKEOVER_SOCKETS || nfds != m.n_socks) {
		if (m.type == TAKEOVER_REFUSE)
			snprintf(err, errlen, "pid %u refused the takeover: %s", (unsigned)m.pid,
				 m.reason);
		else
			snprintf(err, errlen, "unexpected %s message with %d descriptors",
				 takeovermsg_type_name(m.type), nfds);
		close_fds(got->fds, nfds);
		close(fd);
		return -1;
	}
	got->n = nfds;
	memcpy(got->socks, m.socks, sizeof(m.socks[0]) * (size_t)nfds);
	*old_pid = (long)m.pid;
	return fd;
}

bool takeover_finish(int fd, const struct takeover_receiver *ops, void *arg, char *err,
		     size_t errlen)
{
	struct takeover_msg m = { .type = TAKEOVER_READY,
				  .version = TAKEOVER_VERSION,
				  .pid = (uint32_t)getpid() };
	int fds[TAKEOVER_MAX_SOCKETS], nfds;
	bool ok = false;

	if (!send_msg(fd, &m, NULL, 0)) {
		snprintf(err, errlen, "could not say ready: %s", strerror(errno));
		close(fd);
		return false;
	}
	/* the old process's server counts come first, then DONE */
	while ((nfds = recv_msg(fd, &m, fds, err, errlen)) >= 0) {
		close_fds(fds, nfds);
		if (m.type != TAKEOVER_SERVERS)
			break;
		ops->servers(arg, m.db, m.user, (int)m.n_servers);
	}
	if (nfds >= 0) {
		ok = m.type == TAKEOVER_DONE;
		if (!ok)
			snprintf(err, errlen, "unexpected %s message",
				 takeovermsg_type_name(m.type));
	}
	if (!ok)
		close(fd);
	return ok;
}

/* The descriptors a message brought, at most max (the others closed). */
static int received_fds(const struct msghdr *mh, int *fds, int max)
{
	int nfds = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + sizeof(int) * i, sizeof(int));
			if (nfds < max)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	return nfds;
}

static void add_piece(struct takeover_clients *tc, const uint8_t *piece, size_t len)
{
	if (tc->record_bad)
		return;
	if (len > TAKEOVER_RECORD_MAX - tc->record_len) {
		tc->record_bad = true;
		return;
	}
	if (tc->record_len + len > tc->record_cap) {
		size_t cap = tc->record_cap ? tc->record_cap : TAKEOVER_PIECE_MAX;
		uint8_t *grown;

		while (cap < tc->record_len + len)
			cap *= 2;
		if (!(grown = realloc(tc->record, cap))) {
			tc->record_bad = true;
			return;
		}
		tc->record = grown;
		tc->record_cap = cap;
	}
	memcpy(tc->record + tc->record_len, piece, len);
	tc->record_len += len;
}

/* A PART (a piece kept) or a CLIENT (the client taken); anything else is closed and dropped. */
static void take_message(struct takeover_clients *tc, ssize_t n, const struct msghdr *mh)
{
	struct takeover_msg m;
	int fds[4], nfds = received_fds(mh, fds, 4);
	char err[128];
	bool ok = !(mh->msg_flags & (MSG_CTRUNC | MSG_TRUNC)) &&
		  takeovermsg_decode(tc->buf, (size_t)n, &m, err, sizeof(err));

	if (ok && m.type == TAKEOVER_PART && nfds == 0) {
		add_piece(tc, m.piece, m.piece_len);
		return;
	}
	if (ok && m.type == TAKEOVER_CLIENT && nfds == 1) {
		add_piece(tc, m.piece, m.piece_len);
		if (!tc->record_bad) {
			tc->received++;
			tc->ops->client(tc->arg, fds[0], tc->record, tc->record_len);
		} else {
			log_warning(
				"takeover: a client's record from pid %ld was too long or did not "
				"fit in memory: its connection is closed",
				tc->old_pid);
			close(fds[0]);
		}
		tc->record_len = 0;
		tc->record_bad = false;
		return;
	}
	if (ok && m.type == TAKEOVER_SERVERS && nfds == 0) {
		tc->ops->servers(tc->arg, m.db, m.user, (int)m.n_servers);
		return;
	}
	log_warning("takeover: pid %ld sent something other than a client (%d descriptors); "
		    "dropped",
		    tc->old_pid, nfds);
	close_fds(fds, nfds);
}

static void on_clients(struct ev_loop *ev, ev_io *w, int revents)
{
	struct takeover_clients *tc = w->data;

	/* a bounded batch per wakeup: the loop has other clients to serve */
	for (int i = 0; i < 64; i++) {
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(sizeof(int) * 4)];
		} ctl;
		struct iovec iov = { .iov_base = tc->buf, .iov_len = TAKEOVER_PIECE_MSG_MAX };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = ctl.space,
				     .msg_controllen = sizeof(ctl.space) };
		ssize_t n = recvmsg(w->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			log_info(
				"takeover: pid %ld handed over %lu clients and closed the connection",
				tc->old_pid, tc->received);
			ev_io_stop(ev, w);
			close(w->fd);
			w->fd = -1;
			tc->ops->ended(tc->arg);
			return;
		}
		take_message(tc, n, &mh);
	}
}

struct takeover_clients *takeover_receive_clients(struct evloop *loop, int fd, long old_pid,
						  const struct takeover_receiver *ops, void *arg)
{
	struct takeover_clients *tc = calloc(1, sizeof(*tc));

	if (!tc || !(tc->buf = malloc(TAKEOVER_PIECE_MSG_MAX))) {
		free(tc);
		close(fd);
		return NULL;
	}
	tc->loop = loop;
	tc->old_pid = old_pid;
	tc->ops = ops;
	tc->arg = arg;
	ev_io_init(&tc->io, on_clients, fd, EV_READ);
	tc->io.data = tc;
	ev_io_start(loop->ev, &tc->io);
	return tc;
}

void takeover_clients_close(struct takeover_clients *tc)
{
	if (!tc)
		return;
	if (tc->io.fd >= 0) {
		ev_io_stop(tc->loop->ev, &tc->io);
		close(tc->io.fd);
	}
	free(tc->buf);
	free(tc->record);
	free(tc);
}
