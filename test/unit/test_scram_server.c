/* link: src/auth/scram_server.c src/auth/scram.c src/auth/base64.c */
/*
 * Unit tests for auth/scram_server: the RFC 7677 exchange seen from the server (same messages,
 * same ClientKey), PostgreSQL's empty-user form, a round trip with our own client, the mock
 * exchange for unknown users, wrong proofs, channel-binding negotiation, and refusals of
 * malformed client messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/scram.h"
#include "auth/scram_server.h"

/* RFC 7677 section 3. */
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_OUR_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_NONCE RFC_NONCE RFC_OUR_NONCE
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_NONCE
#define RFC_SERVER_FIRST "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* The same exchange as a PostgreSQL client sends it, with "n=" (computed with hashlib). */
#define PG_CLIENT_FIRST "n,,n=,r=" RFC_NONCE
#define PG_CLIENT_FINAL                                                                            \
	"c=biws,r=" RFC_SERVER_NONCE ",p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k="
#define PG_SERVER_FINAL "v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg="

/* The stored secret for "pencil" with the RFC salt and iterations. */
#define RFC_SECRET                                                                                  \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_client_key[32] = {
	0xa6, 0x0f, 0xc9, 0x23, 0xd6, 0x7e, 0x86, 0x44, 0xa9, 0x2d, 0x16,
	0xb9, 0x6e, 0xda, 0x5e, 0xf4, 0x65, 0x6b, 0x0c, 0x72, 0x5c, 0x48,
	0x43, 0x74, 0xbe, 0x25, 0x53, 0x55, 0x76, 0x99, 0x6e, 0x8b,
};

static const uint8_t rfc_salt[16] = {
	0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
	0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81,
};

static void start(struct scram_server *ss, bool mock)
{
	struct scram_secret s;

	assert_true(scram_parse_secret(RFC_SECRET, &s));
	assert_true(
		scram_server_init(ss, mock ? NULL : &s, rfc_salt, sizeof(rfc_salt), RFC_OUR_NONCE));
}

static enum scram_server_result first(struct scram_server *ss, const char *msg, char *out,
				      size_t outlen)
{
	size_t n;
	char err[128];

	return scram_server_first(ss, msg, strlen(msg), out, outlen, &n, err, sizeof(err));
}

static enum scram_server_result final(struct scram_server *ss, const char *msg, char *out,
				      size_t outlen)
{
	size_t n;
	char err[128];

	return scram_server_final(ss, msg, strlen(msg), out, outlen, &n, err, sizeof(err));
}

static void test_rfc7677_vector(void **state)
{
	struct scram_server ss;
	char out[256];

	start(&ss, false);
	assert_int_equal(first(&ss, RFC_CLIENT_FIRST, out, sizeof(out)), SCRAM_SERVER_OK);
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(ss.state, SCRAM_SERVER_FIRST_SENT);
	assert_int_equal(final(&ss, RFC_CLIENT_FINAL, out, sizeof(out)), SCRAM_SERVER_OK);
	assert_string_equal(out, RFC_SERVER_FINAL);
	assert_int_equal(ss.state, SCRAM_SERVER_DONE);
	assert_memory_equal(ss.client_key, rfc_client_key, 32);
	scram_server_clear(&ss);
}

static void test_postgresql_form(void **state)
{
	struct scram_server ss;
	char out[256];

	start(&ss, false);
	assert_int_equal(first(&ss, PG_CLIENT_FIRST, out, sizeof(out)), SCRAM_SERVER_OK);
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(final(&ss, PG_CLIENT_FINAL, out, sizeof(out)), SCRAM_SERVER_OK);
	assert_string_equal(out, PG_SERVER_FINAL);
	scram_server_clear(&ss);
}

