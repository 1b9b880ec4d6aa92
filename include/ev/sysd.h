/*
 * sysd: what pgmux tells a service manager (systemd's notify protocol) and the listening sockets
 * it may be handed at start (socket activation). Both work without systemd's library and do
 * nothing when pgmux was not started by a service manager.
 *
 * Notify: each message is one datagram of "VAR=value" lines to the AF_UNIX socket named in
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@'). Sending never blocks and
 * a failure only costs the message: the service manager times out on its own.
 *
 * Socket activation: the sockets are the descriptors SYSD_LISTEN_FDS_START onwards, counted by
 * $LISTEN_FDS, and are ours only when $LISTEN_PID is our process id (a child started with the
 * same environment must not take them). The variables are removed once read, so no program
 * pgmux might start inherits them.
 */
#ifndef PGMUX_EV_SYSD_H
#define PGMUX_EV_SYSD_H

#include <stdbool.h>
#include <stddef.h>

#define SYSD_LISTEN_FDS_START 3
/* A notify message longer than this is cut (a STATUS= line is the only long part). */
#define SYSD_NOTIFY_MAX 1024

/*
 * Send one notify message built from fmt, e.g. sysd_notify("READY=1\nSTATUS=%s", what).
 * True when the service manager was sent it; false when $NOTIFY_SOCKET is unset (not run by a
 * service manager), unusable, or the send failed. Never calls back.
 */
bool sysd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "RELOADING=1" with MONOTONIC_USEC (CLOCK_MONOTONIC now, in µs), as systemd wants it. */
bool sysd_notify_reloading(void);

/*
 * How many listening sockets the environment says are ours: LISTEN_FDS when LISTEN_PID equals
 * self, else 0 (either unset, or meant for another process). -1 when a variable that is set is
 * not a number (or a count beyond what a process can hold). Reads only its arguments.
 */
int sysd_parse_listen_fds(const char *listen_pid, const char *listen_fds, long self);

/*
 * The listening sockets passed to this process, from the environment: returns their count n
 * (descriptors SYSD_LISTEN_FDS_START .. +n-1, now close-on-exec), 0 when none were passed, -1
 * (and err) when the variables are malformed. names gets $LISTEN_FDNAMES ("" when unset,
 * colon-separated otherwise). LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are unset afterwards.
 */
int sysd_listen_fds(char *names, size_t nameslen, char *err, size_t errlen);

#endif
