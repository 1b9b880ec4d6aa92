/*
 * startup: parsing of the packets a client may open a connection with (StartupMessage,
 * SSLRequest, GSSENCRequest, CancelRequest). Pure; strings point into the packet.
 */
#ifndef PGMUX_PROTO_STARTUP_H
#define PGMUX_PROTO_STARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STARTUP_MAX_PARAMS 64

enum startup_kind {
	STARTUP_V3, /* StartupMessage 3.x */
	STARTUP_SSL,
	STARTUP_GSSENC,
	STARTUP_CANCEL,
	STARTUP_OLD_PROTO, /* protocol 2 or older */
	STARTUP_BAD,       /* garbage; err says why */
};

struct startup_msg {
	enum startup_kind kind;
	uint32_t version; /* STARTUP_V3: the full version number the client asked for */
	int nparams;
	const char *names[STARTUP_MAX_PARAMS];
	const char *values[STARTUP_MAX_PARAMS];
	int nunknown_opts; /* "_pq_."-prefixed protocol options we do not know */
	const char *unknown_opts[STARTUP_MAX_PARAMS];
	uint32_t cancel_pid; /* STARTUP_CANCEL */
	uint32_t cancel_key;
};

/*
 * Parse one whole startup-phase packet (length word included). Returns the kind; for
 * STARTUP_BAD writes the reason into err. Borrowed strings live as long as pkt.
 */
enum startup_kind startup_parse(const uint8_t *pkt, size_t len, struct startup_msg *out, char *err,
				size_t errlen);

/* The value of a parameter, or NULL. */
const char *startup_get(const struct startup_msg *m, const char *name);

#endif
