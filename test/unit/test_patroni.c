/* link: src/topo/patroni.c */
/*
 * Unit tests for topo/patroni: GET /cluster bodies as Patroni 3.0.2 wrote them (captured from a
 * three-node cluster with synchronous_mode on, a standby cluster, a paused cluster and a
 * switchover in progress), a few shaped like later versions, then malformed bodies: every
 * truncation of a real one, wrong shapes and types, strings too long for their fields, bytes
 * that are not JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topo/patroni.h"

/* Three nodes, n2 the synchronous standby, n3 tagged; a switchover scheduled in UTC. */
static const char real_sync[] =
	"{\"members\": [{\"name\": \"n1\", \"role\": \"leader\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18008/patroni\", \"host\": \"127.0.0.1\", \"port\": 25432, "
	"\"timeline\": 1}, {\"name\": \"n2\", \"role\": \"sync_standby\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18009/patroni\", \"host\": \"127.0.0.1\", \"port\": 25433, "
	"\"timeline\": 1, \"lag\": 0}, {\"name\": \"n3\", \"role\": \"replica\", \"state\": "
	"\"running\", \"api_url\": \"http://127.0.0.1:18010/patroni\", \"host\": \"127.0.0.1\", "
	"\"port\": 25434, \"timeline\": 1, \"tags\": {\"nofailover\": true, \"noloadbalance\": "
	"true}, \"lag\": 0}], \"scheduled_switchover\": {\"at\": \"2026-11-22T10:00:00+00:00\", "
	"\"from\": \"n1\", \"to\": \"n2\"}}";

/* n3 shut down: state stopped, no timeline, lag "unknown"; a switchover at +02:00. */
static const char real_stopped[] =
	"{\"members\": [{\"name\": \"n1\", \"role\": \"leader\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18008/patroni\", \"host\": \"127.0.0.1\", \"port\": 25432, "
	"\"timeline\": 1}, {\"name\": \"n2\", \"role\": \"sync_standby\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18009/patroni\", \"host\": \"127.0.0.1\", \"port\": 25433, "
	"\"timeline\": 1, \"lag\": 0}, {\"name\": \"n3\", \"role\": \"replica\", \"state\": "
	"\"stopped\", \"api_url\": \"http://127.0.0.1:18010/patroni\", \"host\": \"127.0.0.1\", "
	"\"port\": 25434, \"tags\": {\"nofailover\": true, \"noloadbalance\": true}, \"lag\": "
	"\"unknown\"}], \"scheduled_switchover\": {\"at\": \"2026-11-23T12:30:00+02:00\", "
	"\"from\": \"n1\", \"to\": \"n2\"}}";

/* Maintenance mode ("pause", ignored) and a replica behind by 272800 bytes. */
static const char real_paused[] =
	"{\"members\": [{\"name\": \"n1\", \"role\": \"leader\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18008/patroni\", \"host\": \"127.0.0.1\", \"port\": 25432, "
	"\"timeline\": 1}, {\"name\": \"n2\", \"role\": \"sync_standby\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18009/patroni\", \"host\": \"127.0.0.1\", \"port\": 25433, "
	"\"timeline\": 1, \"lag\": 0}, {\"name\": \"n3\", \"role\": \"replica\", \"state\": "
	"\"running\", \"api_url\": \"http://127.0.0.1:18010/patroni\", \"host\": \"127.0.0.1\", "
	"\"port\": 25434, \"timeline\": 1, \"tags\": {\"nofailover\": true, \"noloadbalance\": "
	"true}, \"lag\": 272800}], \"pause\": true, \"scheduled_switchover\": {\"at\": "
	"\"2026-11-23T12:30:00+02:00\", \"from\": \"n1\", \"to\": \"n2\"}}";

/* The leader of a standby cluster. */
static const char real_standby[] =
	"{\"members\": [{\"name\": \"s1\", \"role\": \"standby_leader\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18011/patroni\", \"host\": \"127.0.0.1\", \"port\": 25435, "
	"\"timeline\": 1}]}";

