/* link: src/shard/mapfile.c src/shard/map.c */
/*
 * libFuzzer target: shard map texts. Whatever parses must validate, format back to a text that
 * parses to the same map, and format to the same text again.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shard/mapfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct shard_map *a, const struct shard_map *b)
{
	if (a->version != b->version || a->checksum != b->checksum || a->seed != b->seed ||
	    a->n_buckets != b->n_buckets || a->n_shards != b->n_shards ||
	    a->n_overrides != b->n_overrides ||
	    memcmp(a->names, b->names, (size_t)a->n_shards * sizeof(*a->names)) != 0 ||
	    memcmp(a->weights, b->weights, (size_t)a->n_shards * sizeof(*a->weights)) != 0 ||
	    memcmp(a->owner, b->owner, a->n_buckets * sizeof(*a->owner)) != 0)
		return false;
	for (int i = 0; i < a->n_overrides; i++)
		if (strcmp(a->overrides[i].key, b->overrides[i].key) != 0 ||
		    a->overrides[i].shard != b->overrides[i].shard)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *text, *again;
	struct shard_map *m = shard_map_parse((const char *)data, size, err, sizeof(err)), *back;

	if (!m)
		return 0;
	if (!shard_map_validate(m, err, sizeof(err)))
		abort();
	text = shard_map_format(m);
	if (!text)
		abort();
	back = shard_map_parse(text, strlen(text), err, sizeof(err));
	if (!back || !same(m, back))
		abort();
	again = shard_map_format(back);
	if (!again || strcmp(again, text) != 0)
		abort();
	free(again);
	free(text);
	shard_map_free(back);
	shard_map_free(m);
	return 0;
}
