/*
 * Unit tests for shard/copyrows: every rule of copyrows.h in text and CSV, each input fed whole,
 * cut into two feeds at every byte and into three at every pair of bytes, and one byte at a
 * time (the rows, keys, line numbers and errors must not change); rows inside one feed reported
 * by pointer into it; format checks; a stop from the callback; a 100,000-row stream.
 */
/* link: src/shard/copyrows.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shard/copyrows.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LOG_MAX 4096

/* What one run saw, written as text, and what the rows must keep to. */
struct run {
	const uint8_t *in;    /* the whole input */
	const uint8_t *chunk; /* the feed being taken, in[chunk_at..chunk_at + chunk_len) */
	size_t chunk_at, chunk_len;
	size_t pos; /* input bytes reported as rows so far */
	size_t max_row;
	int stop_after; /* > 0: the callback stops at this row */
	int rows;
	char log[LOG_MAX];
	size_t log_len;
};

static void log_add(struct run *run, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	run->log_len += (size_t)vsnprintf(run->log + run->log_len, LOG_MAX - run->log_len, fmt, ap);
	va_end(ap);
	assert_true(run->log_len < LOG_MAX);
}

/* Bytes as the log shows them: |n |r |t for line ends and tabs, |xHH for others, || for |. */
static void log_bytes(struct run *run, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			log_add(run, "|n");
		else if (p[i] == '\r')
			log_add(run, "|r");
		else if (p[i] == '\t')
			log_add(run, "|t");
		else if (p[i] == '|')
			log_add(run, "||");
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			log_add(run, "|x%02x", p[i]);
		else
			log_add(run, "%c", p[i]);
	}
}

static bool on_row(const struct copy_row *row, void *arg)
{
	struct run *run = arg;
	size_t at = run->pos - run->chunk_at;

	/* the rows, one after the other, are the input */
	assert_true(row->len > 0 && row->len <= run->max_row);
	assert_memory_equal(row->data, run->in + run->pos, row->len);
	/* a row inside the feed is that feed's bytes, not a copy */
	if (run->pos >= run->chunk_at && at + row->len <= run->chunk_len)
		assert_ptr_equal(row->data, run->chunk + at);
	else if (run->chunk_len > 0)
		assert_true(row->data < run->chunk || row->data >= run->chunk + run->chunk_len);
	run->pos += row->len;
	log_add(run, "%llu:", (unsigned long long)row->line);
	log_bytes(run, row->data, row->len);
	if (row->header) {
		assert_true(row->key == NULL && !row->key_null);
		log_add(run, "=HEADER ");
	} else if (row->key_null) {
		assert_true(row->key == NULL && row->key_len == 0);
		log_add(run, "=NULL ");
	} else {
		assert_non_null(row->key);
		log_add(run, "=<");
		log_bytes(run, (const uint8_t *)row->key, row->key_len);
		log_add(run, "> ");
	}
	return ++run->rows != run->stop_after;
}

/* Feeds in[0..len) cut at cuts[0..n_cuts) (ascending), then finishes: the log of it all. */
static void run_cuts(struct run *run, const struct copy_format *f, int key, size_t max_row,
		     const uint8_t *in, size_t len, const size_t *cuts, int n_cuts)
{
	struct copy_rows r;
	enum copy_rows_status s = COPY_ROWS_MORE;
	size_t from = 0;
	int stop_after = run->stop_after;

	memset(run, 0, sizeof(*run));
	run->in = in;
	run->max_row = max_row;
	run->stop_after = stop_after;
	assert_true(copy_rows_init(&r, f, key, max_row));
	for (int k = 0; k <= n_cuts && s == COPY_ROWS_MORE; k++) {
		size_t to = k < n_cuts ? cuts[k] : len;
		/* an exact-size copy, so that a read past the feed is caught under sanitizers */
		uint8_t *chunk = malloc(to - from + 1);

		memcpy(chunk, in + from, to - from);
		run->chunk = chunk;
		run->chunk_at = from;
		run->chunk_len = to - from;
		s = copy_rows_feed(&r, chunk, to - from, on_row, run);
		free(chunk);
		from = to;
	}
	run->chunk = NULL;
	run->chunk_at = len;
	run->chunk_len = 0;
	if (s == COPY_ROWS_MORE)
		s = copy_rows_finish(&r, on_row, run);
	assert_int_equal(copy_rows_finish(&r, on_row, run), s);
	assert_true(r.cap <= max_row && r.key_cap <= max_row);
	log_add(run, "; %s", copy_rows_status_name(s));
	if (*copy_rows_error(&r))
		log_add(run, ": %s", copy_rows_error(&r));
	copy_rows_free(&r);
}

