/*
 * shard/copyrows: COPY FROM STDIN data split into rows, and each row's key column (see
 * copyrows.h).
 *
 * Two passes, each as PostgreSQL makes it. The first finds where rows end, one byte at a time
 * and resumable at any byte, because a feed may stop anywhere: most bytes only belong to the
 * row, so a table of the bytes that matter (line ends, backslash, CSV quote and escape) lets a
 * tight loop skip the others, and r->wait carries what a byte left pending into the next one
 * (a \r that may be a \r\n, a text escape, a CSV escape, a backslash that may start the
 * end-of-data marker). The second pass reads the fields of a complete row up to the key column,
 * which it decodes in place when it can (a key without escapes or quotes points into the row).
 *
 * Invariants: r->held <= r->max_row (a row is refused at its byte max_row + 1, in whichever
 * feed it comes); r->wait is WAIT_START exactly between rows, so r->held > 0 whenever a row
 * is in progress at the end of a feed; r->status stays COPY_ROWS_MORE until the data ends,
 * fails or is stopped, and never changes after.
 */
#include "shard/copyrows.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hex.h"

/* The line terminator: unknown until the first row ends, then the same for every row. */
enum { EOL_UNKNOWN, EOL_NL, EOL_CR, EOL_CRNL };

/* What the previous byte left pending (r->wait). */
enum {
	WAIT_NONE,
	WAIT_START,   /* the next byte starts a row */
	WAIT_CR,      /* a \r: \n makes it \r\n, anything else makes it the terminator */
	WAIT_ESCAPED, /* text: a backslash, the next byte is data */
	WAIT_MARK1,   /* a backslash first in its row */
	WAIT_MARK2,   /* backslash-period first in its row */
	WAIT_MARK3,   /* backslash-period-\r in \r\n data */
};

/* What one byte does to the row. */
enum step {
	STEP_TAKE,      /* belongs to the row, which goes on */
	STEP_ROW_END,   /* belongs to the row and ends it */
	STEP_ROW_ENDED, /* the row ended just before it (a lone \r): it starts the next row */
	STEP_MARKER,    /* ends the end-of-data marker */
	STEP_FAIL,      /* r->status and r->error say why */
};

/* A field of a row as PostgreSQL reads it. */
struct field {
	size_t start, end; /* the raw bytes (what the NULL string is matched against) */
	size_t next;       /* where the next field starts */
	size_t out_len;    /* bytes of the decoded value */
	bool more;         /* a delimiter follows */
	bool decoded;      /* escapes or quotes: the value is not the raw bytes */
};

static enum step fail(struct copy_rows *r, enum copy_rows_status status, const char *fmt, ...)
{
	char msg[120];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->error, sizeof(r->error), "line %llu: %s", (unsigned long long)r->line, msg);
	r->status = status;
	return STEP_FAIL;
}

static enum step fail_cr(struct copy_rows *r)
{
	return fail(r, COPY_ROWS_ERROR,
		    r->csv ? "unquoted carriage return found in data"
			   : "literal carriage return found in data");
}

static enum step fail_nl(struct copy_rows *r)
{
	return fail(r, COPY_ROWS_ERROR,
		    r->csv ? "unquoted newline found in data" : "literal newline found in data");
}

static enum step fail_marker_style(struct copy_rows *r)
{
	return fail(r, COPY_ROWS_ERROR, "end-of-copy marker does not match previous newline style");
}

/* A line end outside quotes and escapes: the first row's sets the style the others keep. */
static enum step line_end(struct copy_rows *r, uint8_t c)
{
	if (c == '\r') {
		if (r->eol == EOL_UNKNOWN || r->eol == EOL_CRNL) {
			r->wait = WAIT_CR;
			return STEP_TAKE;
		}
		if (r->eol == EOL_NL)
			return fail_cr(r);
		r->term_len = 1;
		return STEP_ROW_END;
	}
	if (r->eol == EOL_CR || r->eol == EOL_CRNL)
		return fail_nl(r);
	r->eol = EOL_NL;
	r->term_len = 1;
	return STEP_ROW_END;
}

/*
 * A byte with nothing pending, in PostgreSQL's order: the CSV quote state first (an escape
 * counts only inside quotes, and only when it is not the quote itself), then line ends.
 */
