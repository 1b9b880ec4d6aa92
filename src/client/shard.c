/*
 * client/shard: the shard of each unit of work of a client of a sharded database (see
 * include/client/shard.h for the order in which keys are looked for).
 *
 * The client always sits in the pool of one shard's database ("DB.SHARD", an ordinary routed
 * database), so everything below the choice of shard (roles, members, limits, prepared
 * statements, session settings) is the routed databases' machinery unchanged. Moving to another
 * shard happens only between units of work, while the client holds no server.
 */
#include "client/shard.h"
#include "client/clients.h"
#include "client/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/copysplit.h"
#include "client/route.h"
#include "config/config.h"
#include "core/log.h"
#include "ev/conn.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/fe.h"
#include "route/classify.h"
#include "server/pstmt.h"
#include "shard/bucket.h"
#include "shard/key.h"
#include "shard/keyfind.h"
#include "shard/map.h"

/* Statements longer than this are not parsed for their key (see keyfind_sql's own bound). */
#define SHARD_PARSE_MAX (1024 * 1024)

/* What a unit of work says about its shard. */
enum found {
	FOUND_SHARD,   /* every key it names is on one shard: *shard */
	FOUND_NEUTRAL, /* it touches no table (SET, SHOW, SELECT 1, a Parse alone): any shard */
	FOUND_NO_KEY,  /* it touches a table and names no key */
	FOUND_CROSS,   /* its keys are on several shards */
	FOUND_BAD,     /* a key or shard name that cannot be read: why says */
};

struct finding {
	enum found found;
	int shard;
	int other; /* FOUND_CROSS: a second shard */
	char why[200];
	/* what a read without a key sent to every shard needs to know */
	int statements;           /* parsed statements (a batch: of its Binds) */
	int binds;                /* Binds of a batch */
	bool writes;              /* some statement writes, or could not be read */
	bool named;               /* a Bind of a named statement */
	const char *merge_needed; /* why its rows could not just follow each other */
	enum move_cover cover;    /* the most a bucket move covers one of its keys (mover.h) */
	struct keyfind_copy copy; /* a COPY FROM STDIN alone: its keys are in its rows */
};

_Static_assert((int)SHARD_KEY_INT == (int)SHARD_KIND_INT &&
		       (int)SHARD_KEY_TEXT == (int)SHARD_KIND_TEXT &&
		       (int)SHARD_KEY_UUID == (int)SHARD_KIND_UUID,
	       "config's key_type values are shard/key.h's");

/* A sharded database's section and the map in force for it. */
struct sharding {
	const struct shards_entry *set;
	const struct loaded_shard_map *map;
	struct clients *cs; /* to ask about bucket moves; NULL: not asked (SHOW ROUTE) */
};

static void client_shard_end_transaction(struct client *c);
static void client_fanout_end(struct client *c);

/* The client's home database's sharding; false: the config in force has none (or no map yet). */
static bool home_sharding(struct client *c, struct sharding *sh)
{
	const struct shard_moves_ops *moves = c->cs->moves;

	sh->cs = c->cs;
	sh->set = c->home->entry ? config_find_shards(clients_cfg(c->cs), c->home->entry->shards)
				 : NULL;
	sh->map = sh->set && moves ? moves->map(c->cs->moves_arg, sh->set) : NULL;
	return sh->set && sh->map;
}

struct database *client_shard_database(struct clients *cs, struct database *db, int k)
{
	const struct shards_entry *set = db->entry && db->entry->shards[0]
						 ? config_find_shards(clients_cfg(cs),
								      db->entry->shards)
						 : NULL;
	struct database *found;

	if (!set || k < 0 || k >= set->n_shards)
		return NULL;
	if (db->n_shard_dbs != set->n_shards) {
		free(db->shard_dbs);
		db->shard_dbs = calloc((size_t)set->n_shards, sizeof(*db->shard_dbs));
		db->n_shard_dbs = db->shard_dbs ? set->n_shards : 0;
		if (!db->shard_dbs)
			return NULL;
	}
	found = db->shard_dbs[k];
	/* A RELOAD may have removed, renamed or reordered the shards: check what is cached. */
	if (!found || found->removed || !found->entry || found->entry->shard_index != k ||
	    strcmp(found->entry->shard_parent, db->name) != 0) {
		char name[sizeof(db->name) * 2];

		snprintf(name, sizeof(name), "%s.%s", db->name, set->shards[k].name);
		found = db->shard_dbs[k] = database_lookup(cs->pools, name);
	}
	return found;
}

static int shard_named(const struct shards_entry *set, const char *name, size_t len)
{
	for (int k = 0; k < set->n_shards; k++) {
		if (strlen(set->shards[k].name) == len &&
		    memcmp(set->shards[k].name, name, len) == 0)
			return k;
	}
	return -1;
}

/*
 * The shard of a key in map l: an override of the map, else its bucket's owner (hash: the key's,
 * shard_key_hash(key, l->map->seed), which the callers need too).
 */
static int shard_of_key(const struct loaded_shard_map *l, const struct shard_key *key,
			uint64_t hash)
{
	const struct shard_map *m = l->map;

	for (int i = 0; i < m->n_overrides; i++) {
		const char *text = m->overrides[i].key;
		struct shard_key ov;
		char why[64];

		if (shard_key_from_text(key->type, text, strlen(text), &ov, why, sizeof(why)) &&
		    shard_key_equal(&ov, key))
			return l->shard_of[m->overrides[i].shard];
	}
	return l->shard_of[shard_map_shard_of(m, hash)];
}

/* Record one more shard the unit touches. */
int client_shard_of_text(const struct loaded_shard_map *map, int key_type, const char *text,
			 size_t len, char *why, size_t whylen)
{
	struct shard_key key;

	if (!shard_key_from_text((enum shard_key_type)key_type, text, len, &key, why, whylen))
		return -1;
	return shard_of_key(map, &key, shard_key_hash(&key, map->map->seed));
}

static void note_shard(struct finding *f, int k)
{
	if (f->found == FOUND_SHARD && f->shard != k) {
		f->found = FOUND_CROSS;
		f->other = k;
	} else if (f->found != FOUND_CROSS && f->found != FOUND_BAD) {
		f->found = FOUND_SHARD;
		f->shard = k;
	}
}

