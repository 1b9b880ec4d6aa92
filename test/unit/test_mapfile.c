/*
 * Unit tests for shard/mapfile: maps created, planned and overridden survive format -> parse ->
 * format unchanged and field for field; a text written by hand in any order the format allows
 * parses to the map it describes; every kind of bad text is refused with its line.
 */
/* link: src/shard/mapfile.c src/shard/map.c */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/map.h"
#include "shard/mapfile.h"

static const char *const NAMES[] = { "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8" };
static const double ONES[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };

static void assert_maps_equal(const struct shard_map *a, const struct shard_map *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->checksum, b->checksum);
	assert_int_equal(a->seed, b->seed);
	assert_int_equal(a->n_buckets, b->n_buckets);
	assert_int_equal(a->n_shards, b->n_shards);
	for (int i = 0; i < a->n_shards; i++) {
		assert_string_equal(a->names[i], b->names[i]);
		assert_memory_equal(&a->weights[i], &b->weights[i], sizeof(double));
	}
	assert_memory_equal(a->owner, b->owner, a->n_buckets * sizeof(*a->owner));
	assert_int_equal(a->n_overrides, b->n_overrides);
	for (int i = 0; i < a->n_overrides; i++) {
		assert_string_equal(a->overrides[i].key, b->overrides[i].key);
		assert_int_equal(a->overrides[i].shard, b->overrides[i].shard);
	}
}

/* format(m) parses back to m, and formatting that gives the same text again. */
static void assert_round_trip(const struct shard_map *m)
{
	char err[256], *text = shard_map_format(m), *again;
	struct shard_map *back;

	assert_non_null(text);
	back = shard_map_parse(text, strlen(text), err, sizeof(err));
	if (!back)
		fail_msg("parse(format(m)): %s\n%s", err, text);
	assert_maps_equal(m, back);
	again = shard_map_format(back);
	assert_string_equal(again, text);
	free(again);
	free(text);
	shard_map_free(back);
}

static struct shard_map *with_override(struct shard_map *m, const char *key, int shard)
{
	char err[200];
	struct shard_map *next = shard_map_set_override(m, key, shard, err, sizeof(err));

	if (!next)
		fail_msg("shard_map_set_override(%s): %s", key, err);
	shard_map_free(m);
	return next;
}

static void test_round_trip_created_and_planned(void **state)
{
	static const double weights[] = { 1.5, 0.1, 3, 2.25, 1e-3, 7, 1, 2, 0.5 };
	static const uint32_t buckets[] = { 1, 2, 64, 1024, 16384, 65536 };
	char err[200];

	for (size_t k = 0; k < sizeof(buckets) / sizeof(buckets[0]); k++) {
		for (int n = 1; n <= 6; n++) {
			struct shard_map *m = shard_map_create(buckets[k], 0xfeedull * k, NAMES,
							       n % 2 ? weights : ONES, n, err,
							       sizeof(err));
			struct shard_move *moves;
			size_t n_moves;

			assert_non_null(m);
			assert_round_trip(m);
			/* add two, then drop the first, then reweight */
			for (int step = 0; step < 3; step++) {
				struct shard_map *next =
					step == 0 ? shard_map_plan(m, NAMES, ONES, n + 2, &moves,
								   &n_moves, err, sizeof(err))
					: step == 1
						? shard_map_plan(m, NAMES + 1, ONES, n + 1, &moves,
								 &n_moves, err, sizeof(err))
						: shard_map_plan(m, NAMES + 1, weights, n + 1,
								 &moves, &n_moves, err,
								 sizeof(err));

				assert_non_null(next);
				free(moves);
				shard_map_free(m);
				m = next;
				assert_round_trip(m);
			}
			shard_map_free(m);
		}
	}
}

