/*
 * setstmt: recognise statements that change session settings (SET, RESET, DISCARD ALL), so that
 * transaction pooling can carry a client's settings to whatever server it gets. Pure: text in,
 * description out.
 */
#ifndef PGMUX_ROUTE_SETSTMT_H
#define PGMUX_ROUTE_SETSTMT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/pkt.h"

enum set_kind {
	SET_NONE,      /* not a settings statement */
	SET_VALUE,     /* SET [SESSION] name TO value */
	SET_RESET,     /* RESET name, SET name TO DEFAULT */
	SET_RESET_ALL, /* RESET ALL, DISCARD ALL */
	SET_LOCAL,     /* SET LOCAL ...: ends with the transaction, nothing to carry */
	SET_UNKNOWN, /* changes settings in a way this scanner does not describe (SET ... FROM CURRENT, several statements) */
};

#define SET_NAME_MAX PG_NAMEDATALEN
#define SET_VALUE_MAX 512

struct set_stmt {
	enum set_kind kind;
	char name[SET_NAME_MAX];   /* lower-cased unless it was quoted */
	char value[SET_VALUE_MAX]; /* as written, to be sent back verbatim after "SET name TO " */
};

/* Classify one query string (len bytes, need not be NUL-terminated). */
enum set_kind setstmt_parse(const char *sql, size_t len, struct set_stmt *out);

#define SETSTMT_MAX_NAMES 4

/* What a query string may do to session settings, beyond what setstmt_parse describes. */
struct setstmt_changes {
	bool any;     /* a settings statement (any of its statements) or a set_config() call */
	bool unnamed; /* a set_config() whose name is not a literal, or too many names */
	int n_names;
	char names[SETSTMT_MAX_NAMES][SET_NAME_MAX]; /* custom (dotted) names it sets or resets */
};

/*
 * Look through every statement of sql for settings changes and the custom names they touch.
 * False alarms are possible (words inside a literal), misses are not.
 */
void setstmt_scan_changes(const char *sql, size_t len, struct setstmt_changes *out);

#endif