static enum step plain(struct copy_rows *r, uint8_t c)
{
	if (r->csv) {
		if (r->in_quote && c == r->line_escape)
			r->last_was_esc = !r->last_was_esc;
		if (c == r->quote && !r->last_was_esc)
			r->in_quote = !r->in_quote;
		if (c != r->line_escape)
			r->last_was_esc = false;
		if (r->in_quote) {
			/* PostgreSQL counts a quoted line break as a line (a \r until it knows) */
			if (c == (r->eol == EOL_NL ? '\n' : '\r'))
				r->line++;
			return STEP_TAKE;
		}
	} else if (c == '\\') {
		r->wait = WAIT_ESCAPED;
		return STEP_TAKE;
	}
	if (c == '\n' || c == '\r')
		return line_end(r, c);
	return STEP_TAKE;
}

/*
 * Backslash-period (and \r when mark3) started the row but c does not end a marker: an error
 * in text; data in CSV, where the held bytes are read again as PostgreSQL reads them.
 */
static enum step not_marker(struct copy_rows *r, uint8_t c, bool mark3);

static enum step step_byte(struct copy_rows *r, uint8_t c)
{
	switch (r->wait) {
	case WAIT_START:
		r->line++;
		r->wait = WAIT_NONE;
		if (c != '\\')
			return plain(r, c);
		/* in CSV the backslash is data (maybe a quote) whatever follows */
		if (r->csv)
			plain(r, c);
		r->wait = WAIT_MARK1;
		return STEP_TAKE;
	case WAIT_CR:
		r->wait = WAIT_NONE;
		if (c == '\n') {
			r->eol = EOL_CRNL;
			r->term_len = 2;
			return STEP_ROW_END;
		}
		if (r->eol == EOL_CRNL)
			return fail_cr(r);
		r->eol = EOL_CR;
		r->term_len = 1;
		return STEP_ROW_ENDED;
	case WAIT_ESCAPED:
		r->wait = WAIT_NONE;
		if (c == '.')
			return fail(r, COPY_ROWS_ERROR,
				    "end-of-copy marker is not alone on its line");
		return STEP_TAKE;
	case WAIT_MARK1:
		r->wait = WAIT_NONE;
		if (c == '.') {
			r->wait = WAIT_MARK2;
			return STEP_TAKE;
		}
		/* text: the backslash escapes c */
		return r->csv ? plain(r, c) : STEP_TAKE;
	case WAIT_MARK2:
		r->wait = WAIT_NONE;
		if (r->eol == EOL_CRNL) {
			if (c == '\r') {
				r->wait = WAIT_MARK3;
				return STEP_TAKE;
			}
			if (c == '\n' && !r->csv)
				return fail_marker_style(r);
			return not_marker(r, c, false);
		}
		if (c != '\n' && c != '\r')
			return not_marker(r, c, false);
		if ((r->eol == EOL_NL && c != '\n') || (r->eol == EOL_CR && c != '\r'))
			return fail_marker_style(r);
		return STEP_MARKER;
	case WAIT_MARK3:
		r->wait = WAIT_NONE;
		if (c == '\n')
			return STEP_MARKER;
		if (c == '\r')
			return fail_marker_style(r);
		return not_marker(r, c, true);
	default:
		return plain(r, c);
	}
}

static enum step not_marker(struct copy_rows *r, uint8_t c, bool mark3)
{
	if (!r->csv)
		return fail(r, COPY_ROWS_ERROR, "end-of-copy marker corrupt");
	/* neither '.' nor a \r that the next byte settles can end a row here */
	plain(r, '.');
	if (mark3)
		plain(r, '\r');
	return step_byte(r, c);
}

/* Room for n more bytes of the row being assembled (r->held + n <= r->max_row). */
static bool hold(struct copy_rows *r, const uint8_t *data, size_t n)
{
	if (n == 0)
		return true;
	if (r->held + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		uint8_t *buf;

		while (cap < r->held + n)
			cap *= 2;
		if (cap > r->max_row)
			cap = r->max_row;
		buf = realloc(r->buf, cap);
		if (!buf) {
			fail(r, COPY_ROWS_ERROR, "out of memory for a row of %zu bytes",
			     r->held + n);
			return false;
		}
		r->buf = buf;
		r->cap = cap;
	}
	memcpy(r->buf + r->held, data, n);
	r->held += n;
	return true;
}

static bool octal(uint8_t c)
{
	return c >= '0' && c <= '7';
}

