/*
 * client/route: routing a client's units of work when its database has cluster= (see
 * src/client/route.c): classification of the first message, deferred BEGIN, SET pgmux.route,
 * refusing a unit that cannot run, and read_your_writes bookkeeping.
 */
#ifndef PGMUX_CLIENT_ROUTE_H
#define PGMUX_CLIENT_ROUTE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"

struct cluster;
struct db_entry;

enum discard_state {
	DISCARD_NONE = 0,
	DISCARD_START,    /* the next message starts the refused unit */
	DISCARD_TO_SYNC,  /* dropping extended-protocol messages up to Sync */
	DISCARD_ANSWERED, /* dropping a batch pgmux answered whole, its Sync included */
};

/*
 * An idle client of a routed database starts a unit of work with this message: decide where it
 * goes (c->want, c->target). CONN_FORWARD: ask the pool for a server. Anything else: the
 * message was handled here (or must be whole first).
 */
enum conn_action client_route_unit(struct client *c, const struct pkt_header *hdr,
				   const uint8_t *whole);

/* Answer for the server: a CommandComplete tag (NULL: none) and ReadyForQuery tx_status. */
void client_send_tag_and_ready(struct client *c, const char *tag, char tx_status);

/*
 * Answer a whole extended-protocol batch that starts at whole (a Parse) for pgmux, as PostgreSQL
 * answers a statement that returns no rows: ParseComplete, BindComplete, NoData, CommandComplete
 * tag, ReadyForQuery tx_status; the batch's messages are then dropped up to its Sync. False
 * (nothing sent) unless the batch is exactly Parse, Bind, [Describe], Execute, Sync of the
 * unnamed statement without parameters, all buffered.
 */
bool client_answer_batch(struct client *c, const uint8_t *whole, const char *tag, char tx_status);

/*
 * A client of a routed database linked to a replica sends more: a write behind its reads
 * waits (CONN_STOP) until they are answered, then is routed on its own.
 */
enum conn_action client_route_linked(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole);
/*
 * The answer to the Sync pgmux sent to end a segment of reads on a replica: release the server
 * and route what follows; failed: the reads failed, so the rest of the segment is dropped.
 */
void client_on_split(struct client *c, bool failed);
/* Its server answered everything it had: let a waiting write go on. */
void client_route_drained(struct client *c);

/* The unit the client waits to run cannot run: error now, drop its messages, keep the client. */
void client_fail_unit(struct client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* While c->discarding: drop this message (ReadyForQuery at the end of the unit). */
enum conn_action client_discard_packet(struct client *c, const struct pkt_header *hdr);

/* Just linked: send the BEGIN pgmux answered earlier, ahead of the client's statement. */
void client_send_deferred_begin(struct client *c);

/*
 * read_your_writes: the unit that just ended wrote on the primary; ask the server for its WAL
 * position before letting it go. True: asked (the server is released when it answers).
 */
bool client_capture_write_lsn(struct client *c);
void client_on_write_lsn(struct client *c, uint64_t lsn);
/* The WAL position query answered: release the server unless more work arrived. */
void client_on_lsn_captured(struct client *c);

/*
 * c waits for a server of a cluster whose topology changed: if its member can no longer serve
 * it, it routes again (a replica gone, a new primary) and waits for the member chosen.
 */
void client_on_topology_changed(struct client *c);

/*
 * SHOW ROUTE FOR: what a new client of database entry e would do with sql, a lone autocommit
 * statement, by the rules client_route_unit follows (read_only included). *primary: it needs the
 * primary (else a replica). Returns the name of the member of cl that would serve it now, or why
 * none would; NULL without a cluster. Counts nothing.
 */
const char *client_route_for(const struct db_entry *e, struct cluster *cl, const char *sql,
			     size_t len, bool *primary);

/* A pgmux.route startup parameter or option; false when name is something else. */
bool client_take_route_option(struct client *c, const char *name, const char *value);

#endif
