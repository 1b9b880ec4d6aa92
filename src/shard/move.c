/*
 * shard/move: a bucket move's steps and SQL (see include/shard/move.h).
 *
 * SQL is built in a growing buffer that remembers a failed allocation, so a builder appends
 * without checking each step and returns NULL once at the end.
 */
#include "shard/move.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard/key.h"

/* ---- steps ---- */

static const char *const step_names[] = {
	[MOVE_CHECK] = "check",     [MOVE_COPY] = "copy",       [MOVE_CATCHUP] = "catch-up",
	[MOVE_HOLD] = "hold",       [MOVE_SWITCH] = "switch",   [MOVE_DONE] = "done",
	[MOVE_CLEANUP] = "cleanup", [MOVE_CLEANED] = "cleaned", [MOVE_ROLLBACK] = "rollback",
	[MOVE_FAILED] = "failed",
};

const char *move_step_name(enum move_step s)
{
	if ((size_t)s < sizeof(step_names) / sizeof(step_names[0]) && step_names[s])
		return step_names[s];
	return "?";
}

enum move_step move_step_next(enum move_step s)
{
	switch (s) {
	case MOVE_CHECK:
		return MOVE_COPY;
	case MOVE_COPY:
		return MOVE_CATCHUP;
	case MOVE_CATCHUP:
		return MOVE_HOLD;
	case MOVE_HOLD:
		return MOVE_SWITCH;
	case MOVE_SWITCH:
		return MOVE_DONE;
	case MOVE_DONE:
		return MOVE_CLEANUP;
	case MOVE_CLEANUP:
		return MOVE_CLEANED;
	case MOVE_ROLLBACK:
		return MOVE_FAILED;
	case MOVE_CLEANED:
	case MOVE_FAILED:
		break;
	}
	return s;
}

enum move_step move_step_on_failure(enum move_step s)
{
	switch (s) {
	case MOVE_CHECK:
	case MOVE_COPY:
	case MOVE_CATCHUP:
	case MOVE_HOLD:
	case MOVE_SWITCH:
		return MOVE_ROLLBACK;
	case MOVE_ROLLBACK:
		/* A rollback that could not drop everything still ends: the error says what is left. */
		return MOVE_FAILED;
	case MOVE_DONE:
	case MOVE_CLEANUP:
		return MOVE_DONE;
	case MOVE_CLEANED:
	case MOVE_FAILED:
		break;
	}
	return s;
}

bool move_step_allowed(enum move_step from, enum move_step to)
{
	/* A rollback that left something behind (a shard was down) can be run again. */
	if (from == MOVE_FAILED && to == MOVE_ROLLBACK)
		return true;
	if (to == move_step_next(from) && to != from)
		return true;
	return to != from && to == move_step_on_failure(from);
}

bool move_step_switched(enum move_step s)
{
	return s == MOVE_DONE || s == MOVE_CLEANUP || s == MOVE_CLEANED;
}

bool move_step_holds(enum move_step s)
{
	return s == MOVE_HOLD || s == MOVE_SWITCH;
}

/* ---- buckets ---- */

