/* link: src/ev/takeovermsg.c */
/*
 * libFuzzer target: takeover socket messages. Whatever decodes must encode back to the very
 * same bytes (the format has one spelling per message) and decode again to the same struct.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ev/takeovermsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct takeover_msg m, again;
	static uint8_t buf[TAKEOVER_PIECE_MSG_MAX > TAKEOVER_MSG_MAX ? TAKEOVER_PIECE_MSG_MAX
								     : TAKEOVER_MSG_MAX];
	char err[128];
	size_t len;

	if (!takeovermsg_decode(data, size, &m, err, sizeof(err)))
		return 0;
	len = takeovermsg_encode(&m, buf, sizeof(buf));
	if (len != size || memcmp(buf, data, size) != 0)
		abort();
	if (!takeovermsg_decode(buf, len, &again, err, sizeof(err)))
		abort();
	/* a piece of a record points into the bytes decoded: compare what it points to */
	if (m.piece_len != again.piece_len ||
	    (m.piece_len && memcmp(m.piece, again.piece, m.piece_len)))
		abort();
	m.piece = again.piece = NULL;
	if (memcmp(&m, &again, sizeof(m)) != 0)
		abort();
	return 0;
}
