/*
 * fe: typed parsing of the frontend (client to server) messages pgmux must understand.
 *
 * Pure: no I/O, no allocation, no globals. Bodies are passed without the 5-byte header. Every
 * parser reads through the checked cursor of proto/pkt.h and checks the whole message as
 * PostgreSQL would read it (every string terminated, every count covered by the bytes that
 * follow, nothing left over), so a false return means "malformed: answer 08P01" and never a read
 * outside [body, body + len). Strings and byte ranges in the results point into body (borrowed:
 * valid as long as the message is). On false the output is unspecified.
 */
#ifndef PGMUX_PROTO_FE_H
#define PGMUX_PROTO_FE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/pkt.h"

/* Query ('Q'): one SQL string, which may hold several statements. */
struct fe_query {
	const char *sql;
	size_t sql_len; /* strlen(sql) */
};

/* Parse ('P') */
struct fe_parse {
	const char *name; /* "" for the unnamed statement */
	const char *query;
	size_t query_len; /* strlen(query) */
	uint16_t nparams;
	const uint8_t *param_types; /* nparams big-endian int32 type OIDs (0: unspecified) */
	/* Everything after the name: query, its NUL, parameter types. What makes two Parses equal. */
	const uint8_t *def;
	size_t def_len;
};

/* Bind ('B'): names, and where its parts lie, for callers that rewrite or inspect it. */
struct fe_bind {
	const char *portal;     /* "" for the unnamed portal */
	const char *statement;  /* "" for the unnamed statement */
	size_t statement_off;   /* offset of the statement name in body */
	size_t rest_off;        /* offset just past the statement name's NUL: formats onwards */
	uint16_t nformats;      /* parameter format codes: 0 (all text), 1 (all), or one each */
	const uint8_t *formats; /* nformats big-endian int16 */
	uint16_t nparams;
	const uint8_t *params; /* nparams values, each int32 length (-1: NULL) then the bytes */
	size_t params_len;     /* bytes of all values together */
	uint16_t nresult_formats;
	const uint8_t *result_formats; /* nresult_formats big-endian int16 */
};

/* Describe ('D') and Close ('C'): of a prepared statement or of a portal. */
enum fe_target {
	FE_STATEMENT = 'S',
	FE_PORTAL = 'P',
};

struct fe_describe {
	enum fe_target kind;
	const char *name; /* "" for the unnamed one */
};

/* Execute ('E') */
struct fe_execute {
	const char *portal;
	uint32_t max_rows; /* 0: no limit */
};

/* SASLInitialResponse ('p' answering AuthenticationSASL) */
struct fe_sasl_initial {
	const char *mechanism;
	const uint8_t *data; /* NULL when data_len is -1 */
	int32_t data_len;    /* -1: no initial response */
};

PKT_MUST_USE bool fe_parse_query(const uint8_t *body, size_t len, struct fe_query *out);
PKT_MUST_USE bool fe_parse_parse(const uint8_t *body, size_t len, struct fe_parse *out);
/* The type OID of parameter i (< p->nparams) of a Parse fe_parse_parse accepted. */
uint32_t fe_parse_param_type(const struct fe_parse *p, uint16_t i);
PKT_MUST_USE bool fe_parse_bind(const uint8_t *body, size_t len, struct fe_bind *out);
/*
 * Parameter i (0-based) of a parsed Bind: its bytes (*len -1 for NULL, *val then NULL) and
 * whether it is sent in binary. False when there is no such parameter.
 */
PKT_MUST_USE bool fe_bind_param(const struct fe_bind *b, uint16_t i, const uint8_t **val,
				int32_t *len, bool *binary);
/* Describe and Close have the same body: a kind byte ('S' or 'P', else false) and a name. */
PKT_MUST_USE bool fe_parse_describe(const uint8_t *body, size_t len, struct fe_describe *out);
PKT_MUST_USE bool fe_parse_close(const uint8_t *body, size_t len, struct fe_describe *out);
PKT_MUST_USE bool fe_parse_execute(const uint8_t *body, size_t len, struct fe_execute *out);
/* CopyData ('d'): any bytes; the whole body is the data. */
PKT_MUST_USE bool fe_parse_copy_data(const uint8_t *body, size_t len, const uint8_t **data,
				     size_t *data_len);
/* CopyDone ('c'): an empty body. */
PKT_MUST_USE bool fe_parse_copy_done(const uint8_t *body, size_t len);
/* CopyFail ('f'): the client's reason. */
PKT_MUST_USE bool fe_parse_copy_fail(const uint8_t *body, size_t len, const char **message);
PKT_MUST_USE bool fe_parse_sasl_initial(const uint8_t *body, size_t len,
					struct fe_sasl_initial *out);
/* SASLResponse ('p' answering AuthenticationSASLContinue): the whole body is the data. */
PKT_MUST_USE bool fe_parse_sasl_response(const uint8_t *body, size_t len, const uint8_t **data,
					 size_t *data_len);
/* PasswordMessage ('p'): one string, cleartext or "md5..." */
PKT_MUST_USE bool fe_parse_password(const uint8_t *body, size_t len, const char **password);

#endif
