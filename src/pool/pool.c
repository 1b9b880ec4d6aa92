/*
 * pool: the one owner of client and server lifecycles, and server assignment (see pool/pool.h).
 *
 * client_set_state() and server_set_state() are static: other modules call verbs that say what
 * happened (pool_client_logged_in, pool_server_login_done, pool_unlink_for_replay, ...). Every
 * move is checked against client_moves/server_moves (ASSERT) and logged once with its cause.
 *
 * Invariants, checked by pool_check(): every client and server sits on the list of its state; the
 * counters n_* equal the lengths of those lists; a server is linked to a client exactly when both
 * are ACTIVE; a pool never holds more servers than its size (plus reserve), its database's
 * max_db_connections and its user's max_user_connections allow.
 *
 * The pools follow topology as a subscriber (pool_follow_topology()). They see of the worker only
 * what it lends them (struct pools), and never call the admin console or the client by name.
 */
#include "pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "core/clock.h"
#include "core/histogram.h"
#include "core/list.h"
#include "core/log.h"
#include "pool/address.h"
#include "pool/events.h"
#include "server/prepared.h"
#include "server/server.h"

/* ---- state transitions ---- */

/* The states' names in the log (SHOW CLIENTS and SHOW SERVERS say PgBouncer's). */
static const char *client_state_name(enum client_state s)
{
	static const char *const names[] = { "login",   "waiting_login", "idle",
					     "waiting", "active",        "closing" };

	return names[s];
}

static const char *server_state_name(enum server_state s)
{
	static const char *const names[] = { "connecting", "login",       "idle",   "active",
					     "reset",      "cancel_wait", "closing" };

	return names[s];
}

/*
 * The moves a client may make: client_moves[from][to]. A new client enters LOGIN through
 * pool_client_accepted(); CLOSING is final.
 */
static const bool client_moves[CLIENT_CLOSING + 1][CLIENT_CLOSING + 1] = {
	[CLIENT_LOGIN] = { [CLIENT_WAITING_LOGIN] = true,
			   [CLIENT_IDLE] = true,
			   [CLIENT_CLOSING] = true },
	[CLIENT_WAITING_LOGIN] = { [CLIENT_IDLE] = true, [CLIENT_CLOSING] = true },
	[CLIENT_IDLE] = { [CLIENT_WAITING] = true,
			  [CLIENT_ACTIVE] = true,
			  [CLIENT_CLOSING] = true },
	[CLIENT_WAITING] = { [CLIENT_ACTIVE] = true,
			     [CLIENT_IDLE] = true,
			     [CLIENT_CLOSING] = true },
	[CLIENT_ACTIVE] = { [CLIENT_IDLE] = true, [CLIENT_CLOSING] = true },
};

/*
 * The moves a server may make: server_moves[from][to]. A new server enters CONNECTING through
 * pool_server_launched(); CLOSING is final.
 */
static const bool server_moves[SERVER_CLOSING + 1][SERVER_CLOSING + 1] = {
	[SERVER_CONNECTING] = { [SERVER_LOGIN] = true, [SERVER_CLOSING] = true },
	[SERVER_LOGIN] = { [SERVER_IDLE] = true, [SERVER_RESET] = true, [SERVER_CLOSING] = true },
	[SERVER_IDLE] = { [SERVER_ACTIVE] = true, [SERVER_RESET] = true, [SERVER_CLOSING] = true },
	[SERVER_ACTIVE] = { [SERVER_IDLE] = true,
			    [SERVER_RESET] = true,
			    [SERVER_CANCEL_WAIT] = true,
			    [SERVER_CLOSING] = true },
	[SERVER_RESET] = { [SERVER_IDLE] = true, [SERVER_CLOSING] = true },
	[SERVER_CANCEL_WAIT] = { [SERVER_IDLE] = true,
				 [SERVER_RESET] = true,
				 [SERVER_CLOSING] = true },
};

/* The count of clients waiting for what c waits for. */
static int *waiting_counter(struct client *c)
{
	if (c->target == TARGET_WAIT_PRIMARY)
		return &c->pool->n_waiting_primary;
	return &c->pool->nodes[c->target].n_waiting;
}

static void client_leave_state(struct client *c)
{
	struct pool *p = c->pool;

	list_del(&c->node);
	if (!p)
		return;
	switch (c->state) {
	case CLIENT_WAITING_LOGIN:
		p->n_waiting_clients--;
		break;
	case CLIENT_WAITING:
		p->n_waiting_clients--;
		*waiting_counter(c) -= 1;
		break;
	case CLIENT_IDLE:
	case CLIENT_ACTIVE:
		p->n_active_clients--;
		break;
	default:
		break;
	}
}

/* The one place a client's state changes: the lists and counters follow, the move is logged. */
static void client_set_state(struct client *c, enum client_state st, const char *cause)
{
	struct pool *p = c->pool;

	ASSERT(client_moves[c->state][st]);
	if (log_enabled(LOG_LVL_NOISE))
		client_log(LOG_LVL_NOISE, c, "%s -> %s: %s", client_state_name(c->state),
			   client_state_name(st), cause);
	if (!p) {
		/* An admin console client (or one closing before it had a pool): on the login list. */
		if (st == CLIENT_CLOSING)
			list_del(&c->node);
		c->state = st;
		return;
	}
	client_leave_state(c);
	c->state = st;
	switch (st) {
	case CLIENT_WAITING_LOGIN:
	case CLIENT_WAITING:
		/* A client logging in waits from here (pool_request_server sets it for the others). */
		if (st == CLIENT_WAITING_LOGIN)
			p->ps->events->wait_started(c);
		list_add_tail(&p->waiting_clients, &c->node);
		p->n_waiting_clients++;
		if (st == CLIENT_WAITING)
			*waiting_counter(c) += 1;
		break;
	case CLIENT_IDLE:
	case CLIENT_ACTIVE:
		list_add_tail(&p->active_clients, &c->node);
		p->n_active_clients++;
		break;
	case CLIENT_LOGIN: /* entered only through pool_client_accepted() */
	case CLIENT_CLOSING:
		break;
	}
}

