/*
 * shard/copyrows: the rows of COPY ... FROM STDIN data in PostgreSQL's text or CSV format, and
 * the shard key column of each, so that a COPY into a sharded table can send every row to the
 * shard that owns its key. The data arrives as the client's CopyData messages, cut anywhere: a
 * row may span several messages and a message may hold many rows.
 *
 * Rows are split exactly where PostgreSQL splits them:
 * - A row ends at a line terminator: "\n", "\r\n" or "\r", whichever the first row ends with;
 *   a different one later is an error, as in PostgreSQL.
 * - Text: a backslash escapes the next byte (a backslash-newline does not end the row).
 *   CSV: a terminator inside a quoted field does not end the row.
 * - A row that is exactly backslash-period, with the stream's terminator (or any terminator when
 *   it is the first row), is the end-of-data marker: it and what follows are not rows. In text,
 *   a backslash-period anywhere else is an error (PostgreSQL would end the data or refuse it
 *   there); in CSV it is data.
 * - At the end of the data, a last row without terminator is still a row; an open CSV quote is
 *   an error ("unterminated CSV quoted field").
 * Line numbers are PostgreSQL's (those of its "COPY t, line N" context): rows count from 1, the
 * header included, and in CSV a line break inside quotes counts too.
 *
 * Invariants:
 * - The rows reported, concatenated, are the data exactly as fed, up to the end-of-data marker;
 *   how the data is cut into feeds changes neither the rows, nor their keys and line numbers,
 *   nor where an error is found or its text.
 * - A row is at most max_row bytes (terminator included); one byte more is an error, so the
 *   module never holds more than max_row bytes of a row nor of a key.
 * - A row that lies within one feed is reported by pointer into that feed; only a row that
 *   spans feeds is assembled, in a buffer the module keeps and reuses (so is a row ending in a
 *   lone \r that is its feed's last byte: the next byte shows whether a \n follows).
 * - After an error or a stop, every later call returns the same status and reports nothing.
 *
 * Pure: no I/O. Memory: two buffers, grown (never past max_row) only for rows or keys that
 * need them, freed by copy_rows_free().
 */
#ifndef PGMUX_SHARD_COPYROWS_H
#define PGMUX_SHARD_COPYROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a NULL string, NUL excluded: a longer one is refused by copy_format_check(). */
#define COPY_NULL_MAX 127

/*
 * The COPY options that shape the data. NULL strings are PostgreSQL's defaults for the format
 * (copy_format_defaults() fills them in); the strings are the options' values as given in the
 * COPY statement, NUL-terminated, and need to live only until copy_rows_init() returns.
 */
struct copy_format {
	bool csv;                /* FORMAT csv; false: FORMAT text */
	bool header;             /* HEADER: the first row names the columns */
	const char *delimiter;   /* text "\t", csv "," */
	const char *quote;       /* csv only: "\"" */
	const char *escape;      /* csv only: the quote */
	const char *null_string; /* text "\\N", csv "" (matched before unescaping) */
};

/*
 * One row, valid only during the callback: data points into the bytes fed or into the module's
 * buffer. data[0..len) is the row as sent, its line terminator included (none for a last row
 * without one). key[0..key_len) is the key column's value decoded (escapes and quotes
 * resolved), not NUL-terminated, and may hold any byte; NULL with key_len 0 when key_null or
 * header.
 */
struct copy_row {
	const uint8_t *data;
	size_t len;
	bool header;   /* the HEADER row: no key read, every shard takes it */
	bool key_null; /* the key column is the NULL string */
	const char *key;
	size_t key_len;
	uint64_t line; /* PostgreSQL's line number of the row */
};

/* Called for each row in order; false stops the data (copy_rows_feed returns COPY_ROWS_STOPPED). */
typedef bool (*copy_row_fn)(const struct copy_row *row, void *arg);

