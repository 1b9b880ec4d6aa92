/* link: src/ev/takeovermsg.c */
/*
 * Unit tests for ev/takeovermsg: every message type encodes and decodes back to itself, each
 * cut of a valid message is refused, and what the encoder must not write (unknown types and
 * kinds, too many records, strings too long or with a NUL) and the decoder must not take
 * (bad magic, trailing bytes, counts past the end) is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ev/takeovermsg.h"

static struct takeover_msg sockets_msg(int n)
{
	struct takeover_msg m = { .type = TAKEOVER_SOCKETS,
				  .version = TAKEOVER_VERSION,
				  .pid = 4242 };

	m.n_socks = n;
	for (int i = 0; i < n; i++) {
		struct takeover_sock *s = &m.socks[i];

		s->kind = (uint8_t)(i % 3 + 1);
		s->flags = i % 2 ? TAKEOVER_F_OWNED : 0;
		s->family = i % 2 ? AF_UNIX : AF_INET6;
		snprintf(s->addr, sizeof(s->addr), i % 2 ? "/run/pgmux/.s.PGSQL.%d" : "[::1]:%d",
			 6000 + i);
	}
	return m;
}

static void assert_same(const struct takeover_msg *a, const struct takeover_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->pid, b->pid);
	assert_int_equal(a->n_socks, b->n_socks);
	for (int i = 0; i < a->n_socks; i++) {
		assert_int_equal(a->socks[i].kind, b->socks[i].kind);
		assert_int_equal(a->socks[i].flags, b->socks[i].flags);
		assert_int_equal(a->socks[i].family, b->socks[i].family);
		assert_string_equal(a->socks[i].addr, b->socks[i].addr);
	}
	assert_string_equal(a->reason, b->reason);
}

/* Encode m, decode it whole, and refuse every shorter cut of it. */
static void roundtrip(const struct takeover_msg *m)
{
	uint8_t buf[TAKEOVER_MSG_MAX];
	struct takeover_msg got;
	char err[128];
	size_t len = takeovermsg_encode(m, buf, sizeof(buf));

	assert_true(len > 0);
	assert_true(takeovermsg_decode(buf, len, &got, err, sizeof(err)));
	assert_same(m, &got);
	for (size_t cut = 0; cut < len; cut++)
		if (takeovermsg_decode(buf, cut, &got, err, sizeof(err)))
			fail_msg("a cut at %zu of %zu bytes decoded", cut, len);
	/* The encoder refuses a buffer one byte too small rather than writing part of it. */
	assert_int_equal(takeovermsg_encode(m, buf, len - 1), 0);
}

static void test_roundtrip(void **state)
{
	struct takeover_msg simple[] = {
		{ .type = TAKEOVER_HELLO, .version = TAKEOVER_VERSION, .pid = 1 },
		{ .type = TAKEOVER_HELLO, .version = 65535, .pid = 4294967295u },
		{ .type = TAKEOVER_READY, .version = TAKEOVER_VERSION, .pid = 77 },
		{ .type = TAKEOVER_DONE, .version = TAKEOVER_VERSION, .pid = 78 },
		{ .type = TAKEOVER_REFUSE, .version = TAKEOVER_VERSION, .pid = 79, .reason = "" },
		{ .type = TAKEOVER_REFUSE,
		  .version = TAKEOVER_VERSION,
		  .pid = 79,
		  .reason = "another takeover is in progress" },
	};
	struct takeover_msg m;

	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		roundtrip(&simple[i]);
	for (int n = 0; n <= TAKEOVER_MAX_SOCKETS; n++) {
		m = sockets_msg(n);
		roundtrip(&m);
	}
	/* The longest address and reason that fit, in the largest message. */
	m = sockets_msg(TAKEOVER_MAX_SOCKETS);
	for (int i = 0; i < m.n_socks; i++) {
		memset(m.socks[i].addr, 'a', sizeof(m.socks[i].addr) - 1);
		m.socks[i].addr[sizeof(m.socks[i].addr) - 1] = '\0';
	}
	roundtrip(&m);
	m = (struct takeover_msg){ .type = TAKEOVER_REFUSE, .version = 1, .pid = 2 };
	memset(m.reason, 'r', sizeof(m.reason) - 1);
	roundtrip(&m);
}

static void test_encode_refuses(void **state)
{
	uint8_t buf[TAKEOVER_MSG_MAX];
	struct takeover_msg m = { .type = 'Q', .version = 1 };

	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m = sockets_msg(1);
	m.socks[0].kind = 9;
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m = sockets_msg(1);
	m.n_socks = TAKEOVER_MAX_SOCKETS + 1;
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m.n_socks = -1;
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m = sockets_msg(1);
	memset(m.socks[0].addr, 'a', sizeof(m.socks[0].addr)); /* no NUL: too long */
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m = (struct takeover_msg){ .type = TAKEOVER_REFUSE };
	memset(m.reason, 'r', sizeof(m.reason));
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	assert_int_equal(takeovermsg_encode(&m, buf, 0), 0);
}

static bool decodes(const void *bytes, size_t len)
{
	struct takeover_msg m;
	char err[128];

	return takeovermsg_decode(bytes, len, &m, err, sizeof(err));
}

