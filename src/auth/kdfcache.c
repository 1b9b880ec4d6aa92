/*
 * kdfcache: a direct-mapped table of tagged PBKDF2 results and a token bucket of PBKDF2 time
 * (microseconds of CPU, as the caller measures it).
 *
 * Invariants: a slot is empty (used false, all zero) or holds one tag and what was stored with
 * it; the slot of a tag is fixed by its first bytes, which are uniformly spread because tags are
 * HMAC outputs under a random key; the budget never exceeds one second's refill.
 */
#include "auth/kdfcache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	bool used;
	bool has_secret;
	uint8_t tag[KDFCACHE_TAG_LEN];
	struct scram_secret secret;
};

struct kdfcache {
	uint8_t key[32];
	const void *source;
	size_t n_slots;
	struct slot *slots;
	double budget_us;        /* PBKDF2 time left; negative: a debt being paid off */
	uint64_t refilled_us;    /* when budget_us was last brought up to date; 0 = never */
	double ns_per_iteration; /* the speed PBKDF2 showed so far (a moving average) */
};

struct kdfcache *kdfcache_new(size_t slots)
{
	struct kdfcache *kc = calloc(1, sizeof(*kc));

	if (!kc || slots == 0 || !(kc->slots = calloc(slots, sizeof(*kc->slots))) ||
	    RAND_bytes(kc->key, sizeof(kc->key)) != 1) {
		/* No fallback key: a guessable one would let tags be forged. */
		if (kc)
			free(kc->slots);
		free(kc);
		return NULL;
	}
	kc->n_slots = slots;
	kc->ns_per_iteration = KDFCACHE_INITIAL_NS_PER_ITERATION;
	return kc;
}

static void wipe_slots(struct kdfcache *kc)
{
	OPENSSL_cleanse(kc->slots, kc->n_slots * sizeof(*kc->slots));
}

void kdfcache_free(struct kdfcache *kc)
{
	if (!kc)
		return;
	wipe_slots(kc);
	free(kc->slots);
	OPENSSL_cleanse(kc, sizeof(*kc));
	free(kc);
}

void kdfcache_bind(struct kdfcache *kc, const void *source)
{
	if (kc->source == source)
		return;
	wipe_slots(kc);
	kc->source = source;
}

bool kdfcache_tag(const struct kdfcache *kc, const char *const *parts, size_t n,
		  uint8_t tag[KDFCACHE_TAG_LEN])
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t total = 0, at = 0;
	uint8_t *msg;
	bool ok;

	/* Each part is length-prefixed, so ("ab", "c") and ("a", "bc") tag differently. */
	for (size_t i = 0; i < n; i++)
		total += sizeof(uint64_t) + (parts[i] ? strlen(parts[i]) : 0);
	msg = malloc(total ? total : 1);
	for (size_t i = 0; msg && i < n; i++) {
		uint64_t len = parts[i] ? (uint64_t)strlen(parts[i]) : UINT64_MAX;

		memcpy(msg + at, &len, sizeof(len));
		at += sizeof(len);
		if (parts[i]) {
			memcpy(msg + at, parts[i], (size_t)len);
			at += (size_t)len;
		}
	}
	ok = msg && HMAC(EVP_sha256(), kc->key, (int)sizeof(kc->key), msg, at, mac, &maclen) &&
	     maclen >= KDFCACHE_TAG_LEN;
	if (msg) {
		OPENSSL_cleanse(msg, total);
		free(msg);
	}
	if (ok)
		memcpy(tag, mac, KDFCACHE_TAG_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

static struct slot *slot_of(const struct kdfcache *kc, const uint8_t tag[KDFCACHE_TAG_LEN])
{
	uint64_t h;

	memcpy(&h, tag, sizeof(h));
	return &kc->slots[h % kc->n_slots];
}

bool kdfcache_get(const struct kdfcache *kc, const uint8_t tag[KDFCACHE_TAG_LEN],
		  struct scram_secret *secret_out)
{
	const struct slot *s = slot_of(kc, tag);

	if (!s->used || CRYPTO_memcmp(s->tag, tag, KDFCACHE_TAG_LEN) != 0)
		return false;
	if (secret_out) {
		if (!s->has_secret)
			return false;
		*secret_out = s->secret;
	}
	return true;
}

void kdfcache_put(struct kdfcache *kc, const uint8_t tag[KDFCACHE_TAG_LEN],
		  const struct scram_secret *secret)
{
	struct slot *s = slot_of(kc, tag);

	OPENSSL_cleanse(s, sizeof(*s));
	s->used = true;
	memcpy(s->tag, tag, KDFCACHE_TAG_LEN);
	if (secret) {
		s->has_secret = true;
		s->secret = *secret;
	}
}

double kdfcache_estimate_us(const struct kdfcache *kc, long iterations)
{
	return (double)iterations * kc->ns_per_iteration / 1000.0;
}

bool kdfcache_afford(struct kdfcache *kc, uint64_t now_us, long budget_us, long iterations)
{
	double cap = (double)budget_us;
	double estimate = kdfcache_estimate_us(kc, iterations);

	if (budget_us <= 0)
		return false;
	if (kc->refilled_us == 0)
		kc->budget_us = cap;
	else if (now_us > kc->refilled_us)
		kc->budget_us += (double)(now_us - kc->refilled_us) * (double)budget_us / 1e6;
	if (kc->budget_us > cap)
		kc->budget_us = cap;
	kc->refilled_us = now_us;
	/* A derivation dearer than the bucket holds runs when it is full and leaves a debt. */
	return kc->budget_us >= (estimate < cap ? estimate : cap);
}

void kdfcache_charge(struct kdfcache *kc, long iterations, uint64_t spent_us)
{
	kc->budget_us -= (double)spent_us;
	/* Never below minus a few seconds' worth, whatever one slow derivation measured. */
	if (kc->budget_us < -5e6)
		kc->budget_us = -5e6;
	if (iterations > 0)
		kc->ns_per_iteration = 0.75 * kc->ns_per_iteration +
				       0.25 * (double)spent_us * 1000.0 / (double)iterations;
}