/* Record key's shard, and whether a bucket move covers it (an override is never moved). */
static void note_key(const struct sharding *sh, const struct shard_key *key, struct finding *f)
{
	const struct shard_map *m = sh->map->map;
	uint64_t hash = shard_key_hash(key, m->seed);
	int k = shard_of_key(sh->map, key, hash);
	enum move_cover cover;

	note_shard(f, k);
	if (!sh->cs || !sh->cs->moves)
		return;
	if (k != sh->map->shard_of[shard_map_shard_of(m, hash)])
		return;
	cover = sh->cs->moves->bucket(sh->cs->moves_arg, sh->set->name,
				      (uint32_t)(hash & (m->n_buckets - 1)));
	if (cover > f->cover)
		f->cover = cover;
}

static void note_key_text(const struct sharding *sh, const char *text, size_t len,
			  struct finding *f)
{
	const struct shards_entry *set = sh->set;
	struct shard_key key;
	char why[120];

	if (!shard_key_from_text((enum shard_key_type)set->key_type, text, len, &key, why,
				 sizeof(why))) {
		f->found = FOUND_BAD;
		snprintf(f->why, sizeof(f->why), "shard key \"%.*s\": %s",
			 (int)(len > 64 ? 64 : len), text, why);
		return;
	}
	note_key(sh, &key, f);
}

static void note_shard_name(const struct sharding *sh, const char *name, size_t len,
			    struct finding *f)
{
	const struct shards_entry *set = sh->set;
	int k = shard_named(set, name, len);

	if (k < 0) {
		f->found = FOUND_BAD;
		snprintf(f->why, sizeof(f->why), "no shard named \"%.*s\" in [shards.%s]",
			 (int)(len > 64 ? 64 : len), name, set->name);
		return;
	}
	note_shard(f, k);
}

static void note_key_param(const struct sharding *sh, const struct fe_bind *b, int param,
			   struct finding *f)
{
	const struct shards_entry *set = sh->set;
	const uint8_t *val;
	struct shard_key key;
	char why[120];
	int32_t len;
	bool binary;

	if (!b || param > UINT16_MAX ||
	    !fe_bind_param(b, (uint16_t)(param - 1), &val, &len, &binary) || len < 0) {
		if (f->found != FOUND_CROSS && f->found != FOUND_BAD)
			f->found = FOUND_NO_KEY; /* no value, or NULL: no row has that key */
		return;
	}
	if (!(binary ? shard_key_from_binary((enum shard_key_type)set->key_type, val, (size_t)len,
					     &key, why, sizeof(why))
		     : shard_key_from_text((enum shard_key_type)set->key_type, (const char *)val,
					   (size_t)len, &key, why, sizeof(why)))) {
		f->found = FOUND_BAD;
		snprintf(f->why, sizeof(f->why), "shard key parameter $%d: %s", param, why);
		return;
	}
	note_key(sh, &key, f);
}

/* What a statement's text says about its key: a hint comment, or what the parser found. */
struct stmt_keys {
	bool hinted;
	struct keyfind_hint hint; /* hinted: its value points into the text */
	bool parsed;              /* kf holds the parser's answer (else: too long, out of memory) */
	struct keyfind kf;
};

/* A hint comment is read before anything is parsed: a hinted statement is not parsed. */
static void read_stmt_keys(const char *column, const char *sql, size_t len, struct stmt_keys *k)
{
	memset(k, 0, sizeof(*k));
	k->hinted = keyfind_hint(sql, len, &k->hint);
	if (!k->hinted && len <= SHARD_PARSE_MAX)
		k->parsed = keyfind_sql(sql, len, column, &k->kf);
}

/* The shards a statement's keys are on, with b the Bind that gives its parameters (or NULL). */
static void apply_stmt_keys(const struct sharding *sh, const struct stmt_keys *k,
			    const struct fe_bind *b, struct finding *f, bool *hinted)
{
	const struct keyfind *kf = &k->kf;

	f->statements += k->parsed ? kf->n_statements : 1;
	f->writes |= !k->parsed || kf->writes;
	if (k->parsed && kf->merge_needed)
		f->merge_needed = kf->merge_needed;
	if (k->parsed && kf->copy.from_stdin)
		f->copy = kf->copy;
	if (k->hinted) {
		*hinted = true;
		if (k->hint.kind == KEYFIND_HINT_KEY)
			note_key_text(sh, k->hint.value, k->hint.value_len, f);
		else
			note_shard_name(sh, k->hint.value, k->hint.value_len, f);
		return;
	}
	if (!k->parsed) {
		if (f->found != FOUND_SHARD && f->found != FOUND_CROSS && f->found != FOUND_BAD)
			f->found = FOUND_NO_KEY;
		return;
	}
	if (kf->status == KEYFIND_KEYED) {
		for (int i = 0; i < kf->n_values && f->found != FOUND_BAD; i++) {
			if (kf->values[i].param > 0)
				note_key_param(sh, b, kf->values[i].param, f);
			else
				note_key_text(sh, kf->values[i].literal, kf->values[i].literal_len,
					      f);
		}
	} else if (kf->status == KEYFIND_NO_KEY && !kf->neutral && f->found == FOUND_NEUTRAL) {
		f->found = FOUND_NO_KEY;
	}
	/* A parse error: PostgreSQL answers it wherever it goes. */
}

static void find_in_sql(const struct sharding *sh, const char *sql, size_t len,
			const struct fe_bind *b, struct finding *f, bool *hinted)
{
	struct stmt_keys k;

	read_stmt_keys(sh->set->key, sql, len, &k);
	apply_stmt_keys(sh, &k, b, f, hinted);
	keyfind_free(&k.kf);
}

/* A named statement's keys, read once and kept with the statement (its note). */
struct key_note {
	char column[64];
	struct stmt_keys keys;
};

static void free_key_note(void *note)
{
	struct key_note *n = note;

	keyfind_free(&n->keys.kf);
	free(n);
}

static const struct stmt_keys *statement_keys(const struct sharding *sh, struct pstmt *ps)
{
	struct key_note *n = ps->note;
	size_t len = strnlen((const char *)ps->def, ps->def_len);

	if (ps->note_free == free_key_note && strcmp(n->column, sh->set->key) == 0)
		return &n->keys;
	if (ps->note_free)
		ps->note_free(ps->note);
	ps->note = NULL;
	ps->note_free = NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	snprintf(n->column, sizeof(n->column), "%s", sh->set->key);
	read_stmt_keys(n->column, (const char *)ps->def, len, &n->keys);
	ps->note = n;
	ps->note_free = free_key_note;
	return &n->keys;
}

/* The keys of a Bind of statement name that the client holds; false: it holds none by that name. */
static bool find_in_named(struct client *c, const struct sharding *sh, const struct fe_bind *b,
			  struct finding *f, bool *hinted)
{
	const struct cstmt *e = client_pstmts_find(&c->pstmts, b->statement);
	const struct stmt_keys *k = e ? statement_keys(sh, e->ps) : NULL;

