/* link: src/pool/pool.c src/pool/address.c src/core/histogram.c */
/*
 * Unit tests for the pool's ownership of client and server lifecycles: the verbs move clients and
 * servers between states, pool_check() agrees with the lists and counters after every step, and
 * an illegal move trips the ASSERT of the transition tables.
 *
 * Only pool.c and address.c (where servers connect) are linked. What they call in other modules
 * (server connections, conn, loop, config, topology, log) is stubbed below, and so are the client
 * events the pool sends (pool/events.h): the stubs do what the real function does to the pool's
 * bookkeeping (server_launch enters a new server, server_close takes it out) and nothing else.
 * log_assert_failed hands the failed ASSERT to cmocka (expect_assert_failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/client.h"
#include "core/clock.h"
#include "core/log.h"
#include "ev/conn.h"
#include "pool/events.h"
#include "pool/pool.h"
#include "server/server.h"

/* ---- stubs ---- */

static uint64_t now_us = 1000000;
static char log_text[16384];
static int logins_finished, links, internal_queries, closings_told;
static struct server *launched[8];
static int n_launched;
/* Clients a test made, freed at teardown (a test that trips an ASSERT cannot free its own). */
static struct client *made[8];
static int n_made;

uint64_t clock_now_us(void)
{
	return now_us;
}

void evloop_set_buf_size(struct evloop *l, uint32_t buf_size)
{
}

bool log_enabled(enum log_level lvl)
{
	return true;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	size_t used = strlen(log_text);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log_text + used, sizeof(log_text) - used, fmt, ap);
	va_end(ap);
	used = strlen(log_text);
	if (used + 1 < sizeof(log_text))
		strcat(log_text, "\n");
}

void log_assert_failed(const char *cond, const char *file, int line)
{
	mock_assert(0, cond, file, line);
	abort(); /* not reached: mock_assert jumps back to expect_assert_failure or fails the test */
}

void client_finish_login(struct client *c)
{
	logins_finished++;
}

static void server_linked(struct client *c)
{
	links++;
}

static bool server_released(struct client *c)
{
	return false;
}

static void server_closing(struct server *s)
{
	closings_told++;
}

static void wait_started(struct client *c)
{
	c->wait_start_us = clock_now_us();
}

void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	pool_client_closing(c);
}

/* What the pool tells a client (pool/events.h): the stubs above, as client.c's table is. */
static const struct pool_events events = {
	.login_done = client_finish_login,
	.server_linked = server_linked,
	.server_released = server_released,
	.server_closing = server_closing,
	.wait_started = wait_started,
	.close = client_close,
};

struct server *server_launch(struct server_env *env, struct pool *pool, int member)
{
	struct server *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->id = ++env->next_id;
	s->env = env;
	s->pool = pool;
	s->member = member;
	s->tx_status = 'I';
	s->connect_time_us = s->request_time_us = now_us;
	list_init(&s->node);
	list_init(&s->cancels);
	pool_server_launched(s);
	assert_true(n_launched < 8);
	launched[n_launched++] = s;
	return s;
}

void server_close(struct server *s, const char *reason)
{
	if (s->state != SERVER_CLOSING)
		pool_server_closing(s);
}

bool server_same_address(const struct server *a, const struct server *b)
{
	return true;
}

void server_send_internal_query(struct server *s, const char *sql)
{
	internal_queries++;
}

void server_pstmts_clear(struct pstmt_registry *r, struct server_pstmts *set)
{
}

void settings_clear(struct settings *s)
{
}

void respq_reset(struct respq *q)
{
}

const struct db_entry *config_find_db(const struct config *cfg, const char *name)
{
	return NULL;
}

const struct user_entry *config_find_user(const struct config *cfg, const char *name)
{
	return NULL;
}

int config_db_pool_size(const struct config *cfg, const struct db_entry *e)
{
	return 2;
}

int config_db_min_pool_size(const struct config *cfg, const struct db_entry *e)
{
	return 0;
}

int config_db_reserve_pool(const struct config *cfg, const struct db_entry *e)
{
	return 0;
}

int config_db_max_connections(const struct config *cfg, const struct db_entry *e)
{
	return 0;
}

int config_user_max_connections(const struct config *cfg, const struct user_entry *u)
{
	return 0;
}

