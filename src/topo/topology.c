/*
 * topology: member tables of the replicated clusters, fed by Patroni and health checks (see
 * topo/topology.h). Every role decision is made in recompute_roles(), so the rules live in one
 * place: a member is primary only when Patroni (if any) names it leader and the server says it is
 * not in recovery, and only when no other member claims the same.
 *
 * Every change that the router or the pools must see goes out through publish(), to the
 * subscribers of struct topo; this file never names the pools.
 */
#include "topo/topology.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/secret.h"
#include "auth/userlist.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/lsn.h"
#include "ev/dns.h"
#include "ev/http.h"
#include "ev/pgquery.h"

/* How often each cluster looks at its schedule; checks and polls run at their own intervals. */
#define TICK_INTERVAL 0.05
/* While Patroni names a leader that is not confirmed yet, check it this often (s). */
#define URGENT_CHECK_INTERVAL 0.05

/*
 * One round trip tells role, WAL position and replay staleness. A standby that has replayed all
 * it received is not stale however old its last replayed transaction is (an idle primary).
 */
static const char health_sql[] =
	"SELECT pg_is_in_recovery(), "
	"CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, "
	"CASE WHEN NOT pg_is_in_recovery() "
	"OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
	"ELSE COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) END, "
	"(SELECT timeline_id FROM pg_control_checkpoint())";

const char *member_role_name(enum member_role r)
{
	switch (r) {
	case ROLE_PRIMARY:
		return "primary";
	case ROLE_REPLICA:
		return "replica";
	default:
		return "unknown";
	}
}

/* A change the router or the pools must see: a new version, handed to every subscriber. */
static void publish(struct cluster *cl)
{
	struct topo *t = cl->topo;

	cl->version++;
	for (int i = 0; i < t->n_subscribers; i++)
		t->subscribers[i].fn(t->subscribers[i].arg, cl);
}

static bool has_patroni(const struct cluster *cl)
{
	return cl->entry->patroni[0] != '\0';
}

/* Unix time in seconds: Patroni schedules switchovers on the wall clock. */
static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the member list ---- */

/*
 * The next item of a list separated by blanks or commas (hosts, patroni, weights): false at
 * the end; else *item and *len say where it is and *p moves past it.
 */
static bool list_next(const char **p, const char **item, size_t *len)
{
	*p += strspn(*p, " ,\t");
	if (!**p)
		return false;
	*item = *p;
	*len = strcspn(*p, " ,\t");
	*p += *len;
	return true;
}

/* Read weight of a member from "name:weight ..." (name or host:port); 1 when not listed. */
static int weight_of(const struct cluster_entry *e, const struct member *m)
{
	const char *p = e->weights, *item;
	char hostport[300];
	size_t len;

	snprintf(hostport, sizeof(hostport), "%s:%d", m->host, m->port);
	while (list_next(&p, &item, &len)) {
		const char *colon = memrchr(item, ':', len);
		size_t nlen = colon ? (size_t)(colon - item) : 0;

		if (colon && ((nlen == strlen(m->name) && strncmp(item, m->name, nlen) == 0) ||
			      (nlen == strlen(hostport) && strncmp(item, hostport, nlen) == 0)))
			return atoi(colon + 1);
	}
	return 1;
}

static void drop_check(struct member *m)
{
	if (m->check)
		pgquery_free(m->check, true);
	m->check = NULL;
	m->check_running = false;
}

/* Forget what was measured: the member is (or may be) a different server now. */
static void reset_health(struct member *m)
{
	drop_check(m);
	m->checked = false;
	m->healthy = false;
	m->in_recovery = -1;
	m->lsn = 0;
	m->lag_bytes = -1;
	m->lag_ms = -1;
	m->next_check_us = 0;
}

static struct member *member_find(struct cluster *cl, const char *name)
{
	for (int i = 0; i < cl->n_members; i++) {
		if (strcmp(cl->members[i].name, name) == 0)
			return &cl->members[i];
	}
	return NULL;
}

/* A slot for a new member: a new one, or one nobody lists or uses any more. */
static struct member *member_add(struct cluster *cl, const char *name)
{
	struct member *m = NULL;

	if (cl->n_members < TOPO_MAX_MEMBERS) {
		m = &cl->members[cl->n_members];
		m->idx = cl->n_members++;
	} else {
		for (int i = 0; i < cl->n_members && !m; i++) {
			if (!cl->members[i].listed && cl->members[i].n_servers == 0)
				m = &cl->members[i];
		}
		if (!m)
			return NULL;
		drop_check(m);
		memset(m->name, 0, sizeof(m->name));
	}
	m->cl = cl;
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->timeline = -1;
	m->role = ROLE_UNKNOWN;
	m->patroni_role = PATRONI_ROLE_OTHER;
	m->primary_epoch++;
	reset_health(m);
	return m;
}

