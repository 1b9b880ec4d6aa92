/* link: src/topo/patroni.c */
/* libFuzzer target: Patroni's GET /cluster answers, as pgmux parses them. */
#include <stddef.h>
#include <stdint.h>

#include "topo/patroni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct patroni_cluster pc;
	char err[128];

	(void)patroni_parse_cluster((const char *)data, size, &pc, err, sizeof(err));
	return 0;
}
