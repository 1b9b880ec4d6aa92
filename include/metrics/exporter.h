/*
 * metrics/exporter: pgmux's state as Prometheus metrics, and the answers of the HTTP endpoint
 * (/metrics, /health, /ready). main.c hands it to the endpoint (ev/httpd): the worker, whose
 * structures it reads, does not know it, and the pools count with core/histogram without it.
 *
 * Reads the worker's structures (pools, databases, stats, latency histograms, topology, routing
 * and shard counters, config) and writes them through metrics/prom; changes none of them. Names that
 * the community PgBouncer exporter defines are used with the same meaning and labels, so its
 * dashboards and alerts work when pointed here; pgmux's own metrics are named pgmux_* (the list
 * and the mapping are in doc/metrics.md).
 */
#ifndef PGMUX_METRICS_EXPORTER_H
#define PGMUX_METRICS_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/list.h"

struct httpd_reply;
struct worker;

/* The exporter's state: what it reads, and what it keeps between two scrapes. */
struct exporter {
	struct worker *w;
	/*
	 * struct write_pauses, one per cluster that had a primary change: each cluster's write
	 * pauses as a histogram, taken in from its handover at each scrape (topology keeps only
	 * the recent pauses; it cannot hold a histogram of what pgmux shows).
	 */
	struct list_node write_pauses;
};

/* An exporter of w's state (borrowed; it outlives the exporter's endpoint). */
void exporter_init(struct exporter *x, struct worker *w);

/* Free what the exporter kept (after its endpoint closed). */
void exporter_free(struct exporter *x);

/*
 * The HTTP endpoint's handler (ev/httpd's httpd_handler_fn): arg is the exporter. /metrics,
 * /health (200 while the loop runs), /ready (200 or 503 with the reason), else 404.
 */
void exporter_http(void *arg, const char *path, struct httpd_reply *reply);

#endif
