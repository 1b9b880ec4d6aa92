/*
 * pstmt: the statement registry, a client's names and a server's set (see server/pstmt.h).
 */
#include "server/pstmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- hashing ---- */

/* FNV-1a from a keyed start: the keyed start makes colliding inputs differ per process. */
static uint32_t hash_bytes(uint32_t seed, const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u ^ seed;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	/* Mix the last bytes into the low bits, which pick the slot. */
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	return h;
}

static uint32_t hash_name(uint32_t seed, const char *name)
{
	return hash_bytes(seed, (const uint8_t *)name, strlen(name));
}

/* Addresses are pgmux's own: Fibonacci hashing spreads them. */
static uint32_t hash_ptr(const void *p)
{
	return (uint32_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> 32);
}

static uint32_t random_seed(void)
{
	uint32_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* No entropy yet (early boot): vary at least per process. */
	return (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
}

/* ---- an index of array entries (see "slots" in server/pstmt.h) ---- */

/* The hash of entry i of an array (a client map or a server set). */
typedef uint32_t (*hash_at_fn)(const void *array, size_t i);

static void index_put(uint32_t *slots, size_t nslots, uint32_t h, size_t i)
{
	size_t k = h & (nslots - 1);

	while (slots[k])
		k = (k + 1) & (nslots - 1);
	slots[k] = (uint32_t)i + 1;
}

/* The slot holding entry i (it must be there). */
static size_t index_slot_of(const uint32_t *slots, size_t nslots, uint32_t h, size_t i)
{
	size_t k = h & (nslots - 1);

	while (slots[k] != i + 1)
		k = (k + 1) & (nslots - 1);
	return k;
}

/* Room for n entries: at least 2n slots, rebuilt from the n_now entries there are. */
static bool index_reserve(uint32_t **slots, size_t *nslots, size_t n, const void *array,
			  hash_at_fn hash_at, size_t n_now)
{
	size_t want = *nslots ? *nslots : 16;
	uint32_t *fresh;

	if (*nslots >= 2 * n)
		return true;
	while (want < 2 * n)
		want *= 2;
	fresh = calloc(want, sizeof(*fresh));
	if (!fresh)
		return false;
	for (size_t i = 0; i < n_now; i++)
		index_put(fresh, want, hash_at(array, i), i);
	free(*slots);
	*slots = fresh;
	*nslots = want;
	return true;
}

/*
 * Free slot k, moving later entries of its probe run back so that every entry stays reachable
 * from its home slot (deletion without tombstones).
 */
static void index_delete(uint32_t *slots, size_t nslots, size_t k, const void *array,
			 hash_at_fn hash_at)
{
	size_t mask = nslots - 1, j = k;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!slots[j])
			break;
		home = hash_at(array, slots[j] - 1) & mask;
		/* The entry at j may move to k unless its home lies cyclically in (k, j]. */
		if (k <= j ? (home <= k || home > j) : (home <= k && home > j)) {
			slots[k] = slots[j];
			k = j;
		}
	}
	slots[k] = 0;
}

/*
 * Entry i leaves the array and the last one takes its place (the arrays remove by swapping):
 * the index follows.
 */
static void index_remove_swap(uint32_t *slots, size_t nslots, size_t i, size_t last,
			      const void *array, hash_at_fn hash_at)
{
	index_delete(slots, nslots, index_slot_of(slots, nslots, hash_at(array, i), i), array,
		     hash_at);
	if (i != last)
		slots[index_slot_of(slots, nslots, hash_at(array, last), last)] = (uint32_t)i + 1;
}

/* ---- the registry of shared statements ---- */

void pstmt_registry_init(struct pstmt_registry *r)
{
	memset(r, 0, sizeof(*r));
	r->nbuckets = 1024;
	r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
	r->seed = random_seed();
}

static void pstmt_free(struct pstmt *ps)
{
	if (ps->note_free)
		ps->note_free(ps->note);
	free(ps);
}

