/*
 * client/route: the start of a unit of work of a client of a routed database (cluster=). Its
 * first message is classified and the unit is sent where the router says; a bare BEGIN is
 * answered by pgmux and sent later with the first real statement, so the route is chosen on
 * real SQL; SET pgmux.route is pgmux's own. A unit that cannot run (no primary in time, no
 * replica with read_fallback = error) gets an error and its messages are dropped up to the
 * point where the client expects ReadyForQuery, so the session goes on.
 */
#include "client/route.h"
#include "client/prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "ev/conn.h"
#include "pool/pool.h"
#include "proto/build.h"
#include "proto/fe.h"
#include "route/classify.h"
#include "route/router.h"
#include "server/server.h"

/* Longer statements are not held whole to be classified: they go to the primary. */
#define ROUTE_PEEK_MAX (64 * 1024)

void client_send_tag_and_ready(struct client *c, const char *tag, char tx_status)
{
	struct msgbuf mb;

	mb_init(&mb);
	if (tag)
		build_command_complete(&mb, tag);
	build_ready(&mb, tx_status);
	client_send(c, &mb);
	mb_free(&mb);
	c->tx_status = tx_status;
}

/*
 * The query text of a Query, Parse, or Bind of a named statement; NULL when there is none, or
 * when the message is malformed (it goes to the primary, which answers it as PostgreSQL does,
 * or pgmux answers it: see prepared.c).
 */
static const char *unit_sql(struct client *c, const struct pkt_header *hdr, const uint8_t *whole,
			    size_t *len)
{
	const uint8_t *body = whole + PKT_HDR_LEN;
	size_t blen = hdr->len - PKT_HDR_LEN;
	struct fe_query q;
	struct fe_parse p;
	struct fe_bind b;

	switch (hdr->type) {
	case 'Q':
		if (!fe_parse_query(body, blen, &q))
			return NULL;
		*len = q.sql_len;
		return q.sql;
	case 'P':
		if (!fe_parse_parse(body, blen, &p))
			return NULL;
		*len = p.query_len;
		return p.query;
	case 'B':
		if (!fe_parse_bind(body, blen, &b) || !*b.statement)
			return NULL;
		return prepared_query_of(c, b.statement, len);
	default:
		return NULL;
	}
}

void client_fail_unit(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	pool_drop_request(c);
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	client_send_error(c, sqlstate, "%s", message);
	client_log(LOG_LVL_INFO, c, "unit of work refused: %s", sqlstate);
	c->discarding = DISCARD_START;
	conn_resume(&c->conn);
}

enum conn_action client_discard_packet(struct client *c, const struct pkt_header *hdr)
{
	bool first = c->discarding == DISCARD_START;

	if (c->discarding == DISCARD_ANSWERED) {
		if (hdr->type == 'S')
			c->discarding = DISCARD_NONE;
		return CONN_CONSUME;
	}

	c->discarding = DISCARD_TO_SYNC;
	if (hdr->type == 'S' || (hdr->type == 'Q' && first)) {
		/* An explicit transaction that failed is aborted, as on a server. */
		client_send_tag_and_ready(c, NULL, c->tx_status == 'I' ? 'I' : 'E');
		c->discarding = DISCARD_NONE;
	}
	return CONN_CONSUME;
}

/* Does sql[0..len) contain word, whatever the case? (Good enough for keywords that no
 * identifier of these short statements would hold.) */
static bool memmem_nocase(const char *sql, size_t len, const char *word)
{
	size_t wl = strlen(word);

	for (size_t i = 0; i + wl <= len; i++) {
		if (strncasecmp(sql + i, word, wl) == 0)
			return true;
	}
	return false;
}

/* A statement's first keyword is word (case-insensitive)? */
static bool starts_with_word(const char *sql, size_t len, const char *word)
{
	size_t i = 0, wl = strlen(word);

	while (i < len && strchr(" \t\r\n;(", sql[i]))
		i++;
	return len - i >= wl && strncasecmp(sql + i, word, wl) == 0 &&
	       (len - i == wl || !((sql[i + wl] | 0x20) >= 'a' && (sql[i + wl] | 0x20) <= 'z'));
}

