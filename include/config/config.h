/*
 * config: pgmux's configuration, loaded from an INI file (inih).
 *
 * One key table (config/keys.c) names every key of the [pgmux] section with its type, default,
 * whether RELOAD may change it, what a running pgmux rebuilds when it does, and a help line; the
 * struct field has the key's name. A struct config is an immutable snapshot once in use: a file
 * is loaded into a fresh one, and admin SET changes a clone (config_clone, config_set_value);
 * either is validated whole (config_validate, which also resolves inherited values) and swapped
 * in only when valid, so a bad file or value never half-applies. This module is pure: no
 * sockets, no libev, no globals besides the constant key tables.
 */
#ifndef PGMUX_CONFIG_CONFIG_H
#define PGMUX_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct hba;
struct userlist;

enum pool_mode {
	POOL_MODE_INHERIT = -1, /* a [databases] / [users] entry that does not set pool_mode */
	POOL_MODE_SESSION = 0,
	POOL_MODE_TRANSACTION,
	POOL_MODE_STATEMENT,
};

enum auth_type {
	AUTH_TRUST = 0,
	AUTH_ANY, /* like trust, and the user name from the client is ignored for pools */
	AUTH_PASSWORD,
	AUTH_MD5,
	AUTH_SCRAM_SHA_256,
	AUTH_CERT,
	AUTH_HBA,
};

/* client_tls_sslmode / server_tls_sslmode; same values as ev/tls.h enum tls_mode. */
enum tls_sslmode {
	SSLMODE_DISABLE = 0,
	SSLMODE_ALLOW,
	SSLMODE_PREFER,
	SSLMODE_REQUIRE,
	SSLMODE_VERIFY_CA,
	SSLMODE_VERIFY_FULL,
};

/* One [databases] entry. Strings are never NULL ("" when unset); ints are -1 when unset. */
struct db_entry {
	char *name;             /* the name clients connect to; "*" is the fallback entry */
	char *host;             /* host name, address, or unix socket directory (starts with '/') */
	int port;               /* default 5432 */
	char *dbname;           /* database on the server; "" = same as name */
	char *user;             /* force this server user; "" = the client's user */
	char *password;         /* password for server logins; "" = look in auth_file */
	int pool_size;          /* -1 = default_pool_size */
	int min_pool_size;      /* -1 = min_pool_size */
	int reserve_pool;       /* -1 = reserve_pool_size */
	int pool_mode;          /* enum pool_mode; POOL_MODE_INHERIT = [pgmux] pool_mode */
	int max_db_connections; /* -1 = max_db_connections */
	char *client_encoding;  /* server-side defaults applied at login ("" = server's) */
	char *datestyle;
	char *timezone;
	char *application_name;
	char *connect_query;    /* optional query run once on every new server connection */
	char *cluster;          /* a [cluster.NAME] this database is routed through; "" = host= */
	bool read_only;         /* its clients only read: /ready needs no primary for it */
	int load_balance_hosts; /* enum host_balance: using a comma-separated host list */
	char *auth_user;        /* runs auth_query for this database's clients; "" = [pgmux]'s */
	char *auth_dbname;      /* entry auth_query runs in for this database; "" = [pgmux]'s */
	char *shards;           /* a [shards.NAME] this database is sharded by; "" = not sharded */
	/*
	 * Not keys: set on the entries config_validate() adds for a sharded entry, one per shard,
	 * named "ENTRY.SHARD" and routed through the shard's cluster. "" and -1 elsewhere.
	 */
	char *shard_parent; /* the sharded entry's name */
	int shard_index;    /* the shard's position in its [shards.NAME] section */
};

/* load_balance_hosts: how a database entry's comma-separated host list is used. */
enum host_balance {
	HOST_BALANCE_ROUND_ROBIN, /* each new server connection goes to the next host */
	HOST_BALANCE_DISABLE,     /* the same host until a connection to it fails */
};

