/* link: src/admin/parse.c */
/*
 * Unit tests for admin/parse: every command and SHOW item, case and whitespace freedom, the
 * optional ';', comments, quoted names and SET values, and the refusals with their status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admin/parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *sql;
	enum admin_verb verb;
	enum admin_show show; /* ADMIN_SHOW only */
	const char *arg;
	const char *value;
} accepted[] = {
	{ "", ADMIN_EMPTY, 0, "", "" },
	{ "  ;  ", ADMIN_EMPTY, 0, "", "" },
	{ "-- nothing\n", ADMIN_EMPTY, 0, "", "" },
	{ "SHOW HELP", ADMIN_SHOW, ADMIN_SHOW_HELP, "", "" },
	{ "show version;", ADMIN_SHOW, ADMIN_SHOW_VERSION, "", "" },
	{ "Show Config", ADMIN_SHOW, ADMIN_SHOW_CONFIG, "", "" },
	{ "SHOW DATABASES", ADMIN_SHOW, ADMIN_SHOW_DATABASES, "", "" },
	{ "  SHOW\n\tPOOLS  ;  ", ADMIN_SHOW, ADMIN_SHOW_POOLS, "", "" },
	{ "SHOW CLIENTS", ADMIN_SHOW, ADMIN_SHOW_CLIENTS, "", "" },
	{ "SHOW SERVERS", ADMIN_SHOW, ADMIN_SHOW_SERVERS, "", "" },
	{ "SHOW STATS", ADMIN_SHOW, ADMIN_SHOW_STATS, "", "" },
	{ "show stats_totals", ADMIN_SHOW, ADMIN_SHOW_STATS_TOTALS, "", "" },
	{ "SHOW STATS_AVERAGES;", ADMIN_SHOW, ADMIN_SHOW_STATS_AVERAGES, "", "" },
	{ "SHOW TOTALS", ADMIN_SHOW, ADMIN_SHOW_TOTALS, "", "" },
	{ "SHOW LISTS", ADMIN_SHOW, ADMIN_SHOW_LISTS, "", "" },
	{ "SHOW USERS", ADMIN_SHOW, ADMIN_SHOW_USERS, "", "" },
	{ "SHOW MEM", ADMIN_SHOW, ADMIN_SHOW_MEM, "", "" },
	{ "show state;", ADMIN_SHOW, ADMIN_SHOW_STATE, "", "" },
	{ "SHOW DNS_HOSTS", ADMIN_SHOW, ADMIN_SHOW_DNS_HOSTS, "", "" },
	{ "show dns_zones", ADMIN_SHOW, ADMIN_SHOW_DNS_ZONES, "", "" },
	{ "SHOW SOCKETS", ADMIN_SHOW, ADMIN_SHOW_SOCKETS, "", "" },
	{ "show active_sockets;", ADMIN_SHOW, ADMIN_SHOW_ACTIVE_SOCKETS, "", "" },
	{ "show peers", ADMIN_SHOW, ADMIN_SHOW_PEERS, "", "" },
	{ "SHOW PEER_POOLS;", ADMIN_SHOW, ADMIN_SHOW_PEER_POOLS, "", "" },
	{ "/* scripts add these */ SHOW /* here too */ POOLS -- and here", ADMIN_SHOW,
	  ADMIN_SHOW_POOLS, "", "" },
	{ "PAUSE", ADMIN_PAUSE, 0, "", "" },
	{ "pause app;", ADMIN_PAUSE, 0, "app", "" },
	{ "PAUSE My_DB", ADMIN_PAUSE, 0, "My_DB", "" },
	{ "PAUSE app-2.test$", ADMIN_PAUSE, 0, "app-2.test$", "" },
	{ "PAUSE \"odd \"\"name\"\"\"", ADMIN_PAUSE, 0, "odd \"name\"", "" },
	{ "PAUSE app--comment", ADMIN_PAUSE, 0, "app", "" },
	{ "RESUME", ADMIN_RESUME, 0, "", "" },
	{ "resume app", ADMIN_RESUME, 0, "app", "" },
	{ "RECONNECT", ADMIN_RECONNECT, 0, "", "" },
	{ "RECONNECT app", ADMIN_RECONNECT, 0, "app", "" },
	{ "KILL app", ADMIN_KILL, 0, "app", "" },
	{ "disable app ;", ADMIN_DISABLE, 0, "app", "" },
	{ "ENABLE app", ADMIN_ENABLE, 0, "app", "" },
	{ "WAIT_CLOSE", ADMIN_WAIT_CLOSE, 0, "", "" },
	{ "wait_close app", ADMIN_WAIT_CLOSE, 0, "app", "" },
	{ "RELOAD", ADMIN_RELOAD, 0, "", "" },
	{ "reload;", ADMIN_RELOAD, 0, "", "" },
	{ "SHUTDOWN", ADMIN_SHUTDOWN, 0, "", "" },
	{ "shutdown wait_for_clients;", ADMIN_SHUTDOWN, 0, "WAIT_FOR_CLIENTS", "" },
	{ "SHUTDOWN WAIT_FOR_SERVERS", ADMIN_SHUTDOWN, 0, "WAIT_FOR_SERVERS", "" },
	{ "KILL_CLIENT 0x55d0c1a2b3c0", ADMIN_KILL_CLIENT, 0, "0x55d0c1a2b3c0", "" },
	{ "kill_client 17 ;", ADMIN_KILL_CLIENT, 0, "17", "" },
	{ "SET default_pool_size = 30", ADMIN_SET, 0, "default_pool_size", "30" },
	{ "set pool_mode=transaction;", ADMIN_SET, 0, "pool_mode", "transaction" },
	{ "SET pool_mode TO statement", ADMIN_SET, 0, "pool_mode", "statement" },
	{ "SET server_reset_query = 'DISCARD ALL'", ADMIN_SET, 0, "server_reset_query",
	  "DISCARD ALL" },
	{ "SET server_reset_query = DISCARD ALL ;", ADMIN_SET, 0, "server_reset_query",
	  "DISCARD ALL" },
	{ "SET server_check_query = 'select ''x'';'", ADMIN_SET, 0, "server_check_query",
	  "select 'x';" },
	{ "SET server_reset_query = ''", ADMIN_SET, 0, "server_reset_query", "" },
	{ "SET Verbose = 2", ADMIN_SET, 0, "Verbose", "2" },
};

