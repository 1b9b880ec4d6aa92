/*
 * build: writers for the protocol messages pgmux itself sends.
 *
 * A struct msgbuf grows as needed; allocation failure is remembered in ->failed and every later
 * write becomes a no-op, so callers check once at the end instead of after every field.
 */
#ifndef PGMUX_PROTO_BUILD_H
#define PGMUX_PROTO_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/be.h"

struct msgbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool failed;
};

void mb_init(struct msgbuf *mb);
void mb_free(struct msgbuf *mb);
static inline void mb_reset(struct msgbuf *mb)
{
	mb->len = 0;
	mb->failed = false;
}

/*
 * Start a message of this type (0 = untyped startup-phase message); returns the offset of its
 * length field, which mb_end() patches once the body is written.
 */
size_t mb_begin(struct msgbuf *mb, char type);
void mb_end(struct msgbuf *mb, size_t lenpos);

void mb_put_u8(struct msgbuf *mb, uint8_t v);
void mb_put_u16(struct msgbuf *mb, uint16_t v);
void mb_put_u32(struct msgbuf *mb, uint32_t v);
void mb_put_bytes(struct msgbuf *mb, const void *p, size_t n);
void mb_put_cstring(struct msgbuf *mb, const char *s);

/* Whole messages. */
void build_error(struct msgbuf *mb, const char *severity, const char *sqlstate, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));
/*
 * The ErrorResponse whose body (len bytes, header excluded) is given, every field kept but the
 * severity, which becomes severity. False when the body is malformed (mb then holds garbage).
 */
bool build_error_with_severity(struct msgbuf *mb, const uint8_t *body, size_t len,
			       const char *severity);
void build_notice(struct msgbuf *mb, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void build_ready(struct msgbuf *mb, char tx_status);
void build_auth_request(struct msgbuf *mb, enum be_auth_code code, const void *extra,
			size_t extra_len);
void build_parameter_status(struct msgbuf *mb, const char *name, const char *value);
void build_backend_key(struct msgbuf *mb, uint32_t pid, uint32_t key);
void build_command_complete(struct msgbuf *mb, const char *tag);
void build_empty_query(struct msgbuf *mb);
/* RowDescription with every column text (oid 25) unless oids gives per-column type oids. */
void build_row_description(struct msgbuf *mb, int ncols, const char *const *names,
			   const uint32_t *oids);
/* DataRow; a NULL value is sent as SQL NULL. */
void build_data_row(struct msgbuf *mb, int ncols, const char *const *values);
void build_query(struct msgbuf *mb, const char *sql);
void build_password(struct msgbuf *mb, const char *password);
void build_sasl_initial(struct msgbuf *mb, const char *mech, const void *data, size_t len);
void build_sasl_response(struct msgbuf *mb, const void *data, size_t len);
void build_cancel_request(struct msgbuf *mb, uint32_t pid, uint32_t key);
/* StartupMessage v3.0 from NULL-terminated name/value pairs. */
void build_startup(struct msgbuf *mb, const char *const *pairs);
/* NegotiateProtocolVersion: newest minor we speak, and the options we did not recognise. */
void build_negotiate_version(struct msgbuf *mb, uint32_t minor, int nopts, const char *const *opts);

#endif
