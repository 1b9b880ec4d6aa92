/* link: src/config/config.c src/config/keys.c src/auth/hba.c src/auth/userlist.c src/shard/map.c src/shard/mapfile.c src/shard/etcd.c src/auth/base64.c */
/*
 * Unit tests for config/: defaults, every value type, the [pgbouncer] alias, [databases] and
 * [users] entry strings, each error message (it must name file, line and key), admin SET on a
 * clone validated whole, effective values, what each key rebuilds when changed, and that every
 * key of the tables is documented in etc/pgmux.ini and doc/pgmux.ini.5.
 *
 * Runs with the repository root as working directory (make unit); config files are written
 * to /tmp with mkstemp and removed after each load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/hba.h"
#include "auth/userlist.h"
#include "config/config.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* --- helpers --- */

static void write_temp(const char *text, char *path, size_t pathlen)
{
	int fd;
	size_t len = strlen(text);

	snprintf(path, pathlen, "/tmp/pgmux-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/* Load text as a config file; path receives the temporary file's name (already removed). */
static struct config *load_text(const char *text, char *path, size_t pathlen, char *err,
				size_t errlen)
{
	struct config *cfg;

	write_temp(text, path, pathlen);
	cfg = config_load(path, err, errlen);
	unlink(path);
	return cfg;
}

static struct config *load_ok(const char *text)
{
	char path[64], err[512];
	struct config *cfg = load_text(text, path, sizeof(path), err, sizeof(err));

	if (!cfg)
		fail_msg("unexpected load error: %s\n--- file ---\n%s", err, text);
	return cfg;
}

static const char *show(const struct config *cfg, const char *name, char *buf, size_t len)
{
	const struct config_key *key = config_find_key(name);

	assert_non_null(key);
	return config_format_value(cfg, key, buf, len);
}

static char *read_whole_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	if (!f)
		fail_msg("cannot open %s (tests run from the repository root)", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return text;
}

/* --- the key tables --- */

static void check_table(const struct config_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct config_key *k = &keys[i];

		assert_non_null(k->name);
		assert_true(k->help && k->help[0]);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(k->name, keys[j].name);
		if (k->type == CFG_INT || k->type == CFG_DOUBLE || k->type == CFG_MODE)
			assert_true(k->min_value <= k->max_value);
		if (k->type == CFG_ENUM)
			assert_true(k->enum_names && k->enum_names[0]);
	}
}

static void test_key_tables(void **state)
{
	check_table(config_keys, config_key_count);
	check_table(config_db_keys, config_db_key_count);
	check_table(config_user_keys, config_user_key_count);
	check_table(config_peer_keys, config_peer_key_count);
	for (size_t i = 0; i < config_key_count; i++)
		assert_non_null(config_keys[i].default_value);
	assert_ptr_equal(config_find_key("LISTEN_PORT"), config_find_key("listen_port"));
	assert_null(config_find_key("no_such_key"));
}

static void test_defaults(void **state)
{
	struct config *cfg = config_new_default();
	char buf[256];

	assert_non_null(cfg);
	/* Every default shows as written in the table. */
	for (size_t i = 0; i < config_key_count; i++)
		assert_string_equal(config_format_value(cfg, &config_keys[i], buf, sizeof(buf)),
				    config_keys[i].default_value);
	assert_int_equal(cfg->listen_port, 6432);
	assert_string_equal(cfg->listen_addr, "");
	assert_string_equal(cfg->unix_socket_dir, "/tmp");
	assert_int_equal(cfg->unix_socket_mode, 0777);
	assert_int_equal(cfg->pool_mode, POOL_MODE_SESSION);
	assert_int_equal(cfg->auth_type, AUTH_MD5);
	assert_int_equal(cfg->max_client_conn, 100);
	assert_int_equal(cfg->default_pool_size, 20);
	assert_int_equal(cfg->pkt_buf, 16384);
	assert_int_equal(cfg->max_packet_size, 2147483647);
	assert_string_equal(cfg->server_reset_query, "DISCARD ALL");
	assert_string_equal(cfg->server_check_query, "select 1");
	assert_true(cfg->server_lifetime == 3600.0);
	assert_true(cfg->query_wait_timeout == 120.0);
	assert_true(cfg->tcp_keepalive);
	assert_false(cfg->syslog);
	assert_string_equal(cfg->auth_file, "");
	assert_string_equal(cfg->config_file, "");
	assert_int_equal(cfg->n_dbs, 0);
	assert_null(config_find_db(cfg, "anything"));
	config_free(cfg);
}

/* --- values of every type --- */

static const struct {
	const char *line; /* under [pgmux] */
	const char *key;
	const char *shown; /* config_format_value afterwards */
} value_cases[] = {
	{ "listen_port = 7000", "listen_port", "7000" },
	{ "LISTEN_PORT=7001", "listen_port", "7001" },
	{ "  listen_port = 7002   ", "listen_port", "7002" },
	{ "max_client_conn = +50", "max_client_conn", "50" },
	{ "unix_socket_mode = 0700", "unix_socket_mode", "0700" },
	{ "unix_socket_mode = 600", "unix_socket_mode", "0600" },
	{ "tcp_keepalive = off", "tcp_keepalive", "0" },
	{ "tcp_keepalive = No", "tcp_keepalive", "0" },
	{ "tcp_keepalive = false", "tcp_keepalive", "0" },
	{ "syslog = on", "syslog", "1" },
	{ "syslog = YES", "syslog", "1" },
	{ "syslog = true", "syslog", "1" },
	{ "syslog = 1", "syslog", "1" },
	{ "server_lifetime = 0.5", "server_lifetime", "0.5" },
	{ "server_lifetime = 15", "server_lifetime", "15" },
	{ "server_lifetime = 15.000", "server_lifetime", "15" },
	{ "query_timeout = 0.1", "query_timeout", "0.1" },
	{ "query_timeout = 1e3", "query_timeout", "1000" },
	{ "pool_mode = transaction", "pool_mode", "transaction" },
	{ "pool_mode = Statement", "pool_mode", "statement" },
	{ "auth_type = scram-sha-256", "auth_type", "scram-sha-256" },
	{ "auth_type = trust", "auth_type", "trust" },
	{ "auth_type = hba", "auth_type", "hba" },
	/* PgBouncer's name for the cleartext method; shown under pgmux's. */
	{ "auth_type = plain", "auth_type", "password" },
	{ "auth_type = PLAIN", "auth_type", "password" },
	{ "tcp_defer_accept = 1", "tcp_defer_accept", "1" },
	{ "tcp_defer_accept = 45", "tcp_defer_accept", "45" },
	{ "server_fast_close = 1", "server_fast_close", "1" },
	{ "pkt_buf = 4096", "pkt_buf", "4096" },
	{ "logfile = /var/log/pgmux/pgmux.log", "logfile", "/var/log/pgmux/pgmux.log" },
	{ "server_reset_query =", "server_reset_query", "" },
	/* ';' and '#' start comments only at the start of a line, as in PgBouncer. */
	{ "server_reset_query = DISCARD ALL ; SET x = 1", "server_reset_query",
	  "DISCARD ALL ; SET x = 1" },
	{ "server_check_query = select 1 # ok", "server_check_query", "select 1 # ok" },
	{ "admin_users = alice, bob", "admin_users", "alice, bob" },
	{ "listen_addr = *", "listen_addr", "*" },
	{ "listen_addr = 127.0.0.1,::1", "listen_addr", "127.0.0.1,::1" },
};

static void test_value_types(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(value_cases); i++) {
		char text[512], buf[256];
		struct config *cfg;

		snprintf(text, sizeof(text), "[pgmux]\n%s\n", value_cases[i].line);
		cfg = load_ok(text);
		assert_string_equal(show(cfg, value_cases[i].key, buf, sizeof(buf)),
				    value_cases[i].shown);
		config_free(cfg);
	}
}

