/*
 * secret: what kind of credential an auth_file (or config) password string holds.
 *
 * The rules are PostgreSQL's, so that a string means the same to pgmux as it would in
 * pg_authid: an MD5 secret is "md5" + 32 lowercase hex digits, a SCRAM secret is a string
 * scram_parse_secret() accepts, and everything else is a plaintext password. Pure.
 */
#ifndef PGMUX_AUTH_SECRET_H
#define PGMUX_AUTH_SECRET_H

enum secret_kind {
	SECRET_PLAIN, /* usable for any server login method */
	SECRET_MD5,   /* usable for MD5 logins only */
	SECRET_SCRAM, /* cannot log in to a server by itself: see auth/scram.h */
};

/* The kind of secret s is; s is borrowed and must not be NULL. */
enum secret_kind secret_kind_of(const char *s);

/* Name of a kind for logs ("plain", "md5", "scram"); never NULL. */
const char *secret_kind_name(enum secret_kind kind);

#endif
