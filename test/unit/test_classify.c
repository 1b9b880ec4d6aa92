/* link: src/route/classify.c src/route/sqlscan.c */
/*
 * Unit tests for the read/write classifier: a table of statements with the route expected,
 * the tricky lexing cases first-class citizens. `test_classify --bench` also times the
 * classifier on a typical SELECT (not part of make check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "route/classify.h"

#define R ROUTE_READ
#define W ROUTE_WRITE
#define TB ROUTE_TXN_BEGIN
#define TE ROUTE_TXN_END
#define TO ROUTE_TXN_OTHER
#define PIN ROUTE_SESSION_PIN
#define SET ROUTE_SET
#define HS ROUTE_HINT_SET
#define EMPTY ROUTE_EMPTY

/* Expectations beyond the class, checked only when given. */
enum {
	F_RO = 1 << 0,    /* read_only_txn */
	F_LOCAL = 1 << 1, /* set_local */
	F_PRI = 1 << 2,   /* hint primary */
	F_REP = 1 << 3,   /* hint replica */
	F_AUTO = 1 << 4,  /* hint auto */
	F_INV = 1 << 5,   /* hint invalid */
};

struct classify_case {
	const char *sql;
	enum route_class cls;
	int flags;
};

static const struct classify_case cases[] = {
	/* plain reads */
	{ "SELECT 1", R },
	{ "select * from users where id = 42", R },
	{ "SELECT a, b FROM t ORDER BY a LIMIT 10;", R },
	{ "  \n\tSELECT\n1\n", R },
	{ "SeLeCt now()", R },
	{ "VALUES (1, 'a'), (2, 'b')", R },
	{ "TABLE users", R },
	{ "table public.users;", R },
	{ "SHOW search_path", R },
	{ "show all", R },
	{ "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.id", R },
	{ "(SELECT 1) UNION (SELECT 2)", R },
	{ "((SELECT 1))", R },
	{ "SELECT * FROM t WHERE x IN (SELECT y FROM u)", R },
	{ "SELECT EXISTS (SELECT 1 FROM t)", R },
	{ "SELECT $1::int, $2", R },
	{ "SELECT 1.5e3, .5, 0x1F", R },
	{ "SELECT pg_is_in_recovery()", R },
	{ "SELECT current_setting('transaction_read_only')", R },
	{ "SELECT lower(name) FROM users", R },
	{ "SELECT * FROM generate_series(1, 10)", R },
	{ "SELECT 'a' || 'b'", R },
	{ "SELECT 1 WHERE 1 <> 2 AND 3 >= 2", R },
	{ "SELECT x FROM t WINDOW w AS (PARTITION BY y)", R },
	{ "SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t", R },
	{ "SELECT * FROM t FOR READ ONLY", R },
	{ "SELECT substring('abc' FROM 2 FOR 1)", R },
	{ "SELECT jsonb_build_object('k', 1)", R },
	{ "SELECT * FROM t LIMIT ALL OFFSET 0", R },
	{ "SELECT ARRAY[1,2,3]", R },
	{ "SELECT 1 -- trailing comment", R },
	{ "SELECT 1 /* trailing */", R },
	{ "SELECT/**/1", R },
	{ "SELECT\r\n1", R },

	/* read-only WITH */
	{ "WITH x AS (SELECT 1) SELECT * FROM x", R },
	{ "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
	  R },
	{ "with a as (select 1), b as (select 2) select * from a, b", R },
	{ "WITH x AS MATERIALIZED (SELECT 1) SELECT * FROM x", R },
	{ "WITH x AS NOT MATERIALIZED (VALUES (1)) TABLE x", R },

	/* data-modifying WITH */
	{ "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d", W },
	{ "WITH u AS (UPDATE t SET a = 1 RETURNING id) SELECT count(*) FROM u", W },
	{ "WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", W },
	{ "with d as materialized (delete from t returning *) select 1", W },
	{ "WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)", W },
	{ "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", W },
	{ "WITH x AS (SELECT 1) UPDATE t SET a = 2", W },
	{ "WITH x AS (SELECT 1) MERGE INTO t USING x ON true WHEN MATCHED THEN DELETE", W },
	{ "WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM t RETURNING 1) SELECT * FROM c) SELECT 1",
	  W },
	{ "WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) SELECT 1",
	  W },
	{ "WITH x AS (SELECT 1) SELECT * INTO newtab FROM x", W },

	/* row locks, also nested */
	{ "SELECT * FROM t WHERE id = 1 FOR UPDATE", W },
	{ "SELECT * FROM t FOR NO KEY UPDATE", W },
	{ "SELECT * FROM t FOR SHARE", W },
	{ "SELECT * FROM t FOR KEY SHARE", W },
	{ "select * from t for update skip locked", W },
	{ "SELECT * FROM t FOR UPDATE OF t NOWAIT", W },
	{ "SELECT * FROM (SELECT * FROM t FOR UPDATE) s", W },
	{ "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)", W },
	{ "(SELECT * FROM t FOR UPDATE)", W },
	{ "WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x", W },
	{ "SELECT * FROM t\nFOR\n\tUPDATE", W },
	{ "SELECT * FROM t FOR /* why not */ UPDATE", W },

	/* SELECT INTO */
	{ "SELECT * INTO newtab FROM t", W },
	{ "select a, b into backup from t where false", W },
	{ "SELECT * INTO UNLOGGED t2 FROM t", W },

	/* writes */
	{ "INSERT INTO t VALUES (1)", W },
	{ "insert into t (a) select a from u", W },
	{ "UPDATE t SET a = a + 1", W },
	{ "DELETE FROM t", W },
	{ "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", W },
	{ "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2", W },
	{ "INSERT INTO t VALUES (1) RETURNING *", W },
	{ "COPY t FROM STDIN", W },
	{ "copy t (a, b) from stdin with (format csv)", W },
	{ "COPY t FROM '/tmp/x.csv'", W },
	{ "COPY t TO PROGRAM 'gzip > /tmp/t.gz'", W },
	{ "COPY (DELETE FROM t RETURNING *) TO STDOUT", W },
	{ "COPY (SELECT nextval('s')) TO STDOUT", W },
	{ "COPY", W },
	{ "CREATE TABLE t (id int)", W },
	{ "CREATE INDEX CONCURRENTLY i ON t (a)", W },
	{ "CREATE UNLOGGED TABLE u (a int)", W },
	{ "CREATE VIEW v AS SELECT 1", W },
	{ "CREATE TABLE t2 AS SELECT * FROM t", W },
	{ "ALTER TABLE t ADD COLUMN b int", W },
	{ "DROP TABLE t", W },
	{ "TRUNCATE t", W },
	{ "GRANT SELECT ON t TO bob", W },
	{ "REVOKE ALL ON t FROM bob", W },
	{ "VACUUM ANALYZE t", W },
	{ "ANALYZE t", W },
	{ "REINDEX TABLE t", W },
	{ "CLUSTER t", W },
	{ "REFRESH MATERIALIZED VIEW mv", W },
	{ "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", W },
	{ "NOTIFY chan, 'x'", W },
	{ "CALL proc(1)", W },
	{ "DO $$ BEGIN PERFORM 1; END $$", W },
	{ "CHECKPOINT", W },
	{ "EXECUTE stmt(1)", W },
	{ "DEALLOCATE ALL", W },
	{ "FETCH 10 FROM c", W },
	{ "CLOSE c", W },
	{ "COMMENT ON TABLE t IS 'select only'", W },
	{ "SECURITY LABEL ON TABLE t IS 'x'", W },
	{ "COMMIT PREPARED 'gid1'", W },
	{ "ROLLBACK PREPARED 'gid1'", W },
	{ "START", W },
	{ "frobnicate the database", W },
	{ "\"select\" 1", W },
	{ "'select'", W },
	{ "$$select$$", W },
	{ "42", W },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", W },
	{ "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO log VALUES (1); UPDATE c SET n = n + 1)",
	  W },

	/* keywords hidden in comments, literals, quoted identifiers */
	{ "SELECT 'DELETE FROM t'", R },
	{ "SELECT * FROM t WHERE a = 'for update'", R },
	{ "SELECT 'it''s; DELETE FROM t'", R },
	{ "SELECT 1 -- ; DELETE FROM t", R },
	{ "SELECT 1 /* ; DELETE FROM t */", R },
	{ "SELECT 1 /* outer /* inner */ still; DELETE FROM t */", R },
	{ "SELECT 1 /* a /* b /* c */ */ ; UPDATE */", R },
	{ "SELECT $$ ; DELETE FROM t $$", R },
	{ "SELECT $body$ ; DROP TABLE t; $body$", R },
	{ "SELECT $a$ $b$ ; DELETE $b$ $a$", R },
	{ "SELECT $x$it's$x$, 'ok'", R },
	{ "SELECT E'\\' ; DELETE FROM t'", R },
	{ "SELECT e'a\\'b' AS s", R },
	{ "SELECT E'\\\\' FROM t", R },
	{ "SELECT '\\' FROM t", R },
	{ "SELECT \"delete\" FROM \"update\"", R },
	{ "SELECT * FROM \"delete\"", R },
	{ "SELECT \"for\" FROM t WHERE \"update\" = 1", R },
	{ "SELECT update_count, deleted_at, inserted_by FROM stats", R },
	{ "SELECT * FROM for_update_queue", R },
	{ "SELECT * FROM t AS updates", R },
	{ "SELECT intoxicated FROM t", R },
	{ "SELECT \"x;y\" FROM t", R },
	{ "SELECT 'nextval(''s'')'", R },
	{ "SELECT \"a\"\"b\" FROM t", R },
	{ "SELECT U&'d\\0061t' FROM t", R },
	{ "SELECT B'101', X'FF'", R },
	{ "SELECT $1 FROM t WHERE a = $2", R },
	{ "SELECT a$b FROM t", R },
	{ "SELECT * FROM t WHERE note = E'into \\'x\\''", R },
	{ "SELECT 1 AS \"into\"", R },
	{ "SELECT $$a$$$$b$$", R },
	{ "/* DELETE */ SELECT 1", R },
	{ "-- UPDATE t\nSELECT 1", R },
	{ "SELECT 'x' /* ' */ , 1", R },
	{ "SELECT 1 --x\n; DELETE FROM t", W },
	{ "SELECT E'\\\\'; DELETE FROM t", W },
	{ "SELECT 'a\\'; DELETE FROM t", W },
	{ "SELECT E'a''b'; SELECT 2", R },
	{ "SELECT $_$;DELETE$_$", R },
	{ "SELECT \"a;\"\"b\"; SELECT 2", R },
	{ "SELECT '\xc3\xa9'; SELECT \xc3\xb1 FROM t", R },
	{ "SELECT x$$y FROM t", R },
	{ "DELETE FROM t WHERE a = 'select'", W },
	{ "UPDATE t SET note = '/* pgmux:replica */'", W },

	/* write functions */
	{ "SELECT nextval('s')", W },
	{ "SELECT NEXTVAL('s')", W },
	{ "select public.nextval('s')", W },
	{ "SELECT pg_catalog.nextval('s')", W },
	{ "SELECT \"nextval\"('s')", W },
	{ "SELECT \"public\".\"nextval\"('s')", W },
	{ "SELECT \"NEXTVAL\"('s')", R },
	{ "SELECT nextval ('s')", W },
	{ "SELECT nextval\n('s')", W },
	{ "SELECT nextval FROM seqcols", R },
	{ "SELECT * FROM t WHERE id = nextval('s')", W },
	{ "SELECT coalesce(a, nextval('s')) FROM t", W },
	{ "VALUES (nextval('s'))", W },
	{ "SELECT setval('s', 10)", W },
	{ "SELECT currval('s')", W },
	{ "SELECT pg_advisory_xact_lock(1)", W },
	{ "SELECT pg_try_advisory_xact_lock(1, 2)", W },
	{ "SELECT pg_advisory_unlock(1)", W },
	{ "SELECT lo_create(0)", W },
	{ "SELECT lo_import('/tmp/x')", W },
	{ "SELECT pg_notify('chan', 'payload')", W },
	{ "SELECT set_config('search_path', 'x', false)", W },
	{ "SELECT txid_current()", W },
	{ "SELECT pg_current_xact_id()", W },
	{ "SELECT pg_current_wal_lsn()", W },
	{ "SELECT * FROM t WHERE EXISTS (SELECT 1 WHERE nextval('s') > 0)", W },
	{ "WITH x AS (SELECT nextval('s')) SELECT * FROM x", W },
	{ "SELECT my_nextval('s')", R },
	{ "SELECT nextvalue('s')", R },

	/* EXPLAIN */
	{ "EXPLAIN SELECT 1", R },
	{ "explain verbose select * from t", R },
	{ "EXPLAIN UPDATE t SET a = 1", R },
	{ "EXPLAIN DELETE FROM t", R },
	{ "EXPLAIN INSERT INTO t VALUES (1)", R },
	{ "EXPLAIN (COSTS OFF) UPDATE t SET a = 1", R },
	{ "EXPLAIN ANALYZE SELECT 1", R },
	{ "EXPLAIN ANALYSE VERBOSE SELECT * FROM t", R },
	{ "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", R },
	{ "EXPLAIN ANALYZE UPDATE t SET a = 1", W },
	{ "explain analyze delete from t", W },
	{ "EXPLAIN (ANALYZE) INSERT INTO t VALUES (1)", W },
	{ "EXPLAIN (ANALYZE true, FORMAT JSON) UPDATE t SET a = 1", W },
	{ "EXPLAIN (FORMAT JSON, ANALYZE on) DELETE FROM t", W },
	{ "EXPLAIN (ANALYZE false) UPDATE t SET a = 1", R },
	{ "EXPLAIN (ANALYZE off, COSTS off) DELETE FROM t", R },
	{ "EXPLAIN (ANALYZE 0) DELETE FROM t", R },
	{ "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", W },
	{ "EXPLAIN ANALYZE SELECT nextval('s')", W },
	{ "EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", W },
	{ "EXPLAIN WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", R },
	{ "EXPLAIN ANALYZE VERBOSE UPDATE t SET a = 1", W },
	{ "EXPLAIN ANALYZE CREATE TABLE t2 AS SELECT 1", W },
	{ "EXPLAIN EXECUTE s(1)", W },
	{ "EXPLAIN", W },

	/* transaction control */
	{ "BEGIN", TB },
	{ "begin;", TB },
	{ "BEGIN WORK", TB },
	{ "BEGIN TRANSACTION", TB },
	{ "BEGIN READ ONLY", TB, F_RO },
	{ "BEGIN TRANSACTION READ ONLY", TB, F_RO },
	{ "begin isolation level repeatable read, read only", TB, F_RO },
	{ "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", TB, F_RO },
	{ "BEGIN READ WRITE", TB },
	{ "BEGIN READ ONLY, READ WRITE", TB },
	{ "BEGIN ISOLATION LEVEL READ COMMITTED", TB },
	{ "START TRANSACTION", TB },
	{ "START TRANSACTION READ ONLY", TB, F_RO },
	{ "start transaction isolation level read uncommitted", TB },
	{ "BEGIN /* read only */", TB },
	{ "COMMIT", TE },
	{ "commit work", TE },
	{ "COMMIT AND NO CHAIN", TE },
	{ "END", TE },
	{ "end transaction;", TE },
	{ "ROLLBACK", TE },
	{ "ABORT", TE },
	{ "ROLLBACK AND CHAIN", TE },
	{ "PREPARE TRANSACTION 'gid1'", TE },
	{ "SAVEPOINT s1", TO },
	{ "RELEASE SAVEPOINT s1", TO },
	{ "RELEASE s1", TO },
	{ "ROLLBACK TO SAVEPOINT s1", TO },
	{ "rollback to s1", TO },
	{ "ROLLBACK WORK TO SAVEPOINT s1", TO },

	/* session state that pins */
	{ "LISTEN chan", PIN },
	{ "listen \"Chan\";", PIN },
	{ "UNLISTEN *", PIN },
	{ "PREPARE q AS SELECT 1", PIN },
	{ "PREPARE q (int) AS SELECT $1", PIN },
	{ "PREPARE transaction AS SELECT 1", PIN },
	{ "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", PIN },
	{ "declare c no scroll cursor with hold for select 1", PIN },
	{ "CREATE TEMP TABLE tt (a int)", PIN },
	{ "CREATE TEMPORARY TABLE tt AS SELECT 1", PIN },
	{ "create local temporary table tt (a int) on commit drop", PIN },
	{ "CREATE GLOBAL TEMP TABLE tt (a int)", PIN },
	{ "CREATE TEMP SEQUENCE s", PIN },
	{ "CREATE TEMP VIEW v AS SELECT 1", PIN },
	{ "CREATE OR REPLACE TEMP VIEW v AS SELECT 1", PIN },
	{ "CREATE TEMP RECURSIVE VIEW v (n) AS SELECT 1", PIN },
	{ "CREATE TABLE pg_temp.tt (a int)", PIN },
	{ "SELECT * INTO TEMP tt FROM t", PIN },
	{ "SELECT * INTO TEMPORARY TABLE tt FROM t", PIN },
	{ "SELECT pg_advisory_lock(1)", PIN },
	{ "SELECT pg_try_advisory_lock(1, 2)", PIN },
	{ "select pg_catalog.pg_advisory_lock_shared(7)", PIN },
	{ "SELECT 1 WHERE pg_try_advisory_lock(42)", PIN },
	{ "UPDATE t SET a = 1 WHERE pg_advisory_lock(1) IS NOT NULL", PIN },
	{ "SELECT dblink_connect('c', 'dbname=x')", PIN },
	{ "EXPLAIN ANALYZE SELECT pg_advisory_lock(1)", PIN },
	{ "EXPLAIN SELECT pg_advisory_lock(1)", R },
	{ "SELECT \"pg_advisory_lock\"(1)", PIN },

	/* DECLARE without HOLD follows its query (it lives in the transaction) */
	{ "DECLARE c CURSOR FOR SELECT * FROM t", R },
	{ "DECLARE c SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", R },
	{ "DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", W },
	{ "DECLARE c CURSOR", W },

	/* SET and friends */
	{ "SET search_path TO app", SET },
	{ "set statement_timeout = '5s'", SET },
	{ "SET LOCAL statement_timeout = '5s'", SET, F_LOCAL },
	{ "SET SESSION work_mem TO '64MB'", SET },
	{ "SET TRANSACTION READ ONLY", SET },
	{ "SET TIME ZONE 'UTC'", SET },
	{ "RESET search_path", SET },
	{ "RESET ALL", SET },
	{ "DISCARD ALL", SET },
	{ "SET pgmuxroute = replica", SET },
	{ "SET pgmux.other = replica", SET },

	/* routing hints */
	{ "SET pgmux.route = primary", HS, F_PRI },
	{ "SET pgmux.route TO replica", HS, F_REP },
	{ "set PGMUX.ROUTE = 'Replica';", HS, F_REP },
	{ "SET pgmux.route = auto", HS, F_AUTO },
	{ "SET pgmux.route TO DEFAULT", HS, F_AUTO },
	{ "SET SESSION pgmux.route = primary", HS, F_PRI },
	{ "SET LOCAL pgmux.route = replica", HS, F_REP | F_LOCAL },
	{ "SET \"pgmux.route\" = replica", HS, F_REP },
	{ "SET pgmux . route = replica", HS, F_REP },
	{ "SET pgmux.route = sideways", HS, F_INV },
	{ "SET pgmux.route = replica, primary", HS, F_INV },
	{ "SET pgmux.route replica", HS, F_INV },
	{ "RESET pgmux.route", HS, F_AUTO },
	{ "/* pgmux:primary */ SELECT 1", R, F_PRI },
	{ "/* pgmux:replica */ SELECT 1", R, F_REP },
	{ "/*pgmux:replica*/SELECT 1", R, F_REP },
	{ "/*  PGMUX : Replica  */ select 1", R, F_REP },
	{ "/*\n pgmux:primary\n*/\nSELECT 1", R, F_PRI },
	{ "-- pgmux:primary\nSELECT 1", R, F_PRI },
	{ "  /* app=web */ /* pgmux:replica */ SELECT 1", R, F_REP },
	{ "/* pgmux:replica */ INSERT INTO t VALUES (1)", W, F_REP },
	{ "/* pgmux:auto */ SELECT 1", R, F_AUTO },
	{ "/* pgmux:nowhere */ SELECT 1", R },
	{ "/* pgmux: primary please */ SELECT 1", R },
	{ "/* xpgmux:primary */ SELECT 1", R },
	{ "SELECT /* pgmux:primary */ 1", R },

	/* several statements in one string */
	{ "SELECT 1; SELECT 2", R },
	{ "SELECT 1;SELECT 2;", R },
	{ "SELECT 1; DELETE FROM t", W },
	{ "INSERT INTO t VALUES (1); SELECT 1", W },
	{ "SELECT 1; SELECT nextval('s')", W },
	{ "SELECT 1; LISTEN x; SELECT 2", PIN },
	{ "BEGIN; INSERT INTO t VALUES (1); COMMIT", W },
	{ "BEGIN READ ONLY; SELECT 1; COMMIT", W },
	{ "SELECT ';'; SELECT 2", R },
	{ "SELECT 1; -- ; DELETE FROM t", R },
	{ "SELECT $$;$$; SELECT '$$'; SELECT 3", R },
	{ "SET x = 1; SELECT 1", W },
	{ "SET pgmux.route = replica; SELECT 1", W },
	{ "/* pgmux:primary */ SET pgmux.route = replica; SELECT 1", W, F_PRI },
	{ "/* pgmux:replica */ SELECT 1; SELECT 2", R, F_REP },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
	  W },

	/* empty */
	{ "", EMPTY },
	{ "   ", EMPTY },
	{ ";", EMPTY },
	{ " ; ;; ", EMPTY },
	{ "-- nothing", EMPTY },
	{ "/* nothing */", EMPTY },
	{ "/* pgmux:replica */", EMPTY, F_REP },

	/* broken input: the server will refuse it; we must not crash or read past the end */
	{ "SELECT 'unterminated", R },
	{ "SELECT \"unterminated", R },
	{ "SELECT $$unterminated", R },
	{ "SELECT 1 /* unterminated", R },
	{ "SELECT E'\\", R },
	{ "SELECT (((", R },
	{ "SELECT )))", R },
	{ "DELETE FROM t WHERE (", W },
	{ "$", W },
	{ "$a", W },
	{ "/", W },
	{ "-", W },
	{ "EXPLAIN (", W },
	{ "SET pgmux.", SET },
};

