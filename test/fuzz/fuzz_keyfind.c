/* link: src/shard/keyfind.c src/shard/key.c src/shard/bucket.c src/shard/json.c */
/*
 * libFuzzer target: the shard key finders (hint comment, SET pgmux.*, libpg_query statement
 * walk) on one input, and every literal they return through shard/key's text readers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shard/key.h"
#include "shard/keyfind.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each key type's reading of a value (the results only need to be defined). */
static void read_key(const char *s, size_t len)
{
	struct shard_key k;
	char err[128], buf[SHARD_KEY_FORMAT_MAX];

	for (int t = SHARD_KEY_INT; t <= SHARD_KEY_UUID; t++) {
		if (shard_key_from_text(t, s, len, &k, err, sizeof(err))) {
			(void)shard_key_hash(&k, 1);
			shard_key_format(&k, buf, sizeof(buf));
		}
		if (shard_key_from_binary(t, (const uint8_t *)s, len, &k, err, sizeof(err)))
			(void)shard_key_hash(&k, 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so reading one byte past the end is caught. */
	char *sql = malloc(size ? size : 1);
	struct keyfind_hint h;
	struct keyfind_set s;
	struct keyfind kf;

	if (!sql)
		return 0;
	memcpy(sql, data, size);
	if (keyfind_hint(sql, size, &h))
		read_key(h.value, h.value_len);
	if (keyfind_set(sql, size, &s) && !s.reset)
		read_key(s.value, s.value_len);
	if (keyfind_sql(sql, size, "user_id", &kf)) {
		for (int i = 0; i < kf.n_values; i++)
			if (kf.values[i].param == 0)
				read_key(kf.values[i].literal, kf.values[i].literal_len);
		keyfind_free(&kf);
	}
	free(sql);
	return 0;
}