/* The log of in fed whole, after checking every cut into two and three feeds gives the same. */
static const char *run_all_cuts(const struct copy_format *f, int key, size_t max_row,
				const char *text, size_t len)
{
	static struct run whole;
	struct run split = { 0 };
	const uint8_t *in = (const uint8_t *)text;
	size_t cuts[2];

	run_cuts(&whole, f, key, max_row, in, len, NULL, 0);
	for (cuts[0] = 0; cuts[0] <= len; cuts[0]++) {
		run_cuts(&split, f, key, max_row, in, len, cuts, 1);
		if (strcmp(split.log, whole.log) != 0)
			fail_msg("cut at %zu:\n  %s\nwhole:\n  %s", cuts[0], split.log, whole.log);
		for (cuts[1] = cuts[0]; cuts[1] <= len; cuts[1]++) {
			run_cuts(&split, f, key, max_row, in, len, cuts, 2);
			if (strcmp(split.log, whole.log) != 0)
				fail_msg("cut at %zu and %zu:\n  %s\nwhole:\n  %s", cuts[0],
					 cuts[1], split.log, whole.log);
		}
	}
	{
		size_t *bytes = malloc((len + 1) * sizeof(*bytes));

		for (size_t i = 0; i < len; i++)
			bytes[i] = i;
		run_cuts(&split, f, key, max_row, in, len, bytes, len ? (int)len - 1 : 0);
		free(bytes);
		if (strcmp(split.log, whole.log) != 0)
			fail_msg("byte by byte:\n  %s\nwhole:\n  %s", split.log, whole.log);
	}
	return whole.log;
}

struct row_case {
	const char *in;
	int key;
	const char *want; /* the log: line:row=<key> ... ; status[: error] */
	size_t len;       /* 0: strlen(in) */
	size_t max_row;   /* 0: 1024 */
};

static void check_cases(const struct copy_format *given, const struct row_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct row_case *c = &cases[i];
		struct copy_format f = *given;
		const char *got;

		copy_format_defaults(&f);
		got = run_all_cuts(&f, c->key, c->max_row ? c->max_row : 1024, c->in,
				   c->len ? c->len : strlen(c->in));
		if (strcmp(got, c->want) != 0)
			fail_msg("case %zu:\n  got  %s\n  want %s", i, got, c->want);
	}
}

static const struct copy_format TEXT = { .csv = false };
static const struct copy_format CSV = { .csv = true };

static void test_text_rows_and_keys(void **state)
{
	static const struct row_case cases[] = {
		{ "a\t1\nb\t2\n", 1, "1:a|t1|n=<1> 2:b|t2|n=<2> ; end" },
		{ "a\t1\nb\t2\n", 0, "1:a|t1|n=<a> 2:b|t2|n=<b> ; end" },
		{ "", 0, "; end" },
		/* a last row without terminator is a row */
		{ "a\t1\nb\t2", 1, "1:a|t1|n=<1> 2:b|t2=<2> ; end" },
		/* NULL is the raw \N; an escaped backslash before N is the text \N */
		{ "a\t\\N\nb\t\\\\N\nc\t\\Nx\n", 1,
		  "1:a|t\\N|n=NULL 2:b|t\\\\N|n=<\\N> 3:c|t\\Nx|n=<Nx> ; end" },
		/* an empty field is an empty key, not NULL */
		{ "a\t\n\n", 1,
		  "1:a|t|n=<> ; no key: line 2: missing data for column 2 (the "
		  "shard key): the row has 1 columns" },
		{ "\n", 0, "1:|n=<> ; end" },
		/* escapes in the key */
		{ "\\b\\f\\n\\r\\t\\v\\\\\\q\n", 0,
		  "1:\\b\\f\\n\\r\\t\\v\\\\\\q|n=<|x08|x0c|n|r|t|x0b\\q> ; end" },
		{ "\\101\\0\\7a\\1234\\777\n", 0,
		  "1:\\101\\0\\7a\\1234\\777|n=<A|x00|x07aS4|xff> ; end" },
		{ "\\x41\\x4g\\xg\\x\n", 0, "1:\\x41\\x4g\\xg\\x|n=<A|x04gxgx> ; end" },
		/* an escaped delimiter is data */
		{ "a\\\tb\t1\n", 1, "1:a\\|tb|t1|n=<1> ; end" },
		{ "a\\\tb\t1\n", 0, "1:a\\|tb|t1|n=<a|tb> ; end" },
		/* a backslash-newline does not end the row, and is a newline in the key */
		{ "a\t1\\\n2\nb\t3\n", 1, "1:a|t1\\|n2|n=<1|n2> 2:b|t3|n=<3> ; end" },
		/* a backslash ending the data is dropped */
		{ "a\tb\\", 1, "1:a|tb\\=<b> ; end" },
		{ "a\t\\", 1, "1:a|t\\=<> ; end" },
		/* too few columns */
		{ "a\t1\nb\n", 1,
		  "1:a|t1|n=<1> ; no key: line 2: missing data for column 2 (the "
		  "shard key): the row has 1 columns" },
		/* the key column may be the last, and the row may have more */
		{ "a\tb\tc\td\n", 2, "1:a|tb|tc|td|n=<c> ; end" },
	};

	check_cases(&TEXT, cases, ARRAY_LEN(cases));
}

