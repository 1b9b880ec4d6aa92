/*
 * Unit tests for auth/scram: the RFC 7677 exchange, PostgreSQL's empty-user form, secrets made
 * by PostgreSQL 15, a full client/server round trip with pass-through keys, and refusals of
 * malformed or hostile server messages, the iteration bound and the cache of derived keys.
 * Expected values that are not in the RFC were computed independently with Python's
 * hashlib/hmac.
 */
/* link: src/auth/scram.c src/auth/base64.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/base64.h"
#include "auth/scram.h"

/* RFC 7677 section 3. */
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_FIRST "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* The same exchange as a PostgreSQL client sends it, with "n=" (computed with hashlib). */
#define PG_CLIENT_FINAL                                                                            \
	"c=biws,r=" RFC_SERVER_NONCE ",p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k="
#define PG_SERVER_FINAL "v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg="

/* The stored secret for "pencil" with the RFC salt and iterations (computed with hashlib). */
#define RFC_SECRET                                                                                  \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* rolpassword of roles made by PostgreSQL 15 with password_encryption = scram-sha-256. */
#define PG15_SECRET_SECRET                                                                          \
	"SCRAM-SHA-256$4096:o4QEd61vFkZse4IU7swO1A==$QoUN1DP3sh+h2zyK7NYSxThZlNPmUyQcudgWS7yFI+w=:" \
	"huTk0eE0WM/hho7BOVUUdjNuf0TUe6oo/PmT47mdWh4="
#define PG15_SECRET_PENCIL                                                                          \
	"SCRAM-SHA-256$4096:dvYE/MXgVz0WzhB+LElMWg==$WbFqw6yfTq0LR/K6tx7lmYneZPGvGOWpM8XkODNRn1k=:" \
	"MalMxfNq8t5sSzS1MAqrNRnknGpoWLo5RXDvNKbrvss="

/* ClientKey and ServerKey for "pencil" with the RFC salt (computed with hashlib). */
static const uint8_t rfc_client_key[32] = {
	0xa6, 0x0f, 0xc9, 0x23, 0xd6, 0x7e, 0x86, 0x44, 0xa9, 0x2d, 0x16,
	0xb9, 0x6e, 0xda, 0x5e, 0xf4, 0x65, 0x6b, 0x0c, 0x72, 0x5c, 0x48,
	0x43, 0x74, 0xbe, 0x25, 0x53, 0x55, 0x76, 0x99, 0x6e, 0x8b,
};
static const uint8_t rfc_server_key[32] = {
	0xc1, 0xf3, 0xcb, 0xc1, 0xc1, 0x3a, 0x9d, 0x35, 0xa1, 0x4c, 0x09,
	0x90, 0xee, 0xd9, 0x76, 0x29, 0xea, 0x22, 0x58, 0x63, 0xe5, 0x66,
	0xa4, 0x31, 0x4a, 0xb9, 0x9f, 0x3f, 0x00, 0xe5, 0xd9, 0xd5,
};

/* Run init (done by the caller) + first + final; returns the final's result. */
static bool run_to_final(struct scram_client *sc, const char *user, const char *server_first,
			 size_t len, char *final, size_t finallen, char *err, size_t errlen)
{
	char first[256];
	size_t n;
	assert_true(scram_client_first_message(sc, user, first, sizeof(first), &n));
	size_t fn;
	return scram_client_final_message(sc, server_first, len, final, finallen, &fn, err, errlen);
}

static void test_rfc7677_vector(void **state)
{
	struct scram_client sc;
	char first[256], final[256], err[256];
	size_t n;

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_int_equal(sc.state, SCRAM_CLIENT_NEW);
	assert_true(scram_client_first_message(&sc, "user", first, sizeof(first), &n));
	assert_string_equal(first, "n,,n=user,r=" RFC_NONCE);
	assert_int_equal(n, strlen(first));

	assert_true(scram_client_final_message(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
					       final, sizeof(final), &n, err, sizeof(err)));
	assert_string_equal(final, RFC_CLIENT_FINAL);
	assert_int_equal(n, strlen(RFC_CLIENT_FINAL));
	assert_null(sc.password); /* dropped once the keys exist */

	assert_true(scram_client_verify_final(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err,
					      sizeof(err)));
	assert_int_equal(sc.state, SCRAM_CLIENT_DONE);
	assert_memory_equal(sc.client_key, rfc_client_key, 32);
	assert_memory_equal(sc.server_key, rfc_server_key, 32);
	scram_client_clear(&sc);
}

