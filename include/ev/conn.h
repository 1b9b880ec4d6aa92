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
 * reading; it resumes when the peer has drained. An accepted connection (a client) also stops
 * while its own queue is over the mark, so that what pgmux writes itself (answers, rewritten
 * messages) is paced like forwarded bytes. Whatever produced the bytes, the check is made before
 * each message: memory per connection pair stays bounded.
 *
 * Buffers are returned to the pool whenever they are empty, so an idle connection holds none.
 *
 * TLS: reads and writes go through a plain or a TLS I/O table, so owners never know whether a
 * connection is encrypted (they may look at the read-only `tls` flag). Handshakes run inside
 * conn without blocking: an accepted connection starts one with conn_start_tls_server() and
 * reads nothing for its owner until it is done; an outgoing one given conn_use_tls() sends
 * SSLRequest after connecting and reports on_connected only once TLS is up (or refused).
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
struct tls_ctx;
struct dns;
struct dns_wait;

enum conn_action {
	CONN_FORWARD,    /* relay the message to the peer (its bytes stream through) */
	CONN_CONSUME,    /* drop the message: the owner has dealt with it */
	CONN_NEED_WHOLE, /* call on_packet again once the whole message is buffered */
	CONN_STOP,       /* leave the message in the buffer; processing waits for conn_resume() */
	CONN_CLOSED,     /* the owner closed this conn inside the callback: touch nothing more */
};

enum conn_close_reason {
	CONN_EOF,        /* the peer closed the socket */
	CONN_IO_ERROR,   /* read/write/connect failed */
	CONN_BAD_PACKET, /* unparseable header or length beyond max_packet */
	CONN_FLUSHED,    /* conn_close_after_flush() finished */
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
	void *rio, *wio;   /* ev_io watchers, hidden from non-ev code */
	struct conn *peer; /* where forwarded messages go */

	uint8_t *in; /* input buffer; NULL while empty */
	uint32_t in_cap, in_pos, in_end;
	uint32_t fwd_left;   /* bytes of a forwarded message still to arrive */
	uint32_t skip_left;  /* bytes of a consumed message still to arrive */
	uint32_t max_packet; /* larger messages are a protocol violation */

	uint8_t *out; /* output queue; NULL while empty */
	uint32_t out_cap, out_pos, out_end;

	bool startup;      /* headers have no type byte (startup phase) */
	bool want_read;    /* owner wants input */
	bool stopped;      /* owner returned CONN_STOP */
	bool throttled;    /* a queue this side fills is over the high-water mark */
	bool reader_paces; /* accepted: its own full queue stops its input too */
	bool connecting;
	bool failed;
	bool closing; /* flushing before close */
	bool is_unix;
	enum conn_close_reason fail_reason;

	struct list_node resume_node, failed_node, dirty_node;
	uint64_t bytes_in, bytes_out;

	/*
	 * While tap is set, the input bytes used (forwarded, or consumed by the owner) are also
	 * copied into it, up to tap_limit; beyond that tap_overflow is set and copying stops. Lets
	 * the owner process a request again (conn_unread) after the peer failed to answer it.
	 */
	struct msgbuf *tap;
	size_t tap_limit;
	bool tap_overflow;

	/* TLS: owners read `tls` only; the rest belongs to ev/conn.c and ev/tls.c. */
	bool tls;                  /* traffic is encrypted (handshake finished) */
	bool tls_direct;           /* the client began with a ClientHello: ALPN required */
	bool tls_read_wants_write; /* a TLS read waits for writability */
	bool tls_write_wants_read; /* a TLS write waits for readability */
	uint8_t tls_phase;         /* enum conn_tls_phase in conn.c */
	int tls_mode;              /* outgoing: enum tls_mode the session was asked with */
	void *ssl;                 /* SSL *, NULL when plain */
	uint8_t *tls_pre;          /* bytes read before TLS began, fed to OpenSSL first */
	uint32_t tls_pre_len, tls_pre_pos;
	char *error; /* why the last TLS or DNS step failed (conn_error()) */

	struct dns_wait *dns_wait; /* waiting for a host name lookup (ev/dns.c) */
	int dns_port;              /* port to connect to once the name resolved */
};

