/*
 * pin: recognise session-state statements (see route/pin.h).
 *
 * Errs on the side of pinning: a false positive costs one client a dedicated server until it
 * disconnects; a false negative would let its state leak to, or vanish under, another client.
 */
#include "route/pin.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/*
 * Case-insensitive search for a lower-case needle in the first len bytes of hay. This runs on
 * every short statement of a transaction-pooled client: compare the first byte before the rest.
 */
static bool contains(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++)
		if (tolower((unsigned char)hay[i]) == needle[0] &&
		    strncasecmp(hay + i, needle, n) == 0)
			return true;
	return false;
}

/* The i-th word (0-based) of the statement, lower-cased, after comments and spaces. */
static bool nth_word(const char *sql, size_t len, int nth, char *out, size_t outlen)
{
	size_t i = 0;

	for (int w = 0; w <= nth; w++) {
		size_t n = 0;

		for (;;) {
			while (i < len && isspace((unsigned char)sql[i]))
				i++;
			if (i + 1 < len && sql[i] == '-' && sql[i + 1] == '-') {
				while (i < len && sql[i] != '\n')
					i++;
				continue;
			}
			if (i + 1 < len && sql[i] == '/' && sql[i + 1] == '*') {
				i += 2;
				while (i + 1 < len && !(sql[i] == '*' && sql[i + 1] == '/'))
					i++;
				i += 2;
				continue;
			}
			break;
		}
		while (i < len && (isalnum((unsigned char)sql[i]) || sql[i] == '_')) {
			if (w == nth && n + 1 < outlen)
				out[n++] = (char)tolower((unsigned char)sql[i]);
			i++;
		}
		if (w == nth) {
			out[n] = '\0';
			return n > 0;
		}
	}
	return false;
}

const char *pin_reason(const char *sql, size_t len)
{
	char w0[16], w1[16];

	if (!nth_word(sql, len, 0, w0, sizeof(w0)))
		return NULL;
	if (!strcmp(w0, "listen"))
		return "LISTEN";
	if (!strcmp(w0, "prepare"))
		return "SQL PREPARE";
	if (!strcmp(w0, "declare") && contains(sql, len, "with hold"))
		return "cursor WITH HOLD";
	if (!strcmp(w0, "create") && nth_word(sql, len, 1, w1, sizeof(w1)) &&
	    (!strcmp(w1, "temp") || !strcmp(w1, "temporary") ||
	     (!strcmp(w1, "local") && nth_word(sql, len, 2, w1, sizeof(w1)) &&
	      (!strcmp(w1, "temp") || !strcmp(w1, "temporary")))))
		return "temporary object";
	/*
	 * Session-level advisory locks: pg_[try_]advisory_lock[_shared]. The _xact_ variants end
	 * with the transaction and do not match.
	 */
	if (contains(sql, len, "_advisory_lock"))
		return "session advisory lock";
	return NULL;
}