static void test_pgbouncer_alias(void **state)
{
	struct config *cfg = load_ok("; a PgBouncer file\n"
				     "[PgBouncer]\n"
				     "listen_port = 6543\n"
				     "pool_mode = transaction\n"
				     "[pgmux]\n"
				     "max_client_conn = 500\n");

	assert_int_equal(cfg->listen_port, 6543);
	assert_int_equal(cfg->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(cfg->max_client_conn, 500);
	config_free(cfg);
}

static void test_file_syntax(void **state)
{
	char longq[400], text[1024];
	struct config *cfg;

	/* A UTF-8 BOM, CRLF line ends, comments and indented keys are all fine. */
	cfg = load_ok("\xEF\xBB\xBF[pgmux]\r\n"
		      "# comment\r\n"
		      "\t; another\r\n"
		      "listen_port = 7000\r\n"
		      "    pool_mode = statement\r\n"
		      "\r\n");
	assert_int_equal(cfg->listen_port, 7000);
	assert_int_equal(cfg->pool_mode, POOL_MODE_STATEMENT);
	config_free(cfg);

	/* A line far longer than inih's line buffer keeps its whole value, " ;" included. */
	memset(longq, 'a', sizeof(longq) - 1);
	longq[sizeof(longq) - 1] = '\0';
	memcpy(longq, "SET application_name = ", 23);
	memcpy(longq + sizeof(longq) - 12, " ; SELECT 1", 11);
	snprintf(text, sizeof(text), "[databases]\napp = connect_query='%s' port=5433\n", longq);
	cfg = load_ok(text);
	assert_string_equal(cfg->dbs[0].connect_query, longq);
	assert_int_equal(cfg->dbs[0].port, 5433);
	config_free(cfg);

	/* A key given twice keeps its last value. */
	cfg = load_ok("[pgmux]\nlisten_port = 7000\nlisten_port = 7001\n");
	assert_int_equal(cfg->listen_port, 7001);
	config_free(cfg);
}

/* --- [databases] and [users] --- */

static void test_databases(void **state)
{
	struct config *cfg = load_ok(
		"[databases]\n"
		"app = host=10.0.0.7 port=5433 dbname=appdb user=svc password='p w;d\\'s' "
		"pool_size=40 min_pool_size=5 reserve_pool=3 pool_mode=transaction "
		"max_db_connections=60\n"
		"local = host=/var/run/postgresql\n"
		"tz = timezone='Europe/Paris' datestyle='ISO, DMY' client_encoding=UTF8 "
		"application_name=batch connect_query='SET search_path = app, public'\n"
		"spaced = host = db1   port = 6000\n"
		"bare =\n"
		"Upper = HOST=db2\n"
		"aq = auth_user=lookup auth_dbname=authdb\n"
		"[pgmux]\nlisten_addr = *\n");
	const struct db_entry *db;

	assert_int_equal(cfg->n_dbs, 7);
	db = config_find_db(cfg, "aq");
	assert_string_equal(db->auth_user, "lookup");
	assert_string_equal(db->auth_dbname, "authdb");
	db = config_find_db(cfg, "app");
	assert_non_null(db);
	assert_string_equal(db->name, "app");
	assert_string_equal(db->host, "10.0.0.7");
	assert_int_equal(db->port, 5433);
	assert_string_equal(db->dbname, "appdb");
	assert_string_equal(db->user, "svc");
	assert_string_equal(db->password, "p w;d's");
	assert_int_equal(db->pool_size, 40);
	assert_int_equal(db->min_pool_size, 5);
	assert_int_equal(db->reserve_pool, 3);
	assert_int_equal(db->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(db->max_db_connections, 60);

	db = config_find_db(cfg, "local");
	assert_string_equal(db->host, "/var/run/postgresql");
	assert_int_equal(db->port, 5432);
	assert_string_equal(db->dbname, "");
	assert_string_equal(db->user, "");
	assert_string_equal(db->password, "");
	assert_int_equal(db->pool_size, -1);
	assert_int_equal(db->min_pool_size, -1);
	assert_int_equal(db->reserve_pool, -1);
	assert_int_equal(db->max_db_connections, -1);
	assert_int_equal(db->pool_mode, POOL_MODE_INHERIT);
	assert_string_equal(db->connect_query, "");
	assert_string_equal(db->auth_user, "");
	assert_string_equal(db->auth_dbname, "");

	db = config_find_db(cfg, "tz");
	assert_string_equal(db->timezone, "Europe/Paris");
	assert_string_equal(db->datestyle, "ISO, DMY");
	assert_string_equal(db->client_encoding, "UTF8");
	assert_string_equal(db->application_name, "batch");
	assert_string_equal(db->connect_query, "SET search_path = app, public");

	db = config_find_db(cfg, "spaced");
	assert_string_equal(db->host, "db1");
	assert_int_equal(db->port, 6000);

	db = config_find_db(cfg, "bare");
	assert_string_equal(db->host, "");

	/* Entry keys are case-insensitive, database names are not. */
	db = config_find_db(cfg, "Upper");
	assert_string_equal(db->host, "db2");
	assert_null(config_find_db(cfg, "upper"));
	assert_null(config_find_db(cfg, "nosuch"));
	config_free(cfg);
}

static void test_db_fallback(void **state)
{
	struct config *cfg = load_ok("[databases]\n"
				     "app = host=a\n"
				     "* = host=fallback\n");

	assert_string_equal(config_find_db(cfg, "app")->host, "a");
	assert_string_equal(config_find_db(cfg, "other")->name, "*");
	assert_string_equal(config_find_db(cfg, "other")->host, "fallback");
	config_free(cfg);
}

static void test_users(void **state)
{
	struct config *cfg = load_ok("[users]\n"
				     "alice = pool_mode=transaction max_user_connections=10\n"
				     "bob = max_user_connections = 3\n"
				     "carol =\n");
	const struct user_entry *u;

	assert_int_equal(cfg->n_users, 3);
	u = config_find_user(cfg, "alice");
	assert_non_null(u);
	assert_int_equal(u->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(u->max_user_connections, 10);
	u = config_find_user(cfg, "bob");
	assert_int_equal(u->pool_mode, POOL_MODE_INHERIT);
	assert_int_equal(u->max_user_connections, 3);
	u = config_find_user(cfg, "carol");
	assert_int_equal(u->max_user_connections, -1);
	assert_null(config_find_user(cfg, "dave"));
	config_free(cfg);
}

/* [peers]: entries named by peer_id, PgBouncer's keys; a clone keeps them. */
static void test_peers(void **state)
{
	struct config *cfg = load_ok("[pgmux]\nso_reuseport = 1\npeer_id = 2\n"
				     "default_pool_size = 7\n"
				     "[peers]\n"
				     "1 = host=/run/pgmux1 port=6432\n"
				     "2 = host=10.0.0.2 pool_size=3\n"
				     "16383 = host=peer.example port=7000\n");
	struct config *clone;
	const struct peer_entry *p;

	assert_true(cfg->so_reuseport);
	assert_int_equal(cfg->peer_id, 2);
	assert_int_equal(cfg->n_peers, 3);
	p = config_find_peer(cfg, 1);
	assert_non_null(p);
	assert_string_equal(p->host, "/run/pgmux1");
	assert_int_equal(p->port, 6432);
	assert_int_equal(config_peer_pool_size(cfg, p), 7);
	p = config_find_peer(cfg, 2);
	assert_int_equal(p->port, 6432); /* PgBouncer's default */
	assert_int_equal(config_peer_pool_size(cfg, p), 3);
	assert_int_equal(config_find_peer(cfg, 16383)->port, 7000);
	assert_null(config_find_peer(cfg, 3));
	clone = config_clone(cfg);
	assert_non_null(clone);
	config_free(cfg);
	assert_int_equal(clone->n_peers, 3);
	assert_string_equal(config_find_peer(clone, 16383)->host, "peer.example");
	config_free(clone);
}

/* --- errors --- */

static const struct {
	const char *text;
	int line;         /* 0: the message has no line number */
	const char *key;  /* NULL: the message names no key */
	const char *what; /* a fragment of the message */
} error_cases[] = {
	{ "[pgmux]\nno_such_key = 1\n", 2, "no_such_key", "unknown key" },
	{ "[pgmux]\n\nlisten_port = abc\n", 3, "listen_port", "not an integer" },
	{ "[pgmux]\nlisten_port = 12x\n", 2, "listen_port", "not an integer" },
	{ "[pgmux]\nlisten_port = 0\n", 2, "listen_port", "out of range (1..65535)" },
	{ "[pgmux]\nlisten_port = 65536\n", 2, "listen_port", "out of range" },
	{ "[pgmux]\nlisten_port = 99999999999999999999\n", 2, "listen_port", "out of range" },
	{ "[pgmux]\nlisten_port =\n", 2, "listen_port", "not an integer" },
	{ "[pgmux]\ndefault_pool_size = -1\n", 2, "default_pool_size", "out of range" },
	{ "[pgmux]\nmin_pool_size = -3\n", 2, "min_pool_size", "out of range" },
	{ "[pgmux]\npkt_buf = 4095\n", 2, "pkt_buf", "out of range (4096.." },
	{ "[pgmux]\nunix_socket_mode = 0789\n", 2, "unix_socket_mode", "octal" },
	{ "[pgmux]\nunix_socket_mode = 01777\n", 2, "unix_socket_mode", "out of range" },
	{ "[pgmux]\ntcp_keepalive = maybe\n", 2, "tcp_keepalive", "not a boolean" },
	{ "[pgmux]\nserver_lifetime = soon\n", 2, "server_lifetime", "not a number of seconds" },
	{ "[pgmux]\nserver_lifetime = -1\n", 2, "server_lifetime", "out of range" },
	{ "[pgmux]\nserver_lifetime = inf\n", 2, "server_lifetime", "not a number of seconds" },
	{ "[pgmux]\nquery_timeout = 1.5s\n", 2, "query_timeout", "not a number of seconds" },
	{ "[pgmux]\npool_mode = sometimes\n", 2, "pool_mode",
	  "not one of: session transaction statement" },
	{ "[pgmux]\nauth_type = pam\n", 2, "auth_type", "not one of:" },
	{ "[pgmux]\ntcp_defer_accept = yes\n", 2, "tcp_defer_accept", "not an integer" },
	{ "[pgmux]\nserver_fast_close = sometimes\n", 2, "server_fast_close", "not a boolean" },
	{ "[pgmux]\nunix_socket_dir =\n", 2, "listen_addr", "nothing to listen on" },
	{ "[pgmux]\nserver_tls_sslmode = verify-ca\n", 2, "server_tls_sslmode",
	  "verify-ca needs server_tls_ca_file" },
	{ "listen_port = 1\n", 1, "listen_port", "outside any section" },
	{ "[pgmux]\n[servers]\nfoo = 1\n", 3, "foo", "unknown section [servers]" },
	{ "[pgmux]\nthis line has no equals sign\n", 2, NULL, "syntax error" },
	{ "[pgmux\nlisten_port = 1\n", 1, NULL, "syntax error" },
	{ "[databases]\napp = host=a\nb = host=b\napp = host=c\n", 4, "app",
	  "duplicate database (first defined at line 2)" },
	{ "[databases]\napp = host=a hots=b\n", 2, "app", "unknown key 'hots'" },
	{ "[databases]\napp = host='db1 port=5432\n", 2, "app", "unterminated quoted value" },
	{ "[databases]\napp = host\n", 2, "app", "expected '=' after 'host'" },
	{ "[databases]\napp = =x\n", 2, "app", "expected key=value" },
	{ "[databases]\napp = port=0\n", 2, "app", "port: '0' is out of range" },
	{ "[databases]\napp = pool_size=-2\n", 2, "app", "pool_size: '-2' is out of range" },
	{ "[databases]\napp = pool_size=many\n", 2, "app", "pool_size: 'many' is not an integer" },
	{ "[databases]\napp = pool_mode=bulk\n", 2, "app", "pool_mode: 'bulk' is not one of" },
	{ "[pgmux]\nauth_type = any\n[databases]\napp = host=a\n", 4, "app",
	  "auth_type = any needs user=" },
	{ "[databases]\n"
	  "a234567890123456789012345678901234567890123456789012345678901234 = host=x\n",
	  2, "a234567890123456789012345678901234567890123456789012345678901234",
	  "longer than 63 bytes" },
	{ "[users]\nalice = pool_mode=transaction\nalice = max_user_connections=1\n", 3, "alice",
	  "duplicate user (first defined at line 2)" },
	{ "[users]\nalice = max_user_connections=-1\n", 2, "alice",
	  "max_user_connections: '-1' is out of range" },
	{ "[users]\nalice = pool_size=3\n", 2, "alice", "unknown key 'pool_size'" },
	{ "[pgmux]\npeer_id = 16384\n", 2, "peer_id", "out of range (0..16383)" },
	{ "[peers]\n0 = host=a\n", 2, "0", "named by its peer_id, 1 to 16383" },
	{ "[peers]\nalpha = host=a\n", 2, "alpha", "named by its peer_id" },
	{ "[peers]\n16384 = host=a\n", 2, "16384", "named by its peer_id" },
	{ "[peers]\n1 = host=a\n1 = host=b\n", 3, "1", "duplicate peer (first defined at line 2)" },
	{ "[peers]\n1 = host=a dbname=x\n", 2, "1", "unknown key 'dbname'" },
	{ "[peers]\n1 = port=6432\n", 2, "1", "needs host=" },
	{ "[cluster.main]\nread_from = sideways\n", 2, "read_from", "'sideways' is not one of" },
	{ "[cluster.main]\nhost = x\n", 2, "host", "unknown key in [cluster.main]" },
	{ "[cluster.main]\nmax_replica_lag = 12 parsecs\n", 2, "max_replica_lag", "is not a size" },
	{ "[cluster.main]\nread_from = any\n", 2, "main",
	  "needs exactly one of patroni = URLs or hosts =" },
	{ "[cluster.main]\nhosts = a:1\npatroni = http://x\n", 2, "main", "needs exactly one" },
	{ "[databases]\napp = cluster=nope\n", 2, "app", "no [cluster.nope] section" },
	{ "[cluster.c]\nhosts = a:1\n[databases]\napp = cluster=c host=x\n", 4, "app",
	  "either cluster= or host=" },
	/* The first error wins, even when a later line is also wrong. */
	{ "[pgmux]\nlisten_port = x\nbad line\n", 2, "listen_port", "not an integer" },
	{ "[pgmux]\nbad line\nlisten_port = x\n", 2, NULL, "syntax error" },
};

static void test_clusters(void **state)
{
	struct config *cfg = load_ok("[pgmux]\n"
				     "read_from = any\n"
				     "max_replica_lag = 1MB\n"
				     "primary_wait_timeout = 5\n"
				     "[cluster.main]\n"
				     "patroni = http://a:8008 http://b:8008\n"
				     "max_replica_lag = 512kB\n"
				     "read_your_writes = on\n"
				     "[cluster.static]\n"
				     "hosts = 10.0.0.1:5432 10.0.0.2:5433\n"
				     "read_from = primary\n"
				     "[databases]\n"
				     "app = cluster=main dbname=app\n");
	const struct cluster_entry *m = config_find_cluster(cfg, "main");
	const struct cluster_entry *st = config_find_cluster(cfg, "static");

	(void)state;
	assert_int_equal(cfg->n_clusters, 2);
	assert_non_null(m);
	assert_non_null(st);
	assert_null(config_find_cluster(cfg, "other"));
	assert_string_equal(m->patroni, "http://a:8008 http://b:8008");
	/* set in the section */
	assert_true(m->max_replica_lag == 512 * 1024);
	assert_true(m->read_your_writes);
	assert_int_equal(st->read_from, READ_FROM_PRIMARY);
	/* inherited from [pgmux] */
	assert_int_equal(m->read_from, READ_FROM_ANY);
	assert_true(st->max_replica_lag == 1024 * 1024);
	assert_true(m->primary_wait_timeout == 5);
	/* [pgmux] defaults */
	assert_int_equal(m->load_balance, LB_ROUND_ROBIN);
	assert_true(st->health_check_interval == 1);
	assert_string_equal(st->health_check_user, "");
	assert_string_equal(config_find_db(cfg, "app")->cluster, "main");
	config_free(cfg);
}

static void test_errors(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(error_cases); i++) {
		char path[64], err[512], prefix[256];
		struct config *cfg = load_text(error_cases[i].text, path, sizeof(path), err,
					       sizeof(err));

		if (cfg)
			fail_msg("case %zu loaded but should fail:\n%s", i, error_cases[i].text);
		if (error_cases[i].key)
			snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", path, error_cases[i].line,
				 error_cases[i].key);
		else
			snprintf(prefix, sizeof(prefix), "%s:%d: ", path, error_cases[i].line);
		if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, error_cases[i].what))
			fail_msg("case %zu: got \"%s\"\nwant prefix \"%s\" and \"%s\"", i, err,
				 prefix, error_cases[i].what);
	}
}

