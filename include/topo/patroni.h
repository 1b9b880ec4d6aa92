/*
 * patroni: parsing of Patroni's GET /cluster answer into a fixed-size description of the
 * members. Pure: no I/O, no allocation kept, no logging, so it can be fed any bytes (tests, fuzz).
 *
 * What is read (Patroni 3.0): members[] with name, host, port, role, state, timeline, lag
 * (a byte count, or "unknown" when Patroni does not know the member's WAL position; absent for
 * the leader), tags (only the tags set to a non-default value appear), api_url; and
 * scheduled_switchover {at, from, to}. Everything else is ignored. Patroni lists members sorted
 * by name; that order is kept.
 */
#ifndef PGMUX_TOPO_PATRONI_H
#define PGMUX_TOPO_PATRONI_H

#include <stdbool.h>
#include <stddef.h>

#define PATRONI_MAX_MEMBERS 16

enum patroni_role {
	PATRONI_ROLE_OTHER, /* a role this version does not know (or none given) */
	PATRONI_ROLE_LEADER,
	PATRONI_ROLE_STANDBY_LEADER, /* leader of a standby cluster: replicates, takes no writes */
	PATRONI_ROLE_REPLICA,
	PATRONI_ROLE_SYNC_STANDBY,
};

struct patroni_member {
	char name[64];
	char host[256];
	int port; /* 5432 when absent */
	enum patroni_role role;
	char state[32];     /* "running", "streaming", "stopped", "starting", ... as given */
	int timeline;       /* -1 unknown */
	long long lag;      /* bytes; -1 when absent or "unknown" */
	bool noloadbalance; /* tags.noloadbalance true */
	bool nofailover;
	char api_url[256]; /* "" when absent (Patroni may write null) */
};

struct patroni_cluster {
	int n_members;
	struct patroni_member members[PATRONI_MAX_MEMBERS];
	bool switchover_scheduled; /* "scheduled_switchover" present */
	double switchover_at;      /* its "at" as unix seconds (ISO 8601 with offset, e.g.
					"2026-11-22T10:00:00+00:00"); 0 when absent or unreadable */
	char switchover_from[64];  /* its "from" member; "" when absent */
};

/*
 * Parse a /cluster body of len bytes (need not be NUL-terminated) into *out, which is cleared
 * first. False on malformed JSON or shape, with err saying what: the body is not an object,
 * "members" is missing or not an array, a member is not an object, or a field pgmux reads has
 * the wrong type or range. Unknown fields are ignored; members beyond PATRONI_MAX_MEMBERS are
 * ignored; a member without a name or host (or with one too long to hold whole) is skipped.
 * A state too long for its field is cut at a UTF-8 character boundary; an api_url or switchover
 * "from" too long is left "" rather than cut into something else. On false, *out holds no
 * members. err may be NULL.
 */
bool patroni_parse_cluster(const char *json, size_t len, struct patroni_cluster *out, char *err,
			   size_t errlen);

/* "leader", "standby_leader", "replica", "sync_standby" or "other" (static strings). */
const char *patroni_role_name(enum patroni_role r);

#endif
