/* link: src/shard/etcd.c src/auth/base64.c */
/*
 * libFuzzer target: etcd's answers as shard/etcd reads them (range, watch line, lease, txn,
 * prefix range) and a coordinated move's record. Whatever is accepted must hold what the header
 * promises: values NUL-terminated at their length and within the cap, prefix keys that start
 * with the prefix asked for, a record that formats back to text that parses the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shard/etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const struct etcd_value *v)
{
	if (v->found && (!v->text || v->text[v->len] != '\0' || v->len > ETCD_VALUE_MAX))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), why[200], *again;
	struct etcd_value v;
	struct etcd_watch_msg m;
	struct etcd_kvs kvs;
	struct etcd_move rec, rec2;
	int64_t id, ttl;
	bool ok;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (shard_etcd_parse_range(text, size, "/m", &v, why, sizeof(why)))
		check_value(&v);
	shard_etcd_value_clear(&v);
	if (shard_etcd_parse_watch(text, size, "/m", &m, why, sizeof(why)))
		check_value(&m.value);
	shard_etcd_value_clear(&m.value);
	if (shard_etcd_parse_lease(text, size, &id, &ttl, why, sizeof(why)) && (id == 0 || ttl < 0))
		__builtin_trap();
	(void)shard_etcd_parse_txn(text, size, &ok, why, sizeof(why));
	if (shard_etcd_parse_prefix(text, size, "/m/", &kvs, why, sizeof(why))) {
		for (int i = 0; i < kvs.n; i++) {
			if (strncmp(kvs.kvs[i].key, "/m/", 3) != 0 ||
			    kvs.kvs[i].value[kvs.kvs[i].len] != '\0')
				__builtin_trap();
		}
	}
	shard_etcd_kvs_clear(&kvs);
	if (shard_etcd_move_parse(text, &rec, why, sizeof(why))) {
		again = shard_etcd_move_format(&rec);
		if (!again || !shard_etcd_move_parse(again, &rec2, why, sizeof(why)) ||
		    memcmp(&rec, &rec2, sizeof(rec)) != 0)
			__builtin_trap();
		free(again);
	}
	free(text);
	return 0;
}