static int *server_counter(struct server *s, enum server_state st)
{
	struct pool *p = s->pool;

	switch (st) {
	case SERVER_CONNECTING:
	case SERVER_LOGIN:
		return &p->n_login;
	case SERVER_IDLE:
		return &p->n_idle;
	case SERVER_ACTIVE:
		return &p->n_active;
	case SERVER_RESET:
	case SERVER_CANCEL_WAIT:
		return &p->n_reset;
	case SERVER_CLOSING:
		break;
	}
	return NULL;
}

static struct list_node *server_list(struct server *s, enum server_state st)
{
	struct pool *p = s->pool;

	switch (st) {
	case SERVER_CONNECTING:
	case SERVER_LOGIN:
		return &p->login_servers;
	case SERVER_IDLE:
		return &p->idle_servers;
	case SERVER_ACTIVE:
		return &p->active_servers;
	case SERVER_RESET:
	case SERVER_CANCEL_WAIT:
		return &p->reset_servers;
	case SERVER_CLOSING:
		break;
	}
	return NULL;
}

static bool state_pending(enum server_state st)
{
	return st == SERVER_CONNECTING || st == SERVER_LOGIN || st == SERVER_RESET ||
	       st == SERVER_CANCEL_WAIT;
}

/* The per-member counts: the pool's node, and the cluster member's own. */
static void count_member(struct server *s, enum server_state st, int delta)
{
	struct pool_node *node = &s->pool->nodes[s->member];
	struct cluster *cl = s->pool->db->cluster;
	struct member *m = cl ? &cl->members[s->member] : NULL;

	node->n_servers += delta;
	if (state_pending(st))
		node->n_pending += delta;
	if (m) {
		m->n_servers += delta;
		if (st == SERVER_ACTIVE)
			m->n_busy += delta;
	}
}

/*
 * The one place a server's state changes: the lists, the pool's, member's, database's and
 * user's counters follow, the move is logged. A server on no list is new (CONNECTING).
 */
static void server_set_state(struct server *s, enum server_state st, const char *cause)
{
	bool was_counted = !list_empty(&s->node);
	int *old = was_counted ? server_counter(s, s->state) : NULL;
	struct list_node *to = server_list(s, st);

	ASSERT(was_counted ? server_moves[s->state][st]
			   : s->state == SERVER_CONNECTING && st == SERVER_CONNECTING);
	if (log_enabled(LOG_LVL_NOISE))
		server_log(LOG_LVL_NOISE, s, "%s -> %s: %s",
			   was_counted ? server_state_name(s->state) : "new", server_state_name(st),
			   cause);
	if (was_counted)
		count_member(s, s->state, -1);
	if (to)
		count_member(s, st, +1);
	if (old)
		(*old)--;
	list_del(&s->node);
	if (to) {
		(*server_counter(s, st))++;
		/* Idle servers are reused newest first, so surplus ones age out. */
		if (st == SERVER_IDLE)
			list_add_head(to, &s->node);
		else
			list_add_tail(to, &s->node);
		if (!was_counted) {
			s->pool->db->n_servers++;
			s->pool->user->n_servers++;
		}
	} else if (was_counted) {
		s->pool->db->n_servers--;
		s->pool->user->n_servers--;
	}
	s->state = st;
}

/* ---- the verbs other modules change states through ---- */

void pool_client_accepted(struct pools *ps, struct client *c)
{
	ASSERT(c->state == CLIENT_LOGIN && list_empty(&c->node));
	if (log_enabled(LOG_LVL_NOISE))
		client_log(LOG_LVL_NOISE, c, "new -> %s: accepted",
			   client_state_name(CLIENT_LOGIN));
	list_add_tail(&ps->login_clients, &c->node);
}

void pool_client_logged_in(struct client *c)
{
	ASSERT(c->pool);
	if (c->pool->welcome_ready) {
		client_set_state(c, CLIENT_IDLE, "logged in");
		c->pool->ps->events->login_done(c);
	} else {
		client_set_state(c, CLIENT_WAITING_LOGIN,
				 "logged in, waiting for the first server");
		pool_launch_needed(c->pool);
	}
}

void pool_client_adopted(struct client *c)
{
	ASSERT(c->pool);
	client_set_state(c, CLIENT_IDLE, "handed over by the previous process");
}

void pool_console_client_logged_in(struct client *c)
{
	ASSERT(!c->pool);
	client_set_state(c, CLIENT_IDLE, "logged in to the admin console");
}

void pool_client_move(struct client *c, struct pool *to)
{
	ASSERT(c->state == CLIENT_IDLE && !c->server && to && to->ps == c->pool->ps);
	if (to == c->pool)
		return;
	if (log_enabled(LOG_LVL_NOISE))
		client_log(LOG_LVL_NOISE, c, "moves from pool %s/%s to %s/%s", c->pool->db->name,
			   c->pool->user->name, to->db->name, to->user->name);
	client_leave_state(c);
	c->pool = to;
	c->target = 0;
	list_add_tail(&to->active_clients, &c->node);
	to->n_active_clients++;
}

void pool_drop_request(struct client *c)
{
	if (c->state == CLIENT_WAITING)
		client_set_state(c, CLIENT_IDLE, "unit of work refused while waiting");
}

void pool_unlink_for_replay(struct client *c, const char *reason)
{
	struct server *s = c->server;

	ASSERT(s && s->client == c && c->state == CLIENT_ACTIVE);
	s->close_when_released = true;
	c->server = NULL;
	s->client = NULL;
	client_set_state(c, CLIENT_IDLE, "unlinked to replay its request elsewhere");
	server_close(s, reason);
}

void pool_client_closing(struct client *c)
{
	ASSERT(!c->server);
	client_set_state(c, CLIENT_CLOSING, "closing");
}

void pool_server_launched(struct server *s)
{
	pool_choose_address(s);
	server_set_state(s, SERVER_CONNECTING, "launched");
}

void pool_server_connected(struct server *s)
{
	histogram_observe_since(&s->pool->latency.connect, s->connect_time_us, clock_now_us());
	server_set_state(s, SERVER_LOGIN, "connected, logging in");
}

