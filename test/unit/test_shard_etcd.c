/* link: src/shard/etcd.c src/auth/base64.c */
/*
 * Unit tests for shard/etcd: the etcd: source syntax (good and bad forms, each with its reason),
 * request bodies, and answers as etcd 3.4's JSON gateway writes them (range found and not,
 * watch created, put, delete, several events, events of other keys, compaction, errors), plus
 * values that are not base64 or too large, and the line splitting of a watch stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/base64.h"
#include "shard/etcd.h"

#define HEADER                                                                                     \
	"\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\"," \
	"\"revision\":\"%s\",\"raft_term\":\"2\"}"

#define HEADER_2                                                                                   \
	"\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\"," \
	"\"revision\":\"2\",\"raft_term\":\"2\"}"

static void test_source_good(void **state)
{
	static const struct {
		const char *text;
		int n;
		const char *first, *last, *key;
	} rows[] = {
		{ "etcd:http://127.0.0.1:2379/pgmux/maps/users", 1, "http://127.0.0.1:2379",
		  "http://127.0.0.1:2379", "/pgmux/maps/users" },
		{ "etcd:http://h1:2379,https://h2:2379/k", 2, "http://h1:2379", "https://h2:2379",
		  "/k" },
		{ "etcd:http://a,http://b,http://c/x/y/", 3, "http://a", "http://c", "/x/y/" },
		{ "etcd:https://[::1]:2379/m", 1, "https://[::1]:2379", "https://[::1]:2379",
		  "/m" },
	};
	struct etcd_source s;
	char why[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		why[0] = '\0';
		assert_true(shard_etcd_parse_source(rows[i].text, &s, why, sizeof(why)));
		assert_int_equal(s.n_endpoints, rows[i].n);
		assert_string_equal(s.endpoints[0], rows[i].first);
		assert_string_equal(s.endpoints[s.n_endpoints - 1], rows[i].last);
		assert_string_equal(s.key, rows[i].key);
	}
}

static void test_source_bad(void **state)
{
	static const struct {
		const char *text, *why;
	} rows[] = {
		{ "/etc/pgmux/users.map", "does not start with etcd:" },
		{ "etcd:", "is not an http:// or https:// URL" },
		{ "etcd:127.0.0.1:2379/k", "is not an http:// or https:// URL" },
		{ "etcd:ftp://h/k", "is not an http:// or https:// URL" },
		{ "etcd:http:///k", "has no host" },
		{ "etcd:http://h:2379", "names no key" },
		{ "etcd:http://h:2379/", "names no key" },
		{ "etcd:http://h1/k,http://h2/k", "only the last URL has a path" },
		{ "etcd:http://h1, http://h2/k", "without spaces" },
		{ "etcd:http://h1,,http://h2/k", "is not an http:// or https:// URL" },
		{ "etcd:http://h/k,", "only the last URL has a path" },
		{ "etcd:http://1,http://2,http://3,http://4,http://5,http://6,http://7,http://8,"
		  "http://9/k",
		  "more than 8 URLs" },
	};
	struct etcd_source s;
	char why[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		why[0] = '\0';
		assert_false(shard_etcd_parse_source(rows[i].text, &s, why, sizeof(why)));
		if (!strstr(why, rows[i].why))
			fail_msg("%s: '%s' lacks '%s'", rows[i].text, why, rows[i].why);
	}
}

static void test_requests(void **state)
{
	char *r = shard_etcd_range_request("/a");

	assert_string_equal(r, "{\"key\":\"L2E=\"}");
	free(r);
	r = shard_etcd_watch_request("/pgmux/maps/users", 42);
	assert_string_equal(r, "{\"create_request\":{\"key\":\"L3BnbXV4L21hcHMvdXNlcnM=\","
			       "\"start_revision\":\"42\"}}");
	free(r);
}

/* printf into a static buffer (the answers are small). */
static const char *fmt(const char *f, ...)
{
	static char buf[4096];
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, sizeof(buf), f, ap);
	va_end(ap);
	return buf;
}