	if (!e)
		return false;
	f->named = true;
	if (k)
		apply_stmt_keys(sh, k, b, f, hinted);
	else if (f->found == FOUND_NEUTRAL)
		f->found = FOUND_NO_KEY; /* out of memory: refused rather than misplaced */
	return true;
}

/* The query of the Parse of statement name among the messages [p, end), or NULL. */
static const char *named_in_batch(const uint8_t *p, const uint8_t *end, const char *name,
				  size_t *len)
{
	struct pkt_header h;

	while (pkt_peek_header(p, (size_t)(end - p), &h) == PKT_PEEK_OK &&
	       h.len <= (size_t)(end - p)) {
		struct fe_parse parse;

		if (h.type == 'P' && fe_parse_parse(p + PKT_HDR_LEN, h.len - PKT_HDR_LEN, &parse) &&
		    strcmp(parse.name, name) == 0) {
			*len = parse.query_len;
			return parse.query;
		}
		p += h.len;
	}
	return NULL;
}

/*
 * The keys of one Bind: its statement's (one the client holds, or one this batch prepares),
 * with its parameters. unnamed: the unnamed statement's text, if known.
 */
static void find_in_bind(struct client *c, const struct sharding *sh, const struct fe_bind *b,
			 const char *unnamed, size_t unnamed_len, const uint8_t *batch,
			 const uint8_t *here, struct finding *f, bool *hinted)
{
	const char *sql = unnamed;
	size_t len = unnamed_len;

	f->binds++;
	if (*b->statement) {
		if (find_in_named(c, sh, b, f, hinted))
			return;
		sql = batch ? named_in_batch(batch, here, b->statement, &len) : NULL;
	}
	if (sql)
		find_in_sql(sh, sql, len, b, f, hinted);
	else if (f->found == FOUND_NEUTRAL)
		f->found = FOUND_NO_KEY;
}

/*
 * The keys of an extended-protocol batch from its first message to its Sync (drivers send a
 * batch in one go, so it is all here): each Bind's statement with that Bind's parameters. A
 * batch that binds nothing (a Parse or Describe alone) touches no table. true: the Sync was
 * seen, so the whole batch was read.
 */
static bool find_in_batch(struct client *c, const struct sharding *sh, const uint8_t *start,
			  struct finding *f, bool *hinted)
{
	const uint8_t *p = start, *end = conn_input_end(&c->conn);
	const char *unnamed = NULL;
	size_t unnamed_len = 0;
	struct pkt_header h;

	while (end && pkt_peek_header(p, (size_t)(end - p), &h) == PKT_PEEK_OK &&
	       h.len <= (size_t)(end - p)) {
		const uint8_t *body = p + PKT_HDR_LEN;
		size_t blen = h.len - PKT_HDR_LEN;
		struct fe_parse parse;
		struct fe_bind bind;

		if (h.type == 'S')
			return true;
		if (f->found == FOUND_BAD)
			break;
		if (h.type == 'P' && fe_parse_parse(body, blen, &parse) && !*parse.name) {
			unnamed = parse.query;
			unnamed_len = parse.query_len;
		} else if (h.type == 'P' && fe_parse_parse(body, blen, &parse)) {
			/* A named Parse is read through prepared_query_of once the client holds it. */
		} else if (h.type == 'B' && fe_parse_bind(body, blen, &bind)) {
			find_in_bind(c, sh, &bind, unnamed, unnamed_len, start, p, f, hinted);
		}
		p += h.len;
	}
	return false;
}

/* The shard pgmux.shard_key or pgmux.shard say: SET LOCAL's in a transaction, else SET's. */
static bool find_in_settings(const struct client *c, const struct sharding *sh, struct finding *f)
{
	const struct shard_setting *s = c->shard_local.key || c->shard_local.shard
						? &c->shard_local
						: &c->shard_session;

	if (s->key)
		note_key_text(sh, s->key, strlen(s->key), f);
	else if (s->shard)
		note_shard_name(sh, s->shard, strlen(s->shard), f);
	else
		return false;
	return true;
}

/*
 * Where the unit that starts with this message goes; counted in its database's shard_stats.
 * true: every message of the unit was read (a Query, or a batch up to its Sync).
 */
static bool find_shard(struct client *c, const struct sharding *sh, const struct pkt_header *hdr,
		       const uint8_t *whole, struct finding *f)
{
	struct shard_stats *st = &c->home->shard_stats;
	bool hinted = false, by_setting = false, whole_unit = true;
	struct keyfind_hint h;
	struct fe_query q;

	memset(f, 0, sizeof(*f));
	f->found = FOUND_NEUTRAL;
	if (hdr->type == 'Q' && fe_parse_query(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &q)) {
		/* A hint outranks the settings; the settings outrank the SQL. */
		by_setting = !keyfind_hint(q.sql, q.sql_len, &h) && find_in_settings(c, sh, f);
		if (!by_setting)
			find_in_sql(sh, q.sql, q.sql_len, NULL, f, &hinted);
	} else if (hdr->type == 'P' || hdr->type == 'B') {
		by_setting = find_in_settings(c, sh, f);
		if (!by_setting)
			whole_unit = find_in_batch(c, sh, whole, f, &hinted);
	}
	if (f->found != FOUND_SHARD)
		return whole_unit;
	if (hinted)
		st->by_hint++;
	else if (by_setting)
		st->by_setting++;
	else
		st->by_sql++;
	return whole_unit;
}

/*
 * etcd_outage = refuse, and this pgmux may be unknown to a move's coordinator or behind etcd's
 * map (reshard/movecoord.h): nothing of the section runs, so that nothing can go to a shard the
 * buckets have left.
 */
static bool fenced(struct client *c, const struct shards_entry *set, char *message, size_t len)
{
	if (!c->cs->moves || !c->cs->moves->fenced(c->cs->moves_arg, set))
		return false;
	snprintf(message, len,
		 "pgmux cannot show etcd that it follows the map of [shards.%s] (etcd_outage = "
		 "refuse): its work is refused until etcd answers and the map is read",
		 set->name);
	return true;
}

/* Refuse the unit of work this message starts: an error, then the rest of it is dropped. */
static enum conn_action refuse(struct client *c, const struct pkt_header *hdr, const char *sqlstate,
			       const char *message)
{
	client_send_error(c, sqlstate, "%s", message);
	client_log(LOG_LVL_INFO, c, "unit of work refused: %s", message);
	c->discarding = DISCARD_START;
	return client_discard_packet(c, hdr);
}