static enum route_hint expected_hint(int flags)
{
	if (flags & F_PRI)
		return ROUTE_HINT_PRIMARY;
	if (flags & F_REP)
		return ROUTE_HINT_REPLICA;
	if (flags & F_AUTO)
		return ROUTE_HINT_AUTO;
	if (flags & F_INV)
		return ROUTE_HINT_INVALID;
	return ROUTE_HINT_NONE;
}

/* Each statement is also classified from an exact-size heap copy, so ASan sees any over-read. */
static void check_case(const struct classify_case *tc)
{
	size_t len = strlen(tc->sql);
	char *copy = malloc(len ? len : 1);
	struct route_result res;

	assert_non_null(copy);
	memcpy(copy, tc->sql, len);
	classify_sql(copy, len, NULL, &res);
	free(copy);
	if (res.cls != tc->cls)
		fail_msg("%s: %s, expected %s", tc->sql, route_class_name(res.cls),
			 route_class_name(tc->cls));
	if (res.read_only_txn != !!(tc->flags & F_RO))
		fail_msg("%s: read_only_txn %d", tc->sql, res.read_only_txn);
	if (res.set_local != !!(tc->flags & F_LOCAL))
		fail_msg("%s: set_local %d", tc->sql, res.set_local);
	if (res.hint != expected_hint(tc->flags))
		fail_msg("%s: hint %s", tc->sql, route_hint_name(res.hint));
	if ((res.pin_reason != NULL) != (res.cls == ROUTE_SESSION_PIN))
		fail_msg("%s: pin_reason %s", tc->sql, res.pin_reason ? res.pin_reason : "(null)");
}

