/*
 * scram_server: the server side of one SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), as
 * PostgreSQL runs it, for authenticating pgmux's own clients.
 *
 * Flow: init with the user's parsed secret (or as a doomed "mock" exchange for an unknown user
 * or a user without a usable SCRAM secret, so that the client cannot tell the cases apart),
 * then scram_server_first() with the client-first message of SASLInitialResponse, which yields
 * the server-first message (AuthenticationSASLContinue data), then scram_server_final() with
 * the client-final message (SASLResponse), which yields the server-final message
 * (AuthenticationSASLFinal data) and, on success, the ClientKey the client proved.
 *
 * Channel binding (SCRAM-SHA-256-PLUS, type tls-server-end-point only) is available when the
 * caller gives the connection's binding data with scram_server_set_channel_binding(); the
 * client's GS2 flag must then agree with the mechanism it chose, and "y" (the client could bind
 * but thinks we cannot) is refused as a downgrade. Without it, "p=" is refused and "y" accepted.
 * Authorization identities and mandatory extensions ("m=") are refused, like PostgreSQL.
 *
 * Pure: no I/O, no globals. Nothing here calls back.
 */
#ifndef PGMUX_AUTH_SCRAM_SERVER_H
#define PGMUX_AUTH_SCRAM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"

enum scram_server_state {
	SCRAM_SERVER_NEW,        /* next: scram_server_first() */
	SCRAM_SERVER_FIRST_SENT, /* next: scram_server_final() */
	SCRAM_SERVER_DONE,       /* the client proved it knows the secret */
	SCRAM_SERVER_FAILED,
};

/* What a step concluded. */
enum scram_server_result {
	SCRAM_SERVER_OK,        /* send the output and go on (or, after final, let the client in) */
	SCRAM_SERVER_MALFORMED, /* protocol violation: 08P01, reason in err */
	SCRAM_SERVER_BAD_PROOF, /* wrong password, unknown user or unusable secret: 28P01 */
};

/* One exchange; the caller owns it and must call scram_server_clear() when done. */
struct scram_server {
	enum scram_server_state state;
	bool mock; /* doomed: the proof can never verify */
	struct scram_secret secret;
	char nonce[2 * SCRAM_NONCE_MAX + 1]; /* client nonce + ours */
	char gs2_header[32];                 /* "n,,", "y,," or "p=tls-server-end-point,," */
	size_t gs2_len;
	bool cb_offered;     /* SCRAM-SHA-256-PLUS was offered on this connection */
	bool cb_selected;    /* ... and the client chose it */
	uint8_t cb_data[64]; /* tls-server-end-point hash */
	size_t cb_len;
	char client_first_bare[SCRAM_MESSAGE_MAX];
	size_t client_first_bare_len;
	char server_first[SCRAM_MESSAGE_MAX];
	size_t server_first_len;
	uint8_t client_key[SCRAM_KEY_LEN]; /* valid in SCRAM_SERVER_DONE */
};

/*
 * Start an exchange with secret (copied), or a mock one when secret is NULL: then mock_salt
 * (mock_salt_len bytes, 1..SCRAM_SALT_MAX, stable per user so that repeated tries look alike)
 * is shown as the salt and the exchange ends in SCRAM_SERVER_BAD_PROOF. nonce is our part of
 * the nonce, or NULL for 18 random bytes in base64 (a given one must be printable without ',').
 * Returns false on a bad argument or a random-number failure.
 */
bool scram_server_init(struct scram_server *ss, const struct scram_secret *secret,
		       const uint8_t *mock_salt, size_t mock_salt_len, const char *nonce);

/*
 * Call after scram_server_init() on a TLS connection where SCRAM-SHA-256-PLUS was offered:
 * data (len <= 64 bytes) is the tls-server-end-point hash of our certificate, selected says
 * whether the client chose SCRAM-SHA-256-PLUS. Returns false when len is out of range.
 */
bool scram_server_set_channel_binding(struct scram_server *ss, bool selected, const uint8_t *data,
				      size_t len);

/*
 * Take the client-first message (len bytes, need not be NUL-terminated) and write the
 * server-first message, NUL-terminated, into out (its length into *outn).
 */
enum scram_server_result scram_server_first(struct scram_server *ss, const char *msg, size_t len,
					    char *out, size_t outlen, size_t *outn, char *err,
					    size_t errlen);

/*
 * Take the client-final message and, when the proof verifies, write the server-final message
 * ("v=<ServerSignature>") into out and move to SCRAM_SERVER_DONE with the ClientKey in
 * ss->client_key. SCRAM_SERVER_BAD_PROOF leaves out empty: PostgreSQL sends an ErrorResponse,
 * not "e=".
 */
enum scram_server_result scram_server_final(struct scram_server *ss, const char *msg, size_t len,
					    char *out, size_t outlen, size_t *outn, char *err,
					    size_t errlen);

/* Wipe the keys; ss may be initialized again afterwards. */
void scram_server_clear(struct scram_server *ss);

#endif
