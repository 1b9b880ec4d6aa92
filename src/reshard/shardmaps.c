/*
 * reshard/shardmaps: the shard map in force per [shards.NAME] section (see reshard/shardmaps.h).
 *
 * One feed per section whose map is in etcd. A feed is always in one phase: RANGE (a read is
 * out), WATCH (the watch stream is open) or WAIT (a retry is timed). Its map in force only ever
 * changes in consider(), to a map that config_shard_map_from_text() accepted for the section in
 * force; the text it came from is kept, so that a RELOAD can check the same map against the
 * changed section. An outage is logged when it starts and when it ends, never per retry.
 */
#include "reshard/shardmaps.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/list.h"
#include "core/log.h"
#include "ev/http.h"
#include "ev/loop.h"
#include "reshard/reshard.h"
#include "shard/etcd.h"
#include "shard/map.h"

#define BACKOFF_FIRST 0.5 /* seconds before the first retry */
#define BACKOFF_MAX 5.0
#define REQUEST_TIMEOUT 5.0 /* a read, whole; a watch, its connection */
#define WHY_MAX 320

enum feed_phase { FEED_RANGE, FEED_WATCH, FEED_WAIT };

struct etcd_feed {
	struct list_node node; /* in shard_maps.feeds */
	struct shard_maps *sm;
	char *name;   /* the section's */
	char *source; /* its map = value */
	struct etcd_source src;
	int endpoint; /* the one in use, into src.endpoints */
	int failed;   /* endpoints failed in a row, this round */
	enum feed_phase phase;
	struct loaded_shard_map *map; /* in force; NULL: none yet */
	char *text;                   /* map's text */
	size_t len;
	int64_t map_revision; /* etcd's mod_revision of map */
	int64_t revision;     /* the store's revision last seen */
	double backoff;
	struct evloop_timer retry;
	time_t down_since; /* 0: etcd answers */
	char down_why[WHY_MAX];
	char problem[WHY_MAX + 80]; /* the last value not taken, and why; "" none */
};

struct shard_maps {
	struct reshard *rs;
	struct http *http;      /* every feed's requests */
	struct list_node feeds; /* struct etcd_feed */
};

static void feed_read(struct etcd_feed *f);

static uint64_t version_of(const struct etcd_feed *f)
{
	return f->map ? f->map->map->version : 0;
}

/* ---- outages ---- */

/* etcd answered: end an outage, and the back-off. */
static void note_up(struct etcd_feed *f)
{
	if (f->down_since)
		log_info("shards.%s: etcd %s answers again after %lld s", f->name,
			 f->src.endpoints[f->endpoint], (long long)(time(NULL) - f->down_since));
	f->down_since = 0;
	f->failed = 0;
	f->backoff = BACKOFF_FIRST;
}

static void note_down(struct etcd_feed *f, const char *why);

static void on_retry(void *arg)
{
	struct etcd_feed *f = arg;

	evloop_timer_stop(f->sm->rs->loop, &f->retry);
	feed_read(f);
}

/*
 * A read or the watch failed: try the next endpoint at once; when every one failed in turn, an
 * outage starts (said once) and the round is retried after the back-off.
 */
static void feed_failed(struct etcd_feed *f, const char *why)
{
	struct evloop *loop = f->sm->rs->loop;
	double delay = 0;

	http_cancel(f->sm->http, f);
	f->phase = FEED_WAIT;
	if (++f->failed >= f->src.n_endpoints) {
		f->failed = 0;
		delay = f->backoff;
		f->backoff = f->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : f->backoff * 2;
		note_down(f, why);
	}
	f->endpoint = (f->endpoint + 1) % f->src.n_endpoints;
	evloop_timer_stop(loop, &f->retry);
	if (!evloop_timer_start(loop, &f->retry, delay, on_retry, f))
		log_error("shards.%s: out of memory: etcd is not retried", f->name);
}

/* Every endpoint failed: an outage, logged when it starts. */
static void note_down(struct etcd_feed *f, const char *why)
{
	if (!f->down_since) {
		f->down_since = time(NULL);
		snprintf(f->down_why, sizeof(f->down_why), "%s", why);
		if (f->map)
			log_warning(
				"shards.%s: etcd %s unreachable (%s): keeping map version %" PRIu64
				", retrying",
				f->name, f->src.endpoints[f->endpoint], why, version_of(f));
		else
			log_warning("shards.%s: etcd %s unreachable (%s): no map in force yet, "
				    "retrying",
				    f->name, f->src.endpoints[f->endpoint], why);
	}
}

/* ---- values ---- */

