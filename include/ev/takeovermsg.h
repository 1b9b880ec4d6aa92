/*
 * takeovermsg: the messages a new pgmux process and the running one exchange on the takeover
 * socket (ev/takeover.c) while the listening sockets change hands. Pure: bytes in, struct out
 * and back, no I/O and no allocation, so it can be unit-tested and fuzzed.
 *
 * The socket is a unix SOCK_SEQPACKET: one message is one packet, and the descriptors of a
 * SOCKETS message travel in the same packet (SCM_RIGHTS), in the order of its records.
 *
 *   new -> old   HELLO      "I want your sockets" (protocol version, pid)
 *   old -> new   SOCKETS    one record per descriptor passed: kind, flags, family, address
 *          or    REFUSE     why not (a takeover already running, shutting down, ...)
 *   new -> old   READY      the new process owns the sockets and will accept on them
 *   old -> new   DONE       the old process stopped accepting; the new one runs
 *   old -> new   PART...    the start of an idle client's record (client/handoff.h), in pieces
 *   old -> new   CLIENT     the rest of the record, with the client's socket; one client after
 *                           the other, as long as the old process has clients to hand over
 *   old -> new   SERVERS    how many servers the old process holds for a database and user, when
 *                           it changed (the new one counts them against its limits)
 *
 * Wire format of every message: "pgmx", type (1 byte), version (2 bytes), sender's pid (4 bytes),
 * then for SOCKETS a count (1 byte) and per record kind (1), flags (1), family (2), address length
 * (1) and the address without a NUL; for REFUSE a length (1) and the reason; for PART and
 * CLIENT a piece of the record, which is the rest of the packet; for SERVERS the database and the
 * user (each a length (1) and the name) and the count (4). Integers are big-endian. Nothing may
 * follow the last field.
 */
#ifndef PGMUX_EV_TAKEOVERMSG_H
#define PGMUX_EV_TAKEOVERMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAKEOVER_VERSION 1
/* Client listeners (16), metrics listeners (8), the takeover socket: with room to spare. */
#define TAKEOVER_MAX_SOCKETS 32
#define TAKEOVER_ADDR_MAX 128   /* an address in text, its NUL included */
#define TAKEOVER_REASON_MAX 200 /* a REFUSE reason, its NUL included */
/* The largest message but CLIENT the codec builds; a buffer of this size holds any of them. */
#define TAKEOVER_MSG_MAX (12 + TAKEOVER_MAX_SOCKETS * (5 + TAKEOVER_ADDR_MAX))
/*
 * A client's record travels in pieces of at most TAKEOVER_PIECE_MAX bytes (a packet goes whole
 * or not at all, so it must fit the socket's send buffer), TAKEOVER_RECORD_MAX in all.
 */
#define TAKEOVER_PIECE_MAX (32 * 1024)
#define TAKEOVER_PIECE_MSG_MAX (11 + TAKEOVER_PIECE_MAX)
#define TAKEOVER_RECORD_MAX (16 * 1024 * 1024)

enum takeover_type {
	TAKEOVER_HELLO = 'H',
	TAKEOVER_SOCKETS = 'S',
	TAKEOVER_REFUSE = 'X',
	TAKEOVER_READY = 'R',
	TAKEOVER_DONE = 'D',
	TAKEOVER_PART = 'P',
	TAKEOVER_CLIENT = 'C',
	TAKEOVER_SERVERS = 'N',
};

/* What a passed descriptor is for. */
enum takeover_kind {
	TAKEOVER_CLIENTS = 1, /* a listener for PostgreSQL clients (TCP or unix) */
	TAKEOVER_METRICS = 2, /* a metrics_listen listener; address = the metrics_listen value */
	TAKEOVER_CONTROL = 3, /* the takeover socket itself; address = its path */
};

/* flags of a record */
#define TAKEOVER_F_OWNED 0x01 /* a unix socket file pgmux created: remove it at the end */

struct takeover_sock {
	uint8_t kind; /* enum takeover_kind */
	uint8_t flags;
	uint16_t family; /* AF_INET, AF_INET6, AF_UNIX (both ends are on one host) */
	char addr[TAKEOVER_ADDR_MAX];
};

struct takeover_msg {
	uint8_t type; /* enum takeover_type */
	uint16_t version;
	uint32_t pid;
	int n_socks; /* SOCKETS only */
	struct takeover_sock socks[TAKEOVER_MAX_SOCKETS];
	char reason[TAKEOVER_REASON_MAX]; /* REFUSE only */
	const uint8_t *piece; /* PART and CLIENT: 1 to TAKEOVER_PIECE_MAX bytes, borrowed */
	size_t piece_len;
	char db[64], user[64]; /* SERVERS: whose servers */
	uint32_t n_servers;    /* SERVERS: how many */
};

/*
 * Encode m into buf (len bytes). Returns the bytes written, 0 when m is invalid (unknown type or
 * kind, too many records, an address or reason too long or holding a NUL, a piece of a record
 * empty or too long) or buf too small.
 */
size_t takeovermsg_encode(const struct takeover_msg *m, uint8_t *buf, size_t len);

/*
 * Decode the one message in buf (len bytes) into *m (a piece of a record points into buf). False
 * (and err) when it is not a whole valid message: bad magic, unknown type or kind, a length past the end, bytes left over.
 * Any version is decoded: the receiver decides what it accepts.
 */
bool takeovermsg_decode(const uint8_t *buf, size_t len, struct takeover_msg *m, char *err,
			size_t errlen);

/* "hello", "sockets", ... for logs; "unknown" otherwise. */
const char *takeovermsg_type_name(int type);
/* "clients", "metrics", "control"; "unknown" otherwise. */
const char *takeovermsg_kind_name(int kind);

#endif
