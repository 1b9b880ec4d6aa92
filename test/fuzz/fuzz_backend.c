/* link: src/proto/be.c src/proto/pkt.c */
/* libFuzzer target: the backend messages pgmux parses (errors, parameters, keys, auth). */
#include <stddef.h>
#include <stdint.h>

#include "proto/be.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct be_error e;
	const char *n, *v;
	uint32_t a, b;
	const uint8_t *d;
	size_t dl;

	(void)be_parse_error(data, size, &e);
	(void)be_parse_parameter_status(data, size, &n, &v);
	(void)be_parse_backend_key(data, size, &a, &b);
	(void)be_parse_auth(data, size, &a, &d, &dl);
	return 0;
}
