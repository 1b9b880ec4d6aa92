/*
 * reshard/movecoord: moves coordinated through etcd by every pgmux sharing a map key (see
 * reshard/movecoord.h).
 *
 * One site per etcd-mapped section. A site has at most one lease request, one read of its
 * prefix and one write out at a time; writes wait in a short queue (each is small). Holds of
 * moves that other instances coordinate live in the site; a held client is in exactly one
 * hold's array, and is resumed when that hold is released (whichever way).
 */
#include "reshard/movecoord.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/shard.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/list.h"
#include "core/log.h"
#include "ev/http.h"
#include "ev/loop.h"
#include "reshard/mover.h"
#include "reshard/reshard.h"
#include "reshard/shardmaps.h"
#include "shard/etcd.h"
#include "shard/map.h"

#define REQUEST_TIMEOUT 5.0
#define KEEPALIVE_EVERY 3.0 /* seconds between renewals of a MOVECOORD_LEASE_TTL lease */
#define WRITES_MAX 16
#define READ_EVERY_WATCHED 1.0 /* seconds between reads while the watch says what changes */
/* Seconds before the lease's expiry that an instance stops counting on its registration. */
#define FENCE_MARGIN 2.0

/* Walk a list whose nodes stay where they are during the walk. */
#define for_each_node(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* A move another instance coordinates, held here. */
struct remote_hold {
	struct list_node node;
	char name[64];
	struct etcd_move rec;
	struct move_range ranges[MOVE_RANGES_MAX];
	int n_ranges;
	uint64_t since_us;
	bool confirm_sent; /* from then on it holds until etcd tells the outcome */
	bool over;         /* the last read said done or aborted, or had no record */
	bool released;
	struct client **held;
	int n_held, cap_held;
};

enum write_kind { WRITE_PUT, WRITE_DELETE, WRITE_CAS };

struct write {
	enum write_kind kind;
	char *body;
	char what[160];
	char own[64];                 /* a hold's record: the own move it is of ("" none) */
	int64_t lease;                /* the lease the key is put under (0: none) */
	reshard_coord_switch_fn done; /* CAS only */
	void *arg;
};

/* A move this instance coordinates: what its confirmations are counted against. */
struct own_move {
	char name[64];
	struct etcd_move rec;
	bool written;        /* the record (step hold) is in etcd */
	uint64_t written_us; /* when etcd said so: only reads sent later count */
	int got, want;
	/*
	 * The instances registered in the first read after the record was written: each must
	 * confirm, even if its registration expires meanwhile (a stopped process's does).
	 */
	char (*expect)[128];
	int n_expect;
};

struct site {
	struct list_node node;
	struct movecoords *mc;
	char *name, *source;
	struct etcd_source src;
	int endpoint;
	char self[128]; /* this instance's id */
	int64_t lease;  /* 0: none yet */
	bool lease_out, read_out, write_out, registered;
	uint64_t renewed_us;    /* when the lease was granted or last renewed */
	uint64_t lease_sent_us; /* when the lease request out (or last answered) was sent */
	uint64_t valid_from_us; /* the lease in force lasts TTL from this, at least */
	uint64_t read_sent_us;  /* when the read out (or last answered) was sent */
	int64_t map_revision;   /* the map key's mod_revision in the last read */
	struct etcd_kvs last;   /* the last read */
	struct list_node holds;
	struct own_move own[4];
	int n_own;
	struct write writes[WRITES_MAX];
	int n_writes;
	bool down;                /* etcd failed: said once */
	uint64_t write_retry_us;  /* a failed put or delete goes again from then */
	bool watch_out, watching; /* the watch of the prefix: asked for, in place */
	bool reread;              /* a change came while a read was out: read again after it */
	char refused[4][64];      /* states not adopted (logged why): not tried at every read */
	int n_refused;
	/* request contexts: http_cancel() finds a site's requests by these */
	char lease_ctx, read_ctx, write_ctx, watch_ctx;
};

struct movecoords {
	struct reshard *rs;
	struct http *http;
	struct list_node sites;
	struct evloop_timer timer;
	bool ticking;
	/* leaving at exit (reshard_coord_leave) */
	int revokes_out;
	void (*left)(void *arg);
	void *left_arg;
	struct evloop_timer leave_timer;
	bool leave_timing;
};

static struct site *site_of_ctx(void *ctx, size_t offset)
{
	return (struct site *)((char *)ctx - offset);
}

static void url_of(const struct site *s, const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", s->src.endpoints[s->endpoint], path);
}

static void opts(struct http_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout = REQUEST_TIMEOUT;
	o->verify = true;
	o->max_body = ETCD_ANSWER_MAX;
}

/* etcd failed a request: next endpoint; said once per outage. */
static void site_down(struct site *s, const char *what, const char *why)
{
	if (!s->down)
		log_warning("shards.%s: etcd %s: %s failed: %s (moves cannot be coordinated "
			    "until it answers)",
			    s->name, s->src.endpoints[s->endpoint], what, why);
	s->down = true;
	s->endpoint = (s->endpoint + 1) % s->src.n_endpoints;
}