static void test_range(void **state)
{
	struct etcd_value v;
	const char *b;
	char why[256];

	/* Found: the value decoded. */
	b = fmt("{" HEADER ",\"kvs\":[{\"key\":\"L2E=\",\"create_revision\":\"2\",\"mod_revision\":"
		"\"7\",\"version\":\"3\",\"value\":\"aGVsbG8=\"}],\"count\":\"1\"}",
		"9");
	assert_true(shard_etcd_parse_range(b, strlen(b), "/a", &v, why, sizeof(why)));
	assert_true(v.found);
	assert_int_equal(v.revision, 9);
	assert_int_equal(v.mod_revision, 7);
	assert_int_equal(v.len, 5);
	assert_string_equal(v.text, "hello");
	shard_etcd_value_clear(&v);
	assert_null(v.text);

	/* Not there: no kvs at all. */
	b = fmt("{" HEADER "}", "1");
	assert_true(shard_etcd_parse_range(b, strlen(b), "/a", &v, why, sizeof(why)));
	assert_false(v.found);
	assert_int_equal(v.revision, 1);
	assert_null(v.text);

	/* Another key's kv is not ours. */
	b = fmt("{" HEADER
		",\"kvs\":[{\"key\":\"L2I=\",\"mod_revision\":\"3\",\"value\":\"eA==\"}]}",
		"4");
	assert_true(shard_etcd_parse_range(b, strlen(b), "/a", &v, why, sizeof(why)));
	assert_false(v.found);

	/* An empty value is a found, empty text. */
	b = fmt("{" HEADER ",\"kvs\":[{\"key\":\"L2E=\",\"mod_revision\":\"3\"}]}", "4");
	assert_true(shard_etcd_parse_range(b, strlen(b), "/a", &v, why, sizeof(why)));
	assert_true(v.found);
	assert_int_equal(v.len, 0);
	assert_string_equal(v.text, "");
	shard_etcd_value_clear(&v);
}

static void test_range_bad(void **state)
{
	static const struct {
		const char *body, *why;
	} rows[] = {
		{ "", "not a JSON object" },
		{ "[1]", "not a JSON object" },
		{ "{\"kvs\":[]} x", "not a JSON object" },
		{ "{\"kvs\":[]}", "no header revision" },
		{ "{\"header\":{\"revision\":\"x1\"}}", "no header revision" },
		{ "{\"header\":{\"revision\":\"-1\"}}", "no header revision" },
		{ "{\"error\":\"etcdserver: request timed out\",\"code\":14,\"message\":\"etcdserver: "
		  "request timed out\"}",
		  "etcd says: etcdserver: request timed out" },
		{ "{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"L2E=\",\"value\":\"aGVsbG8\"}]}",
		  "value is not base64" },
		{ "{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"L2E=\",\"value\":\"aGVs!G8=\"}]}",
		  "value is not base64" },
	};
	struct etcd_value v;
	char why[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		why[0] = '\0';
		assert_false(shard_etcd_parse_range(rows[i].body, strlen(rows[i].body), "/a", &v,
						    why, sizeof(why)));
		assert_null(v.text);
		if (!strstr(why, rows[i].why))
			fail_msg("%s: '%s' lacks '%s'", rows[i].body, why, rows[i].why);
	}
}

/* A value of n bytes ('m'), as a range answer; the caller frees it. */
static char *range_of_size(size_t n)
{
	size_t n64 = base64_encoded_len(n);
	char *raw = malloc(n), *b64 = malloc(n64 + 1), *body = malloc(n64 + 256);

	assert_non_null(raw);
	assert_non_null(b64);
	assert_non_null(body);
	memset(raw, 'm', n);
	assert_true(base64_encode((uint8_t *)raw, n, b64, n64 + 1, NULL));
	snprintf(body, n64 + 256,
		 "{\"header\":{\"revision\":\"5\"},\"kvs\":[{\"key\":\"L2E=\","
		 "\"mod_revision\":\"5\",\"value\":\"%s\"}]}",
		 b64);
	free(raw);
	free(b64);
	return body;
}

