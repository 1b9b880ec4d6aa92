/*
 * prepared: named prepared statements in transaction pooling, the client's side: what each of a
 * client's messages means for its statements, and how it is rewritten for the server (see
 * client/prepared.h). The server's answers are server/prepared.c's.
 */
#include "client/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/clients.h"
#include "client/statements.h"
#include "core/log.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/fe.h"
#include "route/dealloc.h"
#include "server/server.h"

bool prepared_active(const struct client *c)
{
	return c->pool && clients_cfg(c->cs)->max_prepared_statements > 0 &&
	       pool_shares_servers(c->pool);
}

/*
 * pgmux answers a client's message with mb (NULL: the bare answer of synth_of), in order: now
 * if nothing comes before it.
 */
static void owe(struct client *c, char kind, const struct msgbuf *mb)
{
	/* The client has an answer: its request can no longer start over unnoticed. */
	if (prepared_owe(c->server, kind, mb))
		conn_tap_spoil(&c->conn);
}

/*
 * A client's message fails in pgmux with err, as it would on PostgreSQL. The server runs a
 * message that fails too, so that it skips to the Sync and aborts a transaction block just as
 * PostgreSQL would; its error is replaced by err. The client's messages up to its Sync are
 * dropped (the server would skip them).
 */
static void fail_here(struct client *c, const struct msgbuf *err)
{
	prepared_fail_on_server(c->server, err);
	client_skip_to_sync(c);
}

/*
 * A malformed extended-protocol message: PostgreSQL answers 08P01 and skips to the Sync, and so
 * does pgmux (the message never reaches the server). After an error the server ignores
 * messages up to the Sync unread: so does pgmux.
 */
static enum conn_action malformed(struct client *c, const char *what)
{
	struct msgbuf err;

	if (c->server->respq.skipping)
		return CONN_CONSUME;
	mb_init(&err);
	build_error(&err, "ERROR", "08P01", "invalid %s message format", what);
	fail_here(c, &err);
	mb_free(&err);
	client_log(LOG_LVL_INFO, c, "malformed %s message", what);
	return CONN_CONSUME;
}

/* ---- SQL DEALLOCATE and DISCARD ALL ---- */

/* Longer queries are not held whole to be recognised: they go to the server. */
#define DEALLOC_PEEK_MAX 256

/*
 * Does pgmux answer this DEALLOCATE for the client? The server knows only pgmux's names; a
 * pinned client's SQL-level PREPAREd statements live on its server, though, so for such a
 * client only the names pgmux manages are pgmux's.
 */
static bool dealloc_is_ours(struct client *c, const struct dealloc_stmt *st)
{
	if (st->kind == DEALLOC_NAME)
		return !c->pin_reason || client_pstmts_find(&c->pstmts, st->name);
	return st->kind == DEALLOC_ALL && !c->pin_reason;
}

/* Drop the client's name(s); false when there is no such statement. */
static bool dealloc_apply(struct client *c, const struct dealloc_stmt *st)
{
	if (st->kind == DEALLOC_ALL) {
		client_on_statements_discarded(c);
		return true;
	}
	if (!client_pstmts_find(&c->pstmts, st->name))
		return false;
	client_on_statement_closed(c, st->name);
	return true;
}

/* PostgreSQL's answer to it: CommandComplete, or its error for an unknown name. */
static bool build_dealloc_answer(struct msgbuf *mb, const struct dealloc_stmt *st, bool ok)
{
	if (ok)
		build_command_complete(mb,
				       st->kind == DEALLOC_ALL ? "DEALLOCATE ALL" : "DEALLOCATE");
	else
		build_error(mb, "ERROR", "26000", "prepared statement \"%s\" does not exist",
			    st->name);
	return ok;
}

static bool parse_dealloc(const char *sql, size_t len, struct dealloc_stmt *st)
{
	return len <= DEALLOC_PEEK_MAX && dealloc_parse(sql, len, st) != DEALLOC_NONE;
}

