/*
 * main: command line, startup order (config, log, daemon, resharding, admin console, TLS
 * contexts, resolver and topology plugged into the worker, listeners, pidfile, signals), the run
 * and the orderly exit. The one place that knows every module: the wiring between them
 * (console_ops, topology subscribers, the worker's resharding hooks) is done here, so that no
 * module below has to call one above it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin/admin.h"
#include "client/shard.h"
#include "config/config.h"
#include "core/log.h"
#include "ev/dns.h"
#include "ev/http.h"
#include "ev/httpd.h"
#include "ev/listen.h"
#include "ev/loop.h"
#include "ev/pgquery.h"
#include "ev/sysd.h"
#include "ev/tls.h"
#include "metrics/exporter.h"
#include "pool/pool.h"
#include "reshard/movecoord.h"
#include "reshard/mover.h"
#include "reshard/reshard.h"
#include "tools/maptool.h"
#include "topo/topology.h"
#include "worker/takeover.h"
#include "worker/worker.h"

#define JANITOR_INTERVAL 0.2

static void usage(FILE *out)
{
	fprintf(out,
		"pgmux " PGMUX_VERSION " - PostgreSQL connection pooler and read/write router\n\n"
		"usage: pgmux [OPTION]... CONFIG\n"
		"       pgmux --shard-map COMMAND ...       the shard map tool (pgmux --shard-map help)\n"
		"       pgmux --shard-of KEY CONFIG [DB]    the bucket and shard of KEY in a sharded database\n\n"
		"  -C, --check     check CONFIG (and its auth_file and TLS files) and exit\n"
		"  -T, --takeover [PATH]  take the listening sockets over from the pgmux running on the\n"
		"                  takeover socket PATH (default: takeover_socket), which then stops\n"
		"                  accepting and exits once its clients are gone\n"
		"  -d, --daemon    run in the background (requires logfile or syslog)\n"
		"  -v, --verbose   more log output (repeat for more)\n"
		"  -q, --quiet     no log output on stderr\n"
		"  -V, --version   print the version and exit\n"
		"  -h, --help      print this help and exit\n\n"
		"Signals: SIGHUP reloads the config and reopens the log file, SIGUSR2 only reopens it\n"
		"(for logrotate), SIGTERM stops accepting and exits when clients are\n"
		"gone, SIGINT also waits for running transactions to end; a second signal exits at once.\n"
		"After a takeover the old process is shut down as by SIGTERM.\n");
}

/*
 * As PgBouncer's --version: our version, then one line per library with the version actually
 * linked (a packaged binary may run against newer shared libraries than it was built with).
 */
static void print_version(void)
{
	char buf[256];

	printf("pgmux " PGMUX_VERSION "\n");
	evloop_library_version(buf, sizeof(buf));
	printf("%s\n", buf);
	dns_library_version(buf, sizeof(buf));
	printf("adns: %s\n", buf);
	tls_library_version(buf, sizeof(buf));
	printf("tls: %s\n", buf);
	pgquery_library_version(buf, sizeof(buf));
	printf("%s\n", buf);
	http_library_version(buf, sizeof(buf));
	printf("%s\n", buf);
}

static struct conn *on_accept(void *arg)
{
	struct worker *w = arg;

	return client_accept(&w->clients);
}

static void on_janitor(void *arg)
{
	worker_janitor(arg);
}

/*
 * Online resharding attached to the worker (struct worker_resharding_ops, arg: the struct
 * reshard): the worker tells the module what it must know without knowing the module.
 */
static void resharding_config_changed(void *arg)
{
	reshard_apply_config(arg);
}

static bool resharding_moves_active(void *arg)
{
	return reshard_moves_active(arg);
}

static bool resharding_leave(void *arg, void (*left)(void *left_arg), void *left_arg)
{
	return reshard_coord_leave(arg, left, left_arg);
}

static void resharding_destroy(void *arg)
{
	reshard_free(arg);
}

static const struct worker_resharding_ops resharding = {
	.config_changed = resharding_config_changed,
	.moves_active = resharding_moves_active,
	.leave = resharding_leave,
	.destroy = resharding_destroy,
};

/*
 * A move's switch of a map file puts the config in force with the next map, as RELOAD would,
 * rebuilding nothing else (struct reshard's apply; arg: the worker).
 */
