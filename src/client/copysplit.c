/*
 * client/copysplit: COPY table FROM STDIN into a sharded database, each row to its key's shard.
 *
 * The rows of one COPY belong to several shards, so the COPY runs as one transaction on every
 * shard at once. For each shard pgmux opens a leg: a client of its own (client_open_internal)
 * in that shard's pool, so each leg gets its server, role (the primary: COPY FROM writes), limits
 * and session settings as any client would. Each leg runs BEGIN and the client's own COPY
 * statement; every row of the client's data goes, whole and unchanged, to the leg of its key's
 * shard (a header line goes to all); at the client's CopyDone every leg ends its COPY, and once
 * all have succeeded every leg commits. The client hears one CommandComplete with the total.
 *
 * Legs are opened one after the other in shard order, each once the previous one is copying (so
 * holds its server): two splits waiting for each other's servers cannot deadlock.
 *
 * Invariants: nothing commits unless every shard's COPY succeeded; any failure before the commit
 * (a shard's error, a bad key, CopyFail, a cancel, a lost leg) closes every leg, which rolls its
 * transaction back, and the client gets one error. A commit failing on one shard after another
 * shard committed cannot be undone: the error then names the shards that committed.
 */
#include "client/copysplit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/clients.h"
#include "client/route.h"
#include "client/shard.h"
#include "config/config.h"
#include "core/clock.h"
#include "ev/conn.h"
#include "pool/pool.h"
#include "proto/be.h"
#include "proto/build.h"
#include "shard/copyrows.h"
#include "shard/keyfind.h"

/* Rows for one leg are sent as one CopyData once they reach this size (or the message ends). */
#define LEG_CHUNK (64 * 1024)

enum split_phase {
	SPLIT_OPENING,    /* legs are opened one after the other */
	SPLIT_STREAMING,  /* the client sends its rows */
	SPLIT_ENDING,     /* CopyDone went to every leg: waiting for their counts */
	SPLIT_COMMITTING, /* COMMIT went to every leg */
	SPLIT_OVER,       /* answered; after a failure the client's copy messages are dropped */
};

enum leg_state {
	LEG_LOGIN,      /* its client logs in */
	LEG_OPENING,    /* BEGIN (and the column query) sent, then the COPY */
	LEG_COPYING,    /* in COPY: takes rows */
	LEG_ENDING,     /* CopyDone sent */
	LEG_ENDED,      /* its COPY succeeded, its transaction waits */
	LEG_COMMITTING, /* COMMIT sent */
	LEG_COMMITTED,
	LEG_FAILED, /* its COMMIT failed */
};

struct copy_split;

struct copy_leg {
	struct copy_split *split;
	int shard;
	struct conn conn; /* pgmux's end of the leg client's socket */
	enum leg_state state;
	struct msgbuf out; /* a CopyData being filled with its rows */
	size_t out_lenpos;
	bool out_open;
	char commit_error[200]; /* LEG_FAILED: why */
};

struct copy_split {
	struct client *c;
	enum split_phase phase;
	bool failed; /* SPLIT_OVER: the COPY failed (its copy messages are dropped) */
	struct loaded_shard_map *map; /* held for the whole COPY */
	int key_type;
	char key[64]; /* the key column */
	char table[280];
	char (*names)[64]; /* the shards' names */
	int n_legs;
	struct copy_leg *legs;       /* legs[k] for shard k, opened in order */
	int opened;                  /* legs [0, opened) exist */
	int waiting;                 /* legs whose answer the current phase waits for */
	char *sql;                   /* the client's COPY statement */
	int key_column;              /* the key's field in each row; -1: asked from the table */
	int columns_seen;            /* rows of the column query so far */
	struct keyfind_copy options; /* as the COPY statement gave them */
	struct copy_format format;   /* pointing into options */
	struct copy_rows rows;       /* read from SPLIT_STREAMING on */
	bool rows_ready;
	uint8_t *copy_in; /* leg 0's CopyInResponse, told to the client */
	uint32_t copy_in_len;
	uint64_t total; /* rows the shards copied */
};