static void note_route_hint(struct client *c, const struct route_result *r)
{
	if (r->set_local && c->deferred_begin)
		c->begin_hint = (uint8_t)r->hint;
	else if (!r->set_local)
		c->session_hint = (uint8_t)r->hint;
}

/* SET pgmux.route = primary | replica | auto: pgmux's own setting, answered here. */
static enum conn_action set_route_hint(struct client *c, const struct route_result *r)
{
	if (r->hint == ROUTE_HINT_INVALID) {
		client_send_error(c, "22023",
				  "invalid value for pgmux.route (use primary, replica or auto)");
		client_send_tag_and_ready(c, NULL, c->tx_status == 'I' ? 'I' : 'E');
		return CONN_CONSUME;
	}
	note_route_hint(c, r);
	client_send_tag_and_ready(c, "SET", c->tx_status);
	return CONN_CONSUME;
}

static void drop_deferred_begin(struct client *c)
{
	free(c->deferred_begin);
	c->deferred_begin = NULL;
}

/* A Query inside a transaction whose BEGIN pgmux holds: some need no server at all. */
static bool answered_in_deferred_txn(struct client *c, const struct route_result *r,
				     const char *sql, size_t len, enum conn_action *act)
{
	if (r->cls == ROUTE_TXN_END && r->statements == 1 &&
	    !starts_with_word(sql, len, "prepare")) {
		bool rollback = c->tx_status == 'E' || starts_with_word(sql, len, "rollback") ||
				starts_with_word(sql, len, "abort");
		/* COMMIT AND CHAIN starts the same (still empty) transaction again. */
		bool chain = memmem_nocase(sql, len, "chain") &&
			     !memmem_nocase(sql, len, "no chain");

		if (!chain)
			drop_deferred_begin(c);
		client_send_tag_and_ready(c, rollback ? "ROLLBACK" : "COMMIT", chain ? 'T' : 'I');
		*act = CONN_CONSUME;
		return true;
	}
	if (c->tx_status == 'E') {
		client_send_error(c, "25P02",
				  "current transaction is aborted, commands ignored until "
				  "end of transaction block");
		client_send_tag_and_ready(c, NULL, 'E');
		*act = CONN_CONSUME;
		return true;
	}
	return false;
}

/* The next word of letters at *p (lower-cased into out), skipping blanks, commas and ';'. */
static bool next_word(const char **p, const char *end, char *out, size_t outlen)
{
	size_t n = 0;

	while (*p < end && strchr(" \t\r\n,;", **p))
		(*p)++;
	while (*p < end && n + 1 < outlen && (((**p) | 0x20) >= 'a' && ((**p) | 0x20) <= 'z')) {
		out[n++] = (char)((**p) | 0x20);
		(*p)++;
	}
	out[n] = '\0';
	return n > 0;
}

/*
 * A BEGIN pgmux can answer for the server: only forms that cannot fail there, whichever member
 * gets them (BEGIN / START TRANSACTION with READ ONLY, READ WRITE, or ISOLATION LEVEL READ
 * COMMITTED or REPEATABLE READ). Anything else (SERIALIZABLE, DEFERRABLE, comments, a typo) goes
 * to the server as it is and answers for itself.
 */
static bool begin_is_plain(const char *sql, size_t len)
{
	static const char *const modes[][5] = {
		{ "read", "only" },
		{ "read", "write" },
		{ "isolation", "level", "read", "committed" },
		{ "isolation", "level", "repeatable", "read" },
	};
	const char *p = sql, *end = sql + len;
	char words[12][16];
	int n = 0, i;

	while (n < 12 && next_word(&p, end, words[n], sizeof(words[n])))
		n++;
	if (p != end || n == 0)
		return false; /* more, or something else than words: a comment, a digit... */
	if (strcmp(words[0], "begin") == 0)
		i = n > 1 && (!strcmp(words[1], "transaction") || !strcmp(words[1], "work")) ? 2
											     : 1;
	else if (n > 1 && !strcmp(words[0], "start") && !strcmp(words[1], "transaction"))
		i = 2;
	else
		return false;
	while (i < n) {
		int matched = 0;

		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]) && !matched; m++) {
			int k = 0;

			while (modes[m][k] && i + k < n && strcmp(words[i + k], modes[m][k]) == 0)
				k++;
			if (!modes[m][k])
				matched = k;
		}
		if (!matched)
			return false;
		i += matched;
	}
	return true;
}

