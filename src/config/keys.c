/*
 * config/keys.c: the key tables, the one place that says which settings pgmux has.
 *
 * config_keys[] lists every setting of the [pgmux] section; the loader, admin SHOW CONFIG /
 * SET, the commented etc/pgmux.ini and the man page are all checked against it, so adding a
 * setting means adding a row here, a field of the same name in struct config, and its
 * documentation (the unit test fails until all three agree).
 *
 * A row also says whether a change needs a restart and what a running pgmux rebuilds from the
 * key when RELOAD or admin SET changes it (its "apply" mask); a key read where it is used needs
 * nothing rebuilt.
 *
 * Invariants: a row's name equals its struct field's name; default_value parses under the
 * row's own type and range; every numeric row has min_value <= max_value. Defaults follow
 * PgBouncer where it has the same key, so a PgBouncer file means the same thing here.
 */
#include <limits.h>
#include <stddef.h>

#include "config/config.h"

/* Timeouts beyond a few decades are typos, not intent. */
#define SECONDS_MAX 1e9

/* Index = enum pool_mode value. */
static const char *const pool_mode_names[] = { "session", "transaction", "statement", NULL };

/* Index = enum host_balance value (PgBouncer's names). */
static const char *const host_balance_names[] = { "round-robin", "disable", NULL };

/* Index = enum auth_type value. */
static const char *const auth_type_names[] = {
	"trust", "any", "password", "md5", "scram-sha-256", "cert", "hba", NULL,
};

/*
 * Other names accepted for a value, as (alias, name) pairs: PgBouncer calls the cleartext
 * method "plain", pgmux (like pg_hba.conf) "password"; SHOW CONFIG shows the name.
 */
static const char *const auth_type_aliases[] = { "plain", "password", NULL };

/* Index = enum tls_sslmode value. */
static const char *const sslmode_names[] = {
	"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL,
};

/* Index = enum read_from, enum load_balance, enum read_fallback value. */
static const char *const read_from_names[] = { "replicas", "any", "primary", NULL };
static const char *const load_balance_names[] = { "round_robin", "least_connections", "random",
						  NULL };
static const char *const read_fallback_names[] = { "primary", "error", NULL };

/* Index = enum syslog_facility value; PgBouncer's syslog_facility names. */
const char *const syslog_facility_names[] = {
	"auth",   "authpriv", "daemon", "user",   "local0", "local1", "local2",
	"local3", "local4",   "local5", "local6", "local7", NULL,
};

/*
 * The "how" of a row: RESTART (a change needs a restart), RELOAD (read where it is used, so the
 * new config applies it), or what a running pgmux rebuilds from it (enum config_apply).
 */
#define RESTART (-1)
#define RELOAD CONFIG_APPLY_NONE
#define TLS CONFIG_APPLY_TLS
#define DNS CONFIG_APPLY_DNS
#define LOG CONFIG_APPLY_LOG
#define LOOP CONFIG_APPLY_LOOP

#define KEY(field, t, def, how, help_text, lo, hi)                                                 \
	{                                                                                          \
		.name = #field, .type = (t), .offset = offsetof(struct config, field),             \
		.default_value = (def), .reloadable = (how) != RESTART,                            \
		.apply = (how) == RESTART ? CONFIG_APPLY_NONE : (unsigned)(how),                   \
		.help = (help_text), .min_value = (lo), .max_value = (hi)                          \
	}
#define INT_KEY(field, def, how, lo, hi, help_text) KEY(field, CFG_INT, def, how, help_text, lo, hi)
#define TIME_KEY_HOW(field, def, how, help_text)                                                   \
	KEY(field, CFG_DOUBLE, def, how, help_text, 0, SECONDS_MAX)
