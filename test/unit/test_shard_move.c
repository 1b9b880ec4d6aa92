/*
 * Unit tests for shard/move: the steps' transitions, bucket lists as the console takes them,
 * the SQL of each step (quoting, the bucket predicate per key type, the publication and
 * subscription), table lists from the server, LSNs, and the column comparison of the check.
 */
/* link: src/shard/move.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/key.h"
#include "shard/move.h"

static void test_steps(void **state)
{
	static const enum move_step happy[] = {
		MOVE_CHECK,  MOVE_COPY, MOVE_CATCHUP, MOVE_HOLD,
		MOVE_SWITCH, MOVE_DONE, MOVE_CLEANUP, MOVE_CLEANED
	};

	(void)state;
	for (size_t i = 0; i + 1 < sizeof(happy) / sizeof(happy[0]); i++) {
		assert_int_equal(move_step_next(happy[i]), happy[i + 1]);
		assert_true(move_step_allowed(happy[i], happy[i + 1]));
		/* no step goes back, but a failed clean-up returns to done */
		if (happy[i + 1] != MOVE_CLEANUP)
			assert_false(move_step_allowed(happy[i + 1], happy[i]));
	}
	/* before the switch a failure rolls back; after it, only clean-up remains */
	for (enum move_step s = MOVE_CHECK; s <= MOVE_SWITCH; s++) {
		assert_int_equal(move_step_on_failure(s), MOVE_ROLLBACK);
		assert_true(move_step_allowed(s, MOVE_ROLLBACK));
		assert_false(move_step_switched(s));
	}
	assert_int_equal(move_step_on_failure(MOVE_DONE), MOVE_DONE);
	assert_int_equal(move_step_on_failure(MOVE_CLEANUP), MOVE_DONE);
	assert_true(move_step_allowed(MOVE_CLEANUP, MOVE_DONE));
	assert_false(move_step_allowed(MOVE_DONE, MOVE_ROLLBACK));
	assert_false(move_step_allowed(MOVE_CHECK, MOVE_DONE));
	assert_false(move_step_allowed(MOVE_CATCHUP, MOVE_SWITCH));
	assert_int_equal(move_step_next(MOVE_ROLLBACK), MOVE_FAILED);
	assert_int_equal(move_step_next(MOVE_FAILED), MOVE_FAILED);
	assert_false(move_step_allowed(MOVE_FAILED, MOVE_FAILED));
	/* a rollback that left something behind is run again */
	assert_true(move_step_allowed(MOVE_FAILED, MOVE_ROLLBACK));
	assert_false(move_step_allowed(MOVE_FAILED, MOVE_CHECK));
	assert_true(move_step_switched(MOVE_DONE) && move_step_switched(MOVE_CLEANED));
	assert_true(move_step_holds(MOVE_HOLD) && move_step_holds(MOVE_SWITCH));
	assert_false(move_step_holds(MOVE_CATCHUP) || move_step_holds(MOVE_DONE));
	assert_string_equal(move_step_name(MOVE_CATCHUP), "catch-up");
	assert_string_equal(move_step_name(MOVE_FAILED), "failed");
}