static void site_up(struct site *s)
{
	if (s->down)
		log_info("shards.%s: etcd %s answers again", s->name,
			 s->src.endpoints[s->endpoint]);
	s->down = false;
}

/* ---- writes ---- */

static void write_next(struct site *s);

static bool queue_write(struct site *s, enum write_kind kind, char *body, const char *what,
			const char *own, reshard_coord_switch_fn done, void *arg)
{
	if (!body || s->n_writes == WRITES_MAX) {
		free(body);
		log_warning("shards.%s: %s not written to etcd (%s)", s->name, what,
			    body ? "too many writes waiting" : "out of memory");
		return false;
	}
	s->writes[s->n_writes++] = (struct write){
		.kind = kind, .body = body, .lease = s->lease, .done = done, .arg = arg
	};
	snprintf(s->writes[s->n_writes - 1].what, sizeof(s->writes[0].what), "%s", what);
	snprintf(s->writes[s->n_writes - 1].own, sizeof(s->writes[0].own), "%s", own);
	write_next(s);
	return true;
}

/* The first write is over: drop it from the queue. */
static struct write pop_write(struct site *s)
{
	struct write wr = s->writes[0];

	memmove(&s->writes[0], &s->writes[1], (size_t)(--s->n_writes) * sizeof(s->writes[0]));
	return wr;
}

static void on_write(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct site *s = site_of_ctx(arg, offsetof(struct site, write_ctx));
	char why[300] = "";
	bool ok = !error && status == 200, switched = false;
	struct write wr;

	s->write_out = false;
	/*
	 * A put or a delete that failed goes again (the same bytes: no harm if the first one
	 * landed) for as long as the lease it names is this instance's (a record's end must reach
	 * the instances that hold for it), or always if it names none (a move's state). A switch
	 * is never sent twice.
	 */
	if (!ok && s->writes[0].kind != WRITE_CAS &&
	    (s->writes[0].lease == 0 || s->writes[0].lease == s->lease)) {
		site_down(s, s->writes[0].what, error ? error : body);
		s->write_retry_us = clock_now_us() + (uint64_t)(MOVECOORD_POLL * 1e6);
		return;
	}
	wr = pop_write(s);
	if (!ok)
		snprintf(why, sizeof(why), "%s", error ? error : "HTTP error");
	if (ok && wr.kind == WRITE_CAS &&
	    !shard_etcd_parse_txn(body, len, &switched, why, sizeof(why)))
		ok = false;
	if (!ok)
		site_down(s, wr.what, error ? error : why[0] ? why : body);
	else
		site_up(s);
	if (wr.kind == WRITE_CAS) {
		if (ok && !switched)
			snprintf(why, sizeof(why),
				 "the map in etcd changed since it was read: not switched");
		else if (!ok && error)
			snprintf(why, sizeof(why), "etcd did not answer the switch (%.200s)",
				 error);
		else if (!ok)
			snprintf(why, sizeof(why), "etcd refused the switch (%.200s)", body);
		wr.done(wr.arg, ok && switched, why);
	} else if (ok) {
		/* the hold's record is in etcd: confirmations read from now on count */
		for (int i = 0; wr.own[0] && i < s->n_own; i++) {
			if (strcmp(wr.own, s->own[i].name) == 0) {
				s->own[i].written = true;
				s->own[i].written_us = clock_now_us();
			}
		}
	}
	free(wr.body);
	write_next(s);
}

static void write_next(struct site *s)
{
	static const char *const paths[] = { "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn" };
	char url[ETCD_URL_MAX + 32];
	struct http_opts o;
	struct write *wr = &s->writes[0];

	if (s->write_out || !s->n_writes || clock_now_us() < s->write_retry_us)
		return;
	opts(&o);
	url_of(s, paths[wr->kind], url, sizeof(url));
	s->write_out = true;
	if (!http_post(s->mc->http, url, wr->body, strlen(wr->body), &o, on_write, &s->write_ctx)) {
		s->write_out = false;
		log_error("shards.%s: out of memory: %s not written", s->name, wr->what);
	}
}

static bool put_key(struct site *s, const char *key, const char *value, int64_t lease,
		    const char *what, const char *own)
{
	if (!queue_write(s, WRITE_PUT, shard_etcd_put_request(key, value, strlen(value), lease),
			 what, own, NULL, NULL))
		return false;
	/* queued last: it may have gone out already, and it is still in the queue till answered */
	s->writes[s->n_writes - 1].lease = lease;
	return true;
}

/* ---- the lease and the registration ---- */

static void on_lease(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct site *s = site_of_ctx(arg, offsetof(struct site, lease_ctx));
	int64_t id, ttl;
	char why[300] = "", key[ETCD_KEY_MAX + 200];

	s->lease_out = false;
	if (error || status != 200 ||
	    !shard_etcd_parse_lease(body, len, &id, &ttl, why, sizeof(why))) {
		if (!error && strstr(body, "lease not found")) {
			s->lease = 0; /* expired while etcd was away: a new one */
			s->registered = false;
		}
		site_down(s, "the lease", error ? error : status != 200 ? "HTTP error" : why);
		return;
	}
	site_up(s);
	if (ttl <= 0) {
		log_warning("shards.%s: the lease of this instance in etcd expired: registering "
			    "again",
			    s->name);
		s->lease = 0;
		s->registered = false;
		return;
	}
	s->renewed_us = clock_now_us();
	s->valid_from_us = s->lease_sent_us; /* etcd granted or renewed it after this */
	if (s->lease == id && s->registered)
		return;
	s->lease = id;
	snprintf(key, sizeof(key), "%s/instances/%s", s->src.key, s->self);
	put_key(s, key, s->self, id, "this instance's registration", "");
	s->registered = true;
	log_info("shards.%s: registered in etcd as %s (lease %" PRId64 ")", s->name, s->self, id);
}