/* A value etcd offers and is not taken: the map in force stays; say why once per value. */
static void refuse(struct etcd_feed *f, int64_t rev, const char *why)
{
	char problem[sizeof(f->problem)];

	snprintf(problem, sizeof(problem), "refused revision %" PRId64 ": %.*s", rev, WHY_MAX, why);
	if (strcmp(problem, f->problem) == 0)
		return;
	snprintf(f->problem, sizeof(f->problem), "%s", problem);
	log_warning("shards.%s: etcd key %s: map at revision %" PRId64 " refused: %s; %s", f->name,
		    f->src.key, rev, why,
		    f->map ? "the map in force stays" : "no map in force yet");
}

/* Is l (valid for the section) a step back from the map in force? why says how. */
static bool goes_back(const struct etcd_feed *f, const struct loaded_shard_map *l, char *why,
		      size_t whylen)
{
	const struct shard_map *now = f->map ? f->map->map : NULL, *m = l->map;

	if (!now || m->version >= now->version || m->checksum == now->checksum)
		return false;
	snprintf(why, whylen, "version %" PRIu64 " is lower than version %" PRIu64 " in force",
		 m->version, now->version);
	return true;
}

/* Put l (from text, which the feed takes) in force. */
static void take(struct etcd_feed *f, struct loaded_shard_map *l, struct etcd_value *v)
{
	const struct shard_map *m = l->map;
	char was[32];

	if (f->map && f->map->map->version == m->version && f->map->map->checksum != m->checksum)
		log_warning("shards.%s: map version %" PRIu64 " changed without a new version",
			    f->name, m->version);
	snprintf(was, sizeof(was), f->map ? "version %" PRIu64 : "none", version_of(f));
	log_info("shards.%s: map version %" PRIu64 " checksum %016" PRIx64 " from etcd revision "
		 "%" PRId64 " in force (was %s)",
		 f->name, m->version, m->checksum, v->mod_revision, was);
	config_shard_map_unref(f->map);
	free(f->text);
	f->map = l;
	f->text = v->text;
	f->len = v->len;
	v->text = NULL;
	f->map_revision = v->mod_revision;
	f->problem[0] = '\0';
}

/* etcd holds v for the key: take it if it is valid and no step back. */
static void consider(struct etcd_feed *f, struct etcd_value *v)
{
	const struct shards_entry *set = config_find_shards(*f->sm->rs->cfg, f->name);
	struct loaded_shard_map *l;
	char why[WHY_MAX];

	if (f->map && v->mod_revision == f->map_revision)
		return; /* read again after an outage: the one in force */
	l = set ? config_shard_map_from_text(set, v->text, v->len, why, sizeof(why)) : NULL;
	if (!l) {
		refuse(f, v->mod_revision, set ? why : "the section is gone");
		return;
	}
	if (goes_back(f, l, why, sizeof(why))) {
		config_shard_map_unref(l);
		refuse(f, v->mod_revision, why);
		return;
	}
	take(f, l, v);
}

/* The key is not there (never written, or deleted at rev). */
static void note_absent(struct etcd_feed *f, int64_t rev)
{
	char why[WHY_MAX];

	if (f->map)
		snprintf(why, sizeof(why), "key deleted at revision %" PRId64, rev);
	else
		snprintf(why, sizeof(why), "key %.100s not found", f->src.key);
	if (strcmp(why, f->problem) == 0)
		return;
	snprintf(f->problem, sizeof(f->problem), "%s", why);
	log_warning("shards.%s: etcd %s: %s; %s", f->name, f->src.endpoints[f->endpoint], why,
		    f->map ? "keeping the map in force" : "no map in force until it is written");
}

/* ---- reading and watching ---- */

static void url_of(const struct etcd_feed *f, const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", f->src.endpoints[f->endpoint], path);
}

static void opts(struct http_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout = REQUEST_TIMEOUT;
	o->verify = true;
	o->max_body = ETCD_ANSWER_MAX;
}

/* A watch line: what etcd says of the key now. False: the watch is over (f was told). */
static bool watch_line(struct etcd_feed *f, const char *line, size_t len)
{
	struct etcd_watch_msg m;
	char why[WHY_MAX];

	if (!shard_etcd_parse_watch(line, len, f->src.key, &m, why, sizeof(why))) {
		feed_failed(f, why);
		return false;
	}
	if (m.value.revision > f->revision)
		f->revision = m.value.revision;
	if (m.kind == ETCD_WATCH_CREATED)
		note_up(f);
	if (m.kind == ETCD_WATCH_EVENTS && m.value.found)
		consider(f, &m.value);
	else if (m.kind == ETCD_WATCH_EVENTS)
		note_absent(f, m.value.mod_revision);
	shard_etcd_value_clear(&m.value);
	if (m.kind != ETCD_WATCH_CANCELED)
		return true;
	/* Compacted past what we asked for: the key may have changed meanwhile, read it again. */
	log_info("shards.%s: etcd ended the watch (%s): reading the key again", f->name, why);
	http_cancel(f->sm->http, f);
	feed_read(f);
	return false;
}

