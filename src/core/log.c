/*
 * log: formatting and sinks for log lines.
 *
 * One process-wide sink is the exception to "state lives in the worker": logging must work
 * before the worker exists and from every module, and it holds no pooling state.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	FILE *file;
	bool to_stderr;
	bool use_syslog;
	int verbose;
} sink = { NULL, true, false, 0 };

static const char *const level_names[] = { "FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE" };

static int syslog_facility_code(const char *name)
{
	static const struct {
		const char *name;
		int code;
	} facilities[] = {
		{ "auth", LOG_AUTH },     { "authpriv", LOG_AUTHPRIV }, { "daemon", LOG_DAEMON },
		{ "user", LOG_USER },     { "local0", LOG_LOCAL0 },     { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },     { "local4", LOG_LOCAL4 },
		{ "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },     { "local7", LOG_LOCAL7 },
	};

	for (size_t i = 0; name && i < sizeof(facilities) / sizeof(facilities[0]); i++) {
		if (strcmp(facilities[i].name, name) == 0)
			return facilities[i].code;
	}
	return LOG_DAEMON;
}

bool log_open(const char *logfile, bool to_stderr, bool use_syslog, const char *ident,
	      const char *facility)
{
	sink.to_stderr = to_stderr;
	if (use_syslog) {
		openlog(ident && *ident ? ident : "pgmux", LOG_PID, syslog_facility_code(facility));
		sink.use_syslog = true;
	}
	return log_reopen(logfile);
}

bool log_reopen(const char *logfile)
{
	FILE *f = NULL;

	if (logfile && *logfile) {
		f = fopen(logfile, "a");
		if (!f)
			return false;
		setvbuf(f, NULL, _IOLBF, 0);
	}
	if (sink.file)
		fclose(sink.file);
	sink.file = f;
	return true;
}

void log_close(void)
{
	if (sink.file)
		fclose(sink.file);
	sink.file = NULL;
	if (sink.use_syslog)
		closelog();
}

void log_set_verbose(int verbose)
{
	sink.verbose = verbose;
}

bool log_enabled(enum log_level lvl)
{
	return lvl <= LOG_LVL_INFO || (int)lvl - LOG_LVL_INFO <= sink.verbose;
}

/*
 * Control characters (a user name with a newline, an escape sequence) written as \xNN, so that
 * what a client sends can neither forge a log line nor drive the terminal that shows the log.
 */
static void escape_controls(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in && n + 5 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch < 0x20 || ch == 0x7f)
			n += (size_t)snprintf(out + n, outlen - n, "\\x%02x", ch);
		else
			out[n++] = (char)ch;
	}
	out[n] = '\0';
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char raw[2048], msg[2048];
	char stamp[64];
	struct timeval tv;
	struct tm tm;
	int saved = errno;

	vsnprintf(raw, sizeof(raw), fmt, ap);
	escape_controls(raw, msg, sizeof(msg));
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	if (sink.file)
		fprintf(sink.file, "%s.%03d [%d] %s %s\n", stamp, (int)(tv.tv_usec / 1000),
			(int)getpid(), level_names[lvl], msg);
	if (sink.to_stderr)
		fprintf(stderr, "%s.%03d [%d] %s %s\n", stamp, (int)(tv.tv_usec / 1000),
			(int)getpid(), level_names[lvl], msg);
	if (sink.use_syslog) {
		static const int prio[] = { LOG_CRIT, LOG_ERR,   LOG_WARNING,
					    LOG_INFO, LOG_DEBUG, LOG_DEBUG };
		syslog(prio[lvl], "%s %s", level_names[lvl], msg);
	}
	errno = saved;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_assert_failed(const char *cond, const char *file, int line)
{
	log_msg(LOG_LVL_FATAL, "assertion failed: %s at %s:%d", cond, file, line);
	abort();
}
