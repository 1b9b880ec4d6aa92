/*
 * admin: the admin console, a virtual database ("pgmux", or "pgbouncer" for existing scripts)
 * that answers SHOW and control commands with PgBouncer's column names.
 */
#ifndef PGMUX_ADMIN_ADMIN_H
#define PGMUX_ADMIN_ADMIN_H

#include <stdbool.h>

struct client;
struct worker;

/*
 * Plug the console into w (at startup): client and pool code reach the functions below only
 * through w->console, never by name.
 */
void admin_register(struct worker *w);

/* True if dbname is the admin console's name. */
bool admin_is_console_db(const char *dbname);

/*
 * Answer one simple-protocol Query (sql is the query text) from an admin client: writes the whole
 * response, ending with ReadyForQuery, to the client's connection, unless the command must wait
 * (PAUSE, WAIT_CLOSE), in which case admin_tick() finishes it later.
 */
void admin_handle_query(struct client *c, const char *sql);

/* Called periodically and after releases: completes waiting PAUSE / WAIT_CLOSE commands. */
void admin_tick(struct worker *w);

/* An admin client is going away: forget any command it was waiting on. */
void admin_forget_client(struct client *c);

/* Free the console's state (at exit, after every client is closed). */
void admin_destroy(struct worker *w);

#endif