static void test_range_size_limit(void **state)
{
	struct etcd_value v;
	char why[256];
	char *b = range_of_size(ETCD_VALUE_MAX);

	assert_true(strlen(b) < ETCD_ANSWER_MAX);
	assert_true(shard_etcd_parse_range(b, strlen(b), "/a", &v, why, sizeof(why)));
	assert_int_equal(v.len, ETCD_VALUE_MAX);
	assert_int_equal(v.text[ETCD_VALUE_MAX - 1], 'm');
	assert_int_equal(v.text[ETCD_VALUE_MAX], '\0');
	shard_etcd_value_clear(&v);
	free(b);

	b = range_of_size(ETCD_VALUE_MAX + 1);
	assert_false(shard_etcd_parse_range(b, strlen(b), "/a", &v, why, sizeof(why)));
	assert_non_null(strstr(why, "over 4194304 bytes"));
	assert_null(v.text);
	free(b);
}

static void test_watch(void **state)
{
	struct etcd_watch_msg m;
	const char *l;
	char why[256];

	l = fmt("{\"result\":{" HEADER ",\"created\":true}}\n", "3");
	assert_true(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_int_equal(m.kind, ETCD_WATCH_CREATED);
	assert_int_equal(m.value.revision, 3);

	/* A put, then a delete of the same key in one batch: the last one counts. */
	l = fmt("{\"result\":{" HEADER ",\"events\":[{\"kv\":{\"key\":\"L2E=\",\"create_revision\":"
		"\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"aGVsbG8=\"}},{\"type\":"
		"\"DELETE\",\"kv\":{\"key\":\"L2E=\",\"mod_revision\":\"3\"}}]}}",
		"3");
	assert_true(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_int_equal(m.kind, ETCD_WATCH_EVENTS);
	assert_false(m.value.found);
	assert_int_equal(m.value.mod_revision, 3);
	assert_null(m.value.text);

	/* A delete, then a put. */
	l = fmt("{\"result\":{" HEADER ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"L2E=\","
		"\"mod_revision\":\"3\"}},{\"kv\":{\"key\":\"L2E=\",\"mod_revision\":\"4\",\"value\":"
		"\"d29ybGQ=\"}}]}}",
		"4");
	assert_true(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_int_equal(m.kind, ETCD_WATCH_EVENTS);
	assert_true(m.value.found);
	assert_int_equal(m.value.mod_revision, 4);
	assert_int_equal(m.value.revision, 4);
	assert_string_equal(m.value.text, "world");
	shard_etcd_value_clear(&m.value);

	/* Events of another key only: nothing for us. */
	l = fmt("{\"result\":{" HEADER ",\"events\":[{\"kv\":{\"key\":\"L2I=\",\"mod_revision\":"
		"\"5\",\"value\":\"eA==\"}}]}}",
		"5");
	assert_true(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_int_equal(m.kind, ETCD_WATCH_PROGRESS);
	assert_null(m.value.text);

	/* Compacted past the revision asked for. */
	l = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"raft_term\":\"2\"},\"canceled\":true,"
	    "\"compact_revision\":\"3\"}}";
	assert_true(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_int_equal(m.kind, ETCD_WATCH_CANCELED);
	assert_int_equal(m.compact_revision, 3);
	assert_string_equal(why, "compacted");

	/* An error line, and one with a bad value. */
	l = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"no leader\"}}";
	assert_false(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_string_equal(why, "etcd says: no leader");
	l = fmt("{\"result\":{" HEADER ",\"events\":[{\"kv\":{\"key\":\"L2E=\",\"mod_revision\":"
		"\"5\",\"value\":\"%%%%\"}}]}}",
		"5");
	assert_false(shard_etcd_parse_watch(l, strlen(l), "/a", &m, why, sizeof(why)));
	assert_non_null(strstr(why, "not base64"));
	assert_null(m.value.text);
}

static void test_next_line(void **state)
{
	static const char s[] = "{\"a\":1}\n{\"b\":";

	assert_int_equal(shard_etcd_next_line(s, strlen(s)), 8);
	assert_int_equal(shard_etcd_next_line(s + 8, strlen(s + 8)), 0);
	assert_int_equal(shard_etcd_next_line("", 0), 0);
	assert_int_equal(shard_etcd_next_line("\n", 1), 1);
}

static void test_lease(void **state)
{
	char *b = shard_etcd_grant_request(10), why[200];
	int64_t id, ttl;

	assert_string_equal(b, "{\"TTL\":\"10\"}");
	free(b);
	b = shard_etcd_keepalive_request(2324035781161667077LL);
	assert_string_equal(b, "{\"ID\":\"2324035781161667077\"}");
	free(b);
	b = "{" HEADER_2 ",\"ID\":\"2324035781161667077\",\"TTL\":\"5\"}";
	assert_true(shard_etcd_parse_lease(b, strlen(b), &id, &ttl, why, sizeof(why)));
	assert_true(id == 2324035781161667077LL && ttl == 5);
	/* a keepalive: a stream of one result, then a blank line */
	b = "{\"result\":{" HEADER_2 ",\"ID\":\"77\",\"TTL\":\"4\"}}\n\n";
	assert_true(shard_etcd_parse_lease(b, strlen(b), &id, &ttl, why, sizeof(why)));
	assert_true(id == 77 && ttl == 4);
	/* an expired lease: no TTL */
	b = "{\"result\":{" HEADER_2 ",\"ID\":\"77\"}}\n";
	assert_true(shard_etcd_parse_lease(b, strlen(b), &id, &ttl, why, sizeof(why)));
	assert_true(id == 77 && ttl == 0);
	b = "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}";
	assert_false(shard_etcd_parse_lease(b, strlen(b), &id, &ttl, why, sizeof(why)));
	assert_non_null(strstr(why, "lease not found"));
	b = "{" HEADER_2 "}";
	assert_false(shard_etcd_parse_lease(b, strlen(b), &id, &ttl, why, sizeof(why)));
}

static void test_put_txn(void **state)
{
	char *b = shard_etcd_put_request("/m/x", "hello", 5, 42), why[200];
	bool ok;

	/* "/m/x" and "hello" in base64 */
	assert_string_equal(b, "{\"key\":\"L20veA==\",\"value\":\"aGVsbG8=\",\"lease\":\"42\"}");
	free(b);
	b = shard_etcd_cas_request("/m/x", 7, "hello", 5);
	assert_string_equal(b,
			    "{\"compare\":[{\"target\":\"MOD\",\"key\":\"L20veA==\","
			    "\"mod_revision\":\"7\",\"result\":\"EQUAL\"}],\"success\":"
			    "[{\"request_put\":{\"key\":\"L20veA==\",\"value\":\"aGVsbG8=\"}}]}");
	free(b);
	b = "{" HEADER_2 ",\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}";
	assert_true(shard_etcd_parse_txn(b, strlen(b), &ok, why, sizeof(why)));
	assert_true(ok);
	/* a compare that failed: succeeded (false) is left out */
	b = "{" HEADER_2 "}";
	assert_true(shard_etcd_parse_txn(b, strlen(b), &ok, why, sizeof(why)));
	assert_false(ok);
	b = "{\"error\":\"etcdserver: too many operations in txn request\",\"code\":3}";
	assert_false(shard_etcd_parse_txn(b, strlen(b), &ok, why, sizeof(why)));
	assert_false(ok);
	b = shard_etcd_delete_request("/m/x");
	assert_string_equal(b, "{\"key\":\"L20veA==\"}");
	free(b);
}

static void test_prefix(void **state)
{
	char *b = shard_etcd_prefix_request("/m/"), why[200];
	struct etcd_kvs kvs;

	struct etcd_watch_msg w;

	/* range_end "/m0": the prefix's last byte plus one */
	assert_string_equal(b, "{\"key\":\"L20v\",\"range_end\":\"L20w\"}");
	free(b);
	b = "{" HEADER_2 ",\"kvs\":[{\"key\":\"L20veA==\",\"create_revision\":\"2\","
	    "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"aGVsbG8=\",\"lease\":\"9\"},"
	    "{\"key\":\"L20veQ==\",\"mod_revision\":\"3\"}],\"count\":\"2\"}";
	assert_true(shard_etcd_parse_prefix(b, strlen(b), "/m/", &kvs, why, sizeof(why)));
	assert_int_equal(kvs.revision, 2);
	assert_int_equal(kvs.n, 2);
	assert_string_equal(kvs.kvs[0].key, "/m/x");
	assert_string_equal(kvs.kvs[0].value, "hello");
	assert_int_equal(kvs.kvs[0].mod_revision, 2);
	assert_string_equal(kvs.kvs[1].key, "/m/y");
	assert_string_equal(kvs.kvs[1].value, "");
	shard_etcd_kvs_clear(&kvs);
	b = "{" HEADER_2 "}";
	assert_true(shard_etcd_parse_prefix(b, strlen(b), "/m/", &kvs, why, sizeof(why)));
	assert_int_equal(kvs.n, 0);
	shard_etcd_kvs_clear(&kvs);
	/* a key outside the prefix is not believed */
	b = "{" HEADER_2 ",\"kvs\":[{\"key\":\"L24veA==\",\"mod_revision\":\"2\"}]}";
	assert_false(shard_etcd_parse_prefix(b, strlen(b), "/m/", &kvs, why, sizeof(why)));
	assert_non_null(strstr(why, "outside"));
	shard_etcd_kvs_clear(&kvs);
	/* a watch of the prefix: events of any key under it count */
	b = shard_etcd_watch_prefix_request("/m/", 8);
	assert_string_equal(b, "{\"create_request\":{\"key\":\"L20v\",\"range_end\":\"L20w\","
			       "\"start_revision\":\"8\"}}");
	free(b);
	b = "{\"result\":{" HEADER_2 ",\"events\":[{\"kv\":{\"key\":\"L20veQ==\","
	    "\"mod_revision\":\"9\",\"value\":\"aGVsbG8=\"}}]}}";
	assert_true(shard_etcd_parse_watch(b, strlen(b), NULL, &w, why, sizeof(why)));
	assert_int_equal(w.kind, ETCD_WATCH_EVENTS);
	assert_int_equal(w.value.mod_revision, 9);
	shard_etcd_value_clear(&w.value);
	/* the same line, read for one key, is nothing for that key */
	assert_true(shard_etcd_parse_watch(b, strlen(b), "/m/x", &w, why, sizeof(why)));
	assert_int_equal(w.kind, ETCD_WATCH_PROGRESS);
	shard_etcd_value_clear(&w.value);
	b = "{" HEADER_2 ",\"kvs\":[{\"key\":\"L20veA==\",\"value\":\"!!\"}]}";
	assert_false(shard_etcd_parse_prefix(b, strlen(b), "/m/", &kvs, why, sizeof(why)));
	shard_etcd_kvs_clear(&kvs);
}

static void test_move_record(void **state)
{
	struct etcd_move m = { .buckets = "0-99,200",
			       .from = "a",
			       .to = "b",
			       .step = ETCD_MOVE_HOLD,
			       .version = 3,
			       .coordinator = "h:6432:17" },
			 r;
	char *t = shard_etcd_move_format(&m), why[200];

	assert_string_equal(t, "buckets 0-99,200 from a to b step hold version 3 coordinator "
			       "h:6432:17");
	assert_true(shard_etcd_move_parse(t, &r, why, sizeof(why)));
	assert_string_equal(r.buckets, "0-99,200");
	assert_string_equal(r.to, "b");
	assert_int_equal(r.step, ETCD_MOVE_HOLD);
	assert_int_equal(r.version, 3);
	assert_string_equal(r.coordinator, "h:6432:17");
	free(t);
	assert_true(shard_etcd_move_parse("buckets 1 from a to b step aborted version 9 "
					  "coordinator x",
					  &r, why, sizeof(why)));
	assert_int_equal(r.step, ETCD_MOVE_ABORTED);
	assert_false(shard_etcd_move_parse("buckets 1 from a to b step sideways version 9 "
					   "coordinator x",
					   &r, why, sizeof(why)));
	assert_false(shard_etcd_move_parse("buckets 1 from a to b step done version 9 "
					   "coordinator x extra",
					   &r, why, sizeof(why)));
	assert_false(shard_etcd_move_parse("", &r, why, sizeof(why)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_source_good), cmocka_unit_test(test_source_bad),
		cmocka_unit_test(test_requests),    cmocka_unit_test(test_range),
		cmocka_unit_test(test_range_bad),   cmocka_unit_test(test_range_size_limit),
		cmocka_unit_test(test_watch),       cmocka_unit_test(test_lease),
		cmocka_unit_test(test_put_txn),     cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_move_record), cmocka_unit_test(test_next_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
