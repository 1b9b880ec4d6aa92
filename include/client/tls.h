/*
 * client/tls: the client side of TLS negotiation — answering SSLRequest, taking a direct-TLS
 * ClientHello (PostgreSQL 17 sslnegotiation=direct), and refusing plain-text clients when
 * client_tls_sslmode requires TLS. The handshake itself runs in ev/conn.c.
 */
#ifndef PGMUX_CLIENT_TLS_H
#define PGMUX_CLIENT_TLS_H

#include <stdint.h>

#include "ev/conn.h"

struct client;

/*
 * Answer the connection's one SSLRequest (of len bytes; the login refuses a second, and any
 * once TLS is up): 'S' and a handshake when client TLS is configured, else 'N'. Returns what on_packet returns (CONN_CLOSED when the client was closed).
 */
enum conn_action client_tls_ssl_request(struct client *c, uint32_t len);

/* The client opened with a TLS ClientHello: start the handshake, or close the client. */
enum conn_action client_tls_direct(struct client *c);

/*
 * A plain-text StartupMessage arrived: true if it may go on; false when client_tls_sslmode
 * requires TLS (the client was closed with 28000).
 */
bool client_tls_check_startup(struct client *c);

#endif
