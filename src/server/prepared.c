/*
 * prepared: named prepared statements in transaction pooling, the server's side: the queue of
 * answers each forwarded message gets, and what pgmux sends and swallows on the server (see
 * server/prepared.h). The client's side, which decides what a client's message means, is
 * client/prepared.c.
 */
#include "server/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "core/log.h"
#include "proto/build.h"
#include "server/events.h"
#include "server/server.h"

/* ---- the answer queue ---- */

bool respq_push_ps(struct respq *q, char kind, char action, struct pstmt *ps, uint64_t seq)
{
	/* The server skips everything but Sync after an error: no answer will come. */
	if (q->skipping && kind != 'S')
		return true;
	if (kind == 'S')
		q->skipping = false;
	if (q->len == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 16;
		struct respq_entry *ring = malloc(cap * sizeof(*ring));

		if (!ring)
			return false;
		for (uint32_t i = 0; i < q->len; i++)
			ring[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = ring;
		q->cap = cap;
		q->head = 0;
	}
	q->ring[(q->head + q->len) % q->cap] = (struct respq_entry){
		kind, action, ps, seq, NULL, 0
	};
	q->len++;
	return true;
}

bool respq_push(struct respq *q, char kind, char action)
{
	return respq_push_ps(q, kind, action, NULL, 0);
}

bool respq_push_owed(struct respq *q, char kind, char action, const struct msgbuf *mb)
{
	struct respq_entry *e;
	uint8_t *copy;

	if ((q->skipping && kind != 'S') || mb->failed)
		return !mb->failed;
	copy = malloc(mb->len);
	if (!copy || !respq_push(q, kind, action)) {
		free(copy);
		return false;
	}
	memcpy(copy, mb->data, mb->len);
	e = &q->ring[(q->head + q->len - 1) % q->cap];
	e->owed = copy;
	e->owed_len = mb->len;
	return true;
}

static struct respq_entry *respq_head(struct respq *q)
{
	return q->len ? &q->ring[q->head] : NULL;
}

static struct respq_entry *respq_at(struct respq *q, uint32_t i)
{
	return i < q->len ? &q->ring[(q->head + i) % q->cap] : NULL;
}

static void respq_pop(struct respq *q)
{
	free(q->ring[q->head].owed);
	q->head = (q->head + 1) % q->cap;
	q->len--;
}

void respq_reset(struct respq *q)
{
	while (q->len)
		respq_pop(q);
	q->head = 0;
	q->skipping = false;
	q->drop_watch = false;
	q->full_wait = false; /* the client is no longer linked: whoever links it resumes it */
}

void respq_free(struct respq *q)
{
	respq_reset(q);
	free(q->ring);
	memset(q, 0, sizeof(*q));
}

void prepared_write(struct conn *to, char type, const void *a, size_t alen, const void *b,
		    size_t blen)
{
	struct msgbuf mb;
	size_t lenpos;

	mb_init(&mb);
	lenpos = mb_begin(&mb, type);
	mb_put_bytes(&mb, a, alen);
	mb_put_bytes(&mb, b, blen);
	mb_end(&mb, lenpos);
	if (!mb.failed)
		conn_write(to, mb.data, mb.len);
	mb_free(&mb);
}

/* The bare answer pgmux gives itself: ParseComplete, BindComplete or CloseComplete. */
static char synth_of(char kind)
{
	return kind == 'P' ? '1' : kind == 'B' ? '2' : '3';
}

/* Write the answers pgmux owes at the head of the queue. */
static void emit_synthetic(struct server *s)
{
	struct respq_entry *e;

	while ((e = respq_head(&s->respq)) && e->action == '+') {
		if (e->owed)
			conn_write(s->events->conn(s->client), e->owed, e->owed_len);
		else
			prepared_write(s->events->conn(s->client), synth_of(e->kind), NULL, 0, NULL,
				       0);
		respq_pop(&s->respq);
	}
}

bool prepared_owe(struct server *s, char kind, const struct msgbuf *mb)
{
	struct respq_entry *head;

	if (mb)
		respq_push_owed(&s->respq, kind, '+', mb);
	else
		respq_push(&s->respq, kind, '+');
	head = respq_head(&s->respq);
	if (!head || head->action != '+')
		return false;
	emit_synthetic(s);
	return true;
}

void prepared_fail_on_server(struct server *s, const struct msgbuf *err)
{
	prepared_write(&s->conn, 'E', "pgmux_no_such_portal", sizeof("pgmux_no_such_portal"),
		       "\0\0\0\0", 4);
	respq_push_owed(&s->respq, 'E', 'x', err);
}

/* Room for one more statement on the server: close the least recently used ones. */
static void make_room(struct server *s)
{
	struct pstmt_registry *r = s->env->pstmts;
	size_t max = (size_t)server_cfg(s)->max_prepared_statements;

	while (s->pstmts.n >= max && s->pstmts.n > 0) {
		size_t lru = server_pstmts_lru(&s->pstmts);
		const char *victim = s->pstmts.items[lru]->name;

		prepared_write(&s->conn, 'C', "S", 1, victim, strlen(victim) + 1);
		respq_push(&s->respq, 'C', '-');
		server_pstmts_remove_at(r, &s->pstmts, lru);
	}
}

/*
 * Send a Parse of ps under pgmux's name; action says whether its answer is the client's
 * ('=': client_seq is the client's name it makes) or pgmux's own ('-').
 */
void prepared_parse_on_server(struct server *s, struct pstmt *ps, char action, uint64_t client_seq)
{
	ssize_t i = server_pstmts_find(&s->pstmts, ps);

	/* An error made the server skip to the next Sync: it would ignore the Parse. */
	if (s->respq.skipping)
		return;
	if (i >= 0) {
		/* An older copy: close it (answer swallowed) and parse it afresh. */
		prepared_write(&s->conn, 'C', "S", 1, ps->name, strlen(ps->name) + 1);
		respq_push(&s->respq, 'C', '-');
		server_pstmts_reparsed(&s->pstmts, (size_t)i, ++s->env->pstmts->seq);
	} else {
		make_room(s);
		server_pstmts_add(&s->pstmts, ps, ++s->env->pstmts->seq);
	}
	prepared_write(&s->conn, 'P', ps->name, strlen(ps->name) + 1, ps->def, ps->def_len);
	respq_push_ps(&s->respq, 'P', action, ps, client_seq);
}

/*
 * Make sure the server has a copy of e's statement at least as fresh as the client's Parse,
 * injecting a Parse (its answer swallowed) if not. i: where the server has it (-1: nowhere).
 */
void prepared_ensure_on_server(struct server *s, const struct cstmt *e, ssize_t i)
{
	if (i >= 0 && s->pstmts.prepared_seq[i] > e->parsed_seq)
		server_pstmts_use(&s->pstmts, (size_t)i);
	else
		prepared_parse_on_server(s, e->ps, '-', 0);
}

/* ---- result shapes ---- */

static void shape_known(struct server *s);

static uint32_t fnv_add(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/*
 * A fingerprint of what a RowDescription says about the result PostgreSQL compares when it
 * re-plans a prepared statement: the column count, and each column's name, type OID, type
 * length and type modifier. Not the table OID and attribute number, which a table dropped and
 * created again with the same columns changes without changing the result; nor the format
 * code, which a portal chooses. NoData is 1; never 0, which means "not known".
 */
static uint32_t row_shape(char type, const uint8_t *body, size_t len)
{
	/* per column: name, table oid (4), attnum (2), type oid (4), typlen (2), typmod (4), format (2) */
	enum { SKIP_BEFORE = 6, KEEP = 10, SKIP_AFTER = 2 };
	uint32_t h = 2166136261u;
	size_t pos = 2;
	int ncols;

	if (type == 'n')
		return 1;
	if (len < 2)
		return 2;
	ncols = body[0] << 8 | body[1];
	h = fnv_add(h, body, 2);
	for (int i = 0; i < ncols && pos < len; i++) {
		size_t name = strnlen((const char *)body + pos, len - pos) + 1;

		/* A malformed description: a fingerprint of it all, which matches only itself. */
		if (pos + name + SKIP_BEFORE + KEEP + SKIP_AFTER > len)
			return fnv_add(h, body + pos, len - pos) | 2;
		h = fnv_add(h, body + pos, name);
		h = fnv_add(h, body + pos + name + SKIP_BEFORE, KEEP);
		pos += name + SKIP_BEFORE + KEEP + SKIP_AFTER;
	}
	return h > 1 ? h : 2;
}

/* A Describe's answer: remember the columns on the server copy, and for the client if it asked. */
static void note_shape(struct server *s, const struct respq_entry *e, char type,
		       const uint8_t *body, size_t len)
{
	uint32_t shape = row_shape(type, body, len);
	ssize_t i = server_pstmts_find(&s->pstmts, e->ps);
	struct client *c = s->client;

	if (i >= 0)
		s->pstmts.shape[i] = shape;
	if (e->action == '=' && c)
		s->events->statement_described(c, e->ps, shape);
}

/* ---- the server's answers ---- */

static bool completes(char kind, char type)
{
	switch (kind) {
	case 'P':
		return type == '1';
	case 'B':
		return type == '2';
	case 'C':
		return type == '3';
	case 'D':
	case 'd':
		return type == 'T' || type == 'n';
	case 'E':
		return type == 'C' || type == 'I' || type == 's';
	default:
		return type == 'Z'; /* S, Q, F */
	}
}

/* An ErrorResponse ends the head entry if it is an extended-protocol message. */
static bool error_ends(char kind)
{
	return kind != 'S' && kind != 'Q' && kind != 'F';
}

/* The server skips to the next Sync: drop what it will not answer (and will not have done). */
static void skip_to_sync(struct server *s)
{
	struct respq *q = &s->respq;
	struct respq_entry *e;

	while ((e = respq_head(q)) && e->kind != 'S') {
		if (e->ps && e->kind == 'P')
			server_pstmts_forget(s->env->pstmts, &s->pstmts, e->ps);
		if (e->ps && e->kind == 'P' && e->action == '=' && s->client)
			s->events->parse_failed(s->client, e->ps, e->seq);
		respq_pop(q);
	}
	q->skipping = !e;
	shape_known(s);
}

/* The Describe a client's Bind waited for was answered (or never will be): let it go on. */
static void shape_known(struct server *s)
{
	if (!s->shape_wait)
		return;
	s->shape_wait = false;
	if (s->client)
		conn_resume(s->events->conn(s->client));
}

/* pgmux's failing message answered: the client gets the error PostgreSQL would give instead. */
static enum conn_action owed_error(struct server *s)
{
	struct respq_entry *head = respq_head(&s->respq);

	if (s->client && head->owed) {
		conn_write(s->events->conn(s->client), head->owed, head->owed_len);
		s->events->error_relayed(s->client);
	}
	s->seg_error = true;
	if (error_ends(head->kind)) {
		skip_to_sync(s);
		return CONN_CONSUME;
	}
	/* A Query: its ReadyForQuery follows and is the client's. */
	free(head->owed);
	head->owed = NULL;
	head->action = '=';
	return CONN_CONSUME;
}

/* A CommandComplete while watching: DISCARD ALL and DEALLOCATE ALL dropped every statement. */
static void note_dropped(struct server *s, const uint8_t *tag, size_t len)
{
	if ((len == sizeof("DISCARD ALL") && memcmp(tag, "DISCARD ALL", len) == 0) ||
	    (len == sizeof("DEALLOCATE ALL") && memcmp(tag, "DEALLOCATE ALL", len) == 0)) {
		server_pstmts_clear(s->env->pstmts, &s->pstmts);
		if (s->client)
			s->events->statements_discarded(s->client);
	}
}

/* A server accepted ps: later Parses of it outside a transaction may be answered early. */
static void note_parses(struct server *s, struct pstmt *ps)
{
	/* Held by this server's set, so alive (an entry's ps may be gone otherwise). */
	if (server_pstmts_find(&s->pstmts, ps) >= 0)
		ps->parses = true;
}

/* Answers came in: a client waiting for room in the queue goes on once half of it is free. */
static void resume_if_room(struct server *s)
{
	if (s->respq.full_wait && s->respq.len <= RESPQ_MAX / 2) {
		s->respq.full_wait = false;
		if (s->client)
			conn_resume(s->events->conn(s->client));
	}
}

static enum conn_action server_message(struct server *s, const struct pkt_header *hdr,
				       const uint8_t *whole);

enum conn_action prepared_server_message(struct server *s, const struct pkt_header *hdr,
					 const uint8_t *whole)
{
	enum conn_action act = server_message(s, hdr, whole);

	if (act != CONN_CLOSED)
		resume_if_room(s);
	return act;
}

static enum conn_action server_message(struct server *s, const struct pkt_header *hdr,
				       const uint8_t *whole)
{
	struct respq *q = &s->respq;
	struct respq_entry *head, *next;
	char type = hdr->type;

	head = respq_head(q);
	if (!head)
		return CONN_FORWARD;
	if (type == 'C' && q->drop_watch) {
		if (!whole)
			return CONN_NEED_WHOLE;
		note_dropped(s, whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN);
	}
	if (type == 'E' && head->action == 'x')
		return owed_error(s);
	if (type == 'E' && error_ends(head->kind)) {
		/* The failed message and all up to Sync are skipped; a failed Parse left nothing. */
		skip_to_sync(s);
		return CONN_FORWARD;
	}
	if ((head->kind == 'D' || head->kind == 'd') && head->ps && (type == 'T' || type == 'n')) {
		if (!whole)
			return CONN_NEED_WHOLE;
		note_shape(s, head, type, whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN);
		if (head->action == '-') {
			respq_pop(q);
			shape_known(s);
			if (s->client)
				emit_synthetic(s);
			return CONN_CONSUME;
		}
	}
	if (!completes(head->kind, type))
		/* The ParameterDescription of pgmux's own Describe is pgmux's; notices pass. */
		return head->action == '-' && type == 't' ? CONN_CONSUME : CONN_FORWARD;
	if (type == 'Z')
		return CONN_FORWARD; /* server.c relays it; prepared_after_ready() pops */
	if (head->kind == 'P' && head->ps)
		note_parses(s, head->ps);
	if (head->action == '-') {
		respq_pop(q);
		if (s->client)
			emit_synthetic(s);
		return CONN_CONSUME;
	}
	next = respq_at(q, 1);
	if (next && next->action == '+') {
		/* Our answers must follow this message: write it ourselves, then them. */
		if (!whole)
			return CONN_NEED_WHOLE;
		conn_write(s->events->conn(s->client), whole, hdr->len);
		respq_pop(q);
		emit_synthetic(s);
		return CONN_CONSUME;
	}
	respq_pop(q);
	return CONN_FORWARD;
}

void prepared_on_ready(struct server *s)
{
	struct respq_entry *head = respq_head(&s->respq);

	if (head && completes(head->kind, 'Z'))
		respq_pop(&s->respq);
	resume_if_room(s);
}

void prepared_emit_owed(struct server *s)
{
	emit_synthetic(s);
}
