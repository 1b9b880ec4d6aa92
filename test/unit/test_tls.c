/* link: src/ev/tls.c src/ev/conn.c src/ev/loop.c src/ev/dns.c src/core/clock.c src/core/log.c src/proto/pkt.c src/proto/build.c */
/*
 * Unit tests for ev/tls: building contexts (and the reasons given when files or settings are
 * bad), a handshake between two conns over a socketpair, verify-full's name check, and the
 * tls-server-end-point channel binding hash (RFC 5929) seen identically from both ends.
 *
 * A self-signed certificate is made with the openssl command line in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ev/conn.h"
#include "ev/loop.h"
#include "ev/tls.h"

static char dir[64], key[128], crt[128], key2[128];

static int make_cert(void **state)
{
	char cmd[512];

	snprintf(dir, sizeof(dir), "/tmp/pgmux-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	snprintf(crt, sizeof(crt), "%s/c.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost -keyout %s -out %s >/dev/null 2>&1",
		 key, crt);
	if (system(cmd) != 0)
		return -1;
	/* A second key: good on its own, not the certificate's. */
	snprintf(key2, sizeof(key2), "%s/k2.pem", dir);
	snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm rsa -out %s >/dev/null 2>&1", key2);
	return system(cmd) == 0 ? 0 : -1;
}

static int remove_cert(void **state)
{
	unlink(key);
	unlink(key2);
	unlink(crt);
	rmdir(dir);
	return 0;
}

static struct tls_settings settings(int mode)
{
	struct tls_settings s = {
		.mode = mode,
		.key_file = "",
		.cert_file = "",
		.ca_file = "",
		.protocols = "secure",
		.ciphers = "default",
		.tls13_ciphers = "",
		.dheparams = "auto",
		.ecdhcurve = "auto",
	};
	return s;
}

static void test_disable_gives_no_context(void **state)
{
	struct tls_settings s = settings(TLS_DISABLE);
	char err[256] = "x";

	assert_null(tls_ctx_new_server(&s, err, sizeof(err)));
	assert_string_equal(err, "");
	assert_null(tls_ctx_new_client(&s, err, sizeof(err)));
	assert_string_equal(err, "");
}

static void test_bad_settings_say_why(void **state)
{
	static const struct {
		const char *cert, *key, *protocols, *ciphers, *expect;
	} cases[] = {
		{ "", "", "secure", "default", "client_tls_key_file and client_tls_cert_file" },
		{ "/nonexistent.crt", "/nonexistent.key", "secure", "default", "/nonexistent.crt" },
		{ NULL, "/nonexistent.key", "secure", "default", "/nonexistent.key" },
		{ NULL, NULL, "tlsv9", "default", "unknown TLS protocol \"tlsv9\"" },
		{ NULL, NULL, "secure", "NOT-A-CIPHER", "bad ciphers" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tls_settings s = settings(TLS_REQUIRE);

		s.cert_file = cases[i].cert ? cases[i].cert : crt;
		s.key_file = cases[i].key ? cases[i].key : key;
		s.protocols = cases[i].protocols;
		s.ciphers = cases[i].ciphers;
		err[0] = '\0';
		assert_null(tls_ctx_new_server(&s, err, sizeof(err)));
		if (!strstr(err, cases[i].expect))
			fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err,
				 cases[i].expect);
	}
}

static void test_protocol_lists(void **state)
{
	static const char *const good[] = { "secure",          "all",    "legacy", "tlsv1.2",
					    "tlsv1.2,tlsv1.3", "TLSv1.3" };
	char err[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct tls_settings s = settings(TLS_REQUIRE);
		struct tls_ctx *t;

		s.cert_file = crt;
		s.key_file = key;
		s.protocols = good[i];
		t = tls_ctx_new_server(&s, err, sizeof(err));
		if (!t)
			fail_msg("%s: %s", good[i], err);
		tls_ctx_free(t);
	}
}