/* Point the member at host:port; a different address makes it a different server. */
static void member_set_address(struct member *m, const char *host, int port)
{
	if (strcmp(m->host, host) == 0 && m->port == port)
		return;
	if (m->host[0])
		log_info("cluster %s: member %s moved from %s:%d to %s:%d", m->cl->name, m->name,
			 m->host, m->port, host, port);
	snprintf(m->host, sizeof(m->host), "%s", host);
	m->port = port;
	m->primary_epoch++;
	reset_health(m);
	m->cl->version++;
}

/* hosts = "h1:p1 h2:p2 ...": the static member list. */
static void sync_static_hosts(struct cluster *cl)
{
	const char *p = cl->entry->hosts, *entry;
	size_t len;

	for (int i = 0; i < cl->n_members; i++)
		cl->members[i].listed = false;
	while (list_next(&p, &entry, &len)) {
		char item[300], host[300], name[310];
		int port = 5432;
		char *colon;
		struct member *m;

		snprintf(item, sizeof(item), "%.*s", (int)len, entry);
		colon = strrchr(item, ':');
		snprintf(host, sizeof(host), "%s", item);
		if (colon && item[0] != '[') {
			host[colon - item] = '\0';
			port = atoi(colon + 1);
		}
		if (port <= 0 || port > 65535 || !host[0]) {
			log_warning("cluster %s: ignoring hosts entry '%s'", cl->name, item);
			continue;
		}
		snprintf(name, sizeof(name), "%s:%d", host, port);
		m = member_find(cl, name);
		if (!m && !(m = member_add(cl, name))) {
			log_warning("cluster %s: more than %d members; ignoring %s", cl->name,
				    TOPO_MAX_MEMBERS, name);
			continue;
		}
		member_set_address(m, host, port);
		m->listed = true;
	}
}

/* ---- roles ---- */

static void log_role_change(const struct member *m, enum member_role old, const char *why)
{
	log_info("cluster %s: member %s (%s:%d) %s -> %s: %s", m->cl->name, m->name, m->host,
		 m->port, member_role_name(old), member_role_name(m->role), why);
}

/* What a member would be on its own evidence; *why says on what. */
static enum member_role role_on_evidence(const struct cluster *cl, const struct member *m,
					 const char **why)
{
	if (!m->listed) {
		*why = has_patroni(cl) ? "no longer listed by Patroni" : "removed from hosts";
		return ROLE_UNKNOWN;
	}
	if (!m->checked) {
		*why = "not checked yet";
		return ROLE_UNKNOWN;
	}
	if (!m->healthy) {
		*why = "health check failed";
		return ROLE_UNKNOWN;
	}
	if (m->in_recovery == 1) {
		*why = "in recovery";
		return ROLE_REPLICA;
	}
	if (has_patroni(cl) && strcmp(cl->leader, m->name) != 0) {
		/* A primary Patroni does not back, e.g. an old leader not demoted yet: fence it. */
		*why = "not in recovery but Patroni does not name it leader";
		return ROLE_UNKNOWN;
	}
	*why = has_patroni(cl) ? "Patroni leader, not in recovery" : "not in recovery";
	return ROLE_PRIMARY;
}

/* ---- switchovers and failovers ---- */

/* What the handover needs to know of the member called name: demoted, lost, or neither yet. */
static enum handover_old old_primary_state(struct cluster *cl, const char *name)
{
	const struct member *m = name[0] ? member_find(cl, name) : NULL;

	if (!m || !m->listed)
		return HANDOVER_OLD_GONE;
	return m->role == ROLE_REPLICA ? HANDOVER_OLD_REPLICA : HANDOVER_OLD_OTHER;
}

/*
 * Feed the cluster's state to its handover, and log each change whose kind is now known. Called
 * after every recompute (a confirmation is timed to the check that made it) and on every tick
 * (a drain that starts, an old primary not seen within the window).
 */