enum copy_rows_status {
	COPY_ROWS_MORE,    /* every byte taken: feed more, or finish */
	COPY_ROWS_END,     /* the end-of-data marker was read, or finish reported the last row */
	COPY_ROWS_STOPPED, /* the callback returned false */
	COPY_ROWS_NO_KEY,  /* a row has no key column (too few columns): copy_rows_error() */
	COPY_ROWS_ERROR,   /* malformed data, a row longer than max_row, out of memory */
};

/* The splitter's state; the caller owns it, the fields are the module's. */
struct copy_rows {
	bool csv, header;
	uint8_t delim, quote, escape;
	uint8_t line_escape;          /* csv: escape, or 0 when it is the quote (a plain toggle) */
	uint8_t eol;                  /* the line terminator, once the first row showed it */
	uint8_t wait;                 /* what the next byte completes (a \r, an escape, a marker) */
	bool in_quote, last_was_esc;  /* csv */
	uint8_t term_len;             /* the terminator's bytes in the row being reported */
	enum copy_rows_status status; /* sticky once not MORE */
	int key_column;
	size_t max_row;
	size_t null_len;
	char null_string[COPY_NULL_MAX + 1];
	bool special[256]; /* bytes the scan must look at, the others only belong */
	uint64_t line, rows;
	uint8_t *buf; /* a row that spans feeds: buf[0..held) so far */
	size_t held, cap;
	char *key; /* a key that needs decoding */
	size_t key_cap;
	char error[160];
};

/* Fills f's NULL options with PostgreSQL's defaults for f->csv (static strings). */
void copy_format_defaults(struct copy_format *f);

/*
 * Would PostgreSQL accept these options (NULL ones taken as defaults)? false, with err saying
 * why in PostgreSQL's words, for: a delimiter, quote or escape that is not one byte; a newline
 * or carriage return as the delimiter or in the NULL string; in text, a delimiter that is a
 * backslash, a period, a lower-case letter or a digit, or a quote or escape given at all; the
 * delimiter in the NULL string; in CSV, the delimiter equal to the quote or the quote in the NULL
 * string. Also false for a NULL string longer than COPY_NULL_MAX, which PostgreSQL would take.
 */
bool copy_format_check(const struct copy_format *f, char *err, size_t errlen);

/*
 * Starts splitting data in format f, reading column key_column (0-based) of each row, rows of at
 * most max_row bytes. false (copy_rows_error() says why; r's status is COPY_ROWS_ERROR) for a
 * format copy_format_check() refuses, a negative key_column or a max_row of 0. r needs
 * copy_rows_free() either way.
 */
bool copy_rows_init(struct copy_rows *r, const struct copy_format *f, int key_column,
		    size_t max_row);

/*
 * Takes the next len bytes of data and calls fn, before returning, for each row they complete.
 * The bytes need to live only until the call returns. MORE: all taken, the last row may be
 * incomplete; END: the end-of-data marker was read, the bytes after it are ignored (this call
 * and later ones); STOPPED, NO_KEY, ERROR: no row after the one that stopped or failed is
 * reported.
 */
enum copy_rows_status copy_rows_feed(struct copy_rows *r, const uint8_t *data, size_t len,
				     copy_row_fn fn, void *arg);

/*
 * The data is over (CopyDone): reports the last row if it has no terminator. END when all rows
 * were reported; STOPPED, NO_KEY or ERROR as for copy_rows_feed.
 */
enum copy_rows_status copy_rows_finish(struct copy_rows *r, copy_row_fn fn, void *arg);

/* What went wrong, with the line, for NO_KEY and ERROR; "" otherwise. Owned by r. */
const char *copy_rows_error(const struct copy_rows *r);

/* The line number of the last row read (the one reported, or the one an error is about). */
uint64_t copy_rows_line(const struct copy_rows *r);

/* The status's name, for logs: "more", "end", "stopped", "no key", "error". */
const char *copy_rows_status_name(enum copy_rows_status s);

/* Frees r's buffers; r may be freed after a failed copy_rows_init, and twice. */
void copy_rows_free(struct copy_rows *r);

#endif
