/*
 * Unit tests for ev/httpparse: complete and incomplete requests, keep-alive by version and
 * Connection header, query strings, pipelined requests, and what is refused.
 */
/* link: src/ev/httpparse.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ev/httpparse.h"

static enum httpparse_result parse(const char *s, struct http_request *req)
{
	return httpparse_request(s, strlen(s), req);
}

static void test_ok(void **state)
{
	static const struct {
		const char *text, *method, *path;
		bool keep_alive;
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/metrics", true },
		{ "GET /metrics?name[]=a HTTP/1.1\r\n\r\n", "GET", "/metrics", true },
		{ "HEAD /health HTTP/1.0\r\n\r\n", "HEAD", "/health", false },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", true },
		{ "GET /ready HTTP/1.1\r\nconnection: foo, close\r\n\r\n", "GET", "/ready", false },
		{ "\r\nGET /x HTTP/1.1\nAccept: */*\n\n", "GET", "/x", true },
		{ "GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "GET", "/x", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_request req;

		assert_int_equal(parse(cases[i].text, &req), HTTPPARSE_OK);
		assert_string_equal(req.method, cases[i].method);
		assert_string_equal(req.path, cases[i].path);
		assert_int_equal(req.keep_alive, cases[i].keep_alive);
		assert_int_equal(req.length, strlen(cases[i].text));
	}
}

static void test_incomplete_and_pipelined(void **state)
{
	const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
	struct http_request req;

	for (size_t n = 0; n < 19; n++)
		assert_int_equal(httpparse_request(two, n, &req), HTTPPARSE_INCOMPLETE);
	assert_int_equal(httpparse_request(two, strlen(two), &req), HTTPPARSE_OK);
	assert_string_equal(req.path, "/a");
	assert_int_equal(req.length, 19);
	assert_int_equal(httpparse_request(two + req.length, strlen(two) - 19, &req), HTTPPARSE_OK);
	assert_string_equal(req.path, "/b");
}

static void test_bad(void **state)
{
	static const char *const bad[] = {
		"HELLO\r\n\r\n",
		"GET /x HTTP/2.0\r\n\r\n",
		"GET x HTTP/1.1\r\n\r\n",
		"get /x HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.1\r\nno colon\r\n\r\n",
		"GET /x HTTP/1.1\r\n folded: x\r\n\r\n",
		"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
		"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"VERYLONGMETHOD /x HTTP/1.1\r\n\r\n",
	};
	char longpath[400];
	struct http_request req;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &req), HTTPPARSE_BAD);
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "GET /", 5);
	memcpy(longpath + 300, " HTTP/1.1\r\n\r\n", 14);
	assert_int_equal(parse(longpath, &req), HTTPPARSE_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_incomplete_and_pipelined),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
