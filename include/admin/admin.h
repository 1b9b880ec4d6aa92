/*
 * admin: the admin console, a virtual database ("pgmux", or "pgbouncer" for existing scripts)
 * that answers SHOW and control commands with PgBouncer's column names.
 */
#ifndef PGMUX_ADMIN_ADMIN_H
#define PGMUX_ADMIN_ADMIN_H

struct worker;

/*
 * Plug the console into w (at startup): the client and the worker reach the console only through
 * w->clients.console (struct console_ops, client/clients.h), never by name.
 */
void admin_register(struct worker *w);

#endif
