/*
 * metrics/prom: the Prometheus text format writer (see metrics/prom.h).
 */
#include "metrics/prom.h"

#include <stdlib.h>
#include <string.h>

#include "metrics/histogram.h"

const uint64_t prom_histogram_bounds_us[] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
};
const int prom_histogram_n_bounds = sizeof(prom_histogram_bounds_us) / sizeof(uint64_t);

/* The same bounds as the le label's text. */
static const char *const bound_text[] = {
	"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
	"0.25", "0.5", "1", "2.5", "5", "10", "25", "50", "100",
};

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

void prom_append(struct prom_out *o, const char *s, size_t len)
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

/* name_suffix{labels,le="bound"} count */
static void bucket_line(struct prom_out *o, const char *name, const struct prom_labels *l,
			const char *le, uint64_t count)
{
	char buf[24];

	append_str(o, name);
	append_str(o, "_bucket{");
	if (l && l->len) {
		prom_append(o, l->buf, l->len);
		prom_append(o, ",", 1);
	}
	append_str(o, "le=\"");
	append_str(o, le);
	append_str(o, "\"} ");
	append_str(o, format_u64(buf, count));
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

void prom_histogram(struct prom_out *o, const char *name, const struct prom_labels *l,
		    const struct histogram *h)
{
	char buf[24];
	uint64_t cum = 0;
	int i = 0;

	/* One pass over the buckets: each bound is some bucket's upper bound. */
	for (int k = 0; k < prom_histogram_n_bounds; k++) {
		int last = histogram_bucket_of(prom_histogram_bounds_us[k]);

		for (; i <= last; i++)
			cum += h->buckets[i];
		bucket_line(o, name, l, bound_text[k], cum);
	}
	bucket_line(o, name, l, "+Inf", h->count);
	suffixed(o, name, "_sum", l);
	append_seconds(o, h->sum_us);
	prom_append(o, "\n", 1);
	suffixed(o, name, "_count", l);
	append_str(o, format_u64(buf, h->count));
	prom_append(o, "\n", 1);
}