static void test_accepted(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(accepted); i++) {
		struct admin_cmd cmd;
		char err[256];
		enum admin_parse_status st = admin_parse(accepted[i].sql, &cmd, err, sizeof(err));

		if (st != ADMIN_PARSE_OK)
			fail_msg("\"%s\": %s", accepted[i].sql, err);
		assert_int_equal(cmd.verb, accepted[i].verb);
		if (cmd.verb == ADMIN_SHOW)
			assert_int_equal(cmd.show, accepted[i].show);
		assert_string_equal(cmd.arg, accepted[i].arg);
		assert_string_equal(cmd.value, accepted[i].value);
	}
}

static const struct {
	const char *sql;
	enum admin_parse_status status;
	const char *err_contains;
} refused[] = {
	{ "HELLO", ADMIN_PARSE_SYNTAX, "invalid command" },
	{ "SHOWPOOLS", ADMIN_PARSE_SYNTAX, "invalid command" },
	{ "SHOW", ADMIN_PARSE_SYNTAX, "SHOW needs an item" },
	{ "SHOW ;", ADMIN_PARSE_SYNTAX, "SHOW needs an item" },
	{ "SHOW NOTHING", ADMIN_PARSE_SYNTAX, "unknown SHOW item \"NOTHING\"" },
	{ "SHOW POOLS extra", ADMIN_PARSE_SYNTAX, "takes no arguments" },
	{ "SHOW POOLS; SHOW CLIENTS", ADMIN_PARSE_SYNTAX, "takes no arguments" },
	{ "SHOW POOLS;;", ADMIN_PARSE_SYNTAX, "takes no arguments" },
	{ "SHOW FDS", ADMIN_PARSE_UNSUPPORTED, "SHOW FDS is not supported" },
	{ "show peers now", ADMIN_PARSE_SYNTAX, "SHOW PEERS takes no arguments" },
	{ "SHOW SOCKETS now", ADMIN_PARSE_SYNTAX, "SHOW SOCKETS takes no arguments" },
	{ "SHOW ACTIVE_SOCKET", ADMIN_PARSE_SYNTAX, "unknown SHOW item \"ACTIVE_SOCKET\"" },
	{ "SUSPEND", ADMIN_PARSE_UNSUPPORTED, "SUSPEND is not supported" },
	{ "select 1", ADMIN_PARSE_UNSUPPORTED, "SELECT is not supported" },
	{ "KILL", ADMIN_PARSE_SYNTAX, "KILL needs a database name" },
	{ "DISABLE ;", ADMIN_PARSE_SYNTAX, "DISABLE needs a database name" },
	{ "ENABLE", ADMIN_PARSE_SYNTAX, "ENABLE needs a database name" },
	{ "KILL a b", ADMIN_PARSE_SYNTAX, "takes one database name" },
	{ "PAUSE a b", ADMIN_PARSE_SYNTAX, "takes at most one database name" },
	{ "PAUSE 'app'", ADMIN_PARSE_SYNTAX, "bad database name" },
	{ "PAUSE \"\"", ADMIN_PARSE_SYNTAX, "empty database name" },
	{ "PAUSE \"app", ADMIN_PARSE_SYNTAX, "unterminated quoted database name" },
	{ "RELOAD now", ADMIN_PARSE_SYNTAX, "RELOAD takes no arguments" },
	{ "SHUTDOWN please", ADMIN_PARSE_SYNTAX, "SHUTDOWN [WAIT_FOR_CLIENTS | WAIT_FOR_SERVERS]" },
	{ "SHUTDOWN WAIT_FOR_SERVERS now", ADMIN_PARSE_SYNTAX, "SHUTDOWN [WAIT_FOR_CLIENTS" },
	{ "KILL_CLIENT", ADMIN_PARSE_SYNTAX, "KILL_CLIENT needs a client id" },
	{ "MOVE", ADMIN_PARSE_SYNTAX, "MOVE BUCKETS set buckets TO shard, MOVE CLEANUP" },
	{ "MOVE BUCKETS users", ADMIN_PARSE_SYNTAX, "MOVE BUCKETS set buckets TO shard (" },
	{ "MOVE BUCKETS users 0-9 b", ADMIN_PARSE_SYNTAX, "MOVE BUCKETS set buckets TO shard (" },
	{ "MOVE BUCKETS users x TO b", ADMIN_PARSE_SYNTAX, "MOVE BUCKETS set buckets TO shard (" },
	{ "MOVE BUCKETS users 0-9 TO b c", ADMIN_PARSE_SYNTAX, "MOVE BUCKETS set buckets TO" },
	{ "MOVE ABORT", ADMIN_PARSE_SYNTAX, "MOVE ABORT takes one move id" },
	{ "MOVE CLEANUP 1 2", ADMIN_PARSE_SYNTAX, "MOVE CLEANUP takes one move id" },
	{ "KILL_CLIENT 'x'", ADMIN_PARSE_SYNTAX, "KILL_CLIENT needs a client id" },
	{ "KILL_CLIENT 1 2", ADMIN_PARSE_SYNTAX, "KILL_CLIENT takes one client id" },
	{ "SET", ADMIN_PARSE_SYNTAX, "SET needs key = value" },
	{ "SET pool_mode", ADMIN_PARSE_SYNTAX, "SET needs key = value" },
	{ "SET pool_mode =", ADMIN_PARSE_SYNTAX, "SET needs a value" },
	{ "SET pool_mode = ;", ADMIN_PARSE_SYNTAX, "SET needs a value" },
	{ "SET a = 'b", ADMIN_PARSE_SYNTAX, "unterminated quoted value" },
	{ "SET a = 'b' c", ADMIN_PARSE_SYNTAX, "unexpected text after the value" },
	{ "SET a = b; SHOW POOLS", ADMIN_PARSE_SYNTAX, "unexpected text after the value" },
};