static bool apply_for_reshard(void *arg, struct config *newcfg, char *err, size_t errlen)
{
	return worker_apply(arg, newcfg, CONFIG_APPLY_NONE, true, err, errlen) !=
	       WORKER_APPLY_FAILED;
}

/*
 * At start, right after worker_init: rs lent the worker's slots and attached to it, and the
 * config in force followed as every later one will be (the maps in etcd are read from now).
 */
static void attach_reshard(struct worker *w, struct reshard *rs)
{
	*rs = (struct reshard){
		.loop = &w->loop,
		.cfg = &w->cfg,
		.topo = &w->topo,
		.clients = &w->clients,
		.pools = &w->pools,
		.apply = apply_for_reshard,
		.apply_arg = w,
	};
	reshard_init(rs);
	w->resharding = &resharding;
	w->resharding_arg = rs;
	resharding.config_changed(rs);
}

/*
 * logrotate renames the file, then signals: open the name afresh. The old stream is flushed and
 * closed only once the new one is open, so no line is lost and a failure keeps the old file.
 */
static void reopen_log(const struct worker *w, const char *why)
{
	if (!*w->cfg->logfile)
		return;
	if (log_reopen(w->cfg->logfile))
		log_info("%s: log file %s reopened", why, w->cfg->logfile);
	else
		log_warning("%s: could not reopen log file %s: %s", why, w->cfg->logfile,
			    strerror(errno));
}

/* After a takeover the service is the new process's: its manager must not hear we stop. */
static void stopping(const struct worker *w)
{
	if (!w->handed_over)
		sysd_notify("STOPPING=1");
}

static void on_signal(void *arg, int signum)
{
	struct worker *w = arg;
	char err[512];

	switch (signum) {
	case SIGHUP:
		log_info("SIGHUP: reloading config");
		sysd_notify_reloading();
		if (worker_reload(w, err, sizeof(err)))
			sysd_notify("READY=1\nSTATUS=config reloaded");
		else
			sysd_notify("READY=1\nSTATUS=reload failed: %s", err);
		reopen_log(w, "SIGHUP");
		break;
	case SIGUSR2:
		reopen_log(w, "SIGUSR2");
		break;
	case SIGTERM:
		stopping(w);
		worker_shutdown(w, false);
		break;
	case SIGINT:
		stopping(w);
		worker_shutdown(w, true);
		break;
	default:
		break;
	}
}

static void write_pidfile(const char *path)
{
	FILE *f;

	if (!*path)
		return;
	f = fopen(path, "w");
	if (!f)
		die("could not write pidfile %s: %s", path, strerror(errno));
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
}

/*
 * Go to the background. The parent waits until the daemon reports that it listens and wrote its
 * pidfile (or failed), so whoever started pgmux -d can rely on both once it returns.
 * Returns the pipe end on which the daemon reports readiness.
 */