static void test_postgresql_empty_user(void **state)
{
	struct scram_client sc;
	char first[256], final[256], err[256];
	size_t n;

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_true(scram_client_first_message(&sc, NULL, first, sizeof(first), &n));
	assert_string_equal(first, "n,,n=,r=" RFC_NONCE);
	assert_true(scram_client_final_message(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
					       final, sizeof(final), &n, err, sizeof(err)));
	assert_string_equal(final, PG_CLIENT_FINAL);
	assert_true(scram_client_verify_final(&sc, PG_SERVER_FINAL, strlen(PG_SERVER_FINAL), err,
					      sizeof(err)));
	scram_client_clear(&sc);
}

/* Known keys give the same messages as the password, without the password. */
static void test_init_keys(void **state)
{
	struct scram_client sc;
	char final[256], err[256];

	assert_true(scram_client_init_keys(&sc, rfc_client_key, rfc_server_key, RFC_NONCE));
	assert_true(run_to_final(&sc, "user", RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				 sizeof(final), err, sizeof(err)));
	assert_string_equal(final, RFC_CLIENT_FINAL);
	assert_true(scram_client_verify_final(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err,
					      sizeof(err)));
	scram_client_clear(&sc);
}

static void test_username_escaped(void **state)
{
	struct scram_client sc;
	char first[256];
	size_t n;
	assert_true(scram_client_init(&sc, "pw", "abc"));
	assert_true(scram_client_first_message(&sc, "a=b,c", first, sizeof(first), &n));
	assert_string_equal(first, "n,,n=a=3Db=2Cc,r=abc");
	scram_client_clear(&sc);
}

static void test_random_nonce(void **state)
{
	struct scram_client a, b;
	assert_true(scram_client_init(&a, "pw", NULL));
	assert_true(scram_client_init(&b, "pw", NULL));
	assert_int_equal(strlen(a.nonce), 24); /* 18 bytes in base64 */
	assert_string_not_equal(a.nonce, b.nonce);
	assert_null(strchr(a.nonce, ','));
	scram_client_clear(&a);
	scram_client_clear(&b);
}