void pool_server_closing(struct server *s)
{
	/* Cancel requests on their way to this backend no longer have a server to wait for them. */
	s->pool->ps->events->server_closing(s);
	server_set_state(s, SERVER_CLOSING, "closing");
}

/* ---- bookkeeping check ---- */

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			log_error("pool check: " __VA_ARGS__);                                     \
			return false;                                                              \
		}                                                                                  \
	} while (0)

/* Walk one client list: every client in one of two states, of pool p; counts by target. */
static bool check_clients(const struct pool *p, const struct list_node *head, enum client_state a,
			  enum client_state b, int *count, int *waiting, int *waiting_primary)
{
	const struct list_node *n;

	*count = 0;
	for (n = head->next; n != head; n = n->next) {
		const struct client *c = list_entry(n, struct client, node);

		CHECK(c->pool == p, "C-%llu is on a list of another pool",
		      (unsigned long long)c->id);
		CHECK(c->state == a || c->state == b, "C-%llu is %s on the list of %s",
		      (unsigned long long)c->id, client_state_name(c->state), client_state_name(a));
		CHECK((c->state == CLIENT_ACTIVE) == (c->server != NULL),
		      "C-%llu is %s with%s a server", (unsigned long long)c->id,
		      client_state_name(c->state), c->server ? "" : "out");
		CHECK(!c->server || (c->server->client == c && c->server->state == SERVER_ACTIVE),
		      "C-%llu and its server are not linked both ways", (unsigned long long)c->id);
		if (c->state == CLIENT_WAITING && c->target == TARGET_WAIT_PRIMARY)
			(*waiting_primary)++;
		else if (c->state == CLIENT_WAITING) {
			CHECK(c->target >= 0 && c->target < TOPO_MAX_MEMBERS,
			      "C-%llu waits for no member", (unsigned long long)c->id);
			waiting[c->target]++;
		}
		(*count)++;
	}
	return true;
}

/* Walk one server list: every server in one of two states, of pool p; counts by member. */
static bool check_servers(const struct pool *p, const struct list_node *head, enum server_state a,
			  enum server_state b, int *count, int *servers, int *pending)
{
	const struct list_node *n;

	*count = 0;
	for (n = head->next; n != head; n = n->next) {
		const struct server *s = list_entry(n, struct server, node);

		CHECK(s->pool == p, "S-%llu is on a list of another pool",
		      (unsigned long long)s->id);
		CHECK(s->state == a || s->state == b, "S-%llu is %s on the list of %s",
		      (unsigned long long)s->id, server_state_name(s->state), server_state_name(a));
		CHECK((s->state == SERVER_ACTIVE) == (s->client != NULL),
		      "S-%llu is %s with%s a client", (unsigned long long)s->id,
		      server_state_name(s->state), s->client ? "" : "out");
		CHECK(!s->client || s->client->server == s,
		      "S-%llu and its client are not linked both ways", (unsigned long long)s->id);
		CHECK(s->member >= 0 && s->member < TOPO_MAX_MEMBERS, "S-%llu has no member",
		      (unsigned long long)s->id);
		servers[s->member]++;
		if (state_pending(s->state))
			pending[s->member]++;
		(*count)++;
	}
	return true;
}

bool pool_check(const struct pool *p)
{
	int waiting[TOPO_MAX_MEMBERS] = { 0 }, servers[TOPO_MAX_MEMBERS] = { 0 };
	int pending[TOPO_MAX_MEMBERS] = { 0 };
	int waiting_primary = 0, n_active_clients, n_waiting_clients, n_idle, n_active, n_login,
	    n_reset;

	if (!check_clients(p, &p->active_clients, CLIENT_IDLE, CLIENT_ACTIVE, &n_active_clients,
			   waiting, &waiting_primary) ||
	    !check_clients(p, &p->waiting_clients, CLIENT_WAITING, CLIENT_WAITING_LOGIN,
			   &n_waiting_clients, waiting, &waiting_primary) ||
	    !check_servers(p, &p->idle_servers, SERVER_IDLE, SERVER_IDLE, &n_idle, servers,
			   pending) ||
	    !check_servers(p, &p->active_servers, SERVER_ACTIVE, SERVER_ACTIVE, &n_active, servers,
			   pending) ||
	    !check_servers(p, &p->login_servers, SERVER_CONNECTING, SERVER_LOGIN, &n_login, servers,
			   pending) ||
	    !check_servers(p, &p->reset_servers, SERVER_RESET, SERVER_CANCEL_WAIT, &n_reset,
			   servers, pending))
		return false;
	CHECK(n_active_clients == p->n_active_clients,
	      "%s/%s: %d active clients listed, %d counted", p->db->name, p->user->name,
	      n_active_clients, p->n_active_clients);
	CHECK(n_waiting_clients == p->n_waiting_clients,
	      "%s/%s: %d waiting clients listed, %d counted", p->db->name, p->user->name,
	      n_waiting_clients, p->n_waiting_clients);
	CHECK(waiting_primary == p->n_waiting_primary,
	      "%s/%s: %d clients wait for a primary, %d counted", p->db->name, p->user->name,
	      waiting_primary, p->n_waiting_primary);
	CHECK(n_idle == p->n_idle && n_active == p->n_active && n_login == p->n_login &&
		      n_reset == p->n_reset,
	      "%s/%s: servers listed idle %d active %d login %d reset %d, counted %d %d %d %d",
	      p->db->name, p->user->name, n_idle, n_active, n_login, n_reset, p->n_idle,
	      p->n_active, p->n_login, p->n_reset);
	for (int i = 0; i < TOPO_MAX_MEMBERS; i++) {
		const struct pool_node *node = &p->nodes[i];

		CHECK(node->n_waiting == waiting[i] && node->n_servers == servers[i] &&
			      node->n_pending == pending[i],
		      "%s/%s member %d: listed %d waiting, %d servers, %d pending; counted %d %d %d",
		      p->db->name, p->user->name, i, waiting[i], servers[i], pending[i],
		      node->n_waiting, node->n_servers, node->n_pending);
	}
	return true;
}

