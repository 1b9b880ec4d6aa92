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
