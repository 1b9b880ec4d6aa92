/* link: src/auth/base64.c */
/*
 * libFuzzer target: the strict base64 decoder, with output buffers of every size around the
 * bound it promises; what decodes must encode back to the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max = base64_decoded_max(size), n, m;
	uint8_t *out = malloc(max + 1);
	char *text;

	/* one byte short of the bound must fail or fit, never write past the end */
	if (max > 0)
		(void)base64_decode((const char *)data, size, out, max - 1, &n);
	if (base64_decode((const char *)data, size, out, max, &n)) {
		if (n > max)
			__builtin_trap();
		text = malloc(base64_encoded_len(n) + 1);
		if (!base64_encode(out, n, text, base64_encoded_len(n) + 1, &m) || m != size ||
		    memcmp(text, data, size) != 0)
			__builtin_trap();
		free(text);
	}
	free(out);
	return 0;
}