static void follow_handover(struct cluster *cl)
{
	uint64_t now = clock_now_us();
	struct handover_view v = {
		.primary = cl->primary >= 0 ? cl->members[cl->primary].name : NULL,
		.draining = topo_primary_draining(cl),
		.scheduled = cl->switchover_at > 0,
		.scheduled_from = cl->switchover_from,
		.old = old_primary_state(cl, handover_subject(&cl->handover)),
	};
	struct handover_change out[2];
	int n;

	if (v.draining) {
		/* The drain began at a wall-clock time: the same moment on the loop's clock. */
		double ago = wall_now() - (cl->switchover_at - SWITCHOVER_DRAIN_LEAD);
		uint64_t ago_us = ago > 0 ? (uint64_t)(ago * 1e6) : 0;

		v.drain_since_us = ago_us < now ? now - ago_us : 0;
	}
	n = handover_step(&cl->handover, &v, now, out);
	for (int i = 0; i < n; i++)
		log_info("cluster %s: %s from %s to %s, writes paused %.2f s", cl->name,
			 handover_kind_name(out[i].kind), out[i].from, out[i].to,
			 (double)out[i].pause_us / 1e6);
}

static void recompute_roles(struct cluster *cl)
{
	enum member_role roles[TOPO_MAX_MEMBERS];
	const char *why[TOPO_MAX_MEMBERS];
	int candidates = 0, primary = -1;
	bool changed = false;

	for (int i = 0; i < cl->n_members; i++) {
		roles[i] = role_on_evidence(cl, &cl->members[i], &why[i]);
		if (roles[i] == ROLE_PRIMARY) {
			candidates++;
			primary = i;
		}
	}
	if (candidates > 1) {
		/* Two servers accept writes: guessing could lose data, so writes wait. */
		for (int i = 0; i < cl->n_members; i++) {
			if (roles[i] == ROLE_PRIMARY) {
				roles[i] = ROLE_UNKNOWN;
				why[i] = "more than one member claims to be primary";
			}
		}
		primary = -1;
	}
	for (int i = 0; i < cl->n_members; i++) {
		struct member *m = &cl->members[i];
		enum member_role old = m->role;

		if (old == roles[i])
			continue;
		m->role = roles[i];
		/*
		 * Its connections must never take writes again once it is known to be demoted. A
		 * primary that only failed a check keeps them: writes wait meanwhile, and a transient
		 * failure (a slow check on a loaded machine) does not cost the whole pool.
		 */
		if (old == ROLE_PRIMARY && !(m->checked && !m->healthy))
			m->primary_epoch++;
		log_role_change(m, old, why[i]);
		changed = true;
	}
	if (primary != cl->primary) {
		if (primary < 0)
			log_warning("cluster %s: no confirmed primary: writes wait (up to %gs)",
				    cl->name, cl->entry->primary_wait_timeout);
		else if (cl->leader_seen_us)
			log_info(
				"cluster %s: primary is %s, confirmed %.0f ms after Patroni named it",
				cl->name, cl->members[primary].name,
				(double)(clock_now_us() - cl->leader_seen_us) / 1000.0);
		cl->primary = primary;
		changed = true;
	}
	if (changed)
		publish(cl);
	follow_handover(cl);
}

/* ---- health checks ---- */

static void update_lags(struct cluster *cl)
{
	const struct member *p = cl->primary >= 0 ? &cl->members[cl->primary] : NULL;

	for (int i = 0; i < cl->n_members; i++) {
		struct member *m = &cl->members[i];

		if (m->in_recovery != 1 || !m->healthy)
			m->lag_bytes = m->in_recovery == 0 && m->healthy ? 0 : -1;
		else if (!p || !p->lsn)
			m->lag_bytes = -1;
		else
			m->lag_bytes = p->lsn > m->lsn ? (int64_t)(p->lsn - m->lsn) : 0;
	}
}

static double check_interval(const struct member *m)
{
	const struct cluster *cl = m->cl;

	/* Patroni names a leader we have not confirmed: the switchover is on, look closely. */
	if (has_patroni(cl) && strcmp(cl->leader, m->name) == 0 && m->role != ROLE_PRIMARY)
		return URGENT_CHECK_INTERVAL;
	return cl->entry->health_check_interval;
}

/* A health_check_interval shortened by a reload counts from now, not after the old one ran out. */
static void check_within_interval(struct member *m)
{
	uint64_t latest = clock_now_us() + (uint64_t)(check_interval(m) * 1e6);

	if (m->next_check_us > latest)
		m->next_check_us = latest;
}

static void check_failed(struct member *m, const char *error)
{
	struct cluster *cl = m->cl;

	if (m->healthy || !m->checked)
		log_warning("cluster %s: member %s (%s:%d) failed its health check: %s", cl->name,
			    m->name, m->host, m->port, error);
	snprintf(m->last_error, sizeof(m->last_error), "%s", error);
	if (m->healthy || !m->checked)
		m->failing_since_us = clock_now_us();
	m->healthy = false;
	m->checked = true;
	m->checked_us = clock_now_us();
	m->in_recovery = -1;
	m->banned_until_us = clock_now_us() + (uint64_t)(cl->entry->ban_time * 1e6);
}

