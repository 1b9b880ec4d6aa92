/*
 * admin/sockets: the console's tables of connections, one row per client or server socket:
 * SHOW CLIENTS, SHOW SERVERS, SHOW SOCKETS (both kinds, with their buffers) and SHOW
 * ACTIVE_SOCKETS (those with bytes in flight). Column names and order are PgBouncer 1.18's.
 * Reading only: nothing here changes a client, server or pool.
 */
#ifndef PGMUX_ADMIN_SOCKETS_H
#define PGMUX_ADMIN_SOCKETS_H

#include "admin/parse.h"

struct worker;
struct msgbuf;

/*
 * Append the RowDescription and DataRows of SHOW what (ADMIN_SHOW_CLIENTS, _SERVERS, _SOCKETS
 * or _ACTIVE_SOCKETS) to mb, without CommandComplete.
 */
void admin_show_sockets(struct worker *w, enum admin_show what, struct msgbuf *mb);

#endif