enum conn_action prepared_query(struct client *c, const struct pkt_header *hdr,
				const uint8_t *whole)
{
	size_t len = hdr->len - PKT_HDR_LEN;
	struct dealloc_stmt st;
	struct fe_query q;
	struct msgbuf mb;

	/* A simple Query destroys the unnamed statement (and its portal). */
	client_on_simple_query(c);
	if (len > DEALLOC_PEEK_MAX)
		return CONN_FORWARD;
	if (!whole)
		return CONN_NEED_WHOLE;
	/* A malformed Query goes to the server, which answers it. */
	if (!fe_parse_query(whole + PKT_HDR_LEN, len, &q) ||
	    !parse_dealloc(q.sql, q.sql_len, &st) || !dealloc_is_ours(c, &st))
		return CONN_FORWARD;
	/* In a failed transaction the server refuses it (25P02) as PostgreSQL would. */
	if (c->unsynced || c->tx_status == 'E')
		return CONN_FORWARD;
	if (c->pending_ready) {
		/* The answer needs the transaction status after what is in flight. */
		client_wait_for_drain(c);
		return CONN_STOP;
	}
	/* Failing, it aborts the transaction block: the server must fail too (see below). */
	if (st.kind == DEALLOC_NAME && c->tx_status != 'I' &&
	    !client_pstmts_find(&c->pstmts, st.name))
		return CONN_FORWARD;
	mb_init(&mb);
	build_dealloc_answer(&mb, &st, dealloc_apply(c, &st));
	build_ready(&mb, c->tx_status);
	client_send(c, &mb);
	mb_free(&mb);
	return CONN_CONSUME;
}

/*
 * A Query going to the server (prepared_query did not answer it). DISCARD ALL and DEALLOCATE ALL
 * are watched; a DEALLOCATE of a name the client does not have, in a transaction block, is a
 * failing statement of pgmux's whose error is replaced by PostgreSQL's (never the client's
 * text: the name could be one of pgmux's own on the server).
 */
static enum conn_action query_to_server(struct client *c, const uint8_t *body, size_t len)
{
	static const char failing[] = "DEALLOCATE pgmux_no_such_statement";
	struct server *s = c->server;
	struct dealloc_stmt st;
	struct fe_query q;
	struct msgbuf err;

	if (!fe_parse_query(body, len, &q) || !parse_dealloc(q.sql, q.sql_len, &st))
		return CONN_FORWARD;
	if (st.kind != DEALLOC_NAME) {
		s->respq.drop_watch = true;
		return CONN_FORWARD;
	}
	if (!dealloc_is_ours(c, &st) || c->tx_status == 'E' ||
	    client_pstmts_find(&c->pstmts, st.name))
		return CONN_FORWARD;
	prepared_write(&s->conn, 'Q', failing, sizeof(failing), NULL, 0);
	mb_init(&err);
	build_dealloc_answer(&err, &st, false);
	respq_push_owed(&s->respq, 'Q', 'x', &err);
	mb_free(&err);
	return CONN_CONSUME;
}

/*
 * An unnamed Parse. DEALLOCATE of the client's statements becomes pgmux's own unnamed
 * statement, answered here through Bind, Describe and Execute (drivers send SQL without
 * parameters this way); DISCARD ALL and a pinned client's DEALLOCATE ALL are watched.
 */
static enum conn_action unnamed_parse(struct client *c, const struct fe_parse *p)
{
	struct server *s = c->server;
	struct dealloc_stmt st;

	/* Skipped after an error, or refused in a failed transaction (25P02): the server says so. */
	if (!s->respq.skipping && c->tx_status != 'E' &&
	    parse_dealloc(p->query, p->query_len, &st)) {
		if (dealloc_is_ours(c, &st)) {
			client_on_unnamed_parsed(c, &st);
			owe(c, 'P', NULL);
			return CONN_CONSUME;
		}
		if (st.kind != DEALLOC_NAME)
			s->respq.drop_watch = true;
	}
	client_on_unnamed_parsed(c, NULL);
	respq_push(&s->respq, 'P', '=');
	return CONN_FORWARD;
}

