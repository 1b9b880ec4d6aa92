/*
 * client/admit: which client connections pgmux holds (see src/client/admit.c) — the
 * max_client_conn slots with a reserve for the admin console, accepting paused while every slot
 * is taken, and max_client_conn_per_addr.
 */
#ifndef PGMUX_CLIENT_ADMIT_H
#define PGMUX_CLIENT_ADMIT_H

#include <stdbool.h>

struct client;
struct clients;

/*
 * Slots beyond max_client_conn that only admin_users (and the OS user running pgmux, over the
 * unix socket) may take, on their way to the admin console.
 */
#define CLIENT_ADMIN_RESERVE 2

/*
 * c was just accepted and counted in cs->n: count it for its source address, and put
 * accepting on hold when the last slot is taken. False when its address already holds
 * max_client_conn_per_addr connections: the caller closes it.
 */
bool admit_accepted(struct client *c);

/* c is closing and no longer counted in cs->n: its slots are free again. */
void admit_released(struct client *c);

/*
 * c's startup packet arrived: may it log in? Every connection counts from accept; admin is true
 * for a login to the admin console as an admin user, which may use the reserve.
 */
bool admit_login(const struct client *c, bool admin);

/* Hold or resume accepting to match the slots in use and the config in force (each janitor run). */
void admit_update_accepting(struct clients *cs);

#endif
