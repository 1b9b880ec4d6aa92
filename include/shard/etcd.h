/*
 * shard/etcd: a shard map kept as the value of one etcd key, as etcd's v3 JSON gateway speaks of
 * it: the `map = etcd:...` source, the bodies of range and watch requests, and the answers.
 * In that API keys and values are base64 and 64-bit numbers are decimal strings; a watch answers
 * with one JSON object per line, forever.
 *
 * Source syntax: etcd:URL[,URL...] where each URL is http://HOST[:PORT] or https://..., and the
 * last one goes on with the key as its path, leading slash included:
 * etcd:http://10.0.0.1:2379,http://10.0.0.2:2379/pgmux/maps/users names key /pgmux/maps/users.
 *
 * Pure: no I/O, no logging, no globals; every answer is checked before it is believed, so it can
 * be fed any bytes.
 */
#ifndef PGMUX_SHARD_ETCD_H
#define PGMUX_SHARD_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETCD_MAX_ENDPOINTS 8
#define ETCD_URL_MAX 256                 /* bytes of an endpoint, NUL included */
#define ETCD_KEY_MAX 512                 /* bytes of a key, NUL excluded */
#define ETCD_VALUE_MAX (4 * 1024 * 1024) /* bytes of a map's text */
/*
 * The JSON of one answer carrying a value: base64 (4/3) plus room for the rest, for values up
 * to twice the cap, so that a value somewhat too large is refused for what it is.
 */
#define ETCD_ANSWER_MAX (2 * ETCD_VALUE_MAX / 3 * 4 + 64 * 1024)

struct etcd_source {
	int n_endpoints;
	char endpoints[ETCD_MAX_ENDPOINTS][ETCD_URL_MAX]; /* "http://host:port", no slash after */
	char key[ETCD_KEY_MAX + 1];
};

/*
 * Parse a map= value that starts with "etcd:" into out. False (why says what is wrong and what
 * is expected) for anything else: no URL, a scheme other than http/https, an empty host, a path
 * on any URL but the last, no key, too many endpoints, spaces.
 */
bool shard_etcd_parse_source(const char *text, struct etcd_source *out, char *why, size_t whylen);

/* The body of POST /v3/kv/range for key. NULL: out of memory. The caller frees it. */
char *shard_etcd_range_request(const char *key);

/* The body of POST /v3/watch for key from revision on. NULL: out of memory. Caller frees. */
char *shard_etcd_watch_request(const char *key, int64_t start_revision);

/* What an answer says of the key. */
struct etcd_value {
	bool found;           /* a range found the key / a watch event put it */
	int64_t revision;     /* the store's revision when answered (header.revision) */
	int64_t mod_revision; /* when the key last changed (0 when not found) */
	char *text;           /* the value, decoded, NUL-terminated, malloc'd; NULL if !found */
	size_t len;
};

/* Free v's text and clear it. */
void shard_etcd_value_clear(struct etcd_value *v);

/*
 * A /v3/kv/range answer (its whole body). False (why) when it is not one: not JSON, an error
 * object, a key that is not key, bad base64, a value over ETCD_VALUE_MAX. On success the caller
 * owns out->text.
 */
bool shard_etcd_parse_range(const char *body, size_t len, const char *key, struct etcd_value *out,
			    char *why, size_t whylen);

/* Length of the first whole line of a watch stream (newline included), 0 when none yet. */
size_t shard_etcd_next_line(const char *buf, size_t len);

enum etcd_watch_kind {
	ETCD_WATCH_CREATED,  /* the watch is in place */
	ETCD_WATCH_EVENTS,   /* the key changed: out->value says how it is now (last event) */
	ETCD_WATCH_PROGRESS, /* nothing for us (a progress notice, or events of other keys) */
	ETCD_WATCH_CANCELED, /* etcd ended the watch (compacted past its revision...): why */
};

/*
 * One line of a watch stream. ETCD_WATCH_EVENTS: out->value.found is false when the last event
 * deleted the key; the caller owns out->value.text. key NULL (a prefix's watch): an event of
 * any key counts, and out->value is the last event's. False (why) for a line that is not a watch
 * answer, an error object, or a value that cannot be decoded.
 */
