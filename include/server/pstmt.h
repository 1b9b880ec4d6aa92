/*
 * pstmt: the bookkeeping of named prepared statements in transaction pooling, with no protocol
 * and no connections: the registry of shared statements (one per definition, known to servers
 * as "pgmux_<id>"), each client's map from its own names to them, and each server's set of the
 * ones prepared there (least recently used first out).
 *
 * Invariants: a shared statement's refs counts the client map entries and server set entries
 * holding it; it is unlinked from the registry and freed when the last goes, never before.
 * Names in a client map are unique. A server set holds a statement at most once.
 *
 * Lookups are hashed: the registry's chains by definition and a client's names use a hash keyed
 * per process (a client cannot choose names that collide), a server's set one by address. Each
 * array's index (slots) holds entry index + 1 per slot, 0 for free; it has a power-of-two
 * number of slots, at least twice the entries, and is rebuilt as the array moves entries.
 */
#ifndef PGMUX_SERVER_PSTMT_H
#define PGMUX_SERVER_PSTMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pstmt {
	struct pstmt *next; /* hash chain */
	uint64_t id;
	uint32_t hash;
	uint32_t refs;        /* client map entries and servers holding it */
	uint32_t client_refs; /* of which client map entries */
	bool parses;   /* a server accepted its Parse: a client's Parse may be answered early */
	char name[32]; /* on servers: "pgmux_<id>" */
	/*
	 * What another module learned from the definition, kept as long as the statement
	 * (client/shard.c: where its shard key is); freed with note_free. NULL: nothing.
	 */
	void *note;
	void (*note_free)(void *note);
	size_t def_len;
	uint8_t def[]; /* Parse body after the name: query, parameter count and types */
};

struct pstmt_registry {
	struct pstmt **buckets;
	size_t nbuckets; /* a power of two, grown to stay above count */
	size_t count;
	size_t client_held; /* statements some client's name holds (client_refs > 0) */
	uint32_t seed;      /* keys the hashes of definitions and client names */
	uint64_t next_id;
	/*
	 * Orders Parse events. A server's copy older than a client's Parse may predate DDL the
	 * client already sees, so it is parsed again before that client uses it: no client of pgmux
	 * gets "cached plan must not change result type" where a direct connection would not.
	 */
	uint64_t seq;
};

struct cstmt {
	char *name;
	uint32_t hash; /* of name, keyed by the map's seed */
	struct pstmt *ps;
	uint64_t parsed_seq; /* when the client sent its Parse (registry sequence) */
	uint32_t shape;      /* the result columns the client was told (Describe); 0 = not yet */
};

/* A client's statements by its own names. */
struct client_pstmts {
	struct cstmt *items;
	size_t n, cap;
	uint32_t *slots; /* index of items by name (see above) */
	size_t nslots;
	uint32_t seed; /* the registry's, taken at the first name */
	size_t bytes;  /* names and definitions held, for max_client_prepared_bytes */
};

/* The shared statements prepared on one server, with when each was last used. */
struct server_pstmts {
	struct pstmt **items;
	uint64_t *last_used;
	uint64_t *prepared_seq; /* when each was parsed on this server (registry sequence) */
	uint32_t *shape;        /* its result columns as this server described them; 0 = unknown */
	size_t n, cap;
	uint32_t *slots; /* index of items by statement address (see above) */
	size_t nslots;
	uint64_t clock;
};

/* An empty registry (buckets allocated; none if out of memory: then nothing is ever found). */
void pstmt_registry_init(struct pstmt_registry *r);
/* Free every statement, referenced or not: only when no client or server is left. */
void pstmt_registry_destroy(struct pstmt_registry *r);
/* The shared statement of this definition (borrowed: alive while referenced), or NULL. */
struct pstmt *pstmt_registry_find(struct pstmt_registry *r, const uint8_t *def, size_t len);
/*
 * The shared statement of this definition, made if new (then with refs 0: the caller must hand
 * it to client_pstmts_set or server_pstmts_add at once), or NULL when out of memory.
 */
struct pstmt *pstmt_registry_get(struct pstmt_registry *r, const uint8_t *def, size_t len);

/* What a client's names may hold, and the registry as a whole (0: no limit). */
struct pstmt_limits {
	size_t client_count; /* names per client */
	size_t client_bytes; /* per client: each name and its statement's definition, in bytes */
	size_t total_count;  /* shared statements some client holds (registry client_held) */
};

enum pstmt_limit {
	PSTMT_WITHIN,
	PSTMT_CLIENT_COUNT,
	PSTMT_CLIENT_BYTES,
	PSTMT_TOTAL_COUNT,
};

/*
 * Would naming the definition def under name in the client's map stay within lim? A name that
 * exists is replaced: what it held is freed first.
 */
enum pstmt_limit client_pstmts_check(const struct pstmt_registry *r, const struct client_pstmts *m,
				     const char *name, const uint8_t *def, size_t def_len,
				     const struct pstmt_limits *lim);

/* The client's entry for name (borrowed: valid until the map changes), or NULL. */
const struct cstmt *client_pstmts_find(const struct client_pstmts *m, const char *name);
/*
 * Name ps in the client's map (replacing what the name held), stamped with a new registry
 * sequence and no known shape. False when out of memory (the map is unchanged).
 */
bool client_pstmts_set(struct pstmt_registry *r, struct client_pstmts *m, const char *name,
		       struct pstmt *ps);
/* Drop the client's name (Close, DEALLOCATE); its statement goes if nothing else holds it. */
void client_pstmts_remove(struct pstmt_registry *r, struct client_pstmts *m, const char *name);
/*
 * The client's Parse that made the name with this sequence failed (or was skipped): drop that
 * name if it still names ps. ps is only compared (it may be gone).
 */
void client_pstmts_forget_parse(struct pstmt_registry *r, struct client_pstmts *m,
				const struct pstmt *ps, uint64_t seq);
/* Forget all of a client's names (DEALLOCATE ALL, DISCARD ALL, or the client is going away). */
void client_pstmts_clear(struct pstmt_registry *r, struct client_pstmts *m);
/* As client_pstmts_clear, and free the map itself (at close). */
void client_pstmts_free(struct pstmt_registry *r, struct client_pstmts *m);

/* Index of ps in the server's set, or -1. */
ssize_t server_pstmts_find(const struct server_pstmts *set, const struct pstmt *ps);
/* ps is now prepared on the server (parsed at registry sequence seq). False: out of memory. */
bool server_pstmts_add(struct server_pstmts *set, struct pstmt *ps, uint64_t seq);
/* Entry i was just used (it is the last the LRU order drops). */
void server_pstmts_use(struct server_pstmts *set, size_t i);
/* Entry i was parsed again at registry sequence seq: used now, its result shape unknown. */
void server_pstmts_reparsed(struct server_pstmts *set, size_t i, uint64_t seq);
/* Drop entry i (moves the last entry into its place). */
void server_pstmts_remove_at(struct pstmt_registry *r, struct server_pstmts *set, size_t i);
/* Index of the least recently used entry (the set must not be empty). */
size_t server_pstmts_lru(const struct server_pstmts *set);
/* Drop ps from the server's set if it is there (its Parse failed there). */
void server_pstmts_forget(struct pstmt_registry *r, struct server_pstmts *set, struct pstmt *ps);
/* The server lost its statements (DISCARD ALL, reset) or is closing. */
void server_pstmts_clear(struct pstmt_registry *r, struct server_pstmts *set);
/* As server_pstmts_clear, and free the set itself (at close). */
void server_pstmts_free(struct pstmt_registry *r, struct server_pstmts *set);

#endif
