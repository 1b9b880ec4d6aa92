/*
 * client/copysplit: COPY table FROM STDIN into a sharded database, each row sent to the shard of
 * its key (see src/client/copysplit.c for how and what is guaranteed).
 */
#ifndef PGMUX_CLIENT_COPYSPLIT_H
#define PGMUX_CLIENT_COPYSPLIT_H

#include <stddef.h>

#include "client/client.h"

struct shards_entry;
struct loaded_shard_map;
struct keyfind_copy;

/*
 * c, a client of a sharded database (c->home) outside any transaction, sent the Query sql, which
 * is a COPY FROM STDIN without a key of its own (copy describes it): split its rows over the
 * shards of set by map. The client hears CopyInResponse once every shard is ready, or an error.
 * CONN_CONSUME: the Query is taken (or refused with an error); CONN_CLOSED: c was closed.
 */
enum conn_action copysplit_start(struct client *c, const struct shards_entry *set,
				 const struct loaded_shard_map *map,
				 const struct keyfind_copy *copy, const char *sql, size_t len);

/*
 * A message of a client whose COPY is split (c->copy_split): its rows, CopyDone, CopyFail; other
 * messages wait until the COPY is answered. CONN_FORWARD: the COPY is over, go on with this
 * message as usual.
 */
enum conn_action copysplit_client_message(struct client *c, const struct pkt_header *hdr,
					  const uint8_t *whole);

/* A CancelRequest for c: a COPY being split is stopped, nothing of it committed. */
void copysplit_cancel(struct client *c);

/* Forget the split (the client goes away): every shard's part is rolled back unless committed. */
void copysplit_free(struct client *c);

#endif