#define TIME_KEY(field, def, help_text) TIME_KEY_HOW(field, def, RELOAD, help_text)
#define BOOL_KEY(field, def, how, help_text) KEY(field, CFG_BOOL, def, how, help_text, 0, 1)
#define STR_KEY(field, def, how, help_text) KEY(field, CFG_STRING, def, how, help_text, 0, 0)
/* A password: shown as ******** by SHOW CONFIG and in log lines, never echoed by an error. */
#define SECRET_KEY(field, how, help_text)                                                          \
	{                                                                                          \
		.name = #field, .type = CFG_STRING, .offset = offsetof(struct config, field),      \
		.default_value = "", .reloadable = (how) != RESTART, .secret = true,               \
		.apply = (how) == RESTART ? CONFIG_APPLY_NONE : (unsigned)(how),                   \
		.help = (help_text)                                                                \
	}
#define ENUM_ALIAS_KEY(field, def, names, aliases, how, help_text)                                 \
	{                                                                                          \
		.name = #field, .type = CFG_ENUM, .offset = offsetof(struct config, field),        \
		.default_value = (def), .reloadable = (how) != RESTART,                            \
		.apply = (how) == RESTART ? CONFIG_APPLY_NONE : (unsigned)(how),                   \
		.enum_names = (names), .enum_aliases = (aliases), .help = (help_text)              \
	}
#define ENUM_KEY_HOW(field, def, names, how, help_text)                                            \
	ENUM_ALIAS_KEY(field, def, names, NULL, how, help_text)
#define ENUM_KEY(field, def, names, help_text) ENUM_KEY_HOW(field, def, names, RELOAD, help_text)