static void test_buckets(void **state)
{
	struct move_range r[MOVE_RANGES_MAX];
	char err[128], text[128];
	int n;

	(void)state;
	assert_true(
		move_parse_buckets("3277-4095", 16384, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_int_equal(n, 1);
	assert_int_equal(r[0].first, 3277);
	assert_int_equal(r[0].last, 4095);
	/* sorted, adjacent runs joined */
	assert_true(move_parse_buckets("200,0-99,100-150", 256, r, MOVE_RANGES_MAX, &n, err,
				       sizeof(err)));
	assert_int_equal(n, 2);
	move_ranges_format(r, n, text, sizeof(text));
	assert_string_equal(text, "0-150,200");
	assert_int_equal(move_ranges_count(r, n), 152);
	assert_true(move_ranges_contain(r, n, 150));
	assert_true(move_ranges_contain(r, n, 200));
	assert_false(move_ranges_contain(r, n, 151));
	assert_false(move_ranges_contain(r, n, 255));

	assert_false(move_parse_buckets("5-3", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_false(move_parse_buckets("16", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_non_null(strstr(err, "beyond"));
	assert_false(move_parse_buckets("0-5,3-4", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_non_null(strstr(err, "overlap"));
	assert_false(move_parse_buckets("", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_false(move_parse_buckets("1-", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_false(move_parse_buckets("1 x", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_false(
		move_parse_buckets("99999999999", 16, r, MOVE_RANGES_MAX, &n, err, sizeof(err)));
	assert_false(move_parse_buckets("1,2,3", 16, r, 2, &n, err, sizeof(err)));
}

static void test_quoting(void **state)
{
	char *s;

	(void)state;
	assert_string_equal(s = move_quote_ident("user_id"), "\"user_id\"");
	free(s);
	assert_string_equal(s = move_quote_ident("we\"ird"), "\"we\"\"ird\"");
	free(s);
	assert_string_equal(s = move_quote_literal("host=x password='it''s'"),
			    "'host=x password=''it''''s'''");
	free(s);
	assert_string_equal(s = move_quote_literal("a\\b"), "'a\\b'");
	free(s);
}

static void test_predicate(void **state)
{
	struct move_range r[] = { { 0, 99 }, { 200, 200 } };
	struct move_spec sp = { .key_type = SHARD_KEY_INT,
				.key = "user_id",
				.seed = 0,
				.n_buckets = 16384,
				.ranges = r,
				.n_ranges = 2 };
	char *s;

	(void)state;
	s = move_sql_predicate(&sp);
	assert_string_equal(s,
			    "(hashint8extended(\"user_id\"::int8, 0) & 16383) BETWEEN 0 AND 99 OR "
			    "(hashint8extended(\"user_id\"::int8, 0) & 16383) = 200");
	free(s);
	sp.key_type = SHARD_KEY_TEXT;
	sp.key = "Tenant\"Id";
	sp.seed = (uint64_t)-5;
	sp.n_ranges = 1;
	s = move_sql_predicate(&sp);
	assert_string_equal(s, "(hashtextextended(\"Tenant\"\"Id\", -5) & 16383) BETWEEN 0 AND 99");
	free(s);
	sp.key_type = SHARD_KEY_UUID;
	sp.key = "id";
	sp.seed = 7;
	sp.n_buckets = 1024;
	r[0].first = r[0].last = 3;
	s = move_sql_predicate(&sp);
	assert_string_equal(s, "(uuid_hash_extended(\"id\", 7) & 1023) = 3");
	free(s);
	sp.n_ranges = 0;
	s = move_sql_predicate(&sp);
	assert_string_equal(s, "false");
	free(s);
}

static void test_tables(void **state)
{
	char **t, err[128];
	int n;

	(void)state;
	n = move_split_tables("public.orders, \"Sales\".\"a, \"\"b\"\"\", s2.t_1", &t, err,
			      sizeof(err));
	assert_int_equal(n, 3);
	assert_string_equal(t[0], "public.orders");
	assert_string_equal(t[1], "\"Sales\".\"a, \"\"b\"\"\"");
	assert_string_equal(t[2], "s2.t_1");
	move_tables_free(t, n);
	assert_int_equal(move_split_tables("", &t, err, sizeof(err)), 0);
	/* anything but quote_ident's output is refused: nothing unquoted reaches SQL */
	assert_int_equal(move_split_tables("public.users; DROP TABLE x", &t, err, sizeof(err)), -1);
	assert_int_equal(move_split_tables("users", &t, err, sizeof(err)), -1);
	assert_int_equal(move_split_tables("Public.users", &t, err, sizeof(err)), -1);
	assert_int_equal(move_split_tables("public.\"open", &t, err, sizeof(err)), -1);
	assert_int_equal(move_split_tables("a.b,c.d", &t, err, sizeof(err)), -1);
}

static void test_statements(void **state)
{
	struct move_range r[] = { { 8, 15 } };
	struct move_spec sp = { .key_type = SHARD_KEY_INT,
				.key = "user_id",
				.seed = 0,
				.n_buckets = 16,
				.ranges = r,
				.n_ranges = 1 };
	char *tables[] = { "public.users", "public.orders" };
	char *s;

	(void)state;
	s = move_sql_publication("pgmux_move_1_1", tables, 2, &sp);
	assert_string_equal(s, "CREATE PUBLICATION \"pgmux_move_1_1\" FOR TABLE public.users WHERE "
			       "((hashint8extended(\"user_id\"::int8, 0) & 15) BETWEEN 8 AND 15), "
			       "public.orders WHERE ((hashint8extended(\"user_id\"::int8, 0) & 15) "
			       "BETWEEN 8 AND 15) WITH (publish = 'insert, update, delete')");
	free(s);
	s = move_sql_subscription("pgmux_move_1_1", "hostaddr='127.0.0.1' port='5432'");
	assert_string_equal(s,
			    "CREATE SUBSCRIPTION \"pgmux_move_1_1\" CONNECTION "
			    "'hostaddr=''127.0.0.1'' port=''5432''' PUBLICATION \"pgmux_move_1_1\" "
			    "WITH (copy_data = true, create_slot = true, enabled = true, "
			    "synchronous_commit = 'on', slot_name = 'pgmux_move_1_1')");
	free(s);
	s = move_sql_count_rows(tables, 2, &sp);
	assert_string_equal(s, "SELECT 0 + (SELECT count(*) FROM public.users WHERE "
			       "(hashint8extended(\"user_id\"::int8, 0) & 15) BETWEEN 8 AND 15) + "
			       "(SELECT count(*) FROM public.orders WHERE "
			       "(hashint8extended(\"user_id\"::int8, 0) & 15) BETWEEN 8 AND 15)");
	free(s);
	s = move_sql_delete_batch("public.users", &sp, 5000);
	assert_string_equal(
		s, "WITH d AS (DELETE FROM public.users WHERE ctid = ANY (ARRAY(SELECT "
		   "ctid FROM public.users WHERE (hashint8extended(\"user_id\"::int8, 0) & "
		   "15) BETWEEN 8 AND 15 LIMIT 5000)) AND ((hashint8extended("
		   "\"user_id\"::int8, 0) & 15) BETWEEN 8 AND 15) RETURNING 1) "
		   "SELECT count(*) FROM d");
	free(s);
	s = move_sql_drop_publication("pgmux_move_1_1");
	assert_string_equal(s, "DROP PUBLICATION IF EXISTS \"pgmux_move_1_1\"");
	free(s);
	s = move_sql_drop_subscription("pgmux_move_1_1");
	assert_string_equal(s, "DROP SUBSCRIPTION IF EXISTS \"pgmux_move_1_1\"");
	free(s);
	s = move_sql_detach_subscription("pgmux_move_1_1");
	assert_non_null(strstr(s, "subname = 'pgmux_move_1_1'"));
	assert_non_null(strstr(s, "'ALTER SUBSCRIPTION ' || '\"pgmux_move_1_1\"' || ' DISABLE'"));
	assert_non_null(strstr(s, "SET (slot_name = NONE)"));
	free(s);
	/* the check queries take the key column as a parameter, never spliced in */
	assert_non_null(strstr(move_sql_check_source, "a.attname = $1"));
	assert_non_null(strstr(move_sql_check_target, "a.attname = $1"));
	/* the position to reach covers asynchronous commits: the insert position, not the write */
	assert_non_null(strstr(move_sql_wal_position, "pg_current_wal_insert_lsn()"));
	assert_null(strstr(move_sql_slot_position, "pg_current_wal_lsn()"));
}

static void test_columns(void **state)
{
	char why[256];

	(void)state;
	assert_true(
		move_columns_match("public.a id bigint, n text\npublic.b id bigint",
				   "public.a id bigint, n text\npublic.b id bigint\npublic.c x int",
				   why, sizeof(why)));
	assert_true(move_columns_match("", "public.a id bigint", why, sizeof(why)));
	assert_false(move_columns_match("public.a id bigint, n text", "public.a id bigint", why,
					sizeof(why)));
	assert_non_null(strstr(why, "other columns"));
	assert_false(move_columns_match("public.b id bigint",
					"public.a id bigint\npublic.bb id "
					"bigint",
					why, sizeof(why)));
	assert_non_null(strstr(why, "public.b is not on the target"));
}

static void test_sequences(void **state)
{
	char why[256];

	(void)state;
	/* the same default sequence on both shards: values collide */
	assert_true(move_sequences_clash("public.t_id_seq 1 1 9223372036854775807 1",
					 "public.t_id_seq 1 1 9223372036854775807 1", why,
					 sizeof(why)));
	assert_non_null(strstr(why, "public.t_id_seq"));
	/* disjoint ranges, or one increment stepping through different residues: fine */
	assert_false(move_sequences_clash("public.t_id_seq 1 1 999999 1",
					  "public.t_id_seq 1 1000000 9223372036854775807 1000000",
					  why, sizeof(why)));
	assert_false(move_sequences_clash("public.t_id_seq 2 1 100 1\ns.u 1 1 5 1",
					  "public.t_id_seq 2 1 100 2\ns.u 1 6 9 6", why,
					  sizeof(why)));
	assert_true(move_sequences_clash("public.t_id_seq 2 1 100 1", "public.t_id_seq 2 1 100 3",
					 why, sizeof(why)));
	/* only sequences the two shards share are compared */
	assert_false(
		move_sequences_clash("public.a 1 1 9 1", "public.b 1 1 9 1", why, sizeof(why)));
	assert_false(move_sequences_clash("", "public.b 1 1 9 1", why, sizeof(why)));
	assert_false(move_sequences_clash("garbage", "garbage", why, sizeof(why)));
	/* the check queries report them */
	assert_non_null(strstr(move_sql_check_source, "pg_sequences"));
	assert_non_null(strstr(move_sql_check_target, "pg_sequences"));
}

static void test_object_name(void **state)
{
	char name[64];

	(void)state;
	move_object_name(name, sizeof(name), 1700000000123456ULL, 3);
	assert_string_equal(name, "pgmux_move_1700000000123456_3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steps),     cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_quoting),   cmocka_unit_test(test_predicate),
		cmocka_unit_test(test_tables),    cmocka_unit_test(test_statements),
		cmocka_unit_test(test_columns),   cmocka_unit_test(test_object_name),
		cmocka_unit_test(test_sequences),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