bool pool_check_all(const struct pools *ps)
{
	const struct list_node *n, *m;

	for (n = ps->login_clients.next; n != &ps->login_clients; n = n->next) {
		const struct client *c = list_entry(n, struct client, node);

		CHECK(c->state == CLIENT_LOGIN ||
			      (!c->pool && (c->state == CLIENT_IDLE || c->state == CLIENT_ACTIVE)),
		      "C-%llu is %s on the list of clients logging in", (unsigned long long)c->id,
		      client_state_name(c->state));
		CHECK(!c->server, "C-%llu is logging in with a server", (unsigned long long)c->id);
	}
	for (n = ps->all.next; n != &ps->all; n = n->next) {
		if (!pool_check(list_entry(n, struct pool, node)))
			return false;
	}
	/* Each database's and user's server count is the sum over its pools: one pass adds up. */
	for (n = ps->databases.next; n != &ps->databases; n = n->next)
		list_entry(n, struct database, node)->check_servers = 0;
	for (n = ps->users.next; n != &ps->users; n = n->next)
		list_entry(n, struct pool_user, node)->check_servers = 0;
	for (n = ps->all.next; n != &ps->all; n = n->next) {
		const struct pool *p = list_entry(n, struct pool, node);
		int total = p->n_idle + p->n_active + p->n_login + p->n_reset;

		p->db->check_servers += total;
		p->user->check_servers += total;
	}
	for (m = ps->all.next; m != &ps->all; m = m->next) {
		const struct pool *p = list_entry(m, struct pool, node);

		CHECK(p->db->check_servers == p->db->n_servers,
		      "database %s: %d servers listed, %d counted", p->db->name,
		      p->db->check_servers, p->db->n_servers);
		CHECK(p->user->check_servers == p->user->n_servers,
		      "user %s: %d servers listed, %d counted", p->user->name,
		      p->user->check_servers, p->user->n_servers);
	}
	return true;
}

#undef CHECK

/* ---- lookup ---- */

void pools_init(struct pools *ps)
{
	memset(ps, 0, sizeof(*ps));
	list_init(&ps->databases);
	list_init(&ps->users);
	list_init(&ps->all);
	list_init(&ps->login_clients);
	list_init(&ps->servers_elsewhere);
}

static struct pool_user *user_get(struct pools *ps, const char *name)
{
	struct list_node *n, *t;
	struct pool_user *u;

	list_for_each_safe(n, t, &ps->users) {
		u = list_entry(n, struct pool_user, node);
		if (strcmp(u->name, name) == 0)
			return u;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	snprintf(u->name, sizeof(u->name), "%s", name);
	list_add_tail(&ps->users, &u->node);
	return u;
}

struct pool *pool_get(struct pools *ps, struct database *db, const char *user)
{
	struct list_node *n, *t;
	struct pool *p;
	struct pool_user *u;

	list_for_each_safe(n, t, &ps->all) {
		p = list_entry(n, struct pool, node);
		if (p->db == db && strcmp(p->user->name, user) == 0)
			return p;
	}
	u = user_get(ps, user);
	p = calloc(1, sizeof(*p));
	if (!u || !p) {
		free(p);
		return NULL;
	}
	p->ps = ps;
	p->db = db;
	p->user = u;
	p->mode = config_pool_mode(*ps->cfg, db->entry, config_find_user(*ps->cfg, user));
	list_init(&p->active_clients);
	list_init(&p->waiting_clients);
	list_init(&p->idle_servers);
	list_init(&p->active_servers);
	list_init(&p->login_servers);
	list_init(&p->reset_servers);
	list_add_tail(&ps->all, &p->node);
	return p;
}

struct database *database_lookup(struct pools *ps, const char *name)
{
	struct list_node *n, *t;
	const struct db_entry *e;
	struct database *db;

	list_for_each_safe(n, t, &ps->databases) {
		db = list_entry(n, struct database, node);
		if (strcmp(db->name, name) == 0)
			return db->removed ? NULL : db;
	}
	e = config_find_db(*ps->cfg, name);
	if (!e || strlen(name) >= sizeof(db->name))
		return NULL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	snprintf(db->name, sizeof(db->name), "%s", name);
	db->entry = (struct db_entry *)e;
	db->from_wildcard = strcmp(e->name, name) != 0;
	db->cluster = e->cluster[0] ? topo_find(ps->topo, e->cluster) : NULL;
	list_add_tail(&ps->databases, &db->node);
	return db;
}

/* ---- effective settings ---- */

int pool_size(const struct pool *p)
{
	return config_db_pool_size(pool_cfg(p), p->db->entry);
}

int pool_min_size(const struct pool *p)
{
	/* Spare servers are for clients to come, and a process shutting down takes none. */
	return *p->ps->shutting_down ? 0 : config_db_min_pool_size(pool_cfg(p), p->db->entry);
}

static int pool_reserve(const struct pool *p)
{
	return config_db_reserve_pool(pool_cfg(p), p->db->entry);
}

enum pool_mode pool_mode(const struct pool *p)
{
	return p->mode;
}

bool pool_is_session(const struct pool *p)
{
	return p->mode == POOL_MODE_SESSION;
}

bool pool_shares_servers(const struct pool *p)
{
	return p->mode != POOL_MODE_SESSION;
}

bool pool_releases_per_transaction(const struct pool *p)
{
	return p->mode == POOL_MODE_TRANSACTION;
}

bool pool_releases_per_statement(const struct pool *p)
{
	return p->mode == POOL_MODE_STATEMENT;
}

int pool_cancel_waiting(const struct pool *p)
{
	const struct list_node *n;
	int count = 0;

	for (n = p->reset_servers.next; n != &p->reset_servers; n = n->next)
		count += list_entry(n, const struct server, node)->state == SERVER_CANCEL_WAIT;
	return count;
}

uint64_t pool_longest_wait_us(const struct pool *p, uint64_t now)
{
	const struct list_node *n;
	uint64_t longest = 0;

	for (n = p->waiting_clients.next; n != &p->waiting_clients; n = n->next) {
		uint64_t since = list_entry(n, const struct client, node)->wait_start_us;

		if (now > since && now - since > longest)
			longest = now - since;
	}
	return longest;
}

void pool_config_changed(struct pools *ps)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);

		p->mode = config_pool_mode(*ps->cfg, p->db->entry,
					   config_find_user(*ps->cfg, p->user->name));
	}
}