static void set_text(char **field, const char *value, size_t len)
{
	free(*field);
	*field = value ? strndup(value, len) : NULL;
}

/* Is the value of SET pgmux.shard_key / pgmux.shard one? false: why says what is wrong. */
static bool setting_valid(const struct sharding *sh, const struct keyfind_set *s, char *why,
			  size_t len)
{
	struct finding f = { .found = FOUND_NEUTRAL };

	if (!s->reset && s->what == KEYFIND_SET_KEY)
		note_key_text(sh, s->value, s->value_len, &f);
	else if (!s->reset)
		note_shard_name(sh, s->value, s->value_len, &f);
	if (f.found != FOUND_BAD)
		return true;
	snprintf(why, len, "invalid value for %s: %s",
		 s->what == KEYFIND_SET_KEY ? "pgmux.shard_key" : "pgmux.shard", f.why);
	return false;
}

static void apply_setting(struct client *c, const struct keyfind_set *s)
{
	struct shard_setting *to = s->local ? &c->shard_local : &c->shard_session;

	/* As PostgreSQL, SET LOCAL outside a transaction block changes nothing. */
	if (s->local && !c->deferred_begin && c->tx_status == 'I')
		return;
	set_text(&to->key, s->what == KEYFIND_SET_KEY && !s->reset ? s->value : NULL, s->value_len);
	set_text(&to->shard, s->what == KEYFIND_SET_SHARD && !s->reset ? s->value : NULL,
		 s->value_len);
}

/*
 * SET [LOCAL] pgmux.shard_key / pgmux.shard, RESET: pgmux's own settings, answered here, sent
 * as a Query or as an extended-protocol batch of their own (as JDBC sends every statement).
 * true: answered (*act says how); false: not such a setting, or a batch of another shape.
 */
static bool setting_query(struct client *c, const struct sharding *sh, const struct pkt_header *hdr,
			  const uint8_t *whole, enum conn_action *act)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	struct keyfind_set s;
	struct fe_query q;
	struct fe_parse p;
	char why[300];

	if (hdr->type == 'Q' && fe_parse_query(body, hdr->len - PKT_HDR_LEN, &q) &&
	    keyfind_set(q.sql, q.sql_len, &s)) {
		if (!setting_valid(sh, &s, why, sizeof(why))) {
			client_send_error(c, "22023", "%s", why);
			client_send_tag_and_ready(c, NULL,
						  c->tx_status == 'I' && !c->deferred_begin ? 'I'
											    : 'E');
		} else {
			apply_setting(c, &s);
			client_send_tag_and_ready(c, s.reset ? "RESET" : "SET", c->tx_status);
		}
		*act = CONN_CONSUME;
		return true;
	}
	if (hdr->type != 'P' || !fe_parse_parse(body, hdr->len - PKT_HDR_LEN, &p) ||
	    !keyfind_set(p.query, p.query_len, &s))
		return false;
	if (!setting_valid(sh, &s, why, sizeof(why))) {
		*act = refuse(c, hdr, "22023", why);
		return true;
	}
	if (!client_answer_batch(c, whole, s.reset ? "RESET" : "SET", c->tx_status))
		return false;
	apply_setting(c, &s);
	*act = CONN_CONSUME;
	return true;
}

static void describe_refusal_for(const char *home, const struct sharding *sh,
				 const struct finding *f, char *out, size_t len)
{
	const struct shards_entry *set = sh->set;

	if (f->found == FOUND_CROSS)
		snprintf(out, len,
			 "the statement names keys on shards %s and %s of database %s: "
			 "a unit of work runs on one shard",
			 set->shards[f->shard].name, set->shards[f->other].name, home);
	else if (f->found == FOUND_BAD)
		snprintf(out, len, "%s", f->why);
	else
		snprintf(
			out, len,
			"database %s is sharded by %s, and the statement names no %s "
			"(WHERE %s = ..., a /* pgmux:shard_key=... */ comment, or SET pgmux.shard_key)",
			home, set->key, set->key, set->key);
}

static void describe_refusal(const struct client *c, const struct sharding *sh,
			     const struct finding *f, char *out, size_t len)
{
	describe_refusal_for(c->home->name, sh, f, out, len);
}

/*
 * A COPY FROM STDIN without a key of its own: its rows are split over the shards by their keys
 * (client/copysplit), in a transaction per shard, so not inside the client's own transaction.
 */
static enum conn_action copy_into_shards(struct client *c, const struct sharding *sh,
					 const struct pkt_header *hdr, const uint8_t *whole,
					 const struct finding *f)
{
	struct fe_query q;

	if (hdr->type != 'Q' || !fe_parse_query(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &q))
		return refuse(c, hdr, "0A000",
			      "a COPY into a sharded database is split over its "
			      "shards only when sent as a simple Query");
	if (c->deferred_begin) {
		c->tx_status = 'E';
		return refuse(
			c, hdr, "0A000",
			"a COPY into a sharded database runs outside a "
			"transaction block (its rows go to every shard, each in a transaction "
			"of its own)");
	}
	c->home->shard_stats.copy_split++;
	return copysplit_start(c, sh->set, sh->map, &f->copy, q.sql, q.sql_len);
}

/* Go on in shard k's pool. false: that shard has no database now (the config changed). */
static bool move_to_shard(struct client *c, int k)
{
	struct database *db = client_shard_database(c->cs, c->home, k);
	struct pool *p;

	if (!db)
		return false;
	if (db == c->pool->db)
		return true;
	p = pool_get(c->cs->pools, db, c->pool->user->name);
	if (!p)
		return false;
	pool_client_move(c, p);
	return true;
}

/* The unlinked client is in a failed transaction (a unit refused inside it, see also
 * client_shard_linked): statements get 25P02 until it ends it. */
static enum conn_action in_failed_transaction(struct client *c, const struct pkt_header *hdr,
					      const uint8_t *whole)
{
	struct route_result r = { .cls = ROUTE_WRITE };
	struct fe_query q;
	struct fe_parse p;

	if (hdr->type == 'Q' && fe_parse_query(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &q))
		classify_sql(q.sql, q.sql_len, NULL, &r);
	else if (hdr->type == 'P' &&
		 fe_parse_parse(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &p))
		classify_sql(p.query, p.query_len, NULL, &r);
	/* COMMIT, ROLLBACK or ABORT ends it, answered ROLLBACK as PostgreSQL answers them. */
	if (r.cls == ROUTE_TXN_END && r.statements == 1) {
		free(c->deferred_begin); /* a BEGIN pgmux held and never sent */
		c->deferred_begin = NULL;
	}
	if (r.cls == ROUTE_TXN_END && r.statements == 1 && hdr->type == 'Q') {
		client_send_tag_and_ready(c, "ROLLBACK", 'I');
		return CONN_CONSUME;
	}
	if (r.cls == ROUTE_TXN_END && r.statements == 1 &&
	    client_answer_batch(c, whole, "ROLLBACK", 'I'))
		return CONN_CONSUME;
	return refuse(c, hdr, "25P02",
		      "current transaction is aborted, commands ignored until "
		      "end of transaction block");
}

