/*
 * sqlscan: blanks and comments between SQL tokens (see route/sqlscan.h). Never reads outside
 * [p, end).
 */
#include "route/sqlscan.h"

#include <stdbool.h>

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool at(const struct sql_scan *s, char a, char b)
{
	return s->end - s->p >= 2 && s->p[0] == a && s->p[1] == b;
}

/* From the start of a block comment to just after its end (or the end of the text). */
static void skip_block_comment(struct sql_scan *s)
{
	int depth = 0;

	do {
		if (at(s, '/', '*')) {
			depth++;
			s->p += 2;
		} else if (at(s, '*', '/')) {
			depth--;
			s->p += 2;
		} else {
			s->p++;
		}
	} while (depth > 0 && s->p < s->end);
}

void sqlscan_skip_space(struct sql_scan *s)
{
	for (;;) {
		while (s->p < s->end && is_space(*s->p))
			s->p++;
		if (at(s, '-', '-')) {
			while (s->p < s->end && *s->p != '\n')
				s->p++;
		} else if (at(s, '/', '*')) {
			skip_block_comment(s);
		} else {
			return;
		}
	}
}
