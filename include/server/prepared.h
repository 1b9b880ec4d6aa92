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
 * Freshness: see pstmt_registry.seq.
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
#include "route/dealloc.h"

struct client;
struct server;

struct pstmt {
	struct pstmt *next;    /* hash chain */
	uint64_t id;
	uint32_t hash;
	uint32_t refs;         /* client map entries and servers holding it */
	bool parses;           /* a server accepted its Parse: a client's Parse may be answered early */
	char name[32];         /* on servers: "pgmux_<id>" */
	size_t def_len;
	uint8_t def[];         /* Parse body after the name: query, parameter count and types */
};

struct pstmt_registry {
	struct pstmt **buckets;
	size_t nbuckets;
	size_t count;
	uint64_t next_id;
	/*
	 * Orders Parse events. A server's copy older than a client's Parse may predate DDL the
	 * client already sees, so it is parsed again before that client uses it: no client of pgmux
	 * gets "cached plan must not change result type" where a direct connection would not.
	 */
	uint64_t seq;
};

struct cstmt {
	char *name;
	struct pstmt *ps;
	uint64_t parsed_seq;   /* when the client sent its Parse (registry sequence) */
	uint32_t shape;        /* the result columns the client was told (Describe); 0 = not yet */
};

/* A client's statements by its own names. */
struct client_pstmts {
	struct cstmt *items;
	size_t n, cap;
	/* The unnamed statement is a DEALLOCATE pgmux answers (kind DEALLOC_NONE: it is not). */
	struct dealloc_stmt unnamed;
	bool unnamed_portal;   /* the unnamed portal is bound to it */
};

/* The shared statements prepared on one server, with when each was last used. */
struct server_pstmts {
	struct pstmt **items;
	uint64_t *last_used;
	uint64_t *prepared_seq; /* when each was parsed on this server (registry sequence) */
	uint32_t *shape;        /* its result columns as this server described them; 0 = unknown */
	size_t n, cap;
	uint64_t clock;
};

/* What the server will answer to one forwarded message, and what pgmux does with it. */
struct respq_entry {
	char kind;    /* P B C D(statement) d(portal) E S Q F */
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
	uint8_t *owed;         /* whole messages pgmux writes for '+' or 'x' (owned; NULL: none) */
	size_t owed_len;
};

struct respq {
	struct respq_entry *ring;
	uint32_t cap, head, len;
	bool skipping;  /* an error made the server skip messages until the next Sync */
	/* A DISCARD ALL or DEALLOCATE ALL went to the server: when it succeeds, its statements and
	 * the client's names are gone. */
	bool drop_watch;
};

void pstmt_registry_init(struct pstmt_registry *r);
void pstmt_registry_destroy(struct pstmt_registry *r);

/* Is tracking on for this client's pool (transaction/statement mode, max_prepared_statements)? */
bool prepared_active(const struct client *c);

/*
 * A message from a linked client (after note_frontend_message accounting). Returns what the conn
 * layer should do: forward it as is, or consume it (pgmux wrote its rewritten form), or ask for
 * the whole message first.
 */
enum conn_action prepared_client_message(struct client *c, const struct pkt_header *hdr, const uint8_t *whole);

/*
 * A Parse from a client that holds no server, outside any transaction. A named statement whose
 * definition is known to parse is registered and answered at once (CONN_CONSUME); any other
 * Parse needs a server, which answers it (CONN_FORWARD means "go on as usual").
 */
enum conn_action prepared_parse_unlinked(struct client *c, const struct pkt_header *hdr, const uint8_t *whole);

/*
 * A simple Query from a client with or without a server, before it is routed or relayed:
 * DEALLOCATE of the client's statements is answered here. CONN_CONSUME: answered (nothing
 * goes to a server, nothing is owed); CONN_STOP: it waits until the server has answered what
 * came before (conn_resume then); CONN_NEED_WHOLE; CONN_FORWARD: go on as usual.
 */
enum conn_action prepared_query(struct client *c, const struct pkt_header *hdr, const uint8_t *whole);

/*
 * A message from the linked server, before server.c handles it. Returns CONN_FORWARD to let
 * server.c go on as usual, CONN_CONSUME when pgmux swallowed it or wrote it (and its own answers
 * after it) itself, CONN_NEED_WHOLE to see it whole first.
 */
enum conn_action prepared_server_message(struct server *s, const struct pkt_header *hdr, const uint8_t *whole);
/* A ReadyForQuery arrived: it answers the head of the queue. */
void prepared_on_ready(struct server *s);
/* Write the answers pgmux owes at the head of the queue (after the ReadyForQuery was relayed). */
void prepared_emit_owed(struct server *s);

/* The unit of work is over or broken: forget what was expected. */
void respq_reset(struct respq *q);
void respq_free(struct respq *q);

/* Forget a client's names (DEALLOCATE ALL, DISCARD ALL, or the client is going away). */
void client_pstmts_clear(struct pstmt_registry *r, struct client_pstmts *m);
/* The server lost its statements (DISCARD ALL, reset) or is closing. */
void server_pstmts_clear(struct pstmt_registry *r, struct server_pstmts *set);
/* Free the containers too (at close). */
/* Send a Sync of pgmux's own to the client's server, kept in order with the client's messages. */
void prepared_inject_sync(struct client *c);

/* The query text of the client's named statement name (not NUL-terminated: *len), or NULL. */
const char *prepared_query_of(struct client *c, const char *name, size_t *len);

void client_pstmts_free(struct pstmt_registry *r, struct client_pstmts *m);
void server_pstmts_free(struct pstmt_registry *r, struct server_pstmts *set);

#endif