static void test_round_trip_overrides(void **state)
{
	static const char *const keys[] = { "42", "acme corp", "it's",      "#1",     "a#b",
					    "''", "x'",        "tab\there", "ünïcode" };
	char err[200];
	struct shard_map *m = shard_map_create(256, 7, NAMES, ONES, 3, err, sizeof(err));
	char *text;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strchr(keys[i], '\t')) { /* a control character: no override can hold it */
			assert_null(shard_map_set_override(m, keys[i], 1, err, sizeof(err)));
			continue;
		}
		m = with_override(m, keys[i], (int)i % 3);
		assert_round_trip(m);
	}
	text = shard_map_format(m);
	assert_non_null(strstr(text, "\noverride 42 s0\n"));
	assert_non_null(strstr(text, "\noverride 'acme corp' s1\n"));
	assert_non_null(strstr(text, "\noverride 'it''s' s2\n"));
	assert_non_null(strstr(text, "\noverride '#1' s0\n"));
	assert_non_null(strstr(text, "\noverride '''''' s2\n"));
	free(text);
	shard_map_free(m);
}

/*
 * A text written by hand for the map of 4 buckets (a: 0-1, b: 2-3, seed 9, version 2, key
 * "big one" on b), with the map's real checksum in place of the 16 '@' of the template.
 */
static char *hand_written(const char *template)
{
	static const char *const ab[] = { "a", "b" };
	char err[200], *text = strdup(template), *at = strstr(text, "@@@@@@@@@@@@@@@@");
	struct shard_map *m = shard_map_create(4, 9, ab, ONES, 2, err, sizeof(err));
	char hex[17];

	assert_non_null(m);
	assert_non_null(at);
	m = with_override(m, "big one", 1);
	snprintf(hex, sizeof(hex), "%016" PRIX64, m->checksum);
	memcpy(at, hex, 16);
	shard_map_free(m);
	return text;
}

static void test_parse_hand_written(void **state)
{
	char err[256], *text = hand_written("# a map written by hand\r\n"
					    "\n"
					    "format 1   # the only one\n"
					    "buckets 4\n"
					    "seed 9\n"
					    "version 2\n"
					    "\tshard a weight 1.0\n"
					    "shard b weight 1e0\n"
					    "range 2-3 b\n"
					    "range 1-1 a\n"
					    "range 0 a\n"
					    "override 'big one' b\n"
					    "checksum @@@@@@@@@@@@@@@@\n"
					    "# the end\n");
	struct shard_map *m = shard_map_parse(text, strlen(text), err, sizeof(err));

	if (!m)
		fail_msg("%s", err);
	assert_int_equal(m->version, 2);
	assert_int_equal(m->seed, 9);
	assert_int_equal(m->n_buckets, 4);
	assert_int_equal(m->n_shards, 2);
	assert_string_equal(m->names[1], "b");
	assert_true(m->weights[0] == 1.0 && m->weights[1] == 1.0);
	assert_int_equal(m->owner[0], 0);
	assert_int_equal(m->owner[1], 0);
	assert_int_equal(m->owner[2], 1);
	assert_int_equal(m->owner[3], 1);
	assert_int_equal(m->n_overrides, 1);
	assert_string_equal(m->overrides[0].key, "big one");
	shard_map_free(m);
	/* without a final newline, and read from a buffer that does not end in NUL */
	text[strlen(text) - strlen("# the end\n") - 1] = 'X';
	m = shard_map_parse(text, strlen(text) - strlen("# the end\n") - 1, err, sizeof(err));
	assert_non_null(m);
	shard_map_free(m);
	free(text);
}

