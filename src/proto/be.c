/*
 * be: backend message parsers (see proto/be.h).
 */
#include "proto/be.h"

#include "proto/pkt.h"

const char *be_auth_code_name(uint32_t code)
{
	switch (code) {
	case BE_AUTH_OK:
		return "AuthenticationOk";
	case BE_AUTH_KERBEROS_V5:
		return "AuthenticationKerberosV5";
	case BE_AUTH_CLEARTEXT_PASSWORD:
		return "AuthenticationCleartextPassword";
	case BE_AUTH_MD5_PASSWORD:
		return "AuthenticationMD5Password";
	case BE_AUTH_SCM_CREDENTIAL:
		return "AuthenticationSCMCredential";
	case BE_AUTH_GSS:
		return "AuthenticationGSS";
	case BE_AUTH_GSS_CONTINUE:
		return "AuthenticationGSSContinue";
	case BE_AUTH_SSPI:
		return "AuthenticationSSPI";
	case BE_AUTH_SASL:
		return "AuthenticationSASL";
	case BE_AUTH_SASL_CONTINUE:
		return "AuthenticationSASLContinue";
	case BE_AUTH_SASL_FINAL:
		return "AuthenticationSASLFinal";
	default:
		return "unknown";
	}
}

bool be_parse_error(const uint8_t *body, size_t len, struct be_error *out)
{
	struct pkt_cursor c;
	const char *severity_local = "ERROR";

	out->severity = NULL;
	out->sqlstate = "XX000";
	out->message = "";
	pkt_cursor_init(&c, body, len);
	for (;;) {
		uint8_t field;
		const char *value;

		if (!pkt_get_u8(&c, &field))
			return false;
		if (field == 0)
			break;
		if (!pkt_get_cstring(&c, &value))
			return false;
		switch (field) {
		case 'S':
			severity_local = value;
			break;
		case 'V':
			out->severity = value;
			break;
		case 'C':
			out->sqlstate = value;
			break;
		case 'M':
			out->message = value;
			break;
		default:
			break;
		}
	}
	if (!out->severity)
		out->severity = severity_local;
	return true;
}

bool be_parse_parameter_status(const uint8_t *body, size_t len, const char **name,
			       const char **value)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	return pkt_get_cstring(&c, name) && pkt_get_cstring(&c, value) && pkt_remaining(&c) == 0;
}

bool be_parse_backend_key(const uint8_t *body, size_t len, uint32_t *pid, uint32_t *key)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	return pkt_get_u32(&c, pid) && pkt_get_u32(&c, key) && pkt_remaining(&c) == 0;
}

bool be_parse_auth(const uint8_t *body, size_t len, uint32_t *code, const uint8_t **data,
		   size_t *data_len)
{
	struct pkt_cursor c;

	pkt_cursor_init(&c, body, len);
	if (!pkt_get_u32(&c, code))
		return false;
	*data_len = pkt_remaining(&c);
	return pkt_get_bytes(&c, *data_len, data);
}

bool be_data_row_column(const uint8_t *body, size_t len, int col, const uint8_t **val,
			int32_t *vlen)
{
	struct pkt_cursor c;
	uint16_t ncols;

	pkt_cursor_init(&c, body, len);
	if (!pkt_get_u16(&c, &ncols) || col < 0 || col >= ncols)
		return false;
	for (int i = 0; i <= col; i++) {
		if (!pkt_get_i32(&c, vlen))
			return false;
		*val = NULL;
		if (*vlen > 0 && !pkt_get_bytes(&c, (size_t)*vlen, val))
			return false;
		if (*vlen < -1)
			return false;
	}
	return true;
}