static int db_max_connections(const struct database *db, const struct config *cfg)
{
	return config_db_max_connections(cfg, db->entry);
}

static int user_max_connections(const struct pool *p)
{
	return config_user_max_connections(pool_cfg(p),
					   config_find_user(pool_cfg(p), p->user->name));
}

static bool pool_paused(const struct pool *p)
{
	return p->ps->paused || p->db->paused;
}

/* ---- assignment ---- */

static void link_client(struct client *c, struct server *s)
{
	struct pool *p = c->pool;
	uint64_t now = clock_now_us();

	if (c->state == CLIENT_WAITING)
		p->stats.wait_time_us += now - c->wait_start_us;
	histogram_observe_since(&p->latency.wait,
				c->state == CLIENT_WAITING ? c->wait_start_us : now, now);
	p->stats.server_assignment_count++;
	c->server = s;
	s->client = c;
	server_set_state(s, SERVER_ACTIVE, "linked to a client");
	client_set_state(c, CLIENT_ACTIVE, "linked to a server");
	s->link_time_us = s->request_time_us = now;
	c->pool->ps->events->server_linked(c); /* its transaction time starts at s->link_time_us */
}

/* A server idle longer than server_check_delay may have died quietly: test it before use. */
static bool needs_check(const struct server *s, uint64_t now)
{
	const struct config *cfg = pool_cfg(s->pool);

	return *cfg->server_check_query &&
	       now - s->request_time_us >= (uint64_t)(cfg->server_check_delay * 1e6);
}

/* After RELOAD made the pool smaller: close idle servers beyond its size. */
static void pool_trim(struct pool *p)
{
	int limit = pool_size(p) + pool_reserve(p);
	struct list_node *n, *t;

	/* Under the limit over all members is under it for each: the usual, cheap case. */
	if (p->n_idle + p->n_active + p->n_login + p->n_reset <= limit)
		return;
	list_for_each_safe(n, t, &p->idle_servers) {
		struct server *s = list_entry(n, struct server, node);

		if (p->nodes[s->member].n_servers > limit)
			server_close(s, "pool is over its size");
	}
}

/*
 * An idle server to member that is fit to hand out; stale ones are sent off to be tested
 * meanwhile.
 */
static struct server *take_idle_server(struct pool *p, int member)
{
	uint64_t now = clock_now_us();
	struct list_node *n, *t;

	if (member < 0)
		return NULL;
	pool_trim(p);
	list_for_each_safe(n, t, &p->idle_servers) {
		struct server *s = list_entry(n, struct server, node);

		if (s->member != member)
			continue;
		if (!needs_check(s, now))
			return s;
		server_set_state(s, SERVER_RESET, "idle too long, testing");
		server_send_internal_query(s, pool_cfg(p)->server_check_query);
	}
	return NULL;
}

void pool_request_server(struct client *c)
{
	struct pool *p = c->pool;
	struct server *s;

	ASSERT(c->state == CLIENT_IDLE && !c->server);
	if (!pool_paused(p) && (s = take_idle_server(p, c->target))) {
		link_client(c, s);
		return;
	}
	c->pool->ps->events->wait_started(c);
	if (c->target == TARGET_WAIT_PRIMARY)
		p->db->routes.primary_waits++;
	client_set_state(c, CLIENT_WAITING, "no idle server, queued");
	pool_launch_needed(p);
}

/* A server to a member that has stopped being primary since it connected. */
static bool server_stale(const struct server *s)
{
	const struct cluster *cl = s->pool->db->cluster;

	return cl && cl->members[s->member].primary_epoch != s->primary_epoch;
}

static bool server_expired(const struct server *s)
{
	double lifetime = pool_cfg(s->pool)->server_lifetime;

	return lifetime > 0 && clock_now_us() - s->connect_time_us > (uint64_t)(lifetime * 1e6);
}

/* Does the next client need anything undone on s before it may have it? */
static bool server_needs_reset(const struct server *s)
{
	const struct pool *p = s->pool;
	const char *reset = pool_cfg(p)->server_reset_query;

	return s->tx_status != 'I' || s->settings_unknown || s->needs_discard ||
	       (*reset && (pool_is_session(p) || pool_cfg(p)->server_reset_query_always));
}

/* Undo what the last client left on s; pool_server_ready follows when the answers are in. */
static void server_start_reset(struct server *s)
{
	struct pool *p = s->pool;
	const char *reset = pool_cfg(p)->server_reset_query;

	server_set_state(s, SERVER_RESET, "released, resetting");
	/* A transaction the client left open must not leak into the next client's work. */
	if (s->tx_status != 'I')
		server_send_internal_query(s, "ROLLBACK");
	/* Nor session state a pinned client left behind (LISTEN, temp tables, locks...). */
	if (s->needs_discard) {
		server_send_internal_query(s, "DISCARD ALL");
		server_pstmts_clear(s->env->pstmts, &s->pstmts);
		settings_clear(&s->applied);
		s->needs_discard = false;
		s->settings_unknown = false;
	}
	/* Nor settings changed in ways pgmux could not follow. */
	if (s->settings_unknown) {
		server_send_internal_query(s, "RESET ALL");
		settings_clear(&s->applied);
		s->settings_unknown = false;
	}
	if (*reset && (pool_is_session(p) || pool_cfg(p)->server_reset_query_always)) {
		/* DISCARD ALL and the like drop prepared statements and settings. */
		server_pstmts_clear(s->env->pstmts, &s->pstmts);
		settings_clear(&s->applied);
		server_send_internal_query(s, reset);
	}
}

void pool_recycle_server(struct server *s)
{
	if (!list_empty(&s->cancels)) {
		/*
		 * A cancel on its way could still hit the reset or the next client's query: wait
		 * until PostgreSQL has closed the cancel connection (cancel.c calls back here).
		 */
		server_set_state(s, SERVER_CANCEL_WAIT, "released, a cancel is in flight");
	} else if (server_needs_reset(s)) {
		server_start_reset(s);
	} else {
		pool_server_ready(s);
	}
}

