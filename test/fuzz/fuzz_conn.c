/* link: src/ev/conn.c src/proto/pkt.c src/proto/build.c */
/*
 * libFuzzer target: conn's input framing and back-pressure, driven with byte streams and no
 * socket. The bytes arrive in chunks of varying size as reads would put them in the input
 * buffer; an owner answers each message as the script says (forward to the linked peer,
 * consume and answer it, see it whole, stop and resume, close); the peer's and the
 * connection's own output drain only now and then (answers can be far larger than questions).
 * Checked: the cursors' invariants, every
 * whole message readable to its last byte (ASan), and back-pressure: a queue this connection
 * fills never holds more than the high-water mark plus what one pass over a buffer adds.
 *
 * Input: 4 bytes of settings, then the stream. The settings also seed the owner's script.
 */
#include <ev.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "ev/conn.h"
#include "ev/dns.h"
#include "ev/loop.h"
#include "ev/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void conn_process_input(struct conn *c);
void conn_report_failure(struct conn *c);
void conn_flush(struct conn *c);

static volatile size_t sink;

/* ---- what conn.c calls outside its module: no event loop, no TLS, no DNS ---- */

void ev_io_start(struct ev_loop *loop, ev_io *w)
{
	w->active = 1;
}

void ev_io_stop(struct ev_loop *loop, ev_io *w)
{
	w->active = 0;
}

void ev_feed_event(struct ev_loop *loop, void *w, int revents)
{
}

uint8_t *evloop_get_buf(struct evloop *l)
{
	l->bufs_in_use++;
	return malloc(l->buf_size);
}

void evloop_put_buf(struct evloop *l, uint8_t *buf)
{
	l->bufs_in_use--;
	free(buf);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
}

bool log_enabled(enum log_level lvl)
{
	return false;
}

void log_assert_failed(const char *cond, const char *file, int line)
{
	abort();
}

enum dns_answer dns_lookup(struct dns *d, const char *name, struct conn *c,
			   struct sockaddr_storage *addr, socklen_t *len, char *err, size_t errlen)
{
	abort();
}

void dns_wait_cancel(struct dns_wait *w)
{
}

int tls_ctx_mode(const struct tls_ctx *t)
{
	abort();
}

bool tls_conn_new(struct conn *c, struct tls_ctx *t, bool server, bool direct, const char *host)
{
	abort();
}

enum tls_step tls_conn_handshake(struct conn *c)
{
	abort();
}

long tls_conn_read(struct conn *c, void *buf, size_t len, bool *wants_write)
{
	abort();
}

long tls_conn_write(struct conn *c, const void *buf, size_t len, bool *wants_read)
{
	abort();
}

bool tls_conn_pending(const struct conn *c)
{
	return false;
}

void tls_conn_free(struct conn *c)
{
}

bool tls_conn_end_point(const struct conn *c, uint8_t out[64], size_t *len)
{
	return false;
}

bool tls_conn_peer_name(const struct conn *c, char *buf, size_t len)
{
	return false;
}

void tls_conn_describe(const struct conn *c, char *buf, size_t len)
{
}

/* ---- the owner ---- */

struct owner {
	uint32_t script; /* xorshift state: the owner's choices */
	struct conn *self;
	bool closed;
	uint8_t answer[1024]; /* answers far larger than questions, as SHOW replies */
};

static uint32_t next(struct owner *o)
{
	o->script ^= o->script << 13;
	o->script ^= o->script >> 17;
	o->script ^= o->script << 5;
	return o->script;
}

static enum conn_action on_packet(void *owner, struct conn *c, const struct pkt_header *hdr,
				  const uint8_t *whole)
{
	struct owner *o = owner;
	uint32_t pick = next(o) % 64;

	if (whole) {
		for (uint32_t i = 0; i < hdr->len; i++)
			sink += whole[i];
	}
	if (hdr->type == CONN_TLS_HELLO && !whole)
		return CONN_NEED_WHOLE;
	if (pick < 20)
		return CONN_FORWARD;
	if (pick < 42) {
		/* answered by pgmux itself (or rewritten for the peer) */
		conn_write(pick & 1 && c->peer ? c->peer : c, o->answer,
			   1 + next(o) % sizeof(o->answer));
		return CONN_CONSUME;
	}
	if (pick < 56)
		return whole ? CONN_CONSUME : CONN_NEED_WHOLE;
	/* rarely: a long pipeline must get through between stops and closes */
	if (pick < 63 || next(o) % 16)
		return pick < 57 ? CONN_STOP : CONN_CONSUME;
	conn_close(c);
	o->closed = true;
	return CONN_CLOSED;
}

static void on_connected(void *owner, struct conn *c, bool ok, int errnum)
{
	abort();
}

static void on_closed(void *owner, struct conn *c, enum conn_close_reason why)
{
	struct owner *o = owner;

	conn_close(c);
	o->closed = true;
}