/* --- accepted with a warning (PgBouncer accepts these; a pgbouncer.ini must start) --- */

static const struct {
	const char *text;
	int n;    /* warnings expected */
	int line; /* of the first */
	const char *key;
	const char *what;
} warning_cases[] = {
	{ "[pgmux]\nmin_pool_size = 30\n", 1, 2, "min_pool_size",
	  "30 is larger than default_pool_size (20)" },
	{ "[pgmux]\nmin_pool_size = 5\ndefault_pool_size = 4\n", 1, 3, "min_pool_size",
	  "larger than default_pool_size (4)" },
	{ "[databases]\napp = pool_size=2 min_pool_size=3\n", 1, 2, "app",
	  "min_pool_size (3) is larger than pool_size (2)" },
	{ "[pgmux]\nmin_pool_size = 10\n[databases]\n\napp = pool_size=5\n", 1, 5, "app",
	  "min_pool_size (10) is larger than pool_size (5)" },
	{ "[pgmux]\nmin_pool_size = 5\n[databases]\napp = pool_size=5\n", 0, 0, NULL, NULL },
	{ "[pgmux]\n\nso_reuseport = 1\n", 1, 3, "so_reuseport", "without peer_id" },
	{ "[pgmux]\npeer_id = 3\n", 1, 2, "peer_id", "without a [peers] section" },
	{ "[peers]\n1 = host=/a\n", 1, 2, "peers", "not used without peer_id" },
	{ "[pgmux]\nso_reuseport = 1\npeer_id = 1\n[peers]\n1 = host=/a\n", 0, 0, NULL, NULL },
};

