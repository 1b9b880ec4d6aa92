/*
 * shard/etcd: etcd v3 JSON gateway messages for a map key (see shard/etcd.h).
 *
 * Invariants: a value handed out is decoded from base64, NUL-terminated and at most
 * ETCD_VALUE_MAX bytes; events are believed only for the key asked about.
 */
#include "shard/etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/base64.h"

/* ---- the source ---- */

/* Length of "http://" or "https://" at the start of s, 0 when neither. */
static size_t scheme_len(const char *s)
{
	if (!strncmp(s, "http://", 7))
		return 7;
	if (!strncmp(s, "https://", 8))
		return 8;
	return 0;
}

/* One URL of n bytes at u; last: it carries the key. */
static bool parse_url(const char *u, size_t n, bool last, struct etcd_source *out, char *why,
		      size_t whylen)
{
	size_t s = scheme_len(u), host_end;
	const char *slash;

	if (!s || s >= n) {
		snprintf(why, whylen, "etcd: '%.*s' is not an http:// or https:// URL", (int)n, u);
		return false;
	}
	slash = memchr(u + s, '/', n - s);
	host_end = slash ? (size_t)(slash - u) : n;
	if (host_end == s || host_end >= ETCD_URL_MAX) {
		snprintf(why, whylen, "etcd: '%.*s' has %s host", (int)n, u,
			 host_end == s ? "no" : "too long a");
		return false;
	}
	if (slash && !last) {
		snprintf(why, whylen, "etcd: '%.*s': only the last URL has a path (the key)",
			 (int)n, u);
		return false;
	}
	memcpy(out->endpoints[out->n_endpoints], u, host_end);
	out->endpoints[out->n_endpoints++][host_end] = '\0';
	if (!last)
		return true;
	if (!slash || n - host_end < 2 || n - host_end > ETCD_KEY_MAX) {
		snprintf(why, whylen, "etcd: '%.*s' names %s key: write etcd:http://HOST:PORT/KEY",
			 (int)n, u, slash && n - host_end >= 2 ? "too long a" : "no");
		return false;
	}
	memcpy(out->key, slash, n - host_end);
	out->key[n - host_end] = '\0';
	return true;
}

