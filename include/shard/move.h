/*
 * shard/move: moving buckets of a sharded table set from one shard to another while clients
 * keep running, as a state machine and the SQL each step sends. The rows of the moving buckets
 * are replicated by PostgreSQL itself: a publication on the source whose row filter is the
 * bucket expression (doc/sharding.md), and a subscription on the target that copies them, then
 * follows the source's changes until pgmux switches the map.
 *
 * Steps, in order: CHECK (the target can take the rows), COPY (publication and subscription
 * made, the initial copy runs), CATCHUP (copied, the target follows the source), HOLD (new units
 * of work on the moving buckets wait, running ones end, the target applies the source's last
 * WAL position), SWITCH (the next map is written and put in force), DONE (the buckets are on the
 * target; the source still holds its copy of the rows until CLEANUP ends in CLEANED). A failure
 * or an abort before the switch goes through ROLLBACK (subscription, publication, slot and the
 * rows copied to the target dropped) to FAILED, with the map unchanged. After the switch nothing
 * rolls back: a failed clean-up leaves DONE, to be run again. A rollback that could not drop
 * everything (a shard was down) ends in FAILED all the same, and may be run again from there.
 *
 * Identifiers and literals in generated SQL are quoted here; table names come from the server's
 * own quote_ident() and are checked to be quoted identifiers before use.
 *
 * Pure: no I/O; strings returned are malloc'd and owned by the caller (NULL: out of memory).
 */
#ifndef PGMUX_SHARD_MOVE_H
#define PGMUX_SHARD_MOVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a move does with a bucket of a section, as a unit of work routed to it sees it. */
enum move_cover {
	MOVE_COVER_NONE,   /* no move: placed by the map */
	MOVE_COVER_MOVING, /* copied and followed: units run on the source, and are watched */
	MOVE_COVER_HELD,   /* new units wait; those running on the source are being waited for */
	MOVE_COVER_SEALED, /* every unit on the source ended: nothing more may run there */
};

enum move_step {
	MOVE_CHECK,
	MOVE_COPY,
	MOVE_CATCHUP,
	MOVE_HOLD,
	MOVE_SWITCH,
	MOVE_DONE,
	MOVE_CLEANUP,
	MOVE_CLEANED,
	MOVE_ROLLBACK,
	MOVE_FAILED,
};

/* "check", "copy", ...: the step's name in SHOW MOVES and the log. */
const char *move_step_name(enum move_step s);

/* Is from -> to a transition the state machine allows? */
bool move_step_allowed(enum move_step from, enum move_step to);

/* The step after s when s succeeds (s itself for an end: CLEANED, FAILED). */
enum move_step move_step_next(enum move_step s);

/*
 * Where a failure (or MOVE ABORT) in step s leads: ROLLBACK before the switch, DONE after it
 * (clean-up can be run again), s itself where nothing can fail (FAILED, CLEANED).
 */
enum move_step move_step_on_failure(enum move_step s);

/* Does the map name the target for the moving buckets in step s (DONE, CLEANUP, CLEANED)? */
bool move_step_switched(enum move_step s);

/* Are new units of work on the moving buckets held in step s (HOLD, SWITCH)? */
bool move_step_holds(enum move_step s);

/* A run of buckets, first <= last. */
struct move_range {
	uint32_t first, last;
};

#define MOVE_RANGES_MAX 64

/*
 * Buckets as the console names them: "A-B" or "A", several joined by commas ("0-99,200").
 * Sorted and joined into the fewest runs in out[max]; false (err says why) for a bucket beyond
 * n_buckets - 1, a range whose end is below its start, overlapping ranges, or more than max.
 */
bool move_parse_buckets(const char *text, uint32_t n_buckets, struct move_range *out, int max,
			int *n, char *err, size_t errlen);

/* Is bucket in one of the n runs? */
bool move_ranges_contain(const struct move_range *r, int n, uint32_t bucket);

/* The buckets in the n runs. */
uint32_t move_ranges_count(const struct move_range *r, int n);

/* "A-B,C" for the n runs, into buf (cut to len). */
void move_ranges_format(const struct move_range *r, int n, char *buf, size_t len);

/* What the row filter of a move needs to know. */
struct move_spec {
	int key_type;       /* enum shard_key_type (shard/key.h) */
	const char *key;    /* the key column's name, unquoted */
	uint64_t seed;      /* the map's seed */
	uint32_t n_buckets; /* a power of two */
	const struct move_range *ranges;
	int n_ranges;
};

/* "name" with embedded quotes doubled: an identifier as SQL reads it, whatever name holds. */
char *move_quote_ident(const char *name);

