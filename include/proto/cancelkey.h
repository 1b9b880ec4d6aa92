/*
 * cancelkey: the BackendKeyData pgmux tells its clients, and what a CancelRequest's key says
 * about the process that made it. Pure: the random bits come from the caller.
 *
 * Several pgmux processes may share one port (so_reuseport). A client's CancelRequest arrives on
 * a new connection that the kernel may hand to any of them, so the key names its owner: each
 * process has a peer_id, and the owner is found from the key alone, with no shared state.
 *
 * Layout of the 32-bit secret key when peering (peer_id 1..16383):
 *
 *   bit 31 ............ 18 | 17        | 16 ........ 0
 *       peer_id (14 bits)  | forwarded | random (17 bits)
 *
 * The process id stays 31 random bits: drivers print and compare it as a positive int, and
 * keeping all the routing in the key leaves it looking like any backend pid. With the key's
 * 17 random bits, 48 bits are left to guess, which is what stands between a stranger and
 * someone's queries (a CancelRequest is unauthenticated). The forwarded bit is set by the
 * process that passes a request on to the owner: a request carrying it is never passed on
 * again, so two processes whose [peers] sections disagree cannot bounce it between them.
 *
 * peer_id 0 means no peering: the key is 32 random bits and nothing is read out of it.
 */
#ifndef PGMUX_PROTO_CANCELKEY_H
#define PGMUX_PROTO_CANCELKEY_H

#include <stdbool.h>
#include <stdint.h>

#define CANCELKEY_PEER_ID_MAX 16383 /* 14 bits */
#define CANCELKEY_PEER_SHIFT 18
#define CANCELKEY_FORWARDED (1u << 17)
#define CANCELKEY_RANDOM_MASK ((1u << 17) - 1)

/* A client's key pair. */
struct cancelkey {
	uint32_t pid;
	uint32_t key;
};

/*
 * The key pair for a new client of process peer_id (0..CANCELKEY_PEER_ID_MAX) from two random
 * words: pid is rnd_pid's low 31 bits; key is rnd_key whole when peer_id is 0, else peer_id and
 * rnd_key's low 17 bits, the forwarded bit clear.
 */
struct cancelkey cancelkey_make(int peer_id, uint32_t rnd_pid, uint32_t rnd_key);

/* The peer_id a key names (meaningful only when the receiving process peers). */
int cancelkey_peer_id(uint32_t key);

/* Was the request passed on by another peer already? */
bool cancelkey_is_forwarded(uint32_t key);

/* key with the forwarded bit set, as it is sent to the owner. */
uint32_t cancelkey_mark_forwarded(uint32_t key);

/* key as its owner gave it to the client: the forwarded bit clear. */
uint32_t cancelkey_as_issued(uint32_t key);

#endif