static void test_text_line_endings(void **state)
{
	static const struct row_case cases[] = {
		{ "a\t1\r\nb\t2\r\n", 1, "1:a|t1|r|n=<1> 2:b|t2|r|n=<2> ; end" },
		{ "a\t1\rb\t2\r", 1, "1:a|t1|r=<1> 2:b|t2|r=<2> ; end" },
		{ "a\t1\rb\t2", 1, "1:a|t1|r=<1> 2:b|t2=<2> ; end" },
		/* the first row sets the terminator */
		{ "a\t1\nb\t2\r\n", 1,
		  "1:a|t1|n=<1> ; error: line 2: literal carriage return found in data" },
		{ "a\t1\r\nb\t2\n", 1,
		  "1:a|t1|r|n=<1> ; error: line 2: literal newline found in data" },
		{ "a\t1\r\nb\t2\rc", 1,
		  "1:a|t1|r|n=<1> ; error: line 2: literal carriage return found in data" },
		{ "a\t1\r\nb\t2\r", 1,
		  "1:a|t1|r|n=<1> ; error: line 2: literal carriage return found in data" },
		{ "a\t1\rb\t2\n", 1,
		  "1:a|t1|r=<1> ; error: line 2: literal newline found in data" },
		/* escaped, a \r is data */
		{ "a\t1\\\r2\n", 1, "1:a|t1\\|r2|n=<1|r2> ; end" },
		/* an empty row in \r data */
		{ "a\r\rb\r", 0, "1:a|r=<a> 2:|r=<> 3:b|r=<b> ; end" },
	};

	check_cases(&TEXT, cases, ARRAY_LEN(cases));
}

static void test_text_end_marker(void **state)
{
	static const struct row_case cases[] = {
		{ "a\t1\n\\.\nb\t2\n", 1, "1:a|t1|n=<1> ; end" },
		{ "\\.\n", 0, "; end" },
		{ "\\.\r\nanything", 0, "; end" },
		{ "a\t1\r\n\\.\r\nb\t2\r\n", 1, "1:a|t1|r|n=<1> ; end" },
		{ "a\t1\r\\.\rb", 1, "1:a|t1|r=<1> ; end" },
		/* with a terminator other than the data's */
		{ "a\t1\n\\.\r\n", 1,
		  "1:a|t1|n=<1> ; error: line 2: end-of-copy marker does not "
		  "match previous newline style" },
		{ "a\t1\r\n\\.\n", 1,
		  "1:a|t1|r|n=<1> ; error: line 2: end-of-copy marker does not "
		  "match previous newline style" },
		{ "a\t1\r\n\\.\r\r", 1,
		  "1:a|t1|r|n=<1> ; error: line 2: end-of-copy marker does not "
		  "match previous newline style" },
		{ "a\t1\r\\.\n", 1,
		  "1:a|t1|r=<1> ; error: line 2: end-of-copy marker does not "
		  "match previous newline style" },
		/* not alone on its line */
		{ "\\.x\n", 0, "; error: line 1: end-of-copy marker corrupt" },
		{ "a\t1\r\n\\.\rx", 1,
		  "1:a|t1|r|n=<1> ; error: line 2: end-of-copy marker corrupt" },
		{ "a\\.\n", 0, "; error: line 1: end-of-copy marker is not alone on its line" },
		{ "a\t1\n\\.", 1, "1:a|t1|n=<1> ; error: line 2: end-of-copy marker corrupt" },
		/* an escaped backslash before a period is data */
		{ "\\\\.\t1\n", 1, "1:\\\\.|t1|n=<1> ; end" },
		/* a backslash first, then not a period */
		{ "\\N\t1\n\\", 0, "1:\\N|t1|n=NULL 2:\\=<> ; end" },
		{ "\\\n\t1\n", 0, "1:\\|n|t1|n=<|n> ; end" },
	};

	check_cases(&TEXT, cases, ARRAY_LEN(cases));
}