static void test_bad_nonce_rejected(void **state)
{
	static const char *const bad[] = {
		"",
		"a,b",
		"a b",
		"caf\xc3\xa9",
		"0123456789012345678901234567890123456789012345678901234567890123456789", /* > 64 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scram_client sc;
		assert_false(scram_client_init(&sc, "pw", bad[i]));
		assert_int_equal(sc.state, SCRAM_CLIENT_FAILED);
		scram_client_clear(&sc);
	}
}

/* A server-first message that must be refused, and a word the error must contain. */
static const struct {
	const char *msg;
	const char *why;
} bad_server_first[] = {
	{ "", "expected r=" },
	{ "r=", "nonce" },
	{ "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce" }, /* not extended */
	{ "r=XOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce" },
	{ "r=rOprNGfwEbeRWgbNEkq,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	  "nonce" }, /* a prefix of ours */
	{ "r=" RFC_NONCE "x y,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce" },
	{ "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" RFC_SERVER_NONCE ",i=4096", "expected r=" },
	{ "r=" RFC_SERVER_NONCE ",i=4096", "expected s=" },
	{ "r=" RFC_SERVER_NONCE ",s=,i=4096", "salt" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", "salt" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6g!==,i=4096", "salt" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==", "expected i=" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=", "iteration" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "iteration" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "iteration" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096", "iteration" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x", "iteration" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001", "iteration" },
	{ "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999999",
	  "iteration" },
	{ "m=ext,r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension" },
};

static void test_malformed_server_first(void **state)
{
	for (size_t i = 0; i < sizeof(bad_server_first) / sizeof(bad_server_first[0]); i++) {
		struct scram_client sc;
		char final[256], err[256] = "";
		const char *msg = bad_server_first[i].msg;
		assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
		if (run_to_final(&sc, "", msg, strlen(msg), final, sizeof(final), err, sizeof(err)))
			fail_msg("accepted \"%s\"", msg);
		if (!strstr(err, bad_server_first[i].why))
			fail_msg("\"%s\": error \"%s\" lacks \"%s\"", msg, err,
				 bad_server_first[i].why);
		assert_int_equal(sc.state, SCRAM_CLIENT_FAILED);
		scram_client_clear(&sc);
	}
}

static void test_server_first_nul_and_length(void **state)
{
	struct scram_client sc;
	char final[256], err[256];
	static const char with_nul[] = "r=" RFC_SERVER_NONCE "\0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_false(run_to_final(&sc, "", with_nul, sizeof(with_nul) - 1, final, sizeof(final),
				  err, sizeof(err)));
	assert_non_null(strstr(err, "NUL"));
	scram_client_clear(&sc);

	char huge[SCRAM_MESSAGE_MAX + 10];
	int w = snprintf(huge, sizeof(huge), "r=%s", RFC_SERVER_NONCE);
	memset(huge + w, 'a', sizeof(huge) - (size_t)w);
	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_false(
		run_to_final(&sc, "", huge, sizeof(huge), final, sizeof(final), err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
	scram_client_clear(&sc);
}

/* RFC 5802 lets a server append extensions; the message is still used whole in AuthMessage. */
static void test_server_first_extension_ignored(void **state)
{
	struct scram_client sc;
	char final[256], err[256];
	const char *msg = RFC_SERVER_FIRST ",x=whatever";
	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_true(run_to_final(&sc, "user", msg, strlen(msg), final, sizeof(final), err,
				 sizeof(err)));
	/* Same nonce, so same prefix; the proof differs because AuthMessage does. */
	assert_memory_equal(final, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL) - 44);
	assert_string_not_equal(final, RFC_CLIENT_FINAL);
	scram_client_clear(&sc);
}

static void test_final_buffer_too_small(void **state)
{
	struct scram_client sc;
	char final[256], err[256];
	for (size_t len = 0; len <= strlen(RFC_CLIENT_FINAL); len++) {
		assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
		assert_false(run_to_final(&sc, "user", RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
					  final, len, err, sizeof(err)));
		scram_client_clear(&sc);
	}
	char first[8];
	size_t n;
	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_false(scram_client_first_message(&sc, "user", first, sizeof(first), &n));
	scram_client_clear(&sc);
}

/* Bring a client to FINAL_SENT on the RFC exchange. */
static void rfc_client_at_final(struct scram_client *sc)
{
	char final[256], err[256];
	assert_true(scram_client_init(sc, "pencil", RFC_NONCE));
	assert_true(run_to_final(sc, "user", RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				 sizeof(final), err, sizeof(err)));
}

static void test_bad_server_final(void **state)
{
	static const struct {
		const char *msg;
		const char *why;
	} cases[] = {
		/* well-formed but wrong: the value with the wrong tail */
		{ "v=6rriTRBVEWa6gLnWHn3Ab/sCdmh6dHXtzBzpXFOVKuY=", "does not match" },
		{ PG_SERVER_FINAL, "does not match" }, /* right key, other AuthMessage */
		{ "e=invalid-proof", "invalid-proof" },
		{ "e=other-error\x01", "other-error?" },
		{ "v=", "invalid signature" },
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", "invalid signature" },
		{ "v=6rriTRBi23WpRR/wtup+mA==", "invalid signature" }, /* 16 bytes */
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA", "invalid signature" },
		{ "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "expected v=" },
		{ "", "expected v=" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_client sc;
		char err[256] = "";
		rfc_client_at_final(&sc);
		if (scram_client_verify_final(&sc, cases[i].msg, strlen(cases[i].msg), err,
					      sizeof(err)))
			fail_msg("accepted \"%s\"", cases[i].msg);
		if (!strstr(err, cases[i].why))
			fail_msg("\"%s\": error \"%s\" lacks \"%s\"", cases[i].msg, err,
				 cases[i].why);
		assert_int_equal(sc.state, SCRAM_CLIENT_FAILED);
		scram_client_clear(&sc);
	}
}

static void test_out_of_order(void **state)
{
	struct scram_client sc;
	char buf[256], err[256];
	size_t n;

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_false(scram_client_final_message(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
						buf, sizeof(buf), &n, err, sizeof(err)));
	assert_non_null(strstr(err, "out of order"));
	/* Failed is final: the next step refuses too. */
	assert_false(scram_client_first_message(&sc, "", buf, sizeof(buf), &n));
	scram_client_clear(&sc);

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	assert_true(scram_client_first_message(&sc, "", buf, sizeof(buf), &n));
	assert_false(scram_client_verify_final(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err,
					       sizeof(err)));
	scram_client_clear(&sc);

	/* Verifying twice is refused: DONE is not FINAL_SENT. */
	rfc_client_at_final(&sc);
	assert_true(scram_client_verify_final(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err,
					      sizeof(err)));
	assert_false(scram_client_verify_final(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), err,
					       sizeof(err)));
	assert_string_equal(scram_client_state_name(sc.state), "failed");
	scram_client_clear(&sc);
}

static void test_clear_wipes(void **state)
{
	struct scram_client sc;
	static const uint8_t zero[32];
	rfc_client_at_final(&sc);
	scram_client_clear(&sc);
	assert_null(sc.password);
	assert_false(sc.have_keys);
	assert_memory_equal(sc.client_key, zero, 32);
	assert_memory_equal(sc.server_key, zero, 32);
	assert_memory_equal(sc.server_signature, zero, 32);
	scram_client_clear(&sc); /* twice is harmless */
}

static void test_parse_secret(void **state)
{
	struct scram_secret s;
	uint8_t salt[16];
	size_t n;
	assert_true(scram_parse_secret(RFC_SECRET, &s));
	assert_int_equal(s.iterations, 4096);
	assert_true(base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt), &n));
	assert_int_equal(s.salt_len, 16);
	assert_memory_equal(s.salt, salt, 16);
	assert_memory_equal(s.server_key, rfc_server_key, 32);

	assert_true(scram_parse_secret(PG15_SECRET_SECRET, &s));
	assert_true(scram_parse_secret(PG15_SECRET_PENCIL, &s));
}

static void test_parse_secret_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"secret",
		"md553f48b7c4b76a86ce72276c5755f217d",
		"SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096x:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLm"
		"tbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", /* short StoredKey */
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:", /* trailing field */
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scram_secret s;
		if (scram_parse_secret(bad[i], &s))
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_make_secret_salted_matches(void **state)
{
	uint8_t salt[16];
	size_t n;
	char out[SCRAM_SECRET_MAX];
	assert_true(base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt), &n));
	assert_true(scram_make_secret_salted("pencil", 4096, salt, n, out, sizeof(out)));
	assert_string_equal(out, RFC_SECRET);

	/* PostgreSQL 15's secret for "pencil", remade from its salt: keys must agree. */
	struct scram_secret pg;
	assert_true(scram_parse_secret(PG15_SECRET_PENCIL, &pg));
	assert_true(scram_make_secret_salted("pencil", pg.iterations, pg.salt, pg.salt_len, out,
					     sizeof(out)));
	assert_string_equal(out, PG15_SECRET_PENCIL);

	assert_false(scram_make_secret_salted("pencil", 4096, salt, n, out, strlen(RFC_SECRET)));
	assert_false(scram_make_secret_salted("pencil", 4096, salt, 0, out, sizeof(out)));
	assert_false(scram_make_secret_salted("pencil", 0, salt, n, out, sizeof(out)));
	assert_false(scram_make_secret_salted("pencil", SCRAM_MAX_ITERATIONS + 1, salt, n, out,
					      sizeof(out)));
}

