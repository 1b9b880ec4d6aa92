/*
 * shard/keyfind: where a statement says which shard it is for. Three sources, cheapest first:
 * a hint comment before the first token, pgmux's own settings (SET pgmux.shard_key / pgmux.shard),
 * and the statement itself, read with PostgreSQL's own grammar (libpg_query) for the values the
 * key column is compared with or inserted as.
 *
 * Invariants:
 * - Never a wrong key: a value is reported only where every row the statement can read or write
 *   has that key (or one of those keys); anything less certain is KEYFIND_NO_KEY, and the caller
 *   decides what NO_KEY means (an error, the hinted shard, all shards).
 * - The values are the literals as written (after the lexer: E'' escapes and dollar quotes are
 *   resolved) or Bind parameter numbers; turning them into keys of the column's type is
 *   shard/key's job, which refuses what the server would refuse.
 * - The scanners read only sql[0..len), need no NUL and allocate nothing; keyfind_sql frees what
 *   it allocates before returning, but for its result and libpg_query's per-thread parser state.
 */
#ifndef PGMUX_SHARD_KEYFIND_H
#define PGMUX_SHARD_KEYFIND_H

#include <stdbool.h>
#include <stddef.h>

/* Longest query string keyfind_sql parses: longer ones are NO_KEY unread. */
#define KEYFIND_MAX_SQL (1024 * 1024)
/* Most key values one query string may name: more are NO_KEY. */
#define KEYFIND_MAX_VALUES 1024

enum keyfind_hint_kind { KEYFIND_HINT_NONE, KEYFIND_HINT_KEY, KEYFIND_HINT_SHARD };

struct keyfind_hint {
	enum keyfind_hint_kind kind;
	const char *value; /* points into sql; not NUL-terminated */
	size_t value_len;
};

/*
 * A shard hint in the comments before the first token: "pgmux:shard_key=VALUE" (KEY) or
 * "pgmux:shard=NAME" (SHARD), in a slash-star comment or a -- comment. One comment may hold
 * several pgmux: hints separated by blanks or commas; those that are not about shards
 * (pgmux:primary, ...) and other words are skipped. A value runs to the next blank, comma or the
 * comment's end; written in single quotes it may hold blanks and commas (no escapes: the value
 * is what lies between the quotes). The first shard hint counts. true when one was found;
 * otherwise h->kind is KEYFIND_HINT_NONE.
 */
bool keyfind_hint(const char *sql, size_t len, struct keyfind_hint *h);

enum keyfind_setting { KEYFIND_SET_KEY, KEYFIND_SET_SHARD };

struct keyfind_set {
	enum keyfind_setting what; /* pgmux.shard_key or pgmux.shard */
	bool local;                /* SET LOCAL: until the end of the transaction */
	bool reset;                /* RESET, or SET ... TO DEFAULT: value is NULL */
	const char *value;         /* points into sql; not NUL-terminated */
	size_t value_len;
};

/*
 * Is sql exactly one statement setting pgmux.shard_key or pgmux.shard?
 *   SET [SESSION | LOCAL] name {TO | =} {value | DEFAULT} [;]      RESET name [;]
 * Keywords are case-insensitive; blanks and comments may stand between tokens. The name's two
 * parts may be double-quoted, then they must be written in lower case ("pgmux"."shard_key"), as
 * PostgreSQL would fold them. The value is a '...' literal without '' inside, a $$...$$ literal,
 * a number with its sign, a word, or a "quoted" word: value points at the text between the
 * quotes, or at the number or word as written (an unquoted word is not folded to lower case).
 * false for anything else, including a second statement, several values and E'...' literals.
 */
bool keyfind_set(const char *sql, size_t len, struct keyfind_set *s);

struct keyfind_value {
	int param;     /* > 0: the value is Bind parameter $param (1-based); 0: a literal */
	char *literal; /* param == 0: the literal's text, NUL-terminated, owned */
	size_t literal_len;
};

enum keyfind_status {
	KEYFIND_KEYED,  /* every statement that touches data names its key value(s): values[] */
	KEYFIND_NO_KEY, /* at least one such statement names no value for the key column */
	KEYFIND_PARSE_ERROR, /* the parser refused the SQL (PostgreSQL will answer it) */
};

