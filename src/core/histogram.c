/*
 * core/histogram: fixed log-scale buckets of durations (see core/histogram.h).
 */
#include "core/histogram.h"

#define EXACT_BUCKETS 11    /* 0 .. 10 us, one value each */
#define STEPS_PER_DECADE 18 /* 1.5, 2, 2.5 ... 10 times the decade's lower bound */
#define LAST_BUCKET (HISTOGRAM_BUCKETS - 1)

int histogram_bucket_of(uint64_t us)
{
	uint64_t base = 10, step;
	int decade = 0;

	if (us < EXACT_BUCKETS)
		return (int)us;
	if (us > HISTOGRAM_MAX_US)
		return LAST_BUCKET;
	while (us > base * 10) {
		base *= 10;
		decade++;
	}
	/* us is in (base, 10 * base]: which step of base / 2 holds it, rounding up. */
	step = base / 2;
	return EXACT_BUCKETS + decade * STEPS_PER_DECADE + (int)((us - base + step - 1) / step) - 1;
}

uint64_t histogram_upper_us(int i)
{
	uint64_t base = 10;
	int decade, j;

	if (i < EXACT_BUCKETS)
		return (uint64_t)(i < 0 ? 0 : i);
	if (i >= LAST_BUCKET)
		return UINT64_MAX;
	decade = (i - EXACT_BUCKETS) / STEPS_PER_DECADE;
	j = (i - EXACT_BUCKETS) % STEPS_PER_DECADE;
	while (decade-- > 0)
		base *= 10;
	return base + (uint64_t)(j + 1) * (base / 2);
}

void histogram_observe(struct histogram *h, uint64_t us)
{
	h->buckets[histogram_bucket_of(us)]++;
	h->count++;
	h->sum_us += us;
}

void histogram_observe_since(struct histogram *h, uint64_t start_us, uint64_t now_us)
{
	histogram_observe(h, now_us > start_us ? now_us - start_us : 0);
}

void histogram_add(struct histogram *to, const struct histogram *from)
{
	for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
		to->buckets[i] += from->buckets[i];
	to->count += from->count;
	to->sum_us += from->sum_us;
}

uint64_t histogram_count_le(const struct histogram *h, uint64_t le_us)
{
	uint64_t n = 0;

	for (int i = 0; i < HISTOGRAM_BUCKETS && histogram_upper_us(i) <= le_us; i++)
		n += h->buckets[i];
	return n;
}

uint64_t histogram_quantile(const struct histogram *h, double q)
{
	uint64_t rank, below = 0;

	if (h->count == 0)
		return 0;
	if (q > 1)
		q = 1;
	/* The rank of the value: q * count rounded up, and at least the first. */
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count || rank == 0)
		rank++;
	for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
		uint64_t lower, upper;

		if (below + h->buckets[i] < rank) {
			below += h->buckets[i];
			continue;
		}
		if (i == LAST_BUCKET)
			return HISTOGRAM_MAX_US;
		upper = histogram_upper_us(i);
		if (i < EXACT_BUCKETS)
			return upper;
		/* Spread the bucket's values evenly over (lower, upper]. */
		lower = histogram_upper_us(i - 1);
		return lower + (uint64_t)((double)(upper - lower) * (double)(rank - below) /
					  (double)h->buckets[i]);
	}
	return HISTOGRAM_MAX_US; /* not reached: the buckets hold count values */
}