static void test_warnings(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(warning_cases); i++) {
		char path[64], err[512], prefix[256];
		struct config *cfg = load_text(warning_cases[i].text, path, sizeof(path), err,
					       sizeof(err));

		if (!cfg)
			fail_msg("case %zu did not load: %s", i, err);
		if (cfg->n_warnings != warning_cases[i].n)
			fail_msg("case %zu: %d warnings, want %d", i, cfg->n_warnings,
				 warning_cases[i].n);
		if (warning_cases[i].n == 0) {
			config_free(cfg);
			continue;
		}
		snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", path, warning_cases[i].line,
			 warning_cases[i].key);
		if (strncmp(cfg->warnings[0], prefix, strlen(prefix)) != 0 ||
		    !strstr(cfg->warnings[0], warning_cases[i].what))
			fail_msg("case %zu: got \"%s\"\nwant prefix \"%s\" and \"%s\"", i,
				 cfg->warnings[0], prefix, warning_cases[i].what);
		config_free(cfg);
	}
}

static void test_missing_file(void **state)
{
	char err[256];
	struct config *cfg = config_load("/nonexistent/pgmux.ini", err, sizeof(err));

	assert_null(cfg);
	assert_string_equal(err, "/nonexistent/pgmux.ini: cannot open: No such file or directory");
}