static void test_text_options(void **state)
{
	static const struct row_case pipe[] = {
		{ "a|1|\n", 1, "1:a||1|||n=<1> ; end" },
		{ "a|1|\n", 2, "1:a||1|||n=<> ; end" },
		{ "a|NULL\n", 1, "1:a||NULL|n=NULL ; end" },
		{ "a|\\N\n", 1, "1:a||\\N|n=<N> ; end" },
	};
	static const struct row_case upper_a[] = {
		/* a hex escape takes a delimiter that is a hex digit, as in PostgreSQL */
		{ "\\x4A1\n", 0, "1:\\x4A1|n=<J1> ; end" },
		{ "xA\\x4A1\n", 1, "1:xA\\x4A1|n=<J1> ; end" },
	};
	static const struct row_case header[] = {
		{ "id\tname\n1\tx\n", 0, "1:id|tname|n=HEADER 2:1|tx|n=<1> ; end" },
		{ "id\n1\tx\n", 1, "1:id|n=HEADER 2:1|tx|n=<x> ; end" },
		{ "id\n", 5, "1:id|n=HEADER ; end" },
	};
	struct copy_format f = TEXT;

	f.delimiter = "|";
	f.null_string = "NULL";
	check_cases(&f, pipe, ARRAY_LEN(pipe));
	f = TEXT;
	f.delimiter = "A";
	check_cases(&f, upper_a, ARRAY_LEN(upper_a));
	f = TEXT;
	f.header = true;
	check_cases(&f, header, ARRAY_LEN(header));
}

static void test_csv_rows_and_keys(void **state)
{
	static const struct row_case cases[] = {
		{ "a,1\nb,2\n", 1, "1:a,1|n=<1> 2:b,2|n=<2> ; end" },
		/* a quoted delimiter */
		{ "\"a,b\",1\n", 0, "1:\"a,b\",1|n=<a,b> ; end" },
		{ "\"a,b\",1\n", 1, "1:\"a,b\",1|n=<1> ; end" },
		/*
		 * a quoted newline continues the row and counts as a line, once the terminator is
		 * known: in the first row PostgreSQL counts quoted \r only
		 */
		{ "a,1\n\"x\ny\",2\nz,3\n", 1, "1:a,1|n=<1> 3:\"x|ny\",2|n=<2> 4:z,3|n=<3> ; end" },
		{ "\"x\ny\",1\nz,2\n", 0, "1:\"x|ny\",1|n=<x|ny> 2:z,2|n=<z> ; end" },
		/* doubled quotes */
		{ "\"a\"\"b\",1\n", 0, "1:\"a\"\"b\",1|n=<a\"b> ; end" },
		{ "\"\"\"\",1\n", 0, "1:\"\"\"\",1|n=<\"> ; end" },
		/* a quote inside a field opens a quoted part */
		{ "ab\"c,d\"e,1\n", 0, "1:ab\"c,d\"e,1|n=<abc,de> ; end" },
		/* NULL is unquoted empty; quoted empty is empty */
		{ ",1\n\"\",2\n", 0, "1:,1|n=NULL 2:\"\",2|n=<> ; end" },
		{ "a,\n", 1, "1:a,|n=NULL ; end" },
		{ "\n", 0, "1:|n=NULL ; end" },
		/* backslashes are data */
		{ "a\\,\\N\n", 1, "1:a\\,\\N|n=<\\N> ; end" },
		/* too few columns */
		{ "\"a,b\"\n", 1,
		  "; no key: line 1: missing data for column 2 (the shard key): the "
		  "row has 1 columns" },
		/* unterminated quote at the end */
		{ "a,1\n\"b,2\n", 0, "1:a,1|n=<a> ; error: line 3: unterminated CSV quoted field" },
		{ "a,1\n\"b\"\"", 0, "1:a,1|n=<a> ; error: line 2: unterminated CSV quoted field" },
		{ "a,\"1\"", 1, "1:a,\"1\"=<1> ; end" },
	};

	check_cases(&CSV, cases, ARRAY_LEN(cases));
}

static void test_csv_line_endings(void **state)
{
	static const struct row_case cases[] = {
		{ "a,1\r\nb,2\r\n", 1, "1:a,1|r|n=<1> 2:b,2|r|n=<2> ; end" },
		{ "a,1\rb,2\r", 1, "1:a,1|r=<1> 2:b,2|r=<2> ; end" },
		{ "\"a\r\nb\",1\r\nc,2\r\n", 0, "2:\"a|r|nb\",1|r|n=<a|r|nb> 3:c,2|r|n=<c> ; end" },
		/* quoted line ends of any kind are data */
		{ "\"a\rb\",1\nc,2\n", 0, "2:\"a|rb\",1|n=<a|rb> 3:c,2|n=<c> ; end" },
		{ "a,1\n\"b\rc\",2\n", 0, "1:a,1|n=<a> 2:\"b|rc\",2|n=<b|rc> ; end" },
		{ "a,1\nb,2\r\n", 1,
		  "1:a,1|n=<1> ; error: line 2: unquoted carriage return found in data" },
		{ "a,1\r\nb,2\n", 1,
		  "1:a,1|r|n=<1> ; error: line 2: unquoted newline found in data" },
	};

	check_cases(&CSV, cases, ARRAY_LEN(cases));
}

