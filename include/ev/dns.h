/*
 * dns: asynchronous host name resolution through c-ares, driven by the libev loop, with a
 * cache.
 *
 * A name resolves once however many connections wait for it; the answer (an address, or a
 * failure) is reused for its record's TTL capped at dns_max_ttl, a failure for
 * dns_nxdomain_ttl. Waiters are connections (ev/conn.c): conn_connect_name() joins a lookup
 * and closing the conn leaves it, so no callback ever reaches a freed object.
 */
#ifndef PGMUX_EV_DNS_H
#define PGMUX_EV_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct evloop;
struct dns;
struct dns_wait;
struct conn;

/*
 * A resolver on loop. servers: "" for the system's configuration, else "ip[:port],..." (tests
 * point it at a resolver of their own). NULL on failure (err says why). Caller owns it.
 */
struct dns *dns_new(struct evloop *loop, const char *servers, char *err, size_t errlen);

/* Is host a name to resolve (not an IPv4/IPv6 address, not a unix socket directory)? */
bool dns_is_name(const char *host);

/* Cancel every lookup and free the resolver; waiting conns are failed first. NULL ok. */
void dns_free(struct dns *d);

/* Cache lifetimes in seconds (RELOAD may change them; cached answers keep their expiry). */
void dns_set_ttls(struct dns *d, double max_ttl, double nxdomain_ttl);

enum dns_answer {
	DNS_FOUND,   /* *addr holds the address (port 0) */
	DNS_FAILED,  /* a remembered failure; err says why */
	DNS_WAITING, /* a lookup runs; c was added to its waiters */
};

/*
 * Look name up for conn c: from the cache when fresh, else by joining (or starting) a lookup.
 * On DNS_WAITING, the conn is called back through conn_dns_done() when the answer comes
 * (never before this function returns), unless it leaves first with dns_wait_cancel().
 * c may be NULL: nobody is called back, the answer is cached for the next call.
 */
enum dns_answer dns_lookup(struct dns *d, const char *name, struct conn *c,
			   struct sockaddr_storage *addr, socklen_t *len, char *err, size_t errlen);

/* c leaves the lookup it waits for (called by conn_close). */
void dns_wait_cancel(struct dns_wait *w);

/* For ev/conn.c: the answer to a lookup c waited for; err is NULL on success. */
void conn_dns_done(struct conn *c, const struct sockaddr *addr, socklen_t len, const char *err);

/* One cached name as SHOW DNS_HOSTS shows it; the strings live until the visitor returns. */
struct dns_host {
	const char *name;
	const char *addr; /* the address in text; "" while the lookup runs or after a failure */
	bool pending;     /* a lookup runs */
	bool ok;          /* the last lookup found an address */
	double ttl;       /* seconds until the answer expires; 0 once expired or while pending */
};

typedef void (*dns_host_fn)(void *arg, const struct dns_host *h);

/*
 * Call fn for each name in the cache, read-only: fn must not look names up or free the
 * resolver. d may be NULL (no resolver: nothing to visit).
 */
void dns_for_each_host(const struct dns *d, dns_host_fn fn, void *arg);

/* "c-ares VERSION" of the c-ares linked at run time, into buf (--version). */
void dns_library_version(char *buf, size_t len);

#endif