static bool read_uint(const char **p, uint32_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (uint64_t)(*s++ - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*p = s;
	*out = (uint32_t)v;
	return true;
}

static int range_cmp(const void *a, const void *b)
{
	const struct move_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

bool move_parse_buckets(const char *text, uint32_t n_buckets, struct move_range *out, int max,
			int *n, char *err, size_t errlen)
{
	const char *p = text;
	int k = 0;

	*n = 0;
	for (;;) {
		struct move_range r;

		if (!read_uint(&p, &r.first)) {
			snprintf(err, errlen, "expected a bucket number at \"%.20s\"", p);
			return false;
		}
		r.last = r.first;
		if (*p == '-' && (++p, !read_uint(&p, &r.last))) {
			snprintf(err, errlen, "expected the last bucket of a range at \"%.20s\"",
				 p);
			return false;
		}
		if (r.last < r.first || r.last >= n_buckets) {
			snprintf(err, errlen, "buckets %u-%u: %s", r.first, r.last,
				 r.last < r.first ? "the range ends before it starts"
						  : "beyond the last bucket");
			if (r.last >= n_buckets && r.last >= r.first)
				snprintf(err, errlen, "bucket %u is beyond the last bucket, %u",
					 r.last, n_buckets - 1);
			return false;
		}
		if (k == max) {
			snprintf(err, errlen, "more than %d ranges", max);
			return false;
		}
		out[k++] = r;
		if (*p != ',')
			break;
		p++;
	}
	if (*p) {
		snprintf(err, errlen, "unexpected \"%.20s\" after the buckets", p);
		return false;
	}
	qsort(out, (size_t)k, sizeof(*out), range_cmp);
	*n = 0;
	for (int i = 0; i < k; i++) {
		struct move_range *last = *n ? &out[*n - 1] : NULL;

		if (last && out[i].first <= last->last) {
			snprintf(err, errlen, "buckets %u-%u and %u-%u overlap", last->first,
				 last->last, out[i].first, out[i].last);
			return false;
		}
		if (last && out[i].first == last->last + 1)
			last->last = out[i].last;
		else
			out[(*n)++] = out[i];
	}
	return true;
}

bool move_ranges_contain(const struct move_range *r, int n, uint32_t bucket)
{
	for (int i = 0; i < n; i++) {
		if (bucket >= r[i].first && bucket <= r[i].last)
			return true;
	}
	return false;
}

uint32_t move_ranges_count(const struct move_range *r, int n)
{
	uint32_t total = 0;

	for (int i = 0; i < n; i++)
		total += r[i].last - r[i].first + 1;
	return total;
}

void move_ranges_format(const struct move_range *r, int n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++) {
		int w = r[i].first == r[i].last
				? snprintf(buf + used, len - used, "%s%u", i ? "," : "", r[i].first)
				: snprintf(buf + used, len - used, "%s%u-%u", i ? "," : "",
					   r[i].first, r[i].last);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* ---- building SQL ---- */

struct sb {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *nb;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(nb = realloc(b->buf, cap))) {
			b->failed = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		b->failed = true;
	else
		sb_add(b, tmp, (size_t)n);
}

/* text quoted with q, q inside doubled. */
static void sb_quoted(struct sb *b, const char *text, char q)
{
	sb_add(b, &q, 1);
	for (const char *p = text; *p; p++) {
		if (*p == q)
			sb_add(b, &q, 1);
		sb_add(b, p, 1);
	}
	sb_add(b, &q, 1);
}

/* What the builder made, or NULL (and nothing kept) if an allocation failed. */
static char *sb_done(struct sb *b)
{
	if (b->failed || !b->buf) {
		free(b->buf);
		return NULL;
	}
	return b->buf;
}

char *move_quote_ident(const char *name)
{
	struct sb b = { 0 };

	sb_quoted(&b, name, '"');
	return sb_done(&b);
}

char *move_quote_literal(const char *text)
{
	struct sb b = { 0 };

	sb_quoted(&b, text, '\'');
	return sb_done(&b);
}

/* The key column's hash as PostgreSQL computes it for the key type (doc/sharding.md). */
static void sb_hash(struct sb *b, const struct move_spec *s)
{
	const char *fn = s->key_type == SHARD_KEY_TEXT   ? "hashtextextended("
			 : s->key_type == SHARD_KEY_UUID ? "uuid_hash_extended("
							 : "hashint8extended(";

	sb_str(b, fn);
	sb_quoted(b, s->key, '"');
	if (s->key_type == SHARD_KEY_INT)
		sb_str(b, "::int8");
	/* The map keeps the seed as 64 bits; PostgreSQL takes it as a bigint. */
	sb_printf(b, ", %" PRId64 ")", (int64_t)s->seed);
}

static void sb_predicate(struct sb *b, const struct move_spec *s)
{
	for (int i = 0; i < s->n_ranges; i++) {
		const struct move_range *r = &s->ranges[i];

		sb_str(b, i ? " OR (" : "(");
		sb_hash(b, s);
		sb_printf(b, " & %u)", s->n_buckets - 1);
		if (r->first == r->last)
			sb_printf(b, " = %u", r->first);
		else
			sb_printf(b, " BETWEEN %u AND %u", r->first, r->last);
	}
	if (s->n_ranges == 0)
		sb_str(b, "false");
}

char *move_sql_predicate(const struct move_spec *s)
{
	struct sb b = { 0 };

	sb_predicate(&b, s);
	return sb_done(&b);
}

/* ---- tables ---- */

/* The length of a quote_ident() result at p (a plain or a "quoted" identifier), 0 if none. */
static size_t ident_len(const char *p)
{
	const char *s = p;

	if (*s == '"') {
		for (s++; *s; s++) {
			if (*s == '"' && s[1] == '"')
				s++;
			else if (*s == '"')
				return (size_t)(s + 1 - p);
		}
		return 0;
	}
	/* quote_ident leaves only lower-case letters, digits, '_' (not first) and bytes >= 0x80. */
	while ((*s >= 'a' && *s <= 'z') || *s == '_' || (unsigned char)*s >= 0x80 ||
	       (s > p && *s >= '0' && *s <= '9'))
		s++;
	return (size_t)(s - p);
}

void move_tables_free(char **tables, int n)
{
	for (int i = 0; i < n; i++)
		free(tables[i]);
	free(tables);
}

int move_split_tables(const char *list, char ***out, char *err, size_t errlen)
{
	const char *p = list;
	char **t = NULL;
	int n = 0;

	*out = NULL;
	while (*p) {
		size_t a = ident_len(p), b = a && p[a] == '.' ? ident_len(p + a + 1) : 0;
		char **nt;

		if (!b) {
			snprintf(err, errlen, "not a qualified table name: \"%.40s\"", p);
			move_tables_free(t, n);
			return -1;
		}
		nt = realloc(t, (size_t)(n + 1) * sizeof(*t));
		if (!nt || !(nt[n] = strndup(p, a + 1 + b))) {
			snprintf(err, errlen, "out of memory");
			move_tables_free(nt ? nt : t, n);
			return -1;
		}
		t = nt;
		n++;
		p += a + 1 + b;
		if (*p && strncmp(p, ", ", 2) != 0) {
			snprintf(err, errlen, "expected \", \" between tables at \"%.40s\"", p);
			move_tables_free(t, n);
			return -1;
		}
		if (*p)
			p += 2;
	}
	*out = t;
	return n;
}

char *move_sql_publication(const char *name, char *const *tables, int n, const struct move_spec *s)
{
	struct sb b = { 0 };

	sb_str(&b, "CREATE PUBLICATION ");
	sb_quoted(&b, name, '"');
	sb_str(&b, " FOR TABLE ");
	for (int i = 0; i < n; i++) {
		sb_str(&b, i ? ", " : "");
		sb_str(&b, tables[i]);
		sb_str(&b, " WHERE (");
		sb_predicate(&b, s);
		sb_str(&b, ")");
	}
	/* No truncate: a TRUNCATE on the source must not empty the target's other buckets. */
	sb_str(&b, " WITH (publish = 'insert, update, delete')");
	return sb_done(&b);
}

char *move_sql_subscription(const char *name, const char *conninfo)
{
	struct sb b = { 0 };

	sb_str(&b, "CREATE SUBSCRIPTION ");
	sb_quoted(&b, name, '"');
	sb_str(&b, " CONNECTION ");
	sb_quoted(&b, conninfo, '\'');
	sb_str(&b, " PUBLICATION ");
	sb_quoted(&b, name, '"');
	/*
	 * synchronous_commit on: what the target applies is flushed before it says so, so the
	 * switch (which waits for the flushed position) waits no longer than a commit takes.
	 */
	sb_str(&b, " WITH (copy_data = true, create_slot = true, enabled = true, "
		   "synchronous_commit = 'on', slot_name = ");
	sb_quoted(&b, name, '\'');
	sb_str(&b, ")");
	return sb_done(&b);
}

char *move_sql_count_rows(char *const *tables, int n, const struct move_spec *s)
{
	struct sb b = { 0 };

	sb_str(&b, "SELECT 0");
	for (int i = 0; i < n; i++) {
		sb_str(&b, " + (SELECT count(*) FROM ");
		sb_str(&b, tables[i]);
		sb_str(&b, " WHERE ");
		sb_predicate(&b, s);
		sb_str(&b, ")");
	}
	return sb_done(&b);
}

char *move_sql_delete_batch(const char *table, const struct move_spec *s, int batch)
{
	struct sb b = { 0 };

	/*
	 * ctid picks a batch; the predicate is repeated outside because a ctid is unique only
	 * within one partition, so a row of another bucket never matches by accident.
	 */
	sb_str(&b, "WITH d AS (DELETE FROM ");
	sb_str(&b, table);
	sb_str(&b, " WHERE ctid = ANY (ARRAY(SELECT ctid FROM ");
	sb_str(&b, table);
	sb_str(&b, " WHERE ");
	sb_predicate(&b, s);
	sb_printf(&b, " LIMIT %d)) AND (", batch);
	sb_predicate(&b, s);
	sb_str(&b, ") RETURNING 1) SELECT count(*) FROM d");
	return sb_done(&b);
}

static char *drop_named(const char *verb, const char *name, const char *tail)
{
	struct sb b = { 0 };

	sb_str(&b, verb);
	sb_quoted(&b, name, '"');
	sb_str(&b, tail);
	return sb_done(&b);
}

char *move_sql_drop_subscription(const char *name)
{
	return drop_named("DROP SUBSCRIPTION IF EXISTS ", name, "");
}

char *move_sql_detach_subscription(const char *name)
{
	/* Disabled first: a subscription's slot can be set to NONE only when it is disabled. */
	struct sb b = { 0 };
	char *q = move_quote_ident(name);

	if (!q)
		return NULL;
	sb_printf(&b, "DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_subscription WHERE subname = ");
	sb_quoted(&b, name, '\'');
	sb_str(&b, ") THEN EXECUTE 'ALTER SUBSCRIPTION ' || ");
	sb_quoted(&b, q, '\'');
	sb_str(&b, " || ' DISABLE'; EXECUTE 'ALTER SUBSCRIPTION ' || ");
	sb_quoted(&b, q, '\'');
	sb_str(&b, " || ' SET (slot_name = NONE)'; END IF; END$$");
	free(q);
	return sb_done(&b);
}

char *move_sql_drop_publication(const char *name)
{
	return drop_named("DROP PUBLICATION IF EXISTS ", name, "");
}

/* ---- checks and progress ---- */

/*
 * The tables of the current database (not the system's, not a partition: its parent is
 * published) that hold column $1, and each one's columns in order of position.
 */
#define KEYED_TABLES                                                                               \
	"SELECT c.oid, c.relreplident, a.attnum AS keynum, "                                       \
	"quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name "                         \
	"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "                           \
	"JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $1 AND NOT a.attisdropped "     \
	"WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "                                  \
	"AND n.nspname NOT IN ('pg_catalog', 'information_schema') "                               \
	"AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"

#define COLUMNS_OF(t)                                                                                \
	"(SELECT string_agg(quote_ident(x.attname) || ' ' || format_type(x.atttypid, x.atttypmod), " \
	"', ' ORDER BY x.attnum) FROM pg_attribute x WHERE x.attrelid = " t ".oid "                  \
	"AND x.attnum > 0 AND NOT x.attisdropped)"

/* The sequences of serial and identity columns of the keyed tables, one line each. */
#define SEQUENCES                                                                                   \
	"coalesce((SELECT string_agg(format('%s %s %s %s %s', quote_ident(s.schemaname) || '.' || " \
	"quote_ident(s.sequencename), s.increment_by, s.min_value, s.max_value, s.start_value), "   \
	"E'\\n' ORDER BY s.schemaname, s.sequencename) FROM pg_sequences s "                        \
	"JOIN pg_namespace n ON n.nspname = s.schemaname "                                          \
	"JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename "                 \
	"JOIN pg_depend d ON d.objid = c.oid AND d.deptype IN ('a', 'i') "                          \
	"WHERE d.refobjid IN (SELECT oid FROM t)), '')"

const char move_sql_check_source[] =
	"WITH t AS (" KEYED_TABLES ") SELECT current_setting('wal_level'), "
	"coalesce((SELECT string_agg(name, ', ' ORDER BY name) FROM t), ''), "
	/* FULL covers every column; default and index identities must include the key. */
	"(SELECT string_agg(name, ', ' ORDER BY name) FROM t WHERE NOT (t.relreplident = 'f' OR "
	"EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND "
	"((t.relreplident = 'd' AND i.indisprimary) OR (t.relreplident = 'i' AND i.indisreplident)) "
	"AND t.keynum = ANY (i.indkey::int2[])))), "
	"coalesce((SELECT string_agg(name || ' ' || " COLUMNS_OF("t") ", E'\\n' ORDER BY name) "
								      "FROM t), ''), " SEQUENCES;

const char move_sql_check_target[] = "WITH t AS (" KEYED_TABLES ") SELECT "
				     "coalesce((SELECT string_agg(name || ' ' || " COLUMNS_OF(
					     "t") ", E'\\n' ORDER BY name) "
						  "FROM t), ''), " SEQUENCES;

const char move_sql_copy_state[] =
	"SELECT count(*) FILTER (WHERE r.srsubstate <> 'r'), count(r.srrelid), s.subenabled::text, "
	"s.oid::text FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid "
	"WHERE s.subname = $1 GROUP BY s.subenabled, s.oid";

/*
 * The insert position, not pg_current_wal_lsn() (the write position): with asynchronous commit
 * a transaction the client was told committed may sit in WAL buffers past the write position.
 */
const char move_sql_wal_position[] = "SELECT pg_current_wal_insert_lsn()::text";

const char move_sql_slot_position[] =
	"SELECT confirmed_flush_lsn::text, "
	"(pg_current_wal_insert_lsn() - coalesce(confirmed_flush_lsn, '0/0'))::bigint::text "
	"FROM pg_replication_slots WHERE slot_name = $1";

const char move_sql_drop_slot[] =
	"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
	"WHERE slot_name = $1 AND NOT active";

/* PostgreSQL names them pg_<subscription oid>_sync_<table oid>_<system id>. */
const char move_sql_drop_sync_slots[] =
	"SELECT count(pg_drop_replication_slot(slot_name))::text FROM pg_replication_slots "
	"WHERE slot_name LIKE 'pg\\_' || $1 || '\\_sync\\_%' AND NOT active";

/* The line of tgt that starts with table name (len bytes) and a blank, or NULL. */
static const char *line_of(const char *tgt, const char *name, size_t len, size_t *linelen)
{
	const char *p = tgt;

	while (*p) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > len && memcmp(p, name, len) == 0 && p[len] == ' ') {
			*linelen = n;
			return p;
		}
		p += n + (end ? 1 : 0);
	}
	return NULL;
}

bool move_columns_match(const char *src, const char *tgt, char *why, size_t whylen)
{
	const char *p = src;

	while (*p) {
		const char *end = strchr(p, '\n'), *sp, *other;
		size_t n = end ? (size_t)(end - p) : strlen(p), name_len, olen = 0;

		sp = memchr(p, ' ', n);
		name_len = sp ? (size_t)(sp - p) : n;
		other = line_of(tgt, p, name_len, &olen);
		if (!other) {
			snprintf(why, whylen, "table %.*s is not on the target", (int)name_len, p);
			return false;
		}
		if (olen != n || memcmp(other, p, n) != 0) {
			snprintf(why, whylen,
				 "table %.*s has other columns on the target (source: %.*s;"
				 " target: %.*s)",
				 (int)name_len, p, (int)(n - name_len), p + name_len,
				 (int)(olen - name_len), other + name_len);
			return false;
		}
		p += n + (end ? 1 : 0);
	}
	return true;
}

/* One line of the sequences column: name, increment, min, max, start. */
struct seq_line {
	char name[256];
	long long inc, min, max, start;
};

static bool read_seq_line(const char *p, size_t n, struct seq_line *out)
{
	char line[512];
	int used = 0;

	if (n >= sizeof(line))
		return false;
	memcpy(line, p, n);
	line[n] = '\0';
	/* The name is quote_ident's: no blank unless quoted; a quoted one with a blank is skipped. */
	return sscanf(line, "%255s %lld %lld %lld %lld%n", out->name, &out->inc, &out->min,
		      &out->max, &out->start, &used) == 5 &&
	       line[used] == '\0';
}

bool move_sequences_clash(const char *src, const char *tgt, char *why, size_t whylen)
{
	for (const char *p = src; *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		struct seq_line a, b;

		if (read_seq_line(p, n, &a)) {
			for (const char *q = tgt; *q;) {
				const char *qend = strchr(q, '\n');
				size_t qn = qend ? (size_t)(qend - q) : strlen(q);
				bool disjoint, interleaved;

				if (read_seq_line(q, qn, &b) && strcmp(a.name, b.name) == 0) {
					disjoint = a.max < b.min || b.max < a.min;
					interleaved = a.inc == b.inc && (a.inc > 1 || a.inc < -1) &&
						      (a.start - b.start) % a.inc != 0;
					if (!disjoint && !interleaved) {
						snprintf(
							why, whylen,
							"sequence %s may give the same values "
							"on both shards (ranges %lld..%lld and %lld..%lld, "
							"increments %lld and %lld)",
							a.name, a.min, a.max, b.min, b.max, a.inc,
							b.inc);
						return true;
					}
				}
				q += qn + (qend ? 1 : 0);
			}
		}
		p += n + (end ? 1 : 0);
	}
	return false;
}

void move_object_name(char *buf, size_t len, uint64_t started_us, int id)
{
	/* Microseconds: a pgmux started again gives ids from 1 again, beside moves it recovered. */
	snprintf(buf, len, "pgmux_move_%" PRIu64 "_%d", started_us, id);
}