static void test_small_error_buffer(void **state)
{
	char path[64], err[8];

	assert_null(load_text("[pgmux]\nlisten_port = x\n", path, sizeof(path), err, sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_null(load_text("[pgmux]\nlisten_port = x\n", path, sizeof(path), NULL, 0));
}

/* --- admin SHOW / SET --- */

static const struct {
	const char *key;
	const char *value;
	bool ok;
	const char *shown_or_error; /* the value shown after success, or an error fragment */
} set_cases[] = {
	{ "pool_mode", "transaction", true, "transaction" },
	{ "POOL_MODE", "statement", true, "statement" },
	{ "default_pool_size", "50", true, "50" },
	{ "server_idle_timeout", "2.25", true, "2.25" },
	{ "log_connections", "off", true, "0" },
	{ "server_reset_query", "RESET ALL", true, "RESET ALL" },
	{ "listen_port", "7432", true, "7432" }, /* restart-only is the caller's decision */
	{ "unix_socket_mode", "0750", true, "0750" },
	{ "default_pool_size", "0", false, "default_pool_size: '0' is out of range" },
	{ "default_pool_size", "x", false, "default_pool_size: 'x' is not an integer" },
	/* As in a file: above the pool size is accepted (the pool stays at its size). */
	{ "min_pool_size", "25", true, "25" },
	{ "auth_type", "plain", true, "password" },
	{ "pool_mode", "none", false, "pool_mode: 'none' is not one of" },
	{ "nonsense", "1", false, "nonsense: unknown key" },
};

static void test_set_value(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(set_cases); i++) {
		struct config *cfg = config_new_default();
		const struct config_key *key = config_find_key(set_cases[i].key);
		char err[256] = "", before[256] = "", after[256];
		bool ok;

		if (key)
			config_format_value(cfg, key, before, sizeof(before));
		ok = config_set_value(cfg, set_cases[i].key, set_cases[i].value, err, sizeof(err));
		if (ok != set_cases[i].ok)
			fail_msg("case %zu (%s = %s): %s", i, set_cases[i].key, set_cases[i].value,
				 ok ? "accepted" : err);
		if (ok) {
			assert_string_equal(config_format_value(cfg, key, after, sizeof(after)),
					    set_cases[i].shown_or_error);
		} else {
			if (!strstr(err, set_cases[i].shown_or_error))
				fail_msg("case %zu: got \"%s\"", i, err);
			if (key)
				assert_string_equal(config_format_value(cfg, key, after,
									sizeof(after)),
						    before);
		}
		config_free(cfg);
	}
}

/* admin SET: clone, set, validate whole; the clone stands alone and inherits again. */
static void test_clone_set_validate(void **state)
{
	struct config *cfg = load_ok("[pgmux]\n"
				     "read_from = any\n"
				     "[cluster.main]\n"
				     "hosts = 10.0.0.1:5432\n"
				     "[cluster.pinned]\n"
				     "hosts = 10.0.0.2:5432\n"
				     "read_from = primary\n"
				     "[databases]\n"
				     "app = cluster=main dbname=app pool_size=3\n"
				     "[users]\n"
				     "bob = pool_mode=transaction\n");
	struct config *c = config_clone(cfg);
	char err[256];

	(void)state;
	assert_non_null(c);
	assert_ptr_not_equal(c->dbs, cfg->dbs);
	assert_ptr_not_equal(c->auth_query, cfg->auth_query);
	assert_string_equal(c->auth_query, cfg->auth_query);
	assert_true(config_set_value(c, "read_from", "replicas", err, sizeof(err)));
	assert_true(config_validate(c, err, sizeof(err)));
	/* the section that inherits follows; the one that sets its own keeps it */
	assert_int_equal(config_find_cluster(c, "main")->read_from, READ_FROM_REPLICAS);
	assert_int_equal(config_find_cluster(c, "pinned")->read_from, READ_FROM_PRIMARY);
	/* the config the clone came from is untouched */
	assert_int_equal(config_find_cluster(cfg, "main")->read_from, READ_FROM_ANY);
	assert_int_equal(cfg->read_from, READ_FROM_ANY);
	config_free(cfg);
	assert_string_equal(config_find_db(c, "app")->dbname, "app");
	assert_int_equal(config_find_db(c, "app")->pool_size, 3);
	assert_int_equal(config_find_user(c, "bob")->pool_mode, POOL_MODE_TRANSACTION);
	assert_string_equal(config_find_cluster(c, "main")->hosts, "10.0.0.1:5432");
	config_free(c);

	/* a value that is fine alone but not with the rest fails validation, not the set */
	cfg = config_new_default();
	c = config_clone(cfg);
	assert_non_null(c);
	assert_true(config_set_value(c, "unix_socket_dir", "", err, sizeof(err)));
	assert_false(config_validate(c, err, sizeof(err)));
	assert_non_null(strstr(err, "nothing to listen on"));
	config_free(c);
	config_free(cfg);
}

/* auth_hba_file rules travel with the config: shared by clones, read again when the key changes. */
static void test_clone_hba(void **state)
{
	char one[64], two[64], err[512];
	struct config *cfg = config_new_default(), *c, *c2;

	(void)state;
	write_temp("local all all trust\n", one, sizeof(one));
	write_temp("local all all trust\nhost all all 0.0.0.0/0 md5\n", two, sizeof(two));
	c = config_clone(cfg);
	assert_true(config_set_value(c, "auth_hba_file", one, err, sizeof(err)));
	assert_true(config_validate(c, err, sizeof(err)));
	assert_int_equal(hba_count(c->hba), 1);
	c2 = config_clone(c);
	assert_true(config_validate(c2, err, sizeof(err)));
	assert_ptr_equal(c2->hba, c->hba);
	assert_true(config_set_value(c2, "auth_hba_file", two, err, sizeof(err)));
	assert_true(config_validate(c2, err, sizeof(err)));
	assert_int_equal(hba_count(c2->hba), 2);
	assert_int_equal(hba_count(c->hba), 1);
	config_free(c);
	assert_int_equal(hba_count(c2->hba), 2);
	unlink(two);
	assert_true(config_set_value(c2, "auth_hba_file", two, err, sizeof(err)));
	assert_false(config_validate(c2, err, sizeof(err)));
	assert_non_null(strstr(err, "auth_hba_file"));
	config_free(c2);
	unlink(one);
	config_free(cfg);
}

/* The auth_file's users travel with the config as its rules do: a file load reads them too. */
static void test_clone_userlist(void **state)
{
	char one[64], two[64], conf[256], path[64], err[512];
	struct config *cfg, *c;

	(void)state;
	write_temp("\"alice\" \"a\"\n", one, sizeof(one));
	write_temp("\"alice\" \"a\"\n\"bob\" \"b\"\n", two, sizeof(two));
	snprintf(conf, sizeof(conf), "[pgmux]\nauth_file = %s\n", one);
	cfg = load_ok(conf);
	assert_int_equal(userlist_count(cfg->userlist), 1);
	c = config_clone(cfg);
	assert_true(config_set_value(c, "pool_mode", "session", err, sizeof(err)));
	assert_true(config_validate(c, err, sizeof(err)));
	assert_ptr_equal(c->userlist, cfg->userlist);
	assert_true(config_set_value(c, "auth_file", two, err, sizeof(err)));
	assert_true(config_validate(c, err, sizeof(err)));
	assert_string_equal(userlist_find(c->userlist, "bob"), "b");
	assert_null(userlist_find(cfg->userlist, "bob"));
	config_free(cfg);
	assert_string_equal(userlist_find(c->userlist, "alice"), "a");
	assert_true(config_set_value(c, "auth_file", "", err, sizeof(err)));
	assert_true(config_validate(c, err, sizeof(err)));
	assert_null(c->userlist);
	unlink(two);
	assert_true(config_set_value(c, "auth_file", two, err, sizeof(err)));
	assert_false(config_validate(c, err, sizeof(err)));
	assert_non_null(strstr(err, "auth_file"));
	config_free(c);
	unlink(one);
	/* a file load whose auth_file cannot be read fails, naming the key and the file */
	assert_null(load_text(conf, path, sizeof(path), err, sizeof(err)));
	assert_non_null(strstr(err, "auth_file"));
	assert_non_null(strstr(err, one));
}

/* What a running pgmux rebuilds when a key changes: the console's SET follows this column. */
static const struct {
	const char *key;
	unsigned apply;
} apply_cases[] = {
	{ "client_tls_sslmode", CONFIG_APPLY_TLS },
	{ "client_tls_key_file", CONFIG_APPLY_TLS },
	{ "client_tls13_ciphers", CONFIG_APPLY_TLS },
	{ "server_tls_cert_file", CONFIG_APPLY_TLS },
	{ "server_tls_sslmode", CONFIG_APPLY_TLS },
	{ "dns_max_ttl", CONFIG_APPLY_DNS },
	{ "dns_nxdomain_ttl", CONFIG_APPLY_DNS },
	{ "verbose", CONFIG_APPLY_LOG },
	{ "logfile", CONFIG_APPLY_LOG },
	{ "pkt_buf", CONFIG_APPLY_LOOP },
	{ "auth_file", CONFIG_APPLY_NONE }, /* read with the config */
	{ "read_from", CONFIG_APPLY_NONE },
	{ "default_pool_size", CONFIG_APPLY_NONE },
	{ "dns_servers", CONFIG_APPLY_NONE }, /* restart only */
};

static void test_apply_column(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(apply_cases); i++) {
		const struct config_key *k = config_find_key(apply_cases[i].key);

		assert_non_null(k);
		if (k->apply != apply_cases[i].apply)
			fail_msg("%s: apply %#x, expected %#x", k->name, k->apply,
				 apply_cases[i].apply);
	}
	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *k = &config_keys[i];

		assert_true((k->apply & ~(unsigned)CONFIG_APPLY_ALL) == 0);
		if (!k->reloadable)
			assert_int_equal(k->apply, CONFIG_APPLY_NONE);
	}
}