static void test_refused(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
		struct admin_cmd cmd;
		char err[256];
		enum admin_parse_status st = admin_parse(refused[i].sql, &cmd, err, sizeof(err));

		if (st != refused[i].status)
			fail_msg("\"%s\": status %d, want %d (%s)", refused[i].sql, st,
				 refused[i].status, err);
		if (!strstr(err, refused[i].err_contains))
			fail_msg("\"%s\": error \"%s\" lacks \"%s\"", refused[i].sql, err,
				 refused[i].err_contains);
		if (st == ADMIN_PARSE_SYNTAX)
			assert_memory_equal(err, "invalid command", strlen("invalid command"));
	}
}

/* Names and values that do not fit are refused, never cut short. */
static void test_lengths(void **state)
{
	char sql[ADMIN_VALUE_MAX + 64], err[256];
	struct admin_cmd cmd;
	char name[ADMIN_NAME_MAX + 1];

	memset(name, 'd', ADMIN_NAME_MAX - 1);
	name[ADMIN_NAME_MAX - 1] = '\0';
	snprintf(sql, sizeof(sql), "PAUSE %s", name);
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_string_equal(cmd.arg, name);
	snprintf(sql, sizeof(sql), "PAUSE \"%s\"", name);
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_string_equal(cmd.arg, name);

	name[ADMIN_NAME_MAX - 1] = 'd';
	name[ADMIN_NAME_MAX] = '\0';
	snprintf(sql, sizeof(sql), "PAUSE %s", name);
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_SYNTAX);
	assert_non_null(strstr(err, "too long"));
	snprintf(sql, sizeof(sql), "PAUSE \"%s\"", name);
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_SYNTAX);
	snprintf(sql, sizeof(sql), "SET %s = 1", name);
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_SYNTAX);

	strcpy(sql, "SET k = '");
	memset(sql + strlen(sql), 'v', ADMIN_VALUE_MAX - 1);
	strcpy(sql + strlen("SET k = '") + ADMIN_VALUE_MAX - 1, "'");
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_int_equal(strlen(cmd.value), ADMIN_VALUE_MAX - 1);
	strcpy(sql + strlen("SET k = '") + ADMIN_VALUE_MAX - 1, "v'");
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_SYNTAX);
	strcpy(sql + strlen("SET k = '") + ADMIN_VALUE_MAX - 1, "v");
	memcpy(sql, "SET k = v", strlen("SET k = v"));
	assert_int_equal(admin_parse(sql, &cmd, err, sizeof(err)), ADMIN_PARSE_SYNTAX);
}