void pstmt_registry_destroy(struct pstmt_registry *r)
{
	for (size_t i = 0; r->buckets && i < r->nbuckets; i++) {
		struct pstmt *ps = r->buckets[i], *next;

		for (; ps; ps = next) {
			next = ps->next;
			pstmt_free(ps);
		}
	}
	free(r->buckets);
	memset(r, 0, sizeof(*r));
}

/* The shared statement of this definition, or NULL. */
struct pstmt *pstmt_registry_find(struct pstmt_registry *r, const uint8_t *def, size_t len)
{
	uint32_t h = hash_bytes(r->seed, def, len);
	struct pstmt *ps;

	if (!r->buckets)
		return NULL;
	for (ps = r->buckets[h & (r->nbuckets - 1)]; ps; ps = ps->next)
		if (ps->hash == h && ps->def_len == len && memcmp(ps->def, def, len) == 0)
			return ps;
	return NULL;
}

/* More statements than buckets: twice the buckets (chains stay short). Out of memory: as is. */
static void registry_grow(struct pstmt_registry *r)
{
	size_t n = r->nbuckets * 2;
	struct pstmt **fresh = calloc(n, sizeof(*fresh));

	if (!fresh)
		return;
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct pstmt *ps = r->buckets[i], *next;

		for (; ps; ps = next) {
			next = ps->next;
			ps->next = fresh[ps->hash & (n - 1)];
			fresh[ps->hash & (n - 1)] = ps;
		}
	}
	free(r->buckets);
	r->buckets = fresh;
	r->nbuckets = n;
}

/* The shared statement of this definition, made if new (unreferenced), or NULL (no memory). */
struct pstmt *pstmt_registry_get(struct pstmt_registry *r, const uint8_t *def, size_t len)
{
	uint32_t h = hash_bytes(r->seed, def, len);
	struct pstmt **slot, *ps = pstmt_registry_find(r, def, len);

	if (ps || !r->buckets)
		return ps;
	ps = malloc(sizeof(*ps) + len);
	if (!ps)
		return NULL;
	if (r->count >= r->nbuckets)
		registry_grow(r);
	slot = &r->buckets[h & (r->nbuckets - 1)];
	ps->hash = h;
	ps->refs = 0;
	ps->client_refs = 0;
	ps->parses = false;
	ps->note = NULL;
	ps->note_free = NULL;
	ps->id = ++r->next_id;
	snprintf(ps->name, sizeof(ps->name), "pgmux_%llu", (unsigned long long)ps->id);
	ps->def_len = len;
	memcpy(ps->def, def, len);
	ps->next = *slot;
	*slot = ps;
	r->count++;
	return ps;
}

static void pstmt_ref(struct pstmt *ps)
{
	ps->refs++;
}

/* A client's name takes or drops ps (counted apart for max_total_prepared_statements). */
static void client_ref(struct pstmt_registry *r, struct pstmt *ps)
{
	if (ps->client_refs++ == 0)
		r->client_held++;
	ps->refs++;
}

static void pstmt_unref(struct pstmt_registry *r, struct pstmt *ps);

static void client_unref(struct pstmt_registry *r, struct pstmt *ps)
{
	if (--ps->client_refs == 0)
		r->client_held--;
	pstmt_unref(r, ps);
}

static void pstmt_unref(struct pstmt_registry *r, struct pstmt *ps)
{
	struct pstmt **p;

	if (--ps->refs > 0)
		return;
	for (p = &r->buckets[ps->hash & (r->nbuckets - 1)]; *p; p = &(*p)->next) {
		if (*p == ps) {
			*p = ps->next;
			break;
		}
	}
	r->count--;
	pstmt_free(ps);
}

/* ---- a client's names ---- */

static uint32_t cstmt_hash_at(const void *array, size_t i)
{
	return ((const struct cstmt *)array)[i].hash;
}

/* What a name holds against max_client_prepared_bytes. */
static size_t entry_bytes(const char *name, const struct pstmt *ps)
{
	return strlen(name) + 1 + ps->def_len;
}

