/* link: src/server/prepared.c src/client/prepared.c src/client/statements.c src/server/pstmt.c src/proto/fe.c src/proto/build.c src/proto/pkt.c src/route/dealloc.c src/route/sqlscan.c */
/*
 * libFuzzer target: named prepared statements in transaction pooling, one client linked to one
 * server: the client's side (client/prepared.c) and the server's (server/prepared.c) together.
 * The input is a script of messages, each either from the client (through prepared_query,
 * prepared_parse_unlinked and prepared_client_message, as client.c calls them)
 * or from the server (prepared_server_message, and at ReadyForQuery prepared_on_ready and
 * prepared_emit_owed, as server.c does). Small limits make evictions and refusals common. At
 * the end every name and server copy is dropped: the registry must then be empty (reference
 * counts), and ASan watches every read of the messages and of statements that went away.
 *
 * Script: byte 0 picks the limits; then records of [who][type][length, 2 bytes][body].
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/clients.h"
#include "client/prepared.h"
#include "client/statements.h"
#include "config/config.h"
#include "core/log.h"
#include "ev/conn.h"
#include "pool/pool.h"
#include "proto/pkt.h"
#include "server/events.h"
#include "server/prepared.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		sink += b[i];
}

/* ---- what prepared.c calls outside its module ---- */

void conn_write(struct conn *c, const void *data, size_t len)
{
	/* Everything written must be readable whole: the bytes go nowhere else. */
	touch(data, len);
	c->bytes_out += len;
}

void conn_resume(struct conn *c)
{
	c->stopped = false;
}

bool pool_shares_servers(const struct pool *p)
{
	return true;
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

void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	c->state = CLIENT_CLOSING;
}

void client_send(struct client *c, struct msgbuf *mb)
{
	if (!mb->failed)
		conn_write(&c->conn, mb->data, mb->len);
}

static void error_relayed(struct client *c)
{
	c->error_sent = true;
}

void client_skip_to_sync(struct client *c)
{
	c->skip_to_sync = true;
}

void client_wait_for_drain(struct client *c)
{
	c->drain_wait = true;
}

void client_watch_statement(struct client *c, const char *sql, size_t qlen)
{
	touch(sql, qlen);
}

/* What the server side tells the client: as client.c's table, for what this target links. */
static struct conn *conn_of(struct client *c)
{
	return &c->conn;
}

static const struct server_events events = {
	.conn = conn_of,
	.error_relayed = error_relayed,
	.parse_failed = client_on_parse_failed,
	.statement_described = client_on_statement_described,
	.statements_discarded = client_on_statements_discarded,
};

/* ---- the script ---- */

struct world {
	struct config cfg, *cfg_in_force;
	struct pools ps;
	struct clients cs;
	struct pool pool;
	struct client c;
	struct server s;
};

static void setup(struct world *x, uint8_t limits)
{
	memset(x, 0, sizeof(*x));
	x->cfg.max_prepared_statements = 1 + (limits & 3);
	x->cfg.max_client_prepared_statements = 1 + (limits >> 2 & 7);
	x->cfg.max_client_prepared_bytes = 64 << (limits >> 5 & 3);
	x->cfg.max_total_prepared_statements = limits & 0x80 ? 3 : 100;
	x->cfg_in_force = &x->cfg;
	pstmt_registry_init(&x->ps.pstmts);
	x->ps.servers = (struct server_env){ .pstmts = &x->ps.pstmts, .cfg = &x->cfg_in_force };
	x->cs.pools = &x->ps;
	x->cs.cfg = &x->cfg_in_force;
	x->c.cs = &x->cs;
	x->s.env = &x->ps.servers;
	x->c.pool = x->s.pool = &x->pool;
	x->c.state = CLIENT_ACTIVE;
	x->c.tx_status = 'I';
	x->c.server = &x->s;
	x->s.client = &x->c;
	x->s.events = &events;
	x->c.id = 1;
	strcpy(x->c.dbname, "fuzz");
	strcpy(x->c.user, "fuzz");
	strcpy(x->c.addr, "fuzz");
}