static void check_passed(struct member *m, const char *const *v)
{
	struct cluster *cl = m->cl;
	uint64_t lsn = 0;

	if (!m->healthy && m->checked)
		log_info("cluster %s: member %s (%s:%d) passes its health check again", cl->name,
			 m->name, m->host, m->port);
	m->healthy = true;
	m->failing_since_us = 0;
	m->checked = true;
	m->checked_us = clock_now_us();
	m->last_error[0] = '\0';
	m->in_recovery = v[0] && v[0][0] == 't' ? 1 : 0;
	m->lsn = lsn_parse(v[1], &lsn) ? lsn : 0;
	m->lag_ms = v[2] ? atof(v[2]) : -1;
	if (v[3] && !has_patroni(cl))
		m->timeline = atoi(v[3]);
}

static void on_check_done(void *arg, enum pgquery_outcome outcome, int ncols,
			  const char *const *values, const char *error)
{
	struct member *m = arg;
	struct cluster *cl = m->cl;

	m->check_running = false;
	if (outcome == PGQUERY_ROW && ncols >= 4)
		check_passed(m, values);
	else
		check_failed(m, outcome != PGQUERY_NO_ROW ? error : "health check returned no row");
	m->next_check_us = clock_now_us() + (uint64_t)(check_interval(m) * 1e6);
	update_lags(cl);
	recompute_roles(cl);
}

/*
 * The libpq conninfo of m's health check, at the numeric address addr: the cluster's check
 * login, and pgmux's own rules for server logins (server_tls_*, server_auth_methods,
 * server_scram_max_iterations), so a check is not the weak way in. False when it does not fit.
 */
static bool build_conninfo(const struct member *m, const char *addr, char *out, size_t outlen)
{
	const struct cluster *cl = m->cl;
	const struct config *cfg = cl->topo->cfg;
	const char *password = cl->check_password;
	char port[16], require_auth[64];
	struct pgquery_policy policy = {
		.sslmode = cfg->server_tls_sslmode,
		.ca_file = cfg->server_tls_ca_file,
		.cert_file = cfg->server_tls_cert_file,
		.key_file = cfg->server_tls_key_file,
		.host_name = m->host,
		.require_auth = require_auth,
		.scram_max_iterations = cfg->server_scram_max_iterations,
	};

	if (!password[0] && cfg->userlist) {
		const char *secret = userlist_find(cfg->userlist, cl->check_user);

		/* Only a plain-text secret can log in; md5 and SCRAM secrets are not passwords. */
		if (secret && secret_kind_of(secret) == SECRET_PLAIN)
			password = secret;
	}
	config_server_require_auth(cfg, require_auth, sizeof(require_auth));
	snprintf(port, sizeof(port), "%d", m->port);
	out[0] = '\0';
	return pgquery_conninfo_add(out, outlen, m->host[0] == '/' ? "host" : "hostaddr", addr) &&
	       pgquery_conninfo_add(out, outlen, "port", port) &&
	       pgquery_conninfo_add(out, outlen, "user", cl->check_user) &&
	       pgquery_conninfo_add(out, outlen, "dbname", cl->check_dbname) &&
	       (!password[0] || pgquery_conninfo_add(out, outlen, "password", password)) &&
	       pgquery_conninfo_add(out, outlen, "application_name", "pgmux health check") &&
	       pgquery_conninfo_policy(out, outlen, &policy);
}

/*
 * The address to check m at, numeric (libpq must not block on DNS): the host itself, or what
 * ev/dns resolved it to. False while a lookup runs (err empty) or when it failed (err says).
 */
static bool check_address(struct member *m, char *addr, size_t addrlen, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;

	err[0] = '\0';
	if (!dns_is_name(m->host)) {
		snprintf(addr, addrlen, "%s", m->host);
		return true;
	}
	switch (dns_lookup(m->cl->topo->dns, m->host, NULL, &sa, &salen, err, errlen)) {
	case DNS_FOUND:
		if (sa.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr,
				  (socklen_t)addrlen);
		else
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr,
				  (socklen_t)addrlen);
		return true;
	case DNS_WAITING:
		err[0] = '\0';
		return false;
	default:
		return false;
	}
}

