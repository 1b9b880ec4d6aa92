/*
 * topology: what pgmux knows of each replicated cluster — its members, which one is the
 * confirmed primary, which replicas are healthy and how far behind — and the one place where
 * that knowledge changes.
 *
 * Two sources feed it. Patroni's GET /cluster (polled every patroni_poll_interval, moving to the
 * next endpoint when one fails) names the members and the leader; for a `hosts =` cluster the
 * list is static. pgmux's own health checks (a persistent libpq connection per member) say what
 * each server itself believes: in recovery or not, its WAL position, how stale its replay is.
 *
 * A member is the confirmed primary only when both sources agree (Patroni names it leader, or
 * there is no Patroni, and the server says it is not in recovery) and no other member claims the
 * same: otherwise there is no primary and writes wait (fencing). Every change bumps the
 * cluster's version, is logged once with its cause, and is published to the subscribers
 * (topo_subscribe(): the pools, which close connections to a demoted primary and re-route
 * waiters). Topology never calls the pools by name.
 *
 * When the confirmed primary moves from one member to another, the change is told apart as a
 * switchover or a failover with the write pause it caused (topo/handover.h), logged once and
 * counted in the cluster's handover.
 *
 * Member state is written here only: others report evidence (topo_member_suspect(),
 * topo_member_is_standby()) or ban a replica from reads (topo_member_ban()).
 */
#ifndef PGMUX_TOPO_TOPOLOGY_H
#define PGMUX_TOPO_TOPOLOGY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"
#include "ev/loop.h"
#include "topo/handover.h"
#include "topo/patroni.h"

struct cluster_entry;
struct config;
struct dns;
struct http;
struct pgquery;

#define TOPO_MAX_MEMBERS 16

enum member_role {
	ROLE_UNKNOWN, /* not usable: unreachable, unconfirmed, or the sources disagree */
	ROLE_PRIMARY, /* the confirmed primary: takes writes */
	ROLE_REPLICA, /* a standby: may take reads */
};

struct member {
	struct cluster *cl;
	int idx;
	char name[64]; /* Patroni's member name, or host:port */
	char host[256];
	int port;
	bool listed;                    /* in the latest member list (Patroni's, or hosts =) */
	enum patroni_role patroni_role; /* PATRONI_ROLE_OTHER without Patroni */
	char state[32];                 /* Patroni's state ("running", ...); "" without Patroni */
	int timeline;                   /* -1 unknown */
	bool noloadbalance;             /* Patroni tag: no reads */
	int weight;                     /* read weight (weights =), default 1; 0 = no reads */

	/* health checks */
	struct pgquery *check; /* persistent connection; NULL until the first check */
	char check_addr[256];  /* the numeric address (or socket directory) it connects to */
	bool check_running;
	uint64_t next_check_us;
	bool checked;              /* at least one check finished since the member appeared */
	bool healthy;              /* the last check succeeded */
	int in_recovery;           /* -1 unknown, 0 no (a primary), 1 yes (a standby) */
	uint64_t lsn;              /* WAL written (primary) or replayed (standby) at the check */
	int64_t lag_bytes;         /* behind the primary's last known position; -1 unknown */
	double lag_ms;             /* replay staleness; -1 unknown */
	uint64_t banned_until_us;  /* no reads before this (a check failed) */
	uint64_t checked_us;       /* when the last check finished (loop clock); 0 = never */
	uint64_t failing_since_us; /* first failed check since the last that passed; 0 = none */
	char last_error[160];

	enum member_role role;  /* what the router trusts, derived from all of the above */
	uint64_t primary_epoch; /* bumps when it stops being primary: see server.h epoch */
	int n_servers;          /* server connections to it, over all pools */
	int n_busy;             /* of those, linked to a client now (least_connections) */
};

/*
 * Where a unit of work goes: the index of a member of its cluster, or one of these (router_pick's
 * answers, a waiting client's target).
 */
#define TARGET_WAIT_PRIMARY (-1) /* the primary, once the cluster has a confirmed one */
#define TARGET_REFUSED (-2)      /* none: a read, read_fallback = error and no usable replica */

struct cluster {
	struct list_node node;
	struct topo *topo;
	char name[64];
	const struct cluster_entry
		*entry; /* effective settings, borrowed from the current config */
	struct member members[TOPO_MAX_MEMBERS];
	int n_members;
	int primary;           /* index of the confirmed primary, -1 when there is none */
	uint64_t version;      /* bumps on every change the router or pools must see */
	bool removed;          /* gone from the config */
	unsigned rr_next;      /* round_robin position */
	uint32_t random_state; /* load_balance = random */
	struct evloop_timer tick;

