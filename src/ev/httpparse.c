/*
 * httpparse: HTTP/1.x request parsing (see ev/httpparse.h).
 */
#include "ev/httpparse.h"

#include <string.h>
#include <strings.h>

static const char *find_line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl ? nl : end;
}

/* The header's value if line (without its line end) is "name: value", else NULL. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
	size_t n = strlen(name);
	const char *v, *end = line + len;

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
		return NULL;
	for (v = line + n + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*vlen = (size_t)(end - v);
	return v;
}

static bool has_token(const char *v, size_t len, const char *token)
{
	size_t n = strlen(token);

	for (size_t i = 0; i + n <= len; i++) {
		if (strncasecmp(v + i, token, n) == 0 &&
		    (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
		    (i + n == len || v[i + n] == ' ' || v[i + n] == ','))
			return true;
	}
	return false;
}

static bool parse_request_line(const char *p, size_t len, struct http_request *req, bool *http11)
{
	const char *sp1 = memchr(p, ' ', len), *sp2, *target, *q;
	size_t mlen, tlen;

	if (!sp1)
		return false;
	mlen = (size_t)(sp1 - p);
	if (mlen == 0 || mlen >= sizeof(req->method))
		return false;
	for (size_t i = 0; i < mlen; i++)
		if (p[i] < 'A' || p[i] > 'Z')
			return false;
	memcpy(req->method, p, mlen);
	req->method[mlen] = '\0';
	target = sp1 + 1;
	sp2 = memchr(target, ' ', len - (size_t)(target - p));
	if (!sp2 || *target != '/')
		return false;
	q = memchr(target, '?', (size_t)(sp2 - target));
	tlen = (size_t)((q ? q : sp2) - target);
	if (tlen >= sizeof(req->path))
		return false;
	memcpy(req->path, target, tlen);
	req->path[tlen] = '\0';
	len -= (size_t)(sp2 + 1 - p);
	p = sp2 + 1;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len != 8 || strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return false;
	*http11 = p[7] == '1';
	return true;
}

enum httpparse_result httpparse_request(const char *buf, size_t len, struct http_request *req)
{
	const char *end = buf + len, *p = buf, *eol;
	bool http11 = false, first = true, conn_close = false, conn_keep = false;

	memset(req, 0, sizeof(*req));
	/* Clients may send empty lines before a request (RFC 9112 2.2). */
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	for (;;) {
		size_t llen, vlen;
		const char *v;

		eol = find_line_end(p, end);
		if (eol == end)
			return HTTPPARSE_INCOMPLETE;
		llen = (size_t)(eol - p);
		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		if (first) {
			if (!parse_request_line(p, llen, req, &http11))
				return HTTPPARSE_BAD;
			first = false;
		} else if (llen == 0) {
			break; /* the blank line ending the headers */
		} else if (!memchr(p, ':', llen) || *p == ' ' || *p == '\t') {
			return HTTPPARSE_BAD; /* not a header, or an obsolete folded line */
		} else if ((v = header_value(p, llen, "Connection", &vlen))) {
			conn_close |= has_token(v, vlen, "close");
			conn_keep |= has_token(v, vlen, "keep-alive");
		} else if ((v = header_value(p, llen, "Content-Length", &vlen))) {
			if (vlen != 1 || *v != '0')
				return HTTPPARSE_BAD; /* no request here has a body */
		} else if (header_value(p, llen, "Transfer-Encoding", &vlen)) {
			return HTTPPARSE_BAD;
		}
		p = eol + 1;
	}
	req->keep_alive = http11 ? !conn_close : conn_keep;
	req->length = (size_t)(eol + 1 - buf);
	return HTTPPARSE_OK;
}