static void teardown(struct world *x)
{
	respq_free(&x->s.respq);
	client_pstmts_free(&x->ps.pstmts, &x->c.pstmts);
	server_pstmts_free(&x->ps.pstmts, &x->s.pstmts);
	/* Nothing holds a statement any more: a count left over is a reference leaked. */
	if (x->ps.pstmts.count || x->ps.pstmts.client_held)
		abort();
	pstmt_registry_destroy(&x->ps.pstmts);
}

/* A message seen by header, then whole when asked: as conn.c hands it over. */
typedef enum conn_action (*handler_fn)(struct world *x, const struct pkt_header *hdr,
				       const uint8_t *whole);

static enum conn_action deliver(struct world *x, handler_fn fn, const uint8_t *msg, uint32_t len)
{
	struct pkt_header hdr = { .type = (char)msg[0], .len = len };
	enum conn_action act = fn(x, &hdr, NULL);

	if (act == CONN_NEED_WHOLE) {
		/* A copy of exactly the message: a read past it is an ASan report. */
		uint8_t *whole = malloc(len);

		memcpy(whole, msg, len);
		act = fn(x, &hdr, whole);
		free(whole);
		if (act == CONN_NEED_WHOLE)
			abort();
	}
	return act;
}

/* The client side, in client.c's order (relay_linked, and prepared_parse_unlinked). */
static enum conn_action from_client(struct world *x, const struct pkt_header *hdr,
				    const uint8_t *whole)
{
	struct client *c = &x->c;
	enum conn_action act;

	if (c->skip_to_sync) {
		if (hdr->type != 'S')
			return CONN_CONSUME;
		c->skip_to_sync = false;
	}
	if (hdr->type == 'P' && c->tx_status == 'I' && !c->unsynced) {
		act = prepared_parse_unlinked(c, hdr, whole);
		if (act != CONN_FORWARD)
			return act;
	}
	if (hdr->type == 'Q') {
		act = prepared_query(c, hdr, whole);
		if (act != CONN_FORWARD)
			return act;
	}
	return prepared_client_message(c, hdr, whole);
}

static enum conn_action from_server(struct world *x, const struct pkt_header *hdr,
				    const uint8_t *whole)
{
	struct server *s = &x->s;
	enum conn_action act = prepared_server_message(s, hdr, whole);

	if (act != CONN_FORWARD || hdr->type != 'Z')
		return act;
	if (!whole)
		return CONN_NEED_WHOLE;
	if (hdr->len > PKT_HDR_LEN && strchr("ITE", whole[PKT_HDR_LEN]))
		x->c.tx_status = (char)whole[PKT_HDR_LEN];
	prepared_on_ready(s);
	prepared_emit_owed(s);
	return CONN_CONSUME;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct world x;
	size_t pos = 1;

	if (size < 1)
		return 0;
	setup(&x, data[0]);
	while (pos + 4 <= size && x.c.state != CLIENT_CLOSING) {
		uint8_t who = data[pos];
		uint32_t body = (uint32_t)data[pos + 2] << 8 | data[pos + 3];
		uint8_t *msg;

		if (body > size - pos - 4)
			body = (uint32_t)(size - pos - 4);
		/* type, length, body: a framed message as conn.c would see it */
		msg = malloc(PKT_HDR_LEN + body + 1);
		msg[0] = data[pos + 1];
		msg[1] = (uint8_t)((body + 4) >> 24);
		msg[2] = (uint8_t)((body + 4) >> 16);
		msg[3] = (uint8_t)((body + 4) >> 8);
		msg[4] = (uint8_t)(body + 4);
		memcpy(msg + PKT_HDR_LEN, data + pos + 4, body);
		msg[PKT_HDR_LEN + body] = 0;
		if (who & 1)
			(void)deliver(&x, from_server, msg, PKT_HDR_LEN + body);
		else
			(void)deliver(&x, from_client, msg, PKT_HDR_LEN + body);
		/* A waiting client is resumed as the conn layer would, once the server answered. */
		if (who & 2)
			x.s.shape_wait = false;
		if (who & 4)
			x.c.unsynced = !x.c.unsynced;
		free(msg);
		pos += 4 + body;
	}
	teardown(&x);
	return 0;
}
