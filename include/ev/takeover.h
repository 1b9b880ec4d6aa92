/*
 * takeover: listening sockets handed from a running pgmux to a new one (zero-downtime upgrade),
 * over a unix SOCK_SEQPACKET socket, the takeover socket, with SCM_RIGHTS. Messages: see
 * ev/takeovermsg.h.
 *
 * The running (old) process listens on the takeover socket. A new process connects, says HELLO,
 * receives a duplicate of every listening socket, puts them in its own loop, says READY and waits
 * for DONE. Only on READY does the old process stop accepting (it stops watching the sockets and
 * closes its copies: the sockets stay open in the new process, so the kernel's queue of
 * connections not yet accepted is kept, and no connection attempt is refused or reset). Until
 * then it serves as before: a new process that fails, hangs or dies before READY costs nothing.
 *
 * Only a peer running as the same user (or root) may take over. One takeover at a time.
 */
#ifndef PGMUX_EV_TAKEOVER_H
#define PGMUX_EV_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev/takeovermsg.h"

struct evloop;
struct takeover_clients;
struct takeover_server;

/* Seconds the old process waits for the new one's next message, and the new one for the old's. */
#define TAKEOVER_TIMEOUT 10.0

/* The sockets offered: descriptors (still owned by the offerer) and their records. */
struct takeover_offer {
	int n;
	int fds[TAKEOVER_MAX_SOCKETS];
	struct takeover_sock socks[TAKEOVER_MAX_SOCKETS];
};

/*
 * Old side. offer: fill out with what to hand over; false (and why) refuses the takeover.
 * done: the new process (new_pid) confirmed it accepts: stop accepting. Called once; it must
 * not close the takeover server (the server has closed its own socket already and needs only
 * takeover_close() to be freed).
 */
typedef bool (*takeover_offer_fn)(void *arg, struct takeover_offer *out, char *why, size_t whylen);
typedef void (*takeover_done_fn)(void *arg, long new_pid);

/*
 * Listen on path (an existing file there is replaced; mode 0600) or, when fd >= 0, on that
 * listening socket handed over by a previous process (path is then only its name). NULL (and
 * err) when the socket cannot be made.
 */
struct takeover_server *takeover_listen(struct evloop *loop, const char *path, int fd,
					takeover_offer_fn offer, takeover_done_fn done, void *arg,
					char *err, size_t errlen);

/* The listening descriptor (for the offer), -1 once handed over. */
int takeover_server_fd(const struct takeover_server *ts);

/* The takeover socket's path (for the offer's record). */
const char *takeover_server_path(const struct takeover_server *ts);

/*
 * A takeover socket received but not wanted (the new configuration names another path): close
 * fd and remove its file, so that no socket nobody listens on is left behind.
 */
void takeover_discard(int fd, const char *path);

/*
 * Close the server and a takeover in progress (the peer sees the connection end). remove_file:
 * unlink the path too (not after the socket was handed over: it is the new process's now).
 * NULL is a no-op.
 */
void takeover_close(struct takeover_server *ts, bool remove_file);

/*
 * New side, blocking (it runs before the loop starts), each step bounded by TAKEOVER_TIMEOUT.
 *
 * takeover_begin: connect to path, say HELLO, receive the offer: got->fds are now the caller's
 * (close-on-exec, blocking as passed). Returns the connection, or -1 and err (nobody listens,
 * refused, a bad answer): then nothing was received.
 */
int takeover_begin(const char *path, struct takeover_offer *got, long *old_pid, char *err,
		   size_t errlen);

/* What the new process is told on the takeover connection after DONE. */
struct takeover_receiver {
	/* one client: its socket (now the callee's) and its record */
	void (*client)(void *arg, int fd, const uint8_t *rec, size_t len);
	/* the old process now holds n servers of database db for user */
	void (*servers)(void *arg, const char *db, const char *user, int n);
	/* the old process closed the connection (it exited, or gave up handing over) */
	void (*ended)(void *arg);
};

/*
 * Say READY, wait for DONE (the old process's server counts before it go to ops->servers). True
 * when the old process confirmed it stopped accepting: fd stays open, for
 * takeover_receive_clients. False (and err, fd closed) otherwise: it may still be accepting.
 */
bool takeover_finish(int fd, const struct takeover_receiver *ops, void *arg, char *err,
		     size_t errlen);

/*
 * New side, once the loop runs: receive on fd (from a successful takeover_finish) what the old
 * process hands over, each message given to ops, until it closes the connection. NULL (fd
 * closed): out of memory.
 */
struct takeover_clients *takeover_receive_clients(struct evloop *loop, int fd, long old_pid,
						  const struct takeover_receiver *ops, void *arg);
void takeover_clients_close(struct takeover_clients *tc);

/*
 * Old side, after done: pass one idle client (its socket fd and its record) to the new process.
 * 1: sent (fd is still the caller's, to close); 0: not now (the connection's queue is full,
 * or the record too large), nothing sent; -1: there is no connection (any more).
 */
int takeover_pass_client(struct takeover_server *ts, int fd, const uint8_t *rec, size_t len);

/* Old side, after done: tell the new process we hold n servers of db for user. As above. */
int takeover_pass_servers(struct takeover_server *ts, const char *db, const char *user, int n);

#endif