/* A switchover from n2 to n1 in progress: n2 already a replica, stopping. */
static const char real_stopping[] =
	"{\"members\": [{\"name\": \"n1\", \"role\": \"leader\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18008/patroni\", \"host\": \"127.0.0.1\", \"port\": 25432, "
	"\"timeline\": 2}, {\"name\": \"n2\", \"role\": \"replica\", \"state\": \"stopping\", "
	"\"api_url\": \"http://127.0.0.1:18009/patroni\", \"host\": \"127.0.0.1\", \"port\": 25433, "
	"\"pending_restart\": true, \"lag\": \"unknown\"}, {\"name\": \"n3\", \"role\": "
	"\"replica\", \"state\": \"running\", \"api_url\": \"http://127.0.0.1:18010/patroni\", "
	"\"host\": \"127.0.0.1\", \"port\": 25434, \"timeline\": 2, \"pending_restart\": true, "
	"\"tags\": {\"nofailover\": true, \"noloadbalance\": true}, \"lag\": 0}]}";

/* Later in the same switchover: the new leader has no timeline yet, n3 has crashed. */
static const char real_crashed[] =
	"{\"members\": [{\"name\": \"n1\", \"role\": \"leader\", \"state\": \"running\", "
	"\"api_url\": \"http://127.0.0.1:18008/patroni\", \"host\": \"127.0.0.1\", \"port\": 25432}, "
	"{\"name\": \"n2\", \"role\": \"replica\", \"state\": \"running\", \"api_url\": "
	"\"http://127.0.0.1:18009/patroni\", \"host\": \"127.0.0.1\", \"port\": 25433, "
	"\"timeline\": 3, \"lag\": 0}, {\"name\": \"n3\", \"role\": \"replica\", \"state\": "
	"\"crashed\", \"api_url\": \"http://127.0.0.1:18010/patroni\", \"host\": \"127.0.0.1\", "
	"\"port\": 25434, \"pending_restart\": true, \"tags\": {\"nofailover\": true, "
	"\"noloadbalance\": true}, \"lag\": \"unknown\"}]}";

/*
 * Not captured: what Patroni writes when a member's connect_address has no port, when it knows
 * no api_url (null), a later version's role and state, tags given as YAML strings, and members
 * without a host or name (skipped).
 */
static const char shaped[] =
	"{\"members\": ["
	"{\"name\": \"a\", \"role\": \"leader\", \"state\": \"running\", \"api_url\": null, "
	"\"host\": \"db-a.example.com\", \"timeline\": 7},"
	"{\"name\": \"nohost\", \"role\": \"replica\", \"state\": \"running\"},"
	"{\"name\": \"nullhost\", \"host\": null, \"role\": \"replica\"},"
	"{\"name\": \"\", \"host\": \"10.0.0.9\", \"role\": \"replica\"},"
	"{\"host\": \"10.0.0.8\", \"role\": \"replica\"},"
	"{\"name\": \"b\", \"role\": \"quorum_standby\", \"state\": \"streaming\", "
	"\"host\": \"::1\", \"port\": 5433, \"receive_lag\": 5, \"lag\": 9007199254740993, "
	"\"tags\": {\"noloadbalance\": \"false\", \"nofailover\": \"yes\", \"custom\": [1]}},"
	"{\"name\": \"c\", \"role\": \"replica\", \"state\": \"starting\", \"host\": \"10.0.0.3\", "
	"\"port\": 65535, \"timeline\": 2147483647, \"tags\": {\"noloadbalance\": 1, "
	"\"nofailover\": 0}}"
	"]}";

struct want_member {
	const char *name, *host;
	int port;
	enum patroni_role role;
	const char *state;
	int timeline;
	long long lag;
	bool noloadbalance, nofailover;
	const char *api_url;
};