static void lease_tick(struct site *s)
{
	char url[ETCD_URL_MAX + 32], *body;
	struct http_opts o;

	if (s->lease_out ||
	    (s->lease && clock_now_us() - s->renewed_us < (uint64_t)(KEEPALIVE_EVERY * 1e6)))
		return;
	body = s->lease ? shard_etcd_keepalive_request(s->lease)
			: shard_etcd_grant_request(MOVECOORD_LEASE_TTL);
	opts(&o);
	url_of(s, s->lease ? "/v3/lease/keepalive" : "/v3/lease/grant", url, sizeof(url));
	s->lease_sent_us = clock_now_us();
	s->lease_out = body &&
		       http_post(s->mc->http, url, body, strlen(body), &o, on_lease, &s->lease_ctx);
	free(body);
}

/* ---- holds of moves other instances coordinate ---- */

static const struct shards_entry *section(struct site *s)
{
	return config_find_shards(*s->mc->rs->cfg, s->name);
}

static void release(struct site *s, struct remote_hold *h, const char *why)
{
	char key[ETCD_KEY_MAX + 300];
	int n = h->n_held;

	log_info("shards.%s: move %s (buckets %s, %s -> %s) held here: released (%s)%s", s->name,
		 h->name, h->rec.buckets, h->rec.from, h->rec.to, why,
		 n ? ": held units go on" : "");
	h->released = true;
	h->n_held = 0;
	for (int i = 0; i < n; i++)
		client_shard_resume(h->held[i]);
	if (h->confirm_sent && s->lease) {
		snprintf(key, sizeof(key), "%s/moves/%s/held/%s", s->src.key, h->name, s->self);
		queue_write(s, WRITE_DELETE, shard_etcd_delete_request(key), "a confirmation's end",
			    "", NULL, NULL);
	}
}

static void hold_free(struct remote_hold *h)
{
	list_del(&h->node);
	free(h->held);
	free(h);
}

static struct remote_hold *find_hold(struct site *s, const char *name)
{
	struct list_node *n;

	for_each_node(n, &s->holds)
	{
		struct remote_hold *h = list_entry(n, struct remote_hold, node);

		if (strcmp(h->name, name) == 0)
			return h;
	}
	return NULL;
}

/* A record seen for the first time, step hold: hold its buckets from now. */
static void start_hold(struct site *s, const char *name, const struct etcd_move *rec)
{
	const struct shards_entry *set = section(s);
	const struct loaded_shard_map *l = set ? reshard_shard_map(s->mc->rs, set) : NULL;
	struct remote_hold *h;
	char why[200];

	if (!l || !(h = calloc(1, sizeof(*h)))) {
		log_warning("shards.%s: move %s cannot be held here (%s): its coordinator will "
			    "abort it",
			    s->name, name, l ? "out of memory" : "no map in force");
		return;
	}
	if (!move_parse_buckets(rec->buckets, l->map->n_buckets, h->ranges, MOVE_RANGES_MAX,
				&h->n_ranges, why, sizeof(why))) {
		log_warning("shards.%s: move %s names buckets %s: %s; not held", s->name, name,
			    rec->buckets, why);
		free(h);
		return;
	}
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->rec = *rec;
	h->since_us = clock_now_us();
	list_add_tail(&s->holds, &h->node);
	log_info("shards.%s: move %s coordinated by %s: holding buckets %s (%s -> %s)", s->name,
		 name, rec->coordinator, rec->buckets, rec->from, rec->to);
}

/* Units running here may still touch the moving buckets: when none is left, confirm. */
static void drain(struct site *s, struct remote_hold *h)
{
	char key[ETCD_KEY_MAX + 300];
	int n;

	if (h->confirm_sent || !s->lease)
		return;
	n = client_units_running(s->mc->rs->pools, *s->mc->rs->cfg, s->name, h->rec.from,
				 h->since_us);
	if (n)
		return;
	snprintf(key, sizeof(key), "%s/moves/%s/held/%s", s->src.key, h->name, s->self);
	h->confirm_sent = true;
	put_key(s, key, s->self, s->lease, "a hold's confirmation", "");
	log_info("shards.%s: move %s: no unit runs here on buckets %s: confirmed after %.1f ms",
		 s->name, h->name, h->rec.buckets, (double)(clock_now_us() - h->since_us) / 1000);
}

/* The map in force here is at least the one etcd held in the last read. */
static bool map_caught_up(struct site *s)
{
	const struct shards_entry *set = section(s);

	return set && reshard_shard_map_revision(s->mc->rs, set) >= s->map_revision;
}