static enum conn_action bind_dealloc(struct client *c, const char *portal)
{
	struct msgbuf err;

	if (!*portal) {
		client_on_portal_bound(c, NULL, true);
		owe(c, 'B', NULL);
		return CONN_CONSUME;
	}
	/* Drivers bind it to the unnamed portal; pgmux follows no other. */
	mb_init(&err);
	build_error(&err, "ERROR", "0A000",
		    "pgmux answers DEALLOCATE only through the unnamed portal");
	fail_here(c, &err);
	mb_free(&err);
	return CONN_CONSUME;
}

/* Describe of pgmux's DEALLOCATE: no parameters (statement), no result columns. */
static enum conn_action describe_dealloc(struct client *c, char what)
{
	struct msgbuf mb;
	size_t lenpos;

	mb_init(&mb);
	if (what == 'S') {
		lenpos = mb_begin(&mb, 't');
		mb_put_u16(&mb, 0);
		mb_end(&mb, lenpos);
	}
	mb_end(&mb, mb_begin(&mb, 'n'));
	owe(c, what == 'S' ? 'D' : 'd', &mb);
	mb_free(&mb);
	return CONN_CONSUME;
}

/* Execute of pgmux's DEALLOCATE: now it takes effect, as on PostgreSQL. */
static enum conn_action execute_dealloc(struct client *c)
{
	struct msgbuf mb;

	/* The server skips to the Sync after an error: so would PostgreSQL. */
	if (c->server->respq.skipping)
		return CONN_CONSUME;
	mb_init(&mb);
	if (build_dealloc_answer(&mb, &c->unnamed_dealloc, dealloc_apply(c, &c->unnamed_dealloc)))
		owe(c, 'E', &mb);
	else
		fail_here(c, &mb);
	mb_free(&mb);
	return CONN_CONSUME;
}

static enum pstmt_limit check_limits(struct client *c, const struct fe_parse *p)
{
	const struct config *cfg = clients_cfg(c->cs);
	struct pstmt_limits lim = {
		.client_count = (size_t)cfg->max_client_prepared_statements,
		.client_bytes = (size_t)cfg->max_client_prepared_bytes,
		.total_count = (size_t)cfg->max_total_prepared_statements,
	};

	return client_pstmts_check(&c->cs->pools->pstmts, &c->pstmts, p->name, p->def, p->def_len,
				   &lim);
}

/* A Parse beyond a limit fails as an error of its own; the client's other names stay. */
static enum conn_action over_limit(struct client *c, enum pstmt_limit over)
{
	const struct config *cfg = clients_cfg(c->cs);
	struct msgbuf err;

	mb_init(&err);
	switch (over) {
	case PSTMT_CLIENT_COUNT:
		build_error(&err, "ERROR", "53400",
			    "too many prepared statements: this client holds "
			    "max_client_prepared_statements (%d)",
			    cfg->max_client_prepared_statements);
		break;
	case PSTMT_CLIENT_BYTES:
		build_error(&err, "ERROR", "53400",
			    "prepared statements too large: this client's would exceed "
			    "max_client_prepared_bytes (%d)",
			    cfg->max_client_prepared_bytes);
		break;
	default:
		build_error(&err, "ERROR", "53400",
			    "too many prepared statements: pgmux holds "
			    "max_total_prepared_statements (%d)",
			    cfg->max_total_prepared_statements);
		break;
	}
	fail_here(c, &err);
	mb_free(&err);
	client_log(LOG_LVL_INFO, c, "prepared statement refused: over its limit");
	return CONN_CONSUME;
}

/*
 * Does the client hold name for a statement known to parse? One whose Parse is still on its way
 * may yet fail and free the name (a pipeline may reuse it after the error), so it does not count:
 * a later Parse replaces it, as before its answer is known.
 */