static ssize_t client_find_index(const struct client_pstmts *m, const char *name)
{
	uint32_t h;
	size_t k;

	if (!m->nslots)
		return -1;
	h = hash_name(m->seed, name);
	for (k = h & (m->nslots - 1); m->slots[k]; k = (k + 1) & (m->nslots - 1)) {
		const struct cstmt *e = &m->items[m->slots[k] - 1];

		if (e->hash == h && strcmp(e->name, name) == 0)
			return (ssize_t)m->slots[k] - 1;
	}
	return -1;
}

const struct cstmt *client_pstmts_find(const struct client_pstmts *m, const char *name)
{
	ssize_t i = client_find_index(m, name);

	return i >= 0 ? &m->items[i] : NULL;
}

/* As client_pstmts_find, for the changes below. */
static struct cstmt *client_entry(struct client_pstmts *m, const char *name)
{
	ssize_t i = client_find_index(m, name);

	return i >= 0 ? &m->items[i] : NULL;
}

enum pstmt_limit client_pstmts_check(const struct pstmt_registry *r, const struct client_pstmts *m,
				     const char *name, const uint8_t *def, size_t def_len,
				     const struct pstmt_limits *lim)
{
	ssize_t i = client_find_index(m, name);
	size_t freed = i >= 0 ? entry_bytes(name, m->items[i].ps) : 0;
	size_t bytes = m->bytes - freed + strlen(name) + 1 + def_len;

	if (i < 0 && lim->client_count && m->n >= lim->client_count)
		return PSTMT_CLIENT_COUNT;
	if (lim->client_bytes && bytes > lim->client_bytes)
		return PSTMT_CLIENT_BYTES;
	if (lim->total_count && r->client_held >= lim->total_count) {
		const struct pstmt *ps = pstmt_registry_find((struct pstmt_registry *)r, def,
							     def_len);

		/* One some client holds already costs nothing more. */
		if (!ps || !ps->client_refs)
			return PSTMT_TOTAL_COUNT;
	}
	return PSTMT_WITHIN;
}

bool client_pstmts_set(struct pstmt_registry *r, struct client_pstmts *m, const char *name,
		       struct pstmt *ps)
{
	struct cstmt *e = client_entry(m, name);

	if (e) {
		m->bytes = m->bytes - entry_bytes(name, e->ps) + entry_bytes(name, ps);
		client_ref(r, ps);
		client_unref(r, e->ps);
		e->ps = ps;
		e->parsed_seq = ++r->seq;
		e->shape = 0;
		return true;
	}
	if (!m->n)
		m->seed = r->seed;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct cstmt *items = realloc(m->items, cap * sizeof(*items));

		if (!items)
			return false;
		m->items = items;
		m->cap = cap;
	}
	if (!index_reserve(&m->slots, &m->nslots, m->n + 1, m->items, cstmt_hash_at, m->n))
		return false;
	e = &m->items[m->n];
	e->name = strdup(name);
	if (!e->name)
		return false;
	e->hash = hash_name(m->seed, name);
	e->ps = ps;
	e->parsed_seq = ++r->seq;
	e->shape = 0;
	client_ref(r, ps);
	index_put(m->slots, m->nslots, e->hash, m->n);
	m->bytes += entry_bytes(name, ps);
	m->n++;
	return true;
}

static void client_pstmts_remove_at(struct pstmt_registry *r, struct client_pstmts *m,
				    struct cstmt *e)
{
	size_t i = (size_t)(e - m->items);

	m->bytes -= entry_bytes(e->name, e->ps);
	index_remove_swap(m->slots, m->nslots, i, m->n - 1, m->items, cstmt_hash_at);
	client_unref(r, e->ps);
	free(e->name);
	*e = m->items[--m->n];
}

void client_pstmts_remove(struct pstmt_registry *r, struct client_pstmts *m, const char *name)
{
	struct cstmt *e = client_entry(m, name);

	if (e)
		client_pstmts_remove_at(r, m, e);
}

/*
 * The client's Parse that made the name with this sequence failed (or was skipped): PostgreSQL
 * would have no such statement. ps is only compared (it may be gone).
 */
void client_pstmts_forget_parse(struct pstmt_registry *r, struct client_pstmts *m,
				const struct pstmt *ps, uint64_t seq)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->items[i].ps == ps && m->items[i].parsed_seq == seq) {
			client_pstmts_remove_at(r, m, &m->items[i]);
			return;
		}
	}
}