/* Is key "<K>/moves/NAME" (no deeper)? name points into key. */
static const char *record_name(const struct site *s, const char *key)
{
	size_t n = strlen(s->src.key);

	if (strncmp(key, s->src.key, n) != 0 || strncmp(key + n, "/moves/", 7) != 0 ||
	    strchr(key + n + 7, '/'))
		return NULL;
	return key + n + 7;
}

/* What the last read says of the records: holds start, holds end. */
static void follow(struct site *s)
{
	struct list_node *n, *next;
	char why[200];

	for (int i = 0; i < s->last.n; i++) {
		const char *name = record_name(s, s->last.kvs[i].key);
		struct etcd_move rec;

		if (!name || !shard_etcd_move_parse(s->last.kvs[i].value, &rec, why, sizeof(why)))
			continue;
		if (rec.step == ETCD_MOVE_HOLD && strcmp(rec.coordinator, s->self) != 0 &&
		    !find_hold(s, name))
			start_hold(s, name, &rec);
	}
	for (n = s->holds.next; n != &s->holds; n = next) {
		struct remote_hold *h = list_entry(n, struct remote_hold, node);
		bool over = true;

		next = n->next;
		for (int i = 0; i < s->last.n; i++) {
			const char *name = record_name(s, s->last.kvs[i].key);
			struct etcd_move rec;

			if (name && strcmp(name, h->name) == 0 &&
			    shard_etcd_move_parse(s->last.kvs[i].value, &rec, why, sizeof(why)))
				over = rec.step != ETCD_MOVE_HOLD;
		}
		h->over = over;
		if (!h->released && over && map_caught_up(s))
			release(s, h, "the move is over in etcd, and its map in force here");
		if (h->released && over)
			hold_free(h);
	}
}

/* How long an unconfirmed hold lasts: past the coordinator's hold, which is then over. */
static uint64_t follow_timeout_us(struct site *s)
{
	const struct shards_entry *set = section(s);

	return (uint64_t)(((set ? set->move_hold_timeout : 10) + MOVECOORD_FOLLOW_MARGIN) * 1e6);
}

/* Holds that do not depend on etcd's answer: draining, and an unconfirmed hold's end. */
static void holds_tick(struct site *s)
{
	struct list_node *n, *next;

	for (n = s->holds.next; n != &s->holds; n = next) {
		struct remote_hold *h = list_entry(n, struct remote_hold, node);

		next = n->next;
		if (h->released)
			continue;
		/* the watch of the map may bring it after the read that said the move is over */
		if (h->over && map_caught_up(s)) {
			release(s, h, "the move is over in etcd, and its map in force here");
			continue;
		}
		drain(s, h);
		if (!h->confirm_sent && clock_now_us() - h->since_us > follow_timeout_us(s))
			release(s, h,
				"not confirmed in time: the coordinator cannot switch without this "
				"instance");
	}
}

/* ---- reading the prefix, and watching it ---- */

static void read_now(struct site *s);
static void watch_start(struct site *s);

static void watch_over(struct site *s)
{
	http_cancel(s->mc->http, &s->watch_ctx);
	s->watch_out = s->watching = false;
}

static size_t on_watch_data(void *arg, int status, const char *data, size_t len)
{
	struct site *s = site_of_ctx(arg, offsetof(struct site, watch_ctx));
	struct etcd_watch_msg m;
	size_t used = 0, n;
	char why[300];

	if (status != 200)
		return len; /* the end says what went wrong */
	while ((n = shard_etcd_next_line(data + used, len - used))) {
		if (!shard_etcd_parse_watch(data + used, n, NULL, &m, why, sizeof(why)) ||
		    m.kind == ETCD_WATCH_CANCELED) {
			/* reads every tick until a read starts it again */
			shard_etcd_value_clear(&m.value);
			watch_over(s);
			return len;
		}
		if (m.kind == ETCD_WATCH_CREATED && !s->watching)
			log_info("shards.%s: watching %s and the keys under it", s->name,
				 s->src.key);
		if (m.kind == ETCD_WATCH_CREATED)
			s->watching = true;
		else if (m.kind == ETCD_WATCH_EVENTS)
			read_now(s); /* something under the key changed: read it whole */
		shard_etcd_value_clear(&m.value);
		used += n;
	}
	return used;
}

static void on_watch_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct site *s = site_of_ctx(arg, offsetof(struct site, watch_ctx));

	s->watch_out = s->watching = false;
}

/* Watch the key and everything under it from the revision after the last read's. */
static void watch_start(struct site *s)
{
	char url[ETCD_URL_MAX + 32],
		*body = shard_etcd_watch_prefix_request(s->src.key, s->last.revision + 1);
	struct http_opts o;

	opts(&o);
	url_of(s, "/v3/watch", url, sizeof(url));
	s->watch_out = body && http_stream(s->mc->http, url, body, strlen(body), &o, on_watch_data,
					   on_watch_done, &s->watch_ctx);
	free(body);
}

