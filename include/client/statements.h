/*
 * client/statements: the client's prepared statements as the client sees them — its names
 * (c->pstmts: name -> shared statement), the unnamed statement when it is a DEALLOCATE pgmux
 * answers, and what the unnamed portal is bound to.
 *
 * client/prepared.c reads them and decides what each message means; what happened is reported
 * here, and only these verbs change them (the client module writes the client's fields). None of
 * them calls back.
 */
#ifndef PGMUX_CLIENT_STATEMENTS_H
#define PGMUX_CLIENT_STATEMENTS_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct dealloc_stmt;
struct pstmt;

/*
 * The client's Parse named ps name (replacing what the name held; stamped with a new registry
 * sequence, result columns not yet known). False when out of memory: nothing changed.
 */
bool client_on_statement_parsed(struct client *c, const char *name, struct pstmt *ps);
/* The client's name went (Close, DEALLOCATE name); a name it does not hold: nothing happens. */
void client_on_statement_closed(struct client *c, const char *name);
/* All the client's names went (DEALLOCATE ALL, DISCARD ALL). */
void client_on_statements_discarded(struct client *c);
/*
 * The client's Parse that made a name at registry sequence seq failed or was skipped: that name
 * goes if it still names ps (only compared: ps may be gone).
 */
void client_on_parse_failed(struct client *c, const struct pstmt *ps, uint64_t seq);
/* A Describe the client asked for told the result columns of ps: every name of it has them. */
void client_on_statement_described(struct client *c, const struct pstmt *ps, uint32_t shape);

/*
 * The client's unnamed Parse replaced the unnamed statement: dealloc is the DEALLOCATE pgmux
 * answers through it (copied), NULL for any other statement (the server's).
 */
void client_on_unnamed_parsed(struct client *c, const struct dealloc_stmt *dealloc);
/* A simple Query destroyed the unnamed statement and the unnamed portal. */
void client_on_simple_query(struct client *c);
/*
 * A Bind replaced the unnamed portal: it now runs ps (NULL: a statement pgmux does not name), or
 * pgmux's DEALLOCATE when dealloc.
 */
void client_on_portal_bound(struct client *c, struct pstmt *ps, bool dealloc);
/* The client's Sync went out: a portal bound to pgmux's DEALLOCATE ends with the implicit
 * transaction. */
void client_on_sync_sent(struct client *c);

#endif