/* ---- what a server has ---- */

static uint32_t server_hash_at(const void *array, size_t i)
{
	return hash_ptr(((struct pstmt *const *)array)[i]);
}

ssize_t server_pstmts_find(const struct server_pstmts *set, const struct pstmt *ps)
{
	size_t k;

	if (!set->nslots)
		return -1;
	for (k = hash_ptr(ps) & (set->nslots - 1); set->slots[k]; k = (k + 1) & (set->nslots - 1))
		if (set->items[set->slots[k] - 1] == ps)
			return (ssize_t)set->slots[k] - 1;
	return -1;
}

bool server_pstmts_add(struct server_pstmts *set, struct pstmt *ps, uint64_t seq)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct pstmt **items = realloc(set->items, cap * sizeof(*items));
		uint64_t *used;
		uint32_t *shape;

		if (!items)
			return false;
		set->items = items;
		used = realloc(set->last_used, cap * sizeof(*used));
		if (!used)
			return false;
		set->last_used = used;
		used = realloc(set->prepared_seq, cap * sizeof(*used));
		if (!used)
			return false;
		set->prepared_seq = used;
		shape = realloc(set->shape, cap * sizeof(*shape));
		if (!shape)
			return false;
		set->shape = shape;
		set->cap = cap;
	}
	if (!index_reserve(&set->slots, &set->nslots, set->n + 1, set->items, server_hash_at,
			   set->n))
		return false;
	index_put(set->slots, set->nslots, hash_ptr(ps), set->n);
	set->items[set->n] = ps;
	set->last_used[set->n] = ++set->clock;
	set->prepared_seq[set->n] = seq;
	set->shape[set->n] = 0;
	set->n++;
	pstmt_ref(ps);
	return true;
}

void server_pstmts_use(struct server_pstmts *set, size_t i)
{
	set->last_used[i] = ++set->clock;
}

void server_pstmts_reparsed(struct server_pstmts *set, size_t i, uint64_t seq)
{
	server_pstmts_use(set, i);
	set->prepared_seq[i] = seq;
	set->shape[i] = 0;
}

void server_pstmts_remove_at(struct pstmt_registry *r, struct server_pstmts *set, size_t i)
{
	index_remove_swap(set->slots, set->nslots, i, set->n - 1, set->items, server_hash_at);
	pstmt_unref(r, set->items[i]);
	set->items[i] = set->items[set->n - 1];
	set->last_used[i] = set->last_used[set->n - 1];
	set->prepared_seq[i] = set->prepared_seq[set->n - 1];
	set->shape[i] = set->shape[set->n - 1];
	set->n--;
}

size_t server_pstmts_lru(const struct server_pstmts *set)
{
	size_t best = 0;

	for (size_t i = 1; i < set->n; i++)
		if (set->last_used[i] < set->last_used[best])
			best = i;
	return best;
}

void client_pstmts_clear(struct pstmt_registry *r, struct client_pstmts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		client_unref(r, m->items[i].ps);
		free(m->items[i].name);
	}
	m->n = 0;
	m->bytes = 0;
	if (m->slots)
		memset(m->slots, 0, m->nslots * sizeof(*m->slots));
}

void client_pstmts_free(struct pstmt_registry *r, struct client_pstmts *m)
{
	client_pstmts_clear(r, m);
	free(m->items);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

void server_pstmts_clear(struct pstmt_registry *r, struct server_pstmts *set)
{
	while (set->n)
		server_pstmts_remove_at(r, set, set->n - 1);
}

void server_pstmts_free(struct pstmt_registry *r, struct server_pstmts *set)
{
	server_pstmts_clear(r, set);
	free(set->items);
	free(set->last_used);
	free(set->prepared_seq);
	free(set->shape);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

void server_pstmts_forget(struct pstmt_registry *r, struct server_pstmts *set, struct pstmt *ps)
{
	ssize_t i = server_pstmts_find(set, ps);

	if (i >= 0)
		server_pstmts_remove_at(r, set, (size_t)i);
}