void conn_init(struct conn *c, struct evloop *loop, const struct conn_ops *ops, void *owner);
/* Take over an accepted, connected socket and start reading. */
bool conn_attach(struct conn *c, int fd);
/*
 * A connected pair of unix sockets, for a connection of pgmux to itself: one end attached to c
 * (as conn_attach), the other returned for the other side to attach; -1 when it cannot be made.
 */
int conn_attach_pair(struct conn *c);
/* Close a socket no conn took (conn_attach_pair's other end when its taker failed). */
void conn_drop_fd(int fd);
/* Start a non-blocking connect; on_connected reports the outcome. False: failed at once. */
bool conn_connect(struct conn *c, const struct sockaddr *addr, socklen_t len, int *errnum);

/*
 * Make an outgoing connection ask for TLS (PostgreSQL's SSLRequest) once connected; call before
 * conn_connect(). t's mode decides what a refusal ('N') means: prefer/allow go on in plain text,
 * require and verify-* fail the connect. host is the name checked under verify-full (and sent as
 * SNI). Unix sockets stay plain. False: the TLS session could not be created (conn_error()).
 */
bool conn_use_tls(struct conn *c, struct tls_ctx *t, const char *host);

/*
 * Start a TLS handshake as the server on an accepted connection, from inside on_packet. plain
 * (may be NULL) is written unencrypted first (the 'S' answer to SSLRequest). direct: the client
 * sent a ClientHello straight away; the buffered input is handed to TLS and ALPN "postgresql" is
 * required. Input is not processed until the handshake finishes; a failed handshake closes the
 * conn with CONN_IO_ERROR (conn_error() says why). False: could not start (conn_error()).
 */
bool conn_start_tls_server(struct conn *c, struct tls_ctx *t, const void *plain, size_t plain_len,
			   bool direct);

/*
 * The tls-server-end-point channel binding data (RFC 5929): the hash of the certificate the TLS
 * server side of this connection presented. False when the connection is not encrypted.
 */
bool conn_tls_server_end_point(const struct conn *c, uint8_t out[64], size_t *len);

/*
 * The common name of the certificate the TLS peer presented (a client certificate checked under
 * client_tls_sslmode verify-ca/verify-full, for auth_type = cert) into buf. False when there is
 * none or it does not fit.
 */
bool conn_tls_peer_name(const struct conn *c, char *buf, size_t len);

/*
 * The protocol and cipher of an encrypted connection, "TLSv1.3/TLS_AES_256_GCM_SHA384", into
 * buf (SHOW CLIENTS/SERVERS). False, and buf empty, while the connection is plain.
 */
bool conn_tls_describe(const struct conn *c, char *buf, size_t len);
/* Outgoing: is the connection TLS with the peer's certificate checked (verify-ca or -full)? */
bool conn_tls_verified(const struct conn *c);

/* Why the last TLS step failed, or NULL. Borrowed; valid until the conn is closed. */
const char *conn_error(const struct conn *c);
/* Record why a step failed (for ev/ code). */
void conn_set_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * In startup mode a first byte of 0x16 (a TLS ClientHello, never a valid startup length) is
 * shown to on_packet as a header of this type and length 0; the owner either calls
 * conn_start_tls_server(direct) and returns CONN_CONSUME, or closes the connection.
 */
#define CONN_TLS_HELLO ((char)0x16)

/*
 * Connect to host:port, where host is a name resolved through d (or a numeric address, which
 * skips DNS). on_connected reports the outcome; a failed lookup reports ok == false with
 * errnum 0 and conn_error() saying "could not resolve host ...". False: failed at once (the
 * same way: errnum 0 and conn_error() for DNS, else errnum).
 */
bool conn_connect_name(struct conn *c, struct dns *d, const char *host, int port, int *errnum);

/* The remote address of a connected socket into ss. False if it has none. */
bool conn_peer_addr(const struct conn *c, struct sockaddr_storage *ss, socklen_t *len);

/*
 * Queue bytes for this socket; written at the end of the loop iteration. While the queue is
 * over the mark, the connection whose message led to the write (this one if accepted, or its
 * peer) is not read past that message (see Back-pressure above): owners may answer freely.
 */
void conn_write(struct conn *c, const void *data, size_t len);

void conn_link(struct conn *a, struct conn *b);
void conn_unlink(struct conn *c);

