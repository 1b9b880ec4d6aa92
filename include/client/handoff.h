/*
 * client/handoff: an idle client carried from this pgmux process to the next one at an upgrade,
 * without the client noticing (see proto/clientrec.h for what travels). The old process asks
 * whether a client may go (between transactions, nothing buffered, no TLS, not pooled in
 * session mode), writes its record and lets go of its socket; the new process adopts the socket
 * with the record, and the client's next message starts a unit of work there.
 */
#ifndef PGMUX_CLIENT_HANDOFF_H
#define PGMUX_CLIENT_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct clients;

/*
 * Where a client's socket fd and record rec go (the takeover connection): 1 when taken (the
 * client then goes), 0 when not now (that client stays for a later try), -1 when the way is
 * closed.
 */
typedef int (*client_pass_fn)(void *arg, int fd, const uint8_t *rec, size_t len);

/*
 * In the old process: every client that may go now (between transactions, nothing buffered,
 * ...) handed to pass(arg, ...), and gone once it took it. The number handed over; -1 when pass
 * closed the way (the others stay).
 */
int clients_hand_over_idle(struct clients *cs, client_pass_fn pass, void *arg);

/*
 * In the new process: the client whose record is rec, on socket fd, taken as if it had always
 * been here. false (fd closed, why set): the record does not fit this process (an unknown
 * database, a malformed record); the client then sees its connection close.
 */
bool client_adopt(struct clients *cs, int fd, const uint8_t *rec, size_t len, char *why,
		  size_t whylen);

#endif