static int daemonize(void)
{
	int ready[2], fd;
	pid_t pid;
	char status = 1;

	if (pipe(ready) < 0)
		die("pipe failed: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork failed: %s", strerror(errno));
	if (pid > 0) {
		close(ready[1]);
		if (read(ready[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(ready[0]);
	setsid();
	pid = fork();
	if (pid < 0)
		die("fork failed: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return ready[1];
}

static void report_ready(int fd)
{
	char ok = 0;

	if (fd >= 0) {
		(void)!write(fd, &ok, 1);
		close(fd);
	}
}

/* Many clients need many descriptors: raise the soft limit as far as allowed. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Server connections one pool per database may open (a database's max_db_connections when it
 * has one): with several users per database there can be more, so this is a floor.
 */
static long server_connections(const struct config *cfg)
{
	long n = 0;

	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *e = &cfg->dbs[i];
		int most = config_db_max_connections(cfg, e);
		int pool = config_db_pool_size(cfg, e) + config_db_reserve_pool(cfg, e);

		n += most > 0 && most < pool ? most : pool;
	}
	return n;
}

/* Say so at startup when max_client_conn and the pools cannot fit in the descriptors we have. */
static void warn_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	long need = cfg->max_client_conn + server_connections(cfg) +
		    64; /* listeners, logs, checks */

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)need > rl.rlim_cur)
		log_warning(
			"max_client_conn (%d) and the pools' server connections (at least %ld) need "
			"about %ld file descriptors, more than the limit of %llu: clients beyond it "
			"are refused; raise the limit (ulimit -n, LimitNOFILE= in systemd) or lower "
			"max_client_conn",
			cfg->max_client_conn, server_connections(cfg), need,
			(unsigned long long)rl.rlim_cur);
}

/*
 * pgmux --check CONFIG: what a reload would refuse (config, auth_file, TLS files), so that a
 * service manager's reload command can fail before it signals the running pgmux.
 */
static int check_main(const char *path)
{
	struct tls_settings client_tls, server_tls;
	struct tls_ctx *client_ctx = NULL, *server_ctx = NULL;
	struct config *cfg;
	char err[1024];
	bool ok;

	ok = (cfg = config_load(path, err, sizeof(err))) != NULL;
	if (ok) {
		worker_tls_settings(cfg, TLS_SIDE_CLIENTS, &client_tls);
		worker_tls_settings(cfg, TLS_SIDE_SERVERS, &server_tls);
		ok = tls_load_contexts(&client_tls, &server_tls, &client_ctx, &server_ctx, err,
				       sizeof(err));
	}
	if (ok)
		printf("%s: configuration OK\n", path);
	else
		fprintf(stderr, "pgmux: %s\n", err);
	tls_ctx_free(client_ctx);
	tls_ctx_free(server_ctx);
	config_free(cfg);
	return ok ? 0 : 1;
}

/* pgmux --shard-of KEY CONFIG [DATABASE]: where a key lives, as SHOW SHARD FOR says. */
static int shard_of_main(int argc, char **argv)
{
	const struct db_entry *e = NULL;
	struct shard_key_place place;
	const struct shards_entry *set;
	struct config *cfg;
	char err[1024];

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: pgmux --shard-of KEY CONFIG [DATABASE]\n");
		return 2;
	}
	cfg = config_load(argv[1], err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "pgmux: %s\n", err);
		return 1;
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *d = &cfg->dbs[i];

		if (d->shards[0] && (argc == 3 ? strcmp(d->name, argv[2]) == 0 : !e))
			e = d;
	}
	set = e ? config_find_shards(cfg, e->shards) : NULL;
	if (!e || !client_shard_of_key(cfg, e, set->loaded, argv[0], &place, err, sizeof(err))) {
		fprintf(stderr, "pgmux: %s\n", e ? err : "no such sharded database in the config");
		config_free(cfg);
		return 1;
	}
	printf("database %s key %s hash %lld bucket %u shard %s cluster %s%s\n", e->name, argv[0],
	       (long long)place.hash, place.bucket, set->shards[place.shard].name,
	       set->shards[place.shard].cluster, place.by_override ? " (override)" : "");
	config_free(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check", no_argument, NULL, 'C' },          { "daemon", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },        { "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },        { "help", no_argument, NULL, 'h' },
		{ "takeover", optional_argument, NULL, 'T' }, { NULL, 0, NULL, 0 },
	};
	bool daemon = false, quiet = false, check = false, takeover = false;
	const char *takeover_path = NULL;
	char path[108];
	long old_pid = 0;
	int verbose = 0, opt, ready_fd = -1;
	struct config *cfg;
	struct worker w;
	struct exporter exporter; /* the metrics_listen endpoint's answers */
	struct reshard rs;
	struct tls_settings client_tls, server_tls;
	char err[1024];

	if (argc > 1 && strcmp(argv[1], "--shard-map") == 0) /* the map tool, not the daemon */
		return maptool_main(argc - 2, argv + 2);
	if (argc > 1 && strcmp(argv[1], "--shard-of") == 0)
		return shard_of_main(argc - 2, argv + 2);
	while ((opt = getopt_long(argc, argv, "CdvqVhT::", opts, NULL)) != -1) {
		switch (opt) {
		case 'C':
			check = true;
			break;
		case 'T':
			takeover = true;
			takeover_path = optarg;
			break;
		case 'd':
			daemon = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = true;
			break;
		case 'V':
			print_version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	/* --takeover PATH CONFIG as well as --takeover=PATH CONFIG */
	if (takeover && !takeover_path && optind == argc - 2)
		takeover_path = argv[optind++];
	if (optind != argc - 1) {
		usage(stderr);
		return 1;
	}
	if (check)
		return check_main(argv[optind]);
	cfg = config_load(argv[optind], err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "pgmux: %s\n", err);
		return 1;
	}
	cfg->verbose += verbose;
	if (daemon && !*cfg->logfile && !cfg->syslog) {
		fprintf(stderr, "pgmux: -d needs logfile or syslog in the config\n");
		return 1;
	}
	if (!log_open(cfg->logfile, !quiet && !daemon, cfg->syslog, cfg->syslog_ident,
		      syslog_facility_names[cfg->syslog_facility])) {
		fprintf(stderr, "pgmux: could not open logfile %s: %s\n", cfg->logfile,
			strerror(errno));
		return 1;
	}
	log_set_verbose(cfg->verbose);
	worker_log_config_warnings(cfg);
	raise_fd_limit();
	warn_fd_limit(cfg);
	signal(SIGPIPE, SIG_IGN);
	if (daemon)
		ready_fd = daemonize();
	if (!worker_init(&w, cfg))
		die("could not initialise the event loop");
	attach_reshard(&w, &rs);
	if (!admin_register(&w, &rs))
		die("out of memory registering the admin console");
	worker_tls_settings(cfg, TLS_SIDE_CLIENTS, &client_tls);
	worker_tls_settings(cfg, TLS_SIDE_SERVERS, &server_tls);
	if (!tls_load_contexts(&client_tls, &server_tls, &w.client_tls, &w.server_tls, err,
			       sizeof(err)))
		die("%s", err);
	w.dns = dns_new(&w.loop, cfg->dns_servers, err, sizeof(err));
	if (!w.dns)
		die("%s", err);
	dns_set_ttls(w.dns, cfg->dns_max_ttl, cfg->dns_nxdomain_ttl);
	topo_init(&w.topo, &w.loop, w.dns);
	if (!pool_follow_topology(&w.pools))
		die("could not subscribe the pools to the topology");
	if (!topo_apply_config(&w.topo, cfg))
		die("out of memory setting up clusters");
	exporter_init(&exporter, &w);
	if (takeover) {
		if (!takeover_path && !worker_takeover_path(cfg, path, sizeof(path)))
			die("--takeover: no takeover socket: name it, or set takeover_socket or unix_socket_dir");
		/* Until the old process confirmed, a failure here leaves it serving as before. */
		if (!worker_takeover(&w, takeover_path ? takeover_path : path, on_accept,
				     exporter_http, &exporter, &old_pid, err, sizeof(err)))
			die("takeover failed: %s", err);
		log_info("took over the listening sockets from pid %ld", old_pid);
	} else {
		w.listeners = listen_open(&w.loop, cfg->listen_addr, cfg->listen_port,
					  cfg->unix_socket_dir, cfg->unix_socket_mode,
					  cfg->listen_backlog, cfg->tcp_defer_accept != 0,
					  cfg->so_reuseport, on_accept, &w, err, sizeof(err));
		if (!w.listeners)
			die("%s", err);
		if (*cfg->metrics_listen &&
		    !(w.metrics_httpd = httpd_open(&w.loop, cfg->metrics_listen, exporter_http,
						   &exporter, err, sizeof(err))))
			die("%s", err);
		if (!worker_takeover_listen(&w, err, sizeof(err)))
			die("%s", err);
	}
	/*
	 * Only now that the sockets are ours: a pgmux that could not listen (another one runs) or
	 * take over must not roll back the moves the running one is making.
	 */
	reshard_moves_recover(&rs);
	write_pidfile(cfg->pidfile);
	if (!evloop_signal(&w.loop, SIGHUP, on_signal, &w) ||
	    !evloop_signal(&w.loop, SIGTERM, on_signal, &w) ||
	    !evloop_signal(&w.loop, SIGINT, on_signal, &w) ||
	    !evloop_signal(&w.loop, SIGUSR2, on_signal, &w) ||
	    !evloop_timer_start(&w.loop, &w.janitor, JANITOR_INTERVAL, on_janitor, &w))
		die("could not set up signals and timers");
	log_info("pgmux " PGMUX_VERSION " listening on %s:%d", cfg->listen_addr, cfg->listen_port);
	report_ready(ready_fd);
	/* MAINPID: after a takeover, the service manager follows the new process. */
	sysd_notify("READY=1\nMAINPID=%d\nSTATUS=accepting connections", (int)getpid());
	evloop_run(&w.loop);
	stopping(&w);                          /* also after SHUTDOWN from the console */
	if (*w.cfg->pidfile && !w.handed_over) /* the pidfile names the new process now */
		unlink(w.cfg->pidfile);
	worker_destroy(&w); /* closes the metrics endpoint: the exporter is not called again */
	exporter_free(&exporter);
	log_info("pgmux stopped");
	log_close();
	return 0;
}
