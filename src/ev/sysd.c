/*
 * sysd: systemd's notify protocol and socket activation, without libsystemd (see ev/sysd.h).
 *
 * Invariants: nothing here keeps state between calls; a notify message is built whole and sent
 * as one datagram or not at all; descriptors from the environment are touched only once the
 * environment has been checked to be ours.
 */
#include "ev/sysd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Reads a whole decimal number (no sign, no spaces) below limit into *out. */
static bool parse_count(const char *s, long limit, long *out)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v >= limit)
		return false;
	*out = v;
	return true;
}

int sysd_parse_listen_fds(const char *listen_pid, const char *listen_fds, long self)
{
	long pid, n;

	if (!listen_pid || !listen_fds)
		return 0;
	if (!parse_count(listen_pid, LONG_MAX, &pid) ||
	    !parse_count(listen_fds, INT_MAX - SYSD_LISTEN_FDS_START, &n))
		return -1;
	return pid == self ? (int)n : 0;
}

int sysd_listen_fds(char *names, size_t nameslen, char *err, size_t errlen)
{
	const char *fdnames = getenv("LISTEN_FDNAMES");
	int n = sysd_parse_listen_fds(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), (long)getpid());

	snprintf(names, nameslen, "%s", n > 0 && fdnames ? fdnames : "");
	if (n < 0)
		snprintf(err, errlen, "LISTEN_PID=%s LISTEN_FDS=%s: not numbers",
			 getenv("LISTEN_PID"), getenv("LISTEN_FDS"));
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (int i = 0; i < n; i++) {
		int fd = SYSD_LISTEN_FDS_START + i;
		int flags = fcntl(fd, F_GETFD);

		if (flags < 0) {
			snprintf(err, errlen, "LISTEN_FDS=%d but descriptor %d is not open", n, fd);
			return -1;
		}
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	}
	return n;
}

/* The socket address $NOTIFY_SOCKET names; false when it is unset or not an AF_UNIX name. */
static bool notify_address(struct sockaddr_un *sun, socklen_t *len)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return false;
	n = strlen(path);
	if (n < 2 || n >= sizeof(sun->sun_path))
		return false;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@')
		sun->sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	return true;
}

static bool send_message(const char *msg, size_t len)
{
	struct sockaddr_un sun;
	socklen_t sunlen;
	ssize_t sent;
	int fd;

	if (!notify_address(&sun, &sunlen))
		return false;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	sent = sendto(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sun, sunlen);
	close(fd);
	return sent == (ssize_t)len;
}

bool sysd_notify(const char *fmt, ...)
{
	char msg[SYSD_NOTIFY_MAX];
	va_list ap;
	int n;

	if (!getenv("NOTIFY_SOCKET"))
		return false;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	return send_message(msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

bool sysd_notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return sysd_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
			   (unsigned long long)ts.tv_sec * 1000000ULL +
				   (unsigned long long)ts.tv_nsec / 1000);
}