/* A bare BEGIN in transaction mode: answered now, sent with the first real statement. */
static bool deferred_begin(struct client *c, const struct route_result *r, const char *sql,
			   size_t len)
{
	if (r->cls != ROUTE_TXN_BEGIN || r->statements != 1 || c->tx_status != 'I' ||
	    !pool_releases_per_transaction(c->pool) || !begin_is_plain(sql, len))
		return false;
	c->deferred_begin = strndup(sql, len);
	if (!c->deferred_begin)
		return false;
	c->begin_read_only = r->read_only_txn;
	c->begin_hint = (uint8_t)r->hint;
	client_send_tag_and_ready(c, "BEGIN", 'T');
	return true;
}

/* The empty message of this type (ParseComplete, BindComplete, NoData...) into mb. */
static void put_empty(struct msgbuf *mb, char type)
{
	mb_end(mb, mb_begin(mb, type));
}

/*
 * The answers to the rest of a batch whose Parse is at whole, as PostgreSQL gives them for a
 * statement that returns no rows (tag): false unless the batch is Parse, Bind, an optional
 * Describe, Execute and Sync, all of the unnamed statement and portal, without parameters, and
 * all here. Drivers send every statement this way (JDBC, PQexecParams, psycopg 3's BEGIN).
 */
static bool answer_batch(struct client *c, const uint8_t *whole, const char *tag, char tx_status,
			 struct msgbuf *mb)
{
	const uint8_t *p = whole, *end = conn_input_end(&c->conn);
	enum { WANT_PARSE, WANT_BIND, WANT_DESCRIBE_OR_EXECUTE, WANT_SYNC } want = WANT_PARSE;
	struct pkt_header h;

	while (end && pkt_peek_header(p, (size_t)(end - p), &h) == PKT_PEEK_OK &&
	       h.len <= (size_t)(end - p)) {
		const uint8_t *body = p + PKT_HDR_LEN;
		size_t blen = h.len - PKT_HDR_LEN;
		struct fe_parse parse;
		struct fe_bind b;
		struct fe_describe d;
		struct fe_execute e;

		if (want == WANT_PARSE && h.type == 'P' && fe_parse_parse(body, blen, &parse) &&
		    !*parse.name && parse.nparams == 0) {
			put_empty(mb, '1');
			want = WANT_BIND;
		} else if (want == WANT_BIND && h.type == 'B' && fe_parse_bind(body, blen, &b) &&
			   !*b.portal && !*b.statement && b.nparams == 0) {
			put_empty(mb, '2');
			want = WANT_DESCRIBE_OR_EXECUTE;
		} else if (want == WANT_DESCRIBE_OR_EXECUTE && h.type == 'D' &&
			   fe_parse_describe(body, blen, &d) && !*d.name) {
			if (d.kind == FE_STATEMENT) {
				size_t at = mb_begin(mb, 't');

				mb_put_u8(mb, 0);
				mb_put_u8(mb, 0); /* no parameters */
				mb_end(mb, at);
			}
			put_empty(mb, 'n');
		} else if (want == WANT_DESCRIBE_OR_EXECUTE && h.type == 'E' &&
			   fe_parse_execute(body, blen, &e) && !*e.portal) {
			build_command_complete(mb, tag);
			want = WANT_SYNC;
		} else if (want == WANT_SYNC && h.type == 'S') {
			build_ready(mb, tx_status);
			return !mb->failed;
		} else {
			return false;
		}
		p += h.len;
	}
	return false;
}

bool client_answer_batch(struct client *c, const uint8_t *whole, const char *tag, char tx_status)
{
	struct msgbuf mb;

	if (c->unsynced || c->pending_ready)
		return false;
	mb_init(&mb);
	if (!answer_batch(c, whole, tag, tx_status, &mb)) {
		mb_free(&mb);
		return false;
	}
	client_send(c, &mb);
	mb_free(&mb);
	c->tx_status = tx_status;
	c->discarding = DISCARD_ANSWERED;
	return true;
}