/* read_from: where reads may go. */
enum read_from { READ_FROM_REPLICAS = 0, READ_FROM_ANY, READ_FROM_PRIMARY };

/* The names of the syslog_facility values, NULL-terminated ("daemon", "local0", ...). */
extern const char *const syslog_facility_names[];
/* load_balance: how a replica is chosen among the usable ones. */
enum load_balance { LB_ROUND_ROBIN = 0, LB_LEAST_CONNECTIONS, LB_RANDOM };
/* read_fallback: what a read does when no replica is usable. */
enum read_fallback { FALLBACK_PRIMARY = 0, FALLBACK_ERROR };

/*
 * A [cluster.NAME] section: the members of one replicated PostgreSQL cluster (from Patroni or a
 * static list) and its routing policy. After loading, every routing field holds its effective
 * value: a key the section does not set takes the [pgmux] key of the same name.
 */
struct cluster_entry {
	char *name;
	char *patroni;      /* Patroni REST base URLs, separated by spaces or commas */
	char *hosts;        /* or a static list of host:port; roles found by health checks */
	char *weights;      /* "member:weight ..." for reads (member name or host:port) */
	char *patroni_user; /* HTTP basic auth towards Patroni; "" = none */
	char *patroni_password;
	char *patroni_ca_file;
	char *patroni_cert_file;
	char *patroni_key_file;
	int read_from;               /* enum read_from */
	int load_balance;            /* enum load_balance */
	double max_replica_lag;      /* bytes; 0 = no limit */
	double max_replica_lag_time; /* seconds; 0 = no limit */
	int read_fallback;           /* enum read_fallback */
	bool read_your_writes;
	double primary_wait_timeout;
	double ban_time;
	double health_check_interval;
	double health_check_timeout;
	double patroni_poll_interval;
	char *health_check_user;
	char *health_check_password;
	char *health_check_dbname;
	/* parsing only: which fields the section set (bit = row of config_cluster_keys) */
	unsigned long long set_mask;
};

/* One shard.NAME = cluster=CLUSTER line of a [shards.NAME] section. */
struct shard_entry {
	char *name;
	char *cluster;
};

/* key_type: the type of a shard key column, hashed as PostgreSQL hashes that type. */
enum shard_key_kind { SHARD_KIND_INT = 0, SHARD_KIND_TEXT, SHARD_KIND_UUID };

/* A shard map as read with a config: shared by a config and its clones (see config_clone). */
struct loaded_shard_map {
	int refs;
	struct shard_map *map;
	int *shard_of; /* [map->n_shards]: each map shard's index in the section */
};

/*
 * A [shards.NAME] section: how the databases that name it (shards=NAME) are split. A key value
 * falls in bucket hash(key, seed) & (buckets - 1), PostgreSQL's own hash of key_type; the map
 * read from map= says which shard holds each bucket; each shard is a [cluster.NAME].
 */
struct shards_entry {
	char *name;
	char *key;                /* the key column */
	int key_type;             /* enum shard_key_kind */
	int buckets;              /* a power of two, as the map's */
	int seed;                 /* as the map's */
	char *map;                /* the shard map file, or etcd:URL/KEY (read by reshard/) */
	char *no_shard_key;       /* "error", "all", or a shard's name: where keyless work goes */
	int fanout_limit;         /* no_shard_key = all: reads to every shard at once */
	double move_hold_timeout; /* seconds a move's hold may last before the move aborts */
	int etcd_outage;          /* enum etcd_outage: a map in etcd that cannot be followed */
	char *move_user;          /* moves log in as this ("": each cluster's health-check user) */
	char *move_password;
	struct shard_entry *shards; /* in the order written */
	int n_shards;
	struct loaded_shard_map *loaded; /* a map file as read with the config; NULL for etcd: */
	/* parsing only: which fields the section set (bit = row of config_shards_keys) */
	unsigned long long set_mask;
};