/*
 * Play the server for a client: build server-first from the secret, take the client's final
 * message, check the proof, answer with the ServerSignature. Returns the proof check's result
 * and the recovered ClientKey.
 */
static bool serve_exchange(struct scram_client *sc, const struct scram_secret *s,
			   const char *secret_salt64, uint8_t client_key[32])
{
	char first[256], server_first[256], final[512], auth[1024], err[256];
	size_t n, fn;

	assert_true(scram_client_first_message(sc, "", first, sizeof(first), &n));
	const char *bare = first + 3;
	snprintf(server_first, sizeof(server_first), "r=%sSERVERNONCE,s=%s,i=%d", sc->nonce,
		 secret_salt64, s->iterations);
	assert_true(scram_client_final_message(sc, server_first, strlen(server_first), final,
					       sizeof(final), &fn, err, sizeof(err)));

	const char *p = strstr(final, ",p=");
	assert_non_null(p);
	uint8_t proof[32];
	assert_true(base64_decode(p + 3, strlen(p + 3), proof, sizeof(proof), &n));
	assert_int_equal(n, 32);
	snprintf(auth, sizeof(auth), "%s,%s,%.*s", bare, server_first, (int)(p - final), final);
	if (!scram_verify_client_proof(s, auth, strlen(auth), proof, client_key))
		return false;

	uint8_t sig[32];
	char server_final[64] = "v=";
	assert_true(scram_server_signature(s, auth, strlen(auth), sig));
	assert_true(base64_encode(sig, 32, server_final + 2, sizeof(server_final) - 2, &n));
	assert_true(scram_client_verify_final(sc, server_final, strlen(server_final), err,
					      sizeof(err)));
	return true;
}