static void test_csv_end_marker(void **state)
{
	static const struct row_case cases[] = {
		{ "a,1\n\\.\nb,2\n", 1, "1:a,1|n=<1> ; end" },
		{ "a,1\r\n\\.\r\nb,2\r\n", 1, "1:a,1|r|n=<1> ; end" },
		/* quoted, or not alone, it is data */
		{ "\"\\.\"\n", 0, "1:\"\\.\"|n=<\\.> ; end" },
		{ "\\.x,1\n", 0, "1:\\.x,1|n=<\\.x> ; end" },
		{ "a\\.\n", 0, "1:a\\.|n=<a\\.> ; end" },
		{ "\\.", 0, "1:\\.=<\\.> ; end" },
		{ "a,1\r\n\\.\rx", 1,
		  "1:a,1|r|n=<1> ; error: line 2: unquoted carriage return found in data" },
		{ "a,1\r\n\\.\r", 1,
		  "1:a,1|r|n=<1> ; error: line 2: unquoted carriage return found in data" },
		{ "a,1\r\n\\.\n", 1,
		  "1:a,1|r|n=<1> ; error: line 2: unquoted newline found in data" },
		{ "a,1\n\\.\r\n", 1,
		  "1:a,1|n=<1> ; error: line 2: end-of-copy marker does not "
		  "match previous newline style" },
		/* a row that starts with a quoted line end is not a marker */
		{ "\"\n\\.\n\",1\n", 1, "1:\"|n\\.|n\",1|n=<1> ; end" },
	};

	check_cases(&CSV, cases, ARRAY_LEN(cases));
}

static void test_csv_options(void **state)
{
	static const struct row_case escape[] = {
		{ "\"a\\\"b\",1\n", 0, "1:\"a\\\"b\",1|n=<a\"b> ; end" },
		{ "\"a\\\\\",1\n", 0, "1:\"a\\\\\",1|n=<a\\> ; end" },
		/* the escape before any other byte is data */
		{ "\"a\\b\",1\n", 0, "1:\"a\\b\",1|n=<a\\b> ; end" },
		/* an escaped quote does not close the quotes: the newline is data */
		{ "\"a\\\"\n\",1\n", 1, "1:\"a\\\"|n\",1|n=<1> ; end" },
		/* the escape counts only inside quotes */
		{ "a\\\"b\",1\n", 0, "1:a\\\"b\",1|n=<a\\b> ; end" },
	};
	static const struct row_case semicolon[] = {
		{ "'a;b';x\n", 0, "1:'a;b';x|n=<a;b> ; end" },
		{ "'';x\n-;y\n", 0, "1:'';x|n=<> 2:-;y|n=NULL ; end" },
		/* a quoted NULL string is that text */
		{ "'-';x\n", 0, "1:'-';x|n=<-> ; end" },
	};
	/* PostgreSQL looks for the marker before a backslash or period quote counts */
	static const struct row_case quote_period[] = {
		{ "\\.\n", 0, "; end" },
		{ "\\.a\n.,1\n", 0, "1:\\.a|n.,1|n=<\\a|n> ; end" },
		{ "\\.a\n.,1\n", 1, "1:\\.a|n.,1|n=<1> ; end" },
		{ "a,1\r\n\\.\rb.\r\n", 0, "1:a,1|r|n=<a> 3:\\.|rb.|r|n=<\\|rb> ; end" },
	};
	static const struct row_case quote_backslash[] = {
		{ "\\.\n", 0, "; end" },
		{ "\\x\\,1\n", 0, "1:\\x\\,1|n=<x> ; end" },
		{ "\\\n\\,1\n", 1, "1:\\|n\\,1|n=<1> ; end" },
	};
	static const struct row_case header[] = {
		{ "id,name\n\"x\ny\",1\n", 1, "1:id,name|n=HEADER 3:\"x|ny\",1|n=<1> ; end" },
		{ "\"id\nid\"\n1,2\n", 1, "1:\"id|nid\"|n=HEADER 2:1,2|n=<2> ; end" },
	};
	struct copy_format f = CSV;

	f.escape = "\\";
	check_cases(&f, escape, ARRAY_LEN(escape));
	f = CSV;
	f.delimiter = ";";
	f.quote = "'";
	f.null_string = "-";
	check_cases(&f, semicolon, ARRAY_LEN(semicolon));
	f = CSV;
	f.quote = ".";
	check_cases(&f, quote_period, ARRAY_LEN(quote_period));
	f.quote = "\\";
	check_cases(&f, quote_backslash, ARRAY_LEN(quote_backslash));
	f = CSV;
	f.header = true;
	check_cases(&f, header, ARRAY_LEN(header));
}

