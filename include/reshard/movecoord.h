/*
 * reshard/movecoord: bucket moves of a [shards.NAME] section whose map is in etcd, coordinated
 * across every pgmux that reads the same map key, so that no instance can write to the source
 * after another has written to the target.
 *
 * Under the map key K, in etcd:
 *   K/instances/ID          each pgmux using the section, under a lease it keeps alive
 *                           (ID = host:port:pid); gone some seconds after the process is
 *   K/moves/NAME            a move's record (shard/etcd.h: buckets, from, to, step, version,
 *                           coordinator), under the coordinator's lease
 *   K/moves/NAME/held/ID    instance ID holds the move's buckets and runs nothing on them
 *   K/state/NAME            a move's state line ("move NAME BUCKETS FROM TO STEP by ID"),
 *                           under no lease, from its copy until it is cleaned or failed
 *
 * Every instance watches K and the keys under it, and at each change reads them all (the map
 * and everything under it, in one consistent answer); it reads them every second besides, and
 * every MOVECOORD_POLL seconds while the watch is not in place. The instance where MOVE BUCKETS
 * runs (the coordinator) writes the record with step hold; every other instance then holds new
 * units of work on the moving buckets, waits for its own running ones (begun before it held) to
 * end, and writes its confirmation. The coordinator switches only once every registered
 * instance confirmed: it writes the next map version over K with a compare-and-swap on K's
 * revision, and every instance's watch of K puts it in force. An instance releases its held
 * units when the record says done or aborted (or is gone) and the map it has in force is at
 * least the map etcd held in that same answer. One that never confirmed releases
 * MOVECOORD_FOLLOW_MARGIN after move_hold_timeout, to the map it has, whatever etcd says (the
 * coordinator cannot switch without its confirmation); one that confirmed (or sent its
 * confirmation) holds until it learns the outcome from etcd.
 *
 * A state whose coordinator is no longer registered is an orphan: the process killed or stopped
 * mid-move. The first pgmux started again on the same host and port (its id but for the pid)
 * adopts it (reshard_moves_adopt): it rolls the move back, or finds it done, as a state file's.
 * Only that one: another instance cannot know that the coordinator is gone rather than cut off
 * from etcd and still running its move.
 *
 * All state hangs off struct reshard (rs->movecoord); requests go out from the loop and nothing
 * is called back before a function here returns, except where said.
 */
#ifndef PGMUX_RESHARD_MOVECOORD_H
#define PGMUX_RESHARD_MOVECOORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard/move.h"

struct client;
struct shards_entry;
struct reshard;

#define MOVECOORD_POLL 0.1     /* seconds between reads of the map key's prefix */
#define MOVECOORD_LEASE_TTL 10 /* seconds an instance's registration outlives it */
/* An unconfirmed hold is released this long after the section's move_hold_timeout. */
#define MOVECOORD_FOLLOW_MARGIN 5.0

/* Follow *rs->cfg: register in every etcd-mapped section, leave those gone. Logs problems. */
void reshard_coord_apply(struct reshard *rs);

/*
 * At a clean exit, when no client is left: revoke this instance's leases, so that its
 * registration (and anything under its lease) goes at once rather than when the lease
 * expires. left(arg) once etcd answered each, or MOVECOORD_LEAVE_TIMEOUT passed; false (left
 * is not called): nothing to revoke.
 */
#define MOVECOORD_LEAVE_TIMEOUT 1.0
bool reshard_coord_leave(struct reshard *rs, void (*left)(void *arg), void *arg);

/*
 * With etcd_outage = refuse: may this instance be unknown to a move's coordinator, or serve
 * with an older map than etcd's? True from FENCE_MARGIN seconds before its lease could have
 * expired (no renewal answered since) until it is registered again, etcd's answer shows it, and
 * the map in force is at least the one etcd holds. Its units of work on set are refused then.
 */
bool reshard_coord_fenced(struct reshard *rs, const struct shards_entry *set);

/* Stop every request, release every held client, free everything (at exit). */
void reshard_coord_free(struct reshard *rs);

/* Is this instance registered under set's map key (can it coordinate a move)? */
bool reshard_coord_ready(struct reshard *rs, const char *set);

/*
 * Coordinator: the move called name of set (buckets of the map, from -> to, writing map
 * version) holds: write its record. false (err): this instance is not registered in etcd yet.
 */
bool reshard_coord_hold(struct reshard *rs, const char *set, const char *name, const char *buckets,
			const char *from, const char *to, uint64_t version, char *err,
			size_t errlen);

/*
 * Coordinator: how many other instances are registered (*want) and how many of them confirmed
 * the hold (*got), as read after the record was written; *want is -1 until then.
 */
void reshard_coord_confirmed(struct reshard *rs, const char *set, const char *name, int *got,
			     int *want);

/*
 * Coordinator: put text (the next map) over the map key if it was last written at revision.
 * done(arg, true) once etcd took it; done(arg, false, why) when it did not (the map changed
 * meanwhile, or etcd failed: the outcome is then unknown and said so). false: not sent.
 */
typedef void (*reshard_coord_switch_fn)(void *arg, bool switched, const char *why);
bool reshard_coord_switch(struct reshard *rs, const char *set, const char *text, int64_t revision,
			  reshard_coord_switch_fn done, void *arg);

/*
 * The state of move name of set (line, "move NAME BUCKETS FROM TO STEP"), or its end (NULL):
 * put in etcd or deleted there, tried again until etcd takes it. false: not sent (logged).
 */
bool reshard_coord_save(struct reshard *rs, const char *set, const char *name, const char *line);

/* Coordinator: the move is over (switched, or aborted): say so in its record, for everyone. */
void reshard_coord_end(struct reshard *rs, const char *set, const char *name, bool switched);

/* Does a move coordinated by another instance hold bucket of set here? sealed: confirmed. */
bool reshard_coord_holds(struct reshard *rs, const char *set, uint32_t bucket, bool *sealed);

/*
 * Keep c (its unit's first message unread) until the newest such hold ends; it is then read
 * again against the map in force. false: no hold (or out of memory).
 */
bool reshard_coord_hold_client(struct reshard *rs, struct client *c);

/* c closes: forget it if it is held. */
void reshard_coord_forget_client(struct reshard *rs, struct client *c);

#endif