struct etcd_watch_msg {
	enum etcd_watch_kind kind;
	struct etcd_value value;
	int64_t compact_revision; /* CANCELED: the oldest revision left, 0 when not said */
};
bool shard_etcd_parse_watch(const char *line, size_t len, const char *key,
			    struct etcd_watch_msg *out, char *why, size_t whylen);

/* ---- several pgmux sharing one map key: leases, the prefix, compare-and-swap ---- */

/* The body of POST /v3/lease/grant for a lease of ttl seconds. NULL: out of memory. */
char *shard_etcd_grant_request(int ttl);

/* The body of POST /v3/lease/keepalive for lease id. NULL: out of memory. */
char *shard_etcd_keepalive_request(int64_t id);

/* The body of POST /v3/lease/revoke for lease id. NULL: out of memory. */
char *shard_etcd_revoke_request(int64_t id);

/*
 * A /v3/lease/grant answer, or the first line of a /v3/lease/keepalive one (its "result"):
 * the lease's id and the seconds it has left (0: the lease is gone, expired or revoked).
 * False (why) when it is not one.
 */
bool shard_etcd_parse_lease(const char *body, size_t len, int64_t *id, int64_t *ttl, char *why,
			    size_t whylen);

/* The body of POST /v3/kv/put of value[0..len) at key, under lease (0: none). NULL: no memory. */
char *shard_etcd_put_request(const char *key, const char *value, size_t len, int64_t lease);

/*
 * The body of POST /v3/kv/txn that puts value[0..len) at key only if the key was last changed at
 * mod_revision (a compare-and-swap: nobody wrote it since it was read). NULL: out of memory.
 */
char *shard_etcd_cas_request(const char *key, int64_t mod_revision, const char *value, size_t len);

/* A /v3/kv/txn answer: did the compare hold (the put was made)? False (why): not one. */
bool shard_etcd_parse_txn(const char *body, size_t len, bool *succeeded, char *why, size_t whylen);

/*
 * The body of POST /v3/kv/range for every key that starts with prefix (range_end is the prefix
 * with its last byte plus one). NULL: out of memory.
 */
char *shard_etcd_prefix_request(const char *prefix);

/*
 * The body of POST /v3/watch for every key that starts with prefix, from revision on. Read its
 * lines with shard_etcd_parse_watch(key NULL). NULL: out of memory.
 */
char *shard_etcd_watch_prefix_request(const char *prefix, int64_t start_revision);

/* The body of POST /v3/kv/deleterange for key alone. NULL: out of memory. */
char *shard_etcd_delete_request(const char *key);

/* One key of a prefix, as etcd holds it now. */
struct etcd_kv {
	char *key;   /* whole key, NUL-terminated, malloc'd */
	char *value; /* decoded, NUL-terminated, malloc'd */
	size_t len;
	int64_t mod_revision;
};

/* What a prefix range found: n keys in kvs (etcd's order: sorted by key), at revision. */
struct etcd_kvs {
	int64_t revision;
	int n;
	struct etcd_kv *kvs;
};

/* Free every key and value of out and clear it. */
void shard_etcd_kvs_clear(struct etcd_kvs *out);

/*
 * A /v3/kv/range answer to shard_etcd_prefix_request(prefix): every key found (each checked to
 * start with prefix; values up to ETCD_VALUE_MAX). False (why) when it is not one; the caller
 * clears out either way.
 */
bool shard_etcd_parse_prefix(const char *body, size_t len, const char *prefix, struct etcd_kvs *out,
			     char *why, size_t whylen);

/* A coordinated move as every instance reads it under "<map key>/moves/<name>". */
enum etcd_move_step { ETCD_MOVE_HOLD, ETCD_MOVE_DONE, ETCD_MOVE_ABORTED };

struct etcd_move {
	char buckets[256], from[64], to[64];
	enum etcd_move_step step;
	uint64_t version;      /* the map version the switch writes */
	char coordinator[128]; /* the instance that runs it */
};

/* "hold", "done", "aborted". */
const char *shard_etcd_move_step_name(enum etcd_move_step s);

/* The record's text: "buckets B from F to T step S version V coordinator C". NULL: no memory. */
char *shard_etcd_move_format(const struct etcd_move *m);

/* Read a record's text. False (why) when it is not one. */
bool shard_etcd_move_parse(const char *text, struct etcd_move *out, char *why, size_t whylen);

#endif