/* Effective values: the entry's own, else [pgmux]'s; pool_mode from [users], [databases], [pgmux]. */
static void test_effective_values(void **state)
{
	struct config *cfg = load_ok("[pgmux]\n"
				     "pool_mode = statement\n"
				     "default_pool_size = 7\n"
				     "min_pool_size = 1\n"
				     "reserve_pool_size = 2\n"
				     "max_db_connections = 9\n"
				     "max_user_connections = 11\n"
				     "[databases]\n"
				     "own = host=h pool_size=3 min_pool_size=0 reserve_pool=5 "
				     "max_db_connections=4 pool_mode=session\n"
				     "inherits = host=h\n"
				     "[users]\n"
				     "bob = pool_mode=transaction max_user_connections=6\n"
				     "eve = max_user_connections=0\n");
	const struct db_entry *own = config_find_db(cfg, "own"),
			      *inh = config_find_db(cfg, "inherits");
	const struct user_entry *bob = config_find_user(cfg, "bob"),
				*eve = config_find_user(cfg, "eve");

	(void)state;
	assert_int_equal(config_db_pool_size(cfg, own), 3);
	assert_int_equal(config_db_pool_size(cfg, inh), 7);
	assert_int_equal(config_db_pool_size(cfg, NULL), 7);
	assert_int_equal(config_db_min_pool_size(cfg, own), 0);
	assert_int_equal(config_db_min_pool_size(cfg, inh), 1);
	assert_int_equal(config_db_reserve_pool(cfg, own), 5);
	assert_int_equal(config_db_reserve_pool(cfg, inh), 2);
	assert_int_equal(config_db_max_connections(cfg, own), 4);
	assert_int_equal(config_db_max_connections(cfg, inh), 9);
	assert_int_equal(config_user_max_connections(cfg, bob), 6);
	assert_int_equal(config_user_max_connections(cfg, eve), 0);
	assert_int_equal(config_user_max_connections(cfg, NULL), 11);
	assert_int_equal(config_pool_mode(cfg, own, bob), POOL_MODE_TRANSACTION);
	assert_int_equal(config_pool_mode(cfg, own, eve), POOL_MODE_SESSION);
	assert_int_equal(config_pool_mode(cfg, inh, eve), POOL_MODE_STATEMENT);
	assert_int_equal(config_pool_mode(cfg, NULL, NULL), POOL_MODE_STATEMENT);
	config_free(cfg);
}