static const struct {
	const char *what, *json;
	int n;
	struct want_member m[4];
	bool switchover;
	double at;
	const char *from;
} samples[] = {
	{ "sync",
	  real_sync,
	  3,
	  {
		  { "n1", "127.0.0.1", 25432, PATRONI_ROLE_LEADER, "running", 1, -1, false, false,
		    "http://127.0.0.1:18008/patroni" },
		  { "n2", "127.0.0.1", 25433, PATRONI_ROLE_SYNC_STANDBY, "running", 1, 0, false,
		    false, "http://127.0.0.1:18009/patroni" },
		  { "n3", "127.0.0.1", 25434, PATRONI_ROLE_REPLICA, "running", 1, 0, true, true,
		    "http://127.0.0.1:18010/patroni" },
	  },
	  true,
	  1795341600,
	  "n1" },
	{ "stopped",
	  real_stopped,
	  3,
	  {
		  { "n1", "127.0.0.1", 25432, PATRONI_ROLE_LEADER, "running", 1, -1, false, false,
		    "http://127.0.0.1:18008/patroni" },
		  { "n2", "127.0.0.1", 25433, PATRONI_ROLE_SYNC_STANDBY, "running", 1, 0, false,
		    false, "http://127.0.0.1:18009/patroni" },
		  { "n3", "127.0.0.1", 25434, PATRONI_ROLE_REPLICA, "stopped", -1, -1, true, true,
		    "http://127.0.0.1:18010/patroni" },
	  },
	  true,
	  1795429800,
	  "n1" },
	{ "paused",
	  real_paused,
	  3,
	  {
		  { "n1", "127.0.0.1", 25432, PATRONI_ROLE_LEADER, "running", 1, -1, false, false,
		    "http://127.0.0.1:18008/patroni" },
		  { "n2", "127.0.0.1", 25433, PATRONI_ROLE_SYNC_STANDBY, "running", 1, 0, false,
		    false, "http://127.0.0.1:18009/patroni" },
		  { "n3", "127.0.0.1", 25434, PATRONI_ROLE_REPLICA, "running", 1, 272800, true,
		    true, "http://127.0.0.1:18010/patroni" },
	  },
	  true,
	  1795429800,
	  "n1" },
	{ "standby",
	  real_standby,
	  1,
	  {
		  { "s1", "127.0.0.1", 25435, PATRONI_ROLE_STANDBY_LEADER, "running", 1, -1, false,
		    false, "http://127.0.0.1:18011/patroni" },
	  },
	  false,
	  0,
	  "" },
	{ "stopping",
	  real_stopping,
	  3,
	  {
		  { "n1", "127.0.0.1", 25432, PATRONI_ROLE_LEADER, "running", 2, -1, false, false,
		    "http://127.0.0.1:18008/patroni" },
		  { "n2", "127.0.0.1", 25433, PATRONI_ROLE_REPLICA, "stopping", -1, -1, false,
		    false, "http://127.0.0.1:18009/patroni" },
		  { "n3", "127.0.0.1", 25434, PATRONI_ROLE_REPLICA, "running", 2, 0, true, true,
		    "http://127.0.0.1:18010/patroni" },
	  },
	  false,
	  0,
	  "" },
	{ "crashed",
	  real_crashed,
	  3,
	  {
		  { "n1", "127.0.0.1", 25432, PATRONI_ROLE_LEADER, "running", -1, -1, false, false,
		    "http://127.0.0.1:18008/patroni" },
		  { "n2", "127.0.0.1", 25433, PATRONI_ROLE_REPLICA, "running", 3, 0, false, false,
		    "http://127.0.0.1:18009/patroni" },
		  { "n3", "127.0.0.1", 25434, PATRONI_ROLE_REPLICA, "crashed", -1, -1, true, true,
		    "http://127.0.0.1:18010/patroni" },
	  },
	  false,
	  0,
	  "" },
	{ "shaped",
	  shaped,
	  3,
	  {
		  { "a", "db-a.example.com", 5432, PATRONI_ROLE_LEADER, "running", 7, -1, false,
		    false, "" },
		  { "b", "::1", 5433, PATRONI_ROLE_OTHER, "streaming", -1, 9007199254740993LL,
		    false, true, "" },
		  { "c", "10.0.0.3", 65535, PATRONI_ROLE_REPLICA, "starting", 2147483647, -1, true,
		    false, "" },
	  },
	  false,
	  0,
	  "" },
};

static void check_member(const char *what, int i, const struct patroni_member *got,
			 const struct want_member *want)
{
	print_message("%s member %d\n", what, i);
	assert_string_equal(got->name, want->name);
	assert_string_equal(got->host, want->host);
	assert_int_equal(got->port, want->port);
	assert_int_equal(got->role, want->role);
	assert_string_equal(got->state, want->state);
	assert_int_equal(got->timeline, want->timeline);
	assert_true(got->lag == want->lag);
	assert_int_equal(got->noloadbalance, want->noloadbalance);
	assert_int_equal(got->nofailover, want->nofailover);
	assert_string_equal(got->api_url, want->api_url);
}

