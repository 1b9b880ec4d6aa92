/*
 * client/clients: the client module's part of a worker (w->clients): what every client shares
 * (their count and source addresses, cancel requests on their way, the login key cache, auth_query)
 * and what the worker lends them. The client module reads nothing else of the worker.
 *
 * Two parts of pgmux above the client reach it only through tables lent here: the admin console
 * (struct console_ops, registered by admin_register()) and online resharding, its shard maps and
 * bucket moves (struct shard_moves_ops, lent by reshard_init()). The slots are the worker's own,
 * never copies: RELOAD and admin SET replace what they point to, and a client always sees what
 * is in force.
 */
#ifndef PGMUX_CLIENT_CLIENTS_H
#define PGMUX_CLIENT_CLIENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"
#include "shard/move.h"

struct authquery;
struct client;
struct client_addr;
struct config;
struct dns;
struct evloop;
struct kdfcache;
struct loaded_shard_map;
struct pools;
struct shards_entry;
struct tls_ctx;

/*
 * The admin console as the modules below it see it: admin/ lends its table and its state (arg)
 * at startup, and the client and the worker call through it, so they never include admin/.
 */
struct console_ops {
	/* Is dbname the console's name ("pgmux" or "pgbouncer")? */
	bool (*is_console_db)(const char *dbname);
	/*
	 * One simple-protocol Query from an admin client: the whole answer, ending with
	 * ReadyForQuery, goes to the client, unless the command must wait (PAUSE, WAIT_CLOSE): then
	 * tick finishes it later.
	 */
	void (*handle_query)(void *arg, struct client *c, const char *sql);
	/* An admin client is going away: forget any command it was waiting on. */
	void (*forget_client)(void *arg, struct client *c);
	/* After a server is released and on every janitor run: finish waiting PAUSE/WAIT_CLOSE. */
	void (*tick)(void *arg);
	/* At exit, after every client is closed. */
	void (*destroy)(void *arg);
};

/*
 * The shard maps in force and the bucket moves, as a client routing a unit of work asks about
 * them; the reshard module keeps both and lends this table (arg: its struct reshard).
 */
struct shard_moves_ops {
	/* The map in force for set; NULL: none yet. Borrowed: valid until the loop runs again. */
	const struct loaded_shard_map *(*map)(void *arg, const struct shards_entry *set);
	/* How bucket of section set is covered by a move now (MOVE_COVER_NONE: no move runs). */
	enum move_cover (*bucket)(void *arg, const char *set, uint32_t bucket);
	/* Are units of work on set refused now (etcd_outage = refuse, see reshard/movecoord.h)? */
	bool (*fenced)(void *arg, const struct shards_entry *set);
	/* Keep c (its unit's first message unread) until its bucket's move switches or fails. */
	bool (*hold_client)(void *arg, struct client *c);
	/* c closes: forget it if it is held. */
	void (*forget_client)(void *arg, struct client *c);
};

/* Buckets of the table of client source addresses (client/admit.c). */
#define CLIENT_ADDR_BUCKETS 256

struct clients {
	int n;                        /* every client connection, for max_client_conn */
	uint64_t next_id;             /* the last client id given */
	struct list_node cancel_reqs; /* cancel requests on their way to a backend or peer */
	struct list_node peers;       /* struct peer: [peers] that cancels were sent to */
	/* connections per source address, for max_client_conn_per_addr (client/admit.c) */
	struct client_addr *addrs[CLIENT_ADDR_BUCKETS];
	uint64_t accept_hold_logged_us; /* when the log last said accepting is on hold */
	struct kdfcache *kdfcache;      /* derived login keys and PBKDF2 budget; NULL until used */
	struct authquery *authquery;    /* auth_query's cache and connections (auth/) */
	/* lent by the worker */
	struct evloop *loop;
	struct pools *pools;
	struct config *const *cfg;  /* the config in force, with its auth_file users */
	struct tls_ctx *const *tls; /* accepting TLS; NULL inside = client TLS off */
	struct dns *const *dns;
	void *const *listeners;    /* ev/listen.c's state, to hold accepting at max_client_conn */
	const bool *shutting_down; /* SIGTERM/SHUTDOWN: no new clients */
	const bool *safe_shutdown; /* SIGINT: close clients as their transactions end */
	const bool *handed_over;   /* the listening sockets went to a new process */
	/* lent by the parts above: admin_register(), reshard_init() */
	const struct console_ops *console; /* NULL: no console registered */
	void *console_arg;
	const struct shard_moves_ops *moves; /* NULL: no sharding (unit tests) */
	void *moves_arg;
};

/* An empty set: no client, nothing lent yet (the worker fills in what it lends). */
void clients_init(struct clients *cs);

/* At exit, after every client is closed: cancel requests still on their way, peers, caches. */
void clients_free(struct clients *cs);

static inline struct config *clients_cfg(const struct clients *cs)
{
	return *cs->cfg;
}

/* Is dbname the admin console's (false when no console is registered)? */
static inline bool clients_is_console_db(const struct clients *cs, const char *dbname)
{
	return cs->console && cs->console->is_console_db(dbname);
}

#endif