void pool_release_server(struct client *c)
{
	struct server *s = c->server;
	struct pool *p = c->pool;

	ASSERT(s && s->client == c);
	respq_reset(&s->respq);
	c->server = NULL;
	s->client = NULL;
	s->request_time_us = clock_now_us();
	/* Settings changed in a transaction nobody read back: only a reset makes them known. */
	if (c->pool->ps->events->server_released(c) || s->reading_settings)
		s->settings_unknown = true;
	if (c->state == CLIENT_ACTIVE)
		client_set_state(c, CLIENT_IDLE, "released its server");
	if (s->close_when_released || s->fatal_seen || server_expired(s) || p->db->removed ||
	    server_stale(s))
		server_close(s, s->fatal_seen ? "server reported a fatal error"
					      : "released for closing");
	else
		pool_recycle_server(s);
}

static void finish_waiting_logins(struct pool *p)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &p->waiting_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_WAITING_LOGIN) {
			client_set_state(c, CLIENT_IDLE, "the first server logged in");
			c->pool->ps->events->login_done(c);
		}
	}
}

/* The client that has waited longest for member (any member when member < 0). */
static struct client *first_waiting(struct pool *p, int member)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &p->waiting_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_WAITING && (member < 0 || c->target == member))
			return c;
	}
	return NULL;
}

void pool_server_ready(struct server *s)
{
	struct pool *p = s->pool;
	struct client *c;

	ASSERT(!s->client);
	s->internal_failed = false;
	if (s->close_when_released || p->db->removed || server_stale(s)) {
		server_close(s, "not reusable");
		return;
	}
	/* After RELOAD made the pool smaller, surplus servers go as they come back. */
	if (p->nodes[s->member].n_servers > pool_size(p) + pool_reserve(p)) {
		server_close(s, "pool is over its size");
		return;
	}
	finish_waiting_logins(p);
	if (!pool_paused(p) && (c = first_waiting(p, s->member))) {
		/* Idle first, so link_client moves it like any idle server. */
		server_set_state(s, SERVER_IDLE, "ready, a client waits");
		link_client(c, s);
		return;
	}
	server_set_state(s, SERVER_IDLE, "ready");
}

void pool_server_login_done(struct server *s)
{
	const struct db_entry *e = s->pool->db->entry;

	histogram_observe_since(&s->pool->latency.login, s->connect_time_us, clock_now_us());
	s->pool->welcome_ready = true;
	s->pool->nodes[s->member].failing_since_us = 0;
	s->pool->db->hosts_failed = 0;
	if (e && *e->connect_query) {
		server_set_state(s, SERVER_RESET, "logged in, running connect_query");
		server_send_internal_query(s, e->connect_query);
		return;
	}
	pool_server_ready(s);
}

static int welcome_member(const struct pool *p);

bool pool_login_retry_exhausted(const struct client *c)
{
	const struct pool *p = c->pool;
	const struct pool_node *node;
	int member;

	if (c->state == CLIENT_WAITING_LOGIN)
		member = welcome_member(
			p); /* a client logging in waits for the pool's first server */
	else if (c->state == CLIENT_WAITING)
		member = c->target;
	else
		return false;
	if (member < 0 || member != p->last_login_member)
		return false;
	node = &p->nodes[member];
	/*
	 * An attempt that began before c started waiting was not made for it: its failure is not c's
	 * answer. And the first failures are not passed on: a member restarting comes back within
	 * one retry and nobody notices.
	 */
	return node->failing_since_us && node->last_failed_attempt_us >= c->wait_start_us &&
	       node->last_login_failure_us - node->failing_since_us >=
		       (uint64_t)(pool_cfg(p)->server_login_retry * 1e6);
}

bool pool_server_fenced(struct server *s)
{
	struct cluster *cl = s->pool->db->cluster;

	if (!cl || cl->members[s->member].role != ROLE_PRIMARY)
		return false;
	topo_member_is_standby(&cl->members[s->member]);
	return true;
}

bool pool_cluster_unusable(const struct client *c, char *why, size_t whylen)
{
	const struct pool *p = c->pool;

	return c->state == CLIENT_WAITING_LOGIN && p->db->cluster &&
	       topo_cluster_unusable(p->db->cluster, c->wait_start_us,
				     pool_cfg(p)->server_login_retry, why, whylen);
}

void pool_server_login_failed(struct server *s, const char *sqlstate, const char *message)
{
	struct pool *p = s->pool;
	struct pool_node *node = &p->nodes[s->member];
	uint64_t now = clock_now_us();

	p->last_login_failure_us = now;
	node->last_login_failure_us = now;
	node->last_failed_attempt_us = s->connect_time_us;
	if (!node->failing_since_us)
		node->failing_since_us = now;
	if (p->db->cluster) {
		struct member *m = &p->db->cluster->members[s->member];

		/* The member may be going down (switchover, failover): look at it now. */
		topo_member_suspect(m);
		if (m->role == ROLE_REPLICA) {
			/*
			 * Health checks log in as another user: this replica may refuse only ours
			 * (pg_hba, too many connections). No reads for ban_time; waiters go elsewhere.
			 */
			char cause[300];

			snprintf(cause, sizeof(cause), "a server login failed: %s", message);
			topo_member_ban(m, now + (uint64_t)(p->db->cluster->entry->ban_time * 1e6),
					cause);
		}
	}
	snprintf(p->last_login_error, sizeof(p->last_login_error), "%s", message);
	snprintf(p->last_login_sqlstate, sizeof(p->last_login_sqlstate), "%s", sqlstate);
	p->last_login_member = s->member;
}

static int elsewhere_sum(const struct pools *ps, const char *db, const char *user);

/* Servers counted against max_db_connections: ours and, after a takeover, the previous process's. */
static int db_servers(const struct pool *p)
{
	return p->db->n_servers + elsewhere_sum(p->ps, p->db->name, NULL);
}

/* The same for max_user_connections. */
static int user_servers(const struct pool *p)
{
	return p->user->n_servers + elsewhere_sum(p->ps, NULL, p->user->name);
}