/* Each bad text and what its error must say. */
static void test_parse_refuses(void **state)
{
	static const char head[] = "format 1\nversion 1\nbuckets 4\nseed 9\nshard a weight 1\n"
				   "shard b weight 1\n";
	static const struct {
		const char *body; /* after head (when it starts with '+') or the whole text */
		const char *error;
	} cases[] = {
		{ "", "line 1: no format line" },
		{ "version 1\n", "line 1: version before the format line" },
		{ "format 2\n", "line 1: format 2: this pgmux reads format 1" },
		{ "format 1\nformat 1\n", "line 2: format again (first on line 1)" },
		{ "+range 0-3 a\nrange 0-3 a\nchecksum 0000000000000000\n",
		  "line 8: bucket 0 is already in another range" },
		{ "+range 0-1 a\nchecksum 0000000000000000\n",
		  "line 8: buckets 2-3 are in no range" },
		{ "+range 0-1 a\nrange 2-3 c\n", "line 8: no shard named c" },
		{ "+range 0-4 a\n", "line 7: bucket 4 is beyond the last bucket, 3" },
		{ "+range 3-1 a\n", "line 7: range 3-1: expected FIRST-LAST" },
		{ "+range 0-3 a\nchecksum 0000000000000000\nrange 0 a\n",
		  "line 9: range after the checksum line" },
		{ "+range 0-3 a\nchecksum 0000000000000000\ngarbage\n",
		  "line 9: unknown directive garbage" },
		{ "+range 0-3 a\n", "line 7: no checksum line at the end" },
		{ "+range 0-3 a\nchecksum 12\n", "line 8: checksum 12: 16 hexadecimal digits" },
		{ "+range 0-3 a\nchecksum 0000000000000000\n",
		  "line 8: checksum 0000000000000000 does not match the content" },
		{ "+range 0-3 a b\n", "line 7: range takes 2 words after it, not 3" },
		{ "+shard a weight 2\n", "line 7: shard a is declared twice" },
		{ "+shard c weight 0\n",
		  "line 7: shard c weight 0: a weight is a positive number" },
		{ "+shard c weight nan\n", "line 7: shard c weight nan" },
		{ "+shard c.d weight 1\n", "line 7: shard c.d: a name is" },
		{ "+shard c size 1\n", "line 7: shard c size: expected 'shard NAME weight W'" },
		{ "+override 'x b\n", "line 7: a quoted key without its closing quote" },
		{ "+override it's b\n", "line 7: a quote inside a word" },
		{ "+override 'x'y b\n", "line 7: text right after a closing quote" },
		{ "+override 'a\tb' b\n", "line 7: override key: 1 to" },
		{ "+override k b\noverride k a\nrange 0-3 a\nchecksum 0000000000000000\n",
		  "line 8: override k is set twice" },
		{ "format 1\nversion 0\n", "line 2: version 0: versions start at 1" },
		{ "format 1\nversion -1\n", "line 2: version -1: a whole number" },
		{ "format 1\nversion 18446744073709551616\n",
		  "line 2: version 18446744073709551616" },
		{ "format 1\nbuckets 1000\n", "line 2: buckets 1000: a power of two" },
		{ "format 1\nbuckets 131072\n", "line 2: buckets 131072: a power of two" },
		{ "format 1\nrange 0 a\n", "line 2: a range before the buckets line" },
		{ "format 1\nseed\n", "line 2: seed takes 1 word after it, not 0" },
	};
	char err[256], text[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *body = cases[i].body;
		struct shard_map *m;

		if (body[0] == '+')
			snprintf(text, sizeof(text), "%s%s", head, body + 1);
		else
			snprintf(text, sizeof(text), "%s", body);
		m = shard_map_parse(text, strlen(text), err, sizeof(err));
		if (m || strncmp(err, cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("case %zu: expected \"%s\", got %s\"%s\"", i, cases[i].error,
				 m ? "a map and " : "", err);
		shard_map_free(m);
	}
	/* a NUL byte inside the text */
	memcpy(text, "format 1\nver\0sion 1\n", 20);
	assert_null(shard_map_parse(text, 20, err, sizeof(err)));
	assert_string_equal(err, "line 2: a NUL byte: this is not a map file");
}

/* One range edited in a formatted map: refused by its checksum, on the checksum's line. */
static void test_edited_map_is_refused(void **state)
{
	char err[256];
	struct shard_map *m = shard_map_create(16384, 0, NAMES, ONES, 2, err, sizeof(err)), *back;
	char *text = shard_map_format(m), *at = strstr(text, "range 8192-16383 s1");

	assert_non_null(at);
	memcpy(at, "range 8192-16383 s0", 19);
	back = shard_map_parse(text, strlen(text), err, sizeof(err));
	assert_null(back);
	assert_non_null(strstr(err, "does not match the content"));
	assert_int_equal(strncmp(err, "line 11:", 8), 0);
	free(text);
	shard_map_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_created_and_planned),
		cmocka_unit_test(test_round_trip_overrides),
		cmocka_unit_test(test_parse_hand_written),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_edited_map_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
