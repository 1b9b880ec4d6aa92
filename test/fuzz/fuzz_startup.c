/* link: src/proto/startup.c src/proto/pkt.c */
/* libFuzzer target: startup packets (StartupMessage, SSL/GSSENC/cancel requests). */
#include <stddef.h>
#include <stdint.h>

#include "proto/pkt.h"
#include "proto/startup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct startup_msg m;
	struct pkt_header h;
	char err[256];

	if (pkt_peek_startup(data, size, &h) == PKT_PEEK_OK && h.len <= size)
		(void)startup_parse(data, h.len, &m, err, sizeof(err));
	(void)startup_parse(data, size, &m, err, sizeof(err));
	return 0;
}
