/*
 * log: pgmux's log lines, to a file, stderr and/or syslog.
 *
 * Connection-scoped lines carry the connection's id and context (see client_log/server_log);
 * this module only formats "time [pid] LEVEL message". Secrets never reach it.
 */
#ifndef PGMUX_CORE_LOG_H
#define PGMUX_CORE_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_level {
	LOG_LVL_FATAL,
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_NOISE
};

/*
 * Open logfile (may be "" for none); stderr logging stays on unless quiet. With use_syslog,
 * lines also go to syslog under ident with the named facility ("daemon", "local0", ...; an
 * unknown name is "daemon").
 */
bool log_open(const char *logfile, bool to_stderr, bool use_syslog, const char *ident,
	      const char *facility);
void log_close(void);
/*
 * Reopen the log file by name (after RELOAD or log rotation): the new file is opened first and
 * the old stream flushed and closed after, so no line is lost. false (errno set by fopen) keeps
 * logging to the old file.
 */
bool log_reopen(const char *logfile);
void log_set_verbose(int verbose);
bool log_enabled(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_DEBUG))                                                    \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)
#define log_noise(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_NOISE))                                                    \
			log_msg(LOG_LVL_NOISE, __VA_ARGS__);                                       \
	} while (0)

/* Log and exit(1): only for startup failures, never for network or client input. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ASSERT: our own invariants, checked in every build that defines PGMUX_CHECKS. */
#if PGMUX_CHECKS
#define ASSERT(cond)                                                                               \
	do {                                                                                       \
		if (!(cond))                                                                       \
			log_assert_failed(#cond, __FILE__, __LINE__);                              \
	} while (0)
#else
#define ASSERT(cond)                                                                               \
	do {                                                                                       \
		(void)sizeof(cond);                                                                \
	} while (0)
#endif
void log_assert_failed(const char *cond, const char *file, int line) __attribute__((noreturn));

#endif