enum pool_mode config_pool_mode(const struct config *cfg, const struct db_entry *e,
				const struct user_entry *u)
{
	return POOL_MODE_TRANSACTION;
}

/* Topology: a host= database never reaches it. */
struct cluster *topo_find(struct topo *t, const char *name)
{
	return NULL;
}

void topo_member_suspect(struct member *m)
{
}

void topo_member_ban(struct member *m, uint64_t until_us, const char *cause)
{
}

bool topo_subscribe(struct topo *t, topo_changed_fn fn, void *arg)
{
	return true;
}

bool topo_primary_draining(const struct cluster *cl)
{
	return false;
}

bool topo_replica_usable(const struct member *m, uint64_t min_lsn)
{
	return false;
}

void topo_member_is_standby(struct member *m)
{
}

bool topo_cluster_unusable(const struct cluster *cl, uint64_t since_us, double patience, char *why,
			   size_t len)
{
	return false;
}

/* ---- fixture ---- */

/* What a worker lends its pools (struct pools), and one database with one pool. */
struct fixture {
	struct pools ps;
	struct config cfg, *cfg_in_force;
	bool shutting_down;
	uint64_t next_client_id;
	struct database db;
	struct pool *p;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->cfg.server_reset_query = "";
	f->cfg.server_check_query = "";
	f->cfg_in_force = &f->cfg;
	pools_init(&f->ps);
	f->ps.cfg = &f->cfg_in_force;
	f->ps.events = &events;
	f->ps.shutting_down = &f->shutting_down;
	snprintf(f->db.name, sizeof(f->db.name), "app");
	list_add_tail(&f->ps.databases, &f->db.node);
	f->p = pool_get(&f->ps, &f->db, "alice");
	assert_non_null(f->p);
	log_text[0] = '\0';
	logins_finished = links = internal_queries = closings_told = n_launched = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct list_node *n, *t;

	/* Freed whatever state they were left in: a test that tripped an ASSERT leaves them half-moved. */
	for (int i = 0; i < n_made; i++)
		free(made[i]);
	for (int i = 0; i < n_launched; i++)
		free(launched[i]);
	n_made = n_launched = 0;
	list_for_each_safe(n, t, &f->ps.all)
		free(list_entry(n, struct pool, node));
	list_for_each_safe(n, t, &f->ps.users)
		free(list_entry(n, struct pool_user, node));
	free(f);
	return 0;
}

static struct client *new_client(struct fixture *f)
{
	struct client *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_true(n_made < (int)(sizeof(made) / sizeof(made[0])));
	made[n_made++] = c;
	c->id = ++f->next_client_id;
	c->tx_status = 'I';
	list_init(&c->node);
	snprintf(c->dbname, sizeof(c->dbname), "app");
	snprintf(c->user, sizeof(c->user), "alice");
	pool_client_accepted(&f->ps, c);
	return c;
}

/* The pools' bookkeeping is sound, and the pool's counts are these. */
static void expect_pool(struct fixture *f, int active_clients, int waiting_clients, int idle,
			int active, int login, int reset)
{
	const struct pool *p = f->p;

	assert_true(pool_check_all(&f->ps));
	assert_int_equal(p->n_active_clients, active_clients);
	assert_int_equal(p->n_waiting_clients, waiting_clients);
	assert_int_equal(p->n_idle, idle);
	assert_int_equal(p->n_active, active);
	assert_int_equal(p->n_login, login);
	assert_int_equal(p->n_reset, reset);
	assert_int_equal(f->db.n_servers, idle + active + login + reset);
	assert_int_equal(p->user->n_servers, idle + active + login + reset);
}

/* ---- tests ---- */

