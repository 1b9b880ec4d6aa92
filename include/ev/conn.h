/*
 * conn: one socket, its input buffer and its output queue; the only code that reads and writes
 * sockets.
 *
 * Input is read into a pooled buffer and cut into protocol messages. For each message the owner
 * (client or server code) says what to do: forward it to the peer connection, consume it, see it
 * whole first, or stop. Forwarded bytes are appended to the peer's output queue, and output is
 * written once per loop iteration, so a batch of messages costs one read and one write.
 * Large messages are never held whole unless the owner asks: their bytes stream through.
 *
 * Back-pressure: while a peer's output queue holds more than a high-water mark, this side stops
 * reading; it resumes when the peer has drained. Memory per connection pair stays bounded.
 *
 * Buffers are returned to the pool whenever they are empty, so an idle connection holds none.
 */
#ifndef PGMUX_EV_CONN_H
#define PGMUX_EV_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/list.h"
#include "proto/build.h"
#include "proto/pkt.h"

struct evloop;
struct conn;

enum conn_action {
	CONN_FORWARD,    /* relay the message to the peer (its bytes stream through) */
	CONN_CONSUME,    /* drop the message: the owner has dealt with it */
	CONN_NEED_WHOLE, /* call on_packet again once the whole message is buffered */
	CONN_STOP,       /* leave the message in the buffer; processing waits for conn_resume() */
	CONN_CLOSED,     /* the owner closed this conn inside the callback: touch nothing more */
};

enum conn_close_reason {
	CONN_EOF,          /* the peer closed the socket */
	CONN_IO_ERROR,     /* read/write/connect failed */
	CONN_BAD_PACKET,   /* unparseable header or length beyond max_packet */
	CONN_FLUSHED,      /* conn_close_after_flush() finished */
};

struct conn_ops {
	/*
	 * A message header was seen (whole == NULL), or the whole message is buffered after the
	 * owner asked for it (whole points at its first byte, header included).
	 */
	enum conn_action (*on_packet)(void *owner, struct conn *c, const struct pkt_header *hdr,
				      const uint8_t *whole);
	/* An outgoing connect finished; ok == false means it failed (errnum says why). */
	void (*on_connected)(void *owner, struct conn *c, bool ok, int errnum);
	/* The connection is gone (never called re-entrantly from conn_* calls). */
	void (*on_closed)(void *owner, struct conn *c, enum conn_close_reason why);
};

struct conn {
	struct evloop *loop;
	const struct conn_ops *ops;
	void *owner;
	int fd;
	void *rio, *wio;           /* ev_io watchers, hidden from non-ev code */
	struct conn *peer;         /* where forwarded messages go */

	uint8_t *in;               /* input buffer; NULL while empty */
	uint32_t in_cap, in_pos, in_end;
	uint32_t fwd_left;         /* bytes of a forwarded message still to arrive */
	uint32_t skip_left;        /* bytes of a consumed message still to arrive */
	uint32_t max_packet;       /* larger messages are a protocol violation */

	uint8_t *out;              /* output queue; NULL while empty */
	uint32_t out_cap, out_pos, out_end;

	bool startup;              /* headers have no type byte (startup phase) */
	bool want_read;            /* owner wants input */
	bool stopped;              /* owner returned CONN_STOP */
	bool throttled;            /* the peer's output is over the high-water mark */
	bool connecting;
	bool failed;
	bool closing;              /* flushing before close */
	bool is_unix;
	enum conn_close_reason fail_reason;

	struct list_node resume_node, failed_node, dirty_node, closing_node;
	uint64_t bytes_in, bytes_out;

	/*
	 * While tap is set, forwarded bytes are also copied into it, up to tap_limit; beyond that
	 * tap_overflow is set and copying stops. Lets the owner replay a request elsewhere.
	 */
	struct msgbuf *tap;
	size_t tap_limit;
	bool tap_overflow;
};

void conn_init(struct conn *c, struct evloop *loop, const struct conn_ops *ops, void *owner);
/* Take over an accepted, connected socket and start reading. */
bool conn_attach(struct conn *c, int fd);
/* Start a non-blocking connect; on_connected reports the outcome. False: failed at once. */
bool conn_connect(struct conn *c, const struct sockaddr *addr, socklen_t len, int *errnum);

/* Queue bytes for this socket; written at the end of the loop iteration. */
void conn_write(struct conn *c, const void *data, size_t len);

void conn_link(struct conn *a, struct conn *b);
void conn_unlink(struct conn *c);

/* Stop reading and processing input until conn_resume(); buffered input is kept. */
void conn_pause(struct conn *c);
/* Read again, and process buffered input (deferred to the end of the loop iteration). */
void conn_resume(struct conn *c);

/* Close now; pending output is dropped; no callback follows. */
void conn_close(struct conn *c);
/* Close now after one best-effort, non-blocking write of a last message (e.g. Terminate). */
void conn_close_with(struct conn *c, const void *data, size_t len);
/* Stop reading, write what is queued, then close and report CONN_FLUSHED via on_closed. */
void conn_close_after_flush(struct conn *c);

static inline bool conn_is_open(const struct conn *c)
{
	return c->fd >= 0;
}
static inline size_t conn_pending_output(const struct conn *c)
{
	return c->out ? c->out_end - c->out_pos : 0;
}
static inline size_t conn_buffered_input(const struct conn *c)
{
	return c->in ? c->in_end - c->in_pos : 0;
}

/* "ip:port" (or "unix") of the remote end into buf. */
void conn_peer_name(int fd, char *buf, size_t len);

#endif