static void test_table(void **state)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	(void)state;
	assert_true(n >= 200);
	for (size_t i = 0; i < n; i++)
		check_case(&cases[i]);
}

static void test_statement_count(void **state)
{
	static const struct {
		const char *sql;
		int statements;
	} counts[] = {
		{ "", 0 },
		{ ";;", 0 },
		{ "SELECT 1", 1 },
		{ "SELECT 1;", 1 },
		{ "SELECT 1; SELECT 2", 2 },
		{ "SELECT 1;; ;SELECT 2;", 2 },
		{ "SELECT ';'; SELECT \";\"; SELECT $x$;$x$", 3 },
		{ "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); DELETE FROM m)",
		  1 },
		{ "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END; CALL p()",
		  2 },
		{ "BEGIN; SELECT 1; COMMIT;", 3 },
	};
	struct route_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		classify_sql(counts[i].sql, strlen(counts[i].sql), NULL, &res);
		if (res.statements != counts[i].statements)
			fail_msg("%s: %d statements", counts[i].sql, res.statements);
	}
}

static void test_pin_reasons(void **state)
{
	struct route_result res;

	(void)state;
	classify_sql("LISTEN x", 8, NULL, &res);
	assert_string_equal(res.pin_reason, "LISTEN");
	classify_sql("CREATE TEMP TABLE t (a int)", 27, NULL, &res);
	assert_string_equal(res.pin_reason, "temporary table");
	classify_sql("SELECT pg_advisory_lock(1)", 26, NULL, &res);
	assert_string_equal(res.pin_reason, "session advisory lock");
	classify_sql("SELECT 1; PREPARE p AS SELECT 1; LISTEN x", 41, NULL, &res);
	assert_string_equal(res.pin_reason, "PREPARE");
}