static size_t on_watch_data(void *arg, int status, const char *data, size_t len)
{
	struct etcd_feed *f = arg;
	size_t used = 0, n;

	if (status != 200)
		return len; /* the end says what went wrong */
	while ((n = shard_etcd_next_line(data + used, len - used))) {
		if (!watch_line(f, data + used, n))
			return len;
		used += n;
	}
	return used;
}

static void on_watch_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct etcd_feed *f = arg;
	char why[WHY_MAX];

	if (error)
		snprintf(why, sizeof(why), "the watch broke: %s", error);
	else if (status != 200)
		snprintf(why, sizeof(why), "the watch got HTTP %d", status);
	else
		snprintf(why, sizeof(why), "the watch ended");
	feed_failed(f, why);
}

static void feed_watch(struct etcd_feed *f)
{
	char url[ETCD_URL_MAX + 16], *body = shard_etcd_watch_request(f->src.key, f->revision + 1);
	struct http_opts o;

	opts(&o);
	url_of(f, "/v3/watch", url, sizeof(url));
	f->phase = FEED_WATCH;
	if (!body ||
	    !http_stream(f->sm->http, url, body, strlen(body), &o, on_watch_data, on_watch_done, f))
		feed_failed(f, "out of memory");
	free(body);
}

static void on_range(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct etcd_feed *f = arg;
	struct etcd_value v;
	char why[WHY_MAX];

	if (error || status != 200) {
		if (!error)
			snprintf(why, sizeof(why), "HTTP %d: %.80s", status, body);
		feed_failed(f, error ? error : why);
		return;
	}
	if (!shard_etcd_parse_range(body, len, f->src.key, &v, why, sizeof(why))) {
		feed_failed(f, why);
		return;
	}
	note_up(f);
	f->revision = v.revision;
	if (v.found)
		consider(f, &v);
	else
		note_absent(f, v.revision);
	shard_etcd_value_clear(&v);
	feed_watch(f);
}

static void feed_read(struct etcd_feed *f)
{
	char url[ETCD_URL_MAX + 16], *body = shard_etcd_range_request(f->src.key);
	struct http_opts o;

	opts(&o);
	url_of(f, "/v3/kv/range", url, sizeof(url));
	f->phase = FEED_RANGE;
	if (!body || !http_post(f->sm->http, url, body, strlen(body), &o, on_range, f))
		feed_failed(f, "out of memory");
	free(body);
}

/* ---- feeds across configs ---- */

static void feed_free(struct etcd_feed *f)
{
	http_cancel(f->sm->http, f);
	evloop_timer_stop(f->sm->rs->loop, &f->retry);
	list_del(&f->node);
	config_shard_map_unref(f->map);
	free(f->text);
	free(f->name);
	free(f->source);
	free(f);
}

static struct etcd_feed *find_feed(struct list_node *feeds, const char *name)
{
	struct list_node *n;

	for (n = feeds->next; n != feeds; n = n->next) {
		struct etcd_feed *f = list_entry(n, struct etcd_feed, node);

		if (strcmp(f->name, name) == 0)
			return f;
	}
	return NULL;
}

/* The old feed's map, if it still fits set, goes on in force in f. */
static void carry_over(struct etcd_feed *f, struct etcd_feed *old, const struct shards_entry *set)
{
	char why[WHY_MAX];

	if (!old || strcmp(old->source, f->source) != 0 || !old->map)
		return;
	f->map = config_shard_map_from_text(set, old->text, old->len, why, sizeof(why));
	if (!f->map) {
		log_warning("shards.%s: map version %" PRIu64
			    " does not fit the changed section (%s):"
			    " none in force until etcd offers one that does",
			    f->name, version_of(old), why);
		return;
	}
	f->text = old->text;
	f->len = old->len;
	old->text = NULL;
	f->map_revision = old->map_revision;
}

static struct etcd_feed *feed_new(struct shard_maps *sm, const struct shards_entry *set)
{
	struct etcd_feed *f = calloc(1, sizeof(*f));
	char why[300];

	if (!f)
		return NULL;
	list_init(&f->node);
	f->sm = sm;
	f->backoff = BACKOFF_FIRST;
	f->name = strdup(set->name);
	f->source = strdup(set->map);
	if (!f->name || !f->source ||
	    !shard_etcd_parse_source(set->map, &f->src, why, sizeof(why))) {
		free(f->name);
		free(f->source);
		free(f);
		return NULL;
	}
	return f;
}