const struct config_key config_keys[] = {
	/* listening */
	STR_KEY(listen_addr, "", RESTART,
		"TCP addresses to listen on, comma-separated; * = all; empty = unix socket only"),
	INT_KEY(listen_port, "6432", RESTART, 1, 65535,
		"TCP port; also names the unix socket (.s.PGSQL.<port>)"),
	STR_KEY(unix_socket_dir, "/tmp", RESTART,
		"directory of the listening unix socket; empty = no unix socket"),
	KEY(unix_socket_mode, CFG_MODE, "0777", RESTART, "permissions of the unix socket, in octal",
	    0, 0777),
	INT_KEY(listen_backlog, "128", RESTART, 1, 65535,
		"queue length of connections not yet accepted (listen(2) backlog)"),
	STR_KEY(metrics_listen, "", RESTART,
		"host:port of the HTTP endpoint serving /metrics, /health and /ready; empty = off"),
	STR_KEY(takeover_socket, "", RESTART,
		"unix socket on which a new pgmux (--takeover) takes the listening sockets over; "
		"empty = <unix_socket_dir>/.s.PGSQL.<listen_port>.takeover"),
	BOOL_KEY(tcp_keepalive, "1", LOOP, "turn on TCP keepalive on client and server sockets"),
	INT_KEY(tcp_keepidle, "0", LOOP, 0, INT_MAX,
		"seconds a TCP connection is idle before the first keepalive probe; 0 = the OS's"),
	INT_KEY(tcp_keepintvl, "0", LOOP, 0, INT_MAX,
		"seconds between keepalive probes; 0 = the OS's"),
	INT_KEY(tcp_keepcnt, "0", LOOP, 0, INT_MAX,
		"unanswered keepalive probes before the connection is dropped; 0 = the OS's"),
	INT_KEY(tcp_user_timeout, "0", LOOP, 0, INT_MAX,
		"milliseconds sent data may stay unacknowledged before the connection is dropped "
		"(TCP_USER_TIMEOUT); 0 = the OS's"),
	INT_KEY(tcp_defer_accept, "0", RESTART, 0, INT_MAX,
		"nonzero: TCP listeners wake pgmux only once a client has sent data, for up to 45 s "
		"(Linux TCP_DEFER_ACCEPT)"),

	BOOL_KEY(so_reuseport, "0", RESTART,
		 "open TCP listeners with SO_REUSEPORT, so several pgmux processes can share one "
		 "port (give each its own peer_id and unix_socket_dir)"),
	INT_KEY(peer_id, "0", RESTART, 0, 16383,
		"this process's number among the processes of [peers]; cancel keys carry it so a "
		"cancel that reaches another peer is forwarded here; 0 = no peering"),

	/* pooling */
	ENUM_KEY(pool_mode, "session", pool_mode_names,
		 "when a server goes back to the pool: session, transaction or statement"),
	INT_KEY(max_client_conn, "100", RELOAD, 1, INT_MAX,
		"most client connections pgmux accepts at once, counted from accept; admin_users have "
		"2 more for the admin console"),
	INT_KEY(max_client_conn_per_addr, "0", RELOAD, 0, INT_MAX,
		"most client connections from one source address (TCP), counted from accept; "
		"0 = no limit"),
	INT_KEY(default_pool_size, "20", RELOAD, 1, INT_MAX,
		"server connections per database/user pair"),
	INT_KEY(min_pool_size, "0", RELOAD, 0, INT_MAX,
		"keep at least this many server connections open per pool, even when idle"),
	INT_KEY(reserve_pool_size, "0", RELOAD, 0, INT_MAX,
		"extra server connections a pool may open when clients wait too long; 0 = none"),
	TIME_KEY(reserve_pool_timeout, "5",
		 "seconds a client waits before the reserve pool is used"),
	INT_KEY(max_db_connections, "0", RELOAD, 0, INT_MAX,
		"most server connections per database, over all its pools; 0 = no limit"),
	INT_KEY(max_user_connections, "0", RELOAD, 0, INT_MAX,
		"most server connections per user, over all its pools; 0 = no limit"),

	/* server connections */
	STR_KEY(server_reset_query, "DISCARD ALL", RELOAD,
		"query run on a server before another client gets it; empty = none"),
	BOOL_KEY(
		server_fast_close, "0", RELOAD,
		"session mode: close a server marked for closing (RECONNECT, demoted primary) and its "
		"client when the client's transaction ends, not at the end of the session"),
	BOOL_KEY(server_reset_query_always, "0", RELOAD,
		 "run server_reset_query in every pool mode, not only in session mode"),
	STR_KEY(server_check_query, "select 1", RELOAD,
		"query that checks an idle server before reuse; empty = no check"),
	TIME_KEY(server_check_delay, "30",
		 "seconds a released server is trusted without a check; 0 = always check"),
	TIME_KEY(server_lifetime, "3600",
		 "close a server connection older than this once it is idle; 0 = use once"),
	TIME_KEY(server_idle_timeout, "600",
		 "close a server connection idle for this long; 0 = never"),
	TIME_KEY(server_connect_timeout, "15",
		 "seconds allowed for a server connection and login to complete"),
	TIME_KEY(server_login_retry, "15",
		 "seconds to wait after a failed server connection or login before retrying"),
	STR_KEY(server_auth_methods, "auto", RELOAD,
		"how servers may make pgmux prove a password: a list of scram-sha-256, md5, "
		"password, none; auto = all but password, which only a verified certificate allows"),
	INT_KEY(server_scram_max_iterations, "100000", RELOAD, 1, 10000000,
		"most SCRAM iterations pgmux computes for a server login"),
	KEY(server_max_held_message, CFG_SIZE, "1MB", RELOAD,
	    "largest server message pgmux holds whole to read it (errors, parameters, login)", 8192,
	    2147483647),

	/* clients */
	TIME_KEY(
		client_startup_timeout, "5",
		"close a client that has not sent its startup packet (TLS handshake included) after "
		"this long; 0 = never"),
	TIME_KEY(client_login_timeout, "60",
		 "close a client that has not logged in after this long; 0 = never"),
	TIME_KEY(client_idle_timeout, "0", "close a client idle for this long; 0 = never"),
	TIME_KEY(idle_transaction_timeout, "0",
		 "close a client idle inside a transaction for this long; 0 = never"),
	TIME_KEY(query_timeout, "0", "cancel queries running longer than this; 0 = never"),
	TIME_KEY(query_wait_timeout, "120",
		 "close a client that waited this long for a server; 0 = wait forever"),
	STR_KEY(ignore_startup_parameters, "", RELOAD,
		"startup parameters accepted from clients and not passed on, comma-separated"),
	BOOL_KEY(application_name_add_host, "0", RELOAD,
		 "append the client's address and port to its application_name"),

	/* protocol */
	INT_KEY(max_packet_size, "2147483647", RELOAD, 1024, INT_MAX,
		"largest protocol message, in bytes, pgmux lets through"),
	INT_KEY(pkt_buf, "16384", LOOP, 4096, 16777216,
		"size in bytes of each connection's relay buffer"),
	INT_KEY(max_prepared_statements, "200", RELOAD, 0, 100000,
		"named prepared statements kept per server in transaction/statement mode (0 = off)"),
	INT_KEY(max_client_prepared_statements, "1000", RELOAD, 1, 1000000,
		"named prepared statements one client may hold in transaction/statement mode"),
	INT_KEY(max_client_prepared_bytes, "8388608", RELOAD, 1024, INT_MAX,
		"bytes of statement text and names one client's prepared statements may hold"),
	INT_KEY(max_total_prepared_statements, "100000", RELOAD, 1, 10000000,
		"distinct named prepared statements pgmux holds for all clients together"),

	/* authentication */
	ENUM_ALIAS_KEY(
		auth_type, "md5", auth_type_names, auth_type_aliases, RELOAD,
		"client authentication: trust, any, password (or plain), md5, scram-sha-256, "
		"cert or hba"),
	STR_KEY(auth_file, "", RELOAD, "file of \"user\" \"password\" lines for authentication"),
	STR_KEY(auth_hba_file, "", RELOAD,
		"pg_hba.conf-style rules used when auth_type = hba (read again on RELOAD)"),
	STR_KEY(auth_query,
		"SELECT usename, passwd FROM pg_shadow WHERE usename = $1 AND "
		"(valuntil IS NULL OR valuntil > now())",
		RELOAD,
		"query returning (user, secret) for a user not in auth_file; $1 is the user name"),
	STR_KEY(auth_user, "", RELOAD,
		"user that runs auth_query (its password from auth_file); empty = no auth_query"),
	STR_KEY(auth_dbname, "", RELOAD,
		"database entry auth_query connects to; empty = the one the client asked for"),
	TIME_KEY(
		auth_cache_ttl, "60",
		"seconds an auth_query secret is reused (unknown users and failures: 5); 0 = always ask"),
	INT_KEY(auth_kdf_budget, "100", RELOAD, 1, 1000,
		"milliseconds of each second that password checks not answered from the cache may "
		"spend in PBKDF2; beyond, such logins are refused (53300)"),
	STR_KEY(admin_users, "", RELOAD,
		"users allowed every admin console command, comma-separated"),
	STR_KEY(stats_users, "", RELOAD,
		"users allowed the admin console's read-only SHOW commands, comma-separated"),

	/* TLS towards clients */
	ENUM_KEY_HOW(client_tls_sslmode, "disable", sslmode_names, TLS,
		     "TLS for clients: disable, allow, prefer, require, verify-ca or verify-full"),
	STR_KEY(client_tls_key_file, "", TLS, "private key pgmux presents to clients (PEM)"),
	STR_KEY(client_tls_cert_file, "", TLS, "certificate pgmux presents to clients (PEM)"),
	STR_KEY(client_tls_ca_file, "", TLS,
		"CA certificates that client certificates are checked against (verify-ca/full)"),
	STR_KEY(client_tls_protocols, "secure", TLS,
		"TLS versions allowed for clients: secure (1.2 and 1.3), all, legacy, or a list"),
	STR_KEY(client_tls_ciphers, "default", TLS,
		"OpenSSL cipher list for client TLS 1.2 and older; default = OpenSSL's"),
	STR_KEY(client_tls13_ciphers, "", TLS,
		"OpenSSL TLS 1.3 cipher suites for clients; empty = OpenSSL's"),
	STR_KEY(client_tls_dheparams, "auto", TLS,
		"DH parameters for client TLS: none, auto, legacy, or a PEM file"),
	STR_KEY(client_tls_ecdhcurve, "auto", TLS,
		"elliptic curve groups for client TLS: none, auto, or a list (e.g. X25519:P-256)"),

	/* TLS towards servers */
	ENUM_KEY_HOW(server_tls_sslmode, "prefer", sslmode_names, TLS,
		     "TLS to servers: disable, allow, prefer, require, verify-ca or verify-full"),
	STR_KEY(server_tls_ca_file, "", TLS,
		"CA certificates server certificates are checked against; empty = the system's"),
	STR_KEY(server_tls_key_file, "", TLS, "private key for a client certificate to servers"),
	STR_KEY(server_tls_cert_file, "", TLS, "client certificate pgmux presents to servers"),
	STR_KEY(server_tls_protocols, "secure", TLS,
		"TLS versions allowed towards servers: secure, all, legacy, or a list"),
	STR_KEY(server_tls_ciphers, "default", TLS,
		"OpenSSL cipher list towards servers; default = OpenSSL's"),

	/* DNS */
	TIME_KEY_HOW(dns_max_ttl, "15", DNS,
		     "seconds a resolved host name is reused before asking again"),
	TIME_KEY_HOW(dns_nxdomain_ttl, "15", DNS,
		     "seconds a host name that did not resolve is remembered"),
	STR_KEY(dns_servers, "", RESTART,
		"DNS servers to ask, as ip or ip:port, comma-separated; empty = the system's"),

	/* logging and process */
	STR_KEY(logfile, "", LOG, "log file, reopened on reload; empty = stderr only"),
	STR_KEY(pidfile, "", RESTART, "file pgmux writes its process id to; empty = none"),
	BOOL_KEY(syslog, "0", RESTART, "also log to syslog"),
	STR_KEY(syslog_ident, "pgmux", RESTART, "program name in syslog messages"),
	ENUM_KEY_HOW(syslog_facility, "daemon", syslog_facility_names, RESTART,
		     "syslog facility: auth, authpriv, daemon, user or local0 to local7"),
	BOOL_KEY(log_connections, "1", RELOAD, "log every successful client login"),
	BOOL_KEY(log_disconnections, "1", RELOAD,
		 "log every client disconnection, with its reason"),
	BOOL_KEY(log_pooler_errors, "1", RELOAD, "log the errors pgmux sends to clients"),
	INT_KEY(verbose, "0", LOG, 0, 3, "more detail in the log: 0 to 3"),

	/* routing defaults for [cluster.NAME] sections */
	ENUM_KEY(
		read_from, "replicas", read_from_names,
		"where reads of a routed database go: replicas, any (replicas and primary) or primary"),
	ENUM_KEY(
		load_balance, "round_robin", load_balance_names,
		"how reads pick a replica: round_robin, least_connections or random (weights apply)"),
	KEY(max_replica_lag, CFG_SIZE, "16MB", RELOAD,
	    "skip replicas further behind the primary than this many bytes of WAL; 0 = no limit", 0,
	    1e15),
	TIME_KEY(max_replica_lag_time, "0",
		 "skip replicas whose replay is this many seconds behind; 0 = no limit"),
	ENUM_KEY(read_fallback, "primary", read_fallback_names,
		 "when no replica is usable, reads go to the primary or fail with an error"),
	BOOL_KEY(read_your_writes, "0", RELOAD,
		 "after a client's write, its reads go only to replicas that have replayed it"),
	TIME_KEY(
		primary_wait_timeout, "30",
		"seconds a write waits for a confirmed primary (switchover, failover) before failing"),
	TIME_KEY(ban_time, "10", "seconds a member that failed a health check gets no reads"),
	KEY(health_check_interval, CFG_DOUBLE, "1", RELOAD,
	    "seconds between health checks of each cluster member", 0.05, 3600),
	KEY(health_check_timeout, CFG_DOUBLE, "3", RELOAD,
	    "seconds a health check (connect and query) may take", 0.1, 3600),
	KEY(patroni_poll_interval, CFG_DOUBLE, "1", RELOAD,
	    "seconds between polls of Patroni's /cluster", 0.05, 3600),
	STR_KEY(health_check_user, "", RELOAD,
		"user the health checks log in as; empty = the user of the first database entry "
		"routed through the cluster that names one, else postgres"),
	SECRET_KEY(health_check_password, RELOAD,
		   "its password; empty = that database entry's, else its plain-text password in "
		   "auth_file, if any"),
	STR_KEY(health_check_dbname, "", RELOAD,
		"database the health checks connect to; empty = that database entry's, else postgres"),
};

