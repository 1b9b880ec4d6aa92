/* link: src/admin/parse.c */
/* libFuzzer target: admin console commands (SHOW, SET, PAUSE db, ...). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* admin_parse takes the NUL-terminated text of a Query */
	char *sql = malloc(size + 1);
	struct admin_cmd cmd;
	char err[256];

	memcpy(sql, data, size);
	sql[size] = 0;
	if (admin_parse(sql, &cmd, err, sizeof(err)) == ADMIN_PARSE_OK) {
		/* what the console prints back must be terminated within its field */
		if (!memchr(cmd.arg, 0, sizeof(cmd.arg)) ||
		    !memchr(cmd.value, 0, sizeof(cmd.value)))
			__builtin_trap();
		(void)strlen(admin_verb_tag(cmd.verb));
	} else if (!memchr(err, 0, sizeof(err))) {
		__builtin_trap();
	}
	free(sql);
	return 0;
}
