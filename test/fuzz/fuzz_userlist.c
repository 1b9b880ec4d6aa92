/* link: src/auth/userlist.c src/auth/secret.c src/auth/md5.c src/auth/scram.c src/auth/base64.c */
/* libFuzzer target: auth_file (userlist.txt) parsing. */
#include <stddef.h>
#include <stdint.h>

#include "auth/userlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct userlist *ul = userlist_parse((const char *)data, size, "fuzz", err, sizeof(err));

	if (ul) {
		(void)userlist_find(ul, "alice");
		userlist_free(ul);
	}
	return 0;
}
