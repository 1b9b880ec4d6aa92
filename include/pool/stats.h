/*
 * stats: counters kept per pool and summed per database for SHOW STATS and metrics.
 */
#ifndef PGMUX_POOL_STATS_H
#define PGMUX_POOL_STATS_H

#include <stdint.h>

struct stats {
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t server_assignment_count;
	uint64_t bytes_received;   /* from clients */
	uint64_t bytes_sent;       /* to clients */
	uint64_t xact_time_us;     /* time with a server linked, per transaction */
	uint64_t query_time_us;
	uint64_t wait_time_us;     /* time clients spent waiting for a server */
};

static inline void stats_add(struct stats *to, const struct stats *from)
{
	to->xact_count += from->xact_count;
	to->query_count += from->query_count;
	to->server_assignment_count += from->server_assignment_count;
	to->bytes_received += from->bytes_received;
	to->bytes_sent += from->bytes_sent;
	to->xact_time_us += from->xact_time_us;
	to->query_time_us += from->query_time_us;
	to->wait_time_us += from->wait_time_us;
}

#endif
