/*
 * kdfcache: what PBKDF2 derived for client logins, kept so that it runs once per secret, and
 * the budget of PBKDF2 time that uncached derivations may spend.
 *
 * Two things are remembered, both under a tag (an HMAC, under a key drawn when the cache is
 * made, of the strings that determine the result; the strings themselves are not stored):
 * the SCRAM secret made from a plaintext password (tag of user and password, for SCRAM logins
 * of users whose auth_file entry is plaintext), and the fact that a cleartext password matched
 * a stored SCRAM secret (tag of user, secret and password). Entries sit in a fixed table, one per
 * slot, a newer tag taking the slot of an older one; the table is wiped when the secrets it was
 * made from change (kdfcache_bind()).
 *
 * The budget is a token bucket of PBKDF2 time (measured by the caller, not counted in
 * iterations, whose cost varies tenfold between machines and builds) refilled at a given rate
 * per second and holding at most one second's worth, so that a flood of password guesses
 * costs the event loop a bounded share of each second instead of all of it, while the few
 * derivations of ordinary logins (a new plaintext user, a mistyped password) run at once.
 *
 * Pure apart from drawing the key with RAND_bytes; time is passed in. Nothing here calls back.
 */
#ifndef PGMUX_AUTH_KDFCACHE_H
#define PGMUX_AUTH_KDFCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"

#define KDFCACHE_TAG_LEN 32
/* PBKDF2-HMAC-SHA-256 speed assumed before any was measured: slower than a modern core. */
#define KDFCACHE_INITIAL_NS_PER_ITERATION 1000.0

struct kdfcache;

/* A cache of slots entries (at least 1), empty, with a full budget. NULL when out of memory. */
struct kdfcache *kdfcache_new(size_t slots);

/* Wipe and free kc; NULL is allowed. */
void kdfcache_free(struct kdfcache *kc);

/*
 * Tie kc to the source of the secrets (an auth_file's parsed list; NULL for none): when source
 * differs from the one of the previous call, every entry is wiped first. Derived results depend
 * only on their tagged strings, so this is hygiene, not correctness: old secrets' keys do not
 * outlive the file they came from.
 */
void kdfcache_bind(struct kdfcache *kc, const void *source);

/*
 * The tag of n strings (each may be NULL, which tags differently from ""), into the caller's
 * tag. Costs one HMAC-SHA-256 whatever the strings are, so an unknown user's lookup can cost
 * what a known one's does. False (tag untouched) when out of memory or libcrypto fails: then
 * the caller must neither look up nor store anything.
 */
bool kdfcache_tag(const struct kdfcache *kc, const char *const *parts, size_t n,
		  uint8_t tag[KDFCACHE_TAG_LEN]);

/*
 * Is tag cached? When it is and secret_out is not NULL, the SCRAM secret stored with it is
 * copied there (the caller wipes it after use).
 */
bool kdfcache_get(const struct kdfcache *kc, const uint8_t tag[KDFCACHE_TAG_LEN],
		  struct scram_secret *secret_out);

/* Remember tag, with secret (copied; NULL for a bare "this matched"). */
void kdfcache_put(struct kdfcache *kc, const uint8_t tag[KDFCACHE_TAG_LEN],
		  const struct scram_secret *secret);

/*
 * The time, in microseconds, a derivation of iterations is expected to take, from the speed the
 * derivations charged so far showed (KDFCACHE_INITIAL_NS_PER_ITERATION before the first).
 */
double kdfcache_estimate_us(const struct kdfcache *kc, long iterations);

/*
 * May a derivation of iterations run now, when PBKDF2 may take budget_us microseconds of each
 * second? The bucket refills at budget_us a second (now_us is the caller's clock) and holds
 * budget_us; the derivation may run when the bucket holds its estimate, or is full for one
 * dearer than that. Takes nothing: kdfcache_charge() does, once it ran.
 */
bool kdfcache_afford(struct kdfcache *kc, uint64_t now_us, long budget_us, long iterations);

/* Charge a derivation of iterations that took spent_us, and learn PBKDF2's speed from it. */
void kdfcache_charge(struct kdfcache *kc, long iterations, uint64_t spent_us);

#endif