static void start_check(struct member *m)
{
	struct cluster *cl = m->cl;
	char conninfo[4096], addr[256], err[200];

	m->next_check_us = clock_now_us() + (uint64_t)(check_interval(m) * 1e6);
	if (!check_address(m, addr, sizeof(addr), err, sizeof(err))) {
		if (!err[0]) {
			/* The name is being resolved: look again soon. */
			m->next_check_us = clock_now_us() + (uint64_t)(URGENT_CHECK_INTERVAL * 1e6);
			return;
		}
		check_failed(m, err);
		recompute_roles(cl);
		return;
	}
	if (!build_conninfo(m, addr, conninfo, sizeof(conninfo))) {
		check_failed(m, "health check connection string too long");
		recompute_roles(cl);
		return;
	}
	/* A name that resolves elsewhere now, other credentials or TLS: a new connection. */
	if (m->check && strcmp(pgquery_conninfo(m->check), conninfo) != 0)
		drop_check(m);
	if (!m->check) {
		snprintf(m->check_addr, sizeof(m->check_addr), "%s", addr);
		m->check = pgquery_new(cl->topo->loop, conninfo, cl->entry->health_check_timeout);
		if (!m->check)
			return;
	}
	if (pgquery_submit(m->check, health_sql, NULL, on_check_done, m))
		m->check_running = true;
}

/* Append text to out (NUL-terminated, cut to len). */
static void append(char *out, size_t len, const char *text)
{
	size_t n = strlen(out);

	if (n + 1 < len)
		snprintf(out + n, len - n, "%s", text);
}

bool topo_cluster_unusable(const struct cluster *cl, uint64_t since_us, double patience, char *why,
			   size_t len)
{
	uint64_t now = clock_now_us(), patience_us = (uint64_t)(patience * 1e6);
	char part[400];
	int listed = 0;

	if (cl->primary >= 0)
		return false;
	for (int i = 0; i < cl->n_members; i++) {
		const struct member *m = &cl->members[i];

		if (!m->listed)
			continue;
		if (m->role == ROLE_REPLICA || !m->checked || m->checked_us < since_us)
			return false;
		/* A member restarting is back within patience: nobody need hear of it. */
		if (!m->healthy && now - m->failing_since_us < patience_us)
			return false;
		listed++;
	}
	if (listed == 0 && (!has_patroni(cl) || cl->polled_us < since_us))
		return false;
	snprintf(why, len, "no member of cluster %s can take connections", cl->name);
	if (listed == 0) {
		snprintf(part, sizeof(part), ": Patroni %s",
			 cl->patroni_ok ? "lists no member pgmux can use" : cl->patroni_error);
		append(why, len, part);
	}
	for (int i = 0, shown = 0; i < cl->n_members; i++) {
		const struct member *m = &cl->members[i];
		const char *reason;

		if (!m->listed)
			continue;
		role_on_evidence(cl, m, &reason);
		snprintf(part, sizeof(part), "%s %s (%s:%d): %s%s%s", shown++ ? ";" : ":", m->name,
			 m->host, m->port, reason, m->last_error[0] ? ": " : "", m->last_error);
		append(why, len, part);
	}
	return true;
}

void topo_member_suspect(struct member *m)
{
	if (!m->check_running)
		m->next_check_us = 0;
}

void topo_member_is_standby(struct member *m)
{
	m->in_recovery = 1;
	topo_member_suspect(m);
	recompute_roles(m->cl);
}

void topo_member_ban(struct member *m, uint64_t until_us, const char *cause)
{
	struct cluster *cl = m->cl;
	uint64_t now = clock_now_us();

	log_info("cluster %s: member %s (%s:%d) takes no reads for %.1f s: %s", cl->name, m->name,
		 m->host, m->port, until_us > now ? (double)(until_us - now) / 1e6 : 0.0, cause);
	m->banned_until_us = until_us;
	publish(cl);
}

bool topo_replica_usable(const struct member *m, uint64_t min_lsn)
{
	const struct cluster_entry *e = m->cl->entry;

	if (m->role != ROLE_REPLICA || m->noloadbalance || m->weight <= 0 ||
	    clock_now_us() < m->banned_until_us)
		return false;
	if (e->max_replica_lag > 0 && m->lag_bytes >= 0 &&
	    (double)m->lag_bytes > e->max_replica_lag)
		return false;
	if (e->max_replica_lag_time > 0 && m->lag_ms >= 0 &&
	    m->lag_ms > e->max_replica_lag_time * 1000)
		return false;
	return min_lsn == 0 || m->lsn >= min_lsn;
}

/* ---- Patroni ---- */

