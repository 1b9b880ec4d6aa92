/*
 * pin: statements whose effect outlives the transaction on the server that ran them (LISTEN,
 * SQL-level PREPARE, WITH HOLD cursors, temporary objects, session advisory locks). In
 * transaction pooling such a client keeps its server until it disconnects, instead of breaking
 * silently. Pure: text in, reason out.
 */
#ifndef PGMUX_ROUTE_PIN_H
#define PGMUX_ROUTE_PIN_H

#include <stddef.h>

/* Why this statement must pin its client to the server, or NULL if it need not. */
const char *pin_reason(const char *sql, size_t len);

#endif
