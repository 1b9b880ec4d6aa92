/*
 * be: typed parsing of the few backend messages pgmux must understand (ErrorResponse,
 * ParameterStatus, BackendKeyData, Authentication*, ReadyForQuery). Pure; strings borrowed.
 * Bodies are passed without the 5-byte header.
 */
#ifndef PGMUX_PROTO_BE_H
#define PGMUX_PROTO_BE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct be_error {
	const char *severity;   /* non-localized 'V' if present, else 'S' */
	const char *sqlstate;
	const char *message;
};

bool be_parse_error(const uint8_t *body, size_t len, struct be_error *out);
bool be_parse_parameter_status(const uint8_t *body, size_t len, const char **name, const char **value);
bool be_parse_backend_key(const uint8_t *body, size_t len, uint32_t *pid, uint32_t *key);
/* Authentication request: the code, and the bytes after it (salt, SASL data). */
bool be_parse_auth(const uint8_t *body, size_t len, uint32_t *code, const uint8_t **data, size_t *data_len);
/*
 * Column col (from 0) of a DataRow: *val points into body (borrowed) and *vlen is its length, -1
 * for NULL (then *val is NULL). False when the row is malformed or has no such column.
 */
bool be_data_row_column(const uint8_t *body, size_t len, int col, const uint8_t **val, int32_t *vlen);

#endif
