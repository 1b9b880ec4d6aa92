/*
 * client/login: startup packet and authentication of a client (see src/client/login.c).
 */
#ifndef PGMUX_CLIENT_LOGIN_H
#define PGMUX_CLIENT_LOGIN_H

#include "client/client.h"

struct pool_user;
struct scram_client;

/* A message from a client still logging in (CLIENT_LOGIN state). */
enum conn_action login_on_packet(struct client *c, const struct pkt_header *hdr,
				 const uint8_t *whole);

/* Log in a client of pgmux's own (client_open_internal) into pool p. false: c was closed. */
bool login_internal(struct client *c, struct pool *p);

/* Wipe any secret the login kept (at close, or once handed over). */
void login_forget_secrets(struct client *c);

/*
 * Start a SCRAM client exchange for a server login as pool user u: with password when it is a
 * plaintext one, else with the keys a client of u proved (SCRAM pass-through). Returns false when
 * neither is available (or on a libcrypto failure); sc then needs no clearing. Does not call back.
 */
bool login_server_scram_init(const struct pool_user *u, const char *password,
			     struct scram_client *sc);

#endif