const size_t config_key_count = sizeof(config_keys) / sizeof(config_keys[0]);

#define ENTRY_KEY(strct, field, t, def, lo, hi, help_text)                                         \
	{                                                                                          \
		.name = #field, .type = (t), .offset = offsetof(struct strct, field),              \
		.default_value = (def), .reloadable = true, .help = (help_text),                   \
		.min_value = (lo), .max_value = (hi)                                               \
	}
#define ENTRY_SECRET(strct, field, help_text)                                                      \
	{                                                                                          \
		.name = #field, .type = CFG_STRING, .offset = offsetof(struct strct, field),       \
		.default_value = "", .reloadable = true, .secret = true, .help = (help_text)       \
	}
#define ENTRY_MODE_KEY(strct)                                                                      \
	{                                                                                          \
		.name = "pool_mode", .type = CFG_ENUM,                                             \
		.offset = offsetof(struct strct, pool_mode), .reloadable = true,                   \
		.enum_names = pool_mode_names,                                                     \
		.help = "pool mode for this entry; unset = [pgmux] pool_mode"                      \
	}
#define DB_STR(field, help_text) ENTRY_KEY(db_entry, field, CFG_STRING, "", 0, 0, help_text)
#define DB_COUNT(field, lo, help_text)                                                             \
	ENTRY_KEY(db_entry, field, CFG_INT, NULL, lo, INT_MAX, help_text)