static void test_decode_refuses(void **state)
{
	/* magic, type, version 1, pid 5 */
	static const uint8_t hello[] = { 'p', 'g', 'm', 'x', 'H', 0, 1, 0, 0, 0, 5 };
	uint8_t b[64];

	assert_true(decodes(hello, sizeof(hello)));
	memcpy(b, hello, sizeof(hello));
	b[0] = 'P';
	assert_false(decodes(b, sizeof(hello))); /* magic */
	memcpy(b, hello, sizeof(hello));
	b[4] = 'Z';
	assert_false(decodes(b, sizeof(hello))); /* type */
	memcpy(b, hello, sizeof(hello));
	b[sizeof(hello)] = 0;
	assert_false(decodes(b, sizeof(hello) + 1)); /* trailing byte */
	{
		/* SOCKETS with a count of 2 and one record */
		static const uint8_t s[] = { 'p', 'g', 'm', 'x', 'S', 0, 1, 0,   0,   0,
					     5,   2,   1,   0,   0,   2, 3, 'a', ':', '1' };
		/* SOCKETS with one record of an unknown kind, and one with a NUL in its address */
		static const uint8_t k[] = { 'p', 'g', 'm', 'x', 'S', 0, 1, 0,   0,   0,
					     5,   1,   7,   0,   0,   2, 3, 'a', ':', '1' };
		static const uint8_t z[] = { 'p', 'g', 'm', 'x', 'S', 0, 1, 0,   0, 0,
					     5,   1,   1,   0,   0,   2, 3, 'a', 0, '1' };
		/* a count above TAKEOVER_MAX_SOCKETS */
		static const uint8_t c[] = { 'p', 'g', 'm', 'x', 'S', 0, 1, 0, 0, 0, 5, 200 };
		/* an address length past the end */
		static const uint8_t l[] = { 'p', 'g', 'm', 'x', 'S', 0, 1, 0,   0,   0,
					     5,   1,   1,   0,   0,   2, 9, 'a', ':', '1' };

		assert_false(decodes(s, sizeof(s)));
		assert_false(decodes(k, sizeof(k)));
		assert_false(decodes(z, sizeof(z)));
		assert_false(decodes(c, sizeof(c)));
		assert_false(decodes(l, sizeof(l)));
	}
}

/*
 * PART and CLIENT: the piece is the rest of the packet, so a cut one decodes to a shorter piece
 * (the record's own framing, proto/clientrec, refuses what it makes); empty and oversized pieces
 * are refused.
 */
static void test_client_record(void **state)
{
	static uint8_t record[TAKEOVER_PIECE_MAX + 1], buf[TAKEOVER_PIECE_MSG_MAX + 1];
	struct takeover_msg m = { .type = TAKEOVER_CLIENT, .version = TAKEOVER_VERSION, .pid = 9 };
	struct takeover_msg got;
	char err[128];
	size_t len;

	for (size_t i = 0; i < sizeof(record); i++)
		record[i] = (uint8_t)(i * 7);
	m.piece = record;
	m.piece_len = TAKEOVER_PIECE_MAX;
	len = takeovermsg_encode(&m, buf, sizeof(buf));
	assert_int_equal(len, TAKEOVER_PIECE_MSG_MAX);
	assert_true(takeovermsg_decode(buf, len, &got, err, sizeof(err)));
	assert_int_equal(got.type, TAKEOVER_CLIENT);
	assert_int_equal(got.pid, 9);
	assert_int_equal(got.piece_len, TAKEOVER_PIECE_MAX);
	assert_memory_equal(got.piece, record, TAKEOVER_PIECE_MAX);
	assert_false(takeovermsg_decode(buf, 11, &got, err, sizeof(err))); /* no record */
	assert_int_equal(takeovermsg_encode(&m, buf, len - 1), 0);
	m.piece_len = TAKEOVER_PIECE_MAX + 1;
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m.piece_len = 0;
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
	m.type = TAKEOVER_PART;
	m.piece_len = 1;
	len = takeovermsg_encode(&m, buf, sizeof(buf));
	assert_int_equal(len, 12);
	assert_true(takeovermsg_decode(buf, len, &got, err, sizeof(err)));
	assert_int_equal(got.type, TAKEOVER_PART);
	assert_int_equal(got.piece_len, 1);
	/* a packet one byte over the largest piece */
	m.piece_len = TAKEOVER_PIECE_MAX;
	len = takeovermsg_encode(&m, buf, sizeof(buf));
	buf[len] = 0;
	assert_false(takeovermsg_decode(buf, len + 1, &got, err, sizeof(err)));
}

/* SERVERS: names and count round-trip; a name too long is refused by the encoder. */
static void test_servers(void **state)
{
	struct takeover_msg m = { .type = TAKEOVER_SERVERS,
				  .version = TAKEOVER_VERSION,
				  .pid = 3,
				  .db = "app",
				  .user = "alice",
				  .n_servers = 17 };
	struct takeover_msg got;
	uint8_t buf[TAKEOVER_MSG_MAX];
	char err[128];
	size_t len = takeovermsg_encode(&m, buf, sizeof(buf));

	assert_true(len > 0);
	assert_true(takeovermsg_decode(buf, len, &got, err, sizeof(err)));
	assert_string_equal(got.db, "app");
	assert_string_equal(got.user, "alice");
	assert_int_equal(got.n_servers, 17);
	for (size_t cut = 0; cut < len; cut++)
		assert_false(takeovermsg_decode(buf, cut, &got, err, sizeof(err)));
	memset(m.db, 'd', sizeof(m.db)); /* no NUL: too long */
	assert_int_equal(takeovermsg_encode(&m, buf, sizeof(buf)), 0);
}

static void test_names(void **state)
{
	assert_string_equal(takeovermsg_type_name(TAKEOVER_SOCKETS), "sockets");
	assert_string_equal(takeovermsg_type_name('?'), "unknown");
	assert_string_equal(takeovermsg_kind_name(TAKEOVER_CONTROL), "control");
	assert_string_equal(takeovermsg_kind_name(0), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_decode_refuses), cmocka_unit_test(test_client_record),
		cmocka_unit_test(test_servers),        cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