/* The other instances registered now are those that must confirm o's hold. */
static bool fix_expected(struct site *s, struct own_move *o, const char *prefix, size_t plen)
{
	o->n_expect = 0;
	if (!(o->expect = calloc((size_t)s->last.n + 1, sizeof(*o->expect))))
		return false;
	for (int i = 0; i < s->last.n; i++) {
		const char *id = s->last.kvs[i].key + plen;

		if (strncmp(s->last.kvs[i].key, prefix, plen) != 0 || strcmp(id, s->self) == 0)
			continue;
		snprintf(o->expect[o->n_expect++], sizeof(o->expect[0]), "%s", id);
	}
	log_info("shards.%s: move %s: %d other instance(s) must confirm the hold", s->name, o->name,
		 o->n_expect);
	return true;
}

/* The coordinator's count of confirmations, from the last read. */
static void count_own(struct site *s)
{
	char prefix[ETCD_KEY_MAX + 200], held[ETCD_KEY_MAX + 400];
	size_t plen;

	snprintf(prefix, sizeof(prefix), "%s/instances/", s->src.key);
	plen = strlen(prefix);
	for (int k = 0; k < s->n_own; k++) {
		struct own_move *o = &s->own[k];

		if (!o->written || s->read_sent_us <= o->written_us)
			continue;
		if (!o->expect && !fix_expected(s, o, prefix, plen))
			continue;
		o->got = 0;
		o->want = o->n_expect;
		for (int i = 0; i < o->n_expect; i++) {
			snprintf(held, sizeof(held), "%s/moves/%s/held/%s", s->src.key, o->name,
				 o->expect[i]);
			for (int j = 0; j < s->last.n; j++) {
				if (strcmp(s->last.kvs[j].key, held) == 0)
					o->got++;
			}
		}
	}
}

/* Does the last read hold key? */
static bool has_key(const struct site *s, const char *key)
{
	for (int i = 0; i < s->last.n; i++) {
		if (strcmp(s->last.kvs[i].key, key) == 0)
			return true;
	}
	return false;
}

/* Are ids a and b ("HOST:PORT:PID") of processes on one host and port? */
static bool same_listener(const char *a, const char *b)
{
	const char *pid = strrchr(a, ':');

	return pid && strncmp(a, b, (size_t)(pid - a + 1)) == 0 && !strchr(b + (pid - a + 1), ':');
}

static bool adoption_refused(const struct site *s, const char *name)
{
	for (int i = 0; i < s->n_refused; i++) {
		if (strcmp(s->refused[i], name) == 0)
			return true;
	}
	return false;
}

/* The states of moves left by an earlier process on this host and port (see the header). */
static void adopt_orphans(struct site *s)
{
	char prefix[ETCD_KEY_MAX + 200], inst[ETCD_KEY_MAX + 400], line[512];
	size_t plen;

	/* Done or not is read from the map: the one in force must be the one etcd holds. */
	if (!map_caught_up(s))
		return;
	snprintf(prefix, sizeof(prefix), "%s/state/", s->src.key);
	plen = strlen(prefix);
	for (int i = 0; i < s->last.n; i++) {
		const char *value = s->last.kvs[i].value, *by = strstr(value, " by ");

		if (strncmp(s->last.kvs[i].key, prefix, plen) != 0 || !by ||
		    strcmp(by + 4, s->self) == 0 || !same_listener(s->self, by + 4))
			continue;
		snprintf(inst, sizeof(inst), "%s/instances/%s", s->src.key, by + 4);
		if (has_key(s, inst))
			continue; /* still running (a takeover's old process): its own */
		if (adoption_refused(s, s->last.kvs[i].key + plen))
			continue;
		snprintf(line, sizeof(line), "%.*s", (int)(by - value), value);
		switch (reshard_moves_adopt(s->mc->rs, s->name, line, by + 4)) {
		case MOVE_ADOPTED:
			log_info("shards.%s: adopted move %s, left unfinished by %s", s->name,
				 s->last.kvs[i].key + plen, by + 4);
			break;
		case MOVE_ADOPT_REFUSED:
			if (s->n_refused < (int)(sizeof(s->refused) / sizeof(s->refused[0])))
				snprintf(s->refused[s->n_refused++], sizeof(s->refused[0]), "%s",
					 s->last.kvs[i].key + plen);
			break;
		case MOVE_KNOWN:
			break;
		}
	}
}

static void on_read(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct site *s = site_of_ctx(arg, offsetof(struct site, read_ctx));
	struct etcd_kvs kvs;
	char why[300];

	s->read_out = false;
	if (error || status != 200 ||
	    !shard_etcd_parse_prefix(body, len, s->src.key, &kvs, why, sizeof(why))) {
		if (!error && status == 200)
			shard_etcd_kvs_clear(&kvs);
		site_down(s, "reading the moves",
			  error           ? error
			  : status != 200 ? "HTTP error"
					  : why);
		return;
	}
	site_up(s);
	shard_etcd_kvs_clear(&s->last);
	s->last = kvs;
	s->map_revision = 0;
	for (int i = 0; i < kvs.n; i++) {
		if (strcmp(kvs.kvs[i].key, s->src.key) == 0)
			s->map_revision = kvs.kvs[i].mod_revision;
	}
	count_own(s);
	follow(s);
	adopt_orphans(s);
	if (!s->watch_out)
		watch_start(s);
	if (s->reread) {
		s->reread = false;
		read_now(s);
	}
}

