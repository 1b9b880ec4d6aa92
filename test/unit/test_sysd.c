/* link: src/ev/sysd.c */
/*
 * Unit tests for ev/sysd: the LISTEN_* variables as systemd sets them (ours, another process's,
 * malformed), descriptors taken over from the environment, and notify messages received on a
 * datagram socket of the test, named by path and in the abstract namespace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ev/sysd.h"

static void test_parse_listen_fds(void **state)
{
	static const struct {
		const char *pid, *fds;
		long self;
		int want;
	} cases[] = {
		{ "42", "2", 42, 2 }, /* ours */
		{ "42", "0", 42, 0 },
		{ "43", "2", 42, 0 }, /* another process's (inherited environment) */
		{ NULL, "2", 42, 0 }, /* not socket-activated */
		{ "42", NULL, 42, 0 },
		{ "42", "x", 42, -1 },
		{ "42", "-1", 42, -1 },
		{ "42", " 2", 42, -1 },
		{ "42", "2x", 42, -1 },
		{ "", "2", 42, -1 },
		{ "42", "99999999999999999999", 42, -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = sysd_parse_listen_fds(cases[i].pid, cases[i].fds, cases[i].self);

		if (got != cases[i].want)
			fail_msg("case %zu: LISTEN_PID=%s LISTEN_FDS=%s self=%ld: got %d, want %d",
				 i, cases[i].pid ? cases[i].pid : "(unset)",
				 cases[i].fds ? cases[i].fds : "(unset)", cases[i].self, got,
				 cases[i].want);
	}
}

static void set_listen_env(const char *pid, const char *fds, const char *names)
{
	char self[32];

	snprintf(self, sizeof(self), "%d", (int)getpid());
	setenv("LISTEN_PID", pid ? pid : self, 1);
	setenv("LISTEN_FDS", fds, 1);
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
}

static void test_listen_fds_taken(void **state)
{
	char names[64], err[128];
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	int fd = SYSD_LISTEN_FDS_START;

	assert_true(s >= 0);
	if (s != fd) {
		assert_int_equal(dup2(s, fd), fd);
		close(s);
	}
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	set_listen_env(NULL, "1", "pgmux.socket");

	assert_int_equal(sysd_listen_fds(names, sizeof(names), err, sizeof(err)), 1);
	assert_string_equal(names, "pgmux.socket");
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
	/* read once: a second call finds nothing */
	assert_int_equal(sysd_listen_fds(names, sizeof(names), err, sizeof(err)), 0);
	close(fd);
}

static void test_listen_fds_not_ours_or_closed(void **state)
{
	char names[64], err[128];

	set_listen_env("1", "1", "x");
	assert_int_equal(sysd_listen_fds(names, sizeof(names), err, sizeof(err)), 0);
	assert_string_equal(names, "");
	assert_null(getenv("LISTEN_FDS"));

	/* descriptors 3 and 4 are not open here */
	close(SYSD_LISTEN_FDS_START);
	close(SYSD_LISTEN_FDS_START + 1);
	set_listen_env(NULL, "2", NULL);
	err[0] = '\0';
	assert_int_equal(sysd_listen_fds(names, sizeof(names), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not open"));

	set_listen_env(NULL, "two", NULL);
	assert_int_equal(sysd_listen_fds(names, sizeof(names), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "LISTEN_FDS=two"));
}

/* A datagram socket bound to name (a path, or '@' + an abstract name); returns its descriptor. */
static int bind_receiver(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memcpy(sun.sun_path, name, n);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	else
		unlink(name);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
					  (name[0] != '@'))),
			 0);
	return fd;
}

static void receive(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
}

static void test_notify_path(void **state)
{
	char path[64], buf[SYSD_NOTIFY_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "/tmp/pgmux-test-sysd-%d", (int)getpid());
	fd = bind_receiver(path);
	setenv("NOTIFY_SOCKET", path, 1);

	assert_true(sysd_notify("READY=1\nSTATUS=%s", "accepting connections"));
	receive(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=accepting connections");

	assert_true(sysd_notify_reloading());
	receive(fd, buf, sizeof(buf));
	assert_true(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	assert_true(strtoull(buf + 27, NULL, 10) > 0);

	/* a long STATUS is cut, not dropped */
	{
		char big[2 * SYSD_NOTIFY_MAX];

		memset(big, 'e', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_true(sysd_notify("STATUS=%s", big));
		receive(fd, buf, sizeof(buf));
		assert_int_equal(strlen(buf), SYSD_NOTIFY_MAX - 1);
		assert_true(strncmp(buf, "STATUS=eee", 10) == 0);
	}
	close(fd);
	unlink(path);
	/* nobody listening any more: false, no crash */
	assert_false(sysd_notify("STOPPING=1"));
	unsetenv("NOTIFY_SOCKET");
}

static void test_notify_abstract(void **state)
{
	char name[64], buf[256];
	int fd;

	snprintf(name, sizeof(name), "@pgmux-test-sysd-%d", (int)getpid());
	fd = bind_receiver(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_true(sysd_notify("STOPPING=1"));
	receive(fd, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_notify_without_manager(void **state)
{
	static const char *bad[] = { "relative/path", "@", "vsock:2:1234", "" };

	unsetenv("NOTIFY_SOCKET");
	assert_false(sysd_notify("READY=1"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		assert_false(sysd_notify("READY=1"));
	}
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen_fds),
		cmocka_unit_test(test_listen_fds_taken),
		cmocka_unit_test(test_listen_fds_not_ours_or_closed),
		cmocka_unit_test(test_notify_path),
		cmocka_unit_test(test_notify_abstract),
		cmocka_unit_test(test_notify_without_manager),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
