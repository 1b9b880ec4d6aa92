/*
 * admin: the admin console, a virtual database ("pgmux", or "pgbouncer" for existing scripts)
 * that answers SHOW and control commands with PgBouncer's column names.
 */
#ifndef PGMUX_ADMIN_ADMIN_H
#define PGMUX_ADMIN_ADMIN_H

#include <stdbool.h>

struct reshard;
struct worker;

/*
 * Plug the console into w (at startup): the client and the worker reach the console only through
 * w->clients.console (struct console_ops, client/clients.h), never by name. rs: the shard maps
 * and bucket moves that MOVE and SHOW SHARDS, SHARD FOR, ROUTE FOR and MOVES work on. false:
 * out of memory, nothing plugged in.
 */
bool admin_register(struct worker *w, struct reshard *rs);

#endif