static void test_server_roundtrip_and_pass_through(void **state)
{
	char secret[SCRAM_SECRET_MAX];
	struct scram_secret s;
	struct scram_client sc;
	uint8_t client_key[32];

	assert_true(scram_make_secret("correct horse", 4096, secret, sizeof(secret)));
	assert_true(scram_parse_secret(secret, &s));
	assert_int_equal(s.salt_len, SCRAM_SALT_LEN);
	char salt64[32];
	assert_true(base64_encode(s.salt, s.salt_len, salt64, sizeof(salt64), NULL));

	/* A random salt each time. */
	char other[SCRAM_SECRET_MAX];
	assert_true(scram_make_secret("correct horse", 4096, other, sizeof(other)));
	assert_string_not_equal(secret, other);

	assert_true(scram_client_init(&sc, "correct horse", NULL));
	assert_true(serve_exchange(&sc, &s, salt64, client_key));
	assert_int_equal(sc.state, SCRAM_CLIENT_DONE);
	scram_client_clear(&sc);

	/* The recovered ClientKey plus the secret's ServerKey log in without the password. */
	assert_true(scram_client_init_keys(&sc, client_key, s.server_key, NULL));
	uint8_t again[32];
	assert_true(serve_exchange(&sc, &s, salt64, again));
	assert_memory_equal(again, client_key, 32);
	scram_client_clear(&sc);

	/* A wrong password is refused by the proof check. */
	assert_true(scram_client_init(&sc, "battery staple", NULL));
	assert_false(serve_exchange(&sc, &s, salt64, client_key));
	scram_client_clear(&sc);
}

/* A client using the password must pass the proof check against PostgreSQL's own secret. */
static void test_postgresql_secret_accepts_password(void **state)
{
	struct scram_secret s;
	struct scram_client sc;
	uint8_t client_key[32];
	char salt64[32];

	assert_true(scram_parse_secret(PG15_SECRET_SECRET, &s));
	assert_true(base64_encode(s.salt, s.salt_len, salt64, sizeof(salt64), NULL));
	assert_true(scram_client_init(&sc, "secret", NULL));
	assert_true(serve_exchange(&sc, &s, salt64, client_key));
	scram_client_clear(&sc);

	assert_true(scram_client_init(&sc, "Secret", NULL));
	assert_false(serve_exchange(&sc, &s, salt64, client_key));
	scram_client_clear(&sc);
}

/* A bound on iterations refuses a larger count before deriving; keys given whole take any. */
static void test_iteration_bound(void **state)
{
	struct scram_client sc;
	char final[256], err[256];

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	scram_client_limit(&sc, 4095, NULL);
	assert_false(run_to_final(&sc, NULL, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				  sizeof(final), err, sizeof(err)));
	assert_true(sc.refused_iterations);
	assert_non_null(strstr(err, "4096 SCRAM iterations, more than the 4095 allowed"));
	scram_client_clear(&sc);

	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	scram_client_limit(&sc, 4096, NULL);
	assert_true(run_to_final(&sc, NULL, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				 sizeof(final), err, sizeof(err)));
	scram_client_clear(&sc);

	assert_true(scram_client_init_keys(&sc, rfc_client_key, rfc_server_key, RFC_NONCE));
	scram_client_limit(&sc, 1, NULL);
	assert_true(run_to_final(&sc, NULL, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				 sizeof(final), err, sizeof(err)));
	assert_string_equal(final, PG_CLIENT_FINAL);
	scram_client_clear(&sc);
}

