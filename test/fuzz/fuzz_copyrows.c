/* link: src/shard/copyrows.c */
/*
 * libFuzzer target: COPY data split into rows. The first four bytes choose the format (text or
 * CSV, header, delimiter, quote, escape, NULL string), the key column, max_row and where the
 * data is cut; the rest is the data. Fed whole, cut into a few feeds and fed byte by byte, it
 * must give the same rows, keys, line numbers and outcome; the rows must be the data as fed,
 * none longer than max_row.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shard/copyrows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const DELIMITERS[] = { "\t", ",", "|", ";", "A", ".", "\\", "\"" };
static const char *const QUOTES[] = { NULL, "'", ".", "\\" };
static const char *const NULLS[] = { NULL, "", "\\N", "NULL", "-" };

struct seen {
	const uint8_t *in;
	size_t len, pos, max_row;
	uint64_t hash; /* of everything reported */
};

static void mix(struct seen *s, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		s->hash = (s->hash ^ b[i]) * 1099511628211ULL;
}

static bool on_row(const struct copy_row *row, void *arg)
{
	struct seen *s = arg;
	uint8_t flags = (uint8_t)(row->header | row->key_null << 1);

	if (row->len == 0 || row->len > s->max_row || row->len > s->len - s->pos ||
	    memcmp(row->data, s->in + s->pos, row->len) != 0)
		abort();
	if ((row->header || row->key_null) != (row->key == NULL) || row->key_len > row->len)
		abort();
	s->pos += row->len;
	mix(s, &row->len, sizeof(row->len));
	mix(s, &flags, 1);
	mix(s, &row->line, sizeof(row->line));
	mix(s, &row->key_len, sizeof(row->key_len));
	if (row->key)
		mix(s, row->key, row->key_len);
	return true;
}

/* Feeds in[0..len) in pieces ending at cuts[0..n) (ascending), then len: the hash of it all. */
static uint64_t run(const struct copy_format *f, int key, size_t max_row, const uint8_t *in,
		    size_t len, const size_t *cuts, size_t n)
{
	struct copy_rows r;
	struct seen s = { in, len, 0, max_row, 14695981039346656037ULL };
	enum copy_rows_status st = COPY_ROWS_MORE;
	size_t from = 0;

	if (!copy_rows_init(&r, f, key, max_row))
		abort();
	for (size_t k = 0; k <= n && st == COPY_ROWS_MORE; k++) {
		size_t to = k < n ? cuts[k] : len;

		st = copy_rows_feed(&r, in + from, to - from, on_row, &s);
		from = to;
	}
	if (st == COPY_ROWS_MORE)
		st = copy_rows_finish(&r, on_row, &s);
	if (st == COPY_ROWS_MORE || st == COPY_ROWS_STOPPED || r.cap > max_row ||
	    r.key_cap > max_row)
		abort();
	mix(&s, &st, sizeof(st));
	mix(&s, copy_rows_error(&r), strlen(copy_rows_error(&r)));
	copy_rows_free(&r);
	return s.hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct copy_format f = { 0 };
	size_t max_row, len, cuts[3], *bytes;
	const uint8_t *in;
	uint64_t whole;
	int key;

	if (size < 4)
		return 0;
	f.csv = data[0] & 1;
	f.header = data[0] & 2;
	key = (data[0] >> 2) & 3;
	f.delimiter = DELIMITERS[data[0] >> 5];
	if (f.csv) {
		f.quote = QUOTES[data[1] & 3];
		f.escape = QUOTES[(data[1] >> 2) & 3];
	}
	f.null_string = NULLS[((data[1] >> 4) & 7) % 5];
	if (!copy_format_check(&f, NULL, 0))
		return 0;
	max_row = data[2] < 128 ? 1 + (size_t)data[2] % 16 : 1 << 20;
	in = data + 4;
	len = size - 4;

	whole = run(&f, key, max_row, in, len, NULL, 0);
	for (size_t k = 0; k < 3; k++)
		cuts[k] = len * (size_t)((data[3] >> (k * 2)) & 3) / 3 + k;
	for (size_t k = 0; k < 3; k++)
		if (cuts[k] > len || (k > 0 && cuts[k] < cuts[k - 1]))
			cuts[k] = k > 0 ? cuts[k - 1] : 0;
	if (run(&f, key, max_row, in, len, cuts, 3) != whole)
		abort();
	bytes = malloc((len + 1) * sizeof(*bytes));
	if (!bytes)
		return 0;
	for (size_t i = 0; i < len; i++)
		bytes[i] = i;
	if (run(&f, key, max_row, in, len, bytes, len) != whole)
		abort();
	free(bytes);
	return 0;
}