static void test_samples(void **state)
{
	for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
		struct patroni_cluster c;
		char err[128];
		bool ok = patroni_parse_cluster(samples[s].json, strlen(samples[s].json), &c, err,
						sizeof(err));

		if (!ok)
			print_error("%s: %s\n", samples[s].what, err);
		assert_true(ok);
		assert_string_equal(err, "");
		assert_int_equal(c.n_members, samples[s].n);
		for (int i = 0; i < c.n_members; i++)
			check_member(samples[s].what, i, &c.members[i], &samples[s].m[i]);
		assert_int_equal(c.switchover_scheduled, samples[s].switchover);
		assert_true(c.switchover_at == samples[s].at);
		assert_string_equal(c.switchover_from, samples[s].from);
	}
}

/* The body need not end in a NUL: give it a buffer of exactly its length (ASan sees overreads). */
static void test_not_nul_terminated(void **state)
{
	size_t len = strlen(real_sync);
	char *copy = malloc(len);
	struct patroni_cluster c;
	char err[128];

	assert_non_null(copy);
	memcpy(copy, real_sync, len);
	assert_true(patroni_parse_cluster(copy, len, &c, err, sizeof(err)));
	assert_int_equal(c.n_members, 3);
	free(copy);
}

/* Whitespace around the value is fine (a proxy may add a newline); a NUL byte is not. */
static void test_framing(void **state)
{
	static const char nul_after[] = "{\"members\": []}\0";
	static const char nul_inside[] = "{\"members\": [\0]}";
	struct patroni_cluster c;
	char err[128];

	assert_true(patroni_parse_cluster(" {\"members\": []}\r\n", 18, &c, err, sizeof(err)));
	assert_false(patroni_parse_cluster(nul_after, sizeof(nul_after) - 1, &c, err, sizeof(err)));
	assert_string_equal(err, "trailing data after the JSON value");
	assert_false(
		patroni_parse_cluster(nul_inside, sizeof(nul_inside) - 1, &c, err, sizeof(err)));
	assert_non_null(strstr(err, "bad JSON"));
}

/* Every proper prefix of a real body is an error, and says it is truncated. */
static void test_truncated(void **state)
{
	size_t len = strlen(real_stopped);

	for (size_t n = 0; n < len; n++) {
		char *copy = malloc(n + 1);
		struct patroni_cluster c;
		char err[128];

		assert_non_null(copy);
		memcpy(copy, real_stopped, n);
		assert_false(patroni_parse_cluster(copy, n, &c, err, sizeof(err)));
		assert_int_equal(c.n_members, 0);
		assert_true(err[0] != '\0');
		if (n > 0)
			assert_string_equal(err, "truncated JSON");
		free(copy);
	}
}

static const struct {
	const char *json;
	const char *err; /* a part of the error text */
} bad[] = {
	{ "", "empty body" },
	{ "null", "not a JSON object" },
	{ "42", "not a JSON object" },
	{ "[]", "not a JSON object" },
	{ "{}", "no \"members\"" },
	{ "{\"members\": null}", "no \"members\"" },
	{ "{\"members\": {}}", "not an array" },
	{ "{\"members\": \"n1\"}", "not an array" },
	{ "{\"members\": [1]}", "member 0 is not an object" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\"}, null]}",
	  "member 1 is not an object" },
	{ "{\"members\": [{\"name\": 5, \"host\": \"h\"}]}", "member 0: bad name" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": [\"h\"]}]}", "member 0: bad host" },
	{ "{\"members\": [{\"name\": \"a\\u0000b\", \"host\": \"h\"}]}", "member 0: bad name" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": \"5432\"}]}", "bad port" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": 5432.0}]}", "bad port" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": 0}]}", "bad port" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": 65536}]}", "bad port" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"timeline\": \"1\"}]}",
	  "bad timeline" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"timeline\": 4294967297}]}",
	  "bad timeline" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"lag\": \"12\"}]}", "bad lag" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"lag\": 1.5}]}", "bad lag" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"lag\": -5}]}", "bad lag" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"lag\": true}]}", "bad lag" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"role\": 1}]}", "bad role" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"state\": true}]}", "bad state" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"api_url\": 3}]}", "bad api_url" },
	{ "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"tags\": \"x\"}]}", "bad tags" },
	{ "{\"members\": [], \"scheduled_switchover\": \"soon\"}", "not an object" },
	{ "{\"members\": [], \"scheduled_switchover\": {\"from\": 5}}", "from is not a string" },
	{ "{\"members\": []} x", "bad JSON at byte 16" },
	{ "{\"members\": []}{}", "bad JSON" },
	{ "{\"members\": [],}", "bad JSON" },
	{ "{\"members\": [\"\xff\"]}", "bad JSON" },
	{ "<html>502 Bad Gateway</html>", "bad JSON" },
};

