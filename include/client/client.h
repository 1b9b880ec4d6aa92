/*
 * client: one application connection to pgmux.
 *
 * Life: LOGIN (startup packet, authentication) -> IDLE (logged in, no server) <-> WAITING (wants a
 * server, queued in its pool) -> ACTIVE (linked to a server) -> back to IDLE when the server is
 * released. Admin console clients stay IDLE/ACTIVE without a pool. State changes, and links to
 * servers, only through the pool's verbs (pool/pool.h); every other field (the protocol position
 * pending_ready, in_copy, tx_status, ...; parameters, prepared statement names, wait times) is
 * written only by the client module: the server and pool modules report events through the
 * tables of server/events.h and pool/events.h, which this module fills in.
 * tools/clientwrites.py (make modgraph) checks it.
 */
#ifndef PGMUX_CLIENT_CLIENT_H
#define PGMUX_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"
#include "core/log.h"
#include "ev/conn.h"
#include "proto/be.h"
#include "route/dealloc.h"
#include "route/setstmt.h"
#include "server/params.h"
#include "server/prepared.h"

struct clients;
struct pool;
struct server;
struct database;
struct scram_server;
struct client_addr;
struct shard_fanout;
struct copy_split;
struct loaded_shard_map;
struct server_events;
struct pool_events;

enum client_state {
	CLIENT_LOGIN,
	CLIENT_WAITING_LOGIN, /* logged in, waiting for the pool's first server to learn its parameters */
	CLIENT_IDLE,
	CLIENT_WAITING,
	CLIENT_ACTIVE,
	CLIENT_CLOSING,
};

struct client {
	uint64_t id;
	struct clients *cs;
	struct conn conn;
	enum client_state state;
	struct list_node node; /* on the list of its state (the pools' login list, or its pool's) */
	struct pool *pool;     /* NULL until login picks one, and for admin clients */
	struct server *server; /* linked server, if any */
	bool admin;            /* connected to the admin console */
	bool admin_can_write;  /* admin_users (else stats_users) */

	char user[64];
	char dbname[64];
	char addr[64];                 /* "ip:port" of the client */
	struct client_addr *addr_slot; /* its count for max_client_conn_per_addr (client/admit.c) */
	struct param_set params;       /* what the client expects the server's settings to be */

	uint32_t cancel_pid, cancel_key; /* what pgmux told the client in BackendKeyData */
	enum be_auth_code auth_method;   /* request the client must answer next; BE_AUTH_OK: none */
	bool auth_query_wait;            /* auth_query lookup in flight: the client owes nothing */
	uint8_t auth_salt[4];
	char *proven_password; /* see pool_user.proven_password; wiped once handed over */

	/* protocol position, for deciding when the server may be released */
	uint32_t pending_ready;      /* ReadyForQuery messages still owed for sent Query/Sync */
	bool unsynced;               /* extended-protocol messages sent after the last Sync */
	bool in_copy;                /* a COPY FROM STDIN is in progress */
	char tx_status;              /* last ReadyForQuery status: 'I', 'T' or 'E' */
	bool error_sent;             /* an ErrorResponse was already relayed for the current unit */
	struct client_pstmts pstmts; /* named prepared statements (transaction pooling) */
	struct pstmt *portal_ps; /* statement of the unnamed portal's last Bind (compared only) */
	/* The unnamed statement is a DEALLOCATE pgmux answers (kind DEALLOC_NONE: it is not). */
	struct dealloc_stmt unnamed_dealloc;
	bool portal_dealloc;          /* the unnamed portal is bound to that DEALLOCATE */
	bool skip_to_sync;            /* a Bind failed in pgmux: drop messages up to the Sync */
	struct settings settings;     /* session settings carried from server to server */
	struct set_stmt *pending_set; /* a SET in flight, applied when it succeeds */
	bool pending_set_failed;
	bool settings_dirty;   /* settings may have changed in ways only the server can tell */
	bool settings_unnamed; /* ... through a set_config() whose name is not known */
	struct settings custom_names; /* custom settings changed in the unit: asked for by name */
	const char *pin_reason; /* session state keeps this client on its server (static text) */
	struct msgbuf replay;   /* what it sent since the server was linked, until it answers */

	/* routing (databases with cluster=) */
	int target;           /* member it waits for or uses; TARGET_WAIT_PRIMARY; 0 = host= */
	uint8_t want;         /* enum route_want of the current unit of work */
	uint8_t session_hint; /* enum route_hint: SET pgmux.route / startup pgmux.route */
	bool unit_wrote;      /* the unit went to the primary as a write (read_your_writes) */
	uint8_t discarding;   /* enum discard_state (client/route.h): a refused unit */
	char *deferred_begin; /* a bare BEGIN answered by pgmux, sent with the next statement */
	bool begin_read_only; /* that BEGIN said READ ONLY */
	uint8_t begin_hint;   /* enum route_hint on that BEGIN */
	uint64_t ryw_lsn;     /* WAL position of its last committed write; 0 = none */
	bool drain_wait;      /* a write waits for the replica to answer what came before */

	/* sharding (databases with shards=): client/shard.c */
	struct database *home; /* the sharded database it connected to; NULL otherwise */
	struct shard_setting {
		char *key;           /* pgmux.shard_key; NULL = unset */
		char *shard;         /* pgmux.shard: a shard's name; NULL = unset */
	} shard_session,             /* SET and startup options */
		shard_local;         /* SET LOCAL, until the transaction ends */
	bool shard_checked;          /* the unit's messages up to its Sync were read at its start */
	struct shard_fanout *fanout; /* a read going to every shard in turn; NULL when none */
	bool unit_in_move;           /* its unit of work touches buckets a move copies (mover.h) */
	bool unit_outside_txn;       /* this unit runs outside the transaction pgmux holds */
	struct copy_split *copy_split; /* a COPY FROM STDIN split over the shards; NULL when none */
	struct loaded_shard_map *unit_map; /* the shard map its unit of work started with (a ref) */
	char *shard_unnamed_sql;           /* the unnamed statement prepared in the transaction */
	size_t shard_unnamed_len;

