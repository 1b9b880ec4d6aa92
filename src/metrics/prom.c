/*
 * metrics/prom: the Prometheus text format writer (see metrics/prom.h).
 */
#include "metrics/prom.h"

#include <stdlib.h>
#include <string.h>

#include "core/histogram.h"

/*
 * The exposition's bucket bounds: microseconds, the index of the histogram bucket whose upper
 * bound it is (checked by test_prom against histogram_bucket_of), and the le label's text.
 */
static const struct prom_bound {
	uint64_t us;
	int bucket;
	const char *text;
	size_t text_len;
} bounds[] = {
	{ 100, 28, "0.0001", 6 },     { 250, 31, "0.00025", 7 },  { 500, 36, "0.0005", 6 },
	{ 1000, 46, "0.001", 5 },     { 2500, 49, "0.0025", 6 },  { 5000, 54, "0.005", 5 },
	{ 10000, 64, "0.01", 4 },     { 25000, 67, "0.025", 5 },  { 50000, 72, "0.05", 4 },
	{ 100000, 82, "0.1", 3 },     { 250000, 85, "0.25", 4 },  { 500000, 90, "0.5", 3 },
	{ 1000000, 100, "1", 1 },     { 2500000, 103, "2.5", 3 }, { 5000000, 108, "5", 1 },
	{ 10000000, 118, "10", 2 },   { 25000000, 121, "25", 2 }, { 50000000, 126, "50", 2 },
	{ 100000000, 136, "100", 3 },
};

const int prom_histogram_n_bounds = sizeof(bounds) / sizeof(bounds[0]);

uint64_t prom_histogram_bound_us(int k)
{
	return bounds[k].us;
}

int prom_histogram_bound_bucket(int k)
{
	return bounds[k].bucket;
}

bool prom_init(struct prom_out *o, size_t hint)
{
	o->len = 0;
	o->cap = hint ? hint : 4096;
	o->failed = false;
	o->data = malloc(o->cap);
	if (!o->data) {
		o->cap = 0;
		o->failed = true;
		return false;
	}
	o->data[0] = '\0';
	return true;
}

void prom_free(struct prom_out *o)
{
	free(o->data);
	o->data = NULL;
	o->len = o->cap = 0;
}

char *prom_take(struct prom_out *o, size_t *len)
{
	char *d = o->data;

	*len = o->len;
	o->data = NULL;
	o->len = o->cap = 0;
	return d;
}

/* Room for n more bytes and the NUL; false (and failed) when it cannot grow. */
static bool reserve(struct prom_out *o, size_t n)
{
	size_t cap;
	char *d;

	if (o->failed)
		return false;
	if (o->len + n + 1 <= o->cap)
		return true;
	cap = o->cap ? o->cap : 4096;
	while (cap < o->len + n + 1)
		cap *= 2;
	d = realloc(o->data, cap);
	if (!d) {
		o->failed = true;
		return false;
	}
	o->data = d;
	o->cap = cap;
	return true;
}

/* Append raw text. */
static void prom_append(struct prom_out *o, const char *s, size_t len)
{
	if (!reserve(o, len))
		return;
	memcpy(o->data + o->len, s, len);
	o->len += len;
	o->data[o->len] = '\0';
}

static void append_str(struct prom_out *o, const char *s)
{
	prom_append(o, s, strlen(s));
}

