/*
 * reshard/mover: runs bucket moves (shard/move.h) on the loop, for [shards.NAME] sections whose
 * map is a file or in etcd. Each move has its own libpq connections (ev/pgquery) to the
 * source's and the target's primary, logging in as the clusters' health-check users (who must
 * be allowed to create publications on the source and subscriptions on the target), and
 * advances one query at a time, polling progress every MOVER_POLL seconds.
 *
 * Clients ask the mover, at the start of each unit of work, whether a key's bucket is moving:
 * while a move holds its buckets the unit waits (its message stays unread) and goes on when
 * the map has switched, or the move failed, to wherever the map in force then says. A hold
 * for a move another pgmux coordinates (reshard/movecoord.h) is answered the same way.
 *
 * Moves past their check are written to a state file beside the map ("<map file>.moves") at
 * every step, so that a pgmux started again rolls back those not switched yet and lists the
 * others as done (reshard_moves_recover).
 *
 * A section whose map is in etcd is shared by every pgmux reading the same key: its moves
 * keep no state file; the hold and the switch are coordinated through etcd
 * (reshard/movecoord.h): the move's record asks every other instance to hold, the switch waits
 * for all of them to confirm within the hold's timeout (else the move rolls back), and the next
 * map is written over the key with a compare-and-swap; each instance's watch puts it in force.
 */
#ifndef PGMUX_RESHARD_MOVER_H
#define PGMUX_RESHARD_MOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard/move.h"

struct client;
struct reshard;

/* How bucket of section set is covered by a move now. */
enum move_cover reshard_moves_bucket(struct reshard *rs, const char *set, uint32_t bucket);

/* Keep c (its unit's first message unread) until its bucket's move switches or fails. */
bool reshard_moves_hold_client(struct reshard *rs, struct client *c);

/* c closes: forget it if it is held. */
void reshard_moves_forget_client(struct reshard *rs, struct client *c);

/*
 * MOVE BUCKETS set buckets TO shard: checks the request and starts the move. false: err says why
 * (and *sqlstate its SQLSTATE); true: *id is the new move's id.
 */
bool reshard_move_start(struct reshard *rs, const char *set, const char *buckets, const char *shard,
			int *id, const char **sqlstate, char *err, size_t errlen);

/* MOVE ABORT id (before the switch) and MOVE CLEANUP id (after it). false: err says why. */
bool reshard_move_abort(struct reshard *rs, int id, char *err, size_t errlen);
bool reshard_move_cleanup(struct reshard *rs, int id, char *err, size_t errlen);

/* What SHOW MOVES prints of one move; the strings live until fn returns. */
struct move_view {
	int id;
	const char *set, *buckets, *from, *to, *step, *error;
	const char *warning; /* what the check found that may bite later ("" none) */
	int64_t rows; /* rows of the buckets on the target (copied), or deleted at clean-up */
	int64_t lag;  /* bytes the target is behind the source; -1 unknown */
	int held;     /* units of work waiting for the switch */
	int confirmed, instances; /* coordinated: other instances that confirmed the hold, of
				     those registered (-1 unknown yet / not coordinated) */
	uint64_t started_us;
};

typedef void (*reshard_move_fn)(void *arg, const struct move_view *v);

/* fn for each move, oldest first (SHOW MOVES). */
void reshard_moves_each(struct reshard *rs, reshard_move_fn fn, void *arg);

/* Is a move under way (not done, cleaned or failed)? A takeover waits for none to be. */
bool reshard_moves_active(struct reshard *rs);

/*
 * At start, once the listening sockets are this process's (so never while another pgmux
 * still runs its moves): the moves a previous pgmux left unfinished ("<map file>.moves" beside
 * each map file): one whose buckets the map already gives to its target is done (MOVE CLEANUP
 * remains); any other is rolled back, once the shards' primaries are known.
 */
void reshard_moves_recover(struct reshard *rs);

enum move_adoption {
	MOVE_ADOPTED,       /* done or rolled back as at start, and this process's from now on */
	MOVE_KNOWN,         /* this process has it already, or cannot yet (no map in force) */
	MOVE_ADOPT_REFUSED, /* it does not fit the map or the section: logged, left alone */
};

/*
 * A move of set that another process coordinated and left unfinished, from its state in etcd
 * (line as a state file's, coordinator: who left it).
 */
enum move_adoption reshard_moves_adopt(struct reshard *rs, const char *set, const char *line,
				       const char *coordinator);

/* Stop every move's queries and free them (at exit). */
void reshard_moves_free(struct reshard *rs);

#endif
