/*
 * clientrec: the record that carries an idle client from one pgmux process to the next at an
 * upgrade (the socket itself travels beside it with SCM_RIGHTS). It holds what the client was
 * told and what it may still use: its user and database, the cancel key it has, the parameters
 * and session settings it expects, its named prepared statements, its routing and sharding
 * choices, and the credentials its pool logs in to servers with. A client between
 * transactions owes and is owed no message, so nothing of the protocol's position travels.
 *
 * Format: the magic "PGMXCR1\0", then fields framed as protocol messages (a tag byte, a 4-byte
 * big-endian length that counts itself, the payload), ending with an empty CLIENTREC_END.
 * Strings are their bytes without a NUL and may not contain one. Both ends are the same version of pgmux or adjacent ones: a
 * reader skips tags it does not know, so a newer writer may add fields, and refuses a record
 * that lacks user, database or cancel key.
 *
 * Pure: building appends to a msgbuf; reading borrows from the record's bytes.
 */
#ifndef PGMUX_PROTO_CLIENTREC_H
#define PGMUX_PROTO_CLIENTREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msgbuf;

/*
 * Upper bound of a record pgmux builds and accepts (twice max_client_prepared_bytes' default): a
 * client holding more stays where it is.
 */
#define CLIENTREC_MAX (16u * 1024 * 1024)

enum clientrec_tag {
	CLIENTREC_END = 'E',
	CLIENTREC_USER = 'u',       /* string */
	CLIENTREC_DATABASE = 'd',   /* string */
	CLIENTREC_ADDR = 'a',       /* string: "ip:port" or "unix" */
	CLIENTREC_CANCEL = 'k',     /* pid, key: 2 x 4 bytes */
	CLIENTREC_CONNECTED = 't',  /* connect time, monotonic microseconds: 8 bytes */
	CLIENTREC_PARAM = 'p',      /* tracked parameter: index byte, then the value string */
	CLIENTREC_SETTING = 's',    /* session setting: raw flag byte, name NUL value */
	CLIENTREC_STATEMENT = 'P',  /* named statement: shape (4 bytes), name NUL, definition */
	CLIENTREC_ROUTE_HINT = 'h', /* enum route_hint: 1 byte */
	CLIENTREC_RYW_LSN = 'r',    /* WAL position of its last committed write: 8 bytes */
	CLIENTREC_SHARD_KEY = 'K',  /* pgmux.shard_key of the session: string */
	CLIENTREC_SHARD = 'S',      /* pgmux.shard of the session: string */
	CLIENTREC_PASSWORD = 'w',   /* a cleartext password its pool user proved: string */
	CLIENTREC_SCRAM_KEYS = 'c', /* SCRAM pass-through ClientKey and ServerKey: 2 x 32 bytes */
	CLIENTREC_SECRET = 'q',     /* the secret auth_query found for its user: string */
};

/* One field as read: which members are set depends on the tag (see enum clientrec_tag). */
struct clientrec_field {
	enum clientrec_tag tag;
	const char *str; /* string payload, or the name of SETTING and STATEMENT */
	size_t str_len;
	const char *value; /* SETTING's value; PARAM's value is str */
	size_t value_len;
	const uint8_t *bytes; /* STATEMENT's definition; SCRAM_KEYS' 64 bytes */
	size_t bytes_len;
	uint64_t num;  /* CONNECTED, RYW_LSN, ROUTE_HINT; CANCEL's pid; STATEMENT's shape */
	uint32_t num2; /* CANCEL's key */
	uint8_t index; /* PARAM's parameter index; SETTING's raw flag */
};

/* Building: the magic first, then any fields, then clientrec_end. Errors mark mb failed. */
void clientrec_begin(struct msgbuf *mb);
void clientrec_string(struct msgbuf *mb, enum clientrec_tag tag, const char *s);
void clientrec_u64(struct msgbuf *mb, enum clientrec_tag tag, uint64_t v);
void clientrec_u8(struct msgbuf *mb, enum clientrec_tag tag, uint8_t v);
void clientrec_cancel(struct msgbuf *mb, uint32_t pid, uint32_t key);
void clientrec_param(struct msgbuf *mb, uint8_t index, const char *value);
void clientrec_setting(struct msgbuf *mb, const char *name, const char *value, bool raw);
void clientrec_statement(struct msgbuf *mb, const char *name, uint32_t shape, const uint8_t *def,
			 size_t def_len);
void clientrec_scram_keys(struct msgbuf *mb, const uint8_t client_key[32],
			  const uint8_t server_key[32]);
void clientrec_end(struct msgbuf *mb);

/* Reading: a cursor over one record. */
struct clientrec_reader {
	const uint8_t *data;
	size_t len, pos;
	bool ended;
};

/*
 * Check the whole record (magic, every field's framing and payload, the END, the required
 * fields) before anything is taken from it; false with the reason in why. Then position r at
 * the first field.
 */
bool clientrec_open(struct clientrec_reader *r, const uint8_t *data, size_t len, char *why,
		    size_t whylen);

/* The next field of a checked record; false after END. Unknown tags are skipped. */
bool clientrec_next(struct clientrec_reader *r, struct clientrec_field *f);

#endif
