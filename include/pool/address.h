/*
 * pool/address: where a pool's servers connect. A server of a cluster= database goes to its
 * member's address; one of a host= database to a host of the entry's list, in turn
 * (load_balance_hosts), the next one after a host failed. The pool decides; the server module
 * only connects where it is told.
 */
#ifndef PGMUX_POOL_ADDRESS_H
#define PGMUX_POOL_ADDRESS_H

#include <stdbool.h>

struct server;

/* Fill in s->host, s->port, s->host_idx and (members) s->primary_epoch: where s connects. */
void pool_choose_address(struct server *s);

/*
 * s could not connect or log in to its host (host= databases): with load_balance_hosts = disable
 * the next host takes its turn. True while some host of the list has not failed since the last
 * login that worked: the pool tries it (within a janitor tick) before it counts as a login
 * failure.
 */
bool pool_server_host_failed(struct server *s);

/*
 * s reached its host name's current address: servers of the same database still connected to
 * an older address of that name close (idle ones now, busy ones when released).
 */
void pool_server_address_known(struct server *s);

#endif
