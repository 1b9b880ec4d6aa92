/*
 * listen: TCP and unix listening sockets (see ev/listen.h), bound here or handed over by a
 * service manager (socket activation, ev/sysd.h). A unix socket file is removed at close only
 * when pgmux created it.
 */
#include "ev/listen.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "ev/conn.h"
#include "ev/loop.h"
#include "ev/sysd.h"

#define MAX_LISTENERS 16
/* How long the kernel holds a silent connection back, as PgBouncer (it hardcodes 45 s too). */
#define DEFER_ACCEPT_SECONDS 45

struct listener {
	ev_io io;
	bool is_unix;
	struct listeners *set;
};

struct listeners {
	struct evloop *loop;
	listen_accept_fn fn;
	void *arg;
	bool defer_accept;
	bool reuseport;
	int n;
	struct listener l[MAX_LISTENERS];
	char unix_path[108];
	ev_timer retry; /* accepting paused after running out of file descriptors */
	bool held;      /* accepting paused by the owner (listen_hold) */
};

static void start_all(struct listeners *ls)
{
	for (int i = 0; i < ls->n; i++)
		ev_io_start(ls->loop->ev, &ls->l[i].io);
}

static void stop_all(struct listeners *ls)
{
	for (int i = 0; i < ls->n; i++)
		ev_io_stop(ls->loop->ev, &ls->l[i].io);
}

static void resume_accepting(struct ev_loop *ev, ev_timer *t, int revents)
{
	struct listeners *ls = t->data;

	if (!ls->held)
		start_all(ls);
}

bool listen_hold(struct listeners *ls, bool hold)
{
	if (ls->held == hold)
		return false;
	ls->held = hold;
	if (hold)
		stop_all(ls);
	else if (!ev_is_active(&ls->retry))
		start_all(ls);
	return true;
}

/* Give the socket to the conn its owner makes for it (see listen_accept_fn). */
static void hand_over(struct listeners *ls, int fd)
{
	struct conn *c = ls->fn(ls->arg);
	bool ok;

	if (!c) {
		close(fd);
		return;
	}
	ok = conn_attach(c, fd);
	if (!ok)
		close(fd);
	c->ops->on_connected(c->owner, c, ok, ok ? 0 : ENOMEM);
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents)
{
	struct listener *l = w->data;
	struct listeners *ls = l->set;

	/* Drain the backlog, but bounded so one busy listener cannot starve the loop. */
	for (int i = 0; i < 64; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			hand_over(ls, fd);
			/* The owner may have put accepting on hold (listen_hold) from its callback. */
			if (ls->held)
				return;
			continue;
		}
		if (errno == EMFILE || errno == ENFILE) {
			log_warning("out of file descriptors: not accepting for a second");
			stop_all(ls);
			ev_timer_set(&ls->retry, 1.0, 0);
			ev_timer_start(ev, &ls->retry);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			   errno != ECONNABORTED) {
			log_warning("accept failed: %s", strerror(errno));
		}
		return;
	}
}

static bool add_listener(struct listeners *ls, int fd, bool is_unix)
{
	struct listener *l;

	if (ls->n >= MAX_LISTENERS) {
		close(fd);
		return false;
	}
	l = &ls->l[ls->n++];
	l->is_unix = is_unix;
	l->set = ls;
	ev_io_init(&l->io, on_accept, fd, EV_READ);
	l->io.data = l;
	ev_io_start(ls->loop->ev, &l->io);
	return true;
}

/*
 * A client speaks first in the PostgreSQL protocol, so the kernel can keep a connection until its
 * first bytes arrive and pgmux never wakes for one that sends nothing. Best effort: a listener
 * without it works as before.
 */
static void set_defer_accept(struct listeners *ls, int fd)
{
#ifdef TCP_DEFER_ACCEPT
	int secs = DEFER_ACCEPT_SECONDS;

	if (ls->defer_accept &&
	    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) < 0)
		log_warning("tcp_defer_accept: setsockopt failed: %s", strerror(errno));
#else
	if (ls->defer_accept)
		log_warning("tcp_defer_accept: not supported on this system, ignored");
#endif
}

static bool listen_tcp(struct listeners *ls, const char *host, int port, int backlog, char *err,
		       size_t errlen)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char portstr[16];
	int rc, one = 1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "listen_addr %s: %s", host, gai_strerror(rc));
		return false;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Several processes on one port: each must ask, or the second bind fails. */
		if (ls->reuseport &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
			snprintf(err, errlen, "so_reuseport on %s:%d: %s", host, port,
				 strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return false;
		}
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
			snprintf(err, errlen, "could not listen on %s:%d: %s", host, port,
				 strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return false;
		}
		set_defer_accept(ls, fd);
		add_listener(ls, fd, false);
	}
	freeaddrinfo(res);
	return true;
}

static bool listen_unix(struct listeners *ls, const char *dir, int port, int mode, int backlog,
			char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, port) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir too long");
		return false;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return false;
	}
	unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, backlog) < 0) {
		snprintf(err, errlen, "could not listen on %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return false;
	}
	chmod(sun.sun_path, (mode_t)mode);
	snprintf(ls->unix_path, sizeof(ls->unix_path), "%s", sun.sun_path);
	return add_listener(ls, fd, true);
}

