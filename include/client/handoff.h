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

struct client;
struct msgbuf;
struct clients;

/* NULL when c may be handed over now; else why not (static text, for the log). */
const char *client_handoff_refusal(const struct client *c);

/*
 * The record of c (one client_handoff_refusal accepted) appended to mb, and c's socket, which
 * stays c's until client_handed_over: the caller sends both. -1: no record (out of memory).
 */
int client_handoff_export(const struct client *c, struct msgbuf *mb);

/* c's record and socket are on their way: c goes without a word to the client. */
void client_handed_over(struct client *c);

/*
 * In the new process: the client whose record is rec, on socket fd, taken as if it had always
 * been here. false (fd closed, why set): the record does not fit this process (an unknown
 * database, a malformed record); the client then sees its connection close.
 */
bool client_adopt(struct clients *cs, int fd, const uint8_t *rec, size_t len, char *why,
		  size_t whylen);

#endif