static void test_format_value(void **state)
{
	static const struct {
		double seconds;
		const char *shown;
	} cases[] = {
		{ 15, "15" },     { 0.5, "0.5" },        { 0, "0" },         { 0.1, "0.1" },
		{ 3600, "3600" }, { 1e9, "1000000000" }, { 0.001, "0.001" },
	};
	struct config *cfg = config_new_default();
	const struct config_key *key = config_find_key("query_timeout");
	char buf[64], small[4];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		cfg->query_timeout = cases[i].seconds;
		assert_string_equal(config_format_value(cfg, key, buf, sizeof(buf)),
				    cases[i].shown);
	}
	/* Truncated, never overflowed. */
	assert_string_equal(show(cfg, "server_reset_query", small, sizeof(small)), "DIS");
	assert_string_equal(pool_mode_name(POOL_MODE_SESSION), "session");
	assert_string_equal(pool_mode_name(POOL_MODE_TRANSACTION), "transaction");
	assert_string_equal(pool_mode_name(POOL_MODE_STATEMENT), "statement");
	assert_string_equal(pool_mode_name(POOL_MODE_INHERIT), "inherit");
	assert_string_equal(pool_mode_name(42), "unknown");
	config_free(cfg);
}

/* Every password is marked secret, shown masked, and never echoed by a parse error. */
static void test_secrets_masked(void **state)
{
	const struct {
		const struct config_key *keys;
		size_t n;
	} tables[] = {
		{ config_keys, config_key_count },
		{ config_db_keys, config_db_key_count },
		{ config_user_keys, config_user_key_count },
		{ config_cluster_keys, config_cluster_key_count },
		{ config_shards_keys, config_shards_key_count },
	};
	struct config *cfg = config_new_default();
	const struct config_key *key = config_find_key("health_check_password");
	char buf[64], path[64], err[512];

	for (size_t t = 0; t < ARRAY_LEN(tables); t++) {
		for (size_t i = 0; i < tables[t].n; i++) {
			const struct config_key *k = &tables[t].keys[i];

			if (strstr(k->name, "password") && !k->secret)
				fail_msg("key %s holds a password but is not marked secret",
					 k->name);
		}
	}
	assert_string_equal(config_show_value(cfg, key, buf, sizeof(buf)), "");
	assert_true(config_set_value(cfg, "health_check_password", "pw", err, sizeof(err)));
	assert_string_equal(config_show_value(cfg, key, buf, sizeof(buf)), "********");
	assert_string_equal(config_format_value(cfg, key, buf, sizeof(buf)), "pw");
	config_free(cfg);

	cfg = load_text("[databases]\napp = host=h =x password=Hunter2 user=u\n", path,
			sizeof(path), err, sizeof(err));
	assert_null(cfg);
	assert_non_null(strstr(err, "expected key=value"));
	assert_null(strstr(err, "Hunter2"));
}