/*
 * A bare BEGIN sent as an extended-protocol batch: answered whole and sent later with the first
 * real statement, as a simple-protocol BEGIN is (deferred_begin).
 */
static bool deferred_begin_batch(struct client *c, const struct route_result *r, const char *sql,
				 size_t len, const uint8_t *whole)
{
	if (r->cls != ROUTE_TXN_BEGIN || r->statements != 1 || c->tx_status != 'I' ||
	    c->deferred_begin || !pool_releases_per_transaction(c->pool) ||
	    !begin_is_plain(sql, len))
		return false;
	if (!(c->deferred_begin = strndup(sql, len)))
		return false;
	if (!client_answer_batch(c, whole, "BEGIN", 'T')) {
		drop_deferred_begin(c);
		return false;
	}
	c->begin_read_only = r->read_only_txn;
	c->begin_hint = (uint8_t)r->hint;
	return true;
}

/* Does this Query, Parse or Bind need the primary (anything but a read)? */
static bool message_writes(struct client *c, char type, const uint8_t *msg, uint32_t len)
{
	struct pkt_header hdr = { .type = type, .len = len };
	struct route_result r;
	const char *sql;
	size_t qlen;

	if (len > ROUTE_PEEK_MAX)
		return true;
	sql = unit_sql(c, &hdr, msg, &qlen);
	if (!sql)
		return type != 'B'; /* a Bind of the unnamed statement follows its Parse */
	classify_sql(sql, qlen, NULL, &r);
	if (r.hint == ROUTE_HINT_REPLICA)
		return false;
	return r.cls != ROUTE_READ && r.cls != ROUTE_EMPTY;
}

/*
 * The messages the client already sent behind this one, up to its Sync: a write among them
 * sends the whole unit to the primary (drivers send a batch in one go, so it is all here).
 */
static bool pipeline_writes(struct client *c, const uint8_t *whole, uint32_t len)
{
	const uint8_t *p = whole + len, *end = conn_input_end(&c->conn);

	struct pkt_header h;

	while (end && pkt_peek_header(p, (size_t)(end - p), &h) == PKT_PEEK_OK) {
		if (h.len > (size_t)(end - p) || h.type == 'S')
			break;
		if ((h.type == 'P' || h.type == 'B' || h.type == 'Q') &&
		    message_writes(c, h.type, p, h.len))
			return true;
		p += h.len;
	}
	return false;
}

/* SET pgmux.route while the client holds a server (in a transaction): still pgmux's own. */
static bool route_hint_linked(struct client *c, const struct pkt_header *hdr, const uint8_t *whole,
			      enum conn_action *act)
{
	struct route_result r;
	const char *sql;
	size_t len;

	if (hdr->type != 'Q' || !whole || c->pending_ready || c->unsynced)
		return false;
	sql = unit_sql(c, hdr, whole, &len);
	/* Cheap filter first: this runs for every Query of a transaction. */
	if (!sql || (!starts_with_word(sql, len, "set") && !starts_with_word(sql, len, "reset")))
		return false;
	if (!memmem_nocase(sql, len, "pgmux.route"))
		return false;
	classify_sql(sql, len, NULL, &r);
	if (r.cls != ROUTE_HINT_SET)
		return false;
	*act = set_route_hint(c, &r);
	return true;
}

