/*
 * cancelkey: the bit layout of pgmux's cancel keys (see proto/cancelkey.h for the layout and
 * why it is so).
 */
#include "proto/cancelkey.h"

struct cancelkey cancelkey_make(int peer_id, uint32_t rnd_pid, uint32_t rnd_key)
{
	struct cancelkey k;

	/* Positive pids: some drivers treat the pid as a signed process id. */
	k.pid = rnd_pid & 0x7fffffff;
	if (peer_id <= 0)
		k.key = rnd_key;
	else
		k.key = ((uint32_t)peer_id << CANCELKEY_PEER_SHIFT) |
			(rnd_key & CANCELKEY_RANDOM_MASK);
	return k;
}

int cancelkey_peer_id(uint32_t key)
{
	return (int)(key >> CANCELKEY_PEER_SHIFT);
}

bool cancelkey_is_forwarded(uint32_t key)
{
	return (key & CANCELKEY_FORWARDED) != 0;
}

uint32_t cancelkey_mark_forwarded(uint32_t key)
{
	return key | CANCELKEY_FORWARDED;
}

uint32_t cancelkey_as_issued(uint32_t key)
{
	return key & ~CANCELKEY_FORWARDED;
}
