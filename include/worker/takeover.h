/*
 * worker/takeover: what a worker hands over and takes over in a zero-downtime upgrade (the
 * socket work is ev/takeover.c's). The running process offers its client listeners, its
 * metrics_listen listeners and the takeover socket itself; a new process started with --takeover
 * adopts them, and once it confirmed, the running one stops accepting and shuts down as on
 * SIGTERM. It tells the new one how many servers it holds (counted against the new one's
 * max_db_connections and max_user_connections), hands over every client that may go
 * (client/handoff.h) as soon as it is idle, keeps the others (TLS, session mode) until they
 * leave, then exits.
 */
#ifndef PGMUX_WORKER_TAKEOVER_H
#define PGMUX_WORKER_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "ev/httpd.h"
#include "ev/listen.h"

struct config;
struct worker;

/*
 * The takeover socket's path for cfg into buf: takeover_socket, else
 * <unix_socket_dir>/.s.PGSQL.<listen_port>.takeover. False when there is none (both empty) or
 * it does not fit.
 */
bool worker_takeover_path(const struct config *cfg, char *buf, size_t len);

/*
 * Old side: listen on the takeover socket (w->takeover) unless there is none. False (and err)
 * when it cannot be made.
 */
bool worker_takeover_listen(struct worker *w, char *err, size_t errlen);

/*
 * New side, before the loop runs: take the listening sockets of the process listening on path
 * (w->listeners, w->metrics_httpd when cfg has metrics_listen, w->takeover), then have it stop
 * accepting. accept, and metrics with metrics_arg, are what listen_open and httpd_open would
 * be given. False (and err) on any failure before the old process confirmed: it then still
 * serves as before. *old_pid: the process taken over from.
 */
bool worker_takeover(struct worker *w, const char *path, listen_accept_fn accept,
		     httpd_handler_fn metrics, void *metrics_arg, long *old_pid, char *err,
		     size_t errlen);

#endif