static void test_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct client *c1, *c2;
	struct server *s1, *s2;

	/* A client connects and logs in; the pool has no server yet: it waits for the first one. */
	c1 = new_client(f);
	assert_int_equal(c1->state, CLIENT_LOGIN);
	expect_pool(f, 0, 0, 0, 0, 0, 0);
	c1->pool = f->p;
	pool_client_logged_in(c1);
	assert_int_equal(c1->state, CLIENT_WAITING_LOGIN);
	assert_int_equal(n_launched, 1);
	s1 = launched[0];
	assert_int_equal(s1->state, SERVER_CONNECTING);
	assert_int_equal(f->p->nodes[0].n_pending, 1);
	expect_pool(f, 0, 1, 0, 0, 1, 0);

	/* The server connects and logs in: the client's login finishes, the server goes idle. */
	pool_server_connected(s1);
	assert_int_equal(s1->state, SERVER_LOGIN);
	expect_pool(f, 0, 1, 0, 0, 1, 0);
	pool_server_login_done(s1);
	assert_int_equal(c1->state, CLIENT_IDLE);
	assert_int_equal(logins_finished, 1);
	assert_int_equal(s1->state, SERVER_IDLE);
	expect_pool(f, 1, 0, 1, 0, 0, 0);

	/* It wants a server: the idle one is linked at once. */
	pool_request_server(c1);
	assert_int_equal(c1->state, CLIENT_ACTIVE);
	assert_int_equal(s1->state, SERVER_ACTIVE);
	assert_ptr_equal(c1->server, s1);
	assert_ptr_equal(s1->client, c1);
	assert_int_equal(links, 1);
	expect_pool(f, 1, 0, 0, 1, 0, 0);

	/* A second client logs in at once (the pool knows its parameters) and has to wait. */
	c2 = new_client(f);
	c2->pool = f->p;
	pool_client_logged_in(c2);
	assert_int_equal(c2->state, CLIENT_IDLE);
	assert_int_equal(logins_finished, 2);
	pool_request_server(c2);
	assert_int_equal(c2->state, CLIENT_WAITING);
	assert_int_equal(f->p->nodes[0].n_waiting, 1);
	assert_int_equal(n_launched, 2); /* a second server for it, within pool_size 2 */
	s2 = launched[1];
	expect_pool(f, 1, 1, 0, 1, 1, 0);

	/* The first client leaves a transaction open: its server is reset before anyone gets it. */
	s1->tx_status = 'T';
	pool_release_server(c1);
	assert_int_equal(c1->state, CLIENT_IDLE);
	assert_null(c1->server);
	assert_int_equal(s1->state, SERVER_RESET);
	assert_int_equal(internal_queries, 1); /* ROLLBACK */
	expect_pool(f, 1, 1, 0, 0, 1, 1);

	/* The reset is done: the waiting client gets the server. */
	s1->tx_status = 'I';
	pool_server_ready(s1);
	assert_int_equal(s1->state, SERVER_ACTIVE);
	assert_int_equal(c2->state, CLIENT_ACTIVE);
	assert_ptr_equal(c2->server, s1);
	expect_pool(f, 2, 0, 0, 1, 1, 0);

	/* Released clean, the server goes straight back to idle. */
	pool_release_server(c2);
	assert_int_equal(s1->state, SERVER_IDLE);
	expect_pool(f, 2, 0, 1, 0, 1, 0);

	/* The second server logs in and idles; one closes; the clients leave. */
	pool_server_connected(s2);
	pool_server_login_done(s2);
	assert_int_equal(s2->state, SERVER_IDLE);
	expect_pool(f, 2, 0, 2, 0, 0, 0);
	server_close(s2, "test");
	assert_int_equal(s2->state, SERVER_CLOSING);
	expect_pool(f, 2, 0, 1, 0, 0, 0);
	pool_client_closing(c1);
	pool_client_closing(c2);
	expect_pool(f, 0, 0, 1, 0, 0, 0);

	/* Every move was logged once, with its cause. */
	assert_non_null(
		strstr(log_text, "C-1 app/alice@ login -> waiting_login: logged in, waiting"));
	assert_non_null(strstr(log_text, "idle -> active: linked to a client"));
	assert_non_null(strstr(log_text, "active -> reset: released, resetting"));
	assert_non_null(strstr(log_text, "C-2 app/alice@ idle -> waiting: no idle server, queued"));
}

/* A client logged in to a pool whose parameters are known, queued for a server: none is idle. */
static struct client *queued_client(struct fixture *f)
{
	struct client *c = new_client(f);

	f->p->welcome_ready = true;
	c->pool = f->p;
	pool_client_logged_in(c);
	pool_request_server(c);
	assert_int_equal(c->state, CLIENT_WAITING);
	return c;
}

