/*
 * secret: classify credential strings by PostgreSQL's rules. Holds no state; the checks live
 * in the md5 and scram modules so there is one definition of each format.
 */
#include "auth/secret.h"

#include <openssl/crypto.h>

#include "auth/md5.h"
#include "auth/scram.h"

enum secret_kind secret_kind_of(const char *s)
{
	if (md5_is_secret(s))
		return SECRET_MD5;
	struct scram_secret parsed;
	bool scram = scram_parse_secret(s, &parsed);
	OPENSSL_cleanse(&parsed, sizeof(parsed));
	return scram ? SECRET_SCRAM : SECRET_PLAIN;
}

const char *secret_kind_name(enum secret_kind kind)
{
	switch (kind) {
	case SECRET_PLAIN:
		return "plain";
	case SECRET_MD5:
		return "md5";
	case SECRET_SCRAM:
		return "scram";
	}
	return "unknown";
}