const struct config_key config_db_keys[] = {
	DB_STR(host, "server host name or address, or a unix socket directory (starts with /); "
		     "a comma-separated list shares the connections"),
	ENTRY_KEY(db_entry, port, CFG_INT, "5432", 1, 65535, "server port"),
	DB_STR(dbname, "database name on the server; unset = the entry's name"),
	DB_STR(user, "log in to the server as this user; unset = the client's user"),
	ENTRY_SECRET(db_entry, password, "password for user; unset = taken from auth_file"),
	DB_COUNT(pool_size, 1, "server connections per pool; unset = default_pool_size"),
	DB_COUNT(min_pool_size, 0, "idle server connections kept per pool; unset = min_pool_size"),
	DB_COUNT(reserve_pool, 0, "reserve connections per pool; unset = reserve_pool_size"),
	ENTRY_MODE_KEY(db_entry),
	DB_COUNT(max_db_connections, 0,
		 "most server connections to this database; unset = max_db_connections"),
	DB_STR(client_encoding, "client_encoding set on new server connections"),
	DB_STR(datestyle, "DateStyle set on new server connections"),
	DB_STR(timezone, "TimeZone set on new server connections"),
	DB_STR(application_name, "application_name set on new server connections"),
	DB_STR(connect_query, "query run once on every new server connection"),
	DB_STR(cluster, "route through this [cluster.NAME] instead of host= and port="),
	ENTRY_KEY(db_entry, read_only, CFG_BOOL, "0", 0, 1,
		  "routed or sharded: its clients only read, so /ready does not wait for a primary "
		  "for it"),
	{ .name = "load_balance_hosts",
	  .type = CFG_ENUM,
	  .offset = offsetof(struct db_entry, load_balance_hosts),
	  .default_value = "round-robin",
	  .reloadable = true,
	  .enum_names = host_balance_names,
	  .help = "with several hosts: round-robin, or disable (the same one until it fails)" },
	DB_STR(auth_user, "auth_query for clients of this database runs as this user; "
			  "unset = [pgmux] auth_user"),
	DB_STR(auth_dbname, "database entry the auth_query of this database's clients runs in; "
			    "unset = [pgmux] auth_dbname"),
	DB_STR(shards, "shard this database by the [shards.NAME] section of that name, instead "
		       "of host= or cluster="),
};