static void test_list_contains(void **state)
{
	static const struct {
		const char *list;
		const char *name;
		bool found;
	} cases[] = {
		{ "alice,bob", "bob", true },
		{ "alice, bob", "bob", true },
		{ " alice ,  bob ", "alice", true },
		{ "alice bob", "bob", true },
		{ "alice,bob", "bo", false },
		{ "alice,bobby", "bob", false },
		{ "alice", "Alice", false },
		{ "", "alice", false },
		{ ",,", "alice", false },
		{ NULL, "alice", false },
		{ "alice", "", false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		if (config_list_contains(cases[i].list, cases[i].name) != cases[i].found)
			fail_msg("case %zu: \"%s\" in \"%s\"", i, cases[i].name,
				 cases[i].list ? cases[i].list : "(null)");
	}
}

/* --- documentation --- */

/*
 * The line of etc/pgmux.ini documenting key: "key =" or ";key =", or NULL. The value after
 * '=' is returned through value.
 */
static const char *find_ini_line(const char *text, const char *key, char *value, size_t len)
{
	size_t klen = strlen(key);

	for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line) {
		const char *p = line + (*line == ';');
		const char *eol = strchr(p, '\n');

		if (strncmp(p, key, klen) != 0 || strncmp(p + klen, " =", 2) != 0)
			continue;
		p += klen + 2;
		while (*p == ' ')
			p++;
		if (!eol)
			eol = p + strlen(p);
		snprintf(value, len, "%.*s", (int)(eol - p), p);
		return line;
	}
	return NULL;
}

static bool man_has_heading(const char *man, const char *key)
{
	char want[128];

	snprintf(want, sizeof(want), "\n.B %s\n", key);
	return strstr(man, want) != NULL;
}

static void test_docs_cover_keys(void **state)
{
	char *ini = read_whole_file("etc/pgmux.ini");
	char *man = read_whole_file("doc/pgmux.ini.5");
	char value[256];

	for (size_t i = 0; i < config_key_count; i++) {
		const struct config_key *k = &config_keys[i];

		if (!find_ini_line(ini, k->name, value, sizeof(value)))
			fail_msg("etc/pgmux.ini has no \";%s =\" line", k->name);
		if (strcmp(value, k->default_value) != 0)
			fail_msg("etc/pgmux.ini shows %s = \"%s\", the default is \"%s\"", k->name,
				 value, k->default_value);
		if (!man_has_heading(man, k->name))
			fail_msg("doc/pgmux.ini.5 has no \".B %s\" entry", k->name);
	}
	for (size_t i = 0; i < config_db_key_count; i++) {
		if (!man_has_heading(man, config_db_keys[i].name))
			fail_msg("doc/pgmux.ini.5 has no \".B %s\" entry", config_db_keys[i].name);
	}
	for (size_t i = 0; i < config_cluster_key_count; i++) {
		if (!man_has_heading(man, config_cluster_keys[i].name))
			fail_msg("doc/pgmux.ini.5 has no \".B %s\" entry",
				 config_cluster_keys[i].name);
	}
	for (size_t i = 0; i < config_shards_key_count; i++) {
		if (!man_has_heading(man, config_shards_keys[i].name))
			fail_msg("doc/pgmux.ini.5 has no \".B %s\" entry",
				 config_shards_keys[i].name);
	}
	for (size_t i = 0; i < config_peer_key_count; i++) {
		if (!man_has_heading(man, config_peer_keys[i].name))
			fail_msg("doc/pgmux.ini.5 has no \".B %s\" entry",
				 config_peer_keys[i].name);
	}
	for (size_t i = 0; i < config_user_key_count; i++) {
		if (!man_has_heading(man, config_user_keys[i].name))
			fail_msg("doc/pgmux.ini.5 has no \".B %s\" entry",
				 config_user_keys[i].name);
	}
	free(ini);
	free(man);
}

static void test_example_config_loads(void **state)
{
	char err[512];
	struct config *cfg = config_load("etc/pgmux.ini", err, sizeof(err));

	if (!cfg)
		fail_msg("etc/pgmux.ini does not load: %s", err);
	assert_string_equal(cfg->config_file, "etc/pgmux.ini");
	assert_int_equal(cfg->listen_port, 6432);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_tables),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_value_types),
		cmocka_unit_test(test_pgbouncer_alias),
		cmocka_unit_test(test_file_syntax),
		cmocka_unit_test(test_databases),
		cmocka_unit_test(test_db_fallback),
		cmocka_unit_test(test_users),
		cmocka_unit_test(test_peers),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_set_value),
		cmocka_unit_test(test_clone_set_validate),
		cmocka_unit_test(test_clone_hba),
		cmocka_unit_test(test_clone_userlist),
		cmocka_unit_test(test_apply_column),
		cmocka_unit_test(test_effective_values),
		cmocka_unit_test(test_format_value),
		cmocka_unit_test(test_secrets_masked),
		cmocka_unit_test(test_list_contains),
		cmocka_unit_test(test_clusters),
		cmocka_unit_test(test_docs_cover_keys),
		cmocka_unit_test(test_example_config_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
