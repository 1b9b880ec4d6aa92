/*
 * listen: listening sockets (TCP addresses and a unix socket) that hand each accepted connection
 * to its owner as an attached conn: the owner never holds the socket itself.
 */
#ifndef PGMUX_EV_LISTEN_H
#define PGMUX_EV_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

struct evloop;
struct listeners;

struct conn;

/*
 * A connection arrived. Return a conn made ready for it (conn_init, with its owner and ops), or
 * NULL to refuse it (the listener closes the socket). The listener
 * attaches the socket to that conn, then calls the conn's on_connected: ok, or not ok when the
 * socket could not be attached (out of memory; the socket is closed, the conn never opened).
 */
typedef struct conn *(*listen_accept_fn)(void *arg);

/*
 * Listen on every address in addrs (comma/space separated, "*" = all IPv4 and IPv6) at port, and
 * on unix_dir/.s.PGSQL.port unless unix_dir is empty. NULL (and err) if any of them fails.
 * defer_accept: TCP listeners hand over a connection only once the client has sent data
 * (Linux TCP_DEFER_ACCEPT, 45 s as PgBouncer; elsewhere ignored with a log line).
 * When a service manager passed listening sockets (LISTEN_FDS, see ev/sysd.h), those are used
 * instead and addrs, port and unix_dir are ignored (said in the log).
 * reuseport: TCP listeners set SO_REUSEPORT, so other processes that set it too can listen on
 * the same address and port (the unix socket is never shared: a second bind would replace it).
 */
struct listeners *listen_open(struct evloop *loop, const char *addrs, int port,
			      const char *unix_dir, int unix_mode, int backlog, bool defer_accept,
			      bool reuseport, listen_accept_fn fn, void *arg, char *err,
			      size_t errlen);
/*
 * hold: stop accepting, leaving newcomers in the kernel's backlog (listen_backlog), until a call
 * with hold false. Returns true when this changed the state. Independent of the short pause
 * after running out of file descriptors: accepting resumes when neither holds it.
 */
bool listen_hold(struct listeners *ls, bool hold);

/* Stop accepting and close the sockets (the unix socket file is removed). */
void listen_close(struct listeners *ls);

/*
 * Takeover (ev/takeover.h). One listening socket: its descriptor (owned by the listeners), its
 * address in text ("127.0.0.1:6432", "[::1]:6432", a unix socket's path) and whether it is a
 * unix socket file pgmux created (removed by whoever closes it last at exit).
 */
struct listen_socket {
	int fd;
	int family;
	bool owned;
	char addr[108];
};

/* Describe up to max sockets into out; returns how many. */
int listen_sockets(const struct listeners *ls, struct listen_socket *out, int max);

/*
 * Accept on sockets handed over by another process (descriptors taken over; on failure all are
 * closed). NULL (and err) when one is not a listening stream socket.
 */
struct listeners *listen_adopt(struct evloop *loop, const struct listen_socket *socks, int n,
			       listen_accept_fn fn, void *arg, char *err, size_t errlen);

/* Stop accepting and close this process's copies, leaving the socket file: it was handed over. */
void listen_release(struct listeners *ls);

#endif