static enum conn_action leg_message(void *owner, struct conn *conn, const struct pkt_header *hdr,
				    const uint8_t *whole);
static void leg_closed(void *owner, struct conn *conn, enum conn_close_reason why);

static const struct conn_ops leg_ops = { leg_message, NULL, leg_closed };

/* ---- the end of a split ---- */

static void close_leg(struct copy_leg *leg, bool terminate)
{
	static const uint8_t terminate_msg[] = { 'X', 0, 0, 0, 4 };

	if (conn_is_open(&leg->conn)) {
		if (terminate)
			conn_close_with(&leg->conn, terminate_msg, sizeof(terminate_msg));
		else
			conn_close(&leg->conn);
	}
	mb_free(&leg->out);
	leg->out_open = false;
}

/* Answered: close the legs (a leg closed in a transaction rolls it back), let the client go on. */
static void split_over(struct copy_split *sp, bool failed)
{
	struct client *c = sp->c;

	for (int k = 0; k < sp->opened; k++)
		close_leg(&sp->legs[k], !failed);
	sp->phase = SPLIT_OVER;
	sp->failed = failed;
	if (c->conn.peer)
		conn_unlink(&c->conn);
	conn_resume(&c->conn);
}

/* Fail the whole COPY with mb's ErrorResponse: nothing of it is committed. */
static void split_fail_with(struct copy_split *sp, struct msgbuf *mb)
{
	struct client *c = sp->c;

	build_ready(mb, 'I');
	client_send(c, mb);
	mb_free(mb);
	client_log(LOG_LVL_INFO, c, "COPY into %s split over shards failed: rolled back",
		   sp->table);
	split_over(sp, true);
}