/* A key and a certificate that do not pair yet are told apart from files that cannot be used. */
static void test_unpaired_key_and_certificate(void **state)
{
	static const struct {
		int side;
		const char *cert, *key;
		enum tls_build expect;
		const char *says;
	} cases[] = {
		{ TLS_SIDE_CLIENTS, "crt", "key", TLS_BUILD_OK, "" },
		{ TLS_SIDE_CLIENTS, "crt", "key2", TLS_BUILD_UNPAIRED, "does not match" },
		{ TLS_SIDE_CLIENTS, "", "key2", TLS_BUILD_UNPAIRED, "has no certificate" },
		{ TLS_SIDE_CLIENTS, "crt", "", TLS_BUILD_UNPAIRED, "has no private key" },
		{ TLS_SIDE_CLIENTS, "", "", TLS_BUILD_FAILED, "are needed" },
		{ TLS_SIDE_CLIENTS, "/nonexistent.crt", "key2", TLS_BUILD_FAILED,
		  "/nonexistent.crt" },
		{ TLS_SIDE_CLIENTS, "crt", "/nonexistent.key", TLS_BUILD_FAILED,
		  "/nonexistent.key" },
		{ TLS_SIDE_SERVERS, "crt", "key2", TLS_BUILD_UNPAIRED, "does not match" },
		{ TLS_SIDE_SERVERS, "", "key2", TLS_BUILD_UNPAIRED, "has no certificate" },
		{ TLS_SIDE_SERVERS, "crt", "", TLS_BUILD_OK, "" },
		{ TLS_SIDE_SERVERS, "", "/nonexistent.key", TLS_BUILD_FAILED, "/nonexistent.key" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char cert_file[128], key_file[128], err[512] = "";
		struct tls_settings ts;
		struct tls_ctx *t = NULL;
		enum tls_build got;

		snprintf(cert_file, sizeof(cert_file), "%s",
			 strcmp(cases[i].cert, "crt") == 0 ? crt : cases[i].cert);
		snprintf(key_file, sizeof(key_file), "%s",
			 strcmp(cases[i].key, "key") == 0    ? key
			 : strcmp(cases[i].key, "key2") == 0 ? key2
							     : cases[i].key);
		ts = (struct tls_settings){
			.mode = TLS_REQUIRE,
			.key_file = key_file,
			.cert_file = cert_file,
			.ca_file = "",
			.protocols = "secure",
			.ciphers = "default",
			.tls13_ciphers = "",
		};
		/* As the pool fills them in: the server side has no DH or curve settings. */
		ts.dheparams = cases[i].side == TLS_SIDE_CLIENTS ? "auto" : "none";
		ts.ecdhcurve = cases[i].side == TLS_SIDE_CLIENTS ? "auto" : "";
		got = tls_build_side(&ts, (enum tls_side)cases[i].side, &t, err, sizeof(err));
		if (got != cases[i].expect || !strstr(err, cases[i].says))
			fail_msg("case %zu: got %d \"%s\", expected %d mentioning \"%s\"", i,
				 (int)got, err, (int)cases[i].expect, cases[i].says);
		if ((got == TLS_BUILD_OK) != (t != NULL))
			fail_msg("case %zu: a context exactly when the build succeeds", i);
		tls_ctx_free(t);
	}
}

static enum conn_action no_packet(void *owner, struct conn *c, const struct pkt_header *h,
				  const uint8_t *w)
{
	return CONN_CONSUME;
}
static void no_connected(void *owner, struct conn *c, bool ok, int errnum)
{
}
static void no_closed(void *owner, struct conn *c, enum conn_close_reason why)
{
}
static const struct conn_ops ops = { no_packet, no_connected, no_closed };

/* Run both handshakes over a socketpair; true when both finished. */
static bool handshake(struct evloop *loop, struct tls_ctx *server, struct tls_ctx *client,
		      const char *host, struct conn *sc, struct conn *cc)
{
	int fds[2];
	enum tls_step a = TLS_STEP_WANT_READ, b = TLS_STEP_WANT_READ;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	conn_init(sc, loop, &ops, NULL);
	conn_init(cc, loop, &ops, NULL);
	assert_true(conn_attach(sc, fds[0]));
	assert_true(conn_attach(cc, fds[1]));
	assert_true(tls_conn_new(sc, server, true, false, NULL));
	assert_true(tls_conn_new(cc, client, false, false, host));
	for (int i = 0; i < 100 && (a != TLS_STEP_DONE || b != TLS_STEP_DONE); i++) {
		if (b != TLS_STEP_DONE)
			b = tls_conn_handshake(cc);
		if (a != TLS_STEP_DONE)
			a = tls_conn_handshake(sc);
		if (a == TLS_STEP_FAILED || b == TLS_STEP_FAILED)
			return false;
	}
	sc->tls = cc->tls = true;
	return a == TLS_STEP_DONE && b == TLS_STEP_DONE;
}

static void test_handshake_and_end_point(void **state)
{
	struct tls_settings ss = settings(TLS_REQUIRE), cs = settings(TLS_VERIFY_FULL);
	struct tls_ctx *server, *client;
	struct evloop loop;
	struct conn sc, cc;
	uint8_t a[64], b[64], want[64];
	size_t alen = 0, blen = 0;
	unsigned int wlen = 0;
	char err[256], name[64];
	FILE *f;
	X509 *x;

	ss.cert_file = crt;
	ss.key_file = key;
	cs.ca_file = crt;
	memset(&loop, 0, sizeof(loop));
	assert_true(evloop_init(&loop, 16384));
	server = tls_ctx_new_server(&ss, err, sizeof(err));
	assert_non_null(server);
	client = tls_ctx_new_client(&cs, err, sizeof(err));
	assert_non_null(client);

	assert_true(handshake(&loop, server, client, "localhost", &sc, &cc));
	/* Both ends see the same hash: SHA-256 (the signature's hash) of the DER certificate. */
	assert_true(conn_tls_server_end_point(&sc, a, &alen));
	assert_true(conn_tls_server_end_point(&cc, b, &blen));
	assert_int_equal(alen, 32);
	assert_int_equal(blen, 32);
	assert_memory_equal(a, b, 32);
	f = fopen(crt, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	assert_int_equal(X509_digest(x, EVP_sha256(), want, &wlen), 1);
	X509_free(x);
	assert_memory_equal(a, want, 32);
	/* No client certificate was asked for. */
	assert_false(conn_tls_peer_name(&sc, name, sizeof(name)));
	assert_true(conn_tls_peer_name(&cc, name, sizeof(name)));
	assert_string_equal(name, "localhost");
	conn_close(&sc);
	conn_close(&cc);

	/* verify-full: another name fails, with the reason. */
	assert_false(handshake(&loop, server, client, "elsewhere.test", &sc, &cc));
	assert_non_null(conn_error(&cc));
	assert_non_null(strstr(conn_error(&cc), "certificate verify failed"));
	conn_close(&sc);
	conn_close(&cc);

	tls_ctx_free(server);
	tls_ctx_free(client);
	evloop_destroy(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disable_gives_no_context),
		cmocka_unit_test(test_bad_settings_say_why),
		cmocka_unit_test(test_protocol_lists),
		cmocka_unit_test(test_unpaired_key_and_certificate),
		cmocka_unit_test(test_handshake_and_end_point),
	};

	return cmocka_run_group_tests(tests, make_cert, remove_cert);
}
