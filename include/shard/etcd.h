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
 * deleted the key; the caller owns out->value.text. False (why) for a line that is not a watch
 * answer, an error object, or a value that cannot be decoded.
 */
struct etcd_watch_msg {
	enum etcd_watch_kind kind;
	struct etcd_value value;
	int64_t compact_revision; /* CANCELED: the oldest revision left, 0 when not said */
};
bool shard_etcd_parse_watch(const char *line, size_t len, const char *key,
			    struct etcd_watch_msg *out, char *why, size_t whylen);

#endif