/* The second exchange with the same password, salt and count takes its keys from the cache. */
static void test_derived_keys_cached(void **state)
{
	static const char other_salt[] = "r=" RFC_SERVER_NONCE ",s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096";
	struct scram_derived_cache cache;
	struct scram_client sc;
	char final[256], err[256];

	memset(&cache, 0, sizeof(cache));
	for (int round = 0; round < 2; round++) {
		assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
		scram_client_limit(&sc, 0, &cache);
		assert_true(run_to_final(&sc, NULL, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
					 final, sizeof(final), err, sizeof(err)));
		assert_int_equal(sc.keys_from_cache, round == 1);
		assert_string_equal(final, PG_CLIENT_FINAL);
		assert_true(scram_client_verify_final(&sc, PG_SERVER_FINAL, strlen(PG_SERVER_FINAL),
						      err, sizeof(err)));
		scram_client_clear(&sc);
	}
	/* Another password, or another salt, misses. */
	assert_true(scram_client_init(&sc, "pencil2", RFC_NONCE));
	scram_client_limit(&sc, 0, &cache);
	assert_true(run_to_final(&sc, NULL, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				 sizeof(final), err, sizeof(err)));
	assert_false(sc.keys_from_cache);
	scram_client_clear(&sc);
	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	scram_client_limit(&sc, 0, &cache);
	assert_true(run_to_final(&sc, NULL, other_salt, strlen(other_salt), final, sizeof(final),
				 err, sizeof(err)));
	assert_false(sc.keys_from_cache);
	scram_client_clear(&sc);
	/* Still there after the others (slots to spare), and gone once cleared. */
	assert_true(scram_client_init(&sc, "pencil", RFC_NONCE));
	scram_client_limit(&sc, 0, &cache);
	assert_true(run_to_final(&sc, NULL, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), final,
				 sizeof(final), err, sizeof(err)));
	assert_true(sc.keys_from_cache);
	scram_client_clear(&sc);
	scram_derived_clear(&cache);
	for (int i = 0; i < SCRAM_DERIVED_SLOTS; i++)
		assert_false(cache.slot[i].valid);
}

static void test_make_secret_bounds(void **state)
{
	char out[SCRAM_SECRET_MAX];
	assert_false(scram_make_secret("pw", 0, out, sizeof(out)));
	assert_false(scram_make_secret("pw", -5, out, sizeof(out)));
	assert_false(scram_make_secret("pw", SCRAM_MAX_ITERATIONS + 1, out, sizeof(out)));
	assert_false(scram_make_secret("pw", 1, out, 20));
	assert_true(scram_make_secret("pw", 1, out, sizeof(out)));
	assert_true(strncmp(out, "SCRAM-SHA-256$1:", 16) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_vector),
		cmocka_unit_test(test_postgresql_empty_user),
		cmocka_unit_test(test_init_keys),
		cmocka_unit_test(test_username_escaped),
		cmocka_unit_test(test_random_nonce),
		cmocka_unit_test(test_bad_nonce_rejected),
		cmocka_unit_test(test_malformed_server_first),
		cmocka_unit_test(test_server_first_nul_and_length),
		cmocka_unit_test(test_server_first_extension_ignored),
		cmocka_unit_test(test_final_buffer_too_small),
		cmocka_unit_test(test_bad_server_final),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_clear_wipes),
		cmocka_unit_test(test_parse_secret),
		cmocka_unit_test(test_parse_secret_rejects),
		cmocka_unit_test(test_make_secret_salted_matches),
		cmocka_unit_test(test_server_roundtrip_and_pass_through),
		cmocka_unit_test(test_postgresql_secret_accepts_password),
		cmocka_unit_test(test_make_secret_bounds),
		cmocka_unit_test(test_iteration_bound),
		cmocka_unit_test(test_derived_keys_cached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