/* Keep map (NULL: none) as the map of the client's current unit of work. */
static void hold_unit_map(struct client *c, const struct loaded_shard_map *map)
{
	struct loaded_shard_map *held = (struct loaded_shard_map *)map;

	if (held == c->unit_map)
		return;
	if (held)
		held->refs++;
	config_shard_map_unref(c->unit_map);
	c->unit_map = held;
}

/*
 * A read without a key, with no_shard_key = all, runs on every shard in turn: the request is
 * kept, and sent again to the next shard when the previous one has answered it. The client gets
 * the first shard's description, every shard's rows, one CommandComplete with the total, and
 * one ReadyForQuery; an error stops the round there.
 */
struct shard_fanout {
	uint8_t *request; /* the Query, or the batch up to its Sync, as the client sent it */
	size_t len;
	int shard; /* the shard answering now */
	int n_shards;
	bool round_due; /* the previous shard answered: the request goes to the next */
	bool failed;    /* a shard answered with an error: no more rounds */
	uint64_t rows;
	char verb[16]; /* of the CommandComplete ("SELECT") */
};

/* The bytes of the batch that starts at start, up to and including its Sync; 0 if not all here. */
static size_t batch_length(struct client *c, const uint8_t *start)
{
	const uint8_t *p = start, *end = conn_input_end(&c->conn);
	struct pkt_header h;

	while (end && pkt_peek_header(p, (size_t)(end - p), &h) == PKT_PEEK_OK &&
	       h.len <= (size_t)(end - p)) {
		p += h.len;
		if (h.type == 'S')
			return (size_t)(p - start);
	}
	return 0;
}

/* Why this unit cannot be sent to every shard, or NULL. */
static const char *fanout_refusal(const struct client *c, const struct finding *f, size_t len)
{
	if (c->tx_status != 'I' || c->deferred_begin)
		return "inside a transaction, which runs on one shard";
	if (f->writes)
		return "it writes (or could not be read), and writes need a key";
	if (f->named)
		return "it runs a named prepared statement";
	if (f->statements != 1 || f->binds > 1)
		return "it holds more than one statement";
	if (f->merge_needed)
		return f->merge_needed;
	if (!len)
		return "its messages up to Sync have not all arrived";
	return NULL;
}

static enum conn_action start_fanout(struct client *c, const struct sharding *sh,
				     const struct pkt_header *hdr, const uint8_t *whole,
				     const struct finding *f)
{
	size_t len = hdr->type == 'Q' ? hdr->len : batch_length(c, whole);
	const char *why = fanout_refusal(c, f, len);
	struct database *home = c->home;
	char message[400];
	struct shard_fanout *fo;

	if (!why && home->fanouts_running >= sh->set->fanout_limit)
		why = "as many reads as fanout_limit allows are going to every shard already";
	if (why) {
		home->shard_stats.no_key++;
		snprintf(message, sizeof(message),
			 "database %s: a statement without %s goes to every "
			 "shard (no_shard_key = all) only when it is one read whose rows need no "
			 "merging; not this one: %s",
			 home->name, sh->set->key, why);
		return refuse(c, hdr, "0A000", message);
	}
	fo = calloc(1, sizeof(*fo));
	if (fo)
		fo->request = malloc(len);
	if (!fo || !fo->request || !move_to_shard(c, 0)) {
		free(fo ? fo->request : NULL);
		free(fo);
		return refuse(c, hdr, "53200", "out of memory");
	}
	memcpy(fo->request, whole, len);
	fo->len = len;
	fo->n_shards = sh->set->n_shards;
	c->fanout = fo;
	home->fanouts_running++;
	home->shard_stats.fanned_out++;
	return CONN_FORWARD;
}

/* The request, again, at the front of the client's input: it goes to the next shard. */
static enum conn_action next_round(struct client *c)
{
	struct shard_fanout *fo = c->fanout;

	fo->round_due = false;
	c->shard_checked = true;
	/* The config changed under it: the read ends on the shard it is on. */
	if (!move_to_shard(c, fo->shard))
		client_fanout_end(c);
	return CONN_FORWARD;
}

enum conn_action client_shard_unit(struct client *c, const struct pkt_header *hdr,
				   const uint8_t *whole)
{
	struct sharding shm, *sh = &shm;
	bool ready = home_sharding(c, sh);
	const struct shards_entry *set = sh->set;
	struct finding f;
	char message[400];
	enum conn_action act;
	int k;

	c->shard_checked = false;
	c->unit_outside_txn = false;
	c->unit_in_move = false;
	/* The map a unit starts with stays its map: a new version applies to the next units. */
	hold_unit_map(c, ready ? sh->map : NULL);
	if (c->fanout && c->fanout->round_due)
		return next_round(c);
	client_fanout_end(c); /* one cut short (its server was lost) */
	if (!set || pool_is_session(c->pool) || !strchr("QPB", hdr->type))
		return CONN_FORWARD;
	if (!ready) {
		snprintf(message, sizeof(message),
			 "the shard map of database %s (%s) has not been "
			 "read yet",
			 c->home->name, set->map);
		return refuse(c, hdr, "57P03", message);
	}
	if (hdr->len > SHARD_PARSE_MAX)
		return refuse(c, hdr, "54000", "statement too long to find its shard key in");
	if (!whole)
		return CONN_NEED_WHOLE;
	if (c->tx_status == 'I' && !c->deferred_begin)
		client_shard_end_transaction(c);
	else if (c->tx_status == 'E')
		return in_failed_transaction(c, hdr, whole);
	if (fenced(c, set, message, sizeof(message)))
		return refuse(c, hdr, "57P03", message);
	if (setting_query(c, sh, hdr, whole, &act))
		return act;
	/* What was read here need not be read again as the messages go to the server. */
	c->shard_checked = find_shard(c, sh, hdr, whole, &f);
	if (f.found == FOUND_NEUTRAL) {
		c->home->shard_stats.stayed++;
		/*
		 * A batch that only prepares (Parse, Describe: drivers prepare apart from running)
		 * inside a transaction pgmux holds: it runs outside that transaction, which starts
		 * where its first keyed statement goes. Preparing is not undone by a rollback anyway.
		 */
		c->unit_outside_txn = c->deferred_begin && hdr->type == 'P' && c->shard_checked &&
				      f.binds == 0;
		return CONN_FORWARD;
	}
	if (f.found == FOUND_NO_KEY && f.copy.from_stdin)
		return copy_into_shards(c, sh, hdr, whole, &f);
	if (f.found == FOUND_NO_KEY && strcmp(set->no_shard_key, "all") == 0)
		return start_fanout(c, sh, hdr, whole, &f);
	if (f.found == FOUND_NO_KEY && strcmp(set->no_shard_key, "error") != 0) {
		c->home->shard_stats.by_default++;
		f.found = FOUND_SHARD;
		f.shard = shard_named(set, set->no_shard_key, strlen(set->no_shard_key));
	}
	if (f.found != FOUND_SHARD) {
		if (f.found == FOUND_CROSS)
			c->home->shard_stats.cross_shard++;
		else if (f.found == FOUND_NO_KEY)
			c->home->shard_stats.no_key++;
		describe_refusal(c, sh, &f, message, sizeof(message));
		return refuse(c, hdr, f.found == FOUND_BAD ? "22P02" : "0A000", message);
	}
	k = f.shard;
	/*
	 * Its buckets are being switched to another shard: the unit waits, its message unread,
	 * and is read again (against the map then in force) when the move switches or fails.
	 */
	if (f.cover >= MOVE_COVER_HELD && c->cs->moves->hold_client(c->cs->moves_arg, c)) {
		c->shard_checked = false;
		client_log(LOG_LVL_DEBUG, c, "unit of work held: its bucket is moving");
		return CONN_STOP;
	}
	c->unit_in_move = f.cover != MOVE_COVER_NONE;
	if (!move_to_shard(c, k))
		return refuse(c, hdr, "57P03", "that key's shard has no database now");
	return CONN_FORWARD;
}