enum conn_action client_route_linked(struct client *c, const struct pkt_header *hdr,
				     const uint8_t *whole)
{
	const struct cluster *cl = c->pool->db->cluster;
	enum conn_action act;

	if (hdr->type == 'Q' && hdr->len <= SETTINGS_PEEK_MAX) {
		if (!whole)
			return CONN_NEED_WHOLE;
		if (route_hint_linked(c, hdr, whole, &act))
			return act;
	}

	if (c->target == cl->primary || !strchr("QPB", hdr->type) || pool_is_session(c->pool))
		return CONN_FORWARD;
	if (hdr->len <= ROUTE_PEEK_MAX) {
		if (!whole)
			return CONN_NEED_WHOLE;
		if (!message_writes(c, hdr->type, whole, hdr->len))
			return CONN_FORWARD;
	}
	if (c->unsynced) {
		/* Inside an explicit transaction the write fails as it would on the server. */
		if (hdr->type == 'Q' || c->tx_status != 'I')
			return CONN_FORWARD;
		/*
		 * A write in the middle of an extended-protocol segment whose reads went to a
		 * replica: pgmux ends the segment there with a Sync of its own (the reads change
		 * nothing, so splitting the implicit transaction loses nothing) and routes the rest
		 * from this write on, unless the reads failed, when PostgreSQL would skip to the
		 * client's Sync.
		 */
		if (!c->drain_wait) {
			prepared_inject_sync(c);
			c->server->split_pending = true;
			c->drain_wait = true;
		}
		return CONN_STOP;
	}
	if (!c->pending_ready && !c->server->internal_pending)
		return CONN_FORWARD; /* inside a transaction on this server: it answers as it must */
	/* A write pipelined behind reads on a replica: wait for them, then route it afresh. */
	c->drain_wait = true;
	return CONN_STOP;
}

void client_on_split(struct client *c, bool failed)
{
	c->unsynced = false;
	c->drain_wait = false;
	if (failed)
		c->discarding = DISCARD_TO_SYNC;
	client_unit_done(c);
	conn_resume(&c->conn);
}

void client_route_drained(struct client *c)
{
	if (c->drain_wait && !c->pending_ready) {
		c->drain_wait = false;
		conn_resume(&c->conn);
	}
}

/*
 * A database declared read_only reads only: everything goes where reads go, and a replica
 * refuses a write itself (25006), which is PostgreSQL's judgement, not the classifier's.
 */
static enum route_want entry_want(const struct db_entry *e, enum route_want want)
{
	return e && e->read_only ? WANT_REPLICA : want;
}

/* The name of the member at target, or what happens instead. */
static const char *target_name(const struct cluster *cl, int target)
{
	if (target == TARGET_WAIT_PRIMARY)
		return "(waits for a primary)";
	if (target == TARGET_REFUSED)
		return "(refused: no replica, read_fallback = error)";
	return cl->members[target].name;
}

const char *client_route_for(const struct db_entry *e, struct cluster *cl, const char *sql,
			     size_t len, bool *primary)
{
	struct route_result r;
	enum route_want want;
	enum route_why why; /* not counted: the console only asks */
	bool hinted;

	classify_sql(sql, len, NULL, &r);
	want = entry_want(e,
			  router_want(&r, ROUTE_HINT_NONE, false, false, ROUTE_HINT_NONE, &hinted));
	*primary = want == WANT_PRIMARY;
	return cl ? target_name(cl, router_pick(cl, want, 0, &why)) : NULL;
}

/* A routing decision, in the counters SHOW ROUTES and /metrics show. */
static void count_route(struct route_stats *st, enum route_why why, bool hinted)
{
	switch (why) {
	case ROUTE_WHY_WRITE:
		st->writes++;
		break;
	case ROUTE_WHY_READ_REPLICA:
		st->reads_replica++;
		break;
	case ROUTE_WHY_READ_PRIMARY:
		st->reads_primary++;
		break;
	case ROUTE_WHY_READ_RYW:
		st->reads_ryw++;
		break;
	case ROUTE_WHY_READ_FALLBACK:
		st->reads_fallback++;
		break;
	case ROUTE_WHY_READ_REFUSED:
		st->reads_refused++;
		break;
	}
	if (hinted)
		st->hinted++;
}

