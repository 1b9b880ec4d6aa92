/*
 * client/prepared: named prepared statements in transaction and statement pooling, the client's
 * side.
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
 * The registry, the client maps and the server sets are in server/pstmt.h; this file keeps
 * them in step with the client's messages, a client's map through the client module's verbs
 * (client/statements.h), the server's set through the verbs of server/prepared.h, which also
 * handles the server's answers. Freshness: see pstmt_registry.seq.
 */
#ifndef PGMUX_CLIENT_PREPARED_H
#define PGMUX_CLIENT_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev/conn.h"

struct client;

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

/* Send a Sync of pgmux's own to the client's server, kept in order with the client's messages. */
void prepared_inject_sync(struct client *c);

/* The query text of the client's named statement name (not NUL-terminated: *len), or NULL. */
const char *prepared_query_of(struct client *c, const char *name, size_t *len);

#endif
