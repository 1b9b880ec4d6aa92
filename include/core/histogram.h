/*
 * core/histogram: a distribution of durations in fixed, log-scale buckets, for latency
 * percentiles (SHOW LATENCY) and Prometheus histograms (/metrics).
 *
 * Values are microseconds. Every bucket is the interval (upper bound of the previous bucket,
 * its own upper bound]: 0, 1, 2, ... 10 exactly, then each decade from 10 us to 100 s in 18
 * steps of half its lower bound (10^d * 1.5, 2, 2.5 ... 10), and a last bucket for everything
 * above 100 s. So the 1-2.5-5 series Prometheus users expect (1 ms, 2.5 ms, 5 ms, 10 ms ...) are
 * bucket bounds, and a percentile read from the buckets is off by at most half a decade step
 * (50 % just above a power of ten, 5 % just below the next).
 *
 * Invariants: count is the sum of the buckets; sum is the sum of the values observed (wraps
 * after 584,000 years of observed time). Pure: no I/O, no allocation, no globals besides the
 * constant table of bounds; a histogram is a plain struct that can be zeroed, copied and added.
 */
#ifndef PGMUX_CORE_HISTOGRAM_H
#define PGMUX_CORE_HISTOGRAM_H

#include <stdbool.h>
#include <stdint.h>

/* 11 exact buckets (0..10 us), 7 decades of 18, and the overflow bucket above 100 s. */
#define HISTOGRAM_BUCKETS (11 + 7 * 18 + 1)
/* The largest finite upper bound, in microseconds (100 s). */
#define HISTOGRAM_MAX_US 100000000ULL

struct histogram {
	uint64_t count;
	uint64_t sum_us;
	uint64_t buckets[HISTOGRAM_BUCKETS];
};

/* The bucket a value of us microseconds falls in (0 .. HISTOGRAM_BUCKETS - 1). */
int histogram_bucket_of(uint64_t us);

/* The upper bound of bucket i in microseconds; UINT64_MAX for the last bucket. */
uint64_t histogram_upper_us(int i);

/* Count one value of us microseconds. */
void histogram_observe(struct histogram *h, uint64_t us);

/*
 * Count the time from start_us to now_us. A clock that went backwards (the loop's clock follows
 * the wall clock) counts as 0 rather than as a huge value.
 */
void histogram_observe_since(struct histogram *h, uint64_t start_us, uint64_t now_us);

/* Add every count of from to to (a database's histogram summed over its shards, say). */
void histogram_add(struct histogram *to, const struct histogram *from);

/*
 * The values at or below le_us: exact when le_us is a bucket's upper bound (which every bound
 * of the Prometheus exposition is); otherwise the count up to the largest bound below le_us.
 */
uint64_t histogram_count_le(const struct histogram *h, uint64_t le_us);

/*
 * The q-quantile (0 < q <= 1) in microseconds, interpolated linearly inside the bucket that holds
 * it; 0 for an empty histogram. A quantile in the overflow bucket is reported as 100 s.
 */
uint64_t histogram_quantile(const struct histogram *h, double q);

#endif