/* The length bounds the text: what follows must never be looked at. */
static void test_length_bounds(void **state)
{
	static const char sql[] = "SELECT 1; DELETE FROM t";
	struct route_result res;

	(void)state;
	classify_sql(sql, 9, NULL, &res);
	assert_int_equal(res.cls, ROUTE_READ);
	assert_int_equal(res.statements, 1);
	classify_sql(sql, 8, NULL, &res);
	assert_int_equal(res.cls, ROUTE_READ);
	classify_sql(sql, sizeof(sql) - 1, NULL, &res);
	assert_int_equal(res.cls, ROUTE_WRITE);
	classify_sql("SELECT nextval('s')", 14, NULL, &res); /* "SELECT nextval": a column */
	assert_int_equal(res.cls, ROUTE_READ);
	/* NUL bytes are data, not terminators. */
	classify_sql("SET pgmux.route = 'replica\0\0'", 29, NULL, &res);
	assert_int_equal(res.cls, ROUTE_HINT_SET);
	assert_int_equal(res.hint, ROUTE_HINT_INVALID);
	classify_sql("SELECT 1\0; DELETE FROM t", 24, NULL, &res);
	assert_int_equal(res.cls, ROUTE_WRITE);
	classify_sql(NULL, 0, NULL, &res);
	assert_int_equal(res.cls, ROUTE_EMPTY);
}

