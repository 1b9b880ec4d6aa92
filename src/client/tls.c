/*
 * client/tls: TLS negotiation with clients (see client/tls.h).
 *
 * Unix socket clients never get TLS (as with PostgreSQL) and are not refused under require.
 * After an SSLRequest no plain bytes may be buffered behind it: they would have been sent
 * before the client could know it talks to us over TLS, so they are refused, not trusted.
 */
#include "client/tls.h"

#include "client/client.h"
#include "client/clients.h"
#include "core/log.h"
#include "ev/tls.h"
#include "pool/pool.h"

/*
 * The mode of the context in force, not the config's: while an admin SET of a key or certificate
 * waits for its other half, the config may already say more than the running context does.
 */
static int client_mode(const struct client *c)
{
	return tls_ctx_mode(*c->cs->tls);
}

enum conn_action client_tls_ssl_request(struct client *c, uint32_t len)
{
	/* A second request, or one after TLS is up, was refused before (client/login.c). */
	ASSERT(!c->conn.tls);
	if (client_mode(c) == SSLMODE_DISABLE || c->conn.is_unix) {
		conn_write(&c->conn, "N", 1);
		return CONN_CONSUME;
	}
	if (conn_buffered_input(&c->conn) > len) {
		client_close(c, "08P01", "received unencrypted data after SSL request");
		return CONN_CLOSED;
	}
	if (!conn_start_tls_server(&c->conn, *c->cs->tls, "S", 1, false)) {
		client_log(LOG_LVL_WARNING, c, "could not start TLS: %s",
			   conn_error(&c->conn) ? conn_error(&c->conn) : "unknown error");
		client_close(c, NULL, "TLS start failed");
		return CONN_CLOSED;
	}
	return CONN_CONSUME;
}

enum conn_action client_tls_direct(struct client *c)
{
	if (client_mode(c) == SSLMODE_DISABLE || c->conn.is_unix) {
		client_log(LOG_LVL_INFO, c,
			   "direct TLS connection refused: client TLS is disabled");
		client_close(c, NULL, "direct TLS refused");
		return CONN_CLOSED;
	}
	if (!conn_start_tls_server(&c->conn, *c->cs->tls, NULL, 0, true)) {
		client_log(LOG_LVL_WARNING, c, "could not start TLS: %s",
			   conn_error(&c->conn) ? conn_error(&c->conn) : "unknown error");
		client_close(c, NULL, "TLS start failed");
		return CONN_CLOSED;
	}
	return CONN_CONSUME;
}

bool client_tls_check_startup(struct client *c)
{
	if (c->conn.tls || c->conn.is_unix || client_mode(c) < SSLMODE_REQUIRE)
		return true;
	client_close(c, "28000", "SSL required");
	return false;
}