enum conn_action client_route_unit(struct client *c, const struct pkt_header *hdr,
				   const uint8_t *whole)
{
	struct database *db = c->pool->db;
	struct route_result r = { .cls = ROUTE_WRITE };
	enum conn_action act;
	enum route_want want;
	const char *sql = NULL;
	size_t len = 0;
	bool hinted = false;
	enum route_why why;
	int target;

	if (pool_is_session(c->pool)) {
		/* The whole session runs where it starts: the primary unless pgmux.route says. */
		want = c->session_hint == ROUTE_HINT_REPLICA ? WANT_REPLICA : WANT_PRIMARY;
		hinted = c->session_hint == ROUTE_HINT_REPLICA;
		goto pick;
	}
	if (strchr("QPB", hdr->type) && hdr->len <= ROUTE_PEEK_MAX) {
		if (!whole)
			return CONN_NEED_WHOLE;
		sql = unit_sql(c, hdr, whole, &len);
		if (sql)
			classify_sql(sql, len, NULL, &r);
		/* A standby refuses SERIALIZABLE transactions, even READ ONLY ones. */
		if (sql && r.cls == ROUTE_TXN_BEGIN && r.read_only_txn &&
		    memmem_nocase(sql, len, "serializable"))
			r.read_only_txn = false;
	}
	if (hdr->type == 'Q' && sql) {
		if (r.cls == ROUTE_HINT_SET)
			return set_route_hint(c, &r);
		if (c->deferred_begin && answered_in_deferred_txn(c, &r, sql, len, &act))
			return act;
		if (deferred_begin(c, &r, sql, len))
			return CONN_CONSUME;
	}
	if (hdr->type == 'P' && sql && deferred_begin_batch(c, &r, sql, len, whole))
		return CONN_CONSUME;
	if (hdr->type == 'P' && sql && r.cls == ROUTE_HINT_SET && r.hint != ROUTE_HINT_INVALID &&
	    client_answer_batch(c, whole, "SET", c->tx_status)) {
		note_route_hint(c, &r);
		return CONN_CONSUME;
	}
	want = router_want(&r, (enum route_hint)c->session_hint, c->deferred_begin != NULL,
			   c->begin_read_only, (enum route_hint)c->begin_hint, &hinted);
	if (want == WANT_REPLICA && !hinted && hdr->type != 'Q' && whole &&
	    pipeline_writes(c, whole, hdr->len))
		want = WANT_PRIMARY;
pick:
	want = entry_want(db->entry, want);
	target = router_pick(db->cluster, want,
			     db->cluster->entry->read_your_writes ? c->ryw_lsn : 0, &why);
	count_route(&db->routes, why, hinted);
	if (target == TARGET_REFUSED) {
		client_send_error(c, "57P03",
				  "no replica of cluster %s can serve reads now "
				  "(read_fallback = error)",
				  db->cluster->name);
		c->discarding = DISCARD_START;
		return client_discard_packet(c, hdr);
	}
	c->want = (uint8_t)want;
	c->target = target;
	c->unit_wrote = want == WANT_PRIMARY;
	return CONN_FORWARD;
}

void client_send_deferred_begin(struct client *c)
{
	if (!c->deferred_begin)
		return;
	server_send_internal_query(c->server, c->deferred_begin);
	drop_deferred_begin(c);
}

bool client_capture_write_lsn(struct client *c)
{
	const struct database *db = c->pool->db;

	if (!db->cluster || !db->cluster->entry->read_your_writes || !c->unit_wrote)
		return false;
	c->unit_wrote = false;
	c->server->capture_lsn = true;
	server_send_internal_query(c->server, "SELECT pg_current_wal_lsn()");
	return true;
}

void client_on_write_lsn(struct client *c, uint64_t lsn)
{
	if (lsn > c->ryw_lsn)
		c->ryw_lsn = lsn;
}

void client_on_lsn_captured(struct client *c)
{
	if (c->pending_ready || c->unsynced || c->in_copy || c->tx_status != 'I') {
		/* More work arrived meanwhile on this server: it may write too. */
		c->unit_wrote = true;
		return;
	}
	client_unit_done(c);
}

bool client_take_route_option(struct client *c, const char *name, const char *value)
{
	if (strcasecmp(name, "pgmux.route") != 0)
		return false;
	if (strcasecmp(value, "replica") == 0)
		c->session_hint = ROUTE_HINT_REPLICA;
	else if (strcasecmp(value, "primary") == 0)
		c->session_hint = ROUTE_HINT_PRIMARY;
	else
		c->session_hint = ROUTE_HINT_NONE;
	return true;
}

void client_on_topology_changed(struct client *c)
{
	int target = router_reroute(c->pool->db->cluster, c->target, (enum route_want)c->want,
				    c->ryw_lsn);

	if (target != c->target)
		pool_retarget(c, target);
}
