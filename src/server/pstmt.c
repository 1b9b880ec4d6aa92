/*
 * pstmt: the statement registry, a client's names and a server's set (see server/pstmt.h).
 */
#include "server/pstmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the registry of shared statements ---- */

void pstmt_registry_init(struct pstmt_registry *r)
{
	memset(r, 0, sizeof(*r));
	r->nbuckets = 1024;
	r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
}

void pstmt_registry_destroy(struct pstmt_registry *r)
{
	for (size_t i = 0; r->buckets && i < r->nbuckets; i++) {
		struct pstmt *ps = r->buckets[i], *next;

		for (; ps; ps = next) {
			next = ps->next;
			free(ps);
		}
	}
	free(r->buckets);
	memset(r, 0, sizeof(*r));
}

static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The shared statement of this definition, or NULL. */
struct pstmt *pstmt_registry_find(struct pstmt_registry *r, const uint8_t *def, size_t len)
{
	uint32_t h = hash_bytes(def, len);
	struct pstmt *ps;

	if (!r->buckets)
		return NULL;
	for (ps = r->buckets[h % r->nbuckets]; ps; ps = ps->next)
		if (ps->hash == h && ps->def_len == len && memcmp(ps->def, def, len) == 0)
			return ps;
	return NULL;
}

/* The shared statement of this definition, made if new (unreferenced), or NULL (no memory). */
struct pstmt *pstmt_registry_get(struct pstmt_registry *r, const uint8_t *def, size_t len)
{
	uint32_t h = hash_bytes(def, len);
	struct pstmt **slot, *ps = pstmt_registry_find(r, def, len);

	if (ps || !r->buckets)
		return ps;
	slot = &r->buckets[h % r->nbuckets];
	ps = malloc(sizeof(*ps) + len);
	if (!ps)
		return NULL;
	ps->hash = h;
	ps->refs = 0;
	ps->parses = false;
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

static void pstmt_unref(struct pstmt_registry *r, struct pstmt *ps)
{
	struct pstmt **p;

	if (--ps->refs > 0)
		return;
	for (p = &r->buckets[ps->hash % r->nbuckets]; *p; p = &(*p)->next) {
		if (*p == ps) {
			*p = ps->next;
			break;
		}
	}
	r->count--;
	free(ps);
}

/* ---- a client's names ---- */

struct cstmt *client_pstmts_find(struct client_pstmts *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->items[i].name, name) == 0)
			return &m->items[i];
	return NULL;
}

bool client_pstmts_set(struct pstmt_registry *r, struct client_pstmts *m, const char *name, struct pstmt *ps)
{
	struct cstmt *e = client_pstmts_find(m, name);

	if (e) {
		pstmt_ref(ps);
		pstmt_unref(r, e->ps);
		e->ps = ps;
		e->parsed_seq = ++r->seq;
		e->shape = 0;
		return true;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct cstmt *items = realloc(m->items, cap * sizeof(*items));

		if (!items)
			return false;
		m->items = items;
		m->cap = cap;
	}
	e = &m->items[m->n];
	e->name = strdup(name);
	if (!e->name)
		return false;
	e->ps = ps;
	e->parsed_seq = ++r->seq;
	e->shape = 0;
	pstmt_ref(ps);
	m->n++;
	return true;
}

static void client_pstmts_remove_at(struct pstmt_registry *r, struct client_pstmts *m, struct cstmt *e)
{
	pstmt_unref(r, e->ps);
	free(e->name);
	*e = m->items[--m->n];
}

void client_pstmts_remove(struct pstmt_registry *r, struct client_pstmts *m, const char *name)
{
	struct cstmt *e = client_pstmts_find(m, name);

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

ssize_t server_pstmts_find(const struct server_pstmts *set, const struct pstmt *ps)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->items[i] == ps)
			return (ssize_t)i;
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
		pstmt_unref(r, m->items[i].ps);
		free(m->items[i].name);
	}
	m->n = 0;
}

void client_pstmts_free(struct pstmt_registry *r, struct client_pstmts *m)
{
	client_pstmts_clear(r, m);
	free(m->items);
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
	memset(set, 0, sizeof(*set));
}

void server_pstmts_forget(struct pstmt_registry *r, struct server_pstmts *set, struct pstmt *ps)
{
	ssize_t i = server_pstmts_find(set, ps);

	if (i >= 0)
		server_pstmts_remove_at(r, set, (size_t)i);
}