/* Our client against our server, with random nonces, then the client's pass-through keys. */
static void test_roundtrip_with_client(void **state)
{
	struct scram_server ss;
	struct scram_client sc;
	struct scram_secret s;
	char c1[256], s1[256], c2[256], s2[256], err[128];
	size_t n1, n2, n3, n4;

	assert_true(scram_parse_secret(RFC_SECRET, &s));
	for (int round = 0; round < 2; round++) {
		assert_true(scram_server_init(&ss, &s, rfc_salt, sizeof(rfc_salt), NULL));
		if (round == 0)
			assert_true(scram_client_init(&sc, "pencil", NULL));
		else
			assert_true(
				scram_client_init_keys(&sc, rfc_client_key, s.server_key, NULL));
		assert_true(scram_client_first_message(&sc, "", c1, sizeof(c1), &n1));
		assert_int_equal(scram_server_first(&ss, c1, n1, s1, sizeof(s1), &n2, err,
						    sizeof(err)),
				 SCRAM_SERVER_OK);
		assert_true(scram_client_final_message(&sc, s1, n2, c2, sizeof(c2), &n3, err,
						       sizeof(err)));
		assert_int_equal(scram_server_final(&ss, c2, n3, s2, sizeof(s2), &n4, err,
						    sizeof(err)),
				 SCRAM_SERVER_OK);
		assert_true(scram_client_verify_final(&sc, s2, n4, err, sizeof(err)));
		assert_memory_equal(ss.client_key, rfc_client_key, 32);
		scram_client_clear(&sc);
		scram_server_clear(&ss);
	}
}

static void test_wrong_proof_and_mock(void **state)
{
	struct scram_server ss;
	char out[256];
	const char *wrong = "c=biws,r=" RFC_SERVER_NONCE
			    ",p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

	start(&ss, false);
	first(&ss, RFC_CLIENT_FIRST, out, sizeof(out));
	assert_int_equal(final(&ss, wrong, out, sizeof(out)), SCRAM_SERVER_BAD_PROOF);
	assert_string_equal(out, "");
	assert_int_equal(ss.state, SCRAM_SERVER_FAILED);
	scram_server_clear(&ss);

	/* A mock exchange shows the given salt and refuses even the right proof. */
	start(&ss, true);
	assert_int_equal(first(&ss, RFC_CLIENT_FIRST, out, sizeof(out)), SCRAM_SERVER_OK);
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(final(&ss, RFC_CLIENT_FINAL, out, sizeof(out)), SCRAM_SERVER_BAD_PROOF);
	assert_int_not_equal(ss.state, SCRAM_SERVER_DONE);
	scram_server_clear(&ss);
}

static void test_channel_binding_flag_y(void **state)
{
	struct scram_server ss;
	char out[256];

	start(&ss, false);
	assert_int_equal(first(&ss, "y,,n=,r=" RFC_NONCE, out, sizeof(out)), SCRAM_SERVER_OK);
	/* c= must repeat the "y,," header: "biws" (n,,) is a mismatch. */
	assert_int_equal(final(&ss, PG_CLIENT_FINAL, out, sizeof(out)), SCRAM_SERVER_MALFORMED);
	scram_server_clear(&ss);
}

static void test_malformed_client_first(void **state)
{
	static const char *const bad[] = {
		"",
		"n,",
		"p=tls-server-end-point,,n=,r=abc",
		"x,,n=,r=abc",
		"n,a=someone,n=,r=abc",
		"n,,m=ext,n=,r=abc",
		"n,,r=abc",
		"n,,n=,",
		"n,,n=,r=",
		"n,,n=,s=abc",
		"n,,n=,r=a b",
	};
	struct scram_server ss;
	char out[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		start(&ss, false);
		if (first(&ss, bad[i], out, sizeof(out)) != SCRAM_SERVER_MALFORMED)
			fail_msg("accepted client-first \"%s\"", bad[i]);
		assert_int_equal(ss.state, SCRAM_SERVER_FAILED);
		scram_server_clear(&ss);
	}
	/* NUL inside the message */
	start(&ss, false);
	size_t n;
	char err[64];
	assert_int_equal(scram_server_first(&ss, "n,,n=\0,r=abc", 12, out, sizeof(out), &n, err,
					    sizeof(err)),
			 SCRAM_SERVER_MALFORMED);
	scram_server_clear(&ss);
}

