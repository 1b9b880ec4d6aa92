/*
 * server/prepared: named prepared statements in transaction and statement pooling, the server's
 * side (client/prepared.h says how statements are shared; the client's side decides what each
 * client message means and calls the verbs below to act on the server).
 *
 * Ordering: pgmux sometimes answers a message itself (ParseComplete for a statement the server
 * already has, CloseComplete) or swallows a server's answer (to a Parse or Close it injected).
 * A queue of the answers each forwarded message will get (struct respq) puts those exactly where
 * the client expects them, also inside pipelines and after errors (when the server skips to Sync).
 */
#ifndef PGMUX_SERVER_PREPARED_H
#define PGMUX_SERVER_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev/conn.h"
#include "server/pstmt.h"

struct msgbuf;
struct server;

/* What the server will answer to one forwarded message, and what pgmux does with it. */
struct respq_entry {
	char kind; /* P B C D(statement) d(portal) E S Q F */
	/*
	 * '=' relay, '-' swallow (pgmux's own message), '+' pgmux answers itself (owed, or a bare
	 * ParseComplete / CloseComplete), 'x' pgmux's own failing message: its error is replaced by
	 * owed
	 */
	char action;
	/*
	 * P: the Parse sent to the server (forgotten there if it fails). D, d: the statement whose
	 * result columns the answer describes (only compared, never dereferenced: it may be gone).
	 */
	struct pstmt *ps;
	/* P with action '=': the client's name it made (cstmt.parsed_seq), forgotten if it fails */
	uint64_t seq;
	uint8_t *owed; /* whole messages pgmux writes for '+' or 'x' (owned; NULL: none) */
	size_t owed_len;
};

struct respq {
	struct respq_entry *ring;
	uint32_t cap, head, len;
	bool skipping; /* an error made the server skip messages until the next Sync */
	/* A DISCARD ALL or DEALLOCATE ALL went to the server: when it succeeds, its statements and
	 * the client's names are gone. */
	bool drop_watch;
	/* The client stopped with this many answers outstanding: it resumes once half are in. */
	bool full_wait;
};

/*
 * Answers outstanding per server beyond which the client's next message waits: a client that
 * pipelines without reading, to a server that stopped reading, holds this many entries at most.
 */
#define RESPQ_MAX 16384

/* Queue what the server will answer to a message just sent (see struct respq_entry). False:
 * out of memory. respq_push_owed keeps a copy of mb's messages. */
bool respq_push(struct respq *q, char kind, char action);
bool respq_push_ps(struct respq *q, char kind, char action, struct pstmt *ps, uint64_t seq);
bool respq_push_owed(struct respq *q, char kind, char action, const struct msgbuf *mb);

/* Write one message of type whose body is a then b to a connection. */
void prepared_write(struct conn *to, char type, const void *a, size_t alen, const void *b,
		    size_t blen);
/*
 * pgmux answers a client's message itself with mb (NULL: the bare ParseComplete, BindComplete
 * or CloseComplete its kind gets), in order: now if nothing comes before it. True when it was
 * written now.
 */
bool prepared_owe(struct server *s, char kind, const struct msgbuf *mb);
/*
 * A client's message fails in pgmux with err, as it would on PostgreSQL: the server runs a
 * message that fails too, so that it skips to the Sync and aborts a transaction block just as
 * PostgreSQL would, and its error is replaced by err.
 */
void prepared_fail_on_server(struct server *s, const struct msgbuf *err);
/*
 * Send a Parse of ps under pgmux's name (closing an older copy, or the least recently used
 * statements for room); action says whether its answer is the client's ('=': client_seq is the
 * client's name it makes) or pgmux's own ('-').
 */
void prepared_parse_on_server(struct server *s, struct pstmt *ps, char action, uint64_t client_seq);
/*
 * Make sure the server has a copy of e's statement at least as fresh as the client's Parse,
 * injecting a Parse (its answer swallowed) if not. i: where the server has it (-1: nowhere).
 */
void prepared_ensure_on_server(struct server *s, const struct cstmt *e, ssize_t i);

/*
 * A message from the linked server, before server.c handles it. Returns CONN_FORWARD to let
 * server.c go on as usual, CONN_CONSUME when pgmux swallowed it or wrote it (and its own answers
 * after it) itself, CONN_NEED_WHOLE to see it whole first.
 */
enum conn_action prepared_server_message(struct server *s, const struct pkt_header *hdr,
					 const uint8_t *whole);
/* A ReadyForQuery arrived: it answers the head of the queue. */
void prepared_on_ready(struct server *s);
/* Write the answers pgmux owes at the head of the queue (after the ReadyForQuery was relayed). */
void prepared_emit_owed(struct server *s);

/* The unit of work is over or broken: forget what was expected. */
void respq_reset(struct respq *q);
void respq_free(struct respq *q);

#endif