enum etcd_outage {
	ETCD_OUTAGE_SERVE,  /* go on with the map in force */
	ETCD_OUTAGE_REFUSE, /* refuse the section's work until registered again (movecoord) */
};

/* One [users] entry. */
struct user_entry {
	char *name;
	int pool_mode;            /* enum pool_mode; POOL_MODE_INHERIT when unset */
	int max_user_connections; /* -1 = max_user_connections */
};

/* One [peers] entry: "PEER_ID = host=... port=... pool_size=..." */
struct peer_entry {
	int id;        /* 1..16383, the peer_id of that process */
	char *host;    /* address, name, or unix socket directory (starts with '/') */
	int port;      /* default 6432 */
	int pool_size; /* -1 = default_pool_size */
};

/*
 * The [pgmux] section ([pgbouncer] is read as an alias). Times are seconds (fractions allowed,
 * 0 disables the timeout where the docs say so); sizes are bytes; strings are never NULL.
 */
struct config {
	char *config_file;

	/* listening */
	char *listen_addr; /* comma-separated addresses, "*" = all; "" = unix socket only */
	int listen_port;
	char *unix_socket_dir; /* "" = no unix socket */
	int unix_socket_mode;
	int listen_backlog;
	char *metrics_listen; /* host:port of the /metrics HTTP endpoint; "" = off */
	char *takeover_socket; /* "" = <unix_socket_dir>/.s.PGSQL.<port>.takeover (none without a dir) */
	bool tcp_keepalive;
	int tcp_keepidle;
	int tcp_keepintvl;
	int tcp_keepcnt;
	int tcp_user_timeout;
	int tcp_defer_accept; /* nonzero: TCP_DEFER_ACCEPT on TCP listeners (Linux) */
	bool so_reuseport;    /* SO_REUSEPORT on TCP listeners: processes share the port */
	int peer_id;          /* this process in [peers]; 0 = no peering */

	/* pooling */
	int pool_mode; /* enum pool_mode */
	int max_client_conn;
	int max_client_conn_per_addr;
	int default_pool_size;
	int min_pool_size;
	int reserve_pool_size;
	double reserve_pool_timeout;
	int max_db_connections;
	int max_user_connections;

	/* server connections */
	char *server_reset_query;
	bool server_reset_query_always;
	bool server_fast_close; /* session mode: close a server due for closing at txn end */
	char *server_check_query;
	double server_check_delay;
	double server_lifetime;
	double server_idle_timeout;
	double server_connect_timeout;
	double server_login_retry;
	char *server_auth_methods; /* see config_server_auth_methods() */
	int server_scram_max_iterations;
	double server_max_held_message; /* bytes */

	/* clients */
	double client_startup_timeout;
	double client_login_timeout;
	double client_idle_timeout;
	double idle_transaction_timeout;
	double query_timeout;
	double query_wait_timeout;
	char *ignore_startup_parameters; /* comma-separated */
	bool application_name_add_host;

	/* protocol */
	int max_packet_size;
	int max_prepared_statements;        /* per server; 0 = no prepared-statement tracking */
	int max_client_prepared_statements; /* names one client may hold */
	int max_client_prepared_bytes;      /* their names and definitions, in bytes */
	int max_total_prepared_statements;  /* distinct statements in the registry */
	int pkt_buf;

	/* authentication */
	int auth_type;             /* enum auth_type */
	char *auth_file;           /* "user" "password" lines (auth/userlist.h); "" = none */
	char *auth_hba_file;       /* pg_hba.conf-style rules for auth_type = hba; "" = none */
	char *auth_query;          /* fetches (name, secret) for users not in auth_file */
	char *auth_user;           /* runs auth_query; "" = auth_query off */
	char *auth_dbname;         /* database auth_query runs in; "" = the client's database */
	double auth_cache_ttl;     /* seconds an auth_query answer is reused */
	int auth_kdf_budget;       /* ms of PBKDF2 a second for uncached password checks */
	struct hba *hba;           /* auth_hba_file as loaded with this config; NULL when unset */
	struct userlist *userlist; /* auth_file as loaded with this config; NULL when unset */