static void test_row_length_limit(void **state)
{
	static const struct row_case text[] = {
		/* 8 bytes with the terminator fit in 8; 9 do not */
		{ "abcd\t12\n", 1, "1:abcd|t12|n=<12> ; end", 0, 8 },
		{ "abc\t1\nabcd\t123\n", 1,
		  "1:abc|t1|n=<1> ; error: line 2: the row is longer than 8 bytes", 0, 8 },
		{ "abcd\t1234", 1, "; error: line 1: the row is longer than 8 bytes", 0, 8 },
		{ "abcd\t12\r\n", 1, "; error: line 1: the row is longer than 8 bytes", 0, 8 },
		{ "abcd\t1\r\n", 1, "1:abcd|t1|r|n=<1> ; end", 0, 8 },
		/* an 8-byte row ending in a lone \r, then the next row */
		{ "abcd\t12\rx\t1\r", 1, "1:abcd|t12|r=<12> 2:x|t1|r=<1> ; end", 0, 8 },
		{ "a\t1\n\\.\n", 1, "1:a|t1|n=<1> ; end", 0, 4 },
		{ "a\t1\n\\.\r\n", 1,
		  "1:a|t1|n=<1> ; error: line 2: end-of-copy marker does not "
		  "match previous newline style",
		  0, 4 },
		{ "\n\n\n", 0, "1:|n=<> 2:|n=<> 3:|n=<> ; end", 0, 1 },
	};
	static const struct row_case csv[] = {
		{ "\"a\nb\",1\n", 1, "; error: line 1: the row is longer than 6 bytes", 0, 6 },
		{ "\"a\nb\"\n", 0, "1:\"a|nb\"|n=<a|nb> ; end", 0, 6 },
	};

	check_cases(&TEXT, text, ARRAY_LEN(text));
	check_cases(&CSV, csv, ARRAY_LEN(csv));
}

/* Rows in a feed far larger than max_row: refused at byte max_row + 1, buffers stay small. */
static void test_long_rows_stay_bounded(void **state)
{
	size_t len = 1 << 20, max_row = 4096;
	uint8_t *in = malloc(len);
	struct copy_format f = TEXT;
	struct run run = { 0 };
	struct copy_rows r;

	memset(in, 'x', len);
	for (size_t i = 0; i < 100; i++)
		in[i * 10 + 9] = '\n';
	copy_format_defaults(&f);
	for (size_t feed = 1; feed <= len; feed *= 8) {
		size_t at = 0;
		enum copy_rows_status s = COPY_ROWS_MORE;

		memset(&run, 0, sizeof(run));
		run.in = in;
		run.max_row = max_row;
		assert_true(copy_rows_init(&r, &f, 0, max_row));
		while (at < len && s == COPY_ROWS_MORE) {
			size_t n = len - at < feed ? len - at : feed;

			run.chunk = in + at;
			run.chunk_at = at;
			run.chunk_len = n;
			s = copy_rows_feed(&r, in + at, n, on_row, &run);
			at += n;
		}
		assert_int_equal(s, COPY_ROWS_ERROR);
		assert_int_equal(run.rows, 100);
		/* refused as soon as the row has one byte too many */
		assert_true(at - 1000 <= max_row + feed);
		assert_string_equal(copy_rows_error(&r),
				    "line 101: the row is longer than 4096 bytes");
		assert_true(r.cap <= max_row);
		copy_rows_free(&r);
	}
	free(in);
}

static void test_callback_stops(void **state)
{
	struct copy_format f = CSV;
	struct run run;
	const char *in = "a,1\nb,2\nc,3\n";
	size_t cut = 6;

	copy_format_defaults(&f);
	run.stop_after = 2;
	run_cuts(&run, &f, 1, 1024, (const uint8_t *)in, strlen(in), NULL, 0);
	assert_string_equal(run.log, "1:a,1|n=<1> 2:b,2|n=<2> ; stopped");
	run.stop_after = 2;
	run_cuts(&run, &f, 1, 1024, (const uint8_t *)in, strlen(in), &cut, 1);
	assert_string_equal(run.log, "1:a,1|n=<1> 2:b,2|n=<2> ; stopped");
}

