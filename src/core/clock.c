/*
 * clock: the cached loop time (see core/clock.h). Only ev/loop.c and unit tests write it.
 */
#include "core/clock.h"

static uint64_t now;

uint64_t clock_now_us(void)
{
	return now;
}

void clock_set_now_us(uint64_t now_us)
{
	now = now_us;
}

bool clock_exceeded(uint64_t at, uint64_t since, double timeout)
{
	return timeout > 0 && since && at > since && at - since >= (uint64_t)(timeout * 1e6);
}
