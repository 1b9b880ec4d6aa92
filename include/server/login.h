/*
 * server/login: connect and log in to PostgreSQL (see src/server/login.c).
 */
#ifndef PGMUX_SERVER_LOGIN_H
#define PGMUX_SERVER_LOGIN_H

#include "server/server.h"

struct pool_user;

/* Resolve and start connecting. False: failed at once (the server was closed, the pool told). */
bool server_login_start(struct server *s);
/* The TCP/unix connect finished. */
void server_login_connected(struct server *s, bool ok, int errnum);
/*
 * A message header while logging in: CONN_NEED_WHOLE for a message in its place and within
 * server_max_held_message, else the login fails (the server is closed: CONN_CLOSED).
 */
enum conn_action server_login_header(struct server *s, const struct pkt_header *hdr);
/* A whole message while logging in (server_login_header() let it through). */
enum conn_action server_login_packet(struct server *s, const struct pkt_header *hdr,
				     const uint8_t *whole);
/* Wipe login secrets (SCRAM state). */
void server_login_forget(struct server *s);
/* Wipe and free the SCRAM keys server logins derived for u (its user is going away). */
void server_login_forget_user(struct pool_user *u);

#endif