	/* TLS towards clients (pgmux is the TLS server) */
	int client_tls_sslmode; /* enum tls_sslmode */
	char *client_tls_key_file;
	char *client_tls_cert_file;
	char *client_tls_ca_file;
	char *client_tls_protocols;
	char *client_tls_ciphers;
	char *client_tls13_ciphers;
	char *client_tls_dheparams;
	char *client_tls_ecdhcurve;

	/* TLS towards servers (pgmux is the TLS client) */
	int server_tls_sslmode; /* enum tls_sslmode */
	char *server_tls_ca_file;
	char *server_tls_key_file;
	char *server_tls_cert_file;
	char *server_tls_protocols;
	char *server_tls_ciphers;

	/* DNS */
	double dns_max_ttl;      /* seconds a resolved address is reused */
	double dns_nxdomain_ttl; /* seconds a failed lookup is remembered */
	char *dns_servers;       /* "" = the system's resolvers; else "ip[:port],..." */
	char *admin_users;       /* comma-separated */
	char *stats_users;       /* comma-separated */

	/* logging and process */
	char *logfile;
	char *pidfile;
	bool syslog;
	char *syslog_ident;
	int syslog_facility; /* index into syslog_facility_names */
	bool log_connections;
	bool log_disconnections;
	bool log_pooler_errors;
	int verbose;

	/* routing defaults for [cluster.NAME] sections (see struct cluster_entry) */
	int read_from;
	int load_balance;
	double max_replica_lag;
	double max_replica_lag_time;
	int read_fallback;
	bool read_your_writes;
	double primary_wait_timeout;
	double ban_time;
	double health_check_interval;
	double health_check_timeout;
	double patroni_poll_interval;
	char *health_check_user;
	char *health_check_password;
	char *health_check_dbname;

	/* [databases], [users] and [cluster.NAME] */
	struct db_entry *dbs;
	int n_dbs;
	struct user_entry *users;
	int n_users;
	struct cluster_entry *clusters;
	int n_clusters;
	struct shards_entry *shard_sets;
	int n_shard_sets;
	struct peer_entry *peers;
	int n_peers;

	/*
	 * What config_load() accepted but the reader should know ("FILE:LINE: key: text"), for
	 * the caller to log; owned by the config.
	 */
	char **warnings;
	int n_warnings;
};

enum config_type {
	CFG_INT,
	CFG_BOOL,
	CFG_DOUBLE,
	CFG_STRING,
	CFG_ENUM,
	CFG_MODE, /* an int holding file permission bits, written in octal ("0777") */
	CFG_SIZE, /* a double holding bytes, written with an optional unit: 16MB, 512kB, 1GB */
};

/*
 * What a running pgmux rebuilds from a key when the key changes (a mask). Every other setting is
 * read from the config in force where it is used, so swapping the config in applies it. RELOAD
 * rebuilds everything; admin SET only what its key names.
 */
enum config_apply {
	CONFIG_APPLY_NONE = 0,
	CONFIG_APPLY_TLS = 1u << 0,  /* the client and server TLS contexts */
	CONFIG_APPLY_DNS = 1u << 1,  /* the resolver cache's lifetimes */
	CONFIG_APPLY_LOG = 1u << 2,  /* log verbosity and log file */
	CONFIG_APPLY_LOOP = 1u << 3, /* the loop's relay buffer size */
	CONFIG_APPLY_ALL = (1u << 4) - 1,
};

