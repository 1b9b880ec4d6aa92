/*
 * worker/metrics: pgmux's state as Prometheus metrics, and the answers of the HTTP endpoint
 * (/metrics, /health, /ready). It lives with the worker, whose structures it reads, so that the
 * metrics module below stays pure (histograms, the text format) and pools can use it.
 *
 * Reads the worker's structures (pools, databases, stats, latency histograms, topology, routing
 * and shard counters, config) and writes them through metrics/prom; changes nothing. Names that
 * the community PgBouncer exporter defines are used with the same meaning and labels, so its
 * dashboards and alerts work when pointed here; pgmux's own metrics are named pgmux_* (the list
 * and the mapping are in doc/metrics.md).
 */
#ifndef PGMUX_WORKER_METRICS_H
#define PGMUX_WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct httpd_reply;
struct httpd_stats;
struct prom_out;
struct worker;

/*
 * The HTTP endpoint's handler (ev/httpd's httpd_handler_fn): arg is the worker. /metrics,
 * /health (200 while the loop runs), /ready (200 or 503 with the reason), else 404.
 */
void metrics_http(void *arg, const char *path, struct httpd_reply *reply);

#endif