	/* Patroni */
	struct http *http;
	int endpoint; /* index into the patroni URL list being polled */
	bool poll_running;
	uint64_t next_poll_us;
	char leader[64]; /* Patroni's leader as last polled; "" none */
	bool patroni_ok; /* the last poll succeeded */
	char patroni_error[160];
	uint64_t leader_seen_us;  /* when Patroni first named the current leader */
	double switchover_at;     /* a scheduled switchover's time (unix s); 0 = none */
	char switchover_from[64]; /* the member it takes the primary role from; "" = the leader */
	char refused_member[64];  /* the last member left out for its host (logged once) */
	uint64_t polled_us;       /* when the last Patroni poll finished; 0 = never */

	/* Primary changes seen (switchovers, failovers) and the write pause each caused. */
	struct handover handover;

	/*
	 * Who the health checks log in as (borrowed from the config in force): the health_check_*
	 * keys where set, else the first database entry routed here that names a user.
	 */
	const char *check_user, *check_password, *check_dbname;
};

/*
 * A cluster changed in a way the router or the pools must see (its version bumped). Called from
 * the loop, and from inside topo_apply_config() and topo_member_ban(); cl stays valid.
 */
typedef void (*topo_changed_fn)(void *arg, struct cluster *cl);

#define TOPO_MAX_SUBSCRIBERS 4

/* One worker's topology: its clusters, what their checks need, and who hears of changes. */
struct topo {
	struct evloop *loop;
	struct dns *dns; /* resolves member host names; borrowed */
	/*
	 * The config in force, from topo_apply_config(); borrowed. Its auth_file's users give
	 * health_check_user's plain-text password.
	 */
	const struct config *cfg;
	struct list_node clusters;
	int n_subscribers;
	struct topo_subscriber {
		topo_changed_fn fn;
		void *arg;
	} subscribers[TOPO_MAX_SUBSCRIBERS];
};

/* Set up an empty topology over loop and dns (both borrowed). */
void topo_init(struct topo *t, struct evloop *loop, struct dns *dns);

/* Call fn(arg, cluster) after every change of any cluster of t. False: too many subscribers. */
bool topo_subscribe(struct topo *t, topo_changed_fn fn, void *arg);

/*
 * Is the primary being drained for a scheduled switchover? From SWITCHOVER_DRAIN_LEAD seconds
 * before the announced time, units of work that need the primary wait for the new one instead
 * of starting on a primary about to stop: in-flight transactions finish, none is cut off.
 */
#define SWITCHOVER_DRAIN_LEAD 1.0
bool topo_primary_draining(const struct cluster *cl);

/* Create, update and drop the clusters to match cfg (startup and RELOAD). False: out of memory. */
bool topo_apply_config(struct topo *t, const struct config *cfg);

/* The cluster called name, or NULL. */
struct cluster *topo_find(struct topo *t, const char *name);

/*
 * Can no member of cl take connections (no primary, no replica), with each listed member's
 * verdict coming from a health check (or, with no member listed, a Patroni poll) that finished at
 * or after since_us, and each failing member failing for patience seconds at least? Then why
 * says so with each member's last error, and waiting longer is pointless: the caller answers its
 * client at once. False while some member is usable, a verdict is older than since_us, or a
 * member has failed for less than patience (it may be restarting).
 */
bool topo_cluster_unusable(const struct cluster *cl, uint64_t since_us, double patience, char *why,
			   size_t len);

/* Something (a failed server login) suggests the member changed: check it now. */
void topo_member_suspect(struct member *m);

/* A server of the member said it is a standby: take that as fresh evidence, and check it. */
void topo_member_is_standby(struct member *m);

/*
 * No reads on the member before until_us (loop clock), for cause (logged): a login that the
 * health checks cannot see fail (pg_hba, too many connections for our user). Published to the
 * subscribers, so waiters for it go elsewhere.
 */
void topo_member_ban(struct member *m, uint64_t until_us, const char *cause);

/* Is the member fit for reads now (healthy, replica, not banned, lag within limits)? min_lsn:
 * the member must have replayed at least this far (read_your_writes); 0 = any. */
bool topo_replica_usable(const struct member *m, uint64_t min_lsn);

/* Stop every check and poll and free all clusters (exit). */
void topo_free_all(struct topo *t, bool loop_alive);

const char *member_role_name(enum member_role r);

#endif