static void read_tick(struct site *s)
{
	/* A watch in place says when to read; the read every second is for a change it missed. */
	if (s->watching && clock_now_us() - s->read_sent_us < (uint64_t)(READ_EVERY_WATCHED * 1e6))
		return;
	read_now(s);
}

static void read_now(struct site *s)
{
	char url[ETCD_URL_MAX + 32], *body;
	struct http_opts o;

	if (s->read_out) {
		s->reread = true;
		return;
	}
	/* The map key itself and everything under it, in one answer: one revision of both. */
	body = shard_etcd_prefix_request(s->src.key);
	opts(&o);
	url_of(s, "/v3/kv/range", url, sizeof(url));
	s->read_sent_us = clock_now_us();
	s->read_out = body &&
		      http_post(s->mc->http, url, body, strlen(body), &o, on_read, &s->read_ctx);
	free(body);
}

/* ---- sites across configs ---- */

static void on_tick(void *arg)
{
	struct movecoords *mc = arg;
	struct list_node *n;

	for_each_node(n, &mc->sites)
	{
		struct site *s = list_entry(n, struct site, node);

		lease_tick(s);
		read_tick(s);
		holds_tick(s);
		write_next(s); /* a failed write's retry */
	}
}

static void site_free(struct site *s, bool loop_alive)
{
	struct list_node *n;

	http_cancel(s->mc->http, &s->lease_ctx);
	http_cancel(s->mc->http, &s->read_ctx);
	http_cancel(s->mc->http, &s->write_ctx);
	http_cancel(s->mc->http, &s->watch_ctx);
	while ((n = list_first(&s->holds))) {
		struct remote_hold *h = list_entry(n, struct remote_hold, node);

		if (!h->released && loop_alive)
			release(s, h, "the section is gone");
		hold_free(h);
	}
	for (int i = 0; i < s->n_writes; i++)
		free(s->writes[i].body);
	for (int i = 0; i < s->n_own; i++)
		free(s->own[i].expect);
	shard_etcd_kvs_clear(&s->last);
	list_del(&s->node);
	free(s->name);
	free(s->source);
	free(s);
}

static struct site *find_site(struct movecoords *mc, const char *name)
{
	struct list_node *n;