/* The byte a text escape stands for; *i is past the escaped byte, and moves past \ooo or \xhh. */
static uint8_t text_escape(const uint8_t *p, size_t n, size_t *i, uint8_t c)
{
	int v;

	switch (c) {
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'v':
		return '\v';
	case 'x':
		if (*i >= n || hex_digit_value(p[*i]) < 0)
			return c;
		v = hex_digit_value(p[(*i)++]);
		if (*i < n && hex_digit_value(p[*i]) >= 0)
			v = v * 16 + hex_digit_value(p[(*i)++]);
		return (uint8_t)v;
	default:
		if (!octal(c))
			return c;
		v = c - '0';
		for (int k = 0; k < 2 && *i < n && octal(p[*i]); k++)
			v = v * 8 + (p[(*i)++] - '0');
		return (uint8_t)(v & 0377);
	}
}

/*
 * The text field at p[i] of a row of n bytes (terminator excluded), decoded into out when out
 * is not NULL. As in PostgreSQL, an escape may reach past a delimiter (\x4 then a delimiter
 * 'A' is \x4A), and a backslash that ends the row is dropped.
 */
static void text_field(const struct copy_rows *r, const uint8_t *p, size_t n, size_t i, char *out,
		       struct field *f)
{
	memset(f, 0, sizeof(*f));
	f->start = i;
	for (;;) {
		uint8_t c;

		f->end = i;
		if (i >= n)
			break;
		c = p[i++];
		if (c == r->delim) {
			f->more = true;
			break;
		}
		if (c == '\\') {
			if (i >= n)
				break;
			c = p[i++];
			c = text_escape(p, n, &i, c);
			f->decoded = true;
		}
		if (out)
			out[f->out_len] = (char)c;
		f->out_len++;
	}
	f->next = i;
}

/*
 * The CSV field at p[i], decoded into out when out is not NULL: a quote anywhere opens a
 * quoted part, in which the escape before a quote or an escape stands for that byte and
 * delimiters are data. false if the row ends inside quotes.
 */
static bool csv_field(const struct copy_rows *r, const uint8_t *p, size_t n, size_t i, char *out,
		      struct field *f)
{
	memset(f, 0, sizeof(*f));
	f->start = i;
	for (;;) {
		uint8_t c;

		f->end = i;
		if (i >= n)
			break;
		c = p[i++];
		if (c == r->delim) {
			f->more = true;
			break;
		}
		if (c == r->quote) {
			f->decoded = true;
			for (;;) {
				if (i >= n)
					return false;
				c = p[i++];
				if (c == r->escape && i < n &&
				    (p[i] == r->escape || p[i] == r->quote))
					c = p[i++];
				else if (c == r->quote)
					break;
				if (out)
					out[f->out_len] = (char)c;
				f->out_len++;
			}
			continue;
		}
		if (out)
			out[f->out_len] = (char)c;
		f->out_len++;
	}
	f->next = i;
	return true;
}

static bool read_field(const struct copy_rows *r, const uint8_t *p, size_t n, size_t i, char *out,
		       struct field *f)
{
	if (r->csv)
		return csv_field(r, p, n, i, out, f);
	text_field(r, p, n, i, out, f);
	return true;
}

/* The key column of a row of n bytes (terminator excluded) into row. */
static bool read_key(struct copy_rows *r, const uint8_t *p, size_t n, struct copy_row *row)
{
	struct field f;
	size_t i = 0;

	for (int col = 0;; col++) {
		if (!read_field(r, p, n, i, NULL, &f)) {
			fail(r, COPY_ROWS_ERROR, "unterminated CSV quoted field");
			return false;
		}
		if (col == r->key_column)
			break;
		if (!f.more) {
			fail(r, COPY_ROWS_NO_KEY,
			     "missing data for column %d (the shard key): the row has %d columns",
			     r->key_column + 1, col + 1);
			return false;
		}
		i = f.next;
	}
	/* raw bytes, so a quoted field is never NULL: the NULL string holds no quote */
	if (f.end - f.start == r->null_len &&
	    memcmp(p + f.start, r->null_string, r->null_len) == 0) {
		row->key_null = true;
		return true;
	}
	/* a value with nothing to decode, or decoded to nothing (""), is read in place */
	if (!f.decoded || f.out_len == 0) {
		row->key = (const char *)p + f.start;
		row->key_len = f.decoded ? 0 : f.end - f.start;
		return true;
	}
	if (f.out_len > r->key_cap) {
		char *key = realloc(r->key, f.out_len);

		if (!key) {
			fail(r, COPY_ROWS_ERROR, "out of memory for a key of %zu bytes", f.out_len);
			return false;
		}
		r->key = key;
		r->key_cap = f.out_len;
	}
	read_field(r, p, n, f.start, r->key, &f);
	row->key = r->key;
	row->key_len = f.out_len;
	return true;
}