/* The i-th URL of the patroni list (wrapping), without a trailing '/'. */
static void patroni_endpoint(const struct cluster *cl, int i, char *out, size_t outlen, int *count)
{
	const char *p = cl->entry->patroni, *item;
	size_t len;
	int n = 0;

	out[0] = '\0';
	while (list_next(&p, &item, &len)) {
		if (n++ == i)
			snprintf(out, outlen, "%.*s", (int)len, item);
	}
	*count = n;
	if (out[0] && out[strlen(out) - 1] == '/')
		out[strlen(out) - 1] = '\0';
}

/*
 * A host Patroni names is a TCP host: a path would make pgmux connect to a local unix socket,
 * so whoever answers the REST call could point logins (and their passwords) at any local
 * server. Such a member is left out, logged once per name.
 */
static bool patroni_host_ok(struct cluster *cl, const struct patroni_member *pm)
{
	if (pm->host[0] != '/')
		return true;
	if (strcmp(cl->refused_member, pm->name) != 0)
		log_warning(
			"cluster %s: ignoring member %s: Patroni names a unix socket (%s) as its "
			"host, and only TCP hosts are taken from Patroni",
			cl->name, pm->name, pm->host);
	snprintf(cl->refused_member, sizeof(cl->refused_member), "%s", pm->name);
	return false;
}

static void apply_patroni_member(struct cluster *cl, const struct patroni_member *pm)
{
	struct member *m = member_find(cl, pm->name);

	if (!m && !(m = member_add(cl, pm->name))) {
		log_warning("cluster %s: more than %d members; ignoring %s", cl->name,
			    TOPO_MAX_MEMBERS, pm->name);
		return;
	}
	member_set_address(m, pm->host, pm->port);
	m->listed = true;
	m->patroni_role = pm->role;
	snprintf(m->state, sizeof(m->state), "%s", pm->state);
	m->timeline = pm->timeline;
	m->noloadbalance = pm->noloadbalance;
	m->weight = weight_of(cl->entry, m);
}

bool topo_primary_draining(const struct cluster *cl)
{
	const struct member *p = cl->primary >= 0 ? &cl->members[cl->primary] : NULL;

	if (!p || cl->switchover_at <= 0 || wall_now() < cl->switchover_at - SWITCHOVER_DRAIN_LEAD)
		return false;
	return !cl->switchover_from[0] || strcmp(cl->switchover_from, p->name) == 0;
}

/* A switchover scheduled or called off: waiters may go on when it is called off. */
static void apply_schedule(struct cluster *cl, const struct patroni_cluster *pc)
{
	double at = pc->switchover_scheduled ? pc->switchover_at : 0;

	if (at == cl->switchover_at)
		return;
	if (at > 0)
		log_info("cluster %s: switchover scheduled at %.3f (in %.1f s)%s%s: the primary is "
			 "drained %.1f s before",
			 cl->name, at, at - wall_now(), pc->switchover_from[0] ? " from " : "",
			 pc->switchover_from, SWITCHOVER_DRAIN_LEAD);
	else
		log_info("cluster %s: no switchover scheduled any more", cl->name);
	cl->switchover_at = at;
	snprintf(cl->switchover_from, sizeof(cl->switchover_from), "%s", pc->switchover_from);
	if (at == 0)
		publish(cl);
}

static void apply_patroni(struct cluster *cl, const struct patroni_cluster *pc)
{
	const char *leader = "";

	/* First who is still listed, so that a new member never takes a listed one's slot. */
	for (int i = 0; i < cl->n_members; i++) {
		struct member *m = &cl->members[i];

		m->listed = false;
		for (int k = 0; k < pc->n_members && !m->listed; k++)
			m->listed = strcmp(m->name, pc->members[k].name) == 0 &&
				    pc->members[k].host[0] != '/';
	}
	for (int i = 0; i < pc->n_members; i++) {
		if (!patroni_host_ok(cl, &pc->members[i]))
			continue;
		apply_patroni_member(cl, &pc->members[i]);
		if (pc->members[i].role == PATRONI_ROLE_LEADER)
			leader = pc->members[i].name;
	}
	if (strcmp(leader, cl->leader) != 0) {
		struct member *m = member_find(cl, leader);

		log_info("cluster %s: Patroni leader %s -> %s", cl->name,
			 cl->leader[0] ? cl->leader : "(none)", leader[0] ? leader : "(none)");
		snprintf(cl->leader, sizeof(cl->leader), "%s", leader);
		cl->leader_seen_us = clock_now_us();
		/* Confirm the new leader (and see the old one go) without waiting for the schedule. */
		if (m)
			topo_member_suspect(m);
		if (cl->primary >= 0)
			topo_member_suspect(&cl->members[cl->primary]);
	}
	apply_schedule(cl, pc);
	recompute_roles(cl);
}

