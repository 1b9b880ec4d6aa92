/*
 * server: one pgmux connection to a PostgreSQL server.
 *
 * Life: CONNECTING -> LOGIN (startup, authentication, parameters) -> IDLE <-> ACTIVE (linked to a
 * client) ; RESET (running pgmux's own query: reset, check) -> IDLE ; CANCEL_WAIT (released while
 * a cancel is in flight) -> RESET or IDLE ; CLOSING. State changes only through the pool's verbs
 * (pool_server_launched, pool_server_connected, pool_server_login_done, pool_server_closing, ...
 * in pool/pool.h). The server module never writes a client's protocol position, nor names a
 * client function: it reports events through the table of server/events.h.
 */
#ifndef PGMUX_SERVER_SERVER_H
#define PGMUX_SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/list.h"
#include "core/log.h"
#include "ev/conn.h"
#include "server/params.h"
#include "server/prepared.h"

struct config;
struct dns;
struct evloop;
struct pool;
struct client;
struct scram_client;
struct server_events;
struct tls_ctx;

enum server_state {
	SERVER_CONNECTING,
	SERVER_LOGIN,
	SERVER_IDLE,
	SERVER_ACTIVE,
	SERVER_RESET,       /* running pgmux's own query before going idle */
	SERVER_CANCEL_WAIT, /* released, waiting for an in-flight cancel before reuse */
	SERVER_CLOSING,
};

/*
 * What a server may use of the process: the pools fill it in (pool/pools.c) from what the worker
 * lends them; the server module reads nothing else. What RELOAD and admin SET replace is reached
 * through the worker's own slots, never copied, so that a server always sees what is in force.
 */
struct server_env {
	struct evloop *loop;
	struct pstmt_registry *pstmts;      /* statements shared by every client and server */
	const struct server_events *events; /* what a server tells its linked client */
	/* TLS towards servers (RELOAD rebuilds it); NULL inside = off */
	struct tls_ctx *const *tls;
	uint64_t next_id;
	struct config *const
		*cfg; /* the config in force; its auth_file users: passwords an entry lacks */
	struct dns *const *dns; /* the resolver for host names */
};

struct server {
	uint64_t id;
	struct server_env *env;
	struct pool *pool;
	struct conn conn;
	enum server_state state;
	struct list_node node; /* on its pool's list for its state */
	struct client *client; /* linked client, if any */
	/* what the linked client is told: env->events, at hand for every message relayed */
	const struct server_events *events;
	int member;             /* the cluster member it connects to; 0 for host= databases */
	uint64_t primary_epoch; /* its member's primary_epoch at connect: stale when it moves */

	struct sockaddr_storage sa; /* where the backend listens (for cancel requests) */
	socklen_t salen;
	uint32_t backend_pid, backend_key;
	struct param_set params; /* what the server reported through ParameterStatus */
	char addr[280];
	char host[256]; /* where it connects (the pool chose): a name, an address or a socket dir */
	int port;
	int host_idx; /* host= databases: the host's place in the entry's list */

	uint32_t internal_pending; /* ReadyForQuery owed to pgmux's own queries (consumed) */
	bool internal_failed;      /* one of pgmux's own queries failed */
	bool in_hot_standby;       /* the server said so at login (PostgreSQL 14+) */
	bool capture_lsn;          /* read_your_writes: the internal query answers a WAL position */
	bool shape_wait;           /* a client's Bind waits for pgmux's Describe (prepared.c) */
	bool split_pending;        /* pgmux sent a Sync to end the client's segment here */
	bool seg_error;            /* an error was sent since the last ReadyForQuery */
	bool close_when_released;  /* do not reuse (RECONNECT, reload, lifetime, error) */
	bool fatal_seen;           /* the server sent a FATAL error: it will close */
	char tx_status;
	/* the cancel requests being delivered to its backend (client/cancel.c) */
	struct list_node cancels;

	struct server_pstmts pstmts; /* shared statements prepared here */
	struct respq respq;          /* answers owed to the linked client, in order */
	struct settings applied;     /* session settings pgmux or a client set here */
	bool settings_unknown;      /* a client changed settings in a way not followed: RESET ALL */
	bool needs_discard;         /* a pinned client left session state here: DISCARD ALL */
	bool reading_settings;      /* pgmux asked which settings the session has (readback) */
	struct settings readback;   /* the answer so far */
	struct scram_client *scram; /* during SCRAM login only */
	bool auth_asked;            /* login: the server asked for a password (any method) */
	bool auth_ok;               /* login: AuthenticationOk came; parameters may follow */

	uint64_t connect_time_us;
	uint64_t request_time_us; /* last time it was handed out or returned */
	uint64_t link_time_us;
};

/* The configuration in force. */
static inline const struct config *server_cfg(const struct server *s)
{
	return *s->env->cfg;
}

/* A log line with the server's id and context: "S-4 app/alice 10.0.0.7:5432 ...". */
#define server_log(lvl, s, fmt, ...)                                                               \
	log_msg(lvl, "S-%llu %s/%s %s: " fmt, (unsigned long long)(s)->id, (s)->pool->db->name,    \
		(s)->pool->user->name, (s)->addr, ##__VA_ARGS__)

/* Record a ParameterStatus (for_client: the linked client now expects the value too). */
void server_track_parameter(struct server *s, const uint8_t *body, size_t len, bool for_client);

/* Open a new server connection for pool to member (0 for host= databases; counted at once). */
struct server *server_launch(struct server_env *env, struct pool *pool, int member);
/* Send pgmux's own query; its replies are consumed. */
void server_send_internal_query(struct server *s, const char *sql);
/*
 * Ask the server which settings its session has (those set with SET or set_config, reported
 * parameters aside): what pg_settings lists, and the custom (dotted) settings named in known or
 * in touched, which it does not. The client hears the answer (settings_read), if it is
 * still linked. False when the question could not be built (out of memory): the server is then
 * marked for a reset on release, and no answer follows.
 */
bool server_read_settings(struct server *s, const struct settings *known,
			  const struct settings *touched);
/* Do a and b connect to the same address (the host part; unix sockets: always)? */
bool server_same_address(const struct server *a, const struct server *b);

/* Close now; the pool forgets it. reason is logged. */
void server_close(struct server *s, const char *reason);

/* Is the message hdr announces longer than pgmux holds whole (server_max_held_message)? */
bool server_message_too_big(const struct server *s, const struct pkt_header *hdr);

/* This end of the server's socket, "ip:port", "[ipv6]:port" or "unix"; false, buf empty: none
 * yet (its host name still resolves). */
bool server_local_name(const struct server *s, char *buf, size_t len);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" for SHOW SERVERS; false, buf empty, while it is plain. */
bool server_tls_describe(const struct server *s, char *buf, size_t len);

/* Where the server socket's input buffer and output queue stand, for SHOW SOCKETS; reads only. */
void server_buffer_state(const struct server *s, struct conn_buffers *b);

#endif
