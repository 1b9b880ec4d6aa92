/*
 * hba: client authentication rules in pg_hba.conf syntax (auth_hba_file), and the matcher that
 * picks the first rule for a connection.
 *
 * Supported: connection types local, host, hostssl, hostnossl; database fields with names,
 * comma lists, "all" and "sameuser" ("replication" is accepted and never matches: pgmux does
 * not proxy replication connections); user fields with names, comma lists and "all"; addresses
 * as CIDR (IPv4 and IPv6), as "address mask", or "all"; methods trust, reject, md5,
 * scram-sha-256, password and cert. The one option after the method is clientcert=verify-ca or
 * clientcert=verify-full, on hostssl rows only (and only verify-full with cert, which implies
 * it), as in PostgreSQL; the caller enforces it. Anything else PostgreSQL knows ("+group",
 * "samerole", "@file", regular expressions, host names, samehost/samenet, other methods, other
 * options such as map=) is a load error naming the line, never a rule that silently matches
 * differently. A double-quoted token is literal, so "all" in quotes is a
 * role named all.
 *
 * A rule set is immutable once built. Pure apart from reading the file in hba_load().
 */
#ifndef PGMUX_AUTH_HBA_H
#define PGMUX_AUTH_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hba_method {
	HBA_TRUST,
	HBA_REJECT,
	HBA_MD5,
	HBA_SCRAM_SHA_256,
	HBA_PASSWORD,
	HBA_CERT,
};

/* What the matcher needs to know about a connection. Strings are borrowed. */
struct hba_client {
	bool is_unix;     /* came in on the unix socket: only "local" rules apply */
	bool tls;         /* the connection is encrypted (hostssl vs hostnossl) */
	int family;       /* AF_INET or AF_INET6 when !is_unix */
	uint8_t addr[16]; /* network byte order; 4 bytes used for AF_INET */
	const char *database;
	const char *user;
};

/* What a rule's clientcert option asks of the client's certificate. */
enum hba_clientcert {
	HBA_CLIENTCERT_NONE,        /* nothing */
	HBA_CLIENTCERT_VERIFY_CA,   /* a certificate the TLS layer verified against the CA */
	HBA_CLIENTCERT_VERIFY_FULL, /* ... whose common name is the user name */
};

/* The rule that matched. */
struct hba_verdict {
	enum hba_method method;
	int line;                       /* in the file, from 1 */
	enum hba_clientcert clientcert; /* always VERIFY_FULL for cert */
};

struct hba;

/*
 * Read and parse the file at path. On success the caller owns the result (hba_free()). On
 * failure returns NULL and writes "PATH:LINE: what is wrong" (or "PATH: why it could not be
 * read") into err, NUL-terminated and truncated to errlen.
 */
struct hba *hba_load(const char *path, char *err, size_t errlen);

/* Parse len bytes of pg_hba.conf text; name is used in error messages. As hba_load(). */
struct hba *hba_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);

/*
 * The first rule that matches c, into the caller's *out. Returns false when no rule matches
 * (the connection must be refused like "reject"); *out is then all zero (line 0).
 */
bool hba_match(const struct hba *h, const struct hba_client *c, struct hba_verdict *out);

/* Number of rules in h. */
size_t hba_count(const struct hba *h);

/* "trust", "reject", "md5", "scram-sha-256", "password", "cert"; never NULL. */
const char *hba_method_name(enum hba_method m);

/*
 * A rule set is immutable, so configs cloned from one another share it: hba_ref() adds a holder
 * and returns h (NULL stays NULL); hba_free() drops one and frees h with the last. NULL is allowed.
 */
struct hba *hba_ref(struct hba *h);
void hba_free(struct hba *h);

#endif