const size_t config_db_key_count = sizeof(config_db_keys) / sizeof(config_db_keys[0]);

const struct config_key config_user_keys[] = {
	ENTRY_MODE_KEY(user_entry),
	ENTRY_KEY(user_entry, max_user_connections, CFG_INT, NULL, 0, INT_MAX,
		  "most server connections for this user; unset = max_user_connections"),
};

const size_t config_user_key_count = sizeof(config_user_keys) / sizeof(config_user_keys[0]);

const struct config_key config_peer_keys[] = {
	ENTRY_KEY(peer_entry, host, CFG_STRING, "", 0, 0,
		  "the peer's address, host name, or unix socket directory (starts with /)"),
	ENTRY_KEY(peer_entry, port, CFG_INT, "6432", 1, 65535, "the peer's port"),
	ENTRY_KEY(peer_entry, pool_size, CFG_INT, NULL, 1, INT_MAX,
		  "cancel requests on their way to this peer at once; unset = default_pool_size"),
};

const size_t config_peer_key_count = sizeof(config_peer_keys) / sizeof(config_peer_keys[0]);

#define CL_KEY(field, t, lo, hi, help_text)                                                        \
	ENTRY_KEY(cluster_entry, field, t, NULL, lo, hi, help_text)
#define CL_STR(field, help_text) ENTRY_KEY(cluster_entry, field, CFG_STRING, "", 0, 0, help_text)
#define CL_ENUM(field, names, help_text)                                                           \
	{                                                                                          \
		.name = #field, .type = CFG_ENUM, .offset = offsetof(struct cluster_entry, field), \
		.reloadable = true, .enum_names = (names), .help = (help_text)                     \
	}