/*
 * The row is complete: the bytes held from earlier feeds (if any), then p[0..n). Reads its key
 * and calls fn. false when it failed or fn stopped (r->status says which).
 */
static bool emit(struct copy_rows *r, const uint8_t *p, size_t n, copy_row_fn fn, void *arg)
{
	struct copy_row row = { 0 };

	if (r->held) {
		if (!hold(r, p, n))
			return false;
		p = r->buf;
		n = r->held;
		r->held = 0;
	}
	row.data = p;
	row.len = n;
	row.line = r->line;
	row.header = r->header && r->rows == 0;
	r->rows++;
	r->wait = WAIT_START;
	if (!row.header && !read_key(r, p, n - r->term_len, &row))
		return false;
	if (!fn(&row, arg)) {
		r->status = COPY_ROWS_STOPPED;
		return false;
	}
	return true;
}

enum copy_rows_status copy_rows_feed(struct copy_rows *r, const uint8_t *data, size_t len,
				     copy_row_fn fn, void *arg)
{
	size_t i = 0, start = 0; /* data[start..i) is the current row's part of this feed */

	if (r->status != COPY_ROWS_MORE)
		return r->status;
	while (i < len) {
		size_t room = r->max_row - r->held - (i - start);
		enum step s;

		if (r->wait == WAIT_NONE && !r->last_was_esc) {
			size_t stop = len - i > room ? i + room : len;

			while (i < stop && !r->special[data[i]])
				i++;
			if (i == len)
				break;
			room = r->max_row - r->held - (i - start);
		}
		/* byte max_row + 1 of a row is refused, unless it starts the next row after a \r */
		if (room == 0 && !(r->wait == WAIT_CR && data[i] != '\n')) {
			fail(r, COPY_ROWS_ERROR, "the row is longer than %zu bytes", r->max_row);
			return r->status;
		}
		s = step_byte(r, data[i]);
		if (s == STEP_TAKE) {
			i++;
			continue;
		}
		if (s == STEP_FAIL)
			return r->status;
		if (s == STEP_MARKER) {
			r->held = 0;
			r->status = COPY_ROWS_END;
			return r->status;
		}
		if (s == STEP_ROW_END)
			i++;
		if (!emit(r, data + start, i - start, fn, arg))
			return r->status;
		start = i;
	}
	if (!hold(r, data + start, len - start))
		return r->status;
	return COPY_ROWS_MORE;
}

enum copy_rows_status copy_rows_finish(struct copy_rows *r, copy_row_fn fn, void *arg)
{
	if (r->status != COPY_ROWS_MORE)
		return r->status;
	if (r->wait == WAIT_MARK2 || r->wait == WAIT_MARK3) {
		bool mark3 = r->wait == WAIT_MARK3;

		r->wait = WAIT_NONE;
		if (!r->csv) {
			fail(r, COPY_ROWS_ERROR, "end-of-copy marker corrupt");
			return r->status;
		}
		plain(r, '.');
		if (mark3)
			plain(r, '\r');
	}
	r->term_len = 0;
	if (r->wait == WAIT_CR) {
		if (r->eol == EOL_CRNL) {
			fail_cr(r);
			return r->status;
		}
		r->term_len = 1;
	}
	if (r->wait != WAIT_START) {
		if (r->csv && r->in_quote) {
			fail(r, COPY_ROWS_ERROR, "unterminated CSV quoted field");
			return r->status;
		}
		if (!emit(r, NULL, 0, fn, arg))
			return r->status;
	}
	r->status = COPY_ROWS_END;
	return r->status;
}

void copy_format_defaults(struct copy_format *f)
{
	if (!f->delimiter)
		f->delimiter = f->csv ? "," : "\t";
	if (!f->null_string)
		f->null_string = f->csv ? "" : "\\N";
	if (f->csv) {
		if (!f->quote)
			f->quote = "\"";
		if (!f->escape)
			f->escape = f->quote;
	}
}

