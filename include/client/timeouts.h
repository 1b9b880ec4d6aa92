/*
 * client/timeouts: the clients' timeouts, checked at each janitor tick (worker/janitor.c).
 */
#ifndef PGMUX_CLIENT_TIMEOUTS_H
#define PGMUX_CLIENT_TIMEOUTS_H

#include <stdint.h>

struct pool;
struct clients;

/* Clients still logging in (and the admin console's): startup, login, a safe shutdown. */
void client_sweep_logins(struct clients *cs, uint64_t now);

/* p's waiting and active clients: waits, queries, idle transactions and clients, shutdown. */
void client_sweep_pool(struct clients *cs, struct pool *p, uint64_t now);

#endif