static void test_bad(void **state)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct patroni_cluster c;
		char err[128];

		memset(&c, 0xa5, sizeof(c));
		print_message("%s\n", bad[i].json);
		assert_false(patroni_parse_cluster(bad[i].json, strlen(bad[i].json), &c, err,
						   sizeof(err)));
		assert_int_equal(c.n_members, 0);
		assert_false(c.switchover_scheduled);
		if (!strstr(err, bad[i].err))
			fail_msg("error \"%s\" does not say \"%s\"", err, bad[i].err);
	}
}

/* before + n copies of c + after, as one JSON body (caller frees). */
static char *with_long_string(const char *before, const char *c, size_t n, const char *after)
{
	size_t blen = strlen(before), clen = strlen(c), alen = strlen(after);
	char *json = malloc(blen + n * clen + alen + 1), *p = json;

	assert_non_null(json);
	memcpy(p, before, blen);
	p += blen;
	for (size_t i = 0; i < n; i++, p += clen)
		memcpy(p, c, clen);
	memcpy(p, after, alen + 1);
	return json;
}

static bool parse_str(const char *json, struct patroni_cluster *c)
{
	char err[128];
	bool ok = patroni_parse_cluster(json, strlen(json), c, err, sizeof(err));

	if (!ok)
		print_error("%s\n", err);
	return ok;
}