/* One row of the key table. */
struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;             /* of the field in struct config */
	const char *default_value; /* as it would be written in the file */
	bool reloadable;           /* false: a change needs a restart (RELOAD warns and keeps it) */
	bool secret;               /* a password: config_show_value masks it */
	unsigned apply;            /* enum config_apply mask; [pgmux] keys only */
	const char *const *enum_names; /* CFG_ENUM: NULL-terminated names, index = value */
	const char *const
		*enum_aliases; /* CFG_ENUM: NULL-terminated (alias, name) pairs, or NULL */
	const char *help;
	double min_value; /* CFG_INT, CFG_DOUBLE, CFG_MODE: accepted range, inclusive */
	double max_value;
};

extern const struct config_key config_keys[];
extern const size_t config_key_count;

/*
 * The keys of a [databases] entry string ("host=... port=...") and of a [users] entry string,
 * with offsets into struct db_entry / struct user_entry. default_value NULL means "unset" (-1,
 * or POOL_MODE_INHERIT); reloadable is not used.
 */
extern const struct config_key config_db_keys[];
extern const size_t config_db_key_count;
extern const struct config_key config_user_keys[];
extern const size_t config_user_key_count;

/* The keys of a [peers] entry string, with offsets into struct peer_entry. */
extern const struct config_key config_peer_keys[];
extern const size_t config_peer_key_count;

/*
 * The keys of a [cluster.NAME] section, with offsets into struct cluster_entry. A row whose name
 * is also a [pgmux] key takes that key's value when the section does not set it.
 */
extern const struct config_key config_cluster_keys[];
extern const size_t config_cluster_key_count;

/*
 * The keys of a [shards.NAME] section, with offsets into struct shards_entry; its shard.NAME
 * lines are not in the table.
 */
extern const struct config_key config_shards_keys[];
extern const size_t config_shards_key_count;

/*
 * Load and validate a whole file into a new struct config. On failure returns NULL and writes
 * "FILE:LINE: key: what is wrong" (or "FILE: ...") into err. The caller owns the result and frees
 * it with config_free().
 */
struct config *config_load(const char *path, char *err, size_t errlen);

/* A config with every key at its default and no databases; caller frees. */
struct config *config_new_default(void);

/*
 * A deep copy of cfg (entries, clusters and what each section set; the auth_hba_file rules and
 * the auth_file's user list are shared, see hba_ref and userlist_ref), without cfg's load warnings: the start of an admin SET. NULL when out
 * of memory. The caller owns the copy and frees it with config_free().
 */
struct config *config_clone(const struct config *cfg);

/*
 * Check cfg whole, as a file load does, and resolve what depends on other sections: cluster
 * routing keys a [cluster.NAME] section does not set take [pgmux]'s value again, the
 * auth_hba_file rules and the auth_file's users are read if cfg has none loaded, warnings are written again. On failure
 * returns false with "key: what is wrong" in err; cfg must then not be used (free it).
 */
bool config_validate(struct config *cfg, char *err, size_t errlen);

void config_free(struct config *cfg);

/* The key table row for name (case-insensitive), or NULL. */
const struct config_key *config_find_key(const char *name);

/*
 * Write the key's current value as text into buf, exactly as it would be written in the file
 * (it parses back to the same value). Returns buf.
 */
const char *config_format_value(const struct config *cfg, const struct config_key *key, char *buf,
				size_t buflen);

/*
 * config_format_value for people: a secret key that is set reads "********". Use it for every
 * value that leaves pgmux (SHOW CONFIG, log lines, error messages).
 */
const char *config_show_value(const struct config *cfg, const struct config_key *key, char *buf,
			      size_t buflen);

/*
 * Set one [pgmux] key from text, on a config not in use (a clone, or one being loaded). Checks
 * the value under the key's type and range; on failure returns false and writes why into err,
 * leaving cfg unchanged. Checks that involve other keys are config_validate()'s, which must run
 * before cfg is used. It does not look at key->reloadable: refusing restart-only keys is the
 * caller's policy.
 */
bool config_set_value(struct config *cfg, const char *name, const char *value, char *err,
		      size_t errlen);

