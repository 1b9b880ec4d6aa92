/*
 * admin/show: the admin console's SHOW tables, written as protocol messages.
 *
 * Column names, order and meaning are PgBouncer 1.18's, so existing scripts and exporters read
 * pgmux unchanged; counts are sent as int4, totals and times as int8, everything else as text.
 * Reading only: nothing here changes a client, server or pool.
 */
#ifndef PGMUX_ADMIN_SHOW_H
#define PGMUX_ADMIN_SHOW_H

#include <stdint.h>

#include "admin/parse.h"

struct worker;
struct msgbuf;

/* Seconds between two snapshots of the statistics; averages cover at most this long. */
#define ADMIN_STATS_PERIOD_US (60 * 1000000ULL)

/*
 * Append the whole answer to SHOW what (RowDescription, DataRows, CommandComplete "SHOW"; a
 * NoticeResponse for HELP) to mb, without ReadyForQuery. stats_since_us is when the snapshots in
 * database.stats_prev and worker.totals_prev were taken: the avg_ columns are rates since then.
 */
void admin_show(struct worker *w, enum admin_show what, uint64_t stats_since_us, struct msgbuf *mb);

/* Take the snapshot the averages start from: every database's stats_prev and w->totals_prev. */
void admin_stats_roll(struct worker *w);

#endif
