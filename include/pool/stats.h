/*
 * stats: what the pools count for SHOW STATS, SHOW LATENCY, SHOW ROUTES, SHOW SHARDS and
 * /metrics: counters kept per pool and summed per database, latency histograms kept per pool
 * (SHOW LATENCY adds a database's pools up), where a routed database's units of work went, and
 * how a sharded database's units of work found their shard.
 */
#ifndef PGMUX_POOL_STATS_H
#define PGMUX_POOL_STATS_H

#include <stdint.h>

#include "core/histogram.h"

struct stats {
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t server_assignment_count;
	uint64_t bytes_received; /* from clients */
	uint64_t bytes_sent;     /* to clients */
	uint64_t xact_time_us;   /* time with a server linked, per transaction */
	uint64_t query_time_us;
	uint64_t wait_time_us; /* time clients spent waiting for a server */
};

/* Where a routed database's units of work went (route/router.h says why), counted per database. */
struct route_stats {
	uint64_t reads_replica;  /* reads a replica served */
	uint64_t reads_primary;  /* reads sent to the primary by read_from (primary or any) */
	uint64_t reads_fallback; /* no replica usable: read_fallback = primary */
	uint64_t reads_ryw;      /* no replica had replayed the client's last write yet */
	uint64_t reads_refused;  /* no replica usable: read_fallback = error */
	uint64_t writes;         /* units that needed the primary */
	uint64_t hinted;         /* units whose role a hint chose */
	uint64_t primary_waits;  /* units that waited for a confirmed primary */
	uint64_t primary_wait_timeouts;
};

/*
 * Distributions of a pool's durations (SHOW LATENCY adds a database's pools up). One observation
 * each: per server assignment the time the client waited for it (0 when one was free), per
 * query and per transaction the time with a server linked, per server connection the time from
 * launch to the TCP (and TLS) connection and to the end of its login.
 */
struct latency {
	struct histogram wait;
	struct histogram query;
	struct histogram xact;
	struct histogram connect;
	struct histogram login;
	struct role_latency *by_role; /* routed databases, from their first unit; NULL otherwise */
};

/* The query and transaction times of a routed database by the role of the server that ran them. */
enum latency_role { LATENCY_PRIMARY, LATENCY_REPLICA, LATENCY_ROLES };

struct role_latency {
	struct histogram query[LATENCY_ROLES];
	struct histogram xact[LATENCY_ROLES];
};

/* How the units of work of a sharded database found their shard (SHOW SHARDS, SHOW ROUTES). */
struct shard_stats {
	uint64_t by_hint;     /* a leading comment pgmux:shard_key= or pgmux:shard= */
	uint64_t by_setting;  /* SET [LOCAL] pgmux.shard_key / pgmux.shard, startup option */
	uint64_t by_sql;      /* the key found in the statement */
	uint64_t by_default;  /* no key: no_shard_key named a shard */
	uint64_t stayed;      /* touched no table: served by the shard of the client's last unit */
	uint64_t no_key;      /* refused: no key (no_shard_key = error) */
	uint64_t cross_shard; /* refused: keys on several shards */
	uint64_t fanned_out;  /* reads without a key sent to every shard (no_shard_key = all) */
	uint64_t copy_split;  /* COPY FROM STDIN split over the shards by the keys of its rows */
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