/* 'text' with embedded quotes doubled (standard_conforming_strings: backslashes are plain). */
char *move_quote_literal(const char *text);

/*
 * The bucket predicate of the spec's runs, as PostgreSQL evaluates it for a row:
 * (hashint8extended("user_id"::int8, 0) & 16383) BETWEEN 0 AND 99 OR ... (hashtextextended for
 * text keys, uuid_hash_extended for uuid keys; = B for a run of one bucket).
 */
char *move_sql_predicate(const struct move_spec *s);

/*
 * The tables of a list the server wrote as quote_ident(schema) || '.' || quote_ident(table)
 * joined by ", ": each a qualified name safe to put in SQL. *out receives n malloc'd strings
 * (free them and the array with move_tables_free). -1 (err says why) for a list that is not
 * such names; 0 for an empty list.
 */
int move_split_tables(const char *list, char ***out, char *err, size_t errlen);
void move_tables_free(char **tables, int n);

/* CREATE PUBLICATION name FOR TABLE t WHERE (predicate), ...: inserts, updates and deletes. */
char *move_sql_publication(const char *name, char *const *tables, int n, const struct move_spec *s);

/* CREATE SUBSCRIPTION name CONNECTION conninfo PUBLICATION name: copies, then follows. */
char *move_sql_subscription(const char *name, const char *conninfo);

/* The rows of the moving buckets over all n tables: one row, one column, a count. */
char *move_sql_count_rows(char *const *tables, int n, const struct move_spec *s);

/*
 * One batch of a delete of the moving buckets' rows from table (clean-up on the source, rollback
 * on the target): at most batch rows, answered by one row with the count deleted.
 */
char *move_sql_delete_batch(const char *table, const struct move_spec *s, int batch);

/*
 * The source's check, $1 the key column: one row of wal_level; the tables holding the column
 * (as move_split_tables reads them); the tables whose replica identity does not cover the
 * column (same form, NULL: none); each table's columns (move_columns_match's form); the
 * sequences of those tables' serial and identity columns (move_sequences_clash's form).
 */
extern const char move_sql_check_source[];

/* The target's check, $1 the key column: one row, its tables' columns and sequences (as above). */
extern const char move_sql_check_target[];

/*
 * Could a sequence named in both src and tgt (lines "name increment min max start") give the
 * same value on both shards: neither are their ranges disjoint, nor do they step through
 * different residues of one increment? true: why names the first such sequence.
 */
bool move_sequences_clash(const char *src, const char *tgt, char *why, size_t whylen);

/*
 * The subscription's tables on the target, $1 its name: one row of the tables still copying
 * (not yet 'r'eady), all its tables, whether it is enabled ("true" or "false") and its oid;
 * no row when there is no such subscription (someone dropped it).
 */
extern const char move_sql_copy_state[];

/*
 * The source's WAL insert position now (past every commit acknowledged so far, asynchronous
 * ones included): one row, one pg_lsn in text.
 */
extern const char move_sql_wal_position[];

/*
 * On the source, $1 the slot's name: one row of the slot's confirmed_flush_lsn (what the target
 * has applied and flushed; compare with be_parse_lsn) and the bytes it is behind the current
 * WAL position; no row when there is no such slot.
 */
extern const char move_sql_slot_position[];

/* Drop the slot $1 on the source when it is there and unused (rollback when the target is lost). */
extern const char move_sql_drop_slot[];

/*
 * Drop the slots the copy of each table made for the subscription whose oid is $1, when they
 * are there and unused (a subscription detached from its slots leaves them): one row, a count.
 */
extern const char move_sql_drop_sync_slots[];

/* DROP SUBSCRIPTION IF EXISTS name (drops its slot on the source too, if it can reach it). */
char *move_sql_drop_subscription(const char *name);

/* Detach subscription name from its slot so that it can be dropped without the source. */
char *move_sql_detach_subscription(const char *name);

/* DROP PUBLICATION IF EXISTS name. */
char *move_sql_drop_publication(const char *name);

/*
 * Do the target's columns (tgt) hold every table of the source's (src) with the same columns?
 * Both are lines "table col type, ..." as the check queries write them. false: why names the
 * first table missing or different.
 */
bool move_columns_match(const char *src, const char *tgt, char *why, size_t whylen);

/*
 * The name of a move's publication, subscription and slot (one name for the three): lower-case
 * letters, digits and '_' as slot names require, from the start time (microseconds) and id.
 */
void move_object_name(char *buf, size_t len, uint64_t started_us, int id);

#endif
