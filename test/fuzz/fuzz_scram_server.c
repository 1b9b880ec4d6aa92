/* link: src/auth/scram_server.c src/auth/scram.c src/auth/base64.c */
/*
 * libFuzzer target: the SCRAM exchange as the server sees it, client-first then client-final
 * (split at the first NUL), with a stored secret or a mock one, with or without channel binding.
 * The secret holds stored keys, so no PBKDF2 runs and every input is cheap.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth/scram_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 7677's example: password "pencil", 4096 iterations. */
#define SECRET                                                                                      \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define OUR_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

static const uint8_t salt[16] = {
	0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
	0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t cb[32] = { 1, 2, 3 };
	struct scram_secret secret;
	struct scram_server ss;
	char out[1024], err[256];
	const uint8_t *nul;
	size_t outn, first_len;
	uint8_t flags;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (!scram_parse_secret(SECRET, &secret))
		__builtin_trap();
	if (!scram_server_init(&ss, flags & 1 ? NULL : &secret, salt, sizeof(salt), OUR_NONCE))
		__builtin_trap();
	if (flags & 2)
		(void)scram_server_set_channel_binding(&ss, flags & 4, cb, sizeof(cb));
	nul = memchr(data, 0, size);
	first_len = nul ? (size_t)(nul - data) : size;
	if (scram_server_first(&ss, (const char *)data, first_len, out, sizeof(out), &outn, err,
			       sizeof(err)) == SCRAM_SERVER_OK &&
	    nul) {
		if (outn >= sizeof(out) || out[outn] != 0)
			__builtin_trap();
		(void)scram_server_final(&ss, (const char *)nul + 1, size - first_len - 1, out,
					 sizeof(out), &outn, err, sizeof(err));
	}
	scram_server_clear(&ss);
	return 0;
}