/*
 * A statement for another shard inside a transaction: the transaction cannot go on, and what it
 * did must not be applied. Closing its server rolls it back in PostgreSQL; the client is left
 * in a failed transaction block, answered by pgmux until it ends it.
 */
static enum conn_action fail_transaction(struct client *c, const struct pkt_header *hdr,
					 const char *sqlstate, const char *message)
{
	bool in_block = c->tx_status != 'I';

	client_replay_disarm(c);
	client_unlink_for_replay(c, "its transaction touched another shard");
	c->pending_ready = 0;
	c->unsynced = false;
	c->tx_status = in_block ? 'E' : 'I';
	return refuse(c, hdr, sqlstate, message);
}

/* Remember the keys of an unnamed statement being prepared in a transaction, for its Bind. */
static void note_unnamed_parse(struct client *c, const uint8_t *whole, uint32_t len)
{
	struct fe_parse p;

	if (!fe_parse_parse(whole + PKT_HDR_LEN, len - PKT_HDR_LEN, &p) || *p.name)
		return;
	set_text(&c->shard_unnamed_sql, p.query, p.query_len);
	c->shard_unnamed_len = c->shard_unnamed_sql ? p.query_len : 0;
}

/*
 * In session mode the shard was chosen at connect: SET pgmux.shard_key cannot move the session,
 * and is refused rather than taken by the server as a setting that changes nothing.
 */
static enum conn_action session_setting(struct client *c, const struct pkt_header *hdr,
					const uint8_t *whole)
{
	struct keyfind_set s;
	struct fe_query q;

	/* Inside a transaction an error would have to fail it on the server too: not worth it. */
	if (hdr->type != 'Q' || hdr->len > SETTINGS_PEEK_MAX || c->pending_ready || c->unsynced ||
	    c->tx_status != 'I')
		return CONN_FORWARD;
	if (!whole)
		return CONN_NEED_WHOLE;
	if (!fe_parse_query(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &q) ||
	    !keyfind_set(q.sql, q.sql_len, &s))
		return CONN_FORWARD;
	client_send_error(c, "0A000",
			  "database %s is pooled in session mode, so its shard is "
			  "chosen at connect (options='-c pgmux.shard_key=KEY') and stays",
			  c->home->name);
	client_send_tag_and_ready(c, NULL, 'I');
	return CONN_CONSUME;
}

enum conn_action client_shard_linked(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole)
{
	struct sharding shm, *sh = &shm;
	const struct shards_entry *set = home_sharding(c, sh) ? sh->set : NULL;
	int here = c->pool->db->entry ? c->pool->db->entry->shard_index : -1;

	/* A transaction finishes under the map it started with, even if a new one came since. */
	if (c->unit_map)
		sh->map = c->unit_map;
	struct finding f = { .found = FOUND_NEUTRAL };
	char message[400];
	enum conn_action act;
	bool hinted = false;

