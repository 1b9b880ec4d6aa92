/*
 * shard/json: a small reader for the JSON parse trees libpg_query writes, made for speed: one
 * pass over the text, decoded in place (strings become NUL-terminated where they stand), into
 * one array of nodes in document order. A node's children follow it; skip jumps over its whole
 * subtree, so walking a tree allocates nothing.
 *
 * Invariants: after json_read() succeeds every string node's s is NUL-terminated and decoded
 * (escapes resolved; \u0000 refused); numbers keep their value in num; depth is bounded, so a
 * hostile nesting is refused rather than exhausting the stack. Pure: no I/O, no globals.
 */
#ifndef PGMUX_SHARD_JSON_H
#define PGMUX_SHARD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_kind { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_node {
	uint8_t kind;   /* enum json_kind */
	uint32_t count; /* arrays: elements; objects: members (a key node, then its value) */
	uint32_t skip;  /* nodes in this subtree, itself included: the next sibling is at + skip */
	const char *s;  /* strings: the decoded text, NUL-terminated */
	uint32_t len;   /* its length */
	int64_t num;    /* numbers: the integer value (fractions are cut, past int64 clamped) */
};

struct json_doc {
	struct json_node *nodes; /* nodes[0] is the root */
	uint32_t n, cap;
};

/*
 * Read text (len bytes, writable: strings are decoded in place and NUL-terminated there).
 * False when it is not one JSON value, is nested deeper than max_depth, or memory ran out
 * (*oom then). The caller frees d with json_free() in every case.
 */
bool json_read(struct json_doc *d, char *text, size_t len, int max_depth, bool *oom);
void json_free(struct json_doc *d);

/* The value of member key of an object node, or NULL (not an object, or no such member). */
const struct json_node *json_field(const struct json_node *obj, const char *key);
/* Element i of an array node, or NULL. */
const struct json_node *json_at(const struct json_node *arr, size_t i);
/* Elements of an array node; 0 for anything else. */
size_t json_len(const struct json_node *arr);
/* The first member of an object: its key's text into *key, its value returned; NULL if none. */
const struct json_node *json_first(const struct json_node *obj, const char **key);
/* The node after n and its subtree: with json_first, walks an object's members (key, value). */
static inline const struct json_node *json_next(const struct json_node *n)
{
	return n + n->skip;
}
/* Is n a string equal to s? */
bool json_str_is(const struct json_node *n, const char *s);

#endif
