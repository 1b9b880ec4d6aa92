/* link: src/shard/json.c */
/*
 * libFuzzer target: the in-place JSON reader. Whatever it accepts must be a consistent tree:
 * each node's subtree inside the document, children adding up to their parent, every string
 * NUL-terminated at its length.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shard/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The subtree at n ends where its skip says; returns the node after it. */
static const struct json_node *check(const struct json_doc *d, const struct json_node *n)
{
	const struct json_node *c = n + 1, *end = n + n->skip;

	if (n->skip == 0 || end > d->nodes + d->n)
		__builtin_trap();
	if (n->kind == JSON_STRING && strlen(n->s) != n->len)
		__builtin_trap();
	for (uint32_t i = 0; (n->kind == JSON_ARRAY || n->kind == JSON_OBJECT) && i < n->count;
	     i++) {
		if (n->kind == JSON_OBJECT) {
			if (c->kind != JSON_STRING)
				__builtin_trap();
			c = check(d, c);
		}
		c = check(d, c);
	}
	if (c != end)
		__builtin_trap();
	return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct json_doc d;
	bool oom;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (json_read(&d, text, size, 64, &oom) && check(&d, d.nodes) != d.nodes + d.n)
		__builtin_trap();
	json_free(&d);
	free(text);
	return 0;
}