/* How many more servers to member may the pool open now? */
static int launch_allowance(struct pool *p, int member)
{
	int total = p->nodes[member].n_servers;
	int limit = pool_size(p);
	int db_max = db_max_connections(p->db, pool_cfg(p));
	int user_max = user_max_connections(p);
	struct client *oldest = first_waiting(p, member);
	uint64_t now = clock_now_us();
	int allow;

	if (oldest && pool_reserve(p) > 0 &&
	    now - oldest->wait_start_us >= (uint64_t)(pool_cfg(p)->reserve_pool_timeout * 1e6))
		limit += pool_reserve(p);
	allow = limit - total;
	if (db_max > 0 && db_max - db_servers(p) < allow)
		allow = db_max - db_servers(p);
	if (user_max > 0 && user_max - user_servers(p) < allow)
		allow = user_max - user_servers(p);
	return allow;
}

/*
 * Would closing a server of pool o make room for p under the shared limits p has reached? Only
 * when o counts against every one of them (a server of another database frees nothing of a full
 * max_db_connections).
 */
static bool frees_room_for(const struct pool *o, const struct pool *p, bool db_full, bool user_full)
{
	return (!db_full || o->db == p->db) && (!user_full || o->user == p->user);
}

/* o's server idle longest (in p itself, one to another member than member's), or NULL. */
static struct server *longest_idle(struct pool *o, const struct pool *p, int member)
{
	struct list_node *n;

	/* Idle servers are added at the head: the tail has waited longest. */
	for (n = o->idle_servers.prev; n != &o->idle_servers; n = n->prev) {
		struct server *s = list_entry(n, struct server, node);

		if (o != p || s->member != member)
			return s;
	}
	return NULL;
}

/*
 * max_db_connections or max_user_connections is reached while member's waiters have room in
 * their own pool: the server idle longest among those whose place they could take (another
 * member's in this pool, another pool's of the same database or user) is closed, so that no
 * pool starves while others keep idle servers. True if one was closed.
 */
static bool close_idle_elsewhere(struct pool *p, int member)
{
	int db_max = db_max_connections(p->db, pool_cfg(p));
	int user_max = user_max_connections(p);
	bool db_full = db_max > 0 && db_servers(p) >= db_max;
	bool user_full = user_max > 0 && user_servers(p) >= user_max;
	struct server *victim = NULL;
	struct list_node *n, *t;

	if (!db_full && !user_full)
		return false;
	list_for_each_safe(n, t, &p->ps->all) {
		struct pool *o = list_entry(n, struct pool, node);
		struct server *s;

		if (!frees_room_for(o, p, db_full, user_full) || !(s = longest_idle(o, p, member)))
			continue;
		if (!victim || s->request_time_us < victim->request_time_us)
			victim = s;
	}
	if (!victim)
		return false;
	server_close(victim, victim->pool == p ? "its place is needed for another member"
					       : "its place is needed by another pool");
	return true;
}

/* Is member one that min_pool_size should keep connections to? */
static bool member_in_use(const struct pool *p, int member)
{
	const struct cluster *cl = p->db->cluster;

	return !cl || (member < cl->n_members && cl->members[member].role != ROLE_UNKNOWN);
}

static void launch_for_member(struct pool *p, int member, int extra, uint64_t now)
{
	struct pool_node *node = &p->nodes[member];
	int want, allow, for_waiters;

	if (node->last_login_failure_us &&
	    now - node->last_login_failure_us < (uint64_t)(pool_cfg(p)->server_login_retry * 1e6))
		return;
	/* Servers logging in or being reset/tested will serve waiters soon: count them. */
	want = for_waiters = node->n_waiting + extra - node->n_pending;
	if (member_in_use(p, member) && node->n_servers + (want > 0 ? want : 0) < pool_min_size(p))
		want = pool_min_size(p) - node->n_servers;
	if (want <= 0)
		return;
	allow = launch_allowance(p, member);
	/*
	 * Only clients waiting take another pool's place: min_pool_size alone would have pools with
	 * idle servers close each other's in turn under a shared limit.
	 */
	if (allow <= 0 && for_waiters > 0 && node->n_servers < pool_size(p) &&
	    close_idle_elsewhere(p, member))
		allow = launch_allowance(p, member);
	while (want-- > 0 && allow-- > 0) {
		if (!server_launch(&p->ps->servers, p, member))
			break;
	}
}

/*
 * Where the first server goes, whose parameters clients that log in are shown: the primary,
 * else any member in use; -1 when the cluster has none yet.
 */
static int welcome_member(const struct pool *p)
{
	const struct cluster *cl = p->db->cluster;

	if (!cl)
		return 0;
	if (cl->primary >= 0)
		return cl->primary;
	for (int i = 0; i < cl->n_members; i++) {
		if (cl->members[i].role == ROLE_REPLICA)
			return i;
	}
	return -1;
}

void pool_launch_needed(struct pool *p)
{
	uint64_t now = clock_now_us();
	int members = p->db->cluster ? p->db->cluster->n_members : 1;
	int login_waiters = p->n_waiting_clients - p->n_waiting_primary;
	int welcome = welcome_member(p);

	if (pool_paused(p) || p->db->removed)
		return;
	for (int i = 0; i < members; i++)
		login_waiters -= p->nodes[i].n_waiting;
	for (int i = 0; i < members; i++)
		launch_for_member(p, i, i == welcome && !p->welcome_ready ? login_waiters : 0, now);
}

/* ---- statistics ---- */

void pool_count_duration(const struct client *c, bool xact, uint64_t start_us, uint64_t now)
{
	struct pool *p = c->pool;
	struct database *db = p->db;
	struct latency *l = &p->latency;
	enum latency_role role;

	if (xact) {
		p->stats.xact_count++;
		p->stats.xact_time_us += now - start_us;
	} else {
		p->stats.query_count++;
		p->stats.query_time_us += now - start_us;
	}
	histogram_observe_since(xact ? &l->xact : &l->query, start_us, now);
	if (!db->cluster || !c->server)
		return;
	if (!l->by_role && !(l->by_role = calloc(1, sizeof(*l->by_role))))
		return; /* out of memory: the database's own histograms have it */
	/* The member it runs on, whatever routing wanted: a read that fell back ran on the primary. */
	role = c->server->member == db->cluster->primary ? LATENCY_PRIMARY : LATENCY_REPLICA;
	histogram_observe_since(xact ? &l->by_role->xact[role] : &l->by_role->query[role], start_us,
				now);
}

