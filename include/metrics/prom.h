/*
 * metrics/prom: writing the Prometheus text exposition format (version 0.0.4): metric families
 * with their HELP and TYPE lines, samples with escaped label values, histograms from
 * metrics/histogram at fixed bounds.
 *
 * Output goes to a growable buffer that never fails half-way silently: once an allocation fails
 * the buffer is marked failed, further writes are dropped, and the owner answers with an error
 * instead of a truncated exposition. Numbers are written without printf (a scrape of a thousand
 * pools writes tens of thousands of them). Pure: no I/O, no globals besides constant tables.
 */
#ifndef PGMUX_METRICS_PROM_H
#define PGMUX_METRICS_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct histogram;

struct prom_out {
	char *data;
	size_t len, cap;
	bool failed; /* an allocation failed: data holds an incomplete exposition */
};

/* A label set being built: `name="value",...` without the braces, values escaped. */
#define PROM_LABELS_MAX 512
struct prom_labels {
	size_t len;
	bool truncated; /* a value did not fit; written cut short at a character boundary */
	char buf[PROM_LABELS_MAX];
};

/* An empty buffer with room for hint bytes (0: a small default). False when out of memory. */
bool prom_init(struct prom_out *o, size_t hint);
void prom_free(struct prom_out *o);

/* Hand the buffer over: the caller frees the returned data (NUL-terminated, *len bytes). */
char *prom_take(struct prom_out *o, size_t *len);

/* `# HELP name help` and `# TYPE name type` (type: "gauge", "counter", "histogram", "untyped"). */
void prom_family(struct prom_out *o, const char *name, const char *type, const char *help);

/* Start an empty label set, and add name="value" to it (backslash, quote, newline escaped). */
void prom_labels_init(struct prom_labels *l);
void prom_label(struct prom_labels *l, const char *name, const char *value);
void prom_label_int(struct prom_labels *l, const char *name, int64_t value);

/* One sample `name{labels} value` (l may be NULL for none). */
void prom_u64(struct prom_out *o, const char *name, const struct prom_labels *l, uint64_t v);
void prom_i64(struct prom_out *o, const char *name, const struct prom_labels *l, int64_t v);
/* A duration in microseconds written as seconds, exactly (six decimals, no rounding). */
void prom_seconds(struct prom_out *o, const char *name, const struct prom_labels *l, uint64_t us);

/*
 * A histogram's samples: name_bucket{labels,le="..."} at the fixed bounds (100 us to 100 s in
 * the 1-2.5-5 series, then +Inf), name_sum in seconds and name_count. The family line is the
 * caller's (prom_family with type "histogram").
 */
void prom_histogram(struct prom_out *o, const char *name, const struct prom_labels *l,
		    const struct histogram *h);

/* The bounds prom_histogram writes: how many, each in microseconds, and its bucket's index. */
extern const int prom_histogram_n_bounds;
uint64_t prom_histogram_bound_us(int k);
int prom_histogram_bound_bucket(int k);

#endif