bool shard_etcd_parse_source(const char *text, struct etcd_source *out, char *why, size_t whylen)
{
	const char *p;

	memset(out, 0, sizeof(*out));
	if (strncmp(text, "etcd:", 5) != 0) {
		snprintf(why, whylen, "'%s' does not start with etcd:", text);
		return false;
	}
	p = text + 5;
	if (strpbrk(p, " \t\r\n")) {
		snprintf(why, whylen, "etcd: URLs are separated by commas, without spaces");
		return false;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (out->n_endpoints == ETCD_MAX_ENDPOINTS) {
			snprintf(why, whylen, "etcd: more than %d URLs", ETCD_MAX_ENDPOINTS);
			return false;
		}
		if (!parse_url(p, n, !comma, out, why, whylen))
			return false;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

/* ---- requests ---- */

/* The key in base64, malloc'd; NULL: out of memory. */
static char *key64(const char *key)
{
	size_t n = strlen(key), size = base64_encoded_len(n) + 1;
	char *out = malloc(size);

	if (out && !base64_encode((const uint8_t *)key, n, out, size, NULL)) {
		free(out);
		out = NULL;
	}
	return out;
}

char *shard_etcd_range_request(const char *key)
{
	char *k = key64(key), *body;

	if (!k)
		return NULL;
	if (asprintf(&body, "{\"key\":\"%s\"}", k) < 0)
		body = NULL;
	free(k);
	return body;
}

char *shard_etcd_watch_request(const char *key, int64_t start_revision)
{
	char *k = key64(key), *body;

	if (!k)
		return NULL;
	if (asprintf(&body,
		     "{\"create_request\":{\"key\":\"%s\",\"start_revision\":\"%" PRId64 "\"}}", k,
		     start_revision) < 0)
		body = NULL;
	free(k);
	return body;
}

/* ---- answers ---- */

void shard_etcd_value_clear(struct etcd_value *v)
{
	free(v->text);
	memset(v, 0, sizeof(*v));
}

static struct json_object *member(struct json_object *o, const char *name, enum json_type t)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

/* A decimal string (or number) member as int64; absent is 0. False: present but not one. */
static bool get_int64(struct json_object *o, const char *name, int64_t *out)
{
	struct json_object *v;
	const char *s;
	char *end;
	long long n;

	*out = 0;
	if (!json_object_object_get_ex(o, name, &v) || !v)
		return true;
	if (json_object_is_type(v, json_type_int)) {
		*out = json_object_get_int64(v);
		return *out >= 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || end == s || *end || n < 0)
		return false;
	*out = n;
	return true;
}

/* Decode a base64 member into a NUL-terminated malloc'd buffer (absent: ""). */
static bool get_bytes(struct json_object *o, const char *name, char **out, size_t *len, size_t max,
		      char *why, size_t whylen)
{
	struct json_object *v = member(o, name, json_type_string);
	size_t n = v ? (size_t)json_object_get_string_len(v) : 0, size = base64_decoded_max(n);

	*out = NULL;
	*len = 0;
	if (size > max + 2) {
		snprintf(why, whylen, "%s is over %zu bytes", name, max);
		return false;
	}
	if (!(*out = malloc(size + 1))) {
		snprintf(why, whylen, "out of memory");
		return false;
	}
	if (!base64_decode(v ? json_object_get_string(v) : "", n, (uint8_t *)*out, size, len) ||
	    *len > max) {
		snprintf(why, whylen, *len > max ? "%s is over %zu bytes" : "%s is not base64",
			 name, max);
		free(*out);
		*out = NULL;
		return false;
	}
	(*out)[*len] = '\0';
	return true;
}

/* Does kv name key? */
static bool kv_is(struct json_object *kv, const char *key, char *why, size_t whylen)
{
	char *k;
	size_t n;
	bool same;

	if (!get_bytes(kv, "key", &k, &n, ETCD_KEY_MAX, why, whylen))
		return false;
	same = n == strlen(key) && memcmp(k, key, n) == 0;
	free(k);
	return same;
}

/* A kv object into out (found, mod_revision, text). */
static bool read_kv(struct json_object *kv, struct etcd_value *out, char *why, size_t whylen)
{
	if (!get_int64(kv, "mod_revision", &out->mod_revision)) {
		snprintf(why, whylen, "mod_revision is not a revision");
		return false;
	}
	out->found = true;
	return get_bytes(kv, "value", &out->text, &out->len, ETCD_VALUE_MAX, why, whylen);
}

/* Parse len bytes as one JSON object; NULL (why) when they are not one or say "error". */
static struct json_object *parse_object(const char *text, size_t len, char *why, size_t whylen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o, *err;

	if (!tok) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	o = len > (size_t)INT32_MAX ? NULL : json_tokener_parse_ex(tok, text, (int)len);
	if (o && json_tokener_get_parse_end(tok) < len &&
	    strspn(text + json_tokener_get_parse_end(tok), " \r\n") <
		    len - json_tokener_get_parse_end(tok)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(why, whylen, "the answer is not a JSON object");
		json_object_put(o);
		return NULL;
	}
	if (json_object_object_get_ex(o, "error", &err)) {
		struct json_object *msg = member(o, "message", json_type_string);

		if (!msg && json_object_is_type(err, json_type_object))
			msg = member(err, "message", json_type_string);
		snprintf(why, whylen, "etcd says: %.200s",
			 msg ? json_object_get_string(msg) : json_object_to_json_string(err));
		json_object_put(o);
		return NULL;
	}
	return o;
}

static bool read_header(struct json_object *o, struct etcd_value *out, char *why, size_t whylen)
{
	struct json_object *h = member(o, "header", json_type_object);

	if (!h || !get_int64(h, "revision", &out->revision)) {
		snprintf(why, whylen, "the answer has no header revision");
		return false;
	}
	return true;
}

bool shard_etcd_parse_range(const char *body, size_t len, const char *key, struct etcd_value *out,
			    char *why, size_t whylen)
{
	struct json_object *o = parse_object(body, len, why, whylen), *kvs;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (!o)
		return false;
	ok = read_header(o, out, why, whylen);
	kvs = member(o, "kvs", json_type_array);
	for (size_t i = 0; ok && kvs && i < json_object_array_length(kvs) && !out->found; i++) {
		struct json_object *kv = json_object_array_get_idx(kvs, i);

		if (kv_is(kv, key, why, whylen))
			ok = read_kv(kv, out, why, whylen);
	}
	json_object_put(o);
	if (!ok)
		shard_etcd_value_clear(out);
	return ok;
}

size_t shard_etcd_next_line(const char *buf, size_t len)
{
	const char *nl = memchr(buf, '\n', len);

	return nl ? (size_t)(nl - buf) + 1 : 0;
}

/* The last event of events that is about key decides the value; none: PROGRESS. */
static bool read_events(struct json_object *events, const char *key, struct etcd_watch_msg *out,
			char *why, size_t whylen)
{
	struct json_object *last = NULL;
	bool deleted = false;

	for (size_t i = 0; i < json_object_array_length(events); i++) {
		struct json_object *ev = json_object_array_get_idx(events, i);
		struct json_object *kv = member(ev, "kv", json_type_object);
		struct json_object *type = member(ev, "type", json_type_string);

		if (!kv)
			continue;
		why[0] = '\0';
		if (key && !kv_is(kv, key, why, whylen)) {
			if (why[0])
				return false;
			continue;
		}
		last = kv;
		/* PUT is etcd's zero value, left out of the JSON. */
		deleted = type && strcmp(json_object_get_string(type), "DELETE") == 0;
	}
	if (!last)
		return true;
	out->kind = ETCD_WATCH_EVENTS;
	if (deleted)
		return get_int64(last, "mod_revision", &out->value.mod_revision);
	return read_kv(last, &out->value, why, whylen);
}

/* The body of a watch line: "result" as etcd writes it, or the bare object. */
static bool read_watch(struct json_object *r, const char *key, struct etcd_watch_msg *out,
		       char *why, size_t whylen)
{
	struct json_object *flag, *events;

	read_header(r, &out->value, why, whylen); /* a canceled watch may come without one */
	if ((flag = member(r, "canceled", json_type_boolean)) && json_object_get_boolean(flag)) {
		out->kind = ETCD_WATCH_CANCELED;
		if (!get_int64(r, "compact_revision", &out->compact_revision))
			out->compact_revision = 0;
		flag = member(r, "cancel_reason", json_type_string);
		snprintf(why, whylen, "%s",
			 flag                    ? json_object_get_string(flag)
			 : out->compact_revision ? "compacted"
						 : "canceled");
		return true;
	}
	if ((flag = member(r, "created", json_type_boolean)) && json_object_get_boolean(flag)) {
		out->kind = ETCD_WATCH_CREATED;
		return true;
	}
	out->kind = ETCD_WATCH_PROGRESS;
	events = member(r, "events", json_type_array);
	return !events || read_events(events, key, out, why, whylen);
}

bool shard_etcd_parse_watch(const char *line, size_t len, const char *key,
			    struct etcd_watch_msg *out, char *why, size_t whylen)
{
	struct json_object *o = parse_object(line, len, why, whylen), *r;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (!o)
		return false;
	r = member(o, "result", json_type_object);
	ok = read_watch(r ? r : o, key, out, why, whylen);
	json_object_put(o);
	if (!ok)
		shard_etcd_value_clear(&out->value);
	return ok;
}

/* ---- several pgmux sharing one map key ---- */

/* value[0..len) in base64, malloc'd; NULL: out of memory. */
static char *bytes64(const char *value, size_t len)
{
	size_t size = base64_encoded_len(len) + 1;
	char *out = malloc(size);

	if (out && !base64_encode((const uint8_t *)value, len, out, size, NULL)) {
		free(out);
		out = NULL;
	}
	return out;
}

char *shard_etcd_grant_request(int ttl)
{
	char *body;

	return asprintf(&body, "{\"TTL\":\"%d\"}", ttl) < 0 ? NULL : body;
}

char *shard_etcd_keepalive_request(int64_t id)
{
	char *body;

	return asprintf(&body, "{\"ID\":\"%" PRId64 "\"}", id) < 0 ? NULL : body;
}

char *shard_etcd_revoke_request(int64_t id)
{
	return shard_etcd_keepalive_request(id); /* the same body: the lease's id */
}

bool shard_etcd_parse_lease(const char *body, size_t len, int64_t *id, int64_t *ttl, char *why,
			    size_t whylen)
{
	/* A keepalive answers as a stream: its first line is the answer. */
	size_t line = shard_etcd_next_line(body, len);
	struct json_object *o = parse_object(body, line ? line : len, why, whylen), *r;
	bool ok;

	*id = *ttl = 0;
	if (!o)
		return false;
	r = member(o, "result", json_type_object);
	ok = get_int64(r ? r : o, "ID", id) && get_int64(r ? r : o, "TTL", ttl) && *id != 0;
	if (!ok)
		snprintf(why, whylen, "the answer names no lease");
	json_object_put(o);
	return ok;
}

char *shard_etcd_put_request(const char *key, const char *value, size_t len, int64_t lease)
{
	char *k = key64(key), *v = bytes64(value, len), *body = NULL;

	if (k && v &&
	    asprintf(&body, "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%" PRId64 "\"}", k, v,
		     lease) < 0)
		body = NULL;
	free(k);
	free(v);
	return body;
}

char *shard_etcd_cas_request(const char *key, int64_t mod_revision, const char *value, size_t len)
{
	char *k = key64(key), *v = bytes64(value, len), *body = NULL;

	if (k && v &&
	    asprintf(&body,
		     "{\"compare\":[{\"target\":\"MOD\",\"key\":\"%s\",\"mod_revision\":\"%" PRId64
		     "\",\"result\":\"EQUAL\"}],\"success\":[{\"request_put\":{\"key\":\"%s\","
		     "\"value\":\"%s\"}}]}",
		     k, mod_revision, k, v) < 0)
		body = NULL;
	free(k);
	free(v);
	return body;
}

bool shard_etcd_parse_txn(const char *body, size_t len, bool *succeeded, char *why, size_t whylen)
{
	struct json_object *o = parse_object(body, len, why, whylen), *flag;
	struct etcd_value v = { 0 };
	bool ok;

	*succeeded = false;
	if (!o)
		return false;
	ok = read_header(o, &v, why, whylen);
	/* false is protobuf's zero value: etcd leaves it out. */
	flag = member(o, "succeeded", json_type_boolean);
	*succeeded = ok && flag && json_object_get_boolean(flag);
	json_object_put(o);
	return ok;
}

/* prefix with its last byte plus one (carrying past 0xff), base64; NULL: no memory. */
static char *range_end64(const char *prefix)
{
	size_t n = strlen(prefix);
	char *end = strdup(prefix), *out;

	if (!end)
		return NULL;
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		free(end);
		return strdup("AA=="); /* "\0": every key */
	}
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	out = bytes64(end, n);
	free(end);
	return out;
}

char *shard_etcd_prefix_request(const char *prefix)
{
	char *k = key64(prefix), *e = range_end64(prefix), *body = NULL;

	if (k && e && asprintf(&body, "{\"key\":\"%s\",\"range_end\":\"%s\"}", k, e) < 0)
		body = NULL;
	free(k);
	free(e);
	return body;
}

char *shard_etcd_watch_prefix_request(const char *prefix, int64_t start_revision)
{
	char *k = key64(prefix), *e = range_end64(prefix), *body = NULL;

	if (k && e &&
	    asprintf(&body,
		     "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
		     "\"start_revision\":\"%" PRId64 "\"}}",
		     k, e, start_revision) < 0)
		body = NULL;
	free(k);
	free(e);
	return body;
}

char *shard_etcd_delete_request(const char *key)
{
	char *k = key64(key), *body = NULL;

	if (k && asprintf(&body, "{\"key\":\"%s\"}", k) < 0)
		body = NULL;
	free(k);
	return body;
}

void shard_etcd_kvs_clear(struct etcd_kvs *out)
{
	for (int i = 0; i < out->n; i++) {
		free(out->kvs[i].key);
		free(out->kvs[i].value);
	}
	free(out->kvs);
	memset(out, 0, sizeof(*out));
}

/* One kv of a prefix range into out. */
static bool read_prefix_kv(struct json_object *kv, const char *prefix, struct etcd_kv *out,
			   char *why, size_t whylen)
{
	size_t n;

	if (!get_bytes(kv, "key", &out->key, &n, ETCD_KEY_MAX, why, whylen))
		return false;
	if (n != strlen(out->key) || strncmp(out->key, prefix, strlen(prefix)) != 0) {
		snprintf(why, whylen, "a key outside the prefix asked for");
		return false;
	}
	if (!get_int64(kv, "mod_revision", &out->mod_revision)) {
		snprintf(why, whylen, "mod_revision is not a revision");
		return false;
	}
	return get_bytes(kv, "value", &out->value, &out->len, ETCD_VALUE_MAX, why, whylen);
}

bool shard_etcd_parse_prefix(const char *body, size_t len, const char *prefix, struct etcd_kvs *out,
			     char *why, size_t whylen)
{
	struct json_object *o = parse_object(body, len, why, whylen), *kvs;
	struct etcd_value v = { 0 };
	size_t n;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (!o)
		return false;
	ok = read_header(o, &v, why, whylen);
	out->revision = v.revision;
	kvs = member(o, "kvs", json_type_array);
	n = kvs ? json_object_array_length(kvs) : 0;
	if (ok && n && !(out->kvs = calloc(n, sizeof(*out->kvs)))) {
		snprintf(why, whylen, "out of memory");
		ok = false;
	}
	for (size_t i = 0; ok && i < n; i++) {
		ok = read_prefix_kv(json_object_array_get_idx(kvs, i), prefix, &out->kvs[i], why,
				    whylen);
		out->n++;
	}
	json_object_put(o);
	return ok;
}

static const char *const move_steps[] = { "hold", "done", "aborted" };

const char *shard_etcd_move_step_name(enum etcd_move_step s)
{
	return (unsigned)s < 3 ? move_steps[s] : "?";
}

char *shard_etcd_move_format(const struct etcd_move *m)
{
	char *text;

	if (asprintf(&text, "buckets %s from %s to %s step %s version %" PRIu64 " coordinator %s",
		     m->buckets, m->from, m->to, shard_etcd_move_step_name(m->step), m->version,
		     m->coordinator) < 0)
		return NULL;
	return text;
}

bool shard_etcd_move_parse(const char *text, struct etcd_move *out, char *why, size_t whylen)
{
	char step[16];
	int used = 0;

	memset(out, 0, sizeof(*out));
	if (sscanf(text,
		   "buckets %255s from %63s to %63s step %15s version %" SCNu64
		   " coordinator %127s%n",
		   out->buckets, out->from, out->to, step, &out->version, out->coordinator,
		   &used) != 6 ||
	    text[used] != '\0') {
		snprintf(why, whylen, "not a move record: %.80s", text);
		return false;
	}
	for (int s = 0; s < 3; s++) {
		if (strcmp(step, move_steps[s]) == 0) {
			out->step = (enum etcd_move_step)s;
			return true;
		}
	}
	snprintf(why, whylen, "a move record with step %s", step);
	return false;
}