static bool uses_etcd(const struct config *cfg)
{
	for (int i = 0; i < cfg->n_shard_sets; i++) {
		if (config_shard_map_in_etcd(&cfg->shard_sets[i]))
			return true;
	}
	return false;
}

static struct shard_maps *shard_maps_new(struct reshard *rs)
{
	struct shard_maps *sm = calloc(1, sizeof(*sm));

	if (!sm || !(sm->http = http_new(rs->loop))) {
		free(sm);
		return NULL;
	}
	sm->rs = rs;
	list_init(&sm->feeds);
	return sm;
}

/* Every node of from moves to to (empty before), in order. */
static void move_all(struct list_node *from, struct list_node *to)
{
	struct list_node *n;

	while ((n = list_first(from))) {
		list_del(n);
		list_add_tail(to, n);
	}
}

void reshard_maps_apply(struct reshard *rs)
{
	struct shard_maps *sm = rs->shard_maps;
	const struct config *cfg = *rs->cfg;
	struct list_node old, *n;

	if (!sm && uses_etcd(cfg) && !(sm = rs->shard_maps = shard_maps_new(rs)))
		log_error("out of memory: shard maps in etcd are not read");
	if (!sm)
		return;
	list_init(&old);
	move_all(&sm->feeds, &old);
	for (int i = 0; i < cfg->n_shard_sets; i++) {
		const struct shards_entry *set = &cfg->shard_sets[i];
		struct etcd_feed *f;

		if (!config_shard_map_in_etcd(set))
			continue;
		if (!(f = feed_new(sm, set))) {
			log_error("shards.%s: out of memory: its map in etcd is not read",
				  set->name);
			continue;
		}
		carry_over(f, find_feed(&old, set->name), set);
		list_add_tail(&sm->feeds, &f->node);
		feed_read(f);
	}
	while ((n = list_first(&old)))
		feed_free(list_entry(n, struct etcd_feed, node));
}

void reshard_maps_free(struct reshard *rs)
{
	struct shard_maps *sm = rs->shard_maps;
	struct list_node *n;

	if (!sm)
		return;
	while ((n = list_first(&sm->feeds)))
		feed_free(list_entry(n, struct etcd_feed, node));
	http_free(sm->http, true);
	free(sm);
	rs->shard_maps = NULL;
}

/* ---- what the router and SHOW SHARDS see ---- */

static struct etcd_feed *feed_of(struct reshard *rs, const struct shards_entry *set)
{
	struct shard_maps *sm = rs->shard_maps;

	return sm ? find_feed(&sm->feeds, set->name) : NULL;
}

const struct loaded_shard_map *reshard_shard_map(struct reshard *rs, const struct shards_entry *set)
{
	struct etcd_feed *f;

	if (!config_shard_map_in_etcd(set))
		return set->loaded;
	f = feed_of(rs, set);
	return f ? f->map : NULL;
}

int64_t reshard_shard_map_revision(struct reshard *rs, const struct shards_entry *set)
{
	struct etcd_feed *f = config_shard_map_in_etcd(set) ? feed_of(rs, set) : NULL;

	return f && f->map ? f->map_revision : 0;
}

/* "keeping map version N" or "no map yet". */
static const char *keeping(const struct etcd_feed *f, char *buf, size_t len)
{
	if (f->map)
		snprintf(buf, len, "keeping map version %" PRIu64, version_of(f));
	else
		snprintf(buf, len, "no map yet");
	return buf;
}

const char *reshard_shard_map_state(struct reshard *rs, const struct shards_entry *set, char *buf,
				    size_t len)
{
	struct etcd_feed *f = config_shard_map_in_etcd(set) ? feed_of(rs, set) : NULL;
	char since[32], keep[48];

	if (!config_shard_map_in_etcd(set))
		snprintf(buf, len, "file");
	else if (!f)
		snprintf(buf, len, "etcd: not read (out of memory)");
	else if (f->down_since) {
		strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", localtime(&f->down_since));
		snprintf(buf, len, "etcd unreachable since %s: %s (%s)", since,
			 keeping(f, keep, sizeof(keep)), f->down_why);
	} else if (f->problem[0])
		snprintf(buf, len, "etcd: %s, %s", keeping(f, keep, sizeof(keep)), f->problem);
	else if (f->map)
		snprintf(buf, len, "etcd revision %" PRId64 ", %s", f->map_revision,
			 f->phase == FEED_WATCH ? "watching" : "reading");
	else
		snprintf(buf, len, "etcd: reading %s key %s", f->src.endpoints[f->endpoint],
			 f->src.key);
	return buf;
}