const struct config_key config_cluster_keys[] = {
	CL_STR(patroni, "Patroni REST API base URLs (http or https), space-separated"),
	CL_STR(hosts,
	       "or a static member list, host:port space-separated; roles from health checks"),
	CL_STR(weights, "read weights, member:weight space-separated (member name or host:port)"),
	CL_STR(patroni_user, "HTTP basic-auth user for the Patroni REST API"),
	ENTRY_SECRET(cluster_entry, patroni_password,
		     "HTTP basic-auth password for the Patroni REST API"),
	CL_STR(patroni_ca_file,
	       "CA certificates for https Patroni endpoints; empty = the system's"),
	CL_STR(patroni_cert_file, "client certificate for the Patroni REST API"),
	CL_STR(patroni_key_file, "client certificate key for the Patroni REST API"),
	CL_ENUM(read_from, read_from_names, "as [pgmux] read_from, for this cluster"),
	CL_ENUM(load_balance, load_balance_names, "as [pgmux] load_balance, for this cluster"),
	CL_KEY(max_replica_lag, CFG_SIZE, 0, 1e15, "as [pgmux] max_replica_lag, for this cluster"),
	CL_KEY(max_replica_lag_time, CFG_DOUBLE, 0, SECONDS_MAX,
	       "as [pgmux] max_replica_lag_time, for this cluster"),
	CL_ENUM(read_fallback, read_fallback_names, "as [pgmux] read_fallback, for this cluster"),
	CL_KEY(read_your_writes, CFG_BOOL, 0, 1, "as [pgmux] read_your_writes, for this cluster"),
	CL_KEY(primary_wait_timeout, CFG_DOUBLE, 0, SECONDS_MAX,
	       "as [pgmux] primary_wait_timeout, for this cluster"),
	CL_KEY(ban_time, CFG_DOUBLE, 0, SECONDS_MAX, "as [pgmux] ban_time, for this cluster"),
	CL_KEY(health_check_interval, CFG_DOUBLE, 0.05, 3600,
	       "as [pgmux] health_check_interval, for this cluster"),
	CL_KEY(health_check_timeout, CFG_DOUBLE, 0.1, 3600,
	       "as [pgmux] health_check_timeout, for this cluster"),
	CL_KEY(patroni_poll_interval, CFG_DOUBLE, 0.05, 3600,
	       "as [pgmux] patroni_poll_interval, for this cluster"),
	CL_STR(health_check_user, "as [pgmux] health_check_user, for this cluster"),
	ENTRY_SECRET(cluster_entry, health_check_password,
		     "as [pgmux] health_check_password, for this cluster"),
	CL_STR(health_check_dbname, "as [pgmux] health_check_dbname, for this cluster"),
};