/* After the end, an error or a stop, nothing more is reported and the status stays. */
static void test_status_is_sticky(void **state)
{
	struct copy_format f = TEXT;
	struct copy_rows r;
	struct run run = { 0 };
	const uint8_t more[] = "c\t3\n";

	copy_format_defaults(&f);
	run.in = (const uint8_t *)"a\t1\n\\.\nb\t2\n";
	run.max_row = 64;
	run.chunk = run.in;
	run.chunk_len = 12;
	assert_true(copy_rows_init(&r, &f, 1, 64));
	assert_int_equal(copy_rows_feed(&r, run.in, 12, on_row, &run), COPY_ROWS_END);
	assert_int_equal(copy_rows_feed(&r, more, 4, on_row, &run), COPY_ROWS_END);
	assert_int_equal(copy_rows_finish(&r, on_row, &run), COPY_ROWS_END);
	assert_int_equal(run.rows, 1);
	assert_string_equal(copy_rows_error(&r), "");
	copy_rows_free(&r);
	copy_rows_free(&r);

	memset(&run, 0, sizeof(run));
	run.in = (const uint8_t *)"a\r\nb\n";
	run.max_row = 64;
	run.chunk = run.in;
	run.chunk_len = 5;
	assert_true(copy_rows_init(&r, &f, 0, 64));
	assert_int_equal(copy_rows_feed(&r, run.in, 5, on_row, &run), COPY_ROWS_ERROR);
	assert_int_equal(copy_rows_line(&r), 2);
	assert_int_equal(copy_rows_feed(&r, more, 4, on_row, &run), COPY_ROWS_ERROR);
	assert_int_equal(copy_rows_finish(&r, on_row, &run), COPY_ROWS_ERROR);
	assert_int_equal(run.rows, 1);
	assert_string_equal(copy_rows_error(&r), "line 2: literal newline found in data");
	copy_rows_free(&r);
}