	if (c->shard_checked) {
		/* The start of the unit read it (up to its Sync) already. */
		if (hdr->type == 'S' || hdr->type == 'Q')
			c->shard_checked = false;
		return CONN_FORWARD;
	}
	if (c->fanout) {
		/* Behind a read going to every shard: waits until its last shard has answered. */
		c->drain_wait = true;
		return CONN_STOP;
	}
	if (!set || !strchr("QPB", hdr->type))
		return CONN_FORWARD;
	if (pool_is_session(c->pool))
		return session_setting(c, hdr, whole);
	if (fenced(c, set, message, sizeof(message)))
		return fail_transaction(c, hdr, "57P03", message);
	if (hdr->len > SHARD_PARSE_MAX)
		return CONN_FORWARD; /* not read for a key: stays in the transaction's shard */
	if (!whole)
		return CONN_NEED_WHOLE;
	if (hdr->type != 'B' && !c->pending_ready && !c->unsynced &&
	    setting_query(c, sh, hdr, whole, &act))
		return act;
	if (hdr->type == 'P') {
		note_unnamed_parse(c, whole, hdr->len);
		return CONN_FORWARD;
	}
	if (hdr->type == 'Q') {
		struct fe_query q;
		struct keyfind_hint h;

		if (!fe_parse_query(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &q))
			return CONN_FORWARD;
		if (keyfind_hint(q.sql, q.sql_len, &h) || !find_in_settings(c, sh, &f))
			find_in_sql(sh, q.sql, q.sql_len, NULL, &f, &hinted);
	} else {
		struct fe_bind b;

		if (!fe_parse_bind(whole + PKT_HDR_LEN, hdr->len - PKT_HDR_LEN, &b))
			return CONN_FORWARD;
		if (!find_in_settings(c, sh, &f))
			find_in_bind(c, sh, &b, c->shard_unnamed_sql, c->shard_unnamed_len, NULL,
				     NULL, &f, &hinted);
	}
	if (f.found == FOUND_NO_KEY && f.copy.from_stdin && !c->pin_reason) {
		c->home->shard_stats.cross_shard++;
		return fail_transaction(c, hdr, "0A000",
					"a COPY into a sharded database runs outside a "
					"transaction block (its rows go to every shard, each in a "
					"transaction of its own)");
	}
	if (f.found == FOUND_SHARD && f.shard == here && f.cover == MOVE_COVER_SEALED) {
		/* The move saw every unit on these buckets end: nothing may write them here now. */
		c->home->shard_stats.cross_shard++;
		/* 40001: drivers and applications know to run a serialization failure again. */
		return fail_transaction(c, hdr, "40001",
					"the key's bucket is switching to another "
					"shard: the transaction is rolled back, run it again");
	}
	if (f.found == FOUND_SHARD && f.shard == here && f.cover != MOVE_COVER_NONE)
		c->unit_in_move = true;
	if (f.found == FOUND_NEUTRAL || f.found == FOUND_NO_KEY ||
	    (f.found == FOUND_SHARD && f.shard == here))
		return CONN_FORWARD;
	if (hdr->type == 'Q' && c->pending_ready) {
		/* Pipelined behind statements still running: refuse once they are answered. */
		c->drain_wait = true;
		return CONN_STOP;
	}
	c->home->shard_stats.cross_shard++;
	if (c->pin_reason && c->tx_status == 'I' && !c->unsynced) {
		/* Outside a transaction, a session pinned to its server keeps it: refuse only this. */
		snprintf(message, sizeof(message),
			 "this session is pinned to its server on shard %s "
			 "(%s), and the statement's key is elsewhere",
			 set->shards[here].name, c->pin_reason);
		return refuse(c, hdr, "0A000", message);
	}
	if (f.found == FOUND_SHARD && c->tx_status == 'I')
		snprintf(message, sizeof(message),
			 "the statement's key is on shard %s, and the "
			 "batch it belongs to (up to its Sync) runs on shard %s of database %s: a "
			 "batch runs on one shard",
			 set->shards[f.shard].name, set->shards[here].name, c->home->name);
	else if (f.found == FOUND_SHARD)
		snprintf(message, sizeof(message),
			 "the statement's key is on shard %s, and its "
			 "transaction runs on shard %s of database %s: a transaction stays on one "
			 "shard",
			 set->shards[f.shard].name, set->shards[here].name, c->home->name);
	else
		describe_refusal(c, sh, &f, message, sizeof(message));
	return fail_transaction(c, hdr, "0A000", message);
}

/* The client's transaction ended: SET LOCAL pgmux.shard_key no longer applies. */
static void client_shard_end_transaction(struct client *c)
{
	set_text(&c->shard_local.key, NULL, 0);
	set_text(&c->shard_local.shard, NULL, 0);
}

struct database *client_shard_login(struct client *c, struct database *db)
{
	struct finding f = { .found = FOUND_NEUTRAL };
	struct sharding shm, *sh = &shm;
	const struct shards_entry *set;
	struct database *start;
	char message[400];
	int k = 0;

	c->home = db;
	if (!home_sharding(c, sh)) {
		if (sh->set)
			client_close(c, "57P03",
				     "database %s: its shard map (%s) has not been read yet",
				     db->name, sh->set->map);
		else
			client_close(c, "57P03", "database %s has no shards now", db->name);
		return NULL;
	}
	set = sh->set;
	find_in_settings(c, sh, &f);
	if (f.found == FOUND_BAD) {
		client_close(c, "22023", "invalid startup option: %s", f.why);
		return NULL;
	}
	if (f.found == FOUND_SHARD)
		k = f.shard;
	else if (shard_named(set, set->no_shard_key, strlen(set->no_shard_key)) >= 0)
		k = shard_named(set, set->no_shard_key, strlen(set->no_shard_key));
	else if (config_pool_mode(clients_cfg(c->cs), db->entry,
				  config_find_user(clients_cfg(c->cs), c->user)) ==
		 POOL_MODE_SESSION) {
		snprintf(
			message, sizeof(message),
			"database %s is sharded and pooled in session "
			"mode, so its shard is chosen at connect: give the key as a startup option, "
			"options='-c pgmux.shard_key=KEY'",
			db->name);
		client_close(c, "08004", "%s", message);
		return NULL;
	}
	start = client_shard_database(c->cs, db, k);
	if (!start)
		client_close(c, "57P03", "database %s: shard %s has no database now", db->name,
			     set->shards[k].name);
	return start;
}

bool client_take_shard_option(struct client *c, const char *name, const char *value)
{
	if (strcasecmp(name, "pgmux.shard_key") == 0)
		set_text(&c->shard_session.key, value, strlen(value));
	else if (strcasecmp(name, "pgmux.shard") == 0)
		set_text(&c->shard_session.shard, value, strlen(value));
	else
		return false;
	return true;
}

void client_shard_resume(struct client *c)
{
	conn_resume(&c->conn);
}

/* Is p the pool of a database of shard from, of a database split by section set_name? */
static bool pool_on_shard(const struct pool *p, const struct config *cfg, const char *set_name,
			  const char *from)
{
	const struct db_entry *e = p->db->entry;
	const struct shards_entry *set;
	const struct db_entry *parent;

	if (!e || !e->shard_parent[0] || e->shard_index < 0)
		return false;
	parent = config_find_db(cfg, e->shard_parent);
	if (!parent || strcmp(parent->shards, set_name) != 0)
		return false;
	set = config_find_shards(cfg, set_name);
	return set && e->shard_index < set->n_shards &&
	       strcmp(set->shards[e->shard_index].name, from) == 0;
}

/* Does c run a unit of work that began before started_us, or that touches a moving bucket? */
static bool unit_running(const struct client *c, uint64_t started_us)
{
	/* when its unit began: linked to a server, or queued for one */
	uint64_t since = c->server                    ? c->xact_start_us
			 : c->state == CLIENT_WAITING ? c->wait_start_us
						      : 0;

	return since && (c->unit_in_move || since < started_us);
}

int client_units_running(struct pools *pools, const struct config *cfg, const char *set_name,
			 const char *from, uint64_t started_us)
{
	struct list_node *n, *t, *cn, *ct;
	int running = 0;

	list_for_each_safe(n, t, &pools->all) {
		struct pool *p = list_entry(n, struct pool, node);
		struct list_node *lists[] = { &p->active_clients, &p->waiting_clients };

		if (!pool_on_shard(p, cfg, set_name, from))
			continue;
		for (size_t i = 0; i < 2; i++) {
			list_for_each_safe(cn, ct, lists[i]) {
				if (unit_running(list_entry(cn, struct client, node), started_us))
					running++;
			}
		}
	}
	return running;
}