/* A passed descriptor is usable when it is a stream socket that listens; fd is ls's or closed. */
static bool adopt_passed(struct listeners *ls, int fd, const char *from, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int type = 0, listening = 0;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		snprintf(err, errlen, "descriptor %d from %s is not a listening stream socket", fd,
			 from);
		close(fd);
		return false;
	}
	/* systemd hands sockets over blocking unless the unit says NonBlocking=yes */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (ss.ss_family != AF_UNIX)
		set_defer_accept(ls, fd);
	if (!add_listener(ls, fd, ss.ss_family == AF_UNIX)) {
		snprintf(err, errlen, "more than %d sockets in %s", MAX_LISTENERS, from);
		return false;
	}
	return true;
}

/* Takes the n sockets the service manager passed instead of binding any. */
static bool listen_passed(struct listeners *ls, int n, const char *names, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		if (!adopt_passed(ls, SYSD_LISTEN_FDS_START + i, "LISTEN_FDS", err, errlen))
			return false;
	}
	log_info("listening on %d socket%s passed by the service manager (LISTEN_FDS%s%s): "
		 "listen_addr and unix_socket_dir are not used",
		 n, n == 1 ? "" : "s", *names ? ", names " : "", names);
	return true;
}

static struct listeners *new_listeners(struct evloop *loop, listen_accept_fn fn, void *arg)
{
	struct listeners *ls = calloc(1, sizeof(*ls));

	if (!ls)
		return NULL;
	ls->loop = loop;
	ls->fn = fn;
	ls->arg = arg;
	ev_timer_init(&ls->retry, resume_accepting, 1.0, 0);
	ls->retry.data = ls;
	return ls;
}

struct listeners *listen_open(struct evloop *loop, const char *addrs, int port,
			      const char *unix_dir, int unix_mode, int backlog, bool defer_accept,
			      bool reuseport, listen_accept_fn fn, void *arg, char *err,
			      size_t errlen)
{
	struct listeners *ls = new_listeners(loop, fn, arg);
	char *copy, *tok, *save = NULL, names[256];
	int passed;

	if (!ls || !(copy = strdup(addrs))) {
		free(ls);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ls->defer_accept = defer_accept;
	ls->reuseport = reuseport;
	passed = sysd_listen_fds(names, sizeof(names), err, errlen);
	if (passed != 0) {
		free(copy);
		if (passed > 0 && listen_passed(ls, passed, names, err, errlen))
			return ls;
		listen_close(ls);
		return NULL;
	}
	for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (!listen_tcp(ls, tok, port, backlog, err, errlen)) {
			free(copy);
			listen_close(ls);
			return NULL;
		}
	}
	free(copy);
	if (*unix_dir && !listen_unix(ls, unix_dir, port, unix_mode, backlog, err, errlen)) {
		listen_close(ls);
		return NULL;
	}
	return ls;
}

static void close_all(struct listeners *ls, bool remove_file)
{
	if (!ls)
		return;
	ev_timer_stop(ls->loop->ev, &ls->retry);
	for (int i = 0; i < ls->n; i++) {
		ev_io_stop(ls->loop->ev, &ls->l[i].io);
		close(ls->l[i].io.fd);
	}
	if (remove_file && *ls->unix_path)
		unlink(ls->unix_path);
	free(ls);
}

void listen_close(struct listeners *ls)
{
	close_all(ls, true);
}

/*
 * The socket keeps listening in the process it was handed to, so closing this copy neither
 * resets the connections in its queue nor stops the kernel from queueing new ones.
 */
void listen_release(struct listeners *ls)
{
	close_all(ls, false);
}

/* "host:port" ("[v6]:port") or the unix socket's path of a bound socket; "" when unknown. */
static void socket_text(int fd, int *family, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[INET6_ADDRSTRLEN + 2] = "", port[8] = "";

	*out = '\0';
	*family = AF_UNSPEC;
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
		return;
	*family = ss.ss_family;
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;

		if (sslen > offsetof(struct sockaddr_un, sun_path))
			snprintf(out, len, "%.*s",
				 (int)(sslen - offsetof(struct sockaddr_un, sun_path)),
				 sun->sun_path);
	} else if (getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), port,
			       sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
		snprintf(out, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
	}
}

int listen_sockets(const struct listeners *ls, struct listen_socket *out, int max)
{
	int n = 0;

	for (int i = 0; ls && i < ls->n && n < max; i++, n++) {
		out[n].fd = ls->l[i].io.fd;
		socket_text(out[n].fd, &out[n].family, out[n].addr, sizeof(out[n].addr));
		out[n].owned = ls->l[i].is_unix && *ls->unix_path &&
			       strcmp(ls->unix_path, out[n].addr) == 0;
	}
	return n;
}

struct listeners *listen_adopt(struct evloop *loop, const struct listen_socket *socks, int n,
			       listen_accept_fn fn, void *arg, char *err, size_t errlen)
{
	struct listeners *ls = new_listeners(loop, fn, arg);
	int i;

	if (!ls) {
		snprintf(err, errlen, "out of memory");
		i = 0;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		/* Options such as TCP_DEFER_ACCEPT belong to the socket: they came with it. */
		if (!adopt_passed(ls, socks[i].fd, "the takeover", err, errlen)) {
			i++; /* adopt_passed kept or closed that one */
			goto fail;
		}
		if (socks[i].owned && socks[i].family == AF_UNIX)
			snprintf(ls->unix_path, sizeof(ls->unix_path), "%s", socks[i].addr);
	}
	return ls;
fail:
	for (; i < n; i++)
		close(socks[i].fd);
	listen_release(ls);
	return NULL;
}