/* Decimal digits of v into the end of buf[24]; returns where they start. */
static char *format_u64(char buf[24], uint64_t v)
{
	char *p = buf + 23;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

void prom_family(struct prom_out *o, const char *name, const char *type, const char *help)
{
	append_str(o, "# HELP ");
	append_str(o, name);
	prom_append(o, " ", 1);
	append_str(o, help);
	append_str(o, "\n# TYPE ");
	append_str(o, name);
	prom_append(o, " ", 1);
	append_str(o, type);
	prom_append(o, "\n", 1);
}

void prom_labels_init(struct prom_labels *l)
{
	l->len = 0;
	l->truncated = false;
	l->buf[0] = '\0';
}

/* Append to the label set if it fits with room for what must follow (n_after bytes). */
static bool labels_put(struct prom_labels *l, const char *s, size_t n, size_t n_after)
{
	if (l->len + n + n_after >= sizeof(l->buf))
		return false;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
	return true;
}

void prom_label(struct prom_labels *l, const char *name, const char *value)
{
	size_t start = l->len;

	if ((l->len && !labels_put(l, ",", 1, 0)) || !labels_put(l, name, strlen(name), 3) ||
	    !labels_put(l, "=\"", 2, 1)) {
		l->len = start;
		l->buf[start] = '\0';
		l->truncated = true;
		return;
	}
	for (const char *p = value; *p; p++) {
		char esc[2] = { '\\', *p };
		bool ok;

		if (*p == '\\' || *p == '"')
			ok = labels_put(l, esc, 2, 1);
		else if (*p == '\n')
			ok = labels_put(l, "\\n", 2, 1);
		else
			ok = labels_put(l, p, 1, 1);
		if (!ok) {
			/* Cut at a character boundary: drop a partial UTF-8 sequence. */
			while (l->len > start && ((unsigned char)l->buf[l->len - 1] & 0xC0) == 0x80)
				l->len--;
			if (l->len > start && ((unsigned char)l->buf[l->len - 1] & 0xC0) == 0xC0)
				l->len--;
			l->truncated = true;
			break;
		}
	}
	l->buf[l->len++] = '"';
	l->buf[l->len] = '\0';
}

void prom_label_int(struct prom_labels *l, const char *name, int64_t value)
{
	char buf[24], *p = format_u64(buf, value < 0 ? 0 - (uint64_t)value : (uint64_t)value);

	if (value < 0)
		*--p = '-';
	prom_label(l, name, p);
}

static void sample_start(struct prom_out *o, const char *name, const struct prom_labels *l)
{
	append_str(o, name);
	if (l && l->len) {
		prom_append(o, "{", 1);
		prom_append(o, l->buf, l->len);
		prom_append(o, "}", 1);
	}
	prom_append(o, " ", 1);
}

void prom_u64(struct prom_out *o, const char *name, const struct prom_labels *l, uint64_t v)
{
	char buf[24];

	sample_start(o, name, l);
	append_str(o, format_u64(buf, v));
	prom_append(o, "\n", 1);
}

void prom_i64(struct prom_out *o, const char *name, const struct prom_labels *l, int64_t v)
{
	char buf[24], *p = format_u64(buf, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);

	if (v < 0)
		*--p = '-';
	sample_start(o, name, l);
	append_str(o, p);
	prom_append(o, "\n", 1);
}

/* us as seconds with six decimals: 1234567 -> "1.234567". */
static void append_seconds(struct prom_out *o, uint64_t us)
{
	char buf[24], frac[7];
	uint64_t f = us % 1000000;

	append_str(o, format_u64(buf, us / 1000000));
	frac[0] = '.';
	for (int i = 6; i >= 1; i--) {
		frac[i] = (char)('0' + f % 10);
		f /= 10;
	}
	prom_append(o, frac, 7);
}

void prom_seconds(struct prom_out *o, const char *name, const struct prom_labels *l, uint64_t us)
{
	sample_start(o, name, l);
	append_seconds(o, us);
	prom_append(o, "\n", 1);
}

static void suffixed(struct prom_out *o, const char *name, const char *suffix,
		     const struct prom_labels *l)
{
	append_str(o, name);
	append_str(o, suffix);
	if (l && l->len) {
		prom_append(o, "{", 1);
		prom_append(o, l->buf, l->len);
		prom_append(o, "}", 1);
	}
	prom_append(o, " ", 1);
}

/*
 * The bucket lines share everything up to the le value: that prefix is built once, and each
 * line is one copy of it, the bound, the count (a scrape of a thousand databases writes a
 * hundred thousand of these lines).
 */
void prom_histogram(struct prom_out *o, const char *name, const struct prom_labels *l,
		    const struct histogram *h)
{
	char line[PROM_LABELS_MAX + 160], num[24];
	size_t name_len = strlen(name), plen = 0;
	uint64_t cum = 0;
	int i = 0;

	if (name_len > 100)
		return;
	memcpy(line, name, name_len);
	plen = name_len;
	memcpy(line + plen, "_bucket{", 8);
	plen += 8;
	if (l && l->len) {
		memcpy(line + plen, l->buf, l->len);
		plen += l->len;
		line[plen++] = ',';
	}
	memcpy(line + plen, "le=\"", 4);
	plen += 4;
	for (int k = 0; k <= prom_histogram_n_bounds; k++) {
		const char *le = k < prom_histogram_n_bounds ? bounds[k].text : "+Inf";
		size_t le_len = k < prom_histogram_n_bounds ? bounds[k].text_len : 4, n = plen;
		const char *digits;
		size_t dlen;

		if (k < prom_histogram_n_bounds) {
			/* One pass over the buckets: each bound is some bucket's upper bound. */
			for (; i <= bounds[k].bucket; i++)
				cum += h->buckets[i];
		} else {
			cum = h->count;
		}
		digits = format_u64(num, cum);
		dlen = (size_t)(num + 23 - digits);
		memcpy(line + n, le, le_len);
		n += le_len;
		memcpy(line + n, "\"} ", 3);
		n += 3;
		memcpy(line + n, digits, dlen);
		n += dlen;
		line[n++] = '\n';
		prom_append(o, line, n);
	}
	suffixed(o, name, "_sum", l);
	append_seconds(o, h->sum_us);
	prom_append(o, "\n", 1);
	suffixed(o, name, "_count", l);
	append_str(o, format_u64(num, h->count));
	prom_append(o, "\n", 1);
}