static bool name_in_use(struct client *c, const char *name)
{
	const struct cstmt *e = client_pstmts_find(&c->pstmts, name);

	return e && e->ps->parses;
}

/* A name the client already holds: PostgreSQL refuses it rather than replacing the statement. */
static enum conn_action already_exists(struct client *c, const char *name)
{
	struct msgbuf err;

	mb_init(&err);
	build_error(&err, "ERROR", "42P05", "prepared statement \"%s\" already exists", name);
	fail_here(c, &err);
	mb_free(&err);
	return CONN_CONSUME;
}

static enum conn_action client_parse(struct client *c, const uint8_t *body, size_t len)
{
	struct server *s = c->server;
	enum pstmt_limit over;
	struct fe_parse p;
	struct pstmt *ps;

	if (!fe_parse_parse(body, len, &p))
		return malformed(c, "Parse");
	if (!*p.name)
		return unnamed_parse(c, &p);
	/* An error made the server skip to the next Sync: PostgreSQL would make no statement. */
	if (s->respq.skipping)
		return CONN_CONSUME;
	if (name_in_use(c, p.name))
		return already_exists(c, p.name);
	if ((over = check_limits(c, &p)) != PSTMT_WITHIN)
		return over_limit(c, over);
	ps = pstmt_registry_get(&c->cs->pools->pstmts, p.def, p.def_len);
	if (!ps || !client_on_statement_parsed(c, p.name, ps)) {
		client_close(c, "53200", "out of memory for prepared statements");
		return CONN_CLOSED;
	}
	/*
	 * Parsed now, so parsed here now: the client must see today's table definitions, and gets
	 * the server's answer (an error if the server rejects it).
	 */
	prepared_parse_on_server(s, ps, '=', client_pstmts_find(&c->pstmts, p.name)->parsed_seq);
	return CONN_CONSUME;
}

/*
 * PostgreSQL refuses to run a prepared statement whose result columns changed since it was
 * prepared (DDL): "cached plan must not change result type". A copy pgmux prepares on another
 * server after such a change would answer with the new columns to a client that expects the old
 * ones. So before a client's Bind runs on a copy it has not seen described, the copy is described
 * (the client's Bind waits for the answer), and a copy with other columns fails the Bind as
 * PostgreSQL would. CONN_FORWARD: go on with the Bind.
 */
static enum conn_action check_shape(struct client *c, const struct cstmt *e, ssize_t i)
{
	struct server *s = c->server;
	bool fresh = i >= 0 && s->pstmts.prepared_seq[i] > e->parsed_seq;

	if (!e->shape || s->respq.skipping)
		return CONN_FORWARD;
	if (fresh && s->pstmts.shape[i] == e->shape)
		return CONN_FORWARD;
	if (fresh && s->pstmts.shape[i]) {
		struct msgbuf err;

		mb_init(&err);
		build_error(&err, "ERROR", "0A000", "cached plan must not change result type");
		fail_here(c, &err);
		mb_free(&err);
		return CONN_CONSUME;
	}
	if (!fresh)
		prepared_parse_on_server(s, e->ps, '-', 0);
	prepared_write(&s->conn, 'D', "S", 1, e->ps->name, strlen(e->ps->name) + 1);
	respq_push_ps(&s->respq, 'D', '-', e->ps, 0);
	prepared_write(&s->conn, 'H', NULL, 0, NULL, 0);
	s->shape_wait = true;
	return CONN_STOP;
}

/*
 * Bind or Describe of a statement (a message the fe parsers accepted): rewrite the name,
 * preparing it first if needed. In body[0, len) the statement name lies at name_off and what
 * follows its NUL at rest_off; portal is the Bind's portal, NULL for a Describe.
 */
