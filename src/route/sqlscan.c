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

const char *sqlscan_comment_end(const char *p, const char *end, const char **body_end)
{
	int nest = 1;

	while (end - p >= 2) {
		if (p[0] == '/' && p[1] == '*') {
			nest++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			p += 2;
			if (--nest == 0) {
				*body_end = p - 2;
				return p;
			}
		} else {
			p++;
		}
	}
	*body_end = end;
	return end;
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
			const char *body_end;

			s->p = sqlscan_comment_end(s->p + 2, s->end, &body_end);
		} else {
			return;
		}
	}
}