/* A waiting client whose unit of work is refused leaves the queue; the counts follow. */
static void test_drop_request(void **state)
{
	struct fixture *f = *state;
	struct client *c = queued_client(f);

	expect_pool(f, 0, 1, 0, 0, 1, 0);
	pool_drop_request(c);
	assert_int_equal(c->state, CLIENT_IDLE);
	assert_int_equal(f->p->nodes[0].n_waiting, 0);
	expect_pool(f, 1, 0, 0, 0, 1, 0);
	pool_drop_request(c); /* not waiting: nothing to do */
	assert_int_equal(c->state, CLIENT_IDLE);
}

/* A waiting client routed again (its cluster changed) moves to the queue of its new target. */
static void test_retarget(void **state)
{
	struct fixture *f = *state;
	struct client *c = queued_client(f);

	assert_int_equal(f->p->nodes[0].n_waiting, 1);
	pool_retarget(c, TARGET_WAIT_PRIMARY);
	assert_int_equal(c->target, TARGET_WAIT_PRIMARY);
	assert_int_equal(f->p->nodes[0].n_waiting, 0);
	assert_int_equal(f->p->n_waiting_primary, 1);
	assert_int_equal(f->db.routes.primary_waits, 1);
	expect_pool(f, 0, 1, 0, 0, 1, 0);
	pool_retarget(c, 0);
	assert_int_equal(f->p->nodes[0].n_waiting, 1);
	assert_int_equal(f->p->n_waiting_primary, 0);
	assert_int_equal(f->db.routes.primary_waits, 1); /* counted as it began to wait for one */
	expect_pool(f, 0, 1, 0, 0, 1, 0);
	pool_drop_request(c);
	expect_pool(f, 1, 0, 0, 0, 1, 0);
}

/*
 * A server released while a cancel request is on its way to its backend waits (CANCEL_WAIT) and
 * serves again once the cancel is done; a closing server tells the client module (its cancels).
 */
static void test_cancel_wait(void **state)
{
	struct fixture *f = *state;
	struct client *c = queued_client(f);
	struct server *s = launched[0];
	struct list_node cancel; /* stands for client/cancel.c's request on s->cancels */

	pool_server_connected(s);
	pool_server_login_done(s);
	assert_ptr_equal(c->server, s);
	list_init(&cancel);
	list_add_tail(&s->cancels, &cancel);
	pool_release_server(c);
	assert_int_equal(s->state, SERVER_CANCEL_WAIT);
	expect_pool(f, 1, 0, 0, 0, 0, 1);
	list_del(&cancel); /* PostgreSQL closed the cancel connection */
	pool_recycle_server(s);
	assert_int_equal(s->state, SERVER_IDLE);
	expect_pool(f, 1, 0, 1, 0, 0, 0);
	assert_int_equal(closings_told, 0);
	server_close(s, "test");
	assert_int_equal(closings_told, 1);
	expect_pool(f, 1, 0, 0, 0, 0, 0);
}

/* pool_check notices a counter that disagrees with its list. */
static void test_check_finds_drift(void **state)
{
	struct fixture *f = *state;

	assert_true(pool_check(f->p));
	f->p->n_idle++;
	assert_false(pool_check(f->p));
	f->p->n_idle--;
	f->p->nodes[3].n_waiting = 1;
	assert_false(pool_check(f->p));
}

/* A client logged in already cannot log in again (IDLE -> IDLE is no move). */
static void test_illegal_client_move(void **state)
{
	struct fixture *f = *state;
	struct client *c = new_client(f);

	f->p->welcome_ready = true;
	c->pool = f->p;
	pool_client_logged_in(c);
	assert_int_equal(c->state, CLIENT_IDLE);
	expect_assert_failure(pool_client_logged_in(c));
}

/* A closed client stays closed. */
static void test_illegal_client_after_close(void **state)
{
	struct fixture *f = *state;
	struct client *c = new_client(f);

	pool_client_closing(c);
	expect_assert_failure(pool_client_closing(c));
}

/* A server still connecting cannot be ready for work, nor be launched twice. */
static void test_illegal_server_moves(void **state)
{
	struct fixture *f = *state;
	struct server *s = server_launch(&f->ps.servers, f->p, 0);

	expect_assert_failure(pool_server_launched(s));
	expect_assert_failure(pool_server_login_done(s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retarget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_finds_drift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_illegal_client_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_illegal_client_after_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_illegal_server_moves, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