	if (!mc)
		return NULL;
	for_each_node(n, &mc->sites)
	{
		struct site *s = list_entry(n, struct site, node);

		if (strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

static struct site *site_new(struct movecoords *mc, const struct shards_entry *set)
{
	struct site *s = calloc(1, sizeof(*s));
	char host[64] = "localhost", why[300];

	if (!s)
		return NULL;
	list_init(&s->node);
	list_init(&s->holds);
	s->mc = mc;
	s->name = strdup(set->name);
	s->source = strdup(set->map);
	if (!s->name || !s->source ||
	    !shard_etcd_parse_source(set->map, &s->src, why, sizeof(why))) {
		free(s->name);
		free(s->source);
		free(s);
		return NULL;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(s->self, sizeof(s->self), "%s:%d:%d", host, (*mc->rs->cfg)->listen_port,
		 (int)getpid());
	return s;
}

void reshard_coord_apply(struct reshard *rs)
{
	struct movecoords *mc = rs->movecoord;
	const struct config *cfg = *rs->cfg;
	struct list_node *n, *next;

	for (int i = 0; i < cfg->n_shard_sets; i++) {
		const struct shards_entry *set = &cfg->shard_sets[i];
		struct site *s;

		if (!config_shard_map_in_etcd(set))
			continue;
		if (!mc) {
			if (!(mc = calloc(1, sizeof(*mc))) || !(mc->http = http_new(rs->loop))) {
				free(mc);
				log_error("out of memory: moves in etcd are not coordinated");
				return;
			}
			mc->rs = rs;
			list_init(&mc->sites);
			rs->movecoord = mc;
		}
		s = find_site(mc, set->name);
		if (s && strcmp(s->source, set->map) == 0)
			continue;
		if (s)
			site_free(s, true);
		if (!(s = site_new(mc, set))) {
			log_error("shards.%s: out of memory: its moves are not coordinated",
				  set->name);
			continue;
		}
		list_add_tail(&mc->sites, &s->node);
	}
	if (!mc)
		return;
	for (n = mc->sites.next; n != &mc->sites; n = next) {
		struct site *s = list_entry(n, struct site, node);
		const struct shards_entry *set = config_find_shards(cfg, s->name);

		next = n->next;
		if (!set || !config_shard_map_in_etcd(set))
			site_free(s, true);
	}
	if (!mc->ticking)
		mc->ticking = evloop_timer_start(rs->loop, &mc->timer, MOVECOORD_POLL, on_tick, mc);
}

/* ---- leaving at exit ---- */

static void left(struct movecoords *mc)
{
	void (*fn)(void *arg) = mc->left;

	if (!fn)
		return;
	mc->left = NULL;
	if (mc->leave_timing)
		evloop_timer_stop(mc->rs->loop, &mc->leave_timer);
	mc->leave_timing = false;
	fn(mc->left_arg);
}

static void on_revoked(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct site *s = site_of_ctx(arg, offsetof(struct site, lease_ctx));

	(void)body;
	(void)len;
	s->lease_out = false;
	if (error || status != 200)
		log_warning("shards.%s: the registration in etcd was not revoked (%s): it expires "
			    "within %d s",
			    s->name, error ? error : "HTTP error", MOVECOORD_LEASE_TTL);
	else
		log_info("shards.%s: registration in etcd revoked", s->name);
	s->lease = 0;
	s->registered = false;
	if (--s->mc->revokes_out == 0)
		left(s->mc);
}

static void on_leave_timeout(void *arg)
{
	struct movecoords *mc = arg;

	log_warning("etcd did not answer the revocation of this instance's registration in %g s",
		    MOVECOORD_LEAVE_TIMEOUT);
	left(mc);
}

bool reshard_coord_leave(struct reshard *rs, void (*fn)(void *arg), void *arg)
{
	struct movecoords *mc = rs->movecoord;
	struct list_node *n;

	if (!mc || mc->left)
		return false;
	if (mc->ticking)
		evloop_timer_stop(rs->loop, &mc->timer); /* no renewal from now on */
	mc->ticking = false;
	for_each_node(n, &mc->sites)
	{
		struct site *s = list_entry(n, struct site, node);
		char url[ETCD_URL_MAX + 32], *body;
		struct http_opts o;

		if (!s->lease)
			continue;
		http_cancel(mc->http, &s->lease_ctx); /* a renewal on its way */
		body = shard_etcd_revoke_request(s->lease);
		opts(&o);
		o.timeout = MOVECOORD_LEAVE_TIMEOUT;
		url_of(s, "/v3/lease/revoke", url, sizeof(url));
		s->lease_out = body && http_post(mc->http, url, body, strlen(body), &o, on_revoked,
						 &s->lease_ctx);
		free(body);
		if (s->lease_out)
			mc->revokes_out++;
	}
	if (!mc->revokes_out)
		return false;
	mc->left = fn;
	mc->left_arg = arg;
	mc->leave_timing = evloop_timer_start(rs->loop, &mc->leave_timer,
					      MOVECOORD_LEAVE_TIMEOUT + 0.5, on_leave_timeout, mc);
	return true;
}

void reshard_coord_free(struct reshard *rs)
{
	struct movecoords *mc = rs->movecoord;
	struct list_node *n;

	if (!mc)
		return;
	if (mc->ticking)
		evloop_timer_stop(rs->loop, &mc->timer);
	if (mc->leave_timing)
		evloop_timer_stop(rs->loop, &mc->leave_timer);
	while ((n = list_first(&mc->sites)))
		site_free(list_entry(n, struct site, node), false);
	http_free(mc->http, true);
	free(mc);
	rs->movecoord = NULL;
}

/* ---- the coordinator ---- */

static struct own_move *find_own(struct site *s, const char *name)
{
	for (int i = 0; s && i < s->n_own; i++) {
		if (strcmp(s->own[i].name, name) == 0)
			return &s->own[i];
	}
	return NULL;
}

bool reshard_coord_ready(struct reshard *rs, const char *set)
{
	struct site *s = find_site(rs->movecoord, set);

	return s && s->registered && !s->down;
}

bool reshard_coord_hold(struct reshard *rs, const char *set, const char *name, const char *buckets,
			const char *from, const char *to, uint64_t version, char *err,
			size_t errlen)
{
	struct site *s = find_site(rs->movecoord, set);
	struct etcd_move rec = { .step = ETCD_MOVE_HOLD, .version = version };
	char key[ETCD_KEY_MAX + 200], what[160], *text;
	struct own_move *o;

	if (!s || !s->registered) {
		snprintf(err, errlen,
			 "this pgmux is not registered in etcd yet: the other instances could not "
			 "be asked to hold");
		return false;
	}
	if (!(o = find_own(s, name))) {
		if (s->n_own == (int)(sizeof(s->own) / sizeof(s->own[0]))) {
			snprintf(err, errlen, "too many coordinated moves at once");
			return false;
		}
		o = &s->own[s->n_own++];
	}
	free(o->expect);
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->want = -1;
	snprintf(rec.buckets, sizeof(rec.buckets), "%s", buckets);
	snprintf(rec.from, sizeof(rec.from), "%s", from);
	snprintf(rec.to, sizeof(rec.to), "%s", to);
	snprintf(rec.coordinator, sizeof(rec.coordinator), "%s", s->self);
	if (!(text = shard_etcd_move_format(&rec))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	o->rec = rec;
	snprintf(key, sizeof(key), "%s/moves/%s", s->src.key, name);
	snprintf(what, sizeof(what), "move %s's record (hold)", name);
	if (!put_key(s, key, text, s->lease, what, name)) {
		snprintf(err, errlen, "the move's record could not be written");
		free(text);
		return false;
	}
	free(text);
	return true;
}

void reshard_coord_confirmed(struct reshard *rs, const char *set, const char *name, int *got,
			     int *want)
{
	struct own_move *o = find_own(find_site(rs->movecoord, set), name);

	*got = o ? o->got : 0;
	*want = o && o->written ? o->want : -1;
}

bool reshard_coord_switch(struct reshard *rs, const char *set, const char *text, int64_t revision,
			  reshard_coord_switch_fn done, void *arg)
{
	struct site *s = find_site(rs->movecoord, set);

	return s && queue_write(s, WRITE_CAS,
				shard_etcd_cas_request(s->src.key, revision, text, strlen(text)),
				"the next map", "", done, arg);
}

bool reshard_coord_save(struct reshard *rs, const char *set, const char *name, const char *line)
{
	struct site *s = find_site(rs->movecoord, set);
	char key[ETCD_KEY_MAX + 200], what[160], *value;
	bool ok;

	if (!s) {
		log_warning("shards.%s: move %s's state not written to etcd: the section is not "
			    "followed there",
			    set, name);
		return false;
	}
	snprintf(key, sizeof(key), "%s/state/%s", s->src.key, name);
	snprintf(what, sizeof(what), "move %s's state", name);
	if (!line) {
		ok = queue_write(s, WRITE_DELETE, shard_etcd_delete_request(key), what, "", NULL,
				 NULL);
		if (ok)
			s->writes[s->n_writes - 1].lease = 0; /* tried again until etcd takes it */
		return ok;
	}
	if (asprintf(&value, "%s by %s", line, s->self) < 0)
		return false;
	ok = put_key(s, key, value, 0, what, "");
	free(value);
	return ok;
}

void reshard_coord_end(struct reshard *rs, const char *set, const char *name, bool switched)
{
	struct site *s = find_site(rs->movecoord, set);
	struct own_move *o = find_own(s, name);
	char key[ETCD_KEY_MAX + 200], what[160], *text;
	struct etcd_move rec;

	if (!o)
		return;
	rec = o->rec;
	rec.step = switched ? ETCD_MOVE_DONE : ETCD_MOVE_ABORTED;
	if ((text = shard_etcd_move_format(&rec))) {
		snprintf(key, sizeof(key), "%s/moves/%s", s->src.key, name);
		snprintf(what, sizeof(what), "move %s's record (%s)", name,
			 shard_etcd_move_step_name(rec.step));
		put_key(s, key, text, s->lease, what, "");
		free(text);
	}
	free(o->expect);
	*o = s->own[--s->n_own];
	memset(&s->own[s->n_own], 0, sizeof(s->own[0])); /* its expect is o's now */
}

/* ---- an instance cut off from etcd ---- */

bool reshard_coord_fenced(struct reshard *rs, const struct shards_entry *set)
{
	char key[ETCD_KEY_MAX + 200];
	uint64_t now = clock_now_us();
	struct site *s;

	/* Asked for every statement of the section: the common answer first, and cheaply. */
	if (set->etcd_outage != ETCD_OUTAGE_REFUSE || !config_shard_map_in_etcd(set))
		return false;
	s = find_site(rs->movecoord, set->name);
	if (!s || !s->lease || !s->valid_from_us ||
	    now - s->valid_from_us >= (uint64_t)((MOVECOORD_LEASE_TTL - FENCE_MARGIN) * 1e6))
		return true; /* the registration may be gone: a move would not wait for us */
	snprintf(key, sizeof(key), "%s/instances/%s", s->src.key, s->self);
	/* etcd shows it (a move begun from now on waits for us), and our map is etcd's */
	return !has_key(s, key) || !map_caught_up(s);
}

/* ---- clients ---- */

bool reshard_coord_holds(struct reshard *rs, const char *set, uint32_t bucket, bool *sealed)
{
	struct site *s = find_site(rs->movecoord, set);
	struct list_node *n;

	if (!s)
		return false;
	for_each_node(n, &s->holds)
	{
		struct remote_hold *h = list_entry(n, struct remote_hold, node);

		if (!h->released && move_ranges_contain(h->ranges, h->n_ranges, bucket)) {
			*sealed = h->confirm_sent;
			return true;
		}
	}
	return false;
}

bool reshard_coord_hold_client(struct reshard *rs, struct client *c)
{
	struct movecoords *mc = rs->movecoord;
	struct list_node *sn, *n;

	if (!mc)
		return false;
	for_each_node(sn, &mc->sites)
	{
		struct site *s = list_entry(sn, struct site, node);

		for_each_node(n, &s->holds)
		{
			struct remote_hold *h = list_entry(n, struct remote_hold, node);

			if (h->released)
				continue;
			if (h->n_held == h->cap_held) {
				int cap = h->cap_held ? h->cap_held * 2 : 16;
				struct client **held = realloc(h->held,
							       (size_t)cap * sizeof(*held));

				if (!held)
					return false;
				h->held = held;
				h->cap_held = cap;
			}
			h->held[h->n_held++] = c;
			return true;
		}
	}
	return false;
}

void reshard_coord_forget_client(struct reshard *rs, struct client *c)
{
	struct movecoords *mc = rs->movecoord;
	struct list_node *sn, *n;

	if (!mc)
		return;
	for_each_node(sn, &mc->sites)
	{
		struct site *s = list_entry(sn, struct site, node);

		for_each_node(n, &s->holds)
		{
			struct remote_hold *h = list_entry(n, struct remote_hold, node);

			for (int i = 0; i < h->n_held; i++) {
				if (h->held[i] == c)
					h->held[i--] = h->held[--h->n_held];
			}
		}
	}
}
