/*
 * Unit tests for metrics/prom: family lines, label escaping and truncation, exact seconds,
 * histogram exposition (cumulative, +Inf = count, bounds that are bucket bounds), and a buffer
 * that grows across many samples.
 */
/* link: src/metrics/prom.c src/core/histogram.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/histogram.h"
#include "metrics/prom.h"

static void test_family_and_samples(void **state)
{
	struct prom_out o;
	struct prom_labels l;

	assert_true(prom_init(&o, 16));
	prom_family(&o, "x_total", "counter", "Things");
	prom_labels_init(&l);
	prom_label(&l, "database", "app");
	prom_label_int(&l, "port", -5);
	prom_u64(&o, "x_total", &l, 18446744073709551615ULL);
	prom_i64(&o, "x_total", NULL, -42);
	prom_seconds(&o, "x_total", NULL, 1234567);
	prom_seconds(&o, "x_total", NULL, 5);
	assert_false(o.failed);
	assert_string_equal(o.data, "# HELP x_total Things\n# TYPE x_total counter\n"
				    "x_total{database=\"app\",port=\"-5\"} 18446744073709551615\n"
				    "x_total -42\nx_total 1.234567\nx_total 0.000005\n");
	prom_free(&o);
}

static void test_label_escaping(void **state)
{
	struct prom_labels l;
	char big[PROM_LABELS_MAX * 2];

	prom_labels_init(&l);
	prom_label(&l, "a", "q\"b\\n\nz");
	assert_string_equal(l.buf, "a=\"q\\\"b\\\\n\\nz\"");
	assert_false(l.truncated);
	/* Too long: cut at a character boundary, the quote closed, flagged. */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	memcpy(big + 100, "\xc3\xa9\xc3\xa9\xc3\xa9", 6);
	prom_labels_init(&l);
	prom_label(&l, "a", big);
	assert_true(l.truncated);
	assert_true(l.len < sizeof(l.buf));
	assert_int_equal(l.buf[l.len - 1], '"');
	assert_int_equal(strlen(l.buf), l.len);
	/* A value cut inside a UTF-8 sequence loses the partial character. */
	for (size_t cut = 0; cut < 4; cut++) {
		size_t fill = PROM_LABELS_MAX - 6 - cut;

		memset(big, 'y', fill);
		memcpy(big + fill, "\xe2\x82\xac\xe2\x82\xac", 6);
		big[fill + 6] = '\0';
		prom_labels_init(&l);
		prom_label(&l, "a", big);
		for (size_t i = 0; i < l.len; i++) {
			unsigned char ch = (unsigned char)l.buf[i];

			if (ch == 0xe2) /* a lead byte is followed by its two continuation bytes */
				assert_true(i + 2 < l.len - 1 && (l.buf[i + 1] & 0xC0) == 0x80 &&
					    (l.buf[i + 2] & 0xC0) == 0x80);
		}
	}
}

static void test_histogram_exposition(void **state)
{
	struct prom_out o;
	struct prom_labels l;
	struct histogram h;
	char *line;
	unsigned long long prev = 0;
	int n_buckets = 0;

	memset(&h, 0, sizeof(h));
	histogram_observe(&h, 100);       /* le 0.0001 */
	histogram_observe(&h, 101);       /* le 0.00025 */
	histogram_observe(&h, 2000000);   /* 2 s: le 2.5 */
	histogram_observe(&h, 500000000); /* 500 s: only +Inf */
	for (int k = 0; k < prom_histogram_n_bounds; k++)
		assert_int_equal(histogram_upper_us(prom_histogram_bound_bucket(k)),
				 prom_histogram_bound_us(k));
	assert_true(prom_init(&o, 0));
	prom_labels_init(&l);
	prom_label(&l, "database", "d");
	prom_histogram(&o, "lat_seconds", &l, &h);
	assert_non_null(strstr(o.data, "lat_seconds_bucket{database=\"d\",le=\"0.0001\"} 1\n"));
	assert_non_null(strstr(o.data, "lat_seconds_bucket{database=\"d\",le=\"0.00025\"} 2\n"));
	assert_non_null(strstr(o.data, "lat_seconds_bucket{database=\"d\",le=\"1\"} 2\n"));
	assert_non_null(strstr(o.data, "lat_seconds_bucket{database=\"d\",le=\"2.5\"} 3\n"));
	assert_non_null(strstr(o.data, "lat_seconds_bucket{database=\"d\",le=\"100\"} 3\n"));
	assert_non_null(strstr(o.data, "lat_seconds_bucket{database=\"d\",le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(o.data, "lat_seconds_sum{database=\"d\"} 502.000201\n"));
	assert_non_null(strstr(o.data, "lat_seconds_count{database=\"d\"} 4\n"));
	/* Cumulative, one line per bound plus +Inf. */
	for (line = strstr(o.data, "_bucket{"); line; line = strstr(line + 1, "_bucket{")) {
		unsigned long long v = strtoull(strchr(line, '}') + 2, NULL, 10);

		assert_true(v >= prev);
		prev = v;
		n_buckets++;
	}
	assert_int_equal(n_buckets, prom_histogram_n_bounds + 1);
	prom_free(&o);
}

static void test_growth(void **state)
{
	struct prom_out o;
	size_t len;
	char *text;

	assert_true(prom_init(&o, 8));
	for (int i = 0; i < 10000; i++)
		prom_u64(&o, "n", NULL, (uint64_t)i);
	assert_false(o.failed);
	text = prom_take(&o, &len);
	assert_null(o.data);
	assert_int_equal(strlen(text), len);
	assert_memory_equal(text + len - 7, "n 9999\n", 7);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_histogram_exposition),
		cmocka_unit_test(test_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
