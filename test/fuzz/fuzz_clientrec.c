/* link: src/proto/clientrec.c src/proto/build.c src/proto/pkt.c */
/* libFuzzer target: client hand-over records, checked and then read field by field. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/clientrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t magic[8] = { 'P', 'G', 'M', 'X', 'C', 'R', '1', '\0' };
	struct clientrec_reader r;
	struct clientrec_field f;
	uint8_t buf[4096];
	const uint8_t *end;
	char why[128];
	size_t len;

	/* mostly past the magic, so the fields get fuzzed rather than the first 8 bytes */
	len = size < sizeof(buf) - sizeof(magic) ? size : sizeof(buf) - sizeof(magic);
	memcpy(buf, magic, sizeof(magic));
	memcpy(buf + sizeof(magic), data, len);
	end = buf + sizeof(magic) + len;
	if (clientrec_open(&r, buf, (size_t)(end - buf), why, sizeof(why))) {
		while (clientrec_next(&r, &f)) {
			/* every borrowed span lies inside the record */
			if (f.str &&
			    (f.str < (const char *)buf || f.str + f.str_len > (const char *)end))
				__builtin_trap();
			if (f.value && f.value + f.value_len > (const char *)end)
				__builtin_trap();
			if (f.bytes && (f.bytes < buf || f.bytes + f.bytes_len > end))
				__builtin_trap();
		}
	}
	(void)clientrec_open(&r, data, size, why, sizeof(why));
	return 0;
}
