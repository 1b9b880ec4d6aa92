/*
 * server/events: what a server connection tells the client linked to it.
 *
 * The server module relays backend messages and keeps its answer queue; what they mean for the
 * client (its protocol position, its settings, its statements) is the client module's to write.
 * So the server reports events through this table, which the client module fills in
 * (client_server_events, client/client.h) and every server gets through its pools (struct
 * server_env's events): the server module never names a client function, and never reads a
 * client's fields. Every entry gets the linked client (s->client) and is called only while one
 * is linked.
 *
 * Together with the pool's verbs (pool/pool.h) these are the only ways the client, pool and
 * server modules reach one another upwards.
 */
#ifndef PGMUX_SERVER_EVENTS_H
#define PGMUX_SERVER_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev/conn.h"
#include "server/params.h"

struct client;
struct pstmt;

struct server_events {
	/* The client's connection: relayed and pgmux-written answers go there. */
	struct conn *(*conn)(struct client *c);

	/* ---- the unit of work ---- */
	/* ReadyForQuery (z, len bytes) ends what the client sent: relay it, release as the mode says. */
	void (*ready)(struct client *c, const uint8_t *z, uint32_t len);
	/* Is the client waiting for a ReadyForQuery of its own (not only pgmux's Sync's)? */
	bool (*awaits_ready)(const struct client *c);
	/* The answer to pgmux's own Sync that ended the client's segment (failed: it had an error). */
	void (*split)(struct client *c, bool failed);
	/* The server sent an ErrorResponse for the client's current unit of work. */
	void (*server_error)(struct client *c);
	/* pgmux relayed an error of its own in place of the server's answer (prepared statements). */
	void (*error_relayed)(struct client *c);
	/* The server entered COPY IN or COPY BOTH. */
	void (*copy_started)(struct client *c);
	/* The server is gone (closed, failed, or closed by pgmux). */
	void (*server_lost)(struct client *c);
	/* Close the client with an error (sqlstate; NULL: quietly). */
	void (*close)(struct client *c, const char *sqlstate, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* ---- replay of a request the server never answered ---- */
	bool (*replay_armed)(const struct client *c);
	void (*replay_disarm)(struct client *c);
	/* The server was terminated before answering: run the request again elsewhere. */
	void (*replay_elsewhere)(struct client *c);

	/*
	 * A message of a shard's answer while the client's statement runs on several shards
	 * (anything but ReadyForQuery): CONN_FORWARD relays it as usual.
	 */
	enum conn_action (*shard_message)(struct client *c, const struct pkt_header *hdr,
					  const uint8_t *whole);

	/* ---- settings ---- */
	/* A tracked parameter's new value after the client's SET (or pgmux's on its behalf). */
	void (*parameter_set)(struct client *c, enum tracked_param p, const char *value);
	/* The answer to server_read_settings (NULL: the question failed). */
	void (*settings_read)(struct client *c, struct settings *now);

	/* ---- read_your_writes ---- */
	/* The WAL position the client's writes reached. */
	void (*write_lsn)(struct client *c, uint64_t lsn);
	/* pgmux's question for that position is answered: the client's unit of work may end. */
	void (*lsn_captured)(struct client *c);

	/* ---- prepared statements (client/statements.h says what each does) ---- */
	void (*parse_failed)(struct client *c, const struct pstmt *ps, uint64_t seq);
	void (*statement_described)(struct client *c, const struct pstmt *ps, uint32_t shape);
	void (*statements_discarded)(struct client *c);
};

#endif