/*
 * Put data back in front of the buffered input, to be processed again (after conn_resume).
 * Only between messages; false when it cannot (mid-message, out of memory).
 */
bool conn_unread(struct conn *c, const void *data, uint32_t len);

/* Read again, and process buffered input (deferred to the end of the loop iteration). */
void conn_resume(struct conn *c);

/* Close now; pending output is dropped; no callback follows. */
void conn_close(struct conn *c);
/*
 * Give the socket up without closing it (it goes to another process): c is left closed and the
 * fd is the caller's. -1 when the socket cannot leave as it is: TLS on it, bytes read from it
 * and not yet used, or bytes queued for it.
 */
int conn_release_fd(struct conn *c);
/* Close now after one best-effort, non-blocking write of a last message (e.g. Terminate). */
void conn_close_with(struct conn *c, const void *data, size_t len);
/* Stop reading, write what is queued, then close and report CONN_FLUSHED via on_closed. */
void conn_close_after_flush(struct conn *c);

static inline bool conn_is_open(const struct conn *c)
{
	return c->fd >= 0;
}

/* How input is framed: startup-phase headers (no type byte) or typed ones, and the largest message. */
static inline void conn_set_framing(struct conn *c, bool startup, uint32_t max_packet)
{
	c->startup = startup;
	c->max_packet = max_packet;
}

/* Copy the input used from now on into tap, up to limit bytes (see struct conn's tap). */
static inline void conn_tap_start(struct conn *c, struct msgbuf *tap, size_t limit)
{
	c->tap = tap;
	c->tap_limit = limit;
	c->tap_overflow = false;
}

static inline void conn_tap_stop(struct conn *c)
{
	c->tap = NULL;
}

/* What the tap holds can no longer be processed again: the peer already heard an answer to it. */
static inline void conn_tap_spoil(struct conn *c)
{
	if (c->tap)
		c->tap_overflow = true;
}

/*
 * Can what is queued still reach the peer: the socket is open and did not fail, or only its
 * input broke (a malformed message), so an error can still be flushed before the close.
 */
static inline bool conn_can_write(const struct conn *c)
{
	return c->fd >= 0 && (!c->failed || c->fail_reason == CONN_BAD_PACKET);
}
/* Every byte ever given to c to send: sent, or still queued. */
static inline uint64_t conn_output_total(const struct conn *c);

static inline size_t conn_pending_output(const struct conn *c)
{
	return c->out ? c->out_end - c->out_pos : 0;
}
static inline size_t conn_buffered_input(const struct conn *c)
{
	return c->in ? c->in_end - c->in_pos : 0;
}
/* The end of the input read so far (for looking ahead of the message being handled). */
static inline const uint8_t *conn_input_end(const struct conn *c)
{
	return c->in ? c->in + c->in_end : NULL;
}

/*
 * Where c's buffers stand (SHOW SOCKETS), as offsets: all 0 for a buffer c does not hold.
 * Bytes read and not yet processed are in_end - in_pos; bytes queued and not yet written are
 * out_end - out_pos.
 */
struct conn_buffers {
	uint32_t in_pos, in_end;   /* input: processed up to in_pos, read up to in_end */
	uint32_t msg_left;         /* bytes of the message relayed or skipped still to arrive */
	uint32_t out_pos, out_end; /* output queue: written up to out_pos, queued up to out_end */
};

/* Fill b from c; reads only. */
void conn_buffer_state(const struct conn *c, struct conn_buffers *b);

/* "ip:port" of the remote end into buf ("unix" on a unix socket, "unknown" when not known). */
void conn_peer_name(const struct conn *c, char *buf, size_t len);

/*
 * "ip:port", "[ipv6]:port" or "unix" of this end of c's socket into buf. False, and buf empty,
 * when it has none yet (no socket while a host name resolves).
 */
bool conn_local_name(const struct conn *c, char *buf, size_t len);

/*
 * True when c is a unix-socket connection whose peer process runs as the same OS user as pgmux
 * (SO_PEERCRED on Linux, getpeereid() elsewhere); false for TCP or when it cannot be told.
 */
bool conn_peer_is_own_user(const struct conn *c);

static inline uint64_t conn_output_total(const struct conn *c)
{
	return c->bytes_out + conn_pending_output(c);
}

#endif
