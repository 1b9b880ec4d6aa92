/*
 * Unit tests for core/histogram: bucket bounds (every value lands in the one bucket whose
 * interval holds it, the 1-2.5-5 series are bounds), cumulative counts, quantiles against the
 * exact quantiles of known samples, merging, and a clock that went backwards.
 */
/* link: src/core/histogram.c */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/histogram.h"

/* Bounds are strictly increasing and every value sits in (upper(i-1), upper(i)]. */
static void test_bounds(void **state)
{
	static const uint64_t values[] = { 0,         1,         9,         10,   11,     14,
					   15,        16,        99,        100,  101,    999,
					   1000,      1001,      2500,      2501, 123456, 99999999,
					   100000000, 100000001, UINT64_MAX };

	for (int i = 1; i < HISTOGRAM_BUCKETS; i++)
		assert_true(histogram_upper_us(i) > histogram_upper_us(i - 1));
	assert_int_equal(histogram_upper_us(HISTOGRAM_BUCKETS - 2), HISTOGRAM_MAX_US);
	for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
		int b = histogram_bucket_of(values[k]);

		assert_true(b >= 0 && b < HISTOGRAM_BUCKETS);
		assert_true(values[k] <= histogram_upper_us(b));
		if (b > 0)
			assert_true(values[k] > histogram_upper_us(b - 1));
	}
	/* Every value from 0 to 2 ms, one by one, and every bucket bound and its neighbours. */
	for (uint64_t v = 0; v <= 2000; v++) {
		int b = histogram_bucket_of(v);

		assert_true(v <= histogram_upper_us(b) &&
			    (b == 0 || v > histogram_upper_us(b - 1)));
	}
	for (int i = 0; i < HISTOGRAM_BUCKETS - 1; i++) {
		uint64_t u = histogram_upper_us(i);

		assert_int_equal(histogram_bucket_of(u), i);
		assert_int_equal(histogram_bucket_of(u + 1), i + 1);
	}
}

/* The bounds the Prometheus exposition uses are bucket bounds, so its counts are exact. */
static void test_prometheus_series_are_bounds(void **state)
{
	static const uint64_t series[] = { 100,      250,      500,      1000,     2500,
					   5000,     10000,    25000,    50000,    100000,
					   250000,   500000,   1000000,  2500000,  5000000,
					   10000000, 25000000, 50000000, 100000000 };

	for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++)
		assert_int_equal(histogram_upper_us(histogram_bucket_of(series[k])), series[k]);
}

static void test_counts(void **state)
{
	struct histogram h;

	memset(&h, 0, sizeof(h));
	histogram_observe(&h, 1000); /* exactly 1 ms: at or below le=1ms */
	histogram_observe(&h, 1001);
	histogram_observe(&h, 5);
	histogram_observe(&h, 200000000); /* 200 s: overflow */
	assert_int_equal(h.count, 4);
	assert_int_equal(h.sum_us, 1000 + 1001 + 5 + 200000000);
	assert_int_equal(histogram_count_le(&h, 4), 0);
	assert_int_equal(histogram_count_le(&h, 5), 1);
	assert_int_equal(histogram_count_le(&h, 1000), 2);
	assert_int_equal(histogram_count_le(&h, 1500), 3);
	assert_int_equal(histogram_count_le(&h, HISTOGRAM_MAX_US), 3);
	assert_int_equal(histogram_count_le(&h, UINT64_MAX), 4);
	/* Not a bound: counts up to the largest bound below (1000). */
	assert_int_equal(histogram_count_le(&h, 1200), 2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Quantiles within the bucket's relative width of the exact quantile of the same sample. */
static void test_quantiles(void **state)
{
	enum { N = 20000 };
	static const double qs[] = { 0.5, 0.9, 0.95, 0.99, 0.999, 1.0 };
	uint64_t *v = malloc(N * sizeof(*v));
	struct histogram h;
	uint64_t x = 88172645463325252ULL;

	assert_non_null(v);
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < N; i++) {
		/* xorshift: a spread over 1 us .. ~1 s, denser at the low end (log-uniform-ish) */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = 1 + (x % 1000) * (x % 1000) * ((x >> 20) % 1000) / 1000;
		histogram_observe(&h, v[i]);
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t idx = (size_t)(qs[k] * N + 0.999999) - 1;
		uint64_t exact = v[idx], got = histogram_quantile(&h, qs[k]);
		int b = histogram_bucket_of(exact);
		uint64_t lo = b ? histogram_upper_us(b - 1) : 0, hi = histogram_upper_us(b);

		/* In the same bucket as the exact value: no further off than the bucket is wide. */
		assert_true(got >= lo && got <= hi);
	}
	assert_true(histogram_quantile(&h, 0.5) <= histogram_quantile(&h, 0.95));
	assert_true(histogram_quantile(&h, 0.95) <= histogram_quantile(&h, 0.99));
	free(v);
}

static void test_quantile_edges(void **state)
{
	struct histogram h;

	memset(&h, 0, sizeof(h));
	assert_int_equal(histogram_quantile(&h, 0.5), 0);
	histogram_observe(&h, 7);
	assert_int_equal(histogram_quantile(&h, 0.5), 7);
	assert_int_equal(histogram_quantile(&h, 1.0), 7);
	histogram_observe(&h, 500000000);
	assert_int_equal(histogram_quantile(&h, 0.5), 7);
	assert_int_equal(histogram_quantile(&h, 1.0), HISTOGRAM_MAX_US);
	/* 100 values in (1000, 1500]: the median interpolates to the middle of the bucket. */
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 100; i++)
		histogram_observe(&h, 1001 + (uint64_t)i * 5);
	assert_int_equal(histogram_quantile(&h, 0.5), 1250);
	assert_int_equal(histogram_quantile(&h, 1.0), 1500);
}

static void test_add_and_since(void **state)
{
	struct histogram a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	histogram_observe(&a, 3);
	histogram_observe_since(&b, 1000, 4000); /* 3 ms */
	histogram_observe_since(&b, 5000, 4000); /* clock went back: 0 */
	assert_int_equal(b.count, 2);
	assert_int_equal(b.sum_us, 3000);
	assert_int_equal(b.buckets[0], 1);
	histogram_add(&a, &b);
	assert_int_equal(a.count, 3);
	assert_int_equal(a.sum_us, 3003);
	assert_int_equal(histogram_count_le(&a, 3), 2);
	assert_int_equal(histogram_count_le(&a, 3000), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_prometheus_series_are_bounds),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_quantile_edges),
		cmocka_unit_test(test_add_and_since),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