/* The [databases] entry for name, else the "*" entry, else NULL. Borrowed from cfg. */
const struct db_entry *config_find_db(const struct config *cfg, const char *name);

/* The [cluster.NAME] section called name, or NULL. Borrowed from cfg. */
const struct cluster_entry *config_find_cluster(const struct config *cfg, const char *name);

/* The [shards.NAME] section called name, or NULL. Borrowed from cfg. */
const struct shards_entry *config_find_shards(const struct config *cfg, const char *name);

/* Is the section's map kept in etcd (map = etcd:URL) rather than in a file? */
bool config_shard_map_in_etcd(const struct shards_entry *set);

/*
 * A shard map from its text (a file's or an etcd key's), checked whole and against set (same
 * buckets and seed, only shards set names). NULL with why when it is not valid. The caller owns
 * one reference: config_shard_map_unref().
 */
struct loaded_shard_map *config_shard_map_from_text(const struct shards_entry *set,
						    const char *text, size_t len, char *why,
						    size_t whylen);
void config_shard_map_unref(struct loaded_shard_map *l);

/* The [peers] entry of peer_id id, or NULL. Borrowed from cfg. */
const struct peer_entry *config_find_peer(const struct config *cfg, int id);

/* A [peers] entry's pool_size, else [pgmux] default_pool_size. */
int config_peer_pool_size(const struct config *cfg, const struct peer_entry *p);

/* The [users] entry for name, or NULL. Borrowed from cfg. */
const struct user_entry *config_find_user(const struct config *cfg, const char *name);

/* Authentication methods a server may ask for (server_auth_methods). */
enum server_auth_method {
	SERVER_AUTH_NONE = 1 << 0,     /* AuthenticationOk without any request (trust) */
	SERVER_AUTH_PASSWORD = 1 << 1, /* cleartext password */
	SERVER_AUTH_MD5 = 1 << 2,
	SERVER_AUTH_SCRAM = 1 << 3,
	/* "auto": cleartext only once the server's certificate was verified (verify-ca/-full) */
	SERVER_AUTH_PASSWORD_IF_VERIFIED = 1 << 4,
};

/*
 * server_auth_methods ("auto", or a comma-separated list of scram-sha-256, md5, password, none)
 * as a mask of enum server_auth_method into *mask. False for an unknown or empty list. Pure.
 */
bool config_server_auth_methods(const char *list, unsigned *mask);

/*
 * server_auth_methods as libpq's require_auth list, for pgmux's own libpq connections (health
 * checks, auth_query): "auto" resolved against server_tls_sslmode. Into out (NUL-terminated).
 */
void config_server_require_auth(const struct config *cfg, char *out, size_t len);

/* True if name is in the comma-separated list (admin_users, stats_users...). */
bool config_list_contains(const char *list, const char *name);

/*
 * Effective values of a [databases] entry: the entry's own where it sets one, else the [pgmux]
 * key's. e may be NULL (a database gone from the config): the [pgmux] value.
 */
int config_db_pool_size(const struct config *cfg, const struct db_entry *e);
int config_db_min_pool_size(const struct config *cfg, const struct db_entry *e);
int config_db_reserve_pool(const struct config *cfg, const struct db_entry *e);
int config_db_max_connections(const struct config *cfg, const struct db_entry *e);

/* A [users] entry's max_user_connections, else [pgmux]'s; u may be NULL. */
int config_user_max_connections(const struct config *cfg, const struct user_entry *u);

/*
 * The pool mode of a (database, user) pair: the [users] entry's, else the [databases] entry's,
 * else [pgmux]'s. Either entry may be NULL. Never POOL_MODE_INHERIT.
 */
enum pool_mode config_pool_mode(const struct config *cfg, const struct db_entry *e,
				const struct user_entry *u);

/* "session", "transaction", "statement"; "inherit" for POOL_MODE_INHERIT. Static string. */
const char *pool_mode_name(int mode);

#endif