static void split_fail(struct copy_split *sp, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void split_fail(struct copy_split *sp, const char *sqlstate, const char *fmt, ...)
{
	struct msgbuf mb;
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	mb_init(&mb);
	build_error(&mb, "ERROR", sqlstate, "%s", text);
	split_fail_with(sp, &mb);
}

/* A shard's ErrorResponse, told to the client with the shard's name. */
static void split_fail_shard(struct copy_leg *leg, const uint8_t *whole, uint32_t len)
{
	struct copy_split *sp = leg->split;
	struct be_error e;

	if (!be_parse_error(whole + PKT_HDR_LEN, len - PKT_HDR_LEN, &e) || !e.sqlstate ||
	    !e.message)
		e = (struct be_error){ "ERROR", "XX000", "malformed error" };
	split_fail(sp, e.sqlstate, "shard %s: %s", sp->names[leg->shard], e.message);
}

static void split_succeed(struct copy_split *sp)
{
	char tag[40];

	snprintf(tag, sizeof(tag), "COPY %llu", (unsigned long long)sp->total);
	client_send_tag_and_ready(sp->c, tag, 'I');
	split_over(sp, false);
}

/* Every leg answered its COMMIT: all committed, or some failed after others committed. */
static void commits_answered(struct copy_split *sp)
{
	char committed[512] = "", *why = NULL;
	size_t n = 0;

	for (int k = 0; k < sp->n_legs; k++) {
		struct copy_leg *leg = &sp->legs[k];

		if (leg->state == LEG_COMMITTED && n < sizeof(committed))
			n += (size_t)snprintf(committed + n, sizeof(committed) - n, "%s%s",
					      n ? ", " : "", sp->names[k]);
		else if (!why)
			why = leg->commit_error;
	}
	if (!why) {
		split_succeed(sp);
		return;
	}
	client_log(LOG_LVL_ERROR, sp->c, "COPY into %s: a commit failed after shards %s committed",
		   sp->table, n ? committed : "(none)");
	split_fail(sp, "40003", "COPY into %s committed on shards %s but not on every shard: %s",
		   sp->table, n ? committed : "(none)", why);
}

/* ---- rows to legs ---- */

/* Send the CopyData being filled for leg. */
static void leg_flush(struct copy_leg *leg)
{
	if (!leg->out_open)
		return;
	mb_end(&leg->out, leg->out_lenpos);
	conn_write(&leg->conn, leg->out.data, leg->out.len);
	mb_reset(&leg->out);
	leg->out_open = false;
}

static void leg_put(struct copy_leg *leg, const uint8_t *data, size_t len)
{
	if (!leg->out_open) {
		leg->out_lenpos = mb_begin(&leg->out, 'd');
		leg->out_open = true;
	}
	mb_put_bytes(&leg->out, data, len);
	if (leg->out.len >= LEG_CHUNK)
		leg_flush(leg);
}

/*
 * The client waits while the fullest leg's queue is over the mark: linked to it, the client's
 * socket is read only once that leg has drained (ev/conn's back-pressure between peers).
 */
static void pace_client(struct copy_split *sp)
{
	struct conn *cc = &sp->c->conn, *fullest = NULL;
	size_t most = 0;

	for (int k = 0; k < sp->opened; k++) {
		size_t queued = conn_pending_output(&sp->legs[k].conn);

		if (queued > most) {
			most = queued;
			fullest = &sp->legs[k].conn;
		}
	}
	if (cc->peer == fullest)
		return;
	if (cc->peer)
		conn_unlink(cc);
	if (fullest)
		conn_link(cc, fullest);
}

static bool on_row(const struct copy_row *row, void *arg)
{
	struct copy_split *sp = arg;
	char why[160];
	int k;

	if (row->header) {
		for (int i = 0; i < sp->n_legs; i++)
			leg_put(&sp->legs[i], row->data, row->len);
		return true;
	}
	if (row->key_null) {
		split_fail(sp, "23502",
			   "COPY %s, line %llu: the shard key %s is NULL, so the row "
			   "belongs to no shard",
			   sp->table, (unsigned long long)row->line, sp->key);
		return false;
	}
	k = client_shard_of_text(sp->map, sp->key_type, row->key, row->key_len, why, sizeof(why));
	if (k < 0 || k >= sp->n_legs) {
		split_fail(sp, "22P02", "COPY %s, line %llu: %s", sp->table,
			   (unsigned long long)row->line,
			   k < 0 ? why : "its shard is not in the map");
		return false;
	}
	leg_put(&sp->legs[k], row->data, row->len);
	return true;
}

static void flush_all(struct copy_split *sp)
{
	for (int k = 0; k < sp->n_legs; k++)
		leg_flush(&sp->legs[k]);
	pace_client(sp);
}

/* ---- legs ---- */

static bool open_leg(struct copy_split *sp);

/*
 * The query that lists the table's columns in the order a COPY without a column list takes
 * them (generated columns are not copied).
 */
static void build_column_query(struct msgbuf *mb, const char *table)
{
	char literal[600], sql[800];
	size_t n = 0;

	/* The table's name as a string literal: its quotes doubled. */
	for (const char *p = table; *p && n + 2 < sizeof(literal); p++) {
		if (*p == '\'')
			literal[n++] = '\'';
		literal[n++] = *p;
	}
	literal[n] = '\0';
	snprintf(sql, sizeof(sql),
		 "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE "
		 "a.attrelid = '%s'::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped "
		 "AND a.attgenerated = '' ORDER BY a.attnum",
		 literal);
	build_query(mb, sql);
}

/*
 * What a leg runs once logged in: the column query where needed (alone, before the transaction:
 * in it, a read could take the transaction to a replica), then BEGIN and the client's COPY.
 */
static void leg_start(struct copy_leg *leg)
{
	struct copy_split *sp = leg->split;
	struct msgbuf mb;

	mb_init(&mb);
	if (leg->shard == 0 && sp->key_column < 0)
		build_column_query(&mb, sp->table);
	build_query(&mb, "BEGIN");
	build_query(&mb, sp->sql);
	conn_write(&leg->conn, mb.data, mb.len);
	mb_free(&mb);
	leg->state = LEG_OPENING;
}

/* A row of the column query: the table's columns in the order a COPY without a list takes. */
static void leg_column(struct copy_leg *leg, const uint8_t *body, uint32_t len)
{
	struct copy_split *sp = leg->split;
	const uint8_t *name;
	int32_t n;

	if (leg->state == LEG_OPENING && be_data_row_column(body, len, 0, &name, &n) && n >= 0 &&
	    (size_t)n == strlen(sp->key) && memcmp(name, sp->key, (size_t)n) == 0)
		sp->key_column = sp->columns_seen;
	sp->columns_seen++;
}

/* The leg is copying: the next one opens, or, all open, the client may send its rows. */
static void leg_copying(struct copy_leg *leg, const uint8_t *whole, uint32_t len)
{
	struct copy_split *sp = leg->split;

	if (leg->state != LEG_OPENING)
		return;
	leg->state = LEG_COPYING;
	if (leg->shard == 0) {
		if (sp->key_column < 0) {
			split_fail(sp, "42703",
				   "COPY into sharded table %s: it has no column %s (the "
				   "shard key)",
				   sp->table, sp->key);
			return;
		}
		sp->copy_in = malloc(len);
		if (!sp->copy_in) {
			split_fail(sp, "53200", "out of memory");
			return;
		}
		memcpy(sp->copy_in, whole, len);
		sp->copy_in_len = len;
	}
	if (sp->opened < sp->n_legs) {
		if (!open_leg(sp))
			split_fail(sp, "53200", "could not open a connection to shard %s",
				   sp->names[sp->opened]);
		return;
	}
	sp->rows_ready = true;
	if (!copy_rows_init(&sp->rows, &sp->format, sp->key_column,
			    (size_t)clients_cfg(sp->c->cs)->max_packet_size)) {
		split_fail(sp, "22023", "COPY %s: %s", sp->table, copy_rows_error(&sp->rows));
		return;
	}
	sp->phase = SPLIT_STREAMING;
	client_send_bytes(sp->c, sp->copy_in, sp->copy_in_len);
	conn_resume(&sp->c->conn);
}

/* A CommandComplete: a COPY's count, or the COMMIT (a ROLLBACK tag is a failed commit). */
static void leg_complete(struct copy_leg *leg, const uint8_t *body, uint32_t len)
{
	const char *tag = (const char *)body;
	size_t n = strnlen(tag, len);

	if (leg->state == LEG_ENDING && n > 5 && memcmp(tag, "COPY ", 5) == 0)
		leg->split->total += strtoull(tag + 5, NULL, 10);
	else if (leg->state == LEG_COMMITTING && strncmp(tag, "COMMIT", n) != 0)
		snprintf(leg->commit_error, sizeof(leg->commit_error), "shard %s answered %.*s",
			 leg->split->names[leg->shard], (int)(n > 40 ? 40 : n), tag);
}

static void commit_all(struct copy_split *sp)
{
	struct msgbuf mb;

	mb_init(&mb);
	build_query(&mb, "COMMIT");
	sp->phase = SPLIT_COMMITTING;
	sp->waiting = sp->n_legs;
	for (int k = 0; k < sp->n_legs; k++) {
		sp->legs[k].state = LEG_COMMITTING;
		conn_write(&sp->legs[k].conn, mb.data, mb.len);
	}
	mb_free(&mb);
}

static void leg_ready(struct copy_leg *leg, char tx_status)
{
	struct copy_split *sp = leg->split;

	switch (leg->state) {
	case LEG_LOGIN:
		leg_start(leg);
		break;
	case LEG_ENDING:
		leg->state = LEG_ENDED;
		if (--sp->waiting == 0)
			commit_all(sp);
		break;
	case LEG_COMMITTING:
		if (tx_status == 'I' && !leg->commit_error[0])
			leg->state = LEG_COMMITTED;
		else
			leg->state = LEG_FAILED;
		if (--sp->waiting == 0)
			commits_answered(sp);
		break;
	default:
		break; /* BEGIN's and the column query's */
	}
}

/* A shard's error: before the commit it fails the COPY; in it, that shard's commit failed. */
static void leg_error(struct copy_leg *leg, const uint8_t *whole, uint32_t len)
{
	struct be_error e;

	if (leg->state != LEG_COMMITTING) {
		split_fail_shard(leg, whole, len);
		return;
	}
	if (!be_parse_error(whole + PKT_HDR_LEN, len - PKT_HDR_LEN, &e) || !e.message)
		e.message = "malformed error";
	snprintf(leg->commit_error, sizeof(leg->commit_error), "shard %s: %s",
		 leg->split->names[leg->shard], e.message);
}

static enum conn_action leg_message(void *owner, struct conn *conn, const struct pkt_header *hdr,
				    const uint8_t *whole)
{
	struct copy_leg *leg = owner;
	const uint8_t *body = whole ? whole + PKT_HDR_LEN : NULL;
	uint32_t blen = hdr->len - PKT_HDR_LEN;

	if (leg->split->phase == SPLIT_OVER)
		return CONN_CONSUME;
	switch (hdr->type) {
	case 'E':
	case 'D':
	case 'G':
	case 'C':
	case 'Z':
		break;
	default:
		return CONN_CONSUME; /* the login's messages, notices, descriptions */
	}
	if (!whole)
		return CONN_NEED_WHOLE;
	switch (hdr->type) {
	case 'E':
		leg_error(leg, whole, hdr->len);
		break;
	case 'D':
		leg_column(leg, body, blen);
		break;
	case 'G':
		leg_copying(leg, whole, hdr->len);
		break;
	case 'C':
		leg_complete(leg, body, blen);
		break;
	case 'Z':
		leg_ready(leg, blen ? (char)body[0] : 'I');
		break;
	}
	return conn_is_open(conn) ? CONN_CONSUME : CONN_CLOSED;
}

static void leg_closed(void *owner, struct conn *conn, enum conn_close_reason why)
{
	struct copy_leg *leg = owner;
	struct copy_split *sp = leg->split;

	(void)why;
	conn_close(conn);
	if (sp->phase == SPLIT_OVER)
		return;
	if (leg->state != LEG_COMMITTING) {
		split_fail(sp, "08006",
			   "COPY into %s: the connection to shard %s was lost; nothing "
			   "was committed",
			   sp->table, sp->names[leg->shard]);
		return;
	}
	snprintf(leg->commit_error, sizeof(leg->commit_error),
		 "shard %s: the connection was lost "
		 "during its COMMIT (it may or may not have committed)",
		 sp->names[leg->shard]);
	leg->state = LEG_FAILED;
	if (--sp->waiting == 0)
		commits_answered(sp);
}

/* Open the next leg: a client of pgmux's own in shard sp->opened's pool. */
static bool open_leg(struct copy_split *sp)
{
	struct client *c = sp->c;
	int k = sp->opened;
	struct copy_leg *leg = &sp->legs[k];
	struct database *db = client_shard_database(c->cs, c->home, k);
	struct pool *p = db ? pool_get(c->cs->pools, db, c->pool->user->name) : NULL;
	int fd;

	if (!p)
		return false;
	leg->split = sp;
	leg->shard = k;
	leg->state = LEG_LOGIN;
	mb_init(&leg->out);
	conn_init(&leg->conn, c->cs->loop, &leg_ops, leg);
	conn_set_framing(&leg->conn, false, (uint32_t)clients_cfg(c->cs)->max_packet_size);
	fd = conn_attach_pair(&leg->conn);
	if (fd < 0)
		return false;
	sp->opened++;
	return client_open_internal(c->cs, fd, c, p);
}

/* ---- the client's side ---- */

static bool take_format(struct copy_split *sp, const struct keyfind_copy *copy, char *why,
			size_t len)
{
	struct keyfind_copy *o = &sp->options;
	struct copy_format *f = &sp->format;

	if (copy->format[0] && strcmp(copy->format, "csv") != 0 &&
	    strcmp(copy->format, "text") != 0) {
		snprintf(why, len,
			 "a COPY in %s format cannot be split by key: use text or CSV, or "
			 "load one shard at a time with a /* pgmux:shard=NAME */ comment",
			 copy->format);
		return false;
	}
	if (copy->unsplittable) {
		snprintf(why, len,
			 "the options of this COPY cannot be read for splitting it by key "
			 "(%s)",
			 copy->unsplittable);
		return false;
	}
	*o = *copy;
	memset(f, 0, sizeof(*f));
	f->csv = strcmp(o->format, "csv") == 0;
	f->header = o->header > 0;
	f->delimiter = o->delimiter[0] ? o->delimiter : NULL;
	f->quote = o->quote[0] ? o->quote : NULL;
	f->escape = o->escape[0] ? o->escape : NULL;
	f->null_string = o->null_given ? o->null_string : NULL;
	copy_format_defaults(f);
	return copy_format_check(f, why, len);
}

static struct copy_split *split_new(struct client *c, const struct shards_entry *set,
				    const struct loaded_shard_map *map, const char *sql, size_t len)
{
	struct copy_split *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return NULL;
	sp->c = c;
	sp->n_legs = set->n_shards;
	sp->legs = calloc((size_t)set->n_shards, sizeof(*sp->legs));
	sp->names = calloc((size_t)set->n_shards, sizeof(*sp->names));
	sp->sql = strndup(sql, len);
	if (!sp->legs || !sp->names || !sp->sql) {
		free(sp->legs);
		free(sp->names);
		free(sp->sql);
		free(sp);
		return NULL;
	}
	for (int k = 0; k < set->n_shards; k++)
		snprintf(sp->names[k], sizeof(sp->names[k]), "%s", set->shards[k].name);
	sp->map = (struct loaded_shard_map *)map;
	sp->map->refs++;
	sp->key_type = set->key_type;
	snprintf(sp->key, sizeof(sp->key), "%s", set->key);
	return sp;
}

static enum conn_action refuse_copy(struct client *c, const char *sqlstate, const char *why)
{
	client_send_error(c, sqlstate, "%s", why);
	client_send_tag_and_ready(c, NULL, 'I');
	return CONN_CONSUME;
}

enum conn_action copysplit_start(struct client *c, const struct shards_entry *set,
				 const struct loaded_shard_map *map,
				 const struct keyfind_copy *copy, const char *sql, size_t len)
{
	struct copy_split *sp;
	char why[300];

	if (copy->n_columns > 0 && copy->key_column < 0) {
		snprintf(why, sizeof(why),
			 "COPY into a sharded database must give the shard key "
			 "%s among its columns",
			 set->key);
		return refuse_copy(c, "0A000", why);
	}
	sp = split_new(c, set, map, sql, len);
	if (!sp)
		return refuse_copy(c, "53200", "out of memory");
	snprintf(sp->table, sizeof(sp->table), "%s", copy->table);
	sp->key_column = copy->n_columns > 0 ? copy->key_column : -1;
	c->copy_split = sp;
	if (!take_format(sp, copy, why, sizeof(why))) {
		copysplit_free(c);
		return refuse_copy(c, "0A000", why);
	}
	client_log(LOG_LVL_DEBUG, c, "COPY into %s split over %d shards", sp->table, sp->n_legs);
	if (!open_leg(sp)) {
		split_fail(sp, "53200", "could not open a connection to shard %s", sp->names[0]);
		return CONN_CONSUME;
	}
	return CONN_CONSUME;
}

/* After feeding rows: false when the COPY failed (the split is over). */
static bool rows_fed(struct copy_split *sp, enum copy_rows_status st)
{
	if (st == COPY_ROWS_MORE || st == COPY_ROWS_END)
		return true;
	if (st == COPY_ROWS_NO_KEY)
		split_fail(sp, "22P04", "COPY %s: %s, %s", sp->table, copy_rows_error(&sp->rows),
			   sp->key);
	else if (st != COPY_ROWS_STOPPED) /* stopped: on_row has failed the COPY already */
		split_fail(sp, "22P04", "COPY %s: %s", sp->table, copy_rows_error(&sp->rows));
	return false;
}

/* The client's CopyData: its rows to their shards' legs. */
static void client_rows(struct copy_split *sp, const uint8_t *whole, uint32_t len)
{
	if (rows_fed(sp,
		     copy_rows_feed(&sp->rows, whole + PKT_HDR_LEN, len - PKT_HDR_LEN, on_row, sp)))
		flush_all(sp);
}

/* The client's CopyDone: the last row, then every leg ends its COPY. */
static void client_done(struct copy_split *sp)
{
	static const uint8_t copy_done[] = { 'c', 0, 0, 0, 4 };

	if (!rows_fed(sp, copy_rows_finish(&sp->rows, on_row, sp)))
		return;
	flush_all(sp);
	sp->phase = SPLIT_ENDING;
	sp->waiting = sp->n_legs;
	for (int k = 0; k < sp->n_legs; k++) {
		sp->legs[k].state = LEG_ENDING;
		conn_write(&sp->legs[k].conn, copy_done, sizeof(copy_done));
	}
}

static void client_fail(struct copy_split *sp, const uint8_t *whole, uint32_t len)
{
	const char *msg = (const char *)whole + PKT_HDR_LEN;
	size_t n = strnlen(msg, len - PKT_HDR_LEN);

	split_fail(sp, "57014", "COPY from stdin failed: %.*s", (int)(n > 300 ? 300 : n), msg);
}

static enum conn_action streaming_message(struct client *c, struct copy_split *sp,
					  const struct pkt_header *hdr, const uint8_t *whole)
{
	switch (hdr->type) {
	case 'd': /* CopyData */
	case 'f': /* CopyFail */
		if (!whole)
			return CONN_NEED_WHOLE;
		if (hdr->type == 'd')
			client_rows(sp, whole, hdr->len);
		else
			client_fail(sp, whole, hdr->len);
		return CONN_CONSUME;
	case 'c': /* CopyDone */
		client_done(sp);
		return CONN_CONSUME;
	case 'H': /* Flush and Sync mean nothing during COPY IN */
	case 'S':
		return CONN_CONSUME;
	default:
		client_close(c, "08P01", "unexpected message type 0x%02X during COPY from stdin",
			     (unsigned char)hdr->type);
		return CONN_CLOSED;
	}
}

enum conn_action copysplit_client_message(struct client *c, const struct pkt_header *hdr,
					  const uint8_t *whole)
{
	struct copy_split *sp = c->copy_split;

	c->request_time_us = clock_now_us();
	switch (sp->phase) {
	case SPLIT_STREAMING:
		return streaming_message(c, sp, hdr, whole);
	case SPLIT_OVER:
		/* As PostgreSQL: after a failed COPY, the client's copy messages are dropped. */
		if (sp->failed && (hdr->type == 'd' || hdr->type == 'c' || hdr->type == 'f'))
			return CONN_CONSUME;
		copysplit_free(c);
		return CONN_FORWARD;
	default:
		return CONN_STOP; /* resumed when the phase changes */
	}
}

void copysplit_cancel(struct client *c)
{
	struct copy_split *sp = c->copy_split;

	if (sp && sp->phase != SPLIT_OVER && sp->phase != SPLIT_COMMITTING)
		split_fail(sp, "57014", "canceling statement due to user request");
}

void copysplit_free(struct client *c)
{
	struct copy_split *sp = c->copy_split;

	if (!sp)
		return;
	for (int k = 0; k < sp->opened; k++)
		close_leg(&sp->legs[k], false);
	if (c->conn.peer && sp->phase != SPLIT_OVER)
		conn_unlink(&c->conn);
	if (sp->rows_ready)
		copy_rows_free(&sp->rows);
	config_shard_map_unref(sp->map);
	free(sp->copy_in);
	free(sp->legs);
	free(sp->names);
	free(sp->sql);
	free(sp);
	c->copy_split = NULL;
}
