/*
 * client/login: startup packet and authentication of a client (see src/client/login.c).
 */
#ifndef PGMUX_CLIENT_LOGIN_H
#define PGMUX_CLIENT_LOGIN_H

#include "client/client.h"

/* A message from a client still logging in (CLIENT_LOGIN state). */
enum conn_action login_on_packet(struct client *c, const struct pkt_header *hdr,
				 const uint8_t *whole);

/* Log in a client of pgmux's own (client_open_internal) into pool p. false: c was closed. */
bool login_internal(struct client *c, struct pool *p);

/* Wipe any secret the login kept (at close, or once handed over). */
void login_forget_secrets(struct client *c);

#endif