const size_t config_cluster_key_count = sizeof(config_cluster_keys) /
					sizeof(config_cluster_keys[0]);

static const char *const shard_key_type_names[] = { "int", "text", "uuid", NULL };
static const char *const shard_key_type_aliases[] = {
	"bigint",   "int", "int8", "int", "integer", "int",  "int4", "int",
	"smallint", "int", "int2", "int", "varchar", "text", NULL,
};

static const char *const etcd_outage_names[] = { "serve", "refuse", NULL };

#define SH_STR(field, def, help_text)                                                              \
	ENTRY_KEY(shards_entry, field, CFG_STRING, def, 0, 0, help_text)

const struct config_key config_shards_keys[] = {
	SH_STR(key, "", "the key column: statements name it (WHERE key = ..., INSERT (key, ...))"),
	{ .name = "key_type",
	  .type = CFG_ENUM,
	  .offset = offsetof(struct shards_entry, key_type),
	  .default_value = "int",
	  .reloadable = true,
	  .enum_names = shard_key_type_names,
	  .enum_aliases = shard_key_type_aliases,
	  .help = "the key column's type: int (int2, int4, int8), text or uuid" },
	ENTRY_KEY(shards_entry, buckets, CFG_INT, "16384", 1, 1 << 30,
		  "buckets of the map, a power of two: must be the map's"),
	ENTRY_KEY(shards_entry, seed, CFG_INT, "0", 0, INT_MAX,
		  "seed of the bucket hash: must be the map's"),
	SH_STR(map, "",
	       "the shard map file (pgmux --shard-map create writes one); RELOAD reads it again"),
	SH_STR(no_shard_key, "error",
	       "work that names no key: error; all (a read goes to every shard); "
	       "or the name of a shard that takes it"),
	ENTRY_KEY(
		shards_entry, fanout_limit, CFG_INT, "4", 1, 10000,
		"reads sent to every shard (no_shard_key = all) running at once; more are refused"),
	{ .name = "etcd_outage",
	  .type = CFG_ENUM,
	  .offset = offsetof(struct shards_entry, etcd_outage),
	  .default_value = "serve",
	  .reloadable = true,
	  .enum_names = etcd_outage_names,
	  .help = "a map in etcd this pgmux cannot follow: serve (with the map in force) or refuse "
		  "(the section's work, until etcd answers again and its map is read)" },
	ENTRY_KEY(shards_entry, move_hold_timeout, CFG_DOUBLE, "10", 0.1, 3600,
		  "seconds a bucket move may hold the moving keys' work before it gives up and "
		  "rolls back"),
	SH_STR(move_user, "",
	       "the role bucket moves log in as on both shards (empty: each cluster's "
	       "health_check_user); it creates the subscription, so a superuser in PostgreSQL 15"),
	ENTRY_SECRET(shards_entry, move_password, "move_user's password (empty: none, or .pgpass)"),
};

const size_t config_shards_key_count = sizeof(config_shards_keys) / sizeof(config_shards_keys[0]);