/* Descriptive strings are cut to fit, on a character boundary; identities are all or nothing. */
static void test_long_strings(void **state)
{
	struct patroni_cluster c;
	char *json;

	json = with_long_string("{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"state\": \"",
				"x", 100000, "\"}]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(c.n_members, 1);
	assert_int_equal(strlen(c.members[0].state), sizeof(c.members[0].state) - 1);
	free(json);

	/* 15 two-byte characters fill 30 bytes; the 16th would need bytes 30 and 31 of 31. */
	json = with_long_string("{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"state\": \"",
				"\xc3\xa9", 40, "\"}]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(strlen(c.members[0].state), 30);
	free(json);

	json = with_long_string("{\"members\": [{\"name\": \"", "n", 64,
				"\", \"host\": \"h\"}, {\"name\": \"b\", \"host\": \"h\"}]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(c.n_members, 1);
	assert_string_equal(c.members[0].name, "b");
	free(json);

	json = with_long_string("{\"members\": [{\"name\": \"", "n", 63, "\", \"host\": \"h\"}]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(c.n_members, 1);
	assert_int_equal(strlen(c.members[0].name), 63);
	free(json);

	json = with_long_string("{\"members\": [{\"name\": \"a\", \"host\": \"", "h", 256, "\"}]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(c.n_members, 0);
	free(json);

	json = with_long_string("{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"api_url\": "
				"\"http://",
				"u", 300, "/patroni\"}]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(c.n_members, 1);
	assert_string_equal(c.members[0].api_url, "");
	free(json);

	json = with_long_string("{\"members\": [], \"scheduled_switchover\": {\"at\": "
				"\"2026-11-22T10:00:00+00:00\", \"from\": \"",
				"f", 64, "\"}}");
	assert_true(parse_str(json, &c));
	assert_true(c.switchover_scheduled);
	assert_string_equal(c.switchover_from, "");
	free(json);
}

/* Deep nesting is refused by the tokenizer's depth limit, not by running out of stack. */
static void test_deep(void **state)
{
	struct patroni_cluster c;
	char err[128], *json;
	size_t depth = 100000;

	json = malloc(2 * depth + 1);
	assert_non_null(json);
	memset(json, '[', depth);
	memset(json + depth, ']', depth);
	json[2 * depth] = '\0';
	assert_false(patroni_parse_cluster(json, 2 * depth, &c, err, sizeof(err)));
	assert_non_null(strstr(err, "bad JSON"));
	free(json);
}

/* Only the first PATRONI_MAX_MEMBERS are kept. */
static void test_many_members(void **state)
{
	struct patroni_cluster c;
	char json[8192];
	size_t off = 0;

	off += snprintf(json + off, sizeof(json) - off, "{\"members\": [");
	for (int i = 0; i < 40; i++)
		off += snprintf(
			json + off, sizeof(json) - off,
			"%s{\"name\": \"m%02d\", \"host\": \"10.0.0.%d\", \"role\": \"replica\"}",
			i ? ", " : "", i, i);
	snprintf(json + off, sizeof(json) - off, "]}");
	assert_true(parse_str(json, &c));
	assert_int_equal(c.n_members, PATRONI_MAX_MEMBERS);
	assert_string_equal(c.members[PATRONI_MAX_MEMBERS - 1].name, "m15");
	assert_string_equal(c.members[PATRONI_MAX_MEMBERS - 1].host, "10.0.0.15");
}

static const struct {
	const char *at; /* NULL: no "at" */
	double want;    /* 0: scheduled, time not understood */
} times[] = {
	{ "2026-11-22T10:00:00+00:00", 1795341600 },
	{ "2026-11-22T10:00:00Z", 1795341600 },
	{ "2026-11-22 10:00:00+00:00", 1795341600 },
	{ "2026-11-22T10:00+00:00", 1795341600 },
	{ "2026-11-22T11:00:00+0100", 1795341600 },
	{ "2026-11-22T10:00:00.500000+00:00", 1795341600.5 },
	{ "2024-02-29T23:59:59.25-05:30", 1709270999.25 },
	{ "1970-01-01T00:00:00+00:00", 0 },
	{ "2026-11-22T10:00:00", 0 },       /* no offset: the instant is unknown */
	{ "2026-02-29T10:00:00+00:00", 0 }, /* not a leap year */
	{ "2026-13-01T10:00:00+00:00", 0 },
	{ "2026-11-22T24:00:00+00:00", 0 },
	{ "2026-11-22T10:00:00+00:00junk", 0 },
	{ "2026-11-22T10:00:00.+00:00", 0 },
	{ "tomorrow", 0 },
	{ "", 0 },
	{ NULL, 0 },
};

static void test_switchover_time(void **state)
{
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		struct patroni_cluster c;
		char json[256];

		if (times[i].at)
			snprintf(json, sizeof(json),
				 "{\"members\": [], \"scheduled_switchover\": "
				 "{\"at\": \"%s\", \"from\": \"n1\"}}",
				 times[i].at);
		else
			snprintf(json, sizeof(json),
				 "{\"members\": [], \"scheduled_switchover\": "
				 "{\"to\": \"n2\"}}");
		print_message("%s\n", json);
		assert_true(parse_str(json, &c));
		assert_true(c.switchover_scheduled);
		assert_true(c.switchover_at == times[i].want);
		assert_string_equal(c.switchover_from, times[i].at ? "n1" : "");
	}
}

static void test_role_names(void **state)
{
	assert_string_equal(patroni_role_name(PATRONI_ROLE_LEADER), "leader");
	assert_string_equal(patroni_role_name(PATRONI_ROLE_STANDBY_LEADER), "standby_leader");
	assert_string_equal(patroni_role_name(PATRONI_ROLE_REPLICA), "replica");
	assert_string_equal(patroni_role_name(PATRONI_ROLE_SYNC_STANDBY), "sync_standby");
	assert_string_equal(patroni_role_name(PATRONI_ROLE_OTHER), "other");
}

/* A small err buffer is enough, and none at all is allowed. */
static void test_small_err(void **state)
{
	struct patroni_cluster c;
	char err[4];

	assert_false(patroni_parse_cluster("{\"members\": 1}", 14, &c, err, sizeof(err)));
	assert_int_equal(strlen(err), 3);
	assert_false(patroni_parse_cluster("{\"members\": 1}", 14, &c, NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_long_strings),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_many_members),
		cmocka_unit_test(test_switchover_time),
		cmocka_unit_test(test_role_names),
		cmocka_unit_test(test_small_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
