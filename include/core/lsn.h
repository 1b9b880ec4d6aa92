/*
 * core/lsn: a WAL position in pg_lsn's text form ("0/16B3748": X/Y in hex), as the topology's
 * health checks, the servers' write positions and the bucket moves read it from query results.
 * Header only: pure modules use it without linking anything.
 */
#ifndef PGMUX_CORE_LSN_H
#define PGMUX_CORE_LSN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* text as a WAL position into *lsn; false when it is not one (NULL, junk, trailing bytes). */
static inline bool lsn_parse(const char *text, uint64_t *lsn)
{
	unsigned int hi, lo;
	int used = 0;

	if (!text || sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used] != '\0')
		return false;
	*lsn = (uint64_t)hi << 32 | lo;
	return true;
}

#endif