static enum conn_action client_use(struct client *c, char kind, const uint8_t *body, size_t len,
				   const char *portal, const char *name, size_t name_off,
				   size_t rest_off)
{
	struct server *s = c->server;
	const struct cstmt *e;
	const char *new_name;
	ssize_t i;

	/* the unnamed portal is being replaced */
	if (kind == 'B' && !*portal)
		client_on_portal_bound(c, NULL, false);
	if (kind == 'B' && !*name && c->unnamed_dealloc.kind != DEALLOC_NONE)
		return bind_dealloc(c, portal);
	e = *name ? client_pstmts_find(&c->pstmts, name) : NULL;
	if (!e) {
		/* Unnamed, or unknown: the server answers as PostgreSQL would. */
		respq_push(&s->respq, kind, '=');
		return CONN_FORWARD;
	}
	/* Where the server has the statement: looked up once per message (sets hold up to
	 * max_prepared_statements). */
	i = server_pstmts_find(&s->pstmts, e->ps);
	if (kind == 'B') {
		enum conn_action act = check_shape(c, e, i);

		if (act != CONN_FORWARD)
			return act;
		/* The unnamed portal's columns are this statement's (for Describe of the portal). */
		if (!*portal)
			client_on_portal_bound(c, e->ps, false);
	}
	prepared_ensure_on_server(s, e, i);
	if (kind == 'D')
		respq_push_ps(&s->respq, 'D', '=', e->ps, 0);
	if (kind == 'B' && e->ps->def_len <= SETTINGS_PEEK_MAX)
		client_watch_statement(c, (const char *)e->ps->def,
				       strnlen((const char *)e->ps->def, e->ps->def_len));
	new_name = e->ps->name;
	{
		/* prefix (portal name or kind byte), new name, rest of the message */
		struct msgbuf mb;
		size_t lenpos;

		mb_init(&mb);
		lenpos = mb_begin(&mb, kind);
		mb_put_bytes(&mb, body, name_off);
		mb_put_cstring(&mb, new_name);
		mb_put_bytes(&mb, body + rest_off, len - rest_off);
		mb_end(&mb, lenpos);
		if (!mb.failed)
			conn_write(&s->conn, mb.data, mb.len);
		mb_free(&mb);
	}
	if (kind != 'D')
		respq_push(&s->respq, kind, '=');
	return CONN_CONSUME;
}

static enum conn_action client_close_stmt(struct client *c, const uint8_t *body, size_t len)
{
	struct server *s = c->server;
	struct fe_describe msg;
	const char *name;

	if (!fe_parse_close(body, len, &msg))
		return malformed(c, "Close");
	name = msg.name;
	if (msg.kind != FE_STATEMENT || !*name) {
		respq_push(&s->respq, 'C', '=');
		return CONN_FORWARD;
	}
	/* The server keeps the shared statement; only this client's name goes. */
	client_on_statement_closed(c, name);
	owe(c, 'C', NULL);
	return CONN_CONSUME;
}

enum conn_action prepared_parse_unlinked(struct client *c, const struct pkt_header *hdr,
					 const uint8_t *whole)
{
	struct fe_parse p;
	struct pstmt *ps;

	if (!whole)
		return CONN_NEED_WHOLE;
	/* A malformed one is answered once a server is linked (prepared_client_message). */
	if (!fe_parse_parse(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &p) || !*p.name)
		return CONN_FORWARD;
	/*
	 * Only a definition some server accepted is answered without one: any other could fail
	 * there, and the client must hear it now (a client that keeps its statements' names would
	 * otherwise believe it made one). Drivers that prepare on every connection prepare the
	 * same texts, so after the first, a client that prepares while holding nothing still
	 * never waits for a server its own other connections hold.
	 */
	ps = pstmt_registry_find(&c->cs->pools->pstmts, p.def, p.def_len);
	/* A name in use or over a limit: the error comes with a server, in order (client_parse). */
	if (!ps || !ps->parses || name_in_use(c, p.name) || check_limits(c, &p) != PSTMT_WITHIN)
		return CONN_FORWARD;
	if (!client_on_statement_parsed(c, p.name, ps)) {
		client_close(c, "53200", "out of memory for prepared statements");
		return CONN_CLOSED;
	}
	prepared_write(&c->conn, '1', NULL, 0, NULL, 0);
	return CONN_CONSUME;
}