static void on_patroni_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct cluster *cl = arg;
	struct patroni_cluster pc;
	char why[160], url[512];
	int count;

	cl->poll_running = false;
	cl->polled_us = clock_now_us();
	if (!error && status == 200 && patroni_parse_cluster(body, len, &pc, why, sizeof(why))) {
		if (!cl->patroni_ok)
			log_info("cluster %s: Patroni answers", cl->name);
		cl->patroni_ok = true;
		cl->patroni_error[0] = '\0';
		cl->next_poll_us = clock_now_us() +
				   (uint64_t)(cl->entry->patroni_poll_interval * 1e6);
		apply_patroni(cl, &pc);
		return;
	}
	if (error)
		snprintf(why, sizeof(why), "%s", error);
	else if (status != 200)
		snprintf(why, sizeof(why), "HTTP status %d", status);
	patroni_endpoint(cl, cl->endpoint, url, sizeof(url), &count);
	if (cl->patroni_ok || strcmp(cl->patroni_error, why) != 0)
		log_warning("cluster %s: Patroni at %s: %s", cl->name, url, why);
	snprintf(cl->patroni_error, sizeof(cl->patroni_error), "%s", why);
	cl->patroni_ok = false;
	/* The next endpoint at once; around the whole list, wait one interval. */
	cl->endpoint = count > 0 ? (cl->endpoint + 1) % count : 0;
	cl->next_poll_us = clock_now_us() +
			   (cl->endpoint == 0 ? (uint64_t)(cl->entry->patroni_poll_interval * 1e6)
					      : 0);
}

static void start_poll(struct cluster *cl)
{
	const struct cluster_entry *e = cl->entry;
	struct http_opts o = {
		.timeout = e->health_check_timeout,
		.username = e->patroni_user,
		.password = e->patroni_password,
		.ca_file = e->patroni_ca_file,
		.cert_file = e->patroni_cert_file,
		.key_file = e->patroni_key_file,
		.verify = true,
	};
	char base[512], url[600];
	int count;

	patroni_endpoint(cl, cl->endpoint, base, sizeof(base), &count);
	if (count == 0)
		return;
	snprintf(url, sizeof(url), "%s/cluster", base);
	if (!cl->http && !(cl->http = http_new(cl->topo->loop)))
		return;
	if (http_get(cl->http, url, &o, on_patroni_done, cl))
		cl->poll_running = true;
}

/* ---- schedule ---- */

static void on_tick(void *arg)
{
	struct cluster *cl = arg;
	uint64_t now = clock_now_us();

	if (cl->removed)
		return;
	follow_handover(cl);
	if (has_patroni(cl) && !cl->poll_running && now >= cl->next_poll_us)
		start_poll(cl);
	for (int i = 0; i < cl->n_members; i++) {
		struct member *m = &cl->members[i];

		if (m->listed && !m->check_running && now >= m->next_check_us)
			start_check(m);
	}
}

/* ---- lifecycle ---- */

void topo_init(struct topo *t, struct evloop *loop, struct dns *dns)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->dns = dns;
	list_init(&t->clusters);
}

bool topo_subscribe(struct topo *t, topo_changed_fn fn, void *arg)
{
	if (t->n_subscribers == TOPO_MAX_SUBSCRIBERS)
		return false;
	t->subscribers[t->n_subscribers++] = (struct topo_subscriber){ fn, arg };
	return true;
}

struct cluster *topo_find(struct topo *tp, const char *name)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &tp->clusters) {
		struct cluster *cl = list_entry(n, struct cluster, node);

		if (strcmp(cl->name, name) == 0)
			return cl;
	}
	return NULL;
}

/*
 * Who the health checks of cl log in as. health_check_user where set (with health_check_password
 * or the auth_file's); else as the first database entry routed through cl that names a user, with
 * its password: a database written the natural way (cluster=, user=, password=) is checked with
 * what its servers log in with. Else postgres. The database is health_check_dbname where set,
 * else that entry's database, else postgres.
 */
