/*
 * client/statements: the client's prepared statement names, its unnamed statement and its
 * unnamed portal, changed as client/prepared.c and the server (server/events.h) report what
 * happened (see client/statements.h).
 * The names live in the pools' shared registry (server/pstmt.h), which keeps the counts.
 */
#include "client/statements.h"

#include "client/client.h"
#include "client/clients.h"
#include "pool/pool.h"
#include "route/dealloc.h"
#include "server/pstmt.h"

bool client_on_statement_parsed(struct client *c, const char *name, struct pstmt *ps)
{
	return client_pstmts_set(&c->cs->pools->pstmts, &c->pstmts, name, ps);
}

void client_on_statement_closed(struct client *c, const char *name)
{
	client_pstmts_remove(&c->cs->pools->pstmts, &c->pstmts, name);
}

void client_on_statements_discarded(struct client *c)
{
	client_pstmts_clear(&c->cs->pools->pstmts, &c->pstmts);
}

void client_on_parse_failed(struct client *c, const struct pstmt *ps, uint64_t seq)
{
	client_pstmts_forget_parse(&c->cs->pools->pstmts, &c->pstmts, ps, seq);
}

void client_on_statement_described(struct client *c, const struct pstmt *ps, uint32_t shape)
{
	for (size_t k = 0; k < c->pstmts.n; k++) {
		if (c->pstmts.items[k].ps == ps)
			c->pstmts.items[k].shape = shape;
	}
}

void client_on_unnamed_parsed(struct client *c, const struct dealloc_stmt *dealloc)
{
	if (dealloc)
		c->unnamed_dealloc = *dealloc;
	else
		c->unnamed_dealloc.kind = DEALLOC_NONE;
}

void client_on_simple_query(struct client *c)
{
	c->unnamed_dealloc.kind = DEALLOC_NONE;
	c->portal_dealloc = false;
}

void client_on_portal_bound(struct client *c, struct pstmt *ps, bool dealloc)
{
	c->portal_ps = ps;
	c->portal_dealloc = dealloc;
}

void client_on_sync_sent(struct client *c)
{
	/* portal_ps is left to the next Bind: it is only compared (a Describe of the portal). */
	c->portal_dealloc = false;
}