/* ---- administration ---- */

static void close_idle_and_mark(struct pool *p)
{
	struct list_node *n, *t;
	struct list_node *busy[] = { &p->active_servers, &p->login_servers, &p->reset_servers };

	list_for_each_safe(n, t, &p->idle_servers)
		server_close(list_entry(n, struct server, node), "reconnect");
	for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++)
		list_for_each_safe(n, t, busy[i])
			list_entry(n, struct server, node)->close_when_released = true;
}

void pool_reconnect(struct pools *ps, struct database *db)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);

		if (!db || p->db == db)
			close_idle_and_mark(p);
	}
}

void pool_kill_database(struct pools *ps, struct database *db)
{
	const struct pool_events *events = ps->events;
	struct list_node *n, *t, *m, *u;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);
		struct list_node *clients[] = { &p->active_clients, &p->waiting_clients };
		struct list_node *servers[] = { &p->idle_servers, &p->active_servers,
						&p->login_servers, &p->reset_servers };

		if (p->db != db)
			continue;
		for (size_t i = 0; i < 2; i++)
			list_for_each_safe(m, u, clients[i]) {
				struct client *c = list_entry(m, struct client, node);

				events->close(c, "57P01",
					      "database \"%s\" was killed by the administrator",
					      db->name);
			}
		for (size_t i = 0; i < 4; i++)
			list_for_each_safe(m, u, servers[i])
				server_close(list_entry(m, struct server, node), "database killed");
	}
}

/* Link waiting clients to idle servers of the members they wait for. */
static void serve_waiters(struct pool *p)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &p->waiting_clients) {
		struct client *c = list_entry(n, struct client, node);
		struct server *s;

		if (c->state == CLIENT_WAITING && (s = take_idle_server(p, c->target)))
			link_client(c, s);
	}
}

void pool_kick(struct pools *ps, struct database *db)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);

		if (db && p->db != db)
			continue;
		pool_trim(p);
		if (pool_paused(p))
			continue;
		serve_waiters(p);
		pool_launch_needed(p);
	}
}

void pool_retarget(struct client *c, int target)
{
	if (c->state == CLIENT_WAITING && target == TARGET_WAIT_PRIMARY &&
	    c->target != TARGET_WAIT_PRIMARY)
		c->pool->db->routes.primary_waits++;
	if (c->state == CLIENT_WAITING)
		*waiting_counter(c) -= 1;
	c->target = target;
	if (c->state == CLIENT_WAITING)
		*waiting_counter(c) += 1;
}

/* Close a demoted primary's servers: idle ones now, busy ones when they come back. */
static void close_stale_servers(struct pool *p)
{
	struct list_node *n, *t;
	struct list_node *busy[] = { &p->active_servers, &p->login_servers, &p->reset_servers };

	list_for_each_safe(n, t, &p->idle_servers) {
		struct server *s = list_entry(n, struct server, node);

		if (server_stale(s))
			server_close(s, "its member is no longer the primary");
	}
	for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++) {
		list_for_each_safe(n, t, busy[i]) {
			struct server *s = list_entry(n, struct server, node);

			if (server_stale(s))
				s->close_when_released = true;
		}
	}
}

/* Clients waiting for a server of the changed cluster: their route may change (pool_retarget). */
static void reroute_waiters(struct pool *p)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &p->waiting_clients) {
		struct client *c = list_entry(n, struct client, node);

		if (c->state == CLIENT_WAITING)
			p->ps->events->topology_changed(c);
	}
}

static void on_topology_changed(void *arg, struct cluster *cl)
{
	struct pools *ps = arg;
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->all) {
		struct pool *p = list_entry(n, struct pool, node);

		if (p->db->cluster != cl)
			continue;
		close_stale_servers(p);
		reroute_waiters(p);
		if (pool_paused(p))
			continue;
		serve_waiters(p);
		pool_launch_needed(p);
	}
}

bool pool_follow_topology(struct pools *ps)
{
	return topo_subscribe(ps->topo, on_topology_changed, ps);
}

bool pool_servers_to_report(const struct pool *p, int *n)
{
	*n = p->n_idle + p->n_active + p->n_login + p->n_reset;
	return *n != p->reported_servers;
}

void pool_servers_reported(struct pool *p, int n)
{
	p->reported_servers = n;
}

/* The previous process's count for (db, user), kept so that sums can be made again. */
struct elsewhere {
	struct list_node node;
	char db[64], user[64];
	int n;
};

/* Its servers of database db (db NULL: any) for user (user NULL: any); 0 without a takeover. */
static int elsewhere_sum(const struct pools *ps, const char *db, const char *user)
{
	const struct list_node *n;
	int sum = 0;

	for (n = ps->servers_elsewhere.next; n != &ps->servers_elsewhere; n = n->next) {
		const struct elsewhere *e = list_entry(n, struct elsewhere, node);

		if ((!db || strcmp(e->db, db) == 0) && (!user || strcmp(e->user, user) == 0))
			sum += e->n;
	}
	return sum;
}

void pool_servers_elsewhere(struct pools *ps, const char *db, const char *user, int n)
{
	struct list_node *l;
	struct elsewhere *e = NULL;

	for (l = ps->servers_elsewhere.next; l != &ps->servers_elsewhere && !e; l = l->next) {
		struct elsewhere *x = list_entry(l, struct elsewhere, node);

		if (strcmp(x->db, db) == 0 && strcmp(x->user, user) == 0)
			e = x;
	}
	if (!e) {
		if (!(e = calloc(1, sizeof(*e))))
			return; /* out of memory: the limit counts ours only, as without a takeover */
		snprintf(e->db, sizeof(e->db), "%s", db);
		snprintf(e->user, sizeof(e->user), "%s", user);
		list_add_tail(&ps->servers_elsewhere, &e->node);
	}
	e->n = n;
}

void pool_servers_elsewhere_clear(struct pools *ps)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &ps->servers_elsewhere) {
		list_del(n);
		free(list_entry(n, struct elsewhere, node));
	}
}
