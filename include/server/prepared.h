/*
 * prepared: named prepared statements in transaction and statement pooling.
 *
 * A client's named statements live in a per-client map (client name -> shared statement). A
 * shared statement is identified by its definition (query text and parameter types) and known to
 * servers under pgmux's own name "pgmux_<id>", so clients preparing the same query share it.
 * Parse / Bind / Describe / Close from the client are rewritten to those names, and a statement is
 * prepared on whatever server the client gets right before it is needed (pipelined, no extra
 * round trip). Each server keeps at most max_prepared_statements, least recently used closed first.
 *
 * SQL DEALLOCATE of a client's statement is pgmux's to answer (the server knows only its own
 * names), as a simple Query or through the unnamed statement (Parse, Bind, Describe, Execute,
 * as drivers send it); DEALLOCATE ALL and DISCARD ALL forget the client's names.
 *
 * A client's named Parse goes to a server, whose answer the client gets, unless its definition is
 * known to parse (a server accepted it before): then, outside a transaction, pgmux answers it at
 * once without a server (see prepared_parse_unlinked). A Parse that fails leaves no name behind.
 *
 * The registry, the client maps and the server sets are in server/pstmt.h; this module keeps
 * them in step with the protocol, a client's map through the client module's verbs
 * (client/statements.h). Freshness: see pstmt_registry.seq.
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

struct client;
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

/* Is tracking on for this client's pool (transaction/statement mode, max_prepared_statements)? */
bool prepared_active(const struct client *c);

/*
 * A message from a linked client (after note_frontend_message accounting). Returns what the conn
 * layer should do: forward it as is, or consume it (pgmux wrote its rewritten form), or ask for
 * the whole message first, or wait (CONN_STOP: RESPQ_MAX answers are outstanding, or a Describe
 * must be answered first; conn_resume follows).
 */
enum conn_action prepared_client_message(struct client *c, const struct pkt_header *hdr,
					 const uint8_t *whole);

/*
 * A Parse from a client that holds no server, outside any transaction. A named statement whose
 * definition is known to parse is registered and answered at once (CONN_CONSUME); any other
 * Parse needs a server, which answers it (CONN_FORWARD means "go on as usual").
 */
enum conn_action prepared_parse_unlinked(struct client *c, const struct pkt_header *hdr,
					 const uint8_t *whole);

/*
 * A simple Query from a client with or without a server, before it is routed or relayed:
 * DEALLOCATE of the client's statements is answered here. CONN_CONSUME: answered (nothing
 * goes to a server, nothing is owed); CONN_STOP: it waits until the server has answered what
 * came before (conn_resume then); CONN_NEED_WHOLE; CONN_FORWARD: go on as usual.
 */
enum conn_action prepared_query(struct client *c, const struct pkt_header *hdr,
				const uint8_t *whole);

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

/* Send a Sync of pgmux's own to the client's server, kept in order with the client's messages. */
void prepared_inject_sync(struct client *c);

/* The query text of the client's named statement name (not NUL-terminated: *len), or NULL. */
const char *prepared_query_of(struct client *c, const char *name, size_t *len);

#endif
