/*
 * clock: "now" as the event loop last saw it, in microseconds.
 *
 * The event loop (ev/loop.c) sets it once per iteration, before that iteration's first callback,
 * so every reader sees the same "now" for a whole iteration and none has to call into ev/ for it.
 * Unit tests set it themselves. The value is libev's loop time (ev_now()), which follows the
 * system's wall clock: it can jump when the system clock is set.
 *
 * One value for the process, like the log sink: there is one event loop. With one loop per
 * thread it becomes per thread.
 */
#ifndef PGMUX_CORE_CLOCK_H
#define PGMUX_CORE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* The loop's time of the current iteration (0 until the loop or a test has set it). */
uint64_t clock_now_us(void);

/* Set the time clock_now_us() returns: the event loop each iteration, unit tests at will. */
void clock_set_now_us(uint64_t now_us);

/* Has timeout (seconds; 0 or less: none) passed between since (0: never started) and at? */
bool clock_exceeded(uint64_t at, uint64_t since, double timeout);

#endif