static void test_custom_write_functions(void **state)
{
	static const char *const fns[] = { "audit_log", "bump_counter" };
	const struct classify_config cfg = { fns, 2 };
	struct route_result res;

	(void)state;
	classify_sql("SELECT audit_log('x')", 21, &cfg, &res);
	assert_int_equal(res.cls, ROUTE_WRITE);
	classify_sql("SELECT app.Bump_Counter()", 25, &cfg, &res);
	assert_int_equal(res.cls, ROUTE_WRITE);
	/* The list replaces the defaults... */
	classify_sql("SELECT nextval('s')", 19, &cfg, &res);
	assert_int_equal(res.cls, ROUTE_READ);
	/* ...but session advisory locks pin whatever the list says. */
	classify_sql("SELECT pg_advisory_lock(1)", 26, &cfg, &res);
	assert_int_equal(res.cls, ROUTE_SESSION_PIN);
	/* An empty list: nothing is a write function. */
	const struct classify_config none = { fns, 0 };
	classify_sql("SELECT audit_log('x')", 21, &none, &res);
	assert_int_equal(res.cls, ROUTE_READ);
}

static void test_defaults_documented(void **state)
{
	(void)state;
	assert_true(classify_n_default_write_functions >= 20);
	for (size_t i = 0; i < classify_n_default_write_functions; i++) {
		char sql[128];
		struct route_result res;
		int n = snprintf(sql, sizeof(sql), "SELECT %s()",
				 classify_default_write_functions[i]);

		classify_sql(sql, (size_t)n, NULL, &res);
		if (res.cls != ROUTE_WRITE && res.cls != ROUTE_SESSION_PIN)
			fail_msg("%s: %s", sql, route_class_name(res.cls));
	}
}

