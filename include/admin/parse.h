/*
 * admin/parse: the admin console's command parser, text in and a struct admin_cmd out.
 *
 * Pure: no sockets, no daemon state, no allocation, so it can be unit-tested and fuzzed alone.
 * Keywords are case-insensitive; whitespace, SQL comments and one trailing ';' are allowed.
 * Names (databases, SET keys) keep their case, as PgBouncer keeps it; "double quotes" allow any
 * characters in a database name. What a name refers to is checked by the caller.
 */
#ifndef PGMUX_ADMIN_PARSE_H
#define PGMUX_ADMIN_PARSE_H

#include <stdbool.h>
#include <stddef.h>

enum admin_verb {
	ADMIN_EMPTY, /* only whitespace, comments or ';' */
	ADMIN_SHOW,
	ADMIN_PAUSE,
	ADMIN_RESUME,
	ADMIN_RECONNECT,
	ADMIN_KILL,
	ADMIN_DISABLE,
	ADMIN_ENABLE,
	ADMIN_WAIT_CLOSE,
	ADMIN_RELOAD,
	ADMIN_SHUTDOWN,
	ADMIN_SET,
	ADMIN_KILL_CLIENT,  /* KILL_CLIENT id: the client's ptr as SHOW CLIENTS prints it */
	ADMIN_MOVE,         /* MOVE BUCKETS set buckets TO shard */
	ADMIN_MOVE_CLEANUP, /* MOVE CLEANUP id */
	ADMIN_MOVE_ABORT,   /* MOVE ABORT id */
};

enum admin_show {
	ADMIN_SHOW_HELP,
	ADMIN_SHOW_VERSION,
	ADMIN_SHOW_CONFIG,
	ADMIN_SHOW_DATABASES,
	ADMIN_SHOW_POOLS,
	ADMIN_SHOW_CLIENTS,
	ADMIN_SHOW_SERVERS,
	ADMIN_SHOW_STATS,
	ADMIN_SHOW_STATS_TOTALS,
	ADMIN_SHOW_STATS_AVERAGES,
	ADMIN_SHOW_TOTALS,
	ADMIN_SHOW_LISTS,
	ADMIN_SHOW_USERS,
	ADMIN_SHOW_MEM,
	ADMIN_SHOW_TOPOLOGY,
	ADMIN_SHOW_ROUTES,
	ADMIN_SHOW_SHARDS,
	ADMIN_SHOW_SHARD,   /* SHOW SHARD FOR key [IN database] */
	ADMIN_SHOW_ROUTE,   /* SHOW ROUTE [IN database] FOR statement */
	ADMIN_SHOW_LATENCY, /* p50/p95/p99 per database from the latency histograms */
	ADMIN_SHOW_STATE,
	ADMIN_SHOW_DNS_HOSTS,
	ADMIN_SHOW_DNS_ZONES,      /* always empty: pgmux resolves names, never whole zones */
	ADMIN_SHOW_SOCKETS,        /* every client and server socket, with its buffers */
	ADMIN_SHOW_ACTIVE_SOCKETS, /* the sockets with bytes in flight */
	ADMIN_SHOW_MOVES,          /* bucket moves between shards and their steps */
	ADMIN_SHOW_PEERS,          /* the [peers] entries in force */
	ADMIN_SHOW_PEER_POOLS,     /* cancel requests forwarded to each peer */
};

/* What SHUTDOWN waits for before pgmux exits; plain SHUTDOWN is WAIT_FOR_CLIENTS. */
enum admin_shutdown_mode {
	ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS, /* as SIGTERM: until every client has disconnected */
	ADMIN_SHUTDOWN_WAIT_FOR_SERVERS, /* as SIGINT: clients closed as their transactions end */
};

enum admin_parse_status {
	ADMIN_PARSE_OK,
	ADMIN_PARSE_SYNTAX,      /* not a command, or wrong arguments: SQLSTATE 42601 */
	ADMIN_PARSE_UNSUPPORTED, /* a PgBouncer command pgmux does not have: SQLSTATE 0A000 */
};

#define ADMIN_NAME_MAX 64    /* longest database name or SET key, with its NUL */
#define ADMIN_VALUE_MAX 1024 /* longest SET value, with its NUL */

struct admin_cmd {
	enum admin_verb verb;
	enum admin_show show;              /* ADMIN_SHOW only */
	enum admin_shutdown_mode shutdown; /* ADMIN_SHUTDOWN only */
	/* database name, SET's key, KILL_CLIENT's id or SHUTDOWN's mode as given; "" when none */
	char arg[ADMIN_NAME_MAX];
	char value[ADMIN_VALUE_MAX]; /* SET's value, SHOW SHARD's key or SHOW ROUTE's statement */
	/* MOVE BUCKETS: arg is the [shards.NAME] section, value the buckets, target the shard */
	char target[ADMIN_NAME_MAX];
};

/*
 * Parse one query. ADMIN_PARSE_OK fills cmd; otherwise err says what is wrong, starting with
 * "invalid command" for ADMIN_PARSE_SYNTAX. cmd is always fully written.
 */
enum admin_parse_status admin_parse(const char *sql, struct admin_cmd *cmd, char *err,
				    size_t errlen);

/* The CommandComplete tag of a verb ("SHOW", "PAUSE", "WAIT_CLOSE"...). Static string. */
const char *admin_verb_tag(enum admin_verb verb);

/* The name of a SHOW item as written in commands ("POOLS", "STATS_TOTALS"...). Static string. */
const char *admin_show_name(enum admin_show what);

#endif