	uint64_t connect_time_us;
	uint64_t request_time_us; /* last activity */
	uint64_t wait_start_us;   /* when it started waiting for a server */
	uint64_t xact_start_us;
	uint64_t query_start_us;
	bool query_running;
	bool shutdown_pending; /* close when the current transaction ends */

	/* client authentication (client/login.c) */
	struct scram_server *scram; /* SASL exchange in progress or just proven; NULL otherwise */
	bool scram_pass_through;    /* proven against a stored SCRAM secret: keys go to the pool */
	char *auth_secret;          /* the secret auth_query found (owned, wiped); NULL if none */
	bool auth_query_done;       /* auth_query answered (auth_secret may still be NULL) */
	bool ssl_requested;         /* an SSLRequest was answered (one per connection) */
	bool gssenc_requested;      /* a GSSENCRequest was answered (one per connection) */
};

/*
 * Statements up to this size are held whole and read for settings and session state (SET,
 * temporary tables, LISTEN...). Such statements are short; a larger message streams through
 * unread, so a bulk INSERT is never buffered whole for this.
 */
#define SETTINGS_PEEK_MAX (8 * 1024)

/* A log line with the client's id and context: "C-17 app/alice@10.1.2.3:5122 ...". */
#define client_log(lvl, c, fmt, ...)                                                               \
	log_msg(lvl, "C-%llu %s/%s@%s " fmt, (unsigned long long)(c)->id, (c)->dbname, (c)->user,  \
		(c)->addr, ##__VA_ARGS__)

/*
 * A new client of w, in its login state with no socket yet (for the client module's ways in:
 * accept, internal clients, clients handed over by the previous process). NULL: out of memory.
 */
struct client *client_new(struct clients *cs);

/*
 * A connection arrived at a listener (listen_accept_fn): a new client, whose conn the listener
 * attaches the socket to (its on_connected then admits it). NULL when out of memory.
 */
struct conn *client_accept(struct clients *cs);

/*
 * A client of pgmux's own on fd (the other end of a conn_attach_pair): logged in as like's user
 * with like's parameters and session settings, straight into pool p (no authentication: only
 * pgmux holds the other end). It then speaks the protocol like any client (AuthenticationOk,
 * ..., ReadyForQuery first). false: it could not be made (fd is closed).
 */
bool client_open_internal(struct clients *cs, int fd, const struct client *like, struct pool *p);

/* Close with an error message (sqlstate) after flushing it; NULL sqlstate = close quietly. */
void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Queue the messages in mb for the client (nothing, logged, when building mb ran out of memory). */
void client_send(struct client *c, struct msgbuf *mb);

/* Queue len bytes of whole messages pgmux built (the admin console's replies) for the client. */
void client_send_bytes(struct client *c, const void *data, size_t len);

/* This end of the client's socket, "ip:port", "[ipv6]:port" or "unix"; false, buf empty: none. */
bool client_local_name(const struct client *c, char *buf, size_t len);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" for SHOW CLIENTS; false, buf empty, while it is plain. */
bool client_tls_describe(const struct client *c, char *buf, size_t len);

/* Where the client socket's input buffer and output queue stand, for SHOW SOCKETS; reads only. */
void client_buffer_state(const struct client *c, struct conn_buffers *b);

/* Send an ErrorResponse (and keep the connection). */
void client_send_error(struct client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Follow settings changes in a statement about to run on the linked server: a lone SET outside a
 * transaction is carried to the client's next servers once it succeeded; any other change (in a
 * transaction, several statements, set_config) has the server say at the end of the unit of
 * work which settings its session kept.
 */
void client_watch_statement(struct client *c, const char *sql, size_t len);

/* The server answered: the client's request is no longer kept to be replayed elsewhere. */
void client_replay_disarm(struct client *c);
/* c's request goes to another server: unpair c from the dying one (pool_unlink_for_replay). */
void client_unlink_for_replay(struct client *c, const char *reason);
/* The unit of work ended with the server's last answer: let the server go as the mode says. */
void client_unit_done(struct client *c);

/*
 * server_fast_close: true when c, in session mode, holds a server marked for closing and is
 * between transactions, so that server and client are to be closed now rather than at the end
 * of the session.
 */
bool client_fast_close_due(const struct client *c);

/* Close c (and with it its server) for server_fast_close. */
void client_fast_close(struct client *c);
/*
 * Finish the login of a client the pool has just made IDLE (pool_client_logged_in(), or when the
 * pool's first server logged in): fill in parameters, send AuthenticationOk and ReadyForQuery.
 */
void client_finish_login(struct client *c);

/*
 * What the client's side of prepared statements (client/prepared.c) asks for: the client module
 * alone writes the client's protocol position (pending_ready, unsynced, in_copy, tx_status,
 * query_running, error_sent, skip_to_sync, drain_wait, ...).
 */
/* A message failed in pgmux: the client's messages up to its Sync are dropped. */
void client_skip_to_sync(struct client *c);
/* The client's next message must wait until the server has answered what is in flight. */
void client_wait_for_drain(struct client *c);

/* pgmux is shutting down: c is closed when its current transaction ends, not before. */
void client_close_after_transaction(struct client *c);

/*
 * The events of server/events.h and pool/events.h, as the client module handles them (the worker
 * lends them to the pools, and the pools to their servers: struct pools_lent).
 */
extern const struct server_events client_server_events;
extern const struct pool_events client_pool_events;

#endif
