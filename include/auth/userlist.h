/*
 * userlist: the auth_file of user names and passwords or secrets, in PgBouncer's format.
 *
 * Each line is `"user" "password-or-secret"`, both double-quoted; inside quotes a doubled ""
 * stands for one '"'. Fields are separated by spaces or tabs, and anything after the second
 * field is ignored. Blank lines and lines whose first non-blank character is ';' or '#' are
 * comments. When a user appears twice, the later line wins. A userlist is immutable once
 * loaded: it is read with the config that names it (config.h), RELOAD reads a new one with the
 * new config, and configs cloned from one another share it (userlist_ref), so borrowed strings
 * stay valid until the last config holding the list is freed. Pure apart from reading the file in userlist_load(); the parser
 * takes bytes so it can be fuzzed.
 */
#ifndef PGMUX_AUTH_USERLIST_H
#define PGMUX_AUTH_USERLIST_H

#include <stddef.h>

struct userlist;

/*
 * Read and parse the file at path. On success the caller owns the result (free it with
 * userlist_free()). On failure returns NULL and writes "PATH:LINE: what is wrong" (or
 * "PATH: why it could not be read") into err, NUL-terminated and truncated to errlen.
 */
struct userlist *userlist_load(const char *path, char *err, size_t errlen);

/*
 * Parse len bytes of auth_file text; name is used only in error messages. Same ownership and
 * errors as userlist_load(). A NUL byte in the text is an error.
 */
struct userlist *userlist_parse(const char *text, size_t len, const char *name, char *err,
				size_t errlen);

/*
 * The password or secret stored for user (exact, case-sensitive match), or NULL when the user
 * is not listed. Borrowed from ul. It may be "" for an entry with an empty password: callers
 * must treat that as "no password", never as something a client's empty password matches.
 */
const char *userlist_find(const struct userlist *ul, const char *user);

/* Number of distinct users in ul. */
size_t userlist_count(const struct userlist *ul);

/*
 * userlist_ref() adds a holder and returns ul (NULL stays NULL); userlist_free() drops one and,
 * with the last, wipes the secrets and frees ul. NULL is allowed.
 */
struct userlist *userlist_ref(struct userlist *ul);
void userlist_free(struct userlist *ul);

#endif