static void test_format_check(void **state)
{
	static const struct {
		bool csv;
		const char *delimiter, *quote, *escape, *null_string;
		const char *err; /* NULL: accepted */
	} cases[] = {
		{ false, NULL, NULL, NULL, NULL, NULL },
		{ true, NULL, NULL, NULL, NULL, NULL },
		{ false, "|", NULL, NULL, "", NULL },
		{ false, "A", NULL, NULL, NULL, NULL },
		{ true, ";", "'", "\\", "NULL", NULL },
		{ true, ".", NULL, NULL, NULL, NULL },
		{ false, "", NULL, NULL, NULL,
		  "COPY delimiter must be a single one-byte character" },
		{ false, "ab", NULL, NULL, NULL,
		  "COPY delimiter must be a single one-byte character" },
		{ true, "\xc3\xa9", NULL, NULL, NULL,
		  "COPY delimiter must be a single one-byte character" },
		{ false, "\n", NULL, NULL, NULL,
		  "COPY delimiter cannot be newline or carriage return" },
		{ true, "\r", NULL, NULL, NULL,
		  "COPY delimiter cannot be newline or carriage return" },
		{ false, NULL, NULL, NULL, "a\nb",
		  "COPY null representation cannot use newline or carriage return" },
		{ true, NULL, NULL, NULL, "\r",
		  "COPY null representation cannot use newline or carriage return" },
		{ false, "\\", NULL, NULL, NULL, "COPY delimiter cannot be \"\\\"" },
		{ false, ".", NULL, NULL, NULL, "COPY delimiter cannot be \".\"" },
		{ false, "x", NULL, NULL, NULL, "COPY delimiter cannot be \"x\"" },
		{ false, "7", NULL, NULL, NULL, "COPY delimiter cannot be \"7\"" },
		{ false, NULL, "\"", NULL, NULL, "COPY quote available only in CSV mode" },
		{ true, NULL, "", NULL, NULL, "COPY quote must be a single one-byte character" },
		{ true, NULL, "''", NULL, NULL, "COPY quote must be a single one-byte character" },
		{ true, "'", "'", NULL, NULL, "COPY delimiter and quote must be different" },
		{ true, "\"", NULL, NULL, NULL, "COPY delimiter and quote must be different" },
		{ false, NULL, NULL, "\\", NULL, "COPY escape available only in CSV mode" },
		{ true, NULL, NULL, "", NULL, "COPY escape must be a single one-byte character" },
		{ false, NULL, NULL, NULL, "a\tb",
		  "COPY delimiter must not appear in the NULL specification" },
		{ true, NULL, NULL, NULL, ",",
		  "COPY delimiter must not appear in the NULL specification" },
		{ true, NULL, NULL, NULL, "\"\"",
		  "CSV quote character must not appear in the NULL specification" },
		{ true, NULL, "'", NULL, "'",
		  "CSV quote character must not appear in the NULL specification" },
		{ false, NULL, NULL, NULL,
		  "0123456789012345678901234567890123456789012345678901234567890123"
		  "4567890123456789012345678901234567890123456789012345678901234567",
		  "a NULL string of more than 127 bytes is not supported" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct copy_format f = { .csv = cases[i].csv,
					 .delimiter = cases[i].delimiter,
					 .quote = cases[i].quote,
					 .escape = cases[i].escape,
					 .null_string = cases[i].null_string };
		char err[160] = "";
		bool ok = copy_format_check(&f, err, sizeof(err));
		struct copy_rows r;

		if (ok != !cases[i].err || (cases[i].err && strcmp(err, cases[i].err) != 0))
			fail_msg("case %zu: %s, want %s", i, ok ? "accepted" : err,
				 cases[i].err ? cases[i].err : "accepted");
		/* init takes what check takes, and says the same */
		assert_int_equal(copy_rows_init(&r, &f, 0, 100), ok);
		assert_string_equal(copy_rows_error(&r), ok ? "" : err);
		copy_rows_free(&r);
	}
}

static void test_defaults_and_init(void **state)
{
	struct copy_format text = { .csv = false }, csv = { .csv = true };
	struct copy_rows r;

	copy_format_defaults(&text);
	assert_string_equal(text.delimiter, "\t");
	assert_string_equal(text.null_string, "\\N");
	assert_null(text.quote);
	assert_null(text.escape);
	csv.quote = "'";
	copy_format_defaults(&csv);
	assert_string_equal(csv.delimiter, ",");
	assert_string_equal(csv.null_string, "");
	assert_string_equal(csv.quote, "'");
	assert_string_equal(csv.escape, "'");

	assert_false(copy_rows_init(&r, &text, -1, 100));
	assert_string_equal(copy_rows_error(&r), "the key column cannot be -1");
	assert_int_equal(copy_rows_feed(&r, (const uint8_t *)"a\n", 2, NULL, NULL),
			 COPY_ROWS_ERROR);
	copy_rows_free(&r);
	assert_false(copy_rows_init(&r, &text, 0, 0));
	copy_rows_free(&r);
	assert_string_equal(copy_rows_status_name(COPY_ROWS_NO_KEY), "no key");
}

struct count {
	uint64_t rows, in_place, next;
	const uint8_t *chunk;
	size_t chunk_len;
};

static bool count_row(const struct copy_row *row, void *arg)
{
	struct count *c = arg;
	char want[32];
	int n = snprintf(want, sizeof(want), "%llu", (unsigned long long)c->next);

	if (c->next % 10 == 7) {
		assert_true(row->key_null);
	} else {
		assert_int_equal(row->key_len, (size_t)n);
		assert_memory_equal(row->key, want, (size_t)n);
	}
	assert_int_equal(row->line, c->next + 1);
	if (row->data >= c->chunk && row->data < c->chunk + c->chunk_len)
		c->in_place++;
	c->next++;
	c->rows++;
	return true;
}

/* 100,000 rows in feeds of irregular sizes: every key, in order, most rows not copied. */
static void test_large_stream(void **state)
{
	size_t cap = 100000 * 40, len = 0, at = 0;
	char *in = malloc(cap);
	struct copy_format f = TEXT;
	struct count c = { 0 };
	struct copy_rows r;
	uint32_t rnd = 12345;

	for (int i = 0; i < 100000; i++) {
		if (i % 10 == 7)
			len += (size_t)snprintf(in + len, cap - len, "user%d\t\\N\tx\\ty\n", i);
		else
			len += (size_t)snprintf(in + len, cap - len, "user%d\t%d\tx\\ty\n", i, i);
	}
	copy_format_defaults(&f);
	assert_true(copy_rows_init(&r, &f, 1, 1 << 20));
	while (at < len) {
		size_t n;

		rnd = rnd * 1103515245 + 12345;
		n = 1 + (rnd >> 8) % 8192;
		n = n > len - at ? len - at : n;
		c.chunk = (const uint8_t *)in + at;
		c.chunk_len = n;
		assert_int_equal(copy_rows_feed(&r, c.chunk, n, count_row, &c), COPY_ROWS_MORE);
		at += n;
	}
	assert_int_equal(copy_rows_finish(&r, count_row, &c), COPY_ROWS_END);
	assert_int_equal(c.rows, 100000);
	/* only rows cut by a feed's end are assembled */
	assert_true(c.in_place > 99000);
	copy_rows_free(&r);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_rows_and_keys),
		cmocka_unit_test(test_text_line_endings),
		cmocka_unit_test(test_text_end_marker),
		cmocka_unit_test(test_text_options),
		cmocka_unit_test(test_csv_rows_and_keys),
		cmocka_unit_test(test_csv_line_endings),
		cmocka_unit_test(test_csv_end_marker),
		cmocka_unit_test(test_csv_options),
		cmocka_unit_test(test_row_length_limit),
		cmocka_unit_test(test_long_rows_stay_bounded),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_status_is_sticky),
		cmocka_unit_test(test_format_check),
		cmocka_unit_test(test_defaults_and_init),
		cmocka_unit_test(test_large_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