/*
 * A string that is exactly one COPY table FROM STDIN: what splitting its rows by key needs.
 * Option values are as written (after the lexer); "" when the option is not given.
 */
struct keyfind_copy {
	bool from_stdin; /* the rest is filled only when true */
	char table[280]; /* "schema"."name" quoted for PostgreSQL (a regclass literal) */
	int n_columns;   /* length of its column list; 0: no list (every column) */
	int key_column;  /* the key's place in the list; -1 not in it or no list */
	char format[8];  /* "text", "csv", "binary" ("" = text) */
	char delimiter[8], quote[8], escape[8];
	char null_string[72];
	bool null_given;          /* NULL was given (null_string may be "") */
	int header;               /* 0 no, 1 yes, 2 MATCH */
	const char *unsplittable; /* an option value keyfind cannot take (static), or NULL */
};

struct keyfind {
	enum keyfind_status status;
	int n_values;                 /* 0 unless KEYFIND_KEYED */
	struct keyfind_value *values; /* owned; keyfind_free */
	int n_statements;             /* as parsed; 0 when not parsed */
	bool writes;                  /* some statement is not a plain read (see keyfind_sql) */
	bool neutral; /* parsed, and no statement touches a table: any shard will do */
	/*
	 * The last SELECT's rows, read from several shards, would have to be merged rather than
	 * put one after the other: why ("ORDER BY", "aggregates or window functions", ...), a
	 * static string; NULL when they need not (or the statement is not a SELECT).
	 */
	const char *merge_needed;
	struct keyfind_copy copy; /* a COPY ... FROM STDIN alone (copy.from_stdin) */
};

/*
 * The key values of every statement of a query string (sql[0..len), or up to a NUL byte, where
 * PostgreSQL's query strings end), for the key column named column: its name as PostgreSQL
 * stores it (unquoted identifiers folded to lower case), compared case-sensitively with the last
 * part of a column reference, so u.user_id and public.users.user_id match, "User_Id" does not.
 *
 * A statement gives values through the top-level AND conjuncts of its WHERE (SELECT, UPDATE,
 * DELETE): col = v, v = col, col IN (v, ...), col = ANY(ARRAY[v, ...]), col possibly cast; or
 * through the column's position in each VALUES row of an INSERT with a column list. v is a
 * constant, a negated number, a $n parameter, or a cast of one of those. EXPLAIN and DECLARE
 * CURSOR answer for their statement; a UNION (INTERSECT, EXCEPT) is keyed when every arm is.
 * Transaction control, SET/RESET/SHOW, DISCARD, DEALLOCATE, LISTEN/NOTIFY, FETCH/MOVE/CLOSE and
 * a SELECT or VALUES of constants alone are neutral: they give no values and need none.
 * Everything else, and any predicate under OR or NOT, in a subquery or a JOIN's ON, is no key
 * (so are an UPDATE assigning the key column, which would move the row to another shard, and a
 * WITH holding INSERT/UPDATE/DELETE). A string of neutral statements only is NO_KEY with no
 * values. Strings longer than KEYFIND_MAX_SQL are NO_KEY unparsed, as is a string naming more
 * than KEYFIND_MAX_VALUES values.
 *
 * writes: a statement other than a SELECT without INTO or FOR UPDATE/SHARE, an EXPLAIN without
 * ANALYZE, COPY ... TO or a neutral statement; true too when the string was not parsed (too long,
 * parse error). Functions a SELECT calls are not looked at (route/classify knows those).
 *
 * A string that is one COPY into a table FROM STDIN is NO_KEY (its keys are in its data) and
 * describes the COPY in copy: table, column list and the options that say how rows are written.
 *
 * out is filled in every case; the caller frees it with keyfind_free(). false only when out of
 * memory (then out holds nothing to free). Uses libpg_query, which keeps parser state per thread.
 */
bool keyfind_sql(const char *sql, size_t len, const char *column, struct keyfind *out);

/* Frees what keyfind_sql allocated into kf (not kf itself); kf is left empty. */
void keyfind_free(struct keyfind *kf);

#endif