static bool refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return false;
}

bool copy_format_check(const struct copy_format *given, char *err, size_t errlen)
{
	struct copy_format f = *given;
	const char *null;
	char d;

	copy_format_defaults(&f);
	null = f.null_string;
	d = f.delimiter[0];
	if (strlen(f.delimiter) != 1)
		return refuse(err, errlen, "COPY delimiter must be a single one-byte character");
	if (d == '\n' || d == '\r')
		return refuse(err, errlen, "COPY delimiter cannot be newline or carriage return");
	if (strchr(null, '\n') || strchr(null, '\r'))
		return refuse(err, errlen,
			      "COPY null representation cannot use newline or carriage return");
	if (!f.csv && strchr("\\.abcdefghijklmnopqrstuvwxyz0123456789", d))
		return refuse(err, errlen, "COPY delimiter cannot be \"%s\"", f.delimiter);
	if (!f.csv && f.quote)
		return refuse(err, errlen, "COPY quote available only in CSV mode");
	if (f.csv && strlen(f.quote) != 1)
		return refuse(err, errlen, "COPY quote must be a single one-byte character");
	if (f.csv && d == f.quote[0])
		return refuse(err, errlen, "COPY delimiter and quote must be different");
	if (!f.csv && f.escape)
		return refuse(err, errlen, "COPY escape available only in CSV mode");
	if (f.csv && strlen(f.escape) != 1)
		return refuse(err, errlen, "COPY escape must be a single one-byte character");
	if (strchr(null, d))
		return refuse(err, errlen,
			      "COPY delimiter must not appear in the NULL specification");
	if (f.csv && strchr(null, f.quote[0]))
		return refuse(err, errlen,
			      "CSV quote character must not appear in the NULL specification");
	if (strlen(null) > COPY_NULL_MAX)
		return refuse(err, errlen, "a NULL string of more than %d bytes is not supported",
			      COPY_NULL_MAX);
	return true;
}

bool copy_rows_init(struct copy_rows *r, const struct copy_format *f, int key_column,
		    size_t max_row)
{
	struct copy_format d = *f;

	memset(r, 0, sizeof(*r));
	r->status = COPY_ROWS_ERROR;
	if (!copy_format_check(f, r->error, sizeof(r->error)))
		return false;
	if (key_column < 0) {
		snprintf(r->error, sizeof(r->error), "the key column cannot be %d", key_column);
		return false;
	}
	if (max_row == 0) {
		snprintf(r->error, sizeof(r->error), "rows of at most 0 bytes cannot be read");
		return false;
	}
	copy_format_defaults(&d);
	r->csv = d.csv;
	r->header = d.header;
	r->delim = (uint8_t)d.delimiter[0];
	if (d.csv) {
		r->quote = (uint8_t)d.quote[0];
		r->escape = (uint8_t)d.escape[0];
		/* an escape that is the quote is none for finding row ends: "" toggles twice */
		r->line_escape = r->escape == r->quote ? 0 : r->escape;
		r->special[r->quote] = r->special[r->line_escape] = true;
	} else {
		r->special['\\'] = true;
	}
	r->special['\n'] = r->special['\r'] = true;
	r->null_len = strlen(d.null_string);
	memcpy(r->null_string, d.null_string, r->null_len + 1);
	r->key_column = key_column;
	r->max_row = max_row;
	r->eol = EOL_UNKNOWN;
	r->wait = WAIT_START;
	r->status = COPY_ROWS_MORE;
	return true;
}

const char *copy_rows_error(const struct copy_rows *r)
{
	return r->status == COPY_ROWS_NO_KEY || r->status == COPY_ROWS_ERROR ? r->error : "";
}

uint64_t copy_rows_line(const struct copy_rows *r)
{
	return r->line;
}

const char *copy_rows_status_name(enum copy_rows_status s)
{
	switch (s) {
	case COPY_ROWS_MORE:
		return "more";
	case COPY_ROWS_END:
		return "end";
	case COPY_ROWS_STOPPED:
		return "stopped";
	case COPY_ROWS_NO_KEY:
		return "no key";
	case COPY_ROWS_ERROR:
		return "error";
	}
	return "?";
}

void copy_rows_free(struct copy_rows *r)
{
	free(r->buf);
	free(r->key);
	r->buf = NULL;
	r->key = NULL;
	r->held = r->cap = r->key_cap = 0;
}