enum conn_action prepared_client_message(struct client *c, const struct pkt_header *hdr,
					 const uint8_t *whole)
{
	struct server *s = c->server;
	const uint8_t *body = whole ? whole + PKT_HDR_LEN : NULL;
	size_t len = hdr->len - PKT_HDR_LEN;
	struct fe_bind bind;
	struct fe_describe desc;
	struct fe_execute exec;

	/*
	 * Every message may add answers to wait for (an injected Parse or Close too): a client that
	 * pipelines to a server that stopped reading waits here, so the queue stays bounded.
	 */
	if (s->respq.len >= RESPQ_MAX) {
		s->respq.full_wait = true;
		return CONN_STOP;
	}
	switch (hdr->type) {
	case 'P':
		return whole ? client_parse(c, body, len) : CONN_NEED_WHOLE;
	case 'B':
		if (!whole)
			return CONN_NEED_WHOLE;
		if (!fe_parse_bind(body, len, &bind))
			return malformed(c, "Bind");
		return client_use(c, 'B', body, len, bind.portal, bind.statement,
				  bind.statement_off, bind.rest_off);
	case 'D':
		if (!whole)
			return CONN_NEED_WHOLE;
		if (!fe_parse_describe(body, len, &desc))
			return malformed(c, "Describe");
		if (!*desc.name &&
		    (desc.kind == FE_STATEMENT ? c->unnamed_dealloc.kind != DEALLOC_NONE
					       : c->portal_dealloc))
			return describe_dealloc(c, (char)desc.kind);
		if (desc.kind != FE_STATEMENT) {
			/* The unnamed portal's columns are its statement's: remember them too. */
			respq_push_ps(&s->respq, 'd', '=', !*desc.name ? c->portal_ps : NULL, 0);
			return CONN_FORWARD;
		}
		return client_use(c, 'D', body, len, NULL, desc.name, 1, len);
	case 'C':
		return whole ? client_close_stmt(c, body, len) : CONN_NEED_WHOLE;
	case 'Q':
		/* Only short queries can be DEALLOCATE or DISCARD ALL: never hold a large one whole. */
		if (!whole && len <= DEALLOC_PEEK_MAX)
			return CONN_NEED_WHOLE;
		if (whole) {
			enum conn_action act = query_to_server(c, body, len);

			if (act != CONN_FORWARD)
				return act;
		}
		respq_push(&s->respq, 'Q', '=');
		return CONN_FORWARD;
	case 'E':
		if (c->portal_dealloc) {
			if (!whole)
				return CONN_NEED_WHOLE;
			if (!fe_parse_execute(body, len, &exec))
				return malformed(c, "Execute");
			if (!*exec.portal)
				return execute_dealloc(c);
		}
		respq_push(&s->respq, 'E', '=');
		return CONN_FORWARD;
	case 'S':
		/* The implicit transaction ends, and the unnamed portal with it. */
		client_on_sync_sent(c);
		respq_push(&s->respq, 'S', '=');
		return CONN_FORWARD;
	case 'F':
		respq_push(&s->respq, hdr->type, '=');
		return CONN_FORWARD;
	default:
		return CONN_FORWARD;
	}
}

void prepared_inject_sync(struct client *c)
{
	struct server *s = c->server;

	prepared_write(&s->conn, 'S', NULL, 0, NULL, 0);
	if (prepared_active(c))
		respq_push(&s->respq, 'S', '=');
}

const char *prepared_query_of(struct client *c, const char *name, size_t *len)
{
	const struct cstmt *e = client_pstmts_find(&c->pstmts, name);

	if (!e)
		return NULL;
	/* The definition starts with the query text and its NUL. */
	*len = strnlen((const char *)e->ps->def, e->ps->def_len);
	return (const char *)e->ps->def;
}
