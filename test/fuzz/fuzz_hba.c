/* link: src/auth/hba.c */
/* libFuzzer target: pg_hba.conf-style rules, parsed and then matched against a few clients. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/hba.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hba_client clients[] = {
		{ .is_unix = true, .database = "app", .user = "alice" },
		{ .family = AF_INET, .addr = { 10, 1, 2, 3 }, .database = "all", .user = "bob" },
		{ .family = AF_INET6,
		  .tls = true,
		  .addr = { 0xfe, 0x80, [15] = 1 },
		  .database = "replication",
		  .user = "postgres" },
	};
	char err[256];
	struct hba *h = hba_parse((const char *)data, size, "fuzz", err, sizeof(err));
	struct hba_verdict v;

	if (!h)
		return 0;
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		if (hba_match(h, &clients[i], &v))
			(void)hba_method_name(v.method);
	(void)hba_count(h);
	hba_free(h);
	return 0;
}