/* Deep EXPLAIN/DECLARE nesting is not SQL, but must not exhaust the stack. */
static void test_nesting_bounded(void **state)
{
	static char sql[64 * 1024];
	size_t len = 0;
	struct route_result res;

	(void)state;
	while (len + 8 < sizeof(sql)) {
		memcpy(sql + len, "EXPLAIN ", 8);
		len += 8;
	}
	classify_sql(sql, len, NULL, &res);
	assert_int_equal(res.cls, ROUTE_WRITE);
	assert_int_equal(res.statements, 1);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(route_class_name(ROUTE_READ), "read");
	assert_string_equal(route_class_name(ROUTE_SESSION_PIN), "session_pin");
	assert_string_equal(route_class_name(ROUTE_HINT_SET), "hint_set");
	assert_string_equal(route_hint_name(ROUTE_HINT_REPLICA), "replica");
	assert_string_equal(route_hint_name(ROUTE_HINT_INVALID), "invalid");
}

/* By hand: ./test_classify --bench. A typical ~100-byte SELECT from an ORM. */
static int bench(void)
{
	static const char sql[] =
		"SELECT u.id, u.name, u.email FROM users u "
		"WHERE u.account_id = $1 AND u.deleted_at IS NULL ORDER BY u.id LIMIT 50";
	const long iters = 5000000;
	struct timespec t0, t1;
	struct route_result res;
	volatile int sink = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < iters; i++) {
		classify_sql(sql, sizeof(sql) - 1, NULL, &res);
		sink += (int)res.cls;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
		    (double)iters;
	printf("classify_sql: %zu-byte SELECT, %ld iterations, %.1f ns/statement (%s)\n",
	       sizeof(sql) - 1, iters, ns, route_class_name(res.cls));
	return sink == -1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_statement_count),
		cmocka_unit_test(test_pin_reasons),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_custom_write_functions),
		cmocka_unit_test(test_defaults_documented),
		cmocka_unit_test(test_nesting_bounded),
		cmocka_unit_test(test_names),
	};

	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return bench();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
