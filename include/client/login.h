/*
 * client/login: startup packet and authentication of a client (see src/client/login.c).
 */
#ifndef PGMUX_CLIENT_LOGIN_H
#define PGMUX_CLIENT_LOGIN_H

#include "client/client.h"

/* A message from a client still logging in (CLIENT_LOGIN state). */
enum conn_action login_on_packet(struct client *c, const struct pkt_header *hdr, const uint8_t *whole);

/* Wipe any secret the login kept (at close, or once handed over). */
void login_forget_secrets(struct client *c);

#endif