static const struct conn_ops ops = { on_packet, on_connected, on_closed };

/* ---- the harness ---- */

static void check(const struct conn *c, uint32_t bound)
{
	if (!conn_is_open(c))
		return;
	if (c->in && !(c->in_pos <= c->in_end && c->in_end <= c->in_cap))
		abort();
	if (c->out && !(c->out_pos <= c->out_end && c->out_end <= c->out_cap))
		abort();
	if (conn_pending_output(c) > bound)
		abort();
}

static void open_conn(struct conn *c, struct evloop *l, struct owner *o)
{
	ev_io *r = calloc(1, sizeof(*r)), *w = calloc(1, sizeof(*w));

	conn_init(c, l, &ops, o);
	o->self = c;
	c->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	c->rio = r;
	c->wio = w;
	c->want_read = true;
}

/* Bytes as a read puts them in the input buffer (conn.c's do_read, minus the socket). */
static size_t feed(struct conn *c, const uint8_t *p, size_t n)
{
	if (!c->in) {
		c->in = evloop_get_buf(c->loop);
		c->in_cap = c->loop->buf_size;
		c->in_pos = c->in_end = 0;
	} else if (c->in_end == c->in_cap) {
		if (c->in_pos == 0)
			return 0;
		memmove(c->in, c->in + c->in_pos, c->in_end - c->in_pos);
		c->in_end -= c->in_pos;
		c->in_pos = 0;
	}
	if (n > c->in_cap - c->in_end)
		n = c->in_cap - c->in_end;
	memcpy(c->in + c->in_end, p, n);
	c->in_end += (uint32_t)n;
	conn_process_input(c);
	return n;
}

/* The output written: as conn_flush after a socket took it all. */
static void drain(struct conn *c)
{
	if (!conn_is_open(c) || c->failed)
		return;
	if (c->out)
		c->out_pos = c->out_end;
	list_del(&c->dirty_node);
	conn_flush(c);
}

/* The end of a loop iteration (evloop_run_deferred), with the flushing left to drain(). */
static void run_deferred(struct evloop *l)
{
	struct list_node *n;

	for (;;) {
		if ((n = list_first(&l->resume_list))) {
			list_del(n);
			conn_process_input(list_entry(n, struct conn, resume_node));
		} else if ((n = list_first(&l->failed_list))) {
			list_del(n);
			conn_report_failure(list_entry(n, struct conn, failed_node));
		} else {
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evloop l;
	struct conn a, b;
	struct owner oa = { 0 }, ob = { 0 };
	uint32_t seed, mark, bound;
	size_t pos = 4;
	int idle = 0;

	if (size < 4)
		return 0;
	seed = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	memset(&l, 0, sizeof(l));
	list_init(&l.resume_list);
	list_init(&l.failed_list);
	list_init(&l.dirty_list);
	list_init(&l.park_list);
	l.buf_size = data[0] & 1 ? 4096 : 8192;
	oa.script = seed | 1;
	ob.script = ~seed | 1;
	open_conn(&a, &l, &oa);
	open_conn(&b, &l, &ob);
	a.startup = data[1] & 1;
	a.reader_paces = data[1] & 2;
	/* larger ones only wait for bytes a fuzz input never has */
	a.max_packet = 1u << (12 + (data[2] & 3));
	conn_link(&a, &b);
	/*
	 * The mark is checked before each message: beyond it, one message's worth at most, the
	 * input buffer forwarded (grown up to max_packet for a message held whole) or an answer.
	 */
	mark = 4 * l.buf_size;
	bound = mark + (a.max_packet > l.buf_size ? a.max_packet : l.buf_size) + sizeof(oa.answer);
	while (!oa.closed && idle < 16) {
		uint32_t pick = next(&oa);
		size_t left = size - pos + conn_buffered_input(&a);

		if (pos < size && !a.stopped && !a.throttled && !a.failed)
			pos += feed(&a, data + pos, 1 + pick % (size - pos));
		if (!oa.closed && a.stopped && pick & 0x100)
			conn_resume(&a);
		run_deferred(&l);
		if (oa.closed)
			break;
		/* Only a connection whose reader paces it waits for its own queue. */
		check(&a, a.reader_paces ? bound : UINT32_MAX);
		check(&b, bound);
		/* A reader that rarely reads: only throttling keeps the queues short. */
		if ((pick & 0x3f00) == 0 || a.throttled)
			drain(&b);
		if ((pick & 0xfc000) == 0 || a.throttled)
			drain(&a);
		run_deferred(&l);
		if (oa.closed)
			break;
		/* Rounds that used no input: a stop nobody resumed, or a throttle nobody drains. */
		idle = size - pos + conn_buffered_input(&a) == left ? idle + 1 : 0;
		if (pos == size && !a.stopped)
			break;
	}
	if (!oa.closed)
		conn_close(&a);
	if (!ob.closed)
		conn_close(&b);
	if (l.bufs_in_use)
		abort();
	return 0;
}
