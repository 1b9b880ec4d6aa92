/*
 * be: typed parsing of the few backend messages pgmux must understand (ErrorResponse,
 * ParameterStatus, BackendKeyData, Authentication*, and the columns of a DataRow answering a
 * query of pgmux's own). Pure; strings borrowed. Bodies are passed without the 5-byte header.
 * ReadyForQuery is read where it is relayed: its one byte needs no parser.
 */
#ifndef PGMUX_PROTO_BE_H
#define PGMUX_PROTO_BE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The code of an Authentication* request ('R'): what the server asks the client for next. */
enum be_auth_code {
	BE_AUTH_OK = 0,          /* AuthenticationOk: logged in */
	BE_AUTH_KERBEROS_V5 = 2, /* no longer supported by PostgreSQL */
	BE_AUTH_CLEARTEXT_PASSWORD = 3,
	BE_AUTH_MD5_PASSWORD = 5,   /* followed by a 4-byte salt */
	BE_AUTH_SCM_CREDENTIAL = 6, /* no longer supported by PostgreSQL */
	BE_AUTH_GSS = 7,
	BE_AUTH_GSS_CONTINUE = 8, /* followed by GSSAPI or SSPI data */
	BE_AUTH_SSPI = 9,
	BE_AUTH_SASL = 10, /* followed by the mechanisms, each NUL-terminated, then a NUL */
	BE_AUTH_SASL_CONTINUE = 11, /* followed by SASL data (SCRAM server-first) */
	BE_AUTH_SASL_FINAL = 12,    /* followed by SASL outcome data (SCRAM server-final) */
};

/* A static name for logs: "AuthenticationMD5Password", or "unknown" for any other code. */
const char *be_auth_code_name(uint32_t code);

struct be_error {
	const char *severity; /* non-localized 'V' if present, else 'S' */
	const char *sqlstate;
	const char *message;
};

bool be_parse_error(const uint8_t *body, size_t len, struct be_error *out);
bool be_parse_parameter_status(const uint8_t *body, size_t len, const char **name,
			       const char **value);
bool be_parse_backend_key(const uint8_t *body, size_t len, uint32_t *pid, uint32_t *key);
/* Authentication request: the code (enum be_auth_code, or one pgmux does not know), and the
 * bytes after it (salt, SASL data). */
bool be_parse_auth(const uint8_t *body, size_t len, uint32_t *code, const uint8_t **data,
		   size_t *data_len);

/*
 * Column col (from 0) of a DataRow: *val points into body (borrowed) and *vlen is its length, -1
 * for NULL (then *val is NULL). False when the row is malformed or has no such column.
 */
bool be_data_row_column(const uint8_t *body, size_t len, int col, const uint8_t **val,
			int32_t *vlen);

#endif