/* A failed parse leaves no stale fields, and a tiny error buffer is respected. */
static void test_output_always_written(void **state)
{
	struct admin_cmd cmd;
	char err[8];

	assert_int_equal(admin_parse("SET a = b", &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_int_equal(admin_parse("KILL", &cmd, err, sizeof(err)), ADMIN_PARSE_SYNTAX);
	assert_string_equal(cmd.arg, "");
	assert_string_equal(cmd.value, "");
	assert_string_equal(err, "invalid");
	assert_int_equal(admin_parse("nonsense", &cmd, NULL, 0), ADMIN_PARSE_SYNTAX);
}

/* SHUTDOWN's mode: plain SHUTDOWN waits for clients, as SIGTERM does. */
static void test_shutdown_mode(void **state)
{
	static const struct {
		const char *sql;
		enum admin_shutdown_mode mode;
	} cases[] = {
		{ "SHUTDOWN", ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS },
		{ "SHUTDOWN WAIT_FOR_CLIENTS", ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS },
		{ "Shutdown Wait_For_Servers ;", ADMIN_SHUTDOWN_WAIT_FOR_SERVERS },
		{ "SHUTDOWN /* safe */ WAIT_FOR_SERVERS", ADMIN_SHUTDOWN_WAIT_FOR_SERVERS },
	};
	struct admin_cmd cmd;
	char err[256];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		assert_int_equal(admin_parse(cases[i].sql, &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
		assert_int_equal(cmd.verb, ADMIN_SHUTDOWN);
		assert_int_equal(cmd.shutdown, cases[i].mode);
	}
}

/* MOVE's three forms fill the section, the buckets and the target, or the id. */
static void test_move(void **state)
{
	struct admin_cmd cmd;
	char err[256];

	(void)state;
	assert_int_equal(admin_parse("move buckets users 0-1023,2048 to b;", &cmd, err,
				     sizeof(err)),
			 ADMIN_PARSE_OK);
	assert_int_equal(cmd.verb, ADMIN_MOVE);
	assert_string_equal(cmd.arg, "users");
	assert_string_equal(cmd.value, "0-1023,2048");
	assert_string_equal(cmd.target, "b");
	assert_int_equal(admin_parse("MOVE BUCKETS \"My Set\" 7 TO \"x y\"", &cmd, err,
				     sizeof(err)),
			 ADMIN_PARSE_OK);
	assert_string_equal(cmd.arg, "My Set");
	assert_string_equal(cmd.value, "7");
	assert_string_equal(cmd.target, "x y");
	assert_int_equal(admin_parse("MOVE ABORT 3", &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_int_equal(cmd.verb, ADMIN_MOVE_ABORT);
	assert_string_equal(cmd.arg, "3");
	assert_int_equal(admin_parse("move cleanup 12", &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_int_equal(cmd.verb, ADMIN_MOVE_CLEANUP);
	assert_string_equal(cmd.arg, "12");
	assert_string_equal(admin_verb_tag(ADMIN_MOVE_CLEANUP), "MOVE");
	assert_string_equal(admin_verb_tag(ADMIN_MOVE_ABORT), "MOVE");
	assert_int_equal(admin_parse("SHOW MOVES", &cmd, err, sizeof(err)), ADMIN_PARSE_OK);
	assert_int_equal(cmd.show, ADMIN_SHOW_MOVES);
}

static void test_names(void **state)
{
	assert_string_equal(admin_verb_tag(ADMIN_KILL_CLIENT), "KILL_CLIENT");
	assert_string_equal(admin_verb_tag(ADMIN_PAUSE), "PAUSE");
	assert_string_equal(admin_verb_tag(ADMIN_WAIT_CLOSE), "WAIT_CLOSE");
	assert_string_equal(admin_verb_tag(ADMIN_SET), "SET");
	assert_string_equal(admin_verb_tag(ADMIN_SHOW), "SHOW");
	assert_string_equal(admin_show_name(ADMIN_SHOW_STATS_AVERAGES), "STATS_AVERAGES");
	assert_string_equal(admin_show_name(ADMIN_SHOW_MEM), "MEM");
	assert_string_equal(admin_show_name(ADMIN_SHOW_STATE), "STATE");
	assert_string_equal(admin_show_name(ADMIN_SHOW_ACTIVE_SOCKETS), "ACTIVE_SOCKETS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),      cmocka_unit_test(test_refused),
		cmocka_unit_test(test_lengths),       cmocka_unit_test(test_output_always_written),
		cmocka_unit_test(test_shutdown_mode), cmocka_unit_test(test_names),
		cmocka_unit_test(test_move),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