void client_shard_free(struct client *c)
{
	if (c->cs->moves)
		c->cs->moves->forget_client(c->cs->moves_arg, c);
	copysplit_free(c);
	client_fanout_end(c);
	hold_unit_map(c, NULL);
	free(c->shard_session.key);
	free(c->shard_session.shard);
	free(c->shard_local.key);
	free(c->shard_local.shard);
	free(c->shard_unnamed_sql);
}

static const char *found_name(enum found f)
{
	switch (f) {
	case FOUND_SHARD:
		return "key";
	case FOUND_NEUTRAL:
		return "touches no table: the client's current shard";
	case FOUND_NO_KEY:
		return "no key";
	case FOUND_CROSS:
		return "keys on several shards";
	case FOUND_BAD:
		return "unreadable key";
	}
	return "";
}

bool client_shard_explain(const struct config *cfg, const struct db_entry *home,
			  const struct loaded_shard_map *map, const char *sql, size_t len,
			  struct shard_explain *out)
{
	const struct shards_entry *set = config_find_shards(cfg, home->shards);
	struct sharding shm = { set, map, NULL }, *sh = &shm;
	struct finding f = { .found = FOUND_NEUTRAL };
	bool hinted = false;

	memset(out, 0, sizeof(*out));
	out->shard = -1;
	if (!set || !map)
		return false;
	find_in_sql(sh, sql, len, NULL, &f, &hinted);
	snprintf(out->found_by, sizeof(out->found_by), "%s%s", hinted ? "hint: " : "",
		 found_name(f.found));
	if (f.found == FOUND_NO_KEY && strcmp(set->no_shard_key, "all") == 0) {
		snprintf(out->found_by, sizeof(out->found_by), "no key: every shard in turn");
		f.found = FOUND_NEUTRAL;
	} else if (f.found == FOUND_NO_KEY && strcmp(set->no_shard_key, "error") != 0) {
		f.found = FOUND_SHARD;
		f.shard = shard_named(set, set->no_shard_key, strlen(set->no_shard_key));
		snprintf(out->found_by, sizeof(out->found_by), "no key: no_shard_key");
	}
	if (f.found == FOUND_SHARD)
		out->shard = f.shard;
	else if (f.found != FOUND_NEUTRAL)
		describe_refusal_for(home->name, sh, &f, out->refusal, sizeof(out->refusal));
	return true;
}

bool client_shard_of_key(const struct config *cfg, const struct db_entry *home,
			 const struct loaded_shard_map *map, const char *text,
			 struct shard_key_place *out, char *err, size_t errlen)
{
	const struct shards_entry *set = config_find_shards(cfg, home->shards);
	const struct shard_map *m;
	struct shard_key key;
	char why[120];

	if (!set || !map) {
		snprintf(err, errlen,
			 set ? "the shard map of database %s has not been read yet"
			     : "database %s is not sharded",
			 home->name);
		return false;
	}
	if (!shard_key_from_text((enum shard_key_type)set->key_type, text, strlen(text), &key, why,
				 sizeof(why))) {
		snprintf(err, errlen, "shard key \"%s\": %s", text, why);
		return false;
	}
	m = map->map;
	out->hash = shard_key_hash(&key, m->seed);
	out->bucket = bucket_of(out->hash, m->n_buckets);
	out->shard = shard_of_key(map, &key, out->hash);
	out->by_override = out->shard != map->shard_of[shard_map_shard_of(m, out->hash)];
	return true;
}

/* ---- the rounds of a read sent to every shard (see struct shard_fanout) ---- */

bool client_fanout_midway(const struct client *c)
{
	return c->fanout && c->fanout->shard > 0;
}

/* Forget the fan-out (its end, or the client's). */
static void client_fanout_end(struct client *c)
{
	if (!c->fanout)
		return;
	if (c->home && c->home->fanouts_running > 0)
		c->home->fanouts_running--;
	free(c->fanout->request);
	free(c->fanout);
	c->fanout = NULL;
}

/* "SELECT 12": the verb and the count of a CommandComplete. */
static void add_rows(struct shard_fanout *fo, const uint8_t *whole, uint32_t len)
{
	const char *tag = (const char *)whole + PKT_HDR_LEN;
	size_t n = strnlen(tag, len - PKT_HDR_LEN);
	const char *last = memrchr(tag, ' ', n);

	if (last)
		fo->rows += strtoull(last + 1, NULL, 10);
	snprintf(fo->verb, sizeof(fo->verb), "%.*s", (int)strcspn(tag, " "), tag);
}

enum conn_action client_fanout_message(struct client *c, const struct pkt_header *hdr,
				       const uint8_t *whole)
{
	struct shard_fanout *fo = c->fanout;

	switch (hdr->type) {
	case 'C':
		if (!whole)
			return CONN_NEED_WHOLE;
		add_rows(fo, whole, hdr->len);
		return CONN_CONSUME; /* one for all shards, before the last ReadyForQuery */
	case 'E':
		fo->failed = true;
		return CONN_FORWARD;
	case '1': /* ParseComplete */
	case '2': /* BindComplete */
	case 't': /* ParameterDescription */
	case 'T': /* RowDescription */
	case 'n': /* NoData */
		/* The client heard these from the first shard. */
		return fo->shard > 0 ? CONN_CONSUME : CONN_FORWARD;
	default:
		return CONN_FORWARD;
	}
}

bool client_fanout_on_ready(struct client *c)
{
	struct shard_fanout *fo = c->fanout;
	struct msgbuf mb;
	char tag[48];

	if (!fo->failed && fo->shard + 1 < fo->n_shards) {
		fo->shard++;
		fo->round_due = true;
		return true;
	}
	if (!fo->failed) {
		snprintf(tag, sizeof(tag), "%s %llu", fo->verb[0] ? fo->verb : "SELECT",
			 (unsigned long long)fo->rows);
		mb_init(&mb);
		build_command_complete(&mb, tag);
		client_send(c, &mb);
		mb_free(&mb);
	}
	client_fanout_end(c);
	return false;
}

void client_fanout_next(struct client *c)
{
	struct shard_fanout *fo = c->fanout;

	if (!conn_unread(&c->conn, fo->request, (uint32_t)fo->len)) {
		client_fanout_end(c);
		client_close(c, "53200", "out of memory");
		return;
	}
	conn_resume(&c->conn);
}