static void choose_check_login(struct cluster *cl, const struct config *cfg)
{
	const struct cluster_entry *e = cl->entry;
	const struct db_entry *db = NULL;

	for (int i = 0; i < cfg->n_dbs && !db; i++) {
		if (strcmp(cfg->dbs[i].cluster, cl->name) == 0 && cfg->dbs[i].user[0])
			db = &cfg->dbs[i];
	}
	if (e->health_check_user[0] || !db) {
		cl->check_user = e->health_check_user[0] ? e->health_check_user : "postgres";
		cl->check_password = e->health_check_password;
	} else {
		cl->check_user = db->user;
		cl->check_password = e->health_check_password[0] ? e->health_check_password
								 : db->password;
	}
	if (e->health_check_dbname[0])
		cl->check_dbname = e->health_check_dbname;
	else if (db)
		cl->check_dbname = db->dbname[0] ? db->dbname : db->name;
	else
		cl->check_dbname = "postgres";
}

static struct cluster *cluster_new(struct topo *tp, const struct cluster_entry *e)
{
	struct cluster *cl = calloc(1, sizeof(*cl));

	if (!cl)
		return NULL;
	cl->topo = tp;
	cl->entry = e;
	cl->primary = -1;
	handover_init(&cl->handover);
	snprintf(cl->name, sizeof(cl->name), "%s", e->name);
	if (!evloop_timer_start(tp->loop, &cl->tick, TICK_INTERVAL, on_tick, cl)) {
		free(cl);
		return NULL;
	}
	list_add_tail(&tp->clusters, &cl->node);
	log_info("cluster %s: following %s %s", cl->name, e->patroni[0] ? "Patroni at" : "hosts",
		 e->patroni[0] ? e->patroni : e->hosts);
	return cl;
}

/*
 * What a cluster removed from the config keeps following until its databases and clients are
 * gone: no members to learn, writes that still wait give up at once.
 */
static const struct cluster_entry removed_entry = {
	.name = "",
	.patroni = "",
	.hosts = "",
	.weights = "",
	.patroni_user = "",
	.patroni_password = "",
	.patroni_ca_file = "",
	.patroni_cert_file = "",
	.patroni_key_file = "",
	.health_check_user = "",
	.health_check_password = "",
	.health_check_dbname = "",
	.read_from = READ_FROM_REPLICAS,
	.read_fallback = FALLBACK_PRIMARY,
	.primary_wait_timeout = 0.001,
	.health_check_interval = 1,
	.health_check_timeout = 1,
	.patroni_poll_interval = 1,
};

static void cluster_stop(struct cluster *cl, bool loop_alive)
{
	for (int i = 0; i < cl->n_members; i++) {
		if (cl->members[i].check)
			pgquery_free(cl->members[i].check, loop_alive);
		cl->members[i].check = NULL;
		cl->members[i].check_running = false;
	}
	if (cl->http)
		http_free(cl->http, loop_alive);
	cl->http = NULL;
	cl->poll_running = false;
	if (loop_alive)
		evloop_timer_stop(cl->topo->loop, &cl->tick);
}

bool topo_apply_config(struct topo *tp, const struct config *cfg)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &tp->clusters) {
		struct cluster *cl = list_entry(n, struct cluster, node);
		const struct cluster_entry *e = config_find_cluster(cfg, cl->name);

		if (!e) {
			if (!cl->removed)
				log_info("cluster %s removed from config", cl->name);
			cluster_stop(cl, true);
			cl->removed = true;
			cl->entry = &removed_entry;
			cl->check_user = cl->check_password = cl->check_dbname = "";
			continue;
		}
		if (cl->removed &&
		    !evloop_timer_start(tp->loop, &cl->tick, TICK_INTERVAL, on_tick, cl))
			return false;
		cl->removed = false;
		/* A check whose login or TLS changed reconnects at its next run (start_check). */
		cl->entry = e;
	}
	tp->cfg = cfg;
	for (int i = 0; i < cfg->n_clusters; i++) {
		struct cluster *cl = topo_find(tp, cfg->clusters[i].name);

		if (!cl && !(cl = cluster_new(tp, &cfg->clusters[i])))
			return false;
		choose_check_login(cl, cfg);
		if (!has_patroni(cl))
			sync_static_hosts(cl);
		for (int j = 0; j < cl->n_members; j++) {
			cl->members[j].weight = weight_of(cl->entry, &cl->members[j]);
			check_within_interval(&cl->members[j]);
		}
		/* Members gone from hosts = stop serving now, not at the next check. */
		recompute_roles(cl);
	}
	return true;
}

void topo_free_all(struct topo *tp, bool loop_alive)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &tp->clusters) {
		struct cluster *cl = list_entry(n, struct cluster, node);

		if (!cl->removed)
			cluster_stop(cl, loop_alive);
		list_del(&cl->node);
		free(cl);
	}
}