static void test_malformed_client_final(void **state)
{
	static const char *const bad[] = {
		"",
		"r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE "x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_SERVER_NONCE "x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_SERVER_NONCE,
		"c=biws,r=" RFC_SERVER_NONCE ",p=dHzbZapW",
		"c=biws,r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
		"c=eSws,r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=!!!!,r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	};
	struct scram_server ss;
	char out[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		start(&ss, false);
		assert_int_equal(first(&ss, RFC_CLIENT_FIRST, out, sizeof(out)), SCRAM_SERVER_OK);
		if (final(&ss, bad[i], out, sizeof(out)) != SCRAM_SERVER_MALFORMED)
			fail_msg("accepted client-final \"%s\"", bad[i]);
		scram_server_clear(&ss);
	}
}

static void test_extension_before_proof(void **state)
{
	struct scram_server ss;
	char out[256];

	/* An extension attribute changes the AuthMessage, so the RFC proof no longer fits. */
	start(&ss, false);
	first(&ss, RFC_CLIENT_FIRST, out, sizeof(out));
	assert_int_equal(final(&ss,
			       "c=biws,r=" RFC_SERVER_NONCE
			       ",x=ext,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			       out, sizeof(out)),
			 SCRAM_SERVER_BAD_PROOF);
	scram_server_clear(&ss);
}

static void test_out_of_order(void **state)
{
	struct scram_server ss;
	char out[256];

	start(&ss, false);
	assert_int_equal(final(&ss, RFC_CLIENT_FINAL, out, sizeof(out)), SCRAM_SERVER_MALFORMED);
	scram_server_clear(&ss);
	start(&ss, false);
	first(&ss, RFC_CLIENT_FIRST, out, sizeof(out));
	assert_int_equal(first(&ss, RFC_CLIENT_FIRST, out, sizeof(out)), SCRAM_SERVER_MALFORMED);
	scram_server_clear(&ss);
}

static void test_init_rejects(void **state)
{
	struct scram_server ss;

	assert_false(scram_server_init(&ss, NULL, NULL, 0, NULL));
	assert_false(scram_server_init(&ss, NULL, rfc_salt, sizeof(rfc_salt), "a,b"));
	assert_false(scram_server_init(&ss, NULL, rfc_salt, sizeof(rfc_salt), ""));
}

static void test_channel_binding_negotiation(void **state)
{
	static const uint8_t hash[32] = { 1, 2, 3 };
	static const struct {
		bool offered, selected;
		const char *first;
		enum scram_server_result want;
	} cases[] = {
		{ true, true, "p=tls-server-end-point,,n=,r=abc", SCRAM_SERVER_OK },
		{ true, true, "p=tls-unique,,n=,r=abc", SCRAM_SERVER_MALFORMED },
		{ true, true, "n,,n=,r=abc", SCRAM_SERVER_MALFORMED },
		{ true, true, "y,,n=,r=abc", SCRAM_SERVER_MALFORMED },
		{ true, false, "y,,n=,r=abc", SCRAM_SERVER_MALFORMED }, /* downgrade */
		{ true, false, "n,,n=,r=abc", SCRAM_SERVER_OK },
		{ true, false, "p=tls-server-end-point,,n=,r=abc", SCRAM_SERVER_MALFORMED },
		{ false, false, "y,,n=,r=abc", SCRAM_SERVER_OK },
	};
	struct scram_server ss;
	char out[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		start(&ss, false);
		if (cases[i].offered)
			assert_true(scram_server_set_channel_binding(&ss, cases[i].selected, hash,
								     sizeof(hash)));
		if (first(&ss, cases[i].first, out, sizeof(out)) != cases[i].want)
			fail_msg("case %zu: \"%s\"", i, cases[i].first);
		scram_server_clear(&ss);
	}
	/* With binding, c= must carry the header and the hash: the plain "biws" is refused. */
	start(&ss, false);
	assert_true(scram_server_set_channel_binding(&ss, true, hash, sizeof(hash)));
	assert_int_equal(first(&ss, "p=tls-server-end-point,,n=,r=" RFC_NONCE, out, sizeof(out)),
			 SCRAM_SERVER_OK);
	assert_int_equal(final(&ss, PG_CLIENT_FINAL, out, sizeof(out)), SCRAM_SERVER_MALFORMED);
	scram_server_clear(&ss);
	assert_false(scram_server_set_channel_binding(&ss, true, hash, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_vector),
		cmocka_unit_test(test_postgresql_form),
		cmocka_unit_test(test_roundtrip_with_client),
		cmocka_unit_test(test_wrong_proof_and_mock),
		cmocka_unit_test(test_channel_binding_flag_y),
		cmocka_unit_test(test_malformed_client_first),
		cmocka_unit_test(test_malformed_client_final),
		cmocka_unit_test(test_extension_before_proof),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_init_rejects),
		cmocka_unit_test(test_channel_binding_negotiation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
